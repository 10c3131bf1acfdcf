// Suite `social` (issue 9): the whole social workload through socialdb's `Social` API and, on the
// same generated data in the same run, through SQLite; each system in a child process of its
// own (this binary re-executed with the hidden subcommand `social-child`), so that the peak RSS
// the kernel reports for the child (wait4's ru_maxrss) is that system's alone.
import CSQLite
import Foundation
import Social
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

enum SocialMix: String, CaseIterable, Codable, Sendable {
    case load, dsb, twitter, burst

    /// What a mix does, for the notes under the table.
    var explanation: String {
        switch self {
        case .load: return "load: bulk import of the users and follow graph, then of every tweet (socialdb IMPORT FOLLOWS + IMPORT TWEETS of the JSON lines; SQLite one transaction each, indexes built after)"
        case .dsb: return "dsb: DeathStarBench's mix, 60% home-timeline reads, 30% user-timeline reads, 10% posts; a read returns 10 tweets from a random offset 0-100"
        case .twitter: return "twitter: 91.0% home reads, 7.0% searches, 0.8% posts (with fan-out), 1.0% likes, 0.2% follows: 98:2 = 49:1 read:write"
        case .burst: return "burst: posts only, durable (socialdb sync always, group commit; SQLite synchronous=FULL), many concurrent posters, with fan-out"
        }
    }
}

/// One measured row of a child.
struct ChildRow: Codable, Sendable {
    var mix: String
    var clients: Int
    var operations: Int
    var seconds: Double
    var opsPerSecond: Double
    var p50: Double
    var p99: Double
    var p999: Double
    /// (quantile, microseconds) for the latency CDF plot.
    var cdf: [[Double]]
    var itemsPerRead: Double
    var errors: Int
    var firstError: String?
    /// socialdb's durable rows: the log's fdatasyncs during the row, and records per fdatasync
    /// (group commit at work).
    var fdatasyncs: Int? = nil
    var recordsPerSync: Double? = nil
    /// The child's CPU time (every thread: clients, log writer, flushes, compactions) over the
    /// timed phase, per operation: steadier than ops/s when other work shares the machine.
    var cpuMicrosecondsPerOperation: Double? = nil
    /// The client threads' own CPU time per operation (the calls themselves, without the
    /// background threads).
    var clientCPUMicrosecondsPerOperation: Double? = nil
}

/// What a child measured, written as JSON to the path the parent gave.
struct ChildReport: Codable, Sendable {
    var system: String
    var users: Int
    var follows: Int
    var tweets: Int
    var loadGraphSeconds: Double
    var loadTweetsSeconds: Double
    var rssStart: Int
    var rssAfterGraph: Int
    var rssAfterTweets: Int
    var diskAfterGraph: Int
    var diskAfterTweets: Int
    var diskAtEnd: Int
    var rows: [ChildRow]
    var notes: [String]
    /// Set by the parent from wait4.
    var peakRSS: Int = 0
}

enum SocialChild {
    static let command = "social-child"

    /// `social-child <system> <data dir> <work dir> <result file> <users> <seconds> <posters> <mixes> <clients>`
    static func main(_ arguments: [String]) -> Int32 {
        guard arguments.count == 9, let users = Int(arguments[4]), let secondsPerRow = Double(arguments[5]),
              let posters = Int(arguments[6]) else {
            printError("socialdb-bench social-child: bad arguments \(arguments)")
            return 2
        }
        let mixes = arguments[7].split(separator: ",").compactMap { SocialMix(rawValue: String($0)) }
        let clients = arguments[8].split(separator: ",").compactMap { Int($0) }
        do {
            let report = try run(system: arguments[0], data: arguments[1], work: arguments[2], users: users,
                                 seconds: secondsPerRow, posters: posters, mixes: mixes, clients: clients)
            let encoder = JSONEncoder()
            try encoder.encode(report).write(to: URL(fileURLWithPath: arguments[3]))
            return 0
        } catch {
            printError("socialdb-bench social-child \(arguments[0]): \(error)")
            return 1
        }
    }

