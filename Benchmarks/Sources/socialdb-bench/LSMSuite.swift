// `socialdb-bench lsm`: the tweet store (issue 3) against RocksDB and LevelDB, same data, same
// run, one fresh directory per system and data set.
//
// Per system, in this order:
// 1. `insert increasing ids`: N puts of `Keys.tweet(id)` (9 bytes) -> 200-byte value, ids
//    snowflake-like and increasing, one put per write (WAL on, no per-write sync), then one
//    fdatasync of the write-ahead log: all of it timed, so the figure is for data made durable.
// 2. `insert author keys`: N puts of `Keys.authorTweet(author, id)` -> empty value (N/100
//    authors), timed the same way (no target: the index the author scan reads).
// 3. Settle (memtable written out, background work finished): table bytes written and the
//    process's storage writes give the write amplification. Then a full compaction and `du`.
// 4. `get, warm`: N gets in a random order, once untimed to warm the caches, then timed.
// 5. `multi-get 20`: N/20 pages of 20 random ids (socialdb `multiGet` into a reused `RecordBatch`, RocksDB
//    `rocksdb_multi_get`, LevelDB 20 gets).
// 6. `author newest 20`: N/10 random authors, the newest 20 of each by a reverse scan (socialdb
//    `authorTweets`; the peers seek to the author's upper bound and step back 20 times), once
//    untimed, then timed.
// 7. `get, cold`: caches dropped (socialdb `dropCaches()`; the peers are closed, their files
//    fadvised DONTNEED, and reopened with a fresh block cache), then the N gets of row 4 timed.
// 8. In a second fresh directory: `insert random keys`, as row 1 with uniformly random 64-bit
//    ids, then settle, write amplification, full compaction and `du`.
//
// Every read checks its results against the data set; a mismatch is printed under the table.
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

struct LSMSuite {
    static let name = "lsm"
    static let valueBytes = 200
    static let pageSize = 20
    static let scanLimit = 20

    struct Sizes {
        var records: Int
        var authors: Int
        var pages: Int
        var scans: Int

        init(_ scale: Scale) {
            switch scale {
            case .small: records = 250_000
            case .medium: records = 1_000_000
            case .large: records = 4_000_000
            }
            authors = records / 100
            pages = records / LSMSuite.pageSize
            scans = records / 10
        }
    }

    enum System: CaseIterable {
        case socialdb, rocksdb, leveldb

        var name: String {
            switch self {
            case .socialdb: "socialdb"
            case .rocksdb: "RocksDB"
            case .leveldb: "LevelDB"
            }
        }

        func open(_ directory: String, fileSystem: FileSystem) throws -> any KVStore {
            switch self {
            case .socialdb: try SocialDBStore(directory: directory, fileSystem: fileSystem)
            case .rocksdb: try RocksDBStore(directory: directory)
            case .leveldb: try LevelDBStore(directory: directory)
            }
        }
    }

    let fileSystem: FileSystem
    let scratch: ScratchSpace
    let sizes: Sizes

    // MARK: the run

