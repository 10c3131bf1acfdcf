// `socialdb-bench timeline`: home timelines (issue 4) against Redis and SQLite.
//
// Data, the same for every system: a seeded synthetic power-law follow graph (100,000 users at
// `small`, 300,000 at `medium`, 1,000,000 at `large`, mean 35 followees, a few accounts above
// the 10,000-follower threshold) with posts by uniformly drawn authors; and socfb-Reed98 (962
// users, each undirected edge a follow both ways).
//
// Rows per graph:
// - `fan-out`: every post through `TimelineStore.fanOut` on one thread; ops/s = ring entries
//   written per second (pushes). Redis: LPUSH + LTRIM 0 799 for each ring reached, pipelined
//   in batches of 512 pairs on one connection (a prefix of the same posts, for time).
// - `home read, 20 ids, N thread(s)`: random readers, `home(of:limit: 20)`; Redis: LRANGE 0 19,
//   pipelined 32 deep, one connection per thread. SQLite: the page as a query over follows and
//   tweets tables (synthetic graph only).
// - `home read, follows 3 celebrities`: p50/p99 of single reads by readers who follow at least
//   three accounts above the threshold (their items merged at read).
// - `checkpoint`: bytes per ring entry at rest (the checkpoint file) and in memory.
// - `home read, 20 tweets hydrated, 2 threads` (synthetic graph): the same reads, then the page's
//   20 tweet records (180 B each, keyed by id) fetched from an LSM tree holding every post, with
//   one `multiGet` per page into a reused `RecordBatch`; the tree is flushed and compacted first,
//   so misses come from tables (the kernel's page cache warm), not the memtable. The tree has
//   the engine's record cache (64 MiB, the `--cache-size` default), warmed by 50,000 reads.
//   The row `(array multiGet)` reads the same pages with the array form (`multiGet([[UInt8]])`,
//   an array per key and per value), as the Social layer's misses do.
import CSQLite
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct TimelineSuite {
    static let name = "timeline"
    static let capacity = 800
    static let threshold = 10_000
    static let pageSize = 20

    struct Sizes {
        var users: Int
        var posts: Int
        var reedPosts: Int
        var reads: Int
        var redisPushes: Int
        var redisReads: Int
        var sqliteSeconds: Double
        var latencyReads: Int

        init(_ scale: Scale) {
            switch scale {
            case .small: users = 100_000; posts = 150_000
            case .medium: users = 300_000; posts = 450_000
            case .large: users = 1_000_000; posts = 1_500_000
            }
            reedPosts = 100_000
            reads = 2_000_000
            redisPushes = 1_000_000
            redisReads = 300_000
            sqliteSeconds = 3
            latencyReads = 200_000
        }
    }

    let fileSystem: FileSystem
    let scratch: ScratchSpace
    let sizes: Sizes

    typealias Store = TimelineStore<BenchGraph, BenchTweets>

    func run() throws -> SuiteResult {
        var result = SuiteResult()
        let redis = try RedisServer()
        defer { redis.stop() }

        let progress = ProgressBar("generating the synthetic graph", total: 1)
        let synthetic = BenchGraph.synthetic(users: sizes.users, meanFollowees: 35, seed: 0x7131_E11E)
        progress.finish()
        let syntheticTweets = BenchTweets(users: sizes.users, count: sizes.posts, seed: 0x7EE7)
        let celebrities = (0..<synthetic.users).filter { synthetic.followerCount(of: UInt32($0)) > Self.threshold }
        result.notes.append("synthetic graph: \(Format.grouped(Double(synthetic.users))) users, \(Format.grouped(Double(synthetic.edges))) follows "
            + "(mean \(Format.grouped(Double(synthetic.edges) / Double(synthetic.users), decimals: 1)) followees), "
            + "\(celebrities.count) accounts above \(Self.threshold) followers (largest \(Format.grouped(Double(celebrities.map { synthetic.followerCount(of: UInt32($0)) }.max() ?? 0)))), "
            + "\(Format.grouped(Double(sizes.posts))) posts")
        let syntheticRows = try measureGraph(label: "synthetic", graph: synthetic, tweets: syntheticTweets, redis: redis,
                                             celebrities: Set(celebrities.map { UInt32($0) }), withSQLite: true, result: &result)

        let reedPath = Self.reedPath()
        let reed = try BenchGraph.load(edgesFile: reedPath)
        let reedTweets = BenchTweets(users: reed.users, count: sizes.reedPosts, seed: 0x12EED)
        result.notes.append("socfb-Reed98: \(reed.users) users, \(Format.grouped(Double(reed.edges))) follows, \(Format.grouped(Double(sizes.reedPosts))) posts (\(reedPath))")
        _ = try measureGraph(label: "reed98", graph: reed, tweets: reedTweets, redis: redis, celebrities: [], withSQLite: false, result: &result)

        result.notes += [
            "ratio vs peer: socialdb / Redis on the same graph and posts (fan-out: ring entries/s vs LPUSH+LTRIM pairs/s;",
            "  reads: pages/s vs LRANGE 0 19/s with the same thread count); the SQLite row's ratio is socialdb 1 thread / SQLite.",
            "`batches of 32`: pages read 32 readers at a time (`homes(of:)`, a server's pipelined requests), as Redis is",
            "  pipelined 32 deep; the targets are judged on the one-at-a-time rows.",
            "hydrated rows: each page's 20 tweet records (180 B) fetched by one LSM multiGet (into a RecordBatch; then as arrays),",
            "  tables compacted, page cache warm.",
            "issue 4 targets: >= 20,000,000 pushes/s on one core; >= 4,000,000 home reads/s on 2 cores; >= 300,000 hydrated",
            "  pages/s on 2 cores; >= 10x Redis on both;",
            "  <= 16 bytes per entry at rest.",
        ]
        result.targets = [
            TargetCheck(description: "synthetic fan-out ring pushes/s, 1 core", measured: syntheticRows.fanOut.operationsPerSecond,
                        threshold: 20_000_000, isRatio: false),
            TargetCheck(description: "synthetic home reads of 20 ids/s, 2 threads", measured: syntheticRows.readsTwo.operationsPerSecond,
                        threshold: 4_000_000, isRatio: false),
            TargetCheck(description: "synthetic home pages/s with 20 tweets hydrated, 2 threads",
                        measured: syntheticRows.hydratedTwo?.operationsPerSecond ?? 0, threshold: 300_000, isRatio: false),
            TargetCheck(description: "synthetic fan-out vs Redis LPUSH+LTRIM", measured: syntheticRows.fanOut.ratioVersusPeer ?? 0,
                        threshold: 10, isRatio: true),
            TargetCheck(description: "synthetic home reads (2 threads) vs Redis LRANGE (2 clients)", measured: syntheticRows.readsTwo.ratioVersusPeer ?? 0,
                        threshold: 10, isRatio: true),
            // Compared as 16 / bytes, so that ">= 1" reads as "at most 16 bytes".
            TargetCheck(description: "16 bytes / synthetic bytes per entry at rest", measured: 16 / syntheticRows.bytesPerEntryAtRest,
                        threshold: 1, isRatio: true),
        ]
        return result
    }

    static func reedPath() -> String {
        let candidates = ["/work/shared/data/socfb-Reed98/socfb-Reed98.edges", "../shared/data/socfb-Reed98/socfb-Reed98.edges",
                          "../../shared/data/socfb-Reed98/socfb-Reed98.edges"]
        if let env = getenv("SOCIALDB_REED98") { return String(cString: env) }
        return candidates.first { access($0, R_OK) == 0 } ?? candidates[0]
    }

    struct GraphRows {
        var fanOut: ResultRow
        var readsTwo: ResultRow
        var hydratedTwo: ResultRow?
        var bytesPerEntryAtRest: Double
    }

    // MARK: One graph

    private func measureGraph(label: String, graph: BenchGraph, tweets: BenchTweets, redis: RedisServer,
                              celebrities: Set<UInt32>, withSQLite: Bool, result: inout SuiteResult) throws -> GraphRows {
        let options = TimelineOptions(capacity: Self.capacity, celebrityThreshold: Self.threshold)
        let store = Store(options: options, followers: graph, tweets: tweets)
        store.reserveUsers(graph.users)

        // Fan-out: every post, one thread.
        var fanOutProgress = ProgressBar("\(label) fan-out", total: tweets.posts.count)
        let fanOutCPU = threadCPUNanoseconds()
        var start = monotonicNanoseconds()
        for (i, post) in tweets.posts.enumerated() {
            store.fanOut(post, lsn: UInt64(i + 1))
            if i & 0x3FFF == 0 { fanOutProgress.update(done: i) }
        }
        var elapsed = seconds(from: start, to: monotonicNanoseconds())
        let fanOutCPUNanoseconds = threadCPUNanoseconds() - fanOutCPU
        fanOutProgress.finish()
        let stats = store.statistics
        // The CPU a push costs: the fan-out thread's and the arena's prefault thread's
        // (`TimelineOptions.arenaSegmentsAhead`), which works for the fan-out on another core.
        let prefaultCPU = UInt64(stats.arenaPrefaultCPUNanoseconds)
        var fanOut = ResultRow(suite: Self.name, workload: "\(label) fan-out", system: "socialdb",
                               operationsPerSecond: Double(stats.pushes) / elapsed, ratioVersusPeer: nil,
                               metrics: [Metric(key: "posts_per_sec", label: "posts/s", value: Double(tweets.posts.count) / elapsed),
                                         Metric(key: "cpu_ns_per_op", label: "CPU ns/push",
                                                value: Double(fanOutCPUNanoseconds + prefaultCPU) / Double(max(1, stats.pushes)), decimals: 1),
                                         Metric(key: "prefault_cpu_ns_per_op", label: "of it prefault thread",
                                                value: Double(prefaultCPU) / Double(max(1, stats.pushes)), decimals: 1),
                                         Metric(key: "prefault_busy_ns_per_op", label: "prefault thread busy ns/push",
                                                value: Double(stats.arenaPrefaultBusyNanoseconds) / Double(max(1, stats.pushes)), decimals: 1),
                                         Metric(key: "pushes", label: "pushes", value: Double(stats.pushes)),
                                         Metric(key: "celebrity_posts", label: "celebrity posts", value: Double(stats.celebrityPosts)),
                                         Metric(key: "rings", label: "rings", value: Double(stats.rings)),
                                         Metric(key: "ram_bytes_per_entry", label: "RAM B/entry",
                                                value: Double(stats.ringBytes) / Double(max(1, stats.entries)), decimals: 1)])

        // Redis fan-out over a prefix of the same posts.
        let connection = try RedisConnection(port: redis.port)
        connection.queueFlushAll()
        try connection.send(expectingReplies: 1)
        fanOutProgress = ProgressBar("\(label) redis fan-out", total: sizes.redisPushes)
        var redisPushes = 0
        var queued = 0
        start = monotonicNanoseconds()
        for post in tweets.posts {
            if graph.followerCount(of: post.author) > Self.threshold { continue }
            connection.queuePushAndTrim(user: post.author, id: post.id, capacity: Self.capacity)
            queued += 1
            for follower in graph.followers(of: post.author) {
                connection.queuePushAndTrim(user: follower, id: post.id, capacity: Self.capacity)
                queued += 1
                if queued >= 512 {
                    try connection.send(expectingReplies: 2 * queued)
                    redisPushes += queued
                    queued = 0
                }
            }
            if redisPushes >= sizes.redisPushes { break }
            fanOutProgress.update(done: redisPushes)
        }
        try connection.send(expectingReplies: 2 * queued)
        redisPushes += queued
        elapsed = seconds(from: start, to: monotonicNanoseconds())
        fanOutProgress.finish()
        let redisFanOut = ResultRow(suite: Self.name, workload: "\(label) fan-out", system: "redis LPUSH+LTRIM",
                                    operationsPerSecond: Double(redisPushes) / elapsed, ratioVersusPeer: nil,
                                    metrics: [Metric(key: "pushes", label: "pushes", value: Double(redisPushes))])
        fanOut.ratioVersusPeer = fanOut.operationsPerSecond / redisFanOut.operationsPerSecond

        // Readers: users drawn uniformly, the same sequence for every system.
        var random = BenchRandom(seed: 0x2EAD)
        let readers = ContiguousArray((0..<sizes.reads).map { _ in UInt32(random.next() % UInt64(graph.users)) })
        // Warm: every reader prepared once (rings of users who never got a push are built
        // from the sources on first read, celebrity caches filled), outside the timing.
        var page = TimelinePage()
        for user in 0..<graph.users { store.home(of: UInt32(user), limit: Self.pageSize, into: &page) }

        var readsOne = try measureReads(label: label, store: store, readers: readers, threads: 1)
        var readsTwo = try measureReads(label: label, store: store, readers: readers, threads: 2)
        let redisOne = try measureRedisReads(label: label, redis: redis, readers: readers, threads: 1)
        let redisTwo = try measureRedisReads(label: label, redis: redis, readers: readers, threads: 2)
        var readsTwoBatched = try measureReads(label: label, store: store, readers: readers, threads: 2, batch: 32)
        readsOne.ratioVersusPeer = readsOne.operationsPerSecond / redisOne.operationsPerSecond
        readsTwo.ratioVersusPeer = readsTwo.operationsPerSecond / redisTwo.operationsPerSecond
        readsTwoBatched.ratioVersusPeer = readsTwoBatched.operationsPerSecond / redisTwo.operationsPerSecond
        connection.close()

        var rows = [fanOut, redisFanOut, readsOne, readsTwo, readsTwoBatched, redisOne, redisTwo]
        var hydrated: ResultRow?
        if withSQLite {
            let hydratedRows = try measureHydratedReads(label: label, store: store, tweets: tweets, readers: readers, threads: 2)
            hydrated = hydratedRows.first
            rows += hydratedRows
        }
        if withSQLite {
            var sqlite = try measureSQLite(label: label, graph: graph, tweets: tweets, readers: readers)
            sqlite.ratioVersusPeer = readsOne.operationsPerSecond / sqlite.operationsPerSecond
            rows.append(sqlite)
        }
        if !celebrities.isEmpty {
            if let latency = measureCelebrityLatency(label: label, store: store, graph: graph, celebrities: celebrities) {
                rows.append(latency)
            } else {
                result.notes.append("\(label): no reader follows three celebrities; the latency row is left out")
            }
        }

        // Checkpoint: bytes at rest.
        let directory = try scratch.freshDirectory("timeline-\(label)")
        start = monotonicNanoseconds()
        let bytes = try store.checkpoint(directory: directory, fileSystem: fileSystem)
        elapsed = seconds(from: start, to: monotonicNanoseconds())
        try scratch.discard(directory)
        let after = store.statistics
        let bytesPerEntry = Double(bytes) / Double(max(1, after.entries))
        rows.append(ResultRow(suite: Self.name, workload: "\(label) checkpoint", system: "socialdb",
                              operationsPerSecond: Double(after.entries) / elapsed, ratioVersusPeer: nil,
                              metrics: [Metric(key: "bytes_per_entry_at_rest", label: "B/entry at rest", value: bytesPerEntry, decimals: 2),
                                        Metric(key: "ram_bytes_per_entry", label: "RAM B/entry",
                                               value: Double(after.ringBytes) / Double(max(1, after.entries)), decimals: 1),
                                        Metric(key: "entries", label: "entries", value: Double(after.entries)),
                                        Metric(key: "megabytes", label: "MB", value: Double(bytes) / 1e6, decimals: 1),
                                        Metric(key: "seconds", label: "s", value: elapsed, decimals: 2)]))
        result.rows += rows
        return GraphRows(fanOut: fanOut, readsTwo: readsTwo, hydratedTwo: hydrated, bytesPerEntryAtRest: bytesPerEntry)
    }

    // MARK: Reads

    /// `batch` > 1: the readers' pages are read `batch` at a time with `homes(of:limit:into:)`,
    /// as a server reads a connection's pipelined requests (the Redis rows pipeline 32 deep).
    private func measureReads(label: String, store: Store, readers: ContiguousArray<UInt32>, threads: Int, batch: Int = 1) throws -> ResultRow {
        let perThread = readers.count / threads / batch * batch
        let (elapsed, seen, cpu) = Self.timedOnThreads(threads) { index in
            var page = TimelinePage()
            var items = 0
            let first = index * perThread
            if batch > 1 {
                var pages = [TimelinePage](repeating: TimelinePage(), count: batch)
                readers.withUnsafeBufferPointer { all in
                    pages.withUnsafeMutableBufferPointer { pages in
                        var i = first
                        while i < first + perThread {
                            store.homes(of: UnsafeBufferPointer(rebasing: all[i..<(i + batch)]), limit: Self.pageSize, into: pages)
                            for j in 0..<batch { items &+= pages[j].items.count }
                            i += batch
                        }
                    }
                }
                return items
            }
            for i in first..<(first + perThread) {
                store.home(of: readers[i], limit: Self.pageSize, into: &page)
                items &+= page.items.count
            }
            return items
        }
        let reads = perThread * threads
        return ResultRow(suite: Self.name, workload: "\(label) home read, 20 ids, \(threads) thread\(threads == 1 ? "" : "s")"
                            + (batch > 1 ? ", batches of \(batch)" : ""),
                         system: "socialdb", operationsPerSecond: Double(reads) / elapsed, ratioVersusPeer: nil,
                         metrics: [Metric(key: "ids_per_page", label: "ids/page",
                                          value: Double(seen) / Double(reads), decimals: 1),
                                   Metric(key: "cpu_ns_per_op", label: "CPU ns/read", value: Double(cpu) / Double(reads), decimals: 1),
                                   Metric(key: "reads", label: "reads", value: Double(reads))])
    }

    /// Home pages with their tweets: the ring read, then one multi-get of the 20 records, into a
    /// reused `RecordBatch` (the target row), then again with the array form (an array per key
    /// and per value), for comparison.
    private func measureHydratedReads(label: String, store: Store, tweets: BenchTweets, readers: ContiguousArray<UInt32>,
                                      threads: Int) throws -> [ResultRow] {
        let directory = try scratch.freshDirectory("timeline-\(label)-tweets")
        defer { try? scratch.discard(directory) }
        // The record cache at the engine's default budget (`--cache-size`, 64 MiB), as Social has it;
        // tweet records stored uncompressed, as the engine keeps them (`uncompressedKeyPrefixes`).
        let records = try SocialDBStore(directory: directory, fileSystem: fileSystem, recordCacheBytes: EngineOptions().cacheSizeBytes,
                                        compression: .none)
        let loading = ProgressBar("\(label) tweet store", total: tweets.posts.count)
        var value = [UInt8](repeating: 0x61, count: 180)
        var key = [UInt8](repeating: 0, count: 8)
        for (i, post) in tweets.posts.enumerated() {
            withUnsafeBytes(of: post.id.bigEndian) { for b in 0..<8 { key[b] = $0[b] } }
            withUnsafeBytes(of: post.id) { for b in 0..<8 { value[b] = $0[b] } }
            try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try records.put(k, v) } }
            if i & 0x3FFF == 0 { loading.update(done: i) }
        }
        try records.settle()
        try records.compactFully()
        loading.finish()
        defer { try? records.close() }
        let tree = records.tree
        let failure = FirstFailure()
        let reads = min(readers.count, 400_000)
        let perThread = reads / threads
        // Warm the page cache and the block index once, outside the timing.
        var warm = TimelinePage()
        for i in 0..<min(reads, 50_000) {
            store.home(of: readers[i], limit: Self.pageSize, into: &warm)
            _ = try tree.multiGet(warm.items.map { Self.tweetKey($0.tweetId) })
        }
        // Each way of reading the records in turn, the batch (the target row) first.
        var rows: [ResultRow] = []
        for batched in [true, false] {
            let before = tree.statistics
            let (elapsed, hits, cpu) = Self.timedOnThreads(threads) { index in
                var page = TimelinePage()
                let batch = RecordBatch()
                var hits = 0
                let first = index * perThread
                do {
                    for i in first..<(first + perThread) {
                        store.home(of: readers[i], limit: Self.pageSize, into: &page)
                        if batched {
                            batch.removeAll()
                            for item in page.items { withUnsafeBytes(of: item.tweetId.bigEndian) { batch.append(key: $0) } }
                            try tree.multiGet(batch)
                            hits &+= batch.found
                        } else {
                            for record in try tree.multiGet(page.items.map { Self.tweetKey($0.tweetId) }) where record != nil { hits &+= 1 }
                        }
                    }
                } catch {
                    failure.record("\(error)")
                }
                return hits
            }
            if let message = failure.text { throw BenchmarkFailure(description: "hydrated reads: \(message)") }
            let pages = perThread * threads
            let cache = tree.statistics
            let cacheHits = Double(cache.recordCacheHits - before.recordCacheHits)
            let cacheMisses = Double(cache.recordCacheMisses - before.recordCacheMisses)
            rows.append(ResultRow(suite: Self.name,
                                  workload: "\(label) home read, 20 tweets hydrated\(batched ? "" : " (array multiGet)"), \(threads) threads",
                                  system: "socialdb", operationsPerSecond: Double(pages) / elapsed, ratioVersusPeer: nil,
                                  metrics: [Metric(key: "tweets_per_page", label: "tweets/page",
                                                   value: Double(hits) / Double(pages), decimals: 1),
                                            Metric(key: "cpu_ns_per_op", label: "CPU ns/page", value: Double(cpu) / Double(pages), decimals: 1),
                                            Metric(key: "record_cache_hit_rate", label: "record cache hits %",
                                                   value: 100 * cacheHits / max(1, cacheHits + cacheMisses), decimals: 1),
                                            Metric(key: "record_cache_mb", label: "record cache MB",
                                                   value: Double(cache.recordCacheBytes) / 1e6, decimals: 1),
                                            Metric(key: "pages", label: "pages", value: Double(pages))]))
        }
        return rows
    }

    /// Runs `body(index)` on `threads` threads released together; returns the seconds from the
    /// release to the last one's end, the sum of what the bodies returned, and the CPU time the
    /// bodies took in all (nanoseconds, each thread's own clock: what the work costs even when
    /// other processes stretch the wall clock).
    static func timedOnThreads(_ threads: Int, _ body: @escaping @Sendable (Int) -> Int) -> (seconds: Double, total: Int, cpuNanoseconds: Int) {
        let gate = StartGate()
        let total = Atomic<Int>(0)
        let cpu = Atomic<Int>(0)
        let workers = (0..<threads).map { index in
            BackgroundThread {
                gate.arriveAndWait()
                let before = threadCPUNanoseconds()
                let result = body(index)
                cpu.wrappingAdd(Int(threadCPUNanoseconds() - before), ordering: .relaxed)
                total.wrappingAdd(result, ordering: .relaxed)
            }
        }
        gate.waitForArrivals(threads)
        let start = monotonicNanoseconds()
        gate.open()
        for worker in workers { worker.join() }
        return (seconds(from: start, to: monotonicNanoseconds()), total.load(ordering: .relaxed), cpu.load(ordering: .relaxed))
    }

    static func tweetKey(_ id: UInt64) -> [UInt8] {
        withUnsafeBytes(of: id.bigEndian) { Array($0) }
    }

    private func measureRedisReads(label: String, redis: RedisServer, readers: ContiguousArray<UInt32>, threads: Int) throws -> ResultRow {
        let gate = StartGate()
        let failure = FirstFailure()
        let idsSeen = Atomic<Int>(0)
        let perThread = sizes.redisReads / threads
        let depth = 32
        let port = redis.port
        let workers = (0..<threads).map { index in
            BackgroundThread {
                do {
                    let connection = try RedisConnection(port: port)
                    defer { connection.close() }
                    var ids = 0
                    gate.arriveAndWait()
                    var i = index * perThread
                    let end = i + perThread
                    while i < end {
                        let batch = min(depth, end - i)
                        for j in 0..<batch { connection.queueRange(user: readers[i + j], count: Self.pageSize) }
                        ids += try connection.send(expectingReplies: batch)
                        i += batch
                    }
                    idsSeen.wrappingAdd(ids, ordering: .relaxed)
                } catch {
                    failure.record("\(error)")
                    gate.arriveAndWait()
                }
            }
        }
        gate.waitForArrivals(threads)
        let start = monotonicNanoseconds()
        gate.open()
        for worker in workers { worker.join() }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        if let message = failure.text { throw BenchmarkFailure(description: "redis reads: \(message)") }
        let reads = perThread * threads
        return ResultRow(suite: Self.name, workload: "\(label) home read, 20 ids, \(threads) thread\(threads == 1 ? "" : "s")",
                         system: "redis LRANGE 0 19", operationsPerSecond: Double(reads) / elapsed, ratioVersusPeer: nil,
                         metrics: [Metric(key: "ids_per_page", label: "ids/page",
                                          value: Double(idsSeen.load(ordering: .relaxed)) / Double(reads), decimals: 1),
                                   Metric(key: "pipeline_depth", label: "pipeline", value: Double(depth))])
    }

    private func measureCelebrityLatency(label: String, store: Store, graph: BenchGraph, celebrities: Set<UInt32>) -> ResultRow? {
        var readers: [UInt32] = []
        for user in 0..<graph.users {
            let followed = graph.followees(of: UInt32(user)).reduce(0) { $0 + (celebrities.contains($1) ? 1 : 0) }
            if followed >= 3 { readers.append(UInt32(user)) }
            if readers.count >= 1000 { break }
        }
        guard !readers.isEmpty else { return nil }
        let samples = LatencySamples(capacity: sizes.latencyReads)
        var page = TimelinePage()
        for reader in readers { store.home(of: reader, limit: Self.pageSize, into: &page) }
        let start = monotonicNanoseconds()
        for i in 0..<sizes.latencyReads {
            let before = monotonicNanoseconds()
            store.home(of: readers[i % readers.count], limit: Self.pageSize, into: &page)
            samples.record(nanoseconds: monotonicNanoseconds() - before)
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let latency = percentiles(of: [samples])
        return ResultRow(suite: Self.name, workload: "\(label) home read, follows 3 celebrities", system: "socialdb",
                         operationsPerSecond: Double(sizes.latencyReads) / elapsed,
                         p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds, ratioVersusPeer: nil,
                         metrics: [Metric(key: "readers", label: "readers", value: Double(readers.count)),
                                   Metric(key: "max_us", label: "max us", value: latency?.maxMicroseconds ?? 0, decimals: 1)])
    }

    // MARK: SQLite

    private func measureSQLite(label: String, graph: BenchGraph, tweets: BenchTweets, readers: ContiguousArray<UInt32>) throws -> ResultRow {
        let directory = try scratch.freshDirectory("timeline-sqlite")
        defer { try? scratch.discard(directory) }
        var db: OpaquePointer?
        guard sqlite3_open(directory + "/timeline.db", &db) == SQLITE_OK, let db else {
            throw BenchmarkFailure(description: "sqlite3_open failed")
        }
        defer { sqlite3_close(db) }
        func exec(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw BenchmarkFailure(description: "sqlite: \(String(cString: sqlite3_errmsg(db))) in \(sql)")
            }
        }
        func prepare(_ sql: String) throws -> OpaquePointer {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw BenchmarkFailure(description: "sqlite: \(String(cString: sqlite3_errmsg(db))) in \(sql)")
            }
            return statement
        }
        try exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")
        try exec("CREATE TABLE follows(follower INTEGER NOT NULL, followee INTEGER NOT NULL, PRIMARY KEY(follower, followee)) WITHOUT ROWID;")
        try exec("CREATE TABLE tweets(id INTEGER PRIMARY KEY, author INTEGER NOT NULL);")
        try exec("BEGIN")
        let insertFollow = try prepare("INSERT INTO follows VALUES(?1, ?2)")
        let progress = ProgressBar("\(label) sqlite load", total: graph.users)
        for user in 0..<graph.users {
            for followee in graph.followees(of: UInt32(user)) {
                sqlite3_bind_int64(insertFollow, 1, Int64(user))
                sqlite3_bind_int64(insertFollow, 2, Int64(followee))
                guard sqlite3_step(insertFollow) == SQLITE_DONE else { throw BenchmarkFailure(description: "sqlite insert follow") }
                sqlite3_reset(insertFollow)
            }
            if user & 0xFFF == 0 { progress.update(done: user) }
        }
        progress.finish()
        sqlite3_finalize(insertFollow)
        let insertTweet = try prepare("INSERT INTO tweets VALUES(?1, ?2)")
        for post in tweets.posts {
            sqlite3_bind_int64(insertTweet, 1, Int64(bitPattern: post.id))
            sqlite3_bind_int64(insertTweet, 2, Int64(post.author))
            guard sqlite3_step(insertTweet) == SQLITE_DONE else { throw BenchmarkFailure(description: "sqlite insert tweet") }
            sqlite3_reset(insertTweet)
        }
        sqlite3_finalize(insertTweet)
        try exec("CREATE INDEX tweets_by_author ON tweets(author, id);")
        try exec("COMMIT")
        let query = try prepare("""
            SELECT id FROM tweets WHERE author = ?1 OR author IN (SELECT followee FROM follows WHERE follower = ?1)
            ORDER BY id DESC LIMIT 20
            """)
        defer { sqlite3_finalize(query) }
        var reads = 0
        var ids = 0
        let start = monotonicNanoseconds()
        let stopAt = start + UInt64(sizes.sqliteSeconds * 1e9)
        var now = start
        while now < stopAt && reads < readers.count {
            sqlite3_bind_int64(query, 1, Int64(readers[reads]))
            while sqlite3_step(query) == SQLITE_ROW { ids += 1 }
            sqlite3_reset(query)
            reads += 1
            if reads & 15 == 0 { now = monotonicNanoseconds() }
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        return ResultRow(suite: Self.name, workload: "\(label) home read, 20 ids, 1 thread", system: "sqlite query",
                         operationsPerSecond: Double(reads) / elapsed, ratioVersusPeer: nil,
                         metrics: [Metric(key: "ids_per_page", label: "ids/page", value: Double(ids) / Double(max(1, reads)), decimals: 1),
                                   Metric(key: "reads", label: "reads", value: Double(reads))])
    }
}