    static func run(system: String, data: String, work: String, users: Int, seconds: Double, posters: Int,
                    mixes: [SocialMix], clients: [Int]) throws -> ChildReport {
        var report = ChildReport(system: system, users: users, follows: 0, tweets: 0, loadGraphSeconds: 0, loadTweetsSeconds: 0,
                                 rssStart: currentRSS(), rssAfterGraph: 0, rssAfterTweets: 0, diskAfterGraph: 0,
                                 diskAfterTweets: 0, diskAtEnd: 0, rows: [], notes: [])
        let handles = Handles(users: users)
        let text = SocialText(users: users)
        report.rssStart = heldRSS()
        var t0 = monotonicNanoseconds()
        switch system {
        case "socialdb":
            var options = SocialOptions()
            options.sync = .interval(milliseconds: 100)
            // For A/B runs of the hydration cache: SOCIALDB_BENCH_TWEET_CACHE=<bytes>.
            if let env = getenv("SOCIALDB_BENCH_TWEET_CACHE"), let bytes = Int(String(cString: env)) {
                options.tweetCacheBytes = bytes
            }
            var db = try SocialDB.open(at: work, options: options)
            let graph = try db.importFollows(path: data + "/follows.txt")
            // Settled (and timed) before the footprint is read, as SQLite's load ends with
            // wal_checkpoint(TRUNCATE): the log keeps nothing the structures already hold.
            // SOCIALDB_BENCH_NO_CHECKPOINT=1 leaves it out, for A/B runs.
            let settle = getenv("SOCIALDB_BENCH_NO_CHECKPOINT") == nil
            if settle { try db.checkpoint() }
            report.follows = graph.graphEdges
            report.loadGraphSeconds = since(t0)
            report.rssAfterGraph = heldRSS()
            report.diskAfterGraph = diskBytes(work)
            t0 = monotonicNanoseconds()
            var file = 0
            var bad = 0
            while access(data + "/tweets-\(file).jsonl", R_OK) == 0 {
                let r = try db.importTweets(path: data + "/tweets-\(file).jsonl")
                report.tweets += r.tweetsImported + r.retweetsImported + r.nestedImported
                bad += r.badLines
                file += 1
            }
            if settle { try db.checkpoint() }
            report.loadTweetsSeconds = since(t0)
            if bad > 0 { report.notes.append("socialdb import: \(bad) bad lines") }
            report.rssAfterTweets = heldRSS()
            report.diskAfterTweets = diskBytes(work)
            let ids = try SocialWorld.readIDs(data)
            let warmers = (0..<(clients.last ?? 1)).map { _ in SocialDBSession(db: db, handles: handles) }
            report.rows.append(warmUp(sessions: warmers, users: users, seconds: 4 * seconds))
            for mix in mixes where mix == .dsb || mix == .twitter {
                for n in clients {
                    let sessions = (0..<n).map { _ in SocialDBSession(db: db, handles: handles) }
                    let before = try db.statistics()
                    report.rows.append(measure(mix: mix, sessions: sessions, seconds: seconds, users: users, ids: ids, text: text))
                    report.notes.append("caches over \(mix.rawValue), \(n) client\(n == 1 ? "" : "s"): " + describeCaches(before, try db.statistics()))
                }
            }
            if mixes.contains(.burst) {
                try db.close()
                var durable = options
                durable.sync = .always
                db = try SocialDB.open(at: work, options: durable)
                let sessions = (0..<posters).map { _ in SocialDBSession(db: db, handles: handles) }
                let before = db.engine.log.statistics
                var row = measure(mix: .burst, sessions: sessions, seconds: seconds, users: users, ids: ids, text: text)
                let after = db.engine.log.statistics
                let syncs = Int(after.fdatasyncs - before.fdatasyncs)
                row.fdatasyncs = syncs
                row.recordsPerSync = syncs > 0 ? Double(after.nextLSN - before.nextLSN) / Double(syncs) : nil
                report.rows.append(row)
            }
            try db.close()
        case "sqlite":
            let path = work + "/social.sqlite"
            let loader = try SocialSQLite(path: path, durable: false)
            try SocialSQLite.createSchema(loader)
            report.follows = try loader.loadGraph(users: users, followsPath: data + "/follows.txt")
            report.loadGraphSeconds = since(t0)
            report.rssAfterGraph = heldRSS()
            report.diskAfterGraph = diskBytes(work)
            t0 = monotonicNanoseconds()
            report.tweets = try loader.loadTweets(path: data + "/tweets.tsv")
            report.loadTweetsSeconds = since(t0)
            report.rssAfterTweets = heldRSS()
            report.diskAfterTweets = diskBytes(work)
            let ids = try SocialWorld.readIDs(data)
            let warmers = try (0..<(clients.last ?? 1)).map { _ in try SocialSQLite(path: path, durable: false) }
            report.rows.append(warmUp(sessions: warmers, users: users, seconds: 4 * seconds))
            for w in warmers { w.close() }
            for mix in mixes where mix == .dsb || mix == .twitter {
                for n in clients {
                    let sessions = try (0..<n).map { _ in try SocialSQLite(path: path, durable: false) }
                    report.rows.append(measure(mix: mix, sessions: sessions, seconds: seconds, users: users, ids: ids, text: text))
                    for s in sessions { s.close() }
                }
            }
            if mixes.contains(.burst) {
                let sessions = try (0..<posters).map { _ in try SocialSQLite(path: path, durable: true) }
                report.rows.append(measure(mix: .burst, sessions: sessions, seconds: seconds, users: users, ids: ids, text: text))
                for s in sessions { s.close() }
            }
            try loader.exec("PRAGMA wal_checkpoint(TRUNCATE)")
            loader.close()
        default:
            throw BenchmarkFailure(description: "unknown system \(system)")
        }
        report.diskAtEnd = diskBytes(work)
        return report
    }