    func run() throws -> SuiteResult {
        let data = Dataset(sizes)
        var rows: [String: [ResultRow]] = [:]
        var problems: [String] = []
        for system in System.allCases {
            for row in try measureIncreasing(system, data, &problems) { rows[row.workload, default: []].append(row) }
            for row in try measureRandom(system, data) { rows[row.workload, default: []].append(row) }
        }

        var result = SuiteResult()
        var targets: [TargetCheck] = []
        func compare(_ workload: String, _ threshold: Double, _ what: String) {
            guard var group = rows[workload], let mine = group.firstIndex(where: { $0.system == "socialdb" }) else { return }
            let best = group.filter { $0.system != "socialdb" }.map(\.operationsPerSecond).max() ?? .nan
            group[mine].ratioVersusPeer = group[mine].operationsPerSecond / best
            rows[workload] = group
            targets.append(TargetCheck(description: "\(workload) \(what) vs the better peer",
                                       measured: group[mine].ratioVersusPeer ?? 0, threshold: threshold, isRatio: true))
        }
        compare(Workload.insertIncreasing, 1.5, "puts/s")
        compare(Workload.insertRandom, 1.0, "puts/s")
        compare(Workload.getWarm, 1.0, "gets/s")
        compare(Workload.getCold, 1.0, "gets/s")
        compare(Workload.multiGet, 1.5, "pages/s")
        compare(Workload.authorScan, 1.5, "scans/s")
        for workload in [Workload.diskIncreasing, Workload.diskRandom] {
            guard let mine = rows[workload]?.first(where: { $0.system == "socialdb" }) else { continue }
            let amplification = mine.metrics.first { $0.key == "space_amplification" }?.value ?? .nan
            targets.append(TargetCheck(description: "\(workload): socialdb space amplification (du / logical bytes)",
                                       measured: amplification, threshold: 1.2, isRatio: true, atMost: true))
        }
        for workload in Workload.order { result.rows += rows[workload] ?? [] }
        result.targets = targets
        result.notes = [
            "N = \(Format.grouped(Double(sizes.records))) tweets of 9-byte keys (Keys.tweet) and \(Self.valueBytes)-byte values; " +
                "\(Format.grouped(Double(sizes.authors))) authors; \(Format.grouped(Double(sizes.pages))) multi-get pages; " +
                "\(Format.grouped(Double(sizes.scans))) author scans.",
            "Options for all: WAL on, no per-write sync, one put per write; 64 MiB LRU block cache; no compression for",
            "  the peers, socialdb at its default (zstd per block, kept when it saves 1/8: the random values defeat it,",
            "  so only author-key blocks are stored compressed, and read decompressed through the block cache);",
            "  bloom filters of 10 bits/key; 4 KiB blocks; 32 MiB memtables; checksums verified on reads. Left at defaults:",
            "  level sizes and table sizes (socialdb and RocksDB: 256 MiB level 1, 64 MiB tables; LevelDB: 10 MiB, 2 MiB),",
            "  background threads (socialdb 1, RocksDB 2 jobs, LevelDB 1).",
            "Insert rows include the final fdatasync of the write-ahead log (socialdb log.sync(), RocksDB",
            "  rocksdb_flush_wal(sync), LevelDB an empty write with sync); background flushes/compactions still",
            "  running at that moment are not timed (their cost shows in the read rows' conditions and in `settle s`).",
            "Gets read the value in place where the API allows (socialdb withValue, RocksDB get_pinned); LevelDB's C API copies.",
            "Multi-gets: socialdb into a reused RecordBatch (values back to back in its buffer); RocksDB multi_get and LevelDB's gets malloc each value.",
            "Disk rows: du of the system's whole directory (tables, WAL, manifest, info logs) after settling and a full",
            "  compaction; space amp = du / logical bytes (keys + values written); table space amp = table files only;",
            "  write amp = bytes of table files written (flushes + compactions, before the forced full compaction) /",
            "  logical bytes (socialdb statistics; peers: their info logs' table-creation sizes); io write amp = the",
            "  process's storage writes (/proc/self/io write_bytes - cancelled_write_bytes, WAL included) over the same",
            "  span / logical bytes (a peer's WAL deleted before writeback counts as cancelled, never written).",
            "The machine may be shared: compare ratios within one run, and rerun before quoting a figure.",
            "ratio vs peer = socialdb ops/s / the better of RocksDB and LevelDB in the same run.",
        ]
        if problems.isEmpty {
            result.notes.append("verification: every get, multi-get and scan returned exactly the data set's values.")
        } else {
            result.notes += problems.map { "VERIFICATION FAILED: \($0)" }
        }
        return result
    }

