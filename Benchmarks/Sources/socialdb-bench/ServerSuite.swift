// `socialdb-bench server`: `socialdb serve` over loopback (issue 11) against Redis serving the
// timeline part, with DeathStarBench's social-network mix (`dsb`): 60% home-timeline reads,
// 30% user-timeline reads, 10% posts; reads ask for 10 tweets.
//
// Data, the same for both systems: `users` users, each following `follows` others drawn
// uniformly (a seeded edge list, loaded into socialdb with IMPORT FOLLOWS), then
// `postsPerUser` posts by every user (loaded through the server, pipelined; timed as its own row).
//
// The server is the real binary (`.build/release/socialdb` of the root package, started as a
// child process: `socialdb serve --listen 127.0.0.1:0 --sync off --rate-writes 0`, like the
// Redis peer without persistence; SOCIALDB_BENCH_SYNC=interval|always measures those), so
// everything a client pays is in the figure: parsing, the worker hop, JSON rendering and the
// socket. Clients: `connections` TCP connections over 2 client threads (the machine's cores are
// shared by client and server), each connection pipelining `depth` commands per round trip.
//
// Redis (the peer, `redis-server` without persistence): the timeline part only, as the
// DeathStarBench home-timeline and user-timeline services keep it: a list of ids per user,
// LRANGE 0 9 for a read, and for a post LPUSH+LTRIM into the author's user timeline and into
// the home timeline of the author and of each follower (the fan-out the client does, as DSB's
// write-home-timeline service does). socialdb answers with whole tweets (JSON, ~400 bytes
// each); Redis with ids only. The ratio is ops/s socialdb / Redis.
//
// Latency columns: the round trip of one pipelined batch of `depth` commands on a connection.
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct ServerSuite {
    static let name = "server"
    static let pageSize = 10
    static let capacity = 800
    /// Redis keys `t:<n>`: home timelines at n = user, user timelines at n = user + this.
    static let userTimelineOffset: UInt32 = 100_000_000

    struct Sizes {
        var users: Int
        var follows: Int
        var postsPerUser: Int
        var operations: Int
        var connections: Int
        var depth: Int

        init(_ scale: Scale) {
            switch scale {
            case .small: self = Sizes(users: 5_000, follows: 20, postsPerUser: 4, operations: 100_000, connections: 64, depth: 8)
            case .medium: self = Sizes(users: 20_000, follows: 30, postsPerUser: 8, operations: 1_200_000, connections: 128, depth: 8)
            case .large: self = Sizes(users: 80_000, follows: 40, postsPerUser: 10, operations: 4_800_000, connections: 256, depth: 8)
            }
        }

        init(users: Int, follows: Int, postsPerUser: Int, operations: Int, connections: Int, depth: Int) {
            self.users = users
            self.follows = follows
            self.postsPerUser = postsPerUser
            self.operations = operations
            self.connections = connections
            self.depth = depth
        }
    }

    let scratch: ScratchSpace
    let sizes: Sizes
    let binary: String
    let clientThreads = 2
    /// The server's `--sync`: `off` by default, as the Redis peer runs without persistence;
    /// `SOCIALDB_BENCH_SYNC=interval` or `always` to measure those.
    var sync: String {
        getenv("SOCIALDB_BENCH_SYNC").map { String(cString: $0) } ?? "off"
    }

    /// `.build/release/socialdb` of the root package, found from this file's place in the checkout;
    /// `SOCIALDB_BENCH_SERVER_BINARY=path` runs another build instead (to compare two builds
    /// side by side on a loaded machine).
    static func defaultBinary() -> String {
        if let path = getenv("SOCIALDB_BENCH_SERVER_BINARY") { return String(cString: path) }
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        // .../Benchmarks/Sources/socialdb-bench/ServerSuite.swift -> ...
        if parts.count > 4 { parts.removeLast(4) }
        return parts.joined(separator: "/") + "/.build/release/socialdb"
    }

    func run() throws -> SuiteResult {
        guard access(binary, X_OK) == 0 else {
            return SuiteResult(notes: ["server: \(binary) not found; build it first with `swift build -c release --product socialdb` at the repository root. Suite skipped."])
        }
        var result = SuiteResult()
        let directory = try scratch.freshDirectory("server")
        let graph = DSBGraph(users: sizes.users, follows: sizes.follows, seed: 0x5EED_0011)
        let edges = directory + "/edges.txt"
        try graph.writeEdgeList(to: edges)

        // socialdb serve, as a child process.
        let server = try ServerProcess(binary: binary, directory: directory + "/db", logPath: directory + "/serve.log", sync: sync)
        defer { server.stop() }
        let admin = try LineConnection(port: server.port)
        try admin.expectOK("AUTH admin bench-admin-password")
        try admin.expectOK("IMPORT FOLLOWS \(edges)")
        let load = try measureSocialDBLoad(port: server.port, serverPID: server.pid)
        result.rows.append(load)
        var cacheNotes: [String] = []
        var before = Self.cacheCounters(try admin.answer("STATS"))
        let socialdbReads = try measureMix(system: .socialdb(port: server.port), graph: graph, postsPerTen: 0, serverPID: server.pid)
        result.rows.append(socialdbReads)
        var after = Self.cacheCounters(try admin.answer("STATS"))
        cacheNotes.append("  server caches over `dsb reads only`: " + Self.describeCaches(before, after))
        before = after
        let socialdb = try measureMix(system: .socialdb(port: server.port), graph: graph, postsPerTen: 1, serverPID: server.pid)
        result.rows.append(socialdb)
        after = Self.cacheCounters(try admin.answer("STATS"))
        cacheNotes.append("  server caches over `dsb mix`: " + Self.describeCaches(before, after))

        var peer: ResultRow?
        do {
            let redis = try RedisServer()
            defer { redis.stop() }
            try loadRedis(port: redis.port, graph: graph)
            peer = try measureMix(system: .redis(port: redis.port), graph: graph, postsPerTen: 1, serverPID: redis.pid)
        } catch {
            result.notes.append("redis: skipped (\(error)); run scripts/install-bench-deps")
        }
        if let peer {
            result.rows[result.rows.count - 1].ratioVersusPeer = socialdb.operationsPerSecond / peer.operationsPerSecond
            result.rows.append(peer)
        }
        server.stop()
        try scratch.discard(directory)
        result.notes = [
            "server: socialdb serve (release binary, child process, --sync \(sync), --rate-writes 0) over 127.0.0.1;",
            "  \(sizes.users) users x \(sizes.follows) follows (IMPORT FOLLOWS), \(sizes.postsPerUser) posts each loaded through the server;",
            "  mix dsb: 60% HOME u LIMIT 10, 30% TWEETS u LIMIT 10, 10% POST (authors and readers uniform);",
            "  \(sizes.connections) connections on \(clientThreads) client threads, \(sizes.depth) commands pipelined per round trip;",
            "  p50/p99: round trip of one pipelined batch. socialdb answers whole tweets as JSON, Redis ids only;",
            "  redis: LRANGE 0 9 per read; a post = LPUSH+LTRIM into the author's user list and the author's and each",
            "  follower's home list (client-side fan-out, as DeathStarBench's write-home-timeline service).",
            "  Client and server share the machine's cores: the figures are what 2 cores do for both.",
        ] + cacheNotes + result.notes
        result.targets = [TargetCheck(description: "socialdb serve dsb mix over loopback", measured: socialdb.operationsPerSecond,
                                      threshold: 150_000, isRatio: false)]
        return result
    }

    // MARK: socialdb

    /// The hydration caches' counters in a STATS answer (JSON), by field name.
    static let cacheFields = ["encoded_cache", "tweet_cache", "counts_cache", "author_cache"]

    static func cacheCounters(_ stats: String) -> [String: (hits: Int, misses: Int, entries: Int)] {
        func number(_ field: String) -> Int {
            guard let range = stats.range(of: "\"\(field)\":") else { return 0 }
            return Int(stats[range.upperBound...].prefix(while: { $0.isNumber })) ?? 0
        }
        var counters: [String: (hits: Int, misses: Int, entries: Int)] = [:]
        for field in cacheFields {
            counters[field] = (number(field + "_hits"), number(field + "_misses"),
                               number(field + (field == "author_cache" ? "_authors" : "_entries")))
        }
        return counters
    }

    /// "encoded_cache 97.1% hits of 1,234,567 probes (200,000 entries), ..." over the span
    /// between two STATS answers.
    static func describeCaches(_ before: [String: (hits: Int, misses: Int, entries: Int)],
                               _ after: [String: (hits: Int, misses: Int, entries: Int)]) -> String {
        cacheFields.map { field -> String in
            let b = before[field] ?? (0, 0, 0), a = after[field] ?? (0, 0, 0)
            let hits = a.hits - b.hits, probes = hits + a.misses - b.misses
            let rate = probes > 0 ? Double(hits) * 100 / Double(probes) : 0
            return "\(field) \(Format.grouped(rate, decimals: 1))% hits of \(Format.grouped(Double(probes))) probes (\(Format.grouped(Double(a.entries))) held)"
        }.joined(separator: ", ")
    }

    private func measureSocialDBLoad(port: UInt16, serverPID: pid_t) throws -> ResultRow {
        let posts = sizes.users * sizes.postsPerUser
        let perThread = (posts + clientThreads - 1) / clientThreads
        let connectionsPerThread = max(1, min(sizes.connections, 32) / clientThreads)
        let failure = FirstFailure()
        let gate = StartGate()
        let users = sizes.users
        let depth = sizes.depth
        let workers = (0..<clientThreads).map { index in
            BackgroundThread {
                do {
                    let connections = try (0..<connectionsPerThread).map { _ in try LineConnection(port: port) }
                    for c in connections { try c.expectOK("AUTH admin bench-admin-password") }
                    gate.arriveAndWait()
                    var next = index * perThread
                    let end = min(posts, next + perThread)
                    while next < end {
                        var sent: [Int] = []
                        for c in connections where next < end {
                            let batch = min(depth, end - next)
                            for k in 0..<batch { c.queue(post: UInt32((next + k) % users), serial: next + k) }
                            try c.flush()
                            sent.append(batch)
                            next += batch
                        }
                        for (c, count) in zip(connections, sent) { try c.readResponses(count) }
                    }
                } catch {
                    failure.record("\(error)")
                    gate.arriveAndWait()
                }
            }
        }
        gate.waitForArrivals(clientThreads)
        let serverCPUStart = processCPUMicroseconds(serverPID)
        let start = monotonicNanoseconds()
        gate.open()
        for worker in workers { worker.join() }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let serverCPU = processCPUMicroseconds(serverPID) - serverCPUStart
        if let message = failure.text { throw BenchmarkFailure(description: "socialdb load: \(message)") }
        return ResultRow(suite: Self.name, workload: "load: POST, \(sizes.users) users", system: "socialdb serve",
                         operationsPerSecond: Double(posts) / elapsed, ratioVersusPeer: nil,
                         metrics: [Metric(key: "posts", label: "posts", value: Double(posts)),
                                   Metric(key: "server_cpu_us_per_op", label: "server cpu us/op", value: serverCPU / Double(max(1, posts)), decimals: 1)])
    }

    enum System {
        case socialdb(port: UInt16)
        case redis(port: UInt16)
    }

    /// `postsPerTen` 1: the dsb mix; 0: its reads only (2/3 home, 1/3 user timelines).
    /// `serverPID`: the server process, whose CPU time over the run is reported per operation
    /// (less sensitive to a loaded machine than ops/s).
    private func measureMix(system: System, graph: DSBGraph, postsPerTen: UInt64, serverPID: pid_t) throws -> ResultRow {
        let perThread = sizes.operations / clientThreads
        let connectionsPerThread = max(1, sizes.connections / clientThreads)
        let depth = sizes.depth
        let failure = FirstFailure()
        let gate = StartGate()
        let errors = Atomic<Int>(0)
        let samples = (0..<clientThreads).map { _ in LatencySamples(capacity: perThread / depth + connectionsPerThread + 16) }
        let users = UInt64(sizes.users)
        let progress = ProgressBar("server dsb mix", total: sizes.operations)
        let done = Atomic<Int>(0)
        let workers = (0..<clientThreads).map { index in
            BackgroundThread {
                do {
                    var random = UInt64(0x9E37_79B9_7F4A_7C15) &* UInt64(index + 1)
                    func next() -> UInt64 {
                        random ^= random << 13
                        random ^= random >> 7
                        random ^= random << 17
                        return random
                    }
                    var serial = index << 40
                    switch system {
                    case .socialdb(let port):
                        let connections = try (0..<connectionsPerThread).map { _ in try LineConnection(port: port) }
                        // Posts need an account; reads of public data do not, and a read-only
                        // client would not log in (each AUTH is a deliberately slow scrypt hash,
                        // before the timed part; 128 of them took ~15 s of the suite's wall time).
                        if postsPerTen > 0 {
                            for c in connections { try c.expectOK("AUTH admin bench-admin-password") }
                        }
                        gate.arriveAndWait()
                        var left = perThread
                        var started = [UInt64](repeating: 0, count: connections.count)
                        var sent = [Int](repeating: 0, count: connections.count)
                        while left > 0 {
                            for (i, c) in connections.enumerated() {
                                let batch = min(depth, left)
                                sent[i] = batch
                                if batch == 0 { continue }
                                for _ in 0..<batch {
                                    let r = next()
                                    let user = UInt32(r % users)
                                    switch (r >> 32) % (9 + postsPerTen) {
                                    case 0..<6: c.queue(home: user)
                                    case 6..<9: c.queue(tweets: user)
                                    default:
                                        serial += 1
                                        c.queue(post: user, serial: serial)
                                    }
                                }
                                started[i] = monotonicNanoseconds()
                                try c.flush()
                                left -= batch
                            }
                            for (i, c) in connections.enumerated() where sent[i] > 0 {
                                errors.wrappingAdd(try c.readResponses(sent[i]), ordering: .relaxed)
                                samples[index].record(nanoseconds: monotonicNanoseconds() - started[i])
                            }
                            if index == 0 { progress.update(done: done.wrappingAdd(sent.reduce(0, +) * clientThreads, ordering: .relaxed).newValue) }
                        }
                    case .redis(let port):
                        let connections = try (0..<connectionsPerThread).map { _ in try RedisConnection(port: port) }
                        defer { for c in connections { c.close() } }
                        gate.arriveAndWait()
                        var left = perThread
                        var started = [UInt64](repeating: 0, count: connections.count)
                        var replies = [Int](repeating: 0, count: connections.count)
                        var sent = [Int](repeating: 0, count: connections.count)
                        while left > 0 {
                            for (i, c) in connections.enumerated() {
                                let batch = min(depth, left)
                                sent[i] = batch
                                replies[i] = 0
                                for _ in 0..<batch {
                                    let r = next()
                                    let user = UInt32(r % users)
                                    switch (r >> 32) % (9 + postsPerTen) {
                                    case 0..<6:
                                        c.queueRange(user: user, count: Self.pageSize)
                                        replies[i] += 1
                                    case 6..<9:
                                        c.queueRange(user: user + Self.userTimelineOffset, count: Self.pageSize)
                                        replies[i] += 1
                                    default:
                                        serial += 1
                                        replies[i] += Self.queueRedisPost(c, author: user, id: UInt64(serial), graph: graph)
                                    }
                                }
                                started[i] = monotonicNanoseconds()
                                left -= batch
                            }
                            // RedisConnection sends and reads in one call; send each connection's
                            // pipeline in turn (Redis runs commands one at a time anyway).
                            for (i, c) in connections.enumerated() where sent[i] > 0 {
                                try c.send(expectingReplies: replies[i])
                                samples[index].record(nanoseconds: monotonicNanoseconds() - started[i])
                            }
                            if index == 0 { progress.update(done: done.wrappingAdd(sent.reduce(0, +) * clientThreads, ordering: .relaxed).newValue) }
                        }
                    }
                } catch {
                    failure.record("\(error)")
                    gate.arriveAndWait()
                }
            }
        }
        gate.waitForArrivals(clientThreads)
        let serverCPUStart = processCPUMicroseconds(serverPID)
        let start = monotonicNanoseconds()
        gate.open()
        for worker in workers { worker.join() }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let serverCPU = processCPUMicroseconds(serverPID) - serverCPUStart
        progress.finish()
        let name: String
        switch system {
        case .socialdb: name = "socialdb serve"
        case .redis: name = "redis (timeline lists)"
        }
        if let message = failure.text { throw BenchmarkFailure(description: "\(name): \(message)") }
        let operations = perThread * clientThreads
        let latency = percentiles(of: samples)
        var metrics = [Metric(key: "connections", label: "conns", value: Double(connectionsPerThread * clientThreads)),
                       Metric(key: "pipeline_depth", label: "pipeline", value: Double(depth)),
                       Metric(key: "server_cpu_us_per_op", label: "server cpu us/op", value: serverCPU / Double(max(1, perThread * clientThreads)), decimals: 1)]
        if case .socialdb = system { metrics.append(Metric(key: "errors", label: "errors", value: Double(errors.load(ordering: .relaxed)))) }
        return ResultRow(suite: Self.name, workload: postsPerTen == 0 ? "dsb reads only 67/33, \(Self.pageSize) per read" : "dsb mix 60/30/10, \(Self.pageSize) per read", system: name,
                         operationsPerSecond: Double(operations) / elapsed,
                         p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
                         ratioVersusPeer: nil, metrics: metrics)
    }

    // MARK: Redis

    /// Queues a post's fan-out; returns the replies it will produce.
    static func queueRedisPost(_ c: RedisConnection, author: UInt32, id: UInt64, graph: DSBGraph) -> Int {
        c.queuePushAndTrim(user: author + userTimelineOffset, id: id, capacity: capacity)
        c.queuePushAndTrim(user: author, id: id, capacity: capacity)
        var replies = 4
        for follower in graph.followers(of: author) {
            c.queuePushAndTrim(user: follower, id: id, capacity: capacity)
            replies += 2
        }
        return replies
    }

    private func loadRedis(port: UInt16, graph: DSBGraph) throws {
        let c = try RedisConnection(port: port)
        defer { c.close() }
        c.queueFlushAll()
        try c.send(expectingReplies: 1)
        var id: UInt64 = 1
        for _ in 0..<sizes.postsPerUser {
            for user in 0..<UInt32(sizes.users) {
                let replies = Self.queueRedisPost(c, author: user, id: id, graph: graph)
                id += 1
                try c.send(expectingReplies: replies)
            }
        }
    }
}