    /// Reads every user's home timeline once (one thread per session, users split between
    /// them): socialdb builds each ring on its first read; SQLite warms its page cache.
    static func warmUp<S: SocialSession & Sendable>(sessions: [S], users: Int, seconds: Double) -> ChildRow {
        let duration = UInt64(seconds * 1e9)
        let done = Atomic<Int>(0)
        let gate = StartGate()
        let failure = FirstFailure()
        let threads = sessions.count
        let histograms = (0..<threads).map { _ in LatencyHistogram() }
        let totals = Mutex<(items: Int, errors: Int)>((0, 0))
        let workers = (0..<threads).map { index in
            BackgroundThread {
                let session = sessions[index]
                let histogram = histograms[index]
                var items = 0, errors = 0
                gate.arriveAndWait()
                let deadline = monotonicNanoseconds() + duration
                var user = index
                while user < users {
                    let start = monotonicNanoseconds()
                    if start >= deadline { break }
                    do { items += try session.home(user: user, offset: 0) } catch { errors += 1; failure.record("\(error)") }
                    histogram.record(nanoseconds: monotonicNanoseconds() - start)
                    user += threads
                    done.wrappingAdd(1, ordering: .relaxed)
                }
                totals.withLock { $0.items += items; $0.errors += errors }
            }
        }
        let (elapsed, merged, cpu) = runTimed(workers, gate: gate, histograms: histograms)
        let t = totals.withLock { $0 }
        let reads = done.load(ordering: .relaxed)
        return ChildRow(mix: "first home read", clients: threads, operations: reads, seconds: elapsed,
                        opsPerSecond: Double(reads) / elapsed, p50: merged.quantileMicroseconds(0.5),
                        p99: merged.quantileMicroseconds(0.99), p999: merged.quantileMicroseconds(0.999), cdf: [],
                        itemsPerRead: Double(t.items) / Double(max(1, reads)), errors: t.errors, firstError: failure.text,
                        cpuMicrosecondsPerOperation: cpu * 1e6 / Double(max(1, reads)))
    }