    enum Workload {
        static let insertIncreasing = "insert increasing ids"
        static let insertAuthors = "insert author keys"
        static let insertRandom = "insert random keys"
        static let getWarm = "get, warm"
        static let getCold = "get, cold"
        static let multiGet = "multi-get 20"
        static let authorScan = "author newest 20"
        static let diskIncreasing = "disk: ids + author keys"
        static let diskRandom = "disk: random keys"
        static let order = [insertIncreasing, insertRandom, insertAuthors, getWarm, getCold, multiGet, authorScan,
                            diskIncreasing, diskRandom]
    }

    // MARK: per system

    private func measureIncreasing(_ system: System, _ data: Dataset, _ problems: inout [String]) throws -> [ResultRow] {
        let directory = try scratch.freshDirectory("lsm-\(system.name)-increasing")
        let ioBefore = ProcessIO.writtenBytes()
        let store = try system.open(directory, fileSystem: fileSystem)
        var rows: [ResultRow] = []

        rows.append(try insert(store, workload: Workload.insertIncreasing, count: data.count) { i, key, value in
            data.tweetKey(i, key)
            data.value(i, value)
        })
        rows.append(try insert(store, workload: Workload.insertAuthors, count: data.count) { i, key, value in
            data.authorKey(i, key)
            value = UnsafeMutableRawBufferPointer(rebasing: value[0..<0])
        })
        let logical = UInt64(data.count) * UInt64(9 + Self.valueBytes) + UInt64(data.count) * 17
        rows.append(try disk(store, workload: Workload.diskIncreasing, directory: directory, logical: logical, ioBefore: ioBefore))

        // Reads.
        rows.append(try gets(store, workload: Workload.getWarm, data, warmUp: true, &problems))
        rows.append(try multiGets(store, data, &problems))
        rows.append(try authorScans(store, data, &problems))
        try store.dropCaches(directory: directory)
        rows.append(try gets(store, workload: Workload.getCold, data, warmUp: false, &problems))

        try store.close()
        try scratch.discard(directory)
        return rows
    }

    private func measureRandom(_ system: System, _ data: Dataset) throws -> [ResultRow] {
        let directory = try scratch.freshDirectory("lsm-\(system.name)-random")
        let ioBefore = ProcessIO.writtenBytes()
        let store = try system.open(directory, fileSystem: fileSystem)
        var rows: [ResultRow] = []
        rows.append(try insert(store, workload: Workload.insertRandom, count: data.count) { i, key, value in
            data.randomKey(i, key)
            data.value(i, value)
        })
        let logical = UInt64(data.count) * UInt64(9 + Self.valueBytes)
        rows.append(try disk(store, workload: Workload.diskRandom, directory: directory, logical: logical, ioBefore: ioBefore))
        try store.close()
        try scratch.discard(directory)
        return rows
    }

    // MARK: rows

    /// `count` puts made by `fill` (which sets the key and may shorten the value), then one
    /// fdatasync of the write-ahead log: all timed.
    private func insert(_ store: some KVStore, workload: String, count: Int,
                        _ fill: (Int, UnsafeMutableRawBufferPointer, inout UnsafeMutableRawBufferPointer) -> Void) throws -> ResultRow {
        let keyBuffer = AlignedBuffer(count: 32)
        let valueBuffer = AlignedBuffer(count: Self.valueBytes)
        let progress = ProgressBar("\(workload) (\(store.systemName))", total: count)
        var payload: UInt64 = 0
        let start = monotonicNanoseconds()
        let keyBytes = workload == Workload.insertAuthors ? 17 : 9
        for i in 0..<count {
            let key = keyBuffer.bytes(from: 0, count: keyBytes)
            var value = valueBuffer.bytes(from: 0, count: Self.valueBytes)
            fill(i, key, &value)
            try store.put(UnsafeRawBufferPointer(key), UnsafeRawBufferPointer(value))
            payload &+= UInt64(key.count + value.count)
            if i & 0x3FFF == 0 { progress.update(done: i) }
        }
        let syncing = monotonicNanoseconds()
        try store.makeDurable()
        let end = monotonicNanoseconds()
        progress.finish()
        let elapsed = seconds(from: start, to: end)
        return ResultRow(
            suite: Self.name, workload: workload, system: store.systemName,
            operationsPerSecond: Double(count) / elapsed, p50Microseconds: nil, p99Microseconds: nil, ratioVersusPeer: nil,
            metrics: [
                Metric(key: "mb_per_sec", label: "MB/s", value: Double(payload) / elapsed / 1e6, decimals: 1),
                Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
                Metric(key: "sync_seconds", label: "sync s", value: seconds(from: syncing, to: end), decimals: 3),
            ])
    }

