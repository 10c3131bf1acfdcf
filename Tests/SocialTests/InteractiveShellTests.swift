import Foundation
import Testing
@testable import socialdb

#if canImport(Glibc)
import Glibc
#endif

/// The interactive shell on a pseudo-terminal: the real `socialdb` binary (built beside the
/// tests) with its standard input, output and error on the slave side, driven through the master
/// side as a person would type. Every wait is for output to appear (with a deadline), never a
/// fixed sleep.
@Suite struct InteractiveShellTests {
    /// A running `socialdb` on a pseudo-terminal.
    final class Terminal {
        let master: Int32
        let process = Process()
        /// Everything the program wrote, and how far `expect` has matched.
        private(set) var output: [UInt8] = []
        private var matched = 0

        init(arguments: [String], environment: [String: String]) throws {
            // posix_openpt, unlockpt and ptsname as their ioctls (Swift's Glibc module does not
            // export the XOPEN functions): TIOCSPTLCK = _IOW('T', 0x31, int), TIOCGPTN =
            // _IOR('T', 0x30, unsigned).
            master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            var unlock: Int32 = 0
            var number: UInt32 = 0
            guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
                throw TerminalError("no pseudo-terminal: \(String(cString: strerror(errno)))")
            }
            var size = winsize(ws_row: 40, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0)
            _ = ioctl(master, UInt(TIOCSWINSZ), &size)
            let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard slave >= 0 else { throw TerminalError("cannot open /dev/pts/\(number)") }
            let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
            process.executableURL = URL(fileURLWithPath: InteractiveShellTests.binary())
            process.arguments = arguments
            process.environment = environment
            process.standardInput = handle
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            close(slave) // the child has its copies; the master reads EOF when the child is gone
        }

        deinit {
            if process.isRunning { process.terminate() }
            close(master)
        }

        func type(_ text: String) {
            var bytes = Array(text.utf8)
            _ = bytes.withUnsafeMutableBytes { write(master, $0.baseAddress!, $0.count) }
        }

        /// Reads until `text` appears after what earlier expectations matched; false at the
        /// deadline or when the program has ended without writing it.
        @discardableResult
        func expect(_ text: String, seconds: Int = 30) -> Bool {
            let needle = Array(text.utf8)
            let deadline = monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
            while true {
                if let range = find(needle) {
                    matched = range
                    return true
                }
                let now = monotonicNanoseconds()
                guard now < deadline, readSome(timeoutMilliseconds: Int32((deadline - now) / 1_000_000)) else { return false }
            }
        }

        private func find(_ needle: [UInt8]) -> Int? {
            guard output.count - matched >= needle.count else { return nil }
            var i = matched
            while i + needle.count <= output.count {
                if output[i..<(i + needle.count)].elementsEqual(needle) { return i + needle.count }
                i += 1
            }
            return nil
        }