    /// The hydration caches' hit rates between two `statistics()` readings.
    static func describeCaches(_ before: SocialStatistics, _ after: SocialStatistics) -> String {
        [("tweets", before.tweetCache, after.tweetCache), ("counts", before.countsCache, after.countsCache)].map { name, b, a in
            let hits = a.hits - b.hits, probes = hits + a.misses - b.misses
            let rate = probes > 0 ? Double(hits) * 100 / Double(probes) : 0
            return "\(name) \(Format.grouped(rate, decimals: 1))% hits of \(Format.grouped(Double(probes))) probes (\(Format.grouped(Double(a.entries))) held, \(Format.grouped(Double(a.bytes) / 1e6, decimals: 1)) MB)"
        }.joined(separator: ", ")
    }

    /// Runs `mix` on one thread per session for `seconds`; every operation's latency goes into
    /// the thread's histogram.
    static func measure<S: SocialSession & Sendable>(mix: SocialMix, sessions: [S], seconds: Double, users: Int,
                                                     ids: [UInt64], text: SocialText) -> ChildRow {
        let gate = StartGate()
        let failure = FirstFailure()
        let threads = sessions.count
        let histograms = (0..<threads).map { _ in LatencyHistogram() }
        let totals = Mutex<(ops: Int, reads: Int, items: Int, errors: Int, clientCPU: UInt64)>((0, 0, 0, 0, 0))
        let duration = UInt64(seconds * 1e9)
        let recent = min(ids.count, 100_000)
        let workers = (0..<threads).map { index in
            BackgroundThread {
                let session = sessions[index]
                let histogram = histograms[index]
                var random = BenchRandom(seed: 0xB0B0 &+ UInt64(index) &* 7919 &+ UInt64(mix.rawValue.utf8.count))
                // Texts and search terms made before the clock starts.
                let texts = (0..<256).map { _ in text.text(&random) }
                let terms = (0..<256).map { i in i % 10 < 7 ? text.word(&random) : "#" + text.tag(&random) }
                var ops = 0, reads = 0, items = 0, errors = 0
                gate.arriveAndWait()
                let cpuStart = threadCPUNanoseconds()
                let deadline = monotonicNanoseconds() + duration
                while true {
                    let start = monotonicNanoseconds()
                    if start >= deadline { break }
                    let roll = random.below(1000)
                    let user = random.below(users)
                    do {
                        switch mix {
                        case .dsb:
                            if roll < 600 {
                                items += try session.home(user: user, offset: random.below(101)); reads += 1
                            } else if roll < 900 {
                                items += try session.userTimeline(user: user, offset: random.below(101)); reads += 1
                            } else {
                                try session.post(user: user, text: texts[ops & 255])
                            }
                        case .twitter:
                            if roll < 910 {
                                items += try session.home(user: user, offset: 0); reads += 1
                            } else if roll < 980 {
                                items += try session.search(terms[ops & 255]); reads += 1
                            } else if roll < 988 {
                                try session.post(user: user, text: texts[ops & 255])
                            } else if roll < 998 {
                                try session.like(user: user, tweet: ids[ids.count - 1 - random.below(recent)])
                            } else {
                                let other = text.popularUser(&random)
                                if other != user { try session.follow(user: user, other: other) }
                            }
                        case .burst, .load:
                            try session.post(user: user, text: texts[ops & 255])
                        }
                    } catch {
                        errors += 1
                        failure.record("\(error)")
                    }
                    histogram.record(nanoseconds: monotonicNanoseconds() - start)
                    ops += 1
                }
                let clientCPU = threadCPUNanoseconds() - cpuStart
                totals.withLock { $0.ops += ops; $0.reads += reads; $0.items += items; $0.errors += errors; $0.clientCPU += clientCPU }
            }
        }
        let (elapsed, merged, cpu) = runTimed(workers, gate: gate, histograms: histograms)
        let t = totals.withLock { $0 }
        var cdf: [[Double]] = []
        for q in stride(from: 0.0, to: 0.95, by: 0.025).map({ $0 }) + [0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0] {
            cdf.append([q, merged.quantileMicroseconds(q)])
        }
        return ChildRow(mix: mix.rawValue, clients: threads, operations: t.ops, seconds: elapsed,
                        opsPerSecond: Double(t.ops) / elapsed, p50: merged.quantileMicroseconds(0.5),
                        p99: merged.quantileMicroseconds(0.99), p999: merged.quantileMicroseconds(0.999), cdf: cdf,
                        itemsPerRead: t.reads > 0 ? Double(t.items) / Double(t.reads) : 0, errors: t.errors,
                        firstError: failure.text, cpuMicrosecondsPerOperation: cpu * 1e6 / Double(max(1, t.ops)),
                        clientCPUMicrosecondsPerOperation: Double(t.clientCPU) / 1e3 / Double(max(1, t.ops)))
    }