    /// Settles, takes the write amplification, compacts fully and measures the directory.
    private func disk(_ store: some KVStore, workload: String, directory: String, logical: UInt64, ioBefore: UInt64?) throws -> ResultRow {
        let settling = monotonicNanoseconds()
        try store.settle()
        let settleSeconds = seconds(from: settling, to: monotonicNanoseconds())
        let tableBytes = store.tableBytesWritten(directory: directory)
        let ioAfter = ProcessIO.writtenBytes()
        let compacting = monotonicNanoseconds()
        try store.compactFully()
        let compactSeconds = seconds(from: compacting, to: monotonicNanoseconds())
        let usage = DirectoryUsage.usage(directory)
        let l = Double(logical)
        var metrics = [
            Metric(key: "space_amplification", label: "space amp", value: Double(usage.total) / l, decimals: 3),
            Metric(key: "table_space_amplification", label: "table space amp", value: Double(usage.tables) / l, decimals: 3),
            Metric(key: "du_mb", label: "du MB", value: Double(usage.total) / 1e6, decimals: 1),
            Metric(key: "table_mb", label: "tables MB", value: Double(usage.tables) / 1e6, decimals: 1),
            Metric(key: "wal_mb", label: "WAL MB", value: Double(usage.wal) / 1e6, decimals: 1),
            Metric(key: "logical_mb", label: "logical MB", value: l / 1e6, decimals: 1),
        ]
        metrics.append(Metric(key: "write_amplification", label: "write amp", value: tableBytes.map { Double($0) / l } ?? .nan, decimals: 2))
        if let ioBefore, let ioAfter {
            metrics.append(Metric(key: "io_write_amplification", label: "io write amp",
                                  value: Double(ioAfter &- ioBefore) / l, decimals: 2))
        }
        metrics.append(Metric(key: "settle_seconds", label: "settle s", value: settleSeconds, decimals: 2))
        metrics.append(Metric(key: "compact_seconds", label: "full compaction s", value: compactSeconds, decimals: 2))
        return ResultRow(suite: Self.name, workload: workload, system: store.systemName,
                         operationsPerSecond: .nan, p50Microseconds: nil, p99Microseconds: nil, ratioVersusPeer: nil,
                         metrics: metrics)
    }

