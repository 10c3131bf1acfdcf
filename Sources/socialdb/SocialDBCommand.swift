import ArgumentParser
import Social
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

@main
struct SocialDBCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socialdb",
        abstract: "socialdb: an embedded social-network database and its line-based query shell.",
        discussion: """
        Without a subcommand, runs the shell (`socialdb shell`). Without --data, every subcommand uses \
        $SOCIALDB_HOME, else $XDG_DATA_HOME/socialdb, else ~/.local/share/socialdb.
        """,
        version: "socialdb 0.1.0",
        // Further subcommands (serve, check) add themselves here; the shell stays the default so
        // `socialdb --data DIR [FILE]` keeps meaning what it always meant.
        subcommands: [ShellCommand.self, CheckCommand.self, ServeCommand.self],
        defaultSubcommand: ShellCommand.self
    )
}

/// The options every subcommand that opens a database shares: where it is and the engine's knobs.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory (created if missing).")
    var data: String?

    @Option(name: .long, help: "When a write is acknowledged: always (fdatasync), interval[:ms], or off.")
    var sync = "always"

    @Option(name: .customLong("timeline-capacity"), help: "Entries kept per home timeline.")
    var timelineCapacity = 800

    @Option(name: .customLong("celebrity-threshold"), help: "Followers above which an author's posts are merged at read time instead of fanned out.")
    var celebrityThreshold = 10_000

    @Option(name: .customLong("cache-size"), help: "Record cache budget in bytes (recently read tweets, users, counters; also the block cache for unmapped reads).")
    var cacheSize = 64 << 20

    @Option(name: .long, help: "How new LSM table blocks are stored: zstd (level 1), zstd:<level 1-19>, or none. Existing tables are read either way.")
    var compression = "zstd"

    @Option(name: .customLong("tweet-cache-size"), help: "Bytes of hydrated tweets kept for page reads, and as many again of their encoded answers (default: 64 MiB each; 256 MiB for serve).")
    var tweetCacheSize: Int?

    @Option(name: .customLong("checkpoint-records"), help: "Checkpoint timelines and search after this many written log records (0: not by count).")
    var checkpointRecords = 250_000

    @Option(name: .customLong("checkpoint-seconds"), help: "Checkpoint timelines and search at the first write this many seconds after the last checkpoint (0: not by time).")
    var checkpointSeconds = 600

    func validate() throws {
        guard LogSyncPolicy(parsing: sync) != nil else {
            throw ValidationError("--sync must be always, off, interval or interval:<milliseconds>, not '\(sync)'")
        }
        guard timelineCapacity >= 1 && timelineCapacity <= 65_536 else { throw ValidationError("--timeline-capacity must be 1 to 65536") }
        guard celebrityThreshold >= 0 else { throw ValidationError("--celebrity-threshold must not be negative") }
        guard Self.parseCompression(compression) != nil else {
            throw ValidationError("--compression must be zstd, zstd:<level 1-19> or none, not '\(compression)'")
        }
        guard cacheSize >= 0 else { throw ValidationError("--cache-size must not be negative") }
        guard (tweetCacheSize ?? 0) >= 0 else { throw ValidationError("--tweet-cache-size must not be negative") }
        guard checkpointRecords >= 0 else { throw ValidationError("--checkpoint-records must not be negative") }
        guard checkpointSeconds >= 0 else { throw ValidationError("--checkpoint-seconds must not be negative") }
    }

    static func parseCompression(_ s: String) -> LSMCompression? {
        if s == "none" { return LSMCompression.none }
        if s == "zstd" { return .default }
        if s.hasPrefix("zstd:"), let level = Int32(s.dropFirst(5)), level >= 1 && level <= 19 { return .zstd(level: level) }
        return nil
    }

    static func defaultDataDirectory() -> String {
        if let home = getenv("SOCIALDB_HOME") { return String(cString: home) }
        if let xdg = getenv("XDG_DATA_HOME"), xdg.pointee != 0 { return String(cString: xdg) + "/socialdb" }
        let home = getenv("HOME").map { String(cString: $0) } ?? "."
        return home + "/.local/share/socialdb"
    }

    var directory: String { data ?? Self.defaultDataDirectory() }

    var socialOptions: SocialDB.Options {
        var options = SocialDB.Options()
        options.sync = LogSyncPolicy(parsing: sync)!
        options.timelineCapacity = timelineCapacity
        options.celebrityThreshold = celebrityThreshold
        options.cacheSizeBytes = cacheSize
        options.compression = Self.parseCompression(compression)!
        if let tweetCacheSize { options.tweetCacheBytes = tweetCacheSize }
        options.checkpointEveryRecords = checkpointRecords
        options.checkpointEverySeconds = checkpointSeconds
        return options
    }

    /// Opens the database, or prints why not and exits with status 2. `adjust` changes options
    /// a subcommand sets beyond these (the server's rate limits).
    func open(_ adjust: (inout SocialDB.Options) -> Void = { _ in }) throws -> SocialDB {
        let directory = self.directory
        let db: SocialDB
        var options = socialOptions
        adjust(&options)
        do {
            db = try SocialDB.open(at: directory, options: options)
        } catch {
            printError("socialdb: cannot open \(directory): \(error)")
            throw ExitCode(2)
        }
        if !db.engine.logRecovery.isClean {
            printError("socialdb: \(db.engine.logRecovery)")
        }
        return db
    }
}