    /// Opens `gate` once every worker waits at it and joins them: the seconds from the opening to
    /// the last join, the workers' latency histograms merged,
    /// and the process's CPU seconds (all threads) over the same span.
    static func runTimed(_ workers: [BackgroundThread], gate: StartGate, histograms: [LatencyHistogram]) -> (Double, LatencyHistogram, Double) {
        gate.waitForArrivals(workers.count)
        let cpuStart = processCPUNanoseconds()
        let start = monotonicNanoseconds()
        gate.open()
        for worker in workers { worker.join() }
        let elapsed = since(start)
        let cpu = Double(processCPUNanoseconds() - cpuStart) / 1e9
        let merged = LatencyHistogram()
        for h in histograms { merged.add(h) }
        return (elapsed, merged, cpu)
    }

    /// Resident set size now (bytes), from /proc/self/statm.
    static func currentRSS() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let parts = text.split(separator: " ")
        guard parts.count >= 2, let pages = Int(parts[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Resident memory the process holds: RSS after `malloc_trim(0)` hands the heap's free
    /// pages back (the same for both systems; glibc otherwise keeps what an import freed).
    static func heldRSS() -> Int {
        // glibc's malloc_trim (malloc.h is not part of the Glibc module).
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            typealias Trim = @convention(c) (Int) -> Int32
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        return currentRSS()
    }

    static func since(_ start: UInt64) -> Double { Double(monotonicNanoseconds() - start) / 1e9 }

    /// Bytes the files under `path` occupy (allocated blocks, as du counts them).
    static func diskBytes(_ path: String) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if (info.st_mode & S_IFMT) != S_IFDIR { return Int(info.st_blocks) * 512 }
        var total = 0
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            total += diskBytes(path + "/" + name)
        }
        return total
    }
}

/// The parent: generates the data, runs a child per system, prints the table and the targets,
/// and writes the plot data.
struct SocialSuite {
    static let name = "social"
    let scratch: ScratchSpace
    let scale: Scale
    let sizes: SocialSizes
    let mixes: [SocialMix]
    let plotDirectory: String?