/// The benchmark's follow graph: every user follows `follows` distinct others, uniformly drawn.
struct DSBGraph: Sendable {
    let users: Int
    /// followers[u]: who follows u.
    private let followerLists: [[UInt32]]
    private let edges: [(UInt32, UInt32)]

    init(users: Int, follows: Int, seed: UInt64) {
        self.users = users
        var state = seed | 1
        var followers = [[UInt32]](repeating: [], count: users)
        var edges: [(UInt32, UInt32)] = []
        edges.reserveCapacity(users * follows)
        for follower in 0..<users {
            var chosen = Set<UInt32>()
            while chosen.count < min(follows, users - 1) {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                let followee = UInt32(state % UInt64(users))
                if followee != UInt32(follower) { chosen.insert(followee) }
            }
            for followee in chosen.sorted() {
                edges.append((UInt32(follower), followee))
                followers[Int(followee)].append(UInt32(follower))
            }
        }
        followerLists = followers
        self.edges = edges
    }

    func followers(of user: UInt32) -> [UInt32] { followerLists[Int(user)] }

    /// `follower followee` per line: IMPORT FOLLOWS makes user N the handle `uN`.
    func writeEdgeList(to path: String) throws {
        var text = ""
        text.reserveCapacity(edges.count * 12)
        for (a, b) in edges { text += "\(a) \(b)\n" }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw BenchmarkFailure(description: "cannot write \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { throw BenchmarkFailure(description: "write \(path): errno \(errno)") }
            done += n
        }
    }
}

