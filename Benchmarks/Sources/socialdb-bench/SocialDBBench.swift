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

    var isImplemented: Bool { self != .all }
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
        discussion: "Suites: log, lsm, timeline, graph, search, social, server (socialdb serve over loopback), all. All are implemented.")

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

    @Option(name: .customLong("mix"), help: ArgumentHelp("social: the mixes to run, comma-separated (load, dsb, twitter, burst; default all).", valueName: "list"))
    var mixList: String = "load,dsb,twitter,burst"

    @Option(name: .customLong("graph"), help: ArgumentHelp("social: the follow graph (synthetic: twitter-2010's shape at the scale's user count; reed98: socfb-Reed98, both directions of every edge, as DeathStarBench loads it, with the scale's tweets per user).", valueName: "graph"))
    var graphName: String = "synthetic"

    @Option(name: .customLong("posters"), help: ArgumentHelp("social: concurrent posters of the burst row (default: 32 at small, 64 above).", valueName: "n"))
    var posters: Int?

    @Option(name: .customLong("plot"), help: ArgumentHelp("social: write the plot data (social-<scale>.json) and the PNG charts into this directory.", valueName: "dir"))
    var plotDirectory: String?

    /// The hidden subcommand `social-child` (one system of the social suite in a process of
    /// its own) is dispatched before the arguments are parsed.
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count > 1 && arguments[1] == SocialChild.command {
            Glibc.exit(SocialChild.main(Array(arguments.dropFirst(2))))
        }
        // `social-generate <dir> <scale>`: the social suite's data alone, for profiling a child.
        if arguments.count == 4 && arguments[1] == "social-generate", let scale = Scale(rawValue: arguments[3]) {
            do {
                let world = try SocialWorld.generate(sizes: SocialSizes(scale), into: arguments[2])
                print("\(world.users) users, \(world.follows) follows, \(world.tweets) tweets in \(arguments[2])")
                Glibc.exit(0)
            } catch {
                printError("socialdb-bench social-generate: \(error)")
                Glibc.exit(1)
            }
        }
        // `timeline-profile USERS POSTS READS [THREADS]`: the timeline suite's fan-out and reads
        // alone (no peers), for a profiler such as callgrind.
        if (arguments.count == 5 || arguments.count == 6) && arguments[1] == "timeline-profile",
           let users = Int(arguments[2]), let posts = Int(arguments[3]), let reads = Int(arguments[4]) {
            TimelineSuite.profile(users: users, posts: posts, reads: reads, threads: arguments.count == 6 ? Int(arguments[5]) ?? 1 : 1)
            Glibc.exit(0)
        }
        // `timeline-hydrate-profile USERS POSTS READS [THREADS] [CACHE_MIB]`: the timeline
        // suite's hydrated pages alone (no peers), for a profiler or a record cache size sweep.
        if (5...7).contains(arguments.count) && arguments[1] == "timeline-hydrate-profile",
           let users = Int(arguments[2]), let posts = Int(arguments[3]), let reads = Int(arguments[4]) {
            do {
                try TimelineSuite.hydrateProfile(users: users, posts: posts, reads: reads,
                                                 threads: arguments.count >= 6 ? Int(arguments[5]) ?? 1 : 1,
                                                 cacheMiB: arguments.count == 7 ? Int(arguments[6]) : nil)
                Glibc.exit(0)
            } catch {
                printError("socialdb-bench timeline-hydrate-profile: \(error)")
                Glibc.exit(1)
            }
        }
        // `graph-profile USERS VARIANTS [ROWS]`: the graph suite's query rows on socialdb alone,
        // one base per codec variant, side by side (see GraphSuite.profile).
        if (arguments.count == 4 || arguments.count == 5) && arguments[1] == "graph-profile", let users = Int(arguments[2]) {
            do {
                let rows = arguments.count == 5 ? Set(arguments[4].split(separator: ",").map(String.init)) : []
                try GraphSuite.profile(users: users, variants: arguments[3].split(separator: ",").map(String.init), rows: rows)
                Glibc.exit(0)
            } catch {
                printError("socialdb-bench graph-profile: \(error)")
                Glibc.exit(1)
            }
        }
        // `lsm-profile RECORDS ROW [DIR] [--peers]`: one read row of the lsm suite on socialdb's
        // tree alone (the peers too with --peers), for a profiler such as callgrind.
        if arguments.count >= 4 && arguments[1] == "lsm-profile", let records = Int(arguments[2]) {
            do {
                let rest = arguments.dropFirst(4).filter { $0 != "--peers" }
                try LSMSuite.profile(records: records, row: arguments[3], directory: rest.first ?? "/tmp/socialdb-lsm-profile",
                                     withPeers: arguments.contains("--peers"))
                Glibc.exit(0)
            } catch {
                printError("socialdb-bench lsm-profile: \(error)")
                Glibc.exit(1)
            }
        }
        // `search-profile TWEETS KIND QUERIES [DIR] [--fts5]`: the search suite's index and one
        // kind of query alone (FTS5 too with --fts5), for a profiler such as callgrind; prints a
        // checksum of the results so that two builds can be compared for the same answers.
        if arguments.count >= 5 && arguments[1] == "search-profile", let tweets = Int(arguments[2]),
           let queries = Int(arguments[4]) {
            do {
                let withFTS5 = arguments.contains("--fts5")
                let rest = arguments.dropFirst(5).filter { $0 != "--fts5" }
                try SearchSuite.profile(tweets: tweets, kind: arguments[3], queries: queries,
                                        directory: rest.first ?? "/tmp/socialdb-search-profile", withFTS5: withFTS5)
                Glibc.exit(0)
            } catch {
                printError("socialdb-bench search-profile: \(error)")
                Glibc.exit(1)
            }
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

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
            case .social:
                var mixes: [SocialMix] = []
                for name in mixList.split(separator: ",") {
                    guard let mix = SocialMix(rawValue: String(name)) else {
                        printError("socialdb-bench: unknown mix '\(name)' (load, dsb, twitter, burst)")
                        throw ExitCode(2)
                    }
                    mixes.append(mix)
                }
                if !mixes.contains(.load) { mixes.insert(.load, at: 0) }
                var sizes = SocialSizes(scale)
                if let posters {
                    guard posters >= 1 && posters <= 4096 else {
                        printError("socialdb-bench: --posters must be 1 to 4096")
                        throw ExitCode(2)
                    }
                    sizes.burstPosters = posters
                }
                switch graphName {
                case "synthetic": break
                case "reed98": sizes.graphFile = TimelineSuite.reedPath()
                default:
                    printError("socialdb-bench: unknown graph '\(graphName)' (synthetic, reed98)")
                    throw ExitCode(2)
                }
                result = try SocialSuite(scratch: scratch, scale: scale, sizes: sizes, mixes: mixes,
                                         plotDirectory: plotDirectory).run()
                if let plotDirectory { try plotSocial(plotDirectory) }
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
