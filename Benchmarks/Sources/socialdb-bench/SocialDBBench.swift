// socialdb-bench: every figure socialdb quotes, rerunnable by anyone (the brief's benchmark
// contract):
//
//   swift run -c release --package-path Benchmarks socialdb-bench <suite> [--scale small|medium|large] [--json FILE]
//
// Each suite measures socialdb and its peer on the same disk in the same run and prints a table
// with the ratio socialdb/peer; `--json` writes the same rows.
import ArgumentParser
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

enum Suite: String, CaseIterable, ExpressibleByArgument {
    case log, lsm, timeline, graph, search, social, server, all

    /// The suites that measure something, in the order `all` runs them.
    static let measuring: [Suite] = [.log, .lsm, .timeline, .graph, .search, .social, .server]

    var isImplemented: Bool { self == .log || self == .lsm || self == .timeline || self == .graph || self == .search || self == .server }
}

enum Scale: String, CaseIterable, ExpressibleByArgument {
    case small, medium, large
}

enum IOChoice: String, CaseIterable, ExpressibleByArgument {
    case auto
    case posix
    case ioUring = "io_uring"
}

@main
struct SocialDBBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socialdb-bench",
        abstract: "Measures socialdb against its peers on this machine and prints the ratios.",
        discussion: "Suites: log, lsm, timeline, graph, search, social, server, all. Implemented so far: log, lsm, timeline, graph, search, server (socialdb serve over loopback).")

    @Argument(help: "The suite to run (`all` runs every implemented suite).")
    var suite: Suite

    @Option(help: "How much work: `small` finishes each suite within a minute; `medium` and `large` are what notes quote.")
    var scale: Scale = .small

    @Option(name: .customLong("json"), help: ArgumentHelp("Also write the rows as a JSON array to this file.", valueName: "file"))
    var jsonPath: String?

    @Option(name: .customLong("dir"), help: ArgumentHelp("Scratch directory on the disk to measure (default: Benchmarks/.bench-data).", valueName: "dir"))
    var directory: String?

    @Option(help: "The file layer's I/O backend (auto: io_uring unless unavailable or SOCIALDB_IO says otherwise).")
    var io: IOChoice = .auto

    mutating func run() throws {
        if !suite.isImplemented && suite != .all {
            printError("socialdb-bench: suite '\(suite.rawValue)' is not implemented yet")
            throw ExitCode(2)
        }
        let fileSystem: FileSystem
        do {
            switch io {
            case .auto: fileSystem = try FileSystem(backend: .automatic)
            case .posix: fileSystem = try FileSystem(backend: .posix)
            case .ioUring: fileSystem = try FileSystem(backend: .ioUring)
            }
        } catch {
            printError("socialdb-bench: cannot use the \(io.rawValue) backend: \(error)")
            throw ExitCode(1)
        }
        let base = directory ?? Self.defaultDataDirectory()
        let scratch = try ScratchSpace(fileSystem: fileSystem, base: base)
        defer { try? scratch.removeAll() }

        print("socialdb-bench \(suite.rawValue), scale \(scale.rawValue)")
        var backendLine = "I/O backend: \(fileSystem.backend.rawValue)"
        if let reason = fileSystem.fallbackReason { backendLine += " (\(reason))" }
        print(backendLine)
        print("scratch directory: \(scratch.runDirectory)")

        let suites = suite == .all ? Suite.measuring : [suite]
        var rows: [ResultRow] = []
        for one in suites {
            guard one.isImplemented else {
                print("suite \(one.rawValue): not implemented yet, skipped")
                continue
            }
            let result: SuiteResult
            switch one {
            case .log:
                result = try LogSuite(fileSystem: fileSystem, scratch: scratch, sizes: LogSuite.Sizes(scale)).run()
            case .graph:
                result = try GraphSuite(fileSystem: fileSystem, scratch: scratch, sizes: GraphSuite.Sizes(scale)).run()
            case .lsm:
                result = try LSMSuite(fileSystem: fileSystem, scratch: scratch, sizes: LSMSuite.Sizes(scale)).run()
            case .timeline:
                result = try TimelineSuite(fileSystem: fileSystem, scratch: scratch, sizes: TimelineSuite.Sizes(scale)).run()
            case .search:
                result = try SearchSuite(fileSystem: fileSystem, scratch: scratch, sizes: SearchSuite.Sizes(scale)).run()
            case .server:
                result = try ServerSuite(scratch: scratch, sizes: ServerSuite.Sizes(scale), binary: ServerSuite.defaultBinary()).run()
            default:
                preconditionFailure("suite \(one.rawValue) is marked implemented but has no runner")
            }
            print("")
            Report.printTable(result.rows)
            print("")
            for note in result.notes { print(note) }
            Report.printTargets(result.targets)
            rows += result.rows
        }
        if let jsonPath {
            try Report.writeJSON(rows, to: jsonPath)
            print("wrote \(rows.count) rows to \(jsonPath)")
        }
    }

    /// `Benchmarks/.bench-data`, found from this source file's place in the checkout (the
    /// program runs from wherever `swift run` was typed), or `.bench-data` in the current
    /// directory when the sources are not where they were built.
    static func defaultDataDirectory() -> String {
        let source = #filePath
        var parts = source.split(separator: "/", omittingEmptySubsequences: false)
        // .../Benchmarks/Sources/socialdb-bench/SocialDBBench.swift -> .../Benchmarks
        if parts.count > 3 {
            parts.removeLast(3)
            let benchmarks = parts.joined(separator: "/")
            var info = stat()
            if stat(benchmarks, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                return benchmarks + "/.bench-data"
            }
        }
        return ".bench-data"
    }
}

func printError(_ line: String) {
    writeStandardError(line + "\n")
}