extension TimelineSuite {
    /// The hidden `timeline-profile USERS POSTS READS [THREADS]`: the synthetic graph's fan-out,
    /// then READS home reads of 20 ids on THREADS threads (default 1), with no peer and no
    /// hydration, so a profiler sees the ring code alone. Prints each phase's rate by the wall
    /// clock and its CPU time per operation. The phases are the functions `runProfileFanOut`
    /// and `runProfileReads`, for `valgrind --tool=callgrind --collect-atstart=no
    /// --toggle-collect='*runProfileFanOut*'` (or `*runProfileReads*`).
    static func profile(users: Int, posts: Int, reads: Int, threads: Int = 1) {
        let graph = BenchGraph.synthetic(users: users, meanFollowees: 35, seed: 0x7131_E11E)
        let tweets = BenchTweets(users: users, count: posts, seed: 0x7EE7)
        var options = TimelineOptions(capacity: capacity, celebrityThreshold: threshold)
        // SOCIALDB_ARENA_AHEAD=N: the arena's prefaulted segments (0: none), for A/B runs.
        if let ahead = getenv("SOCIALDB_ARENA_AHEAD").flatMap({ Int(String(cString: $0)) }) { options.arenaSegmentsAhead = ahead }
        let store = Store(options: options, followers: graph, tweets: tweets)
        store.reserveUsers(graph.users)
        let cpu = threadCPUNanoseconds()
        let start = monotonicNanoseconds()
        runProfileFanOut(store, tweets.posts)
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let cpuNanoseconds = threadCPUNanoseconds() - cpu
        let stats = store.statistics
        let pushes = stats.pushes
        let prefault = stats.arenaPrefaultCPUNanoseconds
        print("fan-out: \(pushes) pushes in \(elapsed) s, \(Format.grouped(Double(pushes) / elapsed)) pushes/s, "
            + "CPU \(Format.grouped(Double(cpuNanoseconds + UInt64(prefault)) / Double(max(1, pushes)), decimals: 1)) ns/push "
            + "(fan-out thread \(Format.grouped(Double(cpuNanoseconds) / Double(max(1, pushes)), decimals: 1)), arena prefault thread "
            + "\(Format.grouped(Double(prefault) / Double(max(1, pushes)), decimals: 1)), busy "
            + "\(Format.grouped(Double(stats.arenaPrefaultBusyNanoseconds) / Double(max(1, pushes)), decimals: 1)): \(stats.arenaSegmentsPrefaulted) segments, "
            + "\(stats.arenaSegmentsMadeInline) made inline), RAM \(Format.grouped(Double(stats.ringBytes) / Double(max(1, stats.entries)), decimals: 1)) B/entry")
        var random = BenchRandom(seed: 0x2EAD)
        let readers = ContiguousArray((0..<reads).map { _ in UInt32(random.next() % UInt64(graph.users)) })
        var page = TimelinePage()
        for user in 0..<graph.users { store.home(of: UInt32(user), limit: pageSize, into: &page) }
        let perThread = reads / max(1, threads)
        let (readSeconds, items, readCPU) = timedOnThreads(max(1, threads)) { index in
            runProfileReads(store, readers, from: index * perThread, count: perThread)
        }
        let done = perThread * max(1, threads)
        print("reads: \(done) pages (\(items) ids) in \(readSeconds) s, \(Format.grouped(Double(done) / readSeconds)) pages/s, "
            + "\(max(1, threads)) thread\(threads > 1 ? "s" : ""), CPU \(Format.grouped(Double(readCPU) / Double(max(1, done)), decimals: 1)) ns/read")
    }

