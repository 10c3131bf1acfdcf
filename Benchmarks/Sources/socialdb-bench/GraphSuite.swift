// `socialdb-bench graph`: the follow graph store against SQLite (issue 5).
//
// Two graphs, each loaded into both systems in the same run:
// - `reed98`: the real socfb-Reed98 graph (../shared/data), both directions of every friendship
//   as DeathStarBench registers them (37,624 follows);
// - `synthetic`: a seeded power-law follow graph shaped like twitter-2010 (mean 35 followees,
//   log-normal out-degree, in-degree heavy-tailed up to about 2% of users), 100,000 users at
//   `small`, 1,000,000 at `medium`, 10,000,000 at `large`. User numbers are in signup order and
//   popularity falls with the number (early accounts are the popular ones); a row also reports
//   bits per edge with the numbers shuffled, to show what that order is worth.
//
// SQLite: `follows(src, dst)` WITHOUT ROWID with primary key (src, dst) and an index (dst, src),
// WAL, bulk load in one transaction, durable writes with synchronous=FULL, one connection.
// Rows (socialdb and SQLite side by side, ratio = socialdb/SQLite): bulk load edges/s, durable
// follow/unfollow ops/s, membership tests/s, follower-list decode edges/s, intersection,
// two-hop and follower-page queries/s with p50/p99 latency, follower + following counts/s.
import CSQLite
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct GraphSuite {
    static let name = "graph"
    static let reedPath = "/work/shared/data/socfb-Reed98/socfb-Reed98.edges"

    struct Sizes {
        var syntheticUsers: Int
        var membershipProbes: Int
        var sqliteMembershipProbes: Int
        var decodeUsers: Int
        var setQueries: Int
        var sqliteSetQueries: Int
        var writeSeconds: Double
        var writeThreads = 4

        init(_ scale: Scale) {
            switch scale {
            case .small: syntheticUsers = 100_000
            case .medium: syntheticUsers = 1_000_000
            case .large: syntheticUsers = 10_000_000
            }
            membershipProbes = 2_000_000
            sqliteMembershipProbes = 200_000
            decodeUsers = 20_000
            setQueries = 20_000
            sqliteSetQueries = 1_000
            writeSeconds = 3
        }
    }

    let fileSystem: FileSystem
    let scratch: ScratchSpace
    let sizes: Sizes

    func run() throws -> SuiteResult {
        var result = SuiteResult()
        if fileSystem.exists(Self.reedPath) {
            let parsed = try EdgeListParser(symmetric: true).parse(path: Self.reedPath, fileSystem: fileSystem)
            try measure(graph: "reed98", edges: parsed.edges, users: 962, into: &result, judged: false)
        } else {
            result.notes.append("reed98 skipped: \(Self.reedPath) is missing")
        }
        let edges = Self.synthetic(users: sizes.syntheticUsers, seed: 2010)
        try measure(graph: "synthetic \(sizes.syntheticUsers / 1000)k", edges: edges, users: sizes.syntheticUsers, into: &result, judged: true)
        result.notes += [
            "ratio vs peer = socialdb / SQLite on the same row; bits/edge include the per-user index (lists alone in brackets).",
            "membership: half existing edges, half random pairs; decode: whole follower lists of random and of the 100 most",
            "  followed users; intersection: people u follows who follow a popular x; two-hop: top 10 suggestions, budget 100,000 edges.",
            "per CPU-s: the same count over the measuring thread's CPU time, for both systems (wall-clock ratios suffer on a shared machine).",
            "pages: 50 followers of a popular user after a random cursor; counts: a user's follower and following counts (random users",
            "  and the 100 most followed).",
            "durable writes: socialdb \(sizes.writeThreads) threads sharing group commit; SQLite one connection, a transaction per write.",
        ]
        return result
    }

    // MARK: The synthetic graph

    /// A follow graph shaped like twitter-2010: out-degree log-normal with mean 35; followees drawn
    /// from a power law over popularity rank (P(rank r) ~ 1/(r + r0), r0 = N/5000, which puts the top
    /// account near 2% of users as followers), rank = user number. Seeded, so every run is the same.
    static func synthetic(users: Int, seed: UInt64) -> ContiguousArray<UInt64> {
        var random = seed | 1
        func next() -> UInt64 {
            random ^= random >> 12; random ^= random << 25; random ^= random >> 27
            return random &* 0x2545_F491_4F6C_DD1D
        }
        func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
        let sigma = 1.0
        let mu = log(35.0) - sigma * sigma / 2
        let r0 = max(1.0, Double(users) / 5000)
        let ratio = (Double(users) + r0) / r0
        var edges = ContiguousArray<UInt64>()
        edges.reserveCapacity(users * 36)
        for u in 0..<users {
            // Box-Muller for the log-normal degree.
            let z = (-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * Double.pi * uniform())
            let degree = min(users - 1, Int(exp(mu + sigma * z)))
            for _ in 0..<degree {
                let rank = Int(r0 * pow(ratio, uniform()) - r0)
                let v = min(users - 1, rank)
                if v != u { edges.append(UInt64(u) << 32 | UInt64(v)) }
            }
        }
        return edges
    }

    // MARK: One graph, both systems

    private func measure(graph: String, edges source: ContiguousArray<UInt64>, users: Int, into result: inout SuiteResult, judged: Bool) throws {
        let directory = try scratch.freshDirectory("graph-\(graph.filter { $0.isLetter || $0.isNumber })")
        // socialdb: bulk load (sort, build, write, fdatasync, rename) timed as a whole.
        let (log, _) = try Log.open(directory: directory + "/log", fileSystem: fileSystem, options: LogOptions(sync: .always))
        let store = try GraphStore.open(directory: directory + "/graph", fileSystem: fileSystem, log: log)
        var edges = source
        let progress = ProgressBar("\(graph): socialdb bulk load", total: 100)
        let loadStart = monotonicNanoseconds()
        try store.bulkLoad(&edges) { p in if p.total > 0 { progress.update(done: p.done * 100 / p.total) } }
        let loadSeconds = seconds(from: loadStart, to: monotonicNanoseconds())
        progress.finish()
        edges = []
        let stats = store.statistics()
        let edgeCount = stats.edges

        // SQLite: the same edges, one transaction.
        let sqlite = try GraphSQLite(path: directory + "/sqlite.db")
        let sqliteLoadStart = monotonicNanoseconds()
        try sqlite.bulkLoad(source)
        let sqliteLoadSeconds = seconds(from: sqliteLoadStart, to: monotonicNanoseconds())
        let sqliteBytes = sqlite.bytesOnDisk()
        let sqliteEdges = try sqlite.count()

        var socialLoad = row(graph, "bulk load", "socialdb", ops: Double(edgeCount) / loadSeconds, metrics: [
            Metric(key: "edges", label: "edges", value: Double(edgeCount)),
            Metric(key: "users", label: "users", value: Double(stats.users)),
            Metric(key: "bytes", label: "bytes", value: Double(stats.baseFileBytes)),
            Metric(key: "bits_per_edge_following", label: "bits/edge following", value: stats.following.bitsPerEdge, decimals: 2),
            Metric(key: "list_bits_per_edge_following", label: "[lists]", value: stats.following.listBitsPerEdge, decimals: 2),
            Metric(key: "bits_per_edge_followers", label: "bits/edge followers", value: stats.followers.bitsPerEdge, decimals: 2),
            Metric(key: "list_bits_per_edge_followers", label: "[lists]", value: stats.followers.listBitsPerEdge, decimals: 2),
            Metric(key: "search_mark_bits_per_edge_followers", label: "[search marks]", value: stats.followers.searchMarkBitsPerEdge, decimals: 2),
            Metric(key: "seconds", label: "s", value: loadSeconds, decimals: 2),
        ])
        let sqliteLoad = row(graph, "bulk load", "sqlite", ops: Double(sqliteEdges) / sqliteLoadSeconds, metrics: [
            Metric(key: "edges", label: "edges", value: Double(sqliteEdges)),
            Metric(key: "bytes", label: "bytes", value: Double(sqliteBytes)),
            Metric(key: "bytes_per_edge", label: "bytes/edge", value: Double(sqliteBytes) / Double(max(1, sqliteEdges)), decimals: 1),
            Metric(key: "seconds", label: "s", value: sqliteLoadSeconds, decimals: 2),
        ])
        socialLoad.ratioVersusPeer = socialLoad.operationsPerSecond / sqliteLoad.operationsPerSecond
        result.rows += [socialLoad, sqliteLoad]
        if judged {
            result.targets.append(TargetCheck(description: "\(graph): bits per edge, following (index included) <= 14 (as 14/x)",
                                              measured: 14 / stats.following.bitsPerEdge, threshold: 1, isRatio: true))
            result.targets.append(TargetCheck(description: "\(graph): bits per edge, followers (index included) <= 14 (as 14/x)",
                                              measured: 14 / stats.followers.bitsPerEdge, threshold: 1, isRatio: true))
            // What the signup order is worth: the same graph with user numbers shuffled.
            var shuffled = source
            let permutation = Self.permutation(users, seed: 99)
            for i in 0..<shuffled.count {
                let e = shuffled[i]
                shuffled[i] = UInt64(permutation[Int(e >> 32)]) << 32 | UInt64(permutation[Int(e & 0xFFFF_FFFF)])
            }
            let shuffledDirectory = try scratch.freshDirectory("graph-shuffled")
            let shuffledStore = try GraphStore.open(directory: shuffledDirectory, fileSystem: fileSystem, log: nil)
            try shuffledStore.bulkLoad(&shuffled)
            let s = shuffledStore.statistics()
            result.rows.append(row(graph, "bits, numbers shuffled", "socialdb", ops: .nan, metrics: [
                Metric(key: "bits_per_edge_following", label: "bits/edge following", value: s.following.bitsPerEdge, decimals: 2),
                Metric(key: "list_bits_per_edge_following", label: "[lists]", value: s.following.listBitsPerEdge, decimals: 2),
                Metric(key: "bits_per_edge_followers", label: "bits/edge followers", value: s.followers.bitsPerEdge, decimals: 2),
                Metric(key: "list_bits_per_edge_followers", label: "[lists]", value: s.followers.listBitsPerEdge, decimals: 2),
            ]))
            try scratch.discard(shuffledDirectory)
        }

        result.rows += codecSizes(graph, store: store, users: stats.users, edges: edgeCount)

        // Queries. Probes: half existing edges (from the source list), half random pairs.
        var random = SplitMix(seed: 5)
        let probeCount = sizes.membershipProbes
        var probes = ContiguousArray<UInt64>()
        probes.reserveCapacity(probeCount)
        for i in 0..<probeCount {
            if i & 1 == 0 {
                probes.append(source[Int(random.next() % UInt64(source.count))])
            } else {
                probes.append((random.next() % UInt64(users)) << 32 | random.next() % UInt64(users))
            }
        }
        var hits = 0
        let membershipCPUStart = threadCPUNanoseconds()
        let membershipStart = monotonicNanoseconds()
        for p in probes where store.follows(UInt32(p >> 32), UInt32(truncatingIfNeeded: p)) { hits += 1 }
        let membershipSeconds = seconds(from: membershipStart, to: monotonicNanoseconds())
        let membershipCPUSeconds = seconds(from: membershipCPUStart, to: threadCPUNanoseconds())
        let sqliteProbes = min(sizes.sqliteMembershipProbes, probes.count)
        var sqliteHits = 0
        let sqliteMembershipCPUStart = threadCPUNanoseconds()
        let sqliteMembershipStart = monotonicNanoseconds()
        for p in probes.prefix(sqliteProbes) where try sqlite.follows(Int64(p >> 32), Int64(p & 0xFFFF_FFFF)) { sqliteHits += 1 }
        let sqliteMembershipSeconds = seconds(from: sqliteMembershipStart, to: monotonicNanoseconds())
        let sqliteMembershipCPUSeconds = seconds(from: sqliteMembershipCPUStart, to: threadCPUNanoseconds())
        result.rows += paired(graph, "membership test", socialOps: Double(probeCount) / membershipSeconds,
                              peerOps: Double(sqliteProbes) / sqliteMembershipSeconds,
                              social: [Metric(key: "hit_rate", label: "hit rate", value: Double(hits) / Double(probeCount), decimals: 3),
                                       Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(probeCount) / membershipCPUSeconds)],
                              peer: [Metric(key: "hit_rate", label: "hit rate", value: Double(sqliteHits) / Double(sqliteProbes), decimals: 3),
                                     Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(sqliteProbes) / sqliteMembershipCPUSeconds)])
        if judged {
            result.targets.append(TargetCheck(description: "\(graph): membership tests/s", measured: result.rows[result.rows.count - 2].operationsPerSecond,
                                              threshold: 10_000_000, isRatio: false))
        }
        // The same probes through the batched call (prefetching pipeline); its own row, not the target.
        var answers = [Bool](repeating: false, count: probes.count)
        let batchCPUStart = threadCPUNanoseconds()
        let batchStart = monotonicNanoseconds()
        probes.withUnsafeBufferPointer { p in answers.withUnsafeMutableBufferPointer { store.follows(p, into: $0) } }
        let batchSeconds = seconds(from: batchStart, to: monotonicNanoseconds())
        let batchCPUSeconds = seconds(from: batchCPUStart, to: threadCPUNanoseconds())
        let batchHits = answers.reduce(0) { $0 + ($1 ? 1 : 0) }
        var batchRow = row(graph, "membership test, batched (all probes in one call)", "socialdb", ops: Double(probeCount) / batchSeconds, metrics: [
            Metric(key: "hit_rate", label: "hit rate", value: Double(batchHits) / Double(probeCount), decimals: 3),
            Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(probeCount) / batchCPUSeconds),
        ])
        batchRow.ratioVersusPeer = batchRow.operationsPerSecond / result.rows[result.rows.count - 1].operationsPerSecond
        result.rows.append(batchRow)

        // Follower lists: random users plus the 100 most followed (user numbers 0..<100 here
        // hold the most followed for the synthetic graph; for reed98 they are just users).
        var listUsers = (0..<sizes.decodeUsers).map { _ in UInt32(random.next() % UInt64(users)) }
        listUsers += (0..<min(100, users)).map { UInt32($0) }
        var buffer = ContiguousArray<UInt32>()
        var decoded = 0
        let copyCPUStart = threadCPUNanoseconds()
        let copyStart = monotonicNanoseconds()
        for u in listUsers {
            store.copyFollowers(of: u, into: &buffer)
            decoded += buffer.count
        }
        let copySeconds = seconds(from: copyStart, to: monotonicNanoseconds())
        let copyCPUSeconds = seconds(from: copyCPUStart, to: threadCPUNanoseconds())
        // The codec alone: the 100 most followed users' lists, decoded 20 times over (long lists,
        // so the two cache misses of reaching a list do not dominate).
        let topUsers = listUsers.suffix(min(100, users))
        var topDecoded = 0
        let topCPUStart = threadCPUNanoseconds()
        let topStart = monotonicNanoseconds()
        for _ in 0..<20 {
            for u in topUsers {
                store.copyFollowers(of: u, into: &buffer)
                topDecoded += buffer.count
            }
        }
        let topSeconds = seconds(from: topStart, to: monotonicNanoseconds())
        let topCPUSeconds = seconds(from: topCPUStart, to: threadCPUNanoseconds())
        var visited = 0
        var checksum: UInt64 = 0
        let forEachCPUStart = threadCPUNanoseconds()
        let forEachStart = monotonicNanoseconds()
        for u in listUsers {
            store.forEachFollower(of: u) { checksum &+= UInt64($0); visited &+= 1 }
        }
        let forEachSeconds = seconds(from: forEachStart, to: monotonicNanoseconds())
        let forEachCPUSeconds = seconds(from: forEachCPUStart, to: threadCPUNanoseconds())
        let sqliteListUsers = Array(listUsers.suffix(min(listUsers.count, 2_100)))
        var sqliteVisited = 0
        let sqliteListCPUStart = threadCPUNanoseconds()
        let sqliteListStart = monotonicNanoseconds()
        for u in sqliteListUsers { sqliteVisited += try sqlite.followers(Int64(u)) }
        let sqliteListSeconds = seconds(from: sqliteListStart, to: monotonicNanoseconds())
        let sqliteListCPUSeconds = seconds(from: sqliteListCPUStart, to: threadCPUNanoseconds())
        var copyRows = paired(graph, "follower list decode", socialOps: Double(decoded) / copySeconds,
                              peerOps: Double(sqliteVisited) / sqliteListSeconds,
                              social: [Metric(key: "edges", label: "edges", value: Double(decoded)),
                                       Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(decoded) / copyCPUSeconds)],
                              peer: [Metric(key: "edges", label: "edges", value: Double(sqliteVisited)),
                                     Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(sqliteVisited) / sqliteListCPUSeconds)])
        copyRows[0].workload = "\(graph): follower list decode (copy), edges/s"
        copyRows[1].workload = "\(graph): follower list scan, edges/s"
        var forEachRow = row(graph, "follower list forEach, edges/s", "socialdb", ops: Double(visited) / forEachSeconds,
                             metrics: [Metric(key: "edges", label: "edges", value: Double(visited)),
                                       Metric(key: "checksum", label: "checksum mod 1000", value: Double(checksum % 1000)),
                                       Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(visited) / forEachCPUSeconds)])
        forEachRow.ratioVersusPeer = forEachRow.operationsPerSecond / copyRows[1].operationsPerSecond
        let topRow = row(graph, "follower list decode (copy), 100 most followed, edges/s", "socialdb", ops: Double(topDecoded) / topSeconds,
                         metrics: [Metric(key: "edges", label: "edges", value: Double(topDecoded)),
                                   Metric(key: "per_cpu_second", label: "per CPU-s", value: Double(topDecoded) / topCPUSeconds)])
        result.rows += copyRows + [forEachRow, topRow]
        if judged {
            result.targets.append(TargetCheck(description: "\(graph): follower-list decode edges/s (copy)", measured: copyRows[0].operationsPerSecond,
                                              threshold: 300_000_000, isRatio: false))
        }

        // Intersection: people u follows who follow x, x among the popular users.
        let pairs = (0..<sizes.setQueries).map { _ in (UInt32(random.next() % UInt64(users)), UInt32(random.next() % UInt64(min(users, 1000)))) }
        let intersection = try latencyPair(graph, "intersection (following of u who follow x)", count: pairs.count, peerCount: sizes.sqliteSetQueries,
                                           social: { i in _ = store.followingWhoFollow(pairs[i].0, pairs[i].1) },
                                           peer: { i in _ = try sqlite.intersection(Int64(pairs[i].0), Int64(pairs[i].1)) })
        let twoHop = try latencyPair(graph, "two-hop suggestions (top 10)", count: pairs.count / 4, peerCount: sizes.sqliteSetQueries / 4,
                                     social: { i in _ = store.suggestions(for: pairs[i].0, limit: 10, edgesScannedMax: 100_000) },
                                     peer: { i in _ = try sqlite.suggestions(Int64(pairs[i].0)) })
        result.rows += intersection + twoHop

        // Pages: 50 followers after a cursor (a random user number) of a popular user, as a
        // client pages through a follower list.
        let pageQueries = (0..<sizes.setQueries).map { _ in (UInt32(random.next() % UInt64(min(users, 1000))), UInt32(random.next() % UInt64(users))) }
        let pages = try latencyPair(graph, "follower page (50 after a cursor)", count: pageQueries.count, peerCount: sizes.sqliteSetQueries * 4,
                                    social: { i in _ = store.followers(of: pageQueries[i].0, after: pageQueries[i].1, limit: 50) },
                                    peer: { i in _ = try sqlite.followersPage(Int64(pageQueries[i].0), after: Int64(pageQueries[i].1), limit: 50) })
        result.rows += pages

        // Counts: follower and following counts of users of every size (random, and the 100 most
        // followed), as a profile shows them. One loop each, no per-call clock.
        var countUsers = (0..<sizes.membershipProbes / 10).map { _ in UInt32(random.next() % UInt64(users)) }
        countUsers += (0..<min(100, users)).map { UInt32($0) }
        var countSum = 0
        let countStart = monotonicNanoseconds()
        for u in countUsers { countSum &+= store.followerCount(u) &+ store.followingCount(u) }
        let countSeconds = seconds(from: countStart, to: monotonicNanoseconds())
        let sqliteCountUsers = Array(countUsers.suffix(min(countUsers.count, sizes.sqliteSetQueries * 4)))
        var sqliteCountSum = 0
        let sqliteCountStart = monotonicNanoseconds()
        for u in sqliteCountUsers { sqliteCountSum &+= try sqlite.followerCount(Int64(u)) &+ sqlite.followingCount(Int64(u)) }
        let sqliteCountSeconds = seconds(from: sqliteCountStart, to: monotonicNanoseconds())
        result.rows += paired(graph, "follower + following count (pairs/s)", socialOps: Double(countUsers.count) / countSeconds,
                              peerOps: Double(sqliteCountUsers.count) / sqliteCountSeconds,
                              social: [Metric(key: "mean", label: "mean count", value: Double(countSum) / Double(countUsers.count), decimals: 1)],
                              peer: [Metric(key: "mean", label: "mean count", value: Double(sqliteCountSum) / Double(max(1, sqliteCountUsers.count)), decimals: 1)])

        // Durable writes: follow then unfollow of random new pairs, group-committed.
        let durable = try durableWrites(graph: graph, store: store, sqlite: sqlite, users: users)
        result.rows += durable
        let mergeStart = monotonicNanoseconds()
        let merged = try store.merge()
        let mergeSeconds = seconds(from: mergeStart, to: monotonicNanoseconds())
        result.rows.append(row(graph, "merge overlay into base", "socialdb", ops: Double(merged?.edges ?? 0) / mergeSeconds, metrics: [
            Metric(key: "seconds", label: "s", value: mergeSeconds, decimals: 2),
            Metric(key: "overlay_entries", label: "overlay entries", value: Double(stats.overlayEntries)),
        ]))
        if judged {
            for r in result.rows where r.suite == Self.name && r.workload.hasPrefix(graph + ":") && r.system == "socialdb" && r.ratioVersusPeer != nil && !r.workload.contains("batched")
                && (r.workload.contains("membership") || r.workload.contains("decode") || r.workload.contains("forEach") || r.workload.contains("intersection") || r.workload.contains("two-hop")
                    || r.workload.contains("page") || r.workload.contains("count (pairs/s)")) {
                result.targets.append(TargetCheck(description: "\(r.workload) vs SQLite", measured: r.ratioVersusPeer!, threshold: 20, isRatio: true))
            }
        }
        store.close()
        try log.close()
        sqlite.close()
        try scratch.discard(directory)
    }

    private func durableWrites(graph: String, store: GraphStore, sqlite: GraphSQLite, users: Int) throws -> [ResultRow] {
        let threads = sizes.writeThreads
        let samples = (0..<threads).map { _ in LatencySamples(capacity: 200_000) }
        let gate = StartGate()
        let failure = FirstFailure()
        let deadline = DeadlineBox()
        let workers = (0..<threads).map { t in
            BackgroundThread {
                var random = SplitMix(seed: UInt64(100 + t))
                gate.arriveAndWait()
                let stop = deadline.nanoseconds
                while true {
                    let a = UInt32(random.next() % UInt64(users)), b = UInt32(random.next() % UInt64(users))
                    if a == b { continue }
                    let before = monotonicNanoseconds()
                    do {
                        if random.next() & 1 == 0 { try store.follow(a, b) } else { try store.unfollow(a, b) }
                    } catch {
                        failure.record("\(error)")
                        return
                    }
                    let after = monotonicNanoseconds()
                    samples[t].record(nanoseconds: after - before)
                    if after >= stop { return }
                }
            }
        }
        gate.waitForArrivals(threads)
        let start = monotonicNanoseconds()
        deadline.set(start + UInt64(sizes.writeSeconds * 1e9))
        gate.open()
        for w in workers { w.join() }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        if let text = failure.text { throw BenchmarkFailure(description: "graph durable writes: \(text)") }
        let done = samples.reduce(0) { $0 + $1.count }
        let latency = percentiles(of: samples)

        let sqliteSamples = LatencySamples(capacity: 200_000)
        var random = SplitMix(seed: 7)
        let sqliteStart = monotonicNanoseconds()
        let sqliteStop = sqliteStart + UInt64(sizes.writeSeconds * 1e9)
        while true {
            let a = Int64(random.next() % UInt64(users)), b = Int64(random.next() % UInt64(users))
            if a == b { continue }
            let before = monotonicNanoseconds()
            if random.next() & 1 == 0 { try sqlite.follow(a, b) } else { try sqlite.unfollow(a, b) }
            let after = monotonicNanoseconds()
            sqliteSamples.record(nanoseconds: after - before)
            if after >= sqliteStop { break }
        }
        let sqliteElapsed = seconds(from: sqliteStart, to: monotonicNanoseconds())
        let sqliteLatency = percentiles(of: [sqliteSamples])
        var social = row(graph, "follow/unfollow durable, \(threads) threads", "socialdb", ops: Double(done) / elapsed,
                         metrics: [Metric(key: "ops", label: "ops", value: Double(done))])
        social.p50Microseconds = latency?.p50Microseconds
        social.p99Microseconds = latency?.p99Microseconds
        var peer = row(graph, "follow/unfollow durable, \(threads) threads", "sqlite", ops: Double(sqliteSamples.count) / sqliteElapsed,
                       metrics: [Metric(key: "ops", label: "ops", value: Double(sqliteSamples.count))])
        peer.workload = "\(graph): follow/unfollow durable, 1 connection"
        peer.p50Microseconds = sqliteLatency?.p50Microseconds
        peer.p99Microseconds = sqliteLatency?.p99Microseconds
        social.ratioVersusPeer = social.operationsPerSecond / peer.operationsPerSecond
        return [social, peer]
    }

    // MARK: Codec sizes

    /// What each candidate list codec would take for this graph's lists (coded lists only, no
    /// per-user index), computed over the very lists the store returns: the one in use
    /// (gap blocks of 128, each packed, Rice, adaptive Rice or varints; long follower lists
    /// packed or varints only), the same with every form allowed in every list, against bit-packed blocks of 32, byte varints of the gaps,
    /// Elias-Fano per list, Rice-coded gaps with the best parameter per list, and Elias-delta
    /// per gap. Sizes only, in bits per edge; the per-list header a codec needs (first value,
    /// parameter, lower-bit count) is counted as the bits it takes.
    private func codecSizes(_ graph: String, store: GraphStore, users: Int, edges: Int) -> [ResultRow] {
        var rows: [ResultRow] = []
        var list = ContiguousArray<UInt32>()
        func bits(_ v: UInt64) -> Int { 64 - v.leadingZeroBitCount }
        func varintBytes(_ v: UInt64) -> Int { max(1, (bits(v) + 6) / 7) }
        for direction in ["following", "followers"] {
            var packed128 = 0, allForms = 0, packed32 = 0, varint = 0, eliasFano = 0, rice = 0, delta = 0
            for u in 0..<users {
                if direction == "following" { store.copyFollowing(of: UInt32(u), into: &list) } else { store.copyFollowers(of: UInt32(u), into: &list) }
                let n = list.count
                guard n > 0 else { continue }
                // In use: the store's build options (lists up to a length per direction in every form).
                let dense = direction == "followers" ? store.buildOptions.denseFollowersMax : store.buildOptions.denseFollowingMax
                let forms: GraphCodec.Forms = n <= dense ? .all : .fast
                let riceLists = direction == "followers" && GraphFormat.riceFollowers(version: store.buildOptions.formatVersion)
                packed128 += list.withUnsafeBufferPointer { riceLists ? GraphRiceCodec.encodedSize($0) : GraphCodec.encodedSize($0, forms: forms) } * 8
                allForms += list.withUnsafeBufferPointer { GraphCodec.encodedSize($0, forms: .all) } * 8
                // Blocks of 32: directory (u32 first + u32 offset) when more than one block, a width byte each.
                var block = 0
                while block < n {
                    let end = min(n, block + 32)
                    var widest: UInt32 = 0
                    for i in (block + 1)..<max(block + 1, end) { widest |= list[i] &- list[i - 1] &- 1 }
                    packed32 += 8 + (end - block - 1) * bits(UInt64(widest))
                    block = end
                }
                packed32 += n > 32 ? ((n + 31) / 32) * 64 : varintBytes(UInt64(list[0])) * 8
                varint += varintBytes(UInt64(list[0])) * 8
                var gapSum: UInt64 = 0
                for i in 1..<n {
                    let gap = UInt64(list[i] &- list[i - 1] &- 1)
                    varint += varintBytes(gap) * 8
                    gapSum += gap
                    delta += 2 * bits(UInt64(bits(gap + 1))) - 1 + bits(gap + 1) - 1
                }
                delta += varintBytes(UInt64(list[0])) * 8
                // Elias-Fano over [first, last]: l low bits per value, n + (range >> l) upper bits, a byte for l.
                let range = UInt64(list[n - 1] - list[0]) + 1
                let l = n > 1 ? max(0, bits(range / UInt64(n)) - 1) : 0
                eliasFano += varintBytes(UInt64(list[0])) * 8 + 8 + n * l + n + Int(range >> UInt64(l))
                // Rice: best k for this list (k in 0...31), gap = q << k | r coded as q+1 unary bits then k bits.
                var best = Int.max
                for k in 0..<32 {
                    var total = 0
                    for i in 1..<n { total += Int(UInt64(list[i] &- list[i - 1] &- 1) >> UInt64(k)) + 1 + k }
                    best = min(best, total)
                    if UInt64(k) > UInt64(bits(gapSum)) { break }
                }
                rice += varintBytes(UInt64(list[0])) * 8 + 5 + best
            }
            let e = Double(max(edges, 1))
            rows.append(row(graph, "codec sizes, \(direction) lists", "socialdb", ops: .nan, metrics: [
                Metric(key: "packed128", label: "blocks of 128 (in use)", value: Double(packed128) / e, decimals: 2),
                Metric(key: "all_forms", label: "all forms in every list", value: Double(allForms) / e, decimals: 2),
                Metric(key: "packed32", label: "bit-packed 32", value: Double(packed32) / e, decimals: 2),
                Metric(key: "varint", label: "varint", value: Double(varint) / e, decimals: 2),
                Metric(key: "elias_fano", label: "Elias-Fano", value: Double(eliasFano) / e, decimals: 2),
                Metric(key: "rice", label: "Rice", value: Double(rice) / e, decimals: 2),
                Metric(key: "elias_delta", label: "Elias-delta", value: Double(delta) / e, decimals: 2),
            ]))
        }
        return rows
    }

    // MARK: Profile

    /// `socialdb-bench graph-profile USERS VARIANTS [ROWS]`: the synthetic graph of USERS users
    /// built once per variant (comma-separated: `4` or `5` for the format with every list in the
    /// fast forms, `5:F:G` for format 5 with following lists up to F values and follower lists up
    /// to G in every form, `max` for no limit), then the query rows (`copy`, `foreach`,
    /// `membership`, `intersection`, `page`; default all) over the same users and probes as the
    /// suite, in three rounds that take the variants in turn, the median round printed. No
    /// SQLite: for comparing codecs side by side in one process, or under callgrind with one
    /// variant and one row.
    static func profile(users: Int, variants: [String], rows: Set<String>) throws {
        let fileSystem = try FileSystem(backend: .automatic)
        let directory = "/tmp/socialdb-graph-profile"
        try? fileSystem.removeTree(directory)
        try fileSystem.makeDirectory(directory)
        defer { try? fileSystem.removeTree(directory) }
        let source = synthetic(users: users, seed: 2010)
        print("synthetic graph: \(users) users, \(source.count) edges drawn")
        var stores: [(name: String, store: GraphStore)] = []
        for (i, variant) in variants.enumerated() {
            let parts = variant.split(separator: ":").map(String.init)
            func limit(_ text: String) -> Int { text == "max" ? Int.max : Int(text) ?? 0 }
            let options = GraphBuildOptions(formatVersion: UInt32(parts[0]) ?? GraphFormat.formatVersion,
                                            denseFollowingMax: parts.count > 1 ? limit(parts[1]) : 0,
                                            denseFollowersMax: parts.count > 2 ? limit(parts[2]) : 0)
            let store = try GraphStore.open(directory: directory + "/v\(i)", fileSystem: fileSystem, log: nil, buildOptions: options)
            var edges = source
            let start = monotonicNanoseconds()
            try store.bulkLoad(&edges)
            let loadSeconds = seconds(from: start, to: monotonicNanoseconds())
            let s = store.statistics()
            print("\(variant): bits/edge following \(Format.grouped(s.following.bitsPerEdge, decimals: 2)) "
                + "(lists \(Format.grouped(s.following.listBitsPerEdge, decimals: 2)), index \(s.following.indexBytes) B), "
                + "followers \(Format.grouped(s.followers.bitsPerEdge, decimals: 2)) "
                + "(lists \(Format.grouped(s.followers.listBitsPerEdge, decimals: 2)), index \(s.followers.indexBytes) B, "
                + "search marks \(Format.grouped(s.followers.searchMarkBitsPerEdge, decimals: 2))); "
                + "load \(Format.grouped(Double(s.edges) / loadSeconds)) edges/s")
            stores.append((name: variant, store: store))
        }
        // The suite's users and probes (same seeds and order of draws).
        var random = SplitMix(seed: 5)
        var probes = ContiguousArray<UInt64>()
        for i in 0..<2_000_000 {
            if i & 1 == 0 {
                probes.append(source[Int(random.next() % UInt64(source.count))])
            } else {
                probes.append((random.next() % UInt64(users)) << 32 | random.next() % UInt64(users))
            }
        }
        var listUsers = (0..<20_000).map { _ in UInt32(random.next() % UInt64(users)) }
        listUsers += (0..<min(100, users)).map { UInt32($0) }
        let pairs = (0..<20_000).map { _ in (UInt32(random.next() % UInt64(users)), UInt32(random.next() % UInt64(min(users, 1000)))) }
        let pageQueries = (0..<20_000).map { _ in (UInt32(random.next() % UInt64(min(users, 1000))), UInt32(random.next() % UInt64(users))) }
        if rows.contains("analysis"), let first = stores.first {
            codingAnalysis(first.store, users: users)
        }
        let all = ["copy", "foreach", "membership", "intersection", "page"]
        let chosen = all.filter { rows.isEmpty || rows.contains($0) }
        // rates[variant][row] over the rounds.
        var rates = [[String: [Double]]](repeating: [:], count: stores.count)
        // The same over the measuring thread's CPU time (the wall clock suffers on a loaded machine).
        var cpuRates = [[String: [Double]]](repeating: [:], count: stores.count)
        var checks = [[String: UInt64]](repeating: [:], count: stores.count)
        for _ in 0..<3 {
            for (v, entry) in stores.enumerated() {
                let store = entry.store
                for row in chosen {
                    var work = 0
                    var check: UInt64 = 0
                    let start = monotonicNanoseconds()
                    let cpuStart = threadCPUNanoseconds()
                    switch row {
                    case "copy":
                        var buffer = ContiguousArray<UInt32>()
                        for u in listUsers {
                            store.copyFollowers(of: u, into: &buffer)
                            work += buffer.count
                            check &+= UInt64(buffer.last ?? 0)
                        }
                    case "foreach":
                        for u in listUsers { store.forEachFollower(of: u) { check &+= UInt64($0); work &+= 1 } }
                    case "membership":
                        for p in probes where store.follows(UInt32(p >> 32), UInt32(truncatingIfNeeded: p)) { check &+= 1 }
                        work = probes.count
                    case "intersection":
                        for (u, x) in pairs { check &+= UInt64(store.followingWhoFollow(u, x).count) }
                        work = pairs.count
                    default:
                        for (u, after) in pageQueries { check &+= UInt64(store.followers(of: u, after: after, limit: 50).count) }
                        work = pageQueries.count
                    }
                    let elapsed = seconds(from: start, to: monotonicNanoseconds())
                    rates[v][row, default: []].append(Double(work) / elapsed)
                    cpuRates[v][row, default: []].append(Double(work) / seconds(from: cpuStart, to: threadCPUNanoseconds()))
                    if let previous = checks[v][row], previous != check { print("\(entry.name) \(row): answers differ between rounds") }
                    checks[v][row] = check
                }
            }
        }
        print("median of 3 rounds (copy and foreach in edges/s, the rest in queries/s; per CPU-s in brackets):")
        for (v, entry) in stores.enumerated() {
            var line = entry.name + String(repeating: " ", count: max(0, 14 - entry.name.count))
            for row in chosen {
                let sorted = rates[v][row]!.sorted()
                let cpu = cpuRates[v][row]!.sorted()
                line += "  \(row) \(Format.grouped(sorted[sorted.count / 2])) [\(Format.grouped(cpu[cpu.count / 2]))]"
            }
            print(line)
        }
        print("each round in order (per CPU-s):")
        for (v, entry) in stores.enumerated() {
            for row in chosen {
                let rounds = zip(rates[v][row]!, cpuRates[v][row]!).map { "\(Format.grouped($0.0)) [\(Format.grouped($0.1))]" }
                print("  \(entry.name) \(row): " + rounds.joined(separator: ", "))
            }
        }
        for row in chosen where Set(checks.map { $0[row] }).count > 1 {
            print("VERIFICATION FAILED: the variants' answers differ on \(row)")
        }
        for entry in stores { entry.store.close() }
    }

    /// `graph-profile USERS V analysis`: bits per edge of each direction's lists (index
    /// included, as format 5 lays it out) under candidate codings, against the entropy of a
    /// random subset of the users of each list's size (log2 C(N, d) a list): the codings in use,
    /// every form, and Rice lists (one parameter a list, no mode byte, the first value coded as
    /// a gap, a bit-packed directory of block first values and byte offsets) with a header of
    /// 8, 5 or 0 bits, blocks of 128 or 256, the escaped degree kept or not.
    static func codingAnalysis(_ store: GraphStore, users: Int) {
        func bits(_ v: UInt64) -> Int { 64 - v.leadingZeroBitCount }
        func riceBits(_ gaps: ArraySlice<UInt64>, _ k: Int) -> Int {
            var total = gaps.count * (k + 1)
            for g in gaps { total += Int(g >> UInt64(k)) }
            return total
        }
        func bestRice(_ gaps: ArraySlice<UInt64>) -> (k: Int, bits: Int) {
            var best = (k: 0, bits: Int.max)
            for k in 0...31 {
                let b = riceBits(gaps, k)
                if b < best.bits { best = (k, b) } else if k > 0 && b > best.bits { break }
            }
            return best
        }
        func log2Binomial(_ n: Int, _ k: Int) -> Double {
            (lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))) / log(2.0)
        }
        let variants = ["in use", "all forms", "rice h8 b128", "rice h5 b128", "rice h0 b128", "rice h8 b256", "rice h5 b128 noesc",
                        "rice h5 b128 blockk"]
        var list = ContiguousArray<UInt32>()
        for direction in ["following", "followers"] {
            var entropy = 0.0
            var edges = 0
            var listBits = [Int](repeating: 0, count: variants.count)
            var longEntries = [Int](repeating: 0, count: variants.count)
            var parts = (directory: 0, header: 0, padding: 0, gaps: 0)
            for u in 0..<users {
                if direction == "following" { store.copyFollowing(of: UInt32(u), into: &list) } else { store.copyFollowers(of: UInt32(u), into: &list) }
                let d = list.count
                guard d > 0 else { continue }
                edges += d
                entropy += log2Binomial(users, d)
                let escape = d >= 255 ? 32 : 0
                let dense = direction == "followers" ? store.buildOptions.denseFollowersMax : store.buildOptions.denseFollowingMax
                var sizes = [Int](repeating: 0, count: variants.count)
                let rice = direction == "followers" && GraphFormat.riceFollowers(version: store.buildOptions.formatVersion)
                sizes[0] = list.withUnsafeBufferPointer { rice ? GraphRiceCodec.encodedSize($0) : GraphCodec.encodedSize($0, forms: d <= dense ? .all : .fast) } * 8 + escape
                sizes[1] = list.withUnsafeBufferPointer { GraphCodec.encodedSize($0, forms: .all) } * 8 + escape
                var gaps = [UInt64](repeating: 0, count: d)
                gaps[0] = UInt64(list[0])
                for i in 1..<d { gaps[i] = UInt64(list[i] - list[i - 1] - 1) }
                for (v, name) in variants.enumerated() where v >= 2 {
                    let header = name.contains("h8") ? 8 : name.contains("h5") ? 5 : 0
                    let block = name.contains("b256") ? 256 : 128
                    let esc = name.contains("noesc") ? 0 : escape
                    if d <= 128 {
                        let r = bestRice(gaps[0..<d])
                        let total = header + r.bits
                        sizes[v] = (total + 7) / 8 * 8 + esc
                        if v == 3 { parts.header += header; parts.gaps += r.bits; parts.padding += (total + 7) / 8 * 8 - total }
                        continue
                    }
                    // Long: one k for the list (or per block), blocks byte-aligned, directory packed.
                    let blocks = (d + block - 1) / block
                    var inner: [UInt64] = []
                    for b in 0..<blocks { inner += gaps[(b * block + 1)..<min(d, (b + 1) * block)] }
                    let k = bestRice(inner[...]).k
                    var bodyBytes = 0
                    var lastOffset = 0
                    var gapBits = 0, pad = 0
                    for b in 0..<blocks {
                        let slice = gaps[(b * block + 1)..<min(d, (b + 1) * block)]
                        let bb = name.contains("blockk") ? bestRice(slice).bits + 5 : riceBits(slice, k)
                        lastOffset = bodyBytes
                        bodyBytes += (bb + 7) / 8
                        gapBits += bb
                        pad += (bb + 7) / 8 * 8 - bb
                    }
                    let entry = bits(UInt64(list[d - 1])) + bits(UInt64(lastOffset))
                    let directory = header + 12 + blocks * entry
                    let directoryBytes = (directory + 7) / 8
                    sizes[v] = (directoryBytes + bodyBytes) * 8 + esc
                    if v == 3 {
                        parts.header += header + 12; parts.directory += blocks * entry; parts.gaps += gapBits
                        parts.padding += pad + directoryBytes * 8 - directory
                    }
                }
                for v in 0..<variants.count {
                    listBits[v] += sizes[v]
                    if sizes[v] > 254 * 8 { longEntries[v] += 1 }
                }
            }
            let e = Double(max(edges, 1))
            let groupBits = Double(GraphFormat.groupCount(userCount: users) * GraphFormat.groupBytes * 8 + 64)
            print("\(direction): \(edges) edges, entropy of random subsets \(Format.grouped(entropy / e, decimals: 3)) bits/edge; "
                + "index without long table \(Format.grouped(groupBits / e, decimals: 3))")
            for (v, name) in variants.enumerated() {
                let index = groupBits + Double(longEntries[v] * 64)
                print("  \(name): \(Format.grouped((Double(listBits[v]) + index) / e, decimals: 3)) bits/edge (lists \(Format.grouped(Double(listBits[v]) / e, decimals: 3)))")
            }
            print("  rice h5 b128 parts: gaps \(Format.grouped(Double(parts.gaps) / e, decimals: 3)), directory \(Format.grouped(Double(parts.directory) / e, decimals: 3)), "
                + "headers \(Format.grouped(Double(parts.header) / e, decimals: 3)), padding \(Format.grouped(Double(parts.padding) / e, decimals: 3))")
        }
    }

    // MARK: Helpers

    static func permutation(_ count: Int, seed: UInt64) -> [UInt32] {
        var p = (0..<count).map { UInt32($0) }
        var random = SplitMix(seed: seed)
        for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return p
    }

    private func row(_ graph: String, _ workload: String, _ system: String, ops: Double, metrics: [Metric] = []) -> ResultRow {
        ResultRow(suite: Self.name, workload: "\(graph): \(workload)", system: system, operationsPerSecond: ops,
                  p50Microseconds: nil, p99Microseconds: nil, ratioVersusPeer: nil, metrics: metrics)
    }

    private func paired(_ graph: String, _ workload: String, socialOps: Double, peerOps: Double, social: [Metric], peer: [Metric]) -> [ResultRow] {
        var a = row(graph, workload, "socialdb", ops: socialOps, metrics: social)
        let b = row(graph, workload, "sqlite", ops: peerOps, metrics: peer)
        a.ratioVersusPeer = socialOps / peerOps
        return [a, b]
    }

    /// Times `count` calls of `social` and `peerCount` of `peer`, each call separately.
    private func latencyPair(_ graph: String, _ workload: String, count: Int, peerCount: Int,
                             social: (Int) throws -> Void, peer: (Int) throws -> Void) throws -> [ResultRow] {
        let socialSamples = LatencySamples(capacity: count)
        let socialStart = monotonicNanoseconds()
        for i in 0..<count {
            let before = monotonicNanoseconds()
            try social(i)
            socialSamples.record(nanoseconds: monotonicNanoseconds() - before)
        }
        let socialSeconds = seconds(from: socialStart, to: monotonicNanoseconds())
        let peerSamples = LatencySamples(capacity: peerCount)
        let peerStart = monotonicNanoseconds()
        for i in 0..<peerCount {
            let before = monotonicNanoseconds()
            try peer(i)
            peerSamples.record(nanoseconds: monotonicNanoseconds() - before)
        }
        let peerSeconds = seconds(from: peerStart, to: monotonicNanoseconds())
        var a = row(graph, workload, "socialdb", ops: Double(count) / socialSeconds)
        var b = row(graph, workload, "sqlite", ops: Double(peerCount) / peerSeconds)
        let sa = percentiles(of: [socialSamples]), sb = percentiles(of: [peerSamples])
        a.p50Microseconds = sa?.p50Microseconds; a.p99Microseconds = sa?.p99Microseconds
        b.p50Microseconds = sb?.p50Microseconds; b.p99Microseconds = sb?.p99Microseconds
        a.ratioVersusPeer = a.operationsPerSecond / b.operationsPerSecond
        return [a, b]
    }
}