    func run() throws -> SuiteResult {
        var result = SuiteResult()
        var sizes = self.sizes
        if let file = sizes.graphFile {
            // The users are the graph's (socfb-Reed98: 962); tweets per user stay the scale's.
            sizes.users = try BenchGraph.load(edgesFile: file).users
            result.notes.append("graph: \(file), both directions of every edge (DeathStarBench's socfb-Reed98 setup), \(sizes.tweetsPerUser) tweets per user")
        }
        let data = try scratch.freshDirectory("social-data")
        print("generating \(sizes.users) users, \(sizes.tweets) tweets (seed \(SocialWorld.seed))...")
        let world = try SocialWorld.generate(sizes: sizes, into: data)
        print(String(format: "generated in %.1f s: %d follows (mean %.1f followees, max %d followers, %d accounts >= 10,000), %d tweets: %d originals, %d replies, %d retweets, mean text %.0f bytes",
                     world.generateSeconds, world.follows, Double(world.follows) / Double(world.users), world.maxFollowers,
                     world.celebrities, world.tweets, world.originals, world.replies, world.retweets, world.meanTextBytes))
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let clients = cores > 1 ? [1, cores] : [1]
        var reports: [String: ChildReport] = [:]
        for system in ["socialdb", "sqlite"] {
            let work = try scratch.freshDirectory("social-\(system)")
            let resultPath = scratch.runDirectory + "/social-\(system).json"
            print("running \(system) in a child process...")
            let (status, peak) = try spawnChild([system, data, work, resultPath, String(sizes.users), String(sizes.seconds),
                                                 String(sizes.burstPosters), mixes.map(\.rawValue).joined(separator: ","),
                                                 clients.map(String.init).joined(separator: ",")])
            guard status == 0 else { throw BenchmarkFailure(description: "the \(system) child failed (status \(status))") }
            var report = try JSONDecoder().decode(ChildReport.self, from: Data(contentsOf: URL(fileURLWithPath: resultPath)))
            report.peakRSS = peak
            reports[system] = report
            try scratch.discard(work)
        }
        guard let s = reports["socialdb"], let q = reports["sqlite"] else { return result }

        // Load and footprint.
        if mixes.contains(.load) {
            let sOps = Double(s.follows + s.tweets) / (s.loadGraphSeconds + s.loadTweetsSeconds)
            let qOps = Double(q.follows + q.tweets) / (q.loadGraphSeconds + q.loadTweetsSeconds)
            func loadMetrics(_ r: ChildReport) -> [Metric] {
                [Metric(key: "follows_per_sec", label: "follows/s", value: Double(r.follows) / r.loadGraphSeconds),
                 Metric(key: "tweets_per_sec", label: "tweets/s", value: Double(r.tweets) / r.loadTweetsSeconds),
                 Metric(key: "seconds", label: "s", value: r.loadGraphSeconds + r.loadTweetsSeconds, decimals: 1)]
            }
            result.rows.append(ResultRow(suite: Self.name, workload: "load (follows + tweets)", system: "socialdb", operationsPerSecond: sOps,
                                         ratioVersusPeer: sOps / qOps, metrics: loadMetrics(s)))
            result.rows.append(ResultRow(suite: Self.name, workload: "load (follows + tweets)", system: "sqlite", operationsPerSecond: qOps,
                                         ratioVersusPeer: nil, metrics: loadMetrics(q)))
        }
        func footprint(_ r: ChildReport) -> [Metric] {
            [Metric(key: "peak_rss_mb", label: "peak RSS MB", value: Double(r.peakRSS) / 1e6, decimals: 1),
             Metric(key: "rss_per_follow", label: "RSS B/follow", value: Double(r.rssAfterGraph - r.rssStart) / Double(r.follows), decimals: 1),
             Metric(key: "rss_per_tweet", label: "RSS B/tweet", value: Double(r.rssAfterTweets - r.rssAfterGraph) / Double(r.tweets), decimals: 1),
             Metric(key: "disk_per_user", label: "disk B/user", value: Double(r.diskAfterTweets) / Double(r.users), decimals: 0),
             Metric(key: "disk_per_follow", label: "disk B/follow", value: Double(r.diskAfterGraph) / Double(r.follows), decimals: 1),
             Metric(key: "disk_per_tweet", label: "disk B/tweet", value: Double(r.diskAfterTweets - r.diskAfterGraph) / Double(r.tweets), decimals: 1),
             Metric(key: "disk_end_mb", label: "disk at end MB", value: Double(r.diskAtEnd) / 1e6, decimals: 1)]
        }
        result.rows.append(ResultRow(suite: Self.name, workload: "footprint after load", system: "socialdb", operationsPerSecond: .nan,
                                     ratioVersusPeer: nil, metrics: footprint(s)))
        result.rows.append(ResultRow(suite: Self.name, workload: "footprint after load", system: "sqlite", operationsPerSecond: .nan,
                                     ratioVersusPeer: nil, metrics: footprint(q)))

        for row in s.rows {
            guard let peer = q.rows.first(where: { $0.mix == row.mix && $0.clients == row.clients }) else { continue }
            let label = "\(row.mix), \(row.clients) client\(row.clients == 1 ? "" : "s")"
            for (system, r, ratio) in [("socialdb", row, row.opsPerSecond / peer.opsPerSecond), ("sqlite", peer, Double.nan)] {
                var metrics = [Metric(key: "p999_us", label: "p999 us", value: r.p999, decimals: 1)]
                if r.itemsPerRead > 0 { metrics.append(Metric(key: "items_per_read", label: "items/read", value: r.itemsPerRead, decimals: 1)) }
                if let syncs = r.fdatasyncs { metrics.append(Metric(key: "fdatasyncs", label: "fdatasyncs", value: Double(syncs), decimals: 0)) }
                if let perSync = r.recordsPerSync { metrics.append(Metric(key: "records_per_fdatasync", label: "records/fdatasync", value: perSync, decimals: 1)) }
                if let cpu = r.cpuMicrosecondsPerOperation { metrics.append(Metric(key: "cpu_us_per_op", label: "cpu us/op", value: cpu, decimals: 1)) }
                if let cpu = r.clientCPUMicrosecondsPerOperation {
                    metrics.append(Metric(key: "client_cpu_us_per_op", label: "client cpu us/op", value: cpu, decimals: 1))
                }
                if r.errors > 0 { metrics.append(Metric(key: "errors", label: "ERRORS", value: Double(r.errors))) }
                result.rows.append(ResultRow(suite: Self.name, workload: label, system: system, operationsPerSecond: r.opsPerSecond,
                                             p50Microseconds: r.p50, p99Microseconds: r.p99,
                                             ratioVersusPeer: ratio.isNaN ? nil : ratio, metrics: metrics))
                if let first = r.firstError { result.notes.append("\(system) \(label): \(r.errors) errors, first: \(first)") }
            }
        }

        // Targets (issue 9; judged at medium, computed at every scale).
        let most = clients.last ?? 1
        if let dsb = s.rows.first(where: { $0.mix == "dsb" && $0.clients == most }),
           let peer = q.rows.first(where: { $0.mix == "dsb" && $0.clients == most }) {
            result.targets.append(TargetCheck(description: "dsb, \(most) clients, socialdb ops/s", measured: dsb.opsPerSecond, threshold: 500_000, isRatio: false))
            result.targets.append(TargetCheck(description: "dsb, \(most) clients, socialdb / SQLite", measured: dsb.opsPerSecond / peer.opsPerSecond, threshold: 50, isRatio: true))
        }
        if let t = s.rows.first(where: { $0.mix == "twitter" && $0.clients == most }),
           let peer = q.rows.first(where: { $0.mix == "twitter" && $0.clients == most }) {
            result.targets.append(TargetCheck(description: "twitter, \(most) clients, socialdb / SQLite", measured: t.opsPerSecond / peer.opsPerSecond, threshold: 50, isRatio: true))
        }
        if let b = s.rows.first(where: { $0.mix == "burst" }) {
            result.targets.append(TargetCheck(description: "durable burst posts with fan-out, socialdb", measured: b.opsPerSecond, threshold: 143_199, isRatio: false))
        }
        let f = footprint(s), g = footprint(q)
        for key in ["rss_per_follow", "rss_per_tweet", "disk_per_follow", "disk_per_tweet"] {
            let mine = f.first { $0.key == key }!.value, theirs = g.first { $0.key == key }!.value
            result.targets.append(TargetCheck(description: "\(key.replacingOccurrences(of: "_", with: " ")), socialdb / SQLite", measured: mine / theirs,
                                              threshold: 1, isRatio: true, atMost: true))
        }
        result.notes.append("first home read: users' home timelines read once, in user order, for 4x the row time (all users if time allows) before the mixes: socialdb builds each ring on its first read after a bulk import, SQLite warms its cache. Users not reached are still cold in the mixes.")
        result.notes += mixes.map(\.explanation)
        result.notes.append("each system ran in its own child process; peak RSS = the child's ru_maxrss (wait4), generator excluded.")
        result.notes.append("socialdb: the Social API (SocialDB), sync interval:100 for load/dsb/twitter, always for burst; SQLite \(sqliteVersion()): WAL, synchronous NORMAL (FULL for burst), cache 64 MiB per connection, one connection per client.")
        result.notes.append("RSS B/follow and B/tweet: growth of the child's resident memory over the graph load and over the tweet load, each read after malloc_trim(0) (memory freed by the load is not counted, peak RSS includes it); disk: allocated bytes of the directory after each load phase, each system settled first (socialdb checkpoint(): memtable written, graph merged, timelines and search checkpointed, log segments released; SQLite's load ends with wal_checkpoint(TRUNCATE)).")
        for r in [s, q] { result.notes += r.notes.map { "\(r.system): \($0)" } }

        if let plotDirectory {
            try writePlotData(world: world, reports: [s, q], to: plotDirectory)
        }
        return result
    }