struct ShellCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "The socialdb shell: a line-based query language over an embedded social-network database.",
        discussion: """
        Without FILE, reads commands from standard input: interactively with a prompt on a terminal, \
        otherwise one command per line with one response each.
        """
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(name: .long, help: "Print every response as one line of JSON.")
    var json = false

    @Flag(name: .long, help: "In script mode, stop at the first failed command.")
    var bail = false

    @Flag(name: .long, help: "Print each command's elapsed time after its response (as \\timing on does).")
    var timing = false

    @Option(name: .long, help: "HOST:PORT of a `socialdb serve` to send the commands to, instead of opening a data directory.")
    var connect: String?

    @Argument(help: "A file of commands to run (script mode).")
    var file: String?

    func run() throws {
        if let connect {
            let status = RemoteShell.run(address: connect, json: json, bail: bail, timing: timing, file: file)
            if status != 0 { throw ExitCode(status) }
            return
        }
        let directory = database.directory
        let db = try database.open()

        guard var input = fdopen(0, "r") else { throw ExitCode(2) }
        if let file {
            guard let opened = fopen(file, "r") else {
                printError("socialdb: cannot read \(file): \(String(cString: strerror(errno)))")
                try? db.close()
                throw ExitCode(2)
            }
            input = opened
        }
        let interactive = file == nil && isatty(0) != 0
        // The line editor when a person is at a terminal (both ends); else getline, with a
        // plain prompt when standard input alone is a terminal.
        let terminal = interactive ? TerminalCommandSource(historyPath: History.defaultPath()) : nil
        let source: CommandSource = terminal ?? StreamCommandSource(stream: input, prompt: interactive ? "socialdb> " : nil)
        let shell = Shell(db: db, json: json, showsProgress: isatty(2) != 0)
        shell.timing = timing
        if interactive && !json {
            writeOut("socialdb 0.1.0, data in \(directory) (\(db.engine.fileSystem.backend.rawValue)). HELP lists the commands, QUIT leaves.\n")
        }
        // At the prompt Ctrl-C is a key of the editor; while a command runs it is ignored, so
        // the database is always closed by QUIT or Ctrl-D.
        if terminal != nil { signal(SIGINT, SIG_IGN) }
        var failures = 0
        while !shell.quitRequested {
            guard let line = source.nextCommand() else { break }
            let started = monotonicNanoseconds()
            guard let response = shell.execute(line) else { continue }
            let elapsed = shell.timing && !Shell.isMetaCommand(line) ? monotonicNanoseconds() - started : nil
            // Written and flushed before the next command is read: a program can drive the shell.
            writeOut(response.render(json: json, elapsedNanoseconds: elapsed) + "\n")
            if response.isError {
                failures += 1
                if bail && !interactive { break }
            }
        }
        if file != nil { fclose(input) }
        do {
            try db.close()
        } catch {
            printError("socialdb: closing \(directory): \(error)")
            throw ExitCode(2)
        }
        if failures > 0 && !interactive { throw ExitCode(1) }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func printError(_ message: String) {
    writeAll(2, message + "\n")
}

func printErrorPartial(_ text: String) {
    writeAll(2, text)
}

func writeOut(_ text: String) {
    writeAll(1, text)
}

/// Writes all of `text` to a descriptor, unbuffered, so each response is out before the next read.
func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
}

/// Reads one line (without its newline) from a C stream; nil at end of input.
func readLine(from stream: UnsafeMutablePointer<FILE>) -> String? {
    var buffer: UnsafeMutablePointer<CChar>? = nil
    var capacity = 0
    defer { free(buffer) }
    let n = getline(&buffer, &capacity, stream)
    guard n >= 0, let buffer else { return nil }
    var length = n
    while length > 0 && (buffer[length - 1] == 10 || buffer[length - 1] == 13) { length -= 1 }
    return String(decoding: UnsafeRawBufferPointer(start: buffer, count: length), as: UTF8.self)
}