    private func gets(_ store: some KVStore, workload: String, _ data: Dataset, warmUp: Bool, _ problems: inout [String]) throws -> ResultRow {
        let keyBuffer = AlignedBuffer(count: 16)
        let key = keyBuffer.bytes(from: 0, count: 9)
        let progress = ProgressBar("\(workload) (\(store.systemName))", total: data.count * (warmUp ? 2 : 1))
        if warmUp {
            var sink: UInt64 = 0
            for (n, i) in data.getOrder.enumerated() {
                data.tweetKey(Int(i), key)
                _ = try store.get(UnsafeRawBufferPointer(key), check: &sink)
                if n & 0x3FFF == 0 { progress.update(done: n) }
            }
        }
        let hitsBefore = (store as? SocialDBStore)?.tree.statistics
        let samples = LatencySamples(capacity: data.count)
        var found = 0
        var check: UInt64 = 0
        let offset = warmUp ? data.count : 0
        let start = monotonicNanoseconds()
        for (n, i) in data.getOrder.enumerated() {
            data.tweetKey(Int(i), key)
            let before = monotonicNanoseconds()
            let length = try store.get(UnsafeRawBufferPointer(key), check: &check)
            samples.record(nanoseconds: monotonicNanoseconds() - before)
            if length == Self.valueBytes { found += 1 }
            if n & 0x3FFF == 0 { progress.update(done: offset + n) }
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        progress.finish()
        if found != data.count || check != data.idSum {
            problems.append("\(store.systemName) \(workload): \(found) of \(data.count) found, value check \(check == data.idSum ? "ok" : "wrong")")
        }
        let latency = percentiles(of: [samples])
        var metrics = [
            Metric(key: "found", label: "found", value: Double(found)),
            Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
        ]
        if let hitsBefore, let after = (store as? SocialDBStore)?.tree.statistics {
            let hits = after.cacheHits - hitsBefore.cacheHits
            let misses = after.cacheMisses - hitsBefore.cacheMisses
            metrics.append(Metric(key: "block_cache_hit_rate", label: "block cache hit %",
                                  value: hits + misses == 0 ? 0 : 100 * Double(hits) / Double(hits + misses), decimals: 1))
        }
        return ResultRow(suite: Self.name, workload: workload, system: store.systemName,
                         operationsPerSecond: Double(data.count) / elapsed,
                         p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
                         ratioVersusPeer: nil, metrics: metrics)
    }

    private func multiGets(_ store: some KVStore, _ data: Dataset, _ problems: inout [String]) throws -> ResultRow {
        let workload = Workload.multiGet
        let samples = LatencySamples(capacity: sizes.pages)
        let progress = ProgressBar("\(workload) (\(store.systemName))", total: sizes.pages)
        var found = 0
        var check: UInt64 = 0
        var expected: UInt64 = 0
        let start = monotonicNanoseconds()
        for page in 0..<sizes.pages {
            var keys: [[UInt8]] = []
            keys.reserveCapacity(Self.pageSize)
            for j in 0..<Self.pageSize {
                let i = data.pageRecord(page: page, slot: j)
                keys.append(Keys.tweet(data.ids[i]))
            }
            let before = monotonicNanoseconds()
            found += try store.multiGet(keys, check: &check)
            samples.record(nanoseconds: monotonicNanoseconds() - before)
            if page & 0x3FF == 0 { progress.update(done: page) }
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        progress.finish()
        for page in 0..<sizes.pages {
            for j in 0..<Self.pageSize { expected &+= data.ids[data.pageRecord(page: page, slot: j)] }
        }
        if found != sizes.pages * Self.pageSize || check != expected {
            problems.append("\(store.systemName) \(workload): \(found) of \(sizes.pages * Self.pageSize) found, value check \(check == expected ? "ok" : "wrong")")
        }
        let latency = percentiles(of: [samples])
        return ResultRow(suite: Self.name, workload: workload, system: store.systemName,
                         operationsPerSecond: Double(sizes.pages) / elapsed,
                         p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
                         ratioVersusPeer: nil,
                         metrics: [
                            Metric(key: "keys_per_sec", label: "keys/s", value: Double(found) / elapsed),
                            Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
                         ])
    }

    private func authorScans(_ store: some KVStore, _ data: Dataset, _ problems: inout [String]) throws -> ResultRow {
        let workload = Workload.authorScan
        let progress = ProgressBar("\(workload) (\(store.systemName))", total: sizes.scans * 2)
        for (n, author) in data.scanAuthors.enumerated() {
            _ = try store.newestOfAuthor(UInt64(author), limit: Self.scanLimit)
            if n & 0x3FF == 0 { progress.update(done: n) }
        }
        let samples = LatencySamples(capacity: sizes.scans)
        var count = 0
        var sum: UInt64 = 0
        let start = monotonicNanoseconds()
        for (n, author) in data.scanAuthors.enumerated() {
            let before = monotonicNanoseconds()
            let r = try store.newestOfAuthor(UInt64(author), limit: Self.scanLimit)
            samples.record(nanoseconds: monotonicNanoseconds() - before)
            count += r.count
            sum &+= r.idSum
            if n & 0x3FF == 0 { progress.update(done: sizes.scans + n) }
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        progress.finish()
        let expected = data.expectedScans(limit: Self.scanLimit)
        if count != expected.count || sum != expected.idSum {
            problems.append("\(store.systemName) \(workload): \(count) entries (expected \(expected.count)), id sum \(sum == expected.idSum ? "ok" : "wrong")")
        }
        let latency = percentiles(of: [samples])
        return ResultRow(suite: Self.name, workload: workload, system: store.systemName,
                         operationsPerSecond: Double(sizes.scans) / elapsed,
                         p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
                         ratioVersusPeer: nil,
                         metrics: [
                            Metric(key: "entries", label: "entries", value: Double(count)),
                            Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
                         ])
    }
}

// MARK: the data set

/// Everything every system gets, generated once from fixed seeds.
final class Dataset {
    let count: Int
    /// Snowflake-like ids, increasing: (milliseconds since an epoch << 22) | (worker << 12) | sequence,
    /// 64 tweets per millisecond.
    let ids: [UInt64]
    /// The author of each tweet.
    let authors: [UInt32]
    /// Uniformly random 64-bit ids for the random-key insert.
    let randomIds: [UInt64]
    /// A random permutation of the records: the order of the gets.
    let getOrder: [Int32]
    /// Random authors to scan.
    let scanAuthors: [UInt32]
    /// The sum of every id (what the value check of a full pass of gets adds up to).
    let idSum: UInt64
    private let pool: AlignedBuffer
    private let authorCount: Int

    init(_ sizes: LSMSuite.Sizes) {
        count = sizes.records
        authorCount = max(1, sizes.authors)
        var rng = SplitMix64(seed: 0x5EED_0003)
        let startMillis: UInt64 = 1_700_000_000_000 - 1_288_834_974_657
        var ids = [UInt64](repeating: 0, count: count)
        var sum: UInt64 = 0
        for i in 0..<count {
            ids[i] = ((startMillis + UInt64(i / 64)) << 22) | (1 << 12) | UInt64(i % 64)
            sum &+= ids[i]
        }
        self.ids = ids
        idSum = sum
        authors = (0..<count).map { _ in UInt32(rng.next() % UInt64(max(1, sizes.authors))) }
        randomIds = (0..<count).map { _ in rng.next() }
        var order = (0..<count).map { Int32($0) }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        getOrder = order
        scanAuthors = (0..<sizes.scans).map { _ in UInt32(rng.next() % UInt64(max(1, sizes.authors))) }
        pool = AlignedBuffer(count: 1 << 16)
        fillPseudoRandom(pool.bytes, seed: 0xDA7A)
    }

    @inline(__always)
    func tweetKey(_ i: Int, _ key: UnsafeMutableRawBufferPointer) {
        key[0] = KeySpace.tweets.rawValue
        key.storeBytes(of: ids[i].bigEndian, toByteOffset: 1, as: UInt64.self)
    }

    @inline(__always)
    func randomKey(_ i: Int, _ key: UnsafeMutableRawBufferPointer) {
        key[0] = KeySpace.tweets.rawValue
        key.storeBytes(of: randomIds[i].bigEndian, toByteOffset: 1, as: UInt64.self)
    }

    @inline(__always)
    func authorKey(_ i: Int, _ key: UnsafeMutableRawBufferPointer) {
        key[0] = KeySpace.tweetsByAuthor.rawValue
        key.storeBytes(of: UInt64(authors[i]).bigEndian, toByteOffset: 1, as: UInt64.self)
        key.storeBytes(of: ids[i].bigEndian, toByteOffset: 9, as: UInt64.self)
    }

    /// A 200-byte value: the id (little-endian, what the reads check), then bytes of a random pool.
    @inline(__always)
    func value(_ i: Int, _ value: UnsafeMutableRawBufferPointer) {
        value.storeBytes(of: ids[i], toByteOffset: 0, as: UInt64.self)
        let offset = (i &* 997) % (pool.count - value.count)
        (value.baseAddress! + 8).copyMemory(from: pool.baseAddress + offset, byteCount: value.count - 8)
    }

    /// The record of slot `slot` of multi-get page `page`: random, from the other half of the get order.
    @inline(__always)
    func pageRecord(page: Int, slot: Int) -> Int {
        Int(getOrder[(page * LSMSuite.pageSize + slot + count / 2) % count])
    }

    /// What the author scans should return in total: entries and the sum of their ids.
    func expectedScans(limit: Int) -> (count: Int, idSum: UInt64) {
        var perAuthor = [[UInt64]](repeating: [], count: authorCount)
        for i in 0..<count { perAuthor[Int(authors[i])].append(ids[i]) }
        var total = 0
        var sum: UInt64 = 0
        for author in scanAuthors {
            let newest = perAuthor[Int(author)].suffix(limit)
            total += newest.count
            sum = newest.reduce(sum, &+)
        }
        return (total, sum)
    }
}

/// A small seeded generator (SplitMix64), so every run and every system gets the same data.
struct SplitMix64 {
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

// MARK: profiling

extension LSMSuite {
    /// `lsm-profile RECORDS ROW [DIR] [--peers]`: the increasing-id data set loaded into
    /// socialdb's tree alone (with `--peers`, RocksDB and LevelDB one after the other), settled
    /// and fully compacted, then one read row (`get`, `multi-get`, `author`) run twice, for a
    /// profiler such as callgrind (`--toggle-collect` on the row's function) or side-by-side
    /// timings; prints the row's figures and its verification.
    static func profile(records: Int, row: String, directory: String, withPeers: Bool) throws {
        var sizes = Sizes(.small)
        sizes.records = records
        sizes.authors = max(1, records / 100)
        sizes.pages = records / pageSize
        sizes.scans = records / 10
        let fileSystem = try FileSystem(backend: .automatic)
        try? fileSystem.removeTree(directory)
        try fileSystem.makeDirectory(directory)
        let scratch = try ScratchSpace(fileSystem: fileSystem, base: directory)
        let suite = LSMSuite(fileSystem: fileSystem, scratch: scratch, sizes: sizes)
        let data = Dataset(sizes)
        for system in withPeers ? System.allCases : [.socialdb] {
            let path = try scratch.freshDirectory("lsm-profile-\(system.name)")
            let store = try system.open(path, fileSystem: fileSystem)
            var problems: [String] = []
            for i in 0..<data.count {
                try withUnsafeTemporaryAllocation(byteCount: 32 + valueBytes, alignment: 8) { buffer in
                    let key = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<9])
                    let value = UnsafeMutableRawBufferPointer(rebasing: buffer[32..<(32 + valueBytes)])
                    data.tweetKey(i, key)
                    data.value(i, value)
                    try store.put(UnsafeRawBufferPointer(key), UnsafeRawBufferPointer(value))
                    let authorKey = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<17])
                    data.authorKey(i, authorKey)
                    try store.put(UnsafeRawBufferPointer(authorKey), UnsafeRawBufferPointer(rebasing: buffer[32..<32]))
                }
            }
            try store.settle()
            try store.compactFully()
            for _ in 0..<2 {
                let result: ResultRow
                switch row {
                case "get": result = try suite.gets(store, workload: Workload.getWarm, data, warmUp: false, &problems)
                case "multi-get": result = try suite.multiGets(store, data, &problems)
                case "author": result = try suite.authorScans(store, data, &problems)
                default: throw BenchmarkFailure(description: "unknown row \(row) (get, multi-get, author)")
                }
                print("\(system.name) \(row): \(Format.grouped(result.operationsPerSecond)) ops/s, p50 \(result.p50Microseconds ?? .nan) us")
            }
            print(problems.isEmpty ? "\(system.name): verification ok" : "\(system.name): VERIFICATION FAILED: \(problems)")
            try store.close()
            try scratch.discard(path)
        }
    }
}