    func sqliteVersion() -> String { String(cString: sqlite3_libversion()) }

    /// Re-executes this binary as `social-child`; returns its exit status and peak RSS in bytes.
    func spawnChild(_ arguments: [String]) throws -> (Int32, Int) {
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, 4095)
        guard n > 0 else { throw BenchmarkFailure(description: "cannot find /proc/self/exe") }
        let path = String(decoding: exe.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let argv = ([path, SocialChild.command] + arguments).map { strdup($0) } + [nil]
        let env = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv { free(p) }; for p in env { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, nil, nil, argv, env)
        guard rc == 0 else { throw BenchmarkFailure(description: "posix_spawn failed: \(rc)") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchmarkFailure(description: "wait4 failed: \(errno)") }
        }
        let exited = (status & 0x7F) == 0
        return (exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), Int(usage.ru_maxrss) * 1024)
    }

    /// `DIR/social-<scale>.json`: the world, each system's report (rows with latency CDFs,
    /// load, footprint), for scripts/plot-social.py.
    func writePlotData(world: SocialWorld.Summary, reports: [ChildReport], to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        struct PlotFile: Encodable {
            var scale: String
            var users: Int
            var follows: Int
            var tweets: Int
            var cores: Int
            var uptime: String
            var reports: [ChildReport]
        }
        let file = PlotFile(scale: sizes.plotName(scale), users: world.users, follows: world.follows, tweets: world.tweets,
                            cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), uptime: Self.uptime(), reports: reports)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = directory + "/social-\(sizes.plotName(scale)).json"
        try encoder.encode(file).write(to: URL(fileURLWithPath: path))
        print("wrote \(path)")
    }

    static func uptime() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return "load average " + text.split(separator: " ").prefix(3).joined(separator: ", ")
    }
}

/// Runs scripts/plot-social.py (matplotlib) on every `social-*.json` in `directory`; the script
/// is found from this source file's place in the checkout.
func plotSocial(_ directory: String) throws {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4) // Benchmarks/Sources/socialdb-bench/SocialSuite.swift
    let script = parts.joined(separator: "/") + "/scripts/plot-social.py"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, directory]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchmarkFailure(description: "\(script) failed (status \(process.terminationStatus)); is matplotlib installed (pip install matplotlib)?")
    }
}