        /// One read from the master; false at end of output (the child closed the terminal).
        private func readSome(timeoutMilliseconds: Int32) -> Bool {
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, max(1, timeoutMilliseconds))
            if ready < 0 && errno == EINTR { return true }
            guard ready > 0 else { return false }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { return true }
            guard n > 0 else { return false }
            output.append(contentsOf: buffer[0..<n])
            return true
        }

        /// Waits for the program to close the terminal and exit; its status, or nil at the deadline.
        func waitForExit(seconds: Int = 30) -> Int32? {
            let deadline = monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
            while monotonicNanoseconds() < deadline {
                if !readSome(timeoutMilliseconds: 200) && !process.isRunning { break }
            }
            guard !process.isRunning else { return nil }
            process.waitUntilExit()
            return process.terminationStatus
        }

        var text: String { String(decoding: output, as: UTF8.self) }
    }

    struct TerminalError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func binary() -> String {
        let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = URL(fileURLWithPath: selfPath).deletingLastPathComponent()
        // The test bundle may sit inside a .xctest directory.
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("socialdb").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("socialdb").path
    }

    static let up = "\u{1B}[A"
    static let ctrlC = "\u{03}"
    static let ctrlD = "\u{04}"
    static let ctrlU = "\u{15}"

    func start(_ directory: TemporaryDirectory) throws -> Terminal {
        try Terminal(arguments: ["--data", directory.path + "/db", "--sync", "off"],
                     environment: ["TERM": "xterm", "HOME": directory.path, "SOCIALDB_HISTORY": directory.path + "/history",
                                   "PATH": "/usr/bin:/bin"])
    }

    @Test func promptEditingHistoryAndCleanExit() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary()), "socialdb not found beside the tests")
        let directory = TemporaryDirectory("pty")
        let t = try start(directory)
        #expect(t.expect("socialdb> "), "the prompt: \(t.text)")
        t.type("USER ADD alice\r")
        #expect(t.expect("created @alice"), "\(t.text)")
        #expect(t.expect("socialdb> "))
        // Up recalls the previous line; Enter runs it again.
        t.type(Self.up)
        #expect(t.expect("socialdb> USER ADD alice"), "recalled: \(t.text)")
        t.type("\r")
        #expect(t.expect("error (exists)"), "\(t.text)")
        #expect(t.expect("socialdb> "))
        // Ctrl-C drops a partial line, and the shell goes on.
        t.type("POST alice partial")
        t.type(Self.ctrlC)
        #expect(t.expect("^C"))
        #expect(t.expect("socialdb> "))
        t.type("TWEETS alice\r")
        #expect(t.expect("(no tweets)"), "the cancelled line ran: \(t.text)")
        #expect(t.expect("socialdb> "))
        // An unterminated quote continues on the next line.
        t.type("POST alice \"two\r")
        #expect(t.expect("   ...> "), "\(t.text)")
        t.type("lines\"\r")
        #expect(t.expect("  two\r\n  lines"), "\(t.text)")
        #expect(t.expect("socialdb> "))
        // Editing: Ctrl-A goes home and typing inserts there; Ctrl-E, left arrow, Delete, Backspace.
        t.type("alice\u{01}TWEETS \u{05}X\u{1B}[D\u{1B}[3~Q\u{7F} LIMIT 1\r")
        #expect(t.expect("  two"), "\(t.text)")
        #expect(t.expect("socialdb> "))
        // A pasted line wider than the terminal (scrolled while typed), with wide characters.
        let long = String(repeating: "wide 寬 ", count: 30) + "end"
        t.type("POST alice \(long)\r")
        #expect(t.expect("  \(long)\r\n"), "the long line arrives whole: \(t.text)")
        #expect(t.expect("socialdb> "))
        // Tab completes a verb in the case it was typed.
        t.type("sta\t")
        #expect(t.expect("socialdb> stats "), "\(t.text)")
        t.type(Self.ctrlU + "\\timing on\r")
        #expect(t.expect("Timing is on."))
        t.type("USER SHOW alice\r")
        #expect(t.expect("tweets 2"))
        #expect(t.expect("Time: "), "\\timing prints the time: \(t.text)")
        #expect(t.expect(" ms"))
        // Ctrl-D on an empty line quits with status 0 and closes the database.
        #expect(t.expect("socialdb> "))
        t.type(Self.ctrlD)
        #expect(t.waitForExit() == 0, "\(t.text)")

        let history = (try? String(contentsOfFile: directory.path + "/history", encoding: .utf8)) ?? ""
        #expect(history.contains("POST alice \"two\\nlines\"\n"), "a continued command is one history line: \(history)")
        #expect(!history.contains("partial"), "a cancelled line is not history")

        // Again: the history is there (Up), and so is the data.
        let again = try start(directory)
        #expect(again.expect("socialdb> "))
        again.type(Self.up)
        #expect(again.expect("socialdb> USER SHOW alice"), "history after a restart: \(again.text)")
        again.type("\r")
        #expect(again.expect("tweets 2"), "the data after a restart: \(again.text)")
        #expect(again.expect("socialdb> "))
        again.type("QUIT\r")
        #expect(again.expect("bye"))
        #expect(again.waitForExit() == 0)
    }

    @Test func completion() {
        func complete(_ line: String) -> [String] {
            let chars = Array(line)
            return completeShellWord(chars, chars.count).candidates
        }
        #expect(complete("po") == ["post"])
        #expect(complete("FOLLOW").sorted() == ["FOLLOW", "FOLLOWERS", "FOLLOWING"])
        #expect(complete("user a") == ["add"])
        #expect(complete("SEARCH U") == ["USERS"])
        #expect(complete("POST alice x").isEmpty)
        #expect(complete("\\t") == ["\\timing"])
    }

    @Test func continuationAndHistoryForms() {
        #expect(TerminalCommandSource.continues("POST a \"open"))
        #expect(!TerminalCommandSource.continues("POST a \"closed\""))
        #expect(!TerminalCommandSource.continues("-- a comment with a \" quote"))
        #expect(TerminalCommandSource.historyEntry("POST a \"x\ny\"") == "POST a \"x\\ny\"")
        #expect(TerminalCommandSource.historyEntry("AUTH alice secret") == nil)
        #expect(TerminalCommandSource.historyEntry("user add bob Bob password secret") == nil)
    }

    @Test func historyFileIsCapped() throws {
        let directory = TemporaryDirectory("history")
        let path = directory.path + "/history"
        var history = History(path: path, capacity: 5)
        for i in 0..<8 { history.add("TWEET \(i)") }
        history.add("TWEET 7")
        history.add("   ")
        #expect(history.entries == (3..<8).map { "TWEET \($0)" })
        let reloaded = History(path: path, capacity: 5)
        #expect(reloaded.entries == (3..<8).map { "TWEET \($0)" })
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5, "trimmed to the capacity at load")
    }

    /// `--timing`: a `Time: ... ms` line after each human response, a last `time_ms` field in
    /// each JSON one; not for `\timing` itself.
    @Test func timingOption() throws {
        let ok = Response.ok(fields: [("x", .int(1))], human: "done")
        #expect(ok.render(json: false, elapsedNanoseconds: 412_400) == "done\nTime: 0.412 ms")
        #expect(ok.render(json: true, elapsedNanoseconds: 1_234_567_890) == "{\"ok\":true,\"x\":1,\"time_ms\":1234.568}")
        #expect(ok.render(json: true, elapsedNanoseconds: nil) == "{\"ok\":true,\"x\":1}")

        let directory = TemporaryDirectory("timing")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary())
        process.arguments = ["--data", directory.path + "/db", "--json", "--timing", "--sync", "off"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data("USER ADD alice\nUSER SHOW nobody\n\\timing off\nUSER SHOW alice\n".utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(text)")
        guard lines.count == 4 else { return }
        #expect(lines[0].hasPrefix("{\"ok\":true,\"user\"") && lines[0].contains("},\"time_ms\":") && lines[0].hasSuffix("}"))
        #expect(lines[1].hasPrefix("{\"ok\":false") && lines[1].contains("\"},\"time_ms\":"))
        #expect(lines[2] == "{\"ok\":true,\"timing\":false}")
        #expect(!lines[3].contains("time_ms"))
        #expect(process.terminationStatus == 1, "one command failed")
    }
}