/// The CPU time (user + system) process `pid` has used, from `/proc/<pid>/stat` (clock ticks,
/// 10 ms each on Linux), in microseconds; 0 when it cannot be read.
func processCPUMicroseconds(_ pid: pid_t) -> Double {
    let fd = open("/proc/\(pid)/stat", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
    guard n > 0 else { return 0 }
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    guard let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")) else { return 0 }
    let fields = buffer[(close + 2)..<n].split(separator: UInt8(ascii: " "))
    // Fields 14 (utime) and 15 (stime) of the line are the 12th and 13th after the name.
    guard fields.count > 12, let user = Double(String(decoding: fields[11], as: UTF8.self)),
          let system = Double(String(decoding: fields[12], as: UTF8.self)) else { return 0 }
    return (user + system) * 1_000_000 / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// `socialdb serve` as a child process on a free port of 127.0.0.1.
final class ServerProcess {
    let pid: pid_t
    let port: UInt16
    private var stopped = false

    init(binary: String, directory: String, logPath: String, sync: String) throws {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw BenchmarkFailure(description: "pipe: errno \(errno)") }
        let arguments = [binary, "serve", "--data", directory, "--listen", "127.0.0.1:0", "--sync", sync,
                         "--rate-writes", "0", "--max-connections", "4096", "--log-level", "warning"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("SOCIALDB_ADMIN_PASSWORD=bench-admin-password")]
        var e = environ
        while let entry = e.pointee { environment.append(strdup(entry)); e += 1 }
        environment.append(nil)
        defer { for p in environment { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var child: pid_t = 0
        let rc = posix_spawn(&child, binary, &actions, nil, argv, environment)
        close(pipeEnds[1])
        guard rc == 0 else {
            close(pipeEnds[0])
            throw BenchmarkFailure(description: "cannot start \(binary): errno \(rc)")
        }
        pid = child
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(pipeEnds[0], &byte, 1) == 1 && byte != 10 { line.append(byte) }
        close(pipeEnds[0])
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening "), let port = text.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
            throw BenchmarkFailure(description: "socialdb serve did not start (see \(logPath)): '\(text)'")
        }
        self.port = port
    }

    /// SIGTERM (graceful: checkpoint and close), then reaps it.
    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// A connection to `socialdb serve` (JSON lines). Not thread-safe: one thread owns it.
final class LineConnection {
    let fd: Int32
    private var output: [UInt8] = []
    private var input = [UInt8](repeating: 0, count: 1 << 20)
    private var inputStart = 0
    private var inputEnd = 0

    init(port: UInt16) throws {
        fd = try connectLoopback(port: port, peer: "socialdb")
        output.reserveCapacity(64 * 1024)
    }

    deinit { Glibc.close(fd) }

    private func appendDecimal(_ value: UInt64) {
        if value >= 10 { appendDecimal(value / 10) }
        output.append(UInt8(48 + value % 10))
    }

    private func append(_ text: StaticString) { text.withUTF8Buffer { output.append(contentsOf: $0) } }

    func queue(home user: UInt32) {
        append("HOME u"); appendDecimal(UInt64(user)); append(" LIMIT 10\n")
    }

    func queue(tweets user: UInt32) {
        append("TWEETS u"); appendDecimal(UInt64(user)); append(" LIMIT 10\n")
    }

    func queue(post user: UInt32, serial: Int) {
        append("POST u"); appendDecimal(UInt64(user)); append(" \"benchmark post number "); appendDecimal(UInt64(serial))
        append(" #bench\"\n")
    }

    func flush() throws {
        var sent = 0
        while sent < output.count {
            let n = output.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 { if errno == EINTR { continue }; throw BenchmarkFailure(description: "socialdb write: errno \(errno)") }
            sent += n
        }
        output.removeAll(keepingCapacity: true)
    }

    /// Reads `count` response lines; returns how many were errors (`{"ok":false`).
    @discardableResult
    func readResponses(_ count: Int) throws -> Int {
        var errors = 0
        var left = count
        var atLineStart = true
        while left > 0 {
            if inputStart == inputEnd {
                inputStart = 0
                let n = input.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 { if errno == EINTR { inputEnd = 0; continue }; throw BenchmarkFailure(description: "socialdb read: errno \(errno)") }
                if n == 0 { throw BenchmarkFailure(description: "socialdb closed the connection") }
                inputEnd = n
            }
            let found: Int? = input.withUnsafeBytes { raw in
                if atLineStart && inputEnd - inputStart >= 7 && raw[inputStart + 6] == UInt8(ascii: "f") { errors += 1 }
                guard let p = memchr(raw.baseAddress! + inputStart, 10, inputEnd - inputStart) else { return nil }
                return raw.baseAddress!.distance(to: UnsafeRawPointer(p))
            }
            if let newline = found {
                inputStart = newline + 1
                left -= 1
                atLineStart = true
            } else {
                inputStart = inputEnd
                atLineStart = false
            }
        }
        return errors
    }

    /// Sends one command and throws unless it answers `{"ok":true`.
    func expectOK(_ command: String) throws {
        let text = try answer(command)
        guard text.hasPrefix("{\"ok\":true") else { throw BenchmarkFailure(description: "'\(command)' answered \(text.prefix(300))") }
    }

    /// Sends one command and returns its whole answer line.
    func answer(_ command: String) throws -> String {
        output.append(contentsOf: command.utf8)
        output.append(10)
        try flush()
        var line: [UInt8] = []
        while true {
            if inputStart == inputEnd {
                inputStart = 0
                let n = input.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n <= 0 { throw BenchmarkFailure(description: "socialdb closed the connection after '\(command)'") }
                inputEnd = n
            }
            let b = input[inputStart]
            inputStart += 1
            if b == 10 { break }
            line.append(b)
        }
        return String(decoding: line, as: UTF8.self)
    }
}