    @inline(never)
    static func runProfileFanOut(_ store: Store, _ posts: ContiguousArray<TimelineItem>) {
        for (i, post) in posts.enumerated() { store.fanOut(post, lsn: UInt64(i + 1)) }
    }

    @inline(never)
    static func runProfileReads(_ store: Store, _ readers: ContiguousArray<UInt32>, from first: Int, count: Int) -> Int {
        var page = TimelinePage()
        var items = 0
        for i in first..<(first + count) {
            store.home(of: readers[i], limit: pageSize, into: &page)
            items &+= page.items.count
        }
        return items
    }
}

extension TimelineSuite {
    /// The hidden `timeline-hydrate-profile USERS POSTS READS [THREADS] [CACHE_MIB]`: the
    /// suite's hydrated row alone (no peer): the synthetic graph's fan-out and a first read of
    /// every home, the posts' 180-byte records in an LSM tree (flushed and compacted) with a
    /// record cache of CACHE_MIB MiB (default: the engine's `--cache-size` default), 50,000
    /// warming pages, then READS pages with their 20 tweets fetched by one `multiGet` each, on
    /// THREADS threads (default 1). Prints pages/s, CPU per page, the record cache's hit rate
    /// and fill, and how many distinct tweets the timed pages list (the working set the cache
    /// would need to hold). The timed phase is `runProfileHydrated`, for `valgrind
    /// --tool=callgrind --collect-atstart=no --toggle-collect='*runProfileHydrated*'`.
    static func hydrateProfile(users: Int, posts: Int, reads: Int, threads: Int, cacheMiB: Int?) throws {
        let graph = BenchGraph.synthetic(users: users, meanFollowees: 35, seed: 0x7131_E11E)
        let tweets = BenchTweets(users: users, count: posts, seed: 0x7EE7)
        let store = Store(options: TimelineOptions(capacity: capacity, celebrityThreshold: threshold), followers: graph, tweets: tweets)
        store.reserveUsers(graph.users)
        for (i, post) in tweets.posts.enumerated() { store.fanOut(post, lsn: UInt64(i + 1)) }
        var page = TimelinePage()
        for user in 0..<graph.users { store.home(of: UInt32(user), limit: pageSize, into: &page) }

        let directory = "/tmp/socialdb-timeline-hydrate-profile"
        let fileSystem = try FileSystem(backend: .automatic)
        try? fileSystem.removeTree(directory)
        try fileSystem.makeDirectory(directory)
        defer { try? fileSystem.removeTree(directory) }
        let cacheBytes = cacheMiB.map { $0 << 20 } ?? EngineOptions().cacheSizeBytes
        let records = try SocialDBStore(directory: directory, fileSystem: fileSystem, recordCacheBytes: cacheBytes, compression: .none)
        defer { try? records.close() }
        var value = [UInt8](repeating: 0x61, count: 180)
        var key = [UInt8](repeating: 0, count: 8)
        for post in tweets.posts {
            withUnsafeBytes(of: post.id.bigEndian) { for b in 0..<8 { key[b] = $0[b] } }
            withUnsafeBytes(of: post.id) { for b in 0..<8 { value[b] = $0[b] } }
            try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try records.put(k, v) } }
        }
        try records.settle()
        try records.compactFully()
        let tree = records.tree

        var random = BenchRandom(seed: 0x2EAD)
        let readers = ContiguousArray((0..<max(reads, 50_000)).map { _ in UInt32(random.next() % UInt64(graph.users)) })
        for i in 0..<50_000 {
            store.home(of: readers[i], limit: pageSize, into: &page)
            _ = try tree.multiGet(page.items.map { Self.tweetKey($0.tweetId) })
        }
        var distinct = Set<UInt64>()
        for i in 0..<reads {
            store.home(of: readers[i], limit: pageSize, into: &page)
            for item in page.items { distinct.insert(item.tweetId) }
        }
        let before = tree.statistics
        let perThread = reads / max(1, threads)
        let failure = FirstFailure()
        let (elapsed, found, cpu) = timedOnThreads(max(1, threads)) { index in
            do {
                return try runProfileHydrated(store, tree, readers, from: index * perThread, count: perThread)
            } catch {
                failure.record("\(error)")
                return 0
            }
        }
        if let message = failure.text { throw BenchmarkFailure(description: message) }
        let after = tree.statistics
        let pages = perThread * max(1, threads)
        let hits = Double(after.recordCacheHits - before.recordCacheHits)
        let misses = Double(after.recordCacheMisses - before.recordCacheMisses)
        print("hydrated: \(pages) pages (\(found) tweets) in \(elapsed) s, \(Format.grouped(Double(pages) / elapsed)) pages/s, "
            + "\(max(1, threads)) thread\(threads > 1 ? "s" : ""), CPU \(Format.grouped(Double(cpu) / Double(max(1, pages)), decimals: 1)) ns/page")
        print("record cache: \(cacheBytes >> 20) MiB budget, \(Format.grouped(Double(after.recordCacheEntries))) records, "
            + "\(Format.grouped(Double(after.recordCacheBytes) / 1e6, decimals: 1)) MB of records, "
            + "hits \(Format.grouped(100 * hits / max(1, hits + misses), decimals: 1))% of \(Format.grouped(hits + misses)) probes; "
            + "the timed pages list \(Format.grouped(Double(distinct.count))) distinct tweets")
    }

    @inline(never)
    static func runProfileHydrated(_ store: Store, _ tree: LSMTree, _ readers: ContiguousArray<UInt32>, from first: Int, count: Int) throws -> Int {
        var page = TimelinePage()
        let batch = RecordBatch()
        var found = 0
        for i in first..<(first + count) {
            store.home(of: readers[i], limit: pageSize, into: &page)
            batch.removeAll()
            for item in page.items { withUnsafeBytes(of: item.tweetId.bigEndian) { batch.append(key: $0) } }
            try tree.multiGet(batch)
            found &+= batch.found
        }
        return found
    }
}