/// splitmix64, for the suite's seeded choices.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The SQLite peer of the graph suite: one connection, prepared statements.
final class GraphSQLite {
    private var db: OpaquePointer?
    let path: String
    private var statements: [String: OpaquePointer] = [:]

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(path: String) throws {
        self.path = path
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw Failure(description: "sqlite open \(path)") }
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=FULL")
        try exec("PRAGMA cache_size=-262144")
        try exec("CREATE TABLE follows(src INTEGER NOT NULL, dst INTEGER NOT NULL, PRIMARY KEY(src, dst)) WITHOUT ROWID")
        try exec("CREATE INDEX follows_by_dst ON follows(dst, src)")
    }

    func close() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements = [:]
        sqlite3_close(db)
        db = nil
    }

    func exec(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "?"
            sqlite3_free(message)
            throw Failure(description: "sqlite: \(text) in \(sql)")
        }
    }

    private func statement(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] {
            sqlite3_reset(s)
            return s
        }
        var s: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK, let s else {
            throw Failure(description: "sqlite prepare: \(String(cString: sqlite3_errmsg(db)))")
        }
        statements[sql] = s
        return s
    }

    func bulkLoad(_ edges: ContiguousArray<UInt64>) throws {
        try exec("BEGIN")
        let s = try statement("INSERT OR IGNORE INTO follows(src, dst) VALUES (?1, ?2)")
        for e in edges {
            sqlite3_reset(s)
            sqlite3_bind_int64(s, 1, Int64(e >> 32))
            sqlite3_bind_int64(s, 2, Int64(e & 0xFFFF_FFFF))
            guard sqlite3_step(s) == SQLITE_DONE else { throw Failure(description: "sqlite insert failed") }
        }
        try exec("COMMIT")
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    func count() throws -> Int {
        let s = try statement("SELECT COUNT(*) FROM follows")
        guard sqlite3_step(s) == SQLITE_ROW else { throw Failure(description: "count") }
        return Int(sqlite3_column_int64(s, 0))
    }

    func bytesOnDisk() -> Int {
        var total = 0
        for suffix in ["", "-wal", "-shm"] {
            var info = stat()
            if stat(path + suffix, &info) == 0 { total += Int(info.st_size) }
        }
        return total
    }

    func follows(_ a: Int64, _ b: Int64) throws -> Bool {
        let s = try statement("SELECT 1 FROM follows WHERE src = ?1 AND dst = ?2")
        sqlite3_bind_int64(s, 1, a)
        sqlite3_bind_int64(s, 2, b)
        return sqlite3_step(s) == SQLITE_ROW
    }

    /// Steps through every follower of `u`; returns how many.
    func followers(_ u: Int64) throws -> Int {
        let s = try statement("SELECT src FROM follows WHERE dst = ?1 ORDER BY src")
        sqlite3_bind_int64(s, 1, u)
        var n = 0
        var sum: Int64 = 0
        while sqlite3_step(s) == SQLITE_ROW { sum &+= sqlite3_column_int64(s, 0); n += 1 }
        return n + Int(sum & 0)
    }

    /// Up to `limit` followers of `u` greater than `after`, in order.
    func followersPage(_ u: Int64, after: Int64, limit: Int) throws -> [Int64] {
        let s = try statement("SELECT src FROM follows WHERE dst = ?1 AND src > ?2 ORDER BY src LIMIT ?3")
        sqlite3_bind_int64(s, 1, u)
        sqlite3_bind_int64(s, 2, after)
        sqlite3_bind_int64(s, 3, Int64(limit))
        var result: [Int64] = []
        while sqlite3_step(s) == SQLITE_ROW { result.append(sqlite3_column_int64(s, 0)) }
        return result
    }

    func followerCount(_ u: Int64) throws -> Int {
        let s = try statement("SELECT COUNT(*) FROM follows WHERE dst = ?1")
        sqlite3_bind_int64(s, 1, u)
        guard sqlite3_step(s) == SQLITE_ROW else { throw Failure(description: "follower count") }
        return Int(sqlite3_column_int64(s, 0))
    }

    func followingCount(_ u: Int64) throws -> Int {
        let s = try statement("SELECT COUNT(*) FROM follows WHERE src = ?1")
        sqlite3_bind_int64(s, 1, u)
        guard sqlite3_step(s) == SQLITE_ROW else { throw Failure(description: "following count") }
        return Int(sqlite3_column_int64(s, 0))
    }

    func intersection(_ u: Int64, _ x: Int64) throws -> [Int64] {
        let s = try statement("SELECT f.dst FROM follows f JOIN follows g ON g.src = f.dst AND g.dst = ?2 WHERE f.src = ?1 ORDER BY f.dst")
        sqlite3_bind_int64(s, 1, u)
        sqlite3_bind_int64(s, 2, x)
        var result: [Int64] = []
        while sqlite3_step(s) == SQLITE_ROW { result.append(sqlite3_column_int64(s, 0)) }
        return result
    }

    func suggestions(_ u: Int64) throws -> [Int64] {
        let s = try statement("""
            SELECT b.dst, COUNT(*) AS c FROM follows a JOIN follows b ON b.src = a.dst
            WHERE a.src = ?1 AND b.dst != ?1 AND b.dst NOT IN (SELECT dst FROM follows WHERE src = ?1)
            GROUP BY b.dst ORDER BY c DESC, b.dst LIMIT 10
            """)
        sqlite3_bind_int64(s, 1, u)
        var result: [Int64] = []
        while sqlite3_step(s) == SQLITE_ROW { result.append(sqlite3_column_int64(s, 0)) }
        return result
    }

    func follow(_ a: Int64, _ b: Int64) throws {
        let s = try statement("INSERT OR IGNORE INTO follows(src, dst) VALUES (?1, ?2)")
        sqlite3_bind_int64(s, 1, a)
        sqlite3_bind_int64(s, 2, b)
        guard sqlite3_step(s) == SQLITE_DONE else { throw Failure(description: "sqlite follow failed") }
    }

    func unfollow(_ a: Int64, _ b: Int64) throws {
        let s = try statement("DELETE FROM follows WHERE src = ?1 AND dst = ?2")
        sqlite3_bind_int64(s, 1, a)
        sqlite3_bind_int64(s, 2, b)
        guard sqlite3_step(s) == SQLITE_DONE else { throw Failure(description: "sqlite unfollow failed") }
    }
}
