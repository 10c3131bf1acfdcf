// The three key-value stores of `socialdb-bench lsm` behind one small protocol, so every row runs
// the same loop over the same keys and values for each of them:
//
// - socialdb: the LSM tree with its durable log as write-ahead log (sync policy `off`).
// - RocksDB and LevelDB through their C APIs (Debian librocksdb-dev, libleveldb-dev).
//
// Options are matched as near as they go: WAL on and no per-write sync, no compression (socialdb
// keeps its default, zstd per block when that saves 1/8, which the suite's random values defeat
// except in author-key blocks), a 64 MiB
// LRU block cache, bloom filters of 10 bits per key, 4 KiB data blocks, 32 MiB memtables
// (socialdb's default), checksums verified on every read. What cannot be matched is left at
// each peer's default and named in the suite's notes.
import CLevelDB
import CRocksDB
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

/// The options every system gets.
enum LSMBenchOptions {
    static let blockCacheBytes = 64 << 20
    static let memtableBytes = 32 << 20
    static let blockBytes = 4096
    static let bloomBitsPerKey = 10
}

/// One key-value store under measurement. Keys and values are raw bytes valid only during a call.
protocol KVStore: AnyObject {
    var systemName: String { get }
    /// One put, acknowledged once in the write-ahead log's buffer (no per-write sync).
    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws
    /// Makes every put so far durable (an fdatasync of the write-ahead log).
    func makeDurable() throws
    /// The value's byte count, or -1 when the key is absent; `check` gets the value's first 8 bytes.
    func get(_ key: UnsafeRawBufferPointer, check: inout UInt64) throws -> Int
    /// Looks up every key of `keys` at once; returns how many were found.
    func multiGet(_ keys: [[UInt8]], check: inout UInt64) throws -> Int
    /// The newest `limit` entries of the author key space for `author`: count, and the sum of their tweet ids.
    func newestOfAuthor(_ author: UInt64, limit: Int) throws -> (count: Int, idSum: UInt64)
    /// Writes the memtable to tables and waits until no flush or compaction is running or due.
    func settle() throws
    /// Compacts everything into the fewest sorted runs the system makes.
    func compactFully() throws
    /// Empties the block cache and the kernel's page cache of the store's files.
    func dropCaches(directory: String) throws
    /// Bytes written to table files so far (flushes and compactions), or nil when unknown.
    func tableBytesWritten(directory: String) -> UInt64?
    func close() throws
}

// MARK: socialdb

final class SocialDBStore: KVStore {
    let systemName = "socialdb"
    let log: Log
    let tree: LSMTree
    private var batch = WriteBatch(reservingCapacity: 512)
    /// The multi-get's keys and values, reused page after page (one reader thread).
    private let pageBatch = RecordBatch()

    /// `recordCacheBytes`: 0 as RocksDB and LevelDB (no row cache) in the LSM suite; the
    /// engine's default budget where a suite measures what the Social layer gets.
    /// `compression`: the tree's default (zstd) unless a suite stores what the engine keeps
    /// uncompressed (tweet records, `EngineOptions.uncompressedKeyPrefixes`).
    init(directory: String, fileSystem: FileSystem, recordCacheBytes: Int = 0, compression: LSMCompression = .default) throws {
        (log, _) = try Log.open(directory: directory + "/log", fileSystem: fileSystem, options: LogOptions(sync: .off))
        var options = LSMOptions()
        options.recordCacheBytes = recordCacheBytes
        options.compression = compression
        options.blockCacheBytes = LSMBenchOptions.blockCacheBytes
        options.memtableBytes = LSMBenchOptions.memtableBytes
        options.blockBytes = LSMBenchOptions.blockBytes
        options.bloomBitsPerKey = LSMBenchOptions.bloomBitsPerKey
        tree = try LSMTree.open(directory: directory + "/lsm", fileSystem: fileSystem, log: log, options: options)
    }

    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        batch.removeAll()
        batch.put(key, value)
        try tree.write(batch)
    }

    func makeDurable() throws { try log.sync() }

    func get(_ key: UnsafeRawBufferPointer, check: inout UInt64) throws -> Int {
        let found: (Int, UInt64)? = try tree.withValue(key) { value in
            (value.count, value.count >= 8 ? value.loadUnaligned(as: UInt64.self) : 0)
        }
        guard let found else { return -1 }
        check &+= found.1
        return found.0
    }

    /// Through a `RecordBatch`: the values land back to back in the batch's reused buffer, as
    /// gets read in place (`withValue`); the peers copy each value (RocksDB's C `multi_get`
    /// mallocs them, LevelDB's `get` too).
    func multiGet(_ keys: [[UInt8]], check: inout UInt64) throws -> Int {
        pageBatch.removeAll()
        for key in keys { pageBatch.append(key: key) }
        try tree.multiGet(pageBatch)
        var found = 0
        for i in 0..<keys.count {
            guard let value = pageBatch.value(at: i) else { continue }
            found += 1
            if value.count >= 8 { check &+= value.loadUnaligned(as: UInt64.self) }
        }
        return found
    }

    func newestOfAuthor(_ author: UInt64, limit: Int) throws -> (count: Int, idSum: UInt64) {
        let ids = try tree.authorTweets(author: author, limit: limit)
        return (ids.count, ids.reduce(0, &+))
    }

    func settle() throws {
        try tree.flush()
        try tree.waitForIdle()
    }

    func compactFully() throws { try tree.compactAll() }

    func dropCaches(directory: String) throws { tree.dropCaches() }

    func tableBytesWritten(directory: String) -> UInt64? {
        let s = tree.statistics
        return s.flushBytes + s.compactionBytes
    }

    func close() throws {
        try tree.close()
        try log.close()
    }
}

// MARK: RocksDB

final class RocksDBStore: KVStore {
    let systemName = "RocksDB"
    let path: String
    private var db: OpaquePointer?
    private var cache: OpaquePointer?
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let writeOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private let flushOptions: OpaquePointer
    private var multiKeys = [UnsafePointer<CChar>?](repeating: nil, count: 64)
    private var multiKeySizes = [Int](repeating: 0, count: 64)
    private var multiValues = [UnsafeMutablePointer<CChar>?](repeating: nil, count: 64)
    private var multiValueSizes = [Int](repeating: 0, count: 64)
    private var multiErrors = [UnsafeMutablePointer<CChar>?](repeating: nil, count: 64)
    private let keyScratch = UnsafeMutableRawPointer.allocate(byteCount: 64 * 32, alignment: 8)

    init(directory: String) throws {
        path = directory
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_set_compression(options, Int32(rocksdb_no_compression))
        rocksdb_options_set_write_buffer_size(options, LSMBenchOptions.memtableBytes)
        tableOptions = rocksdb_block_based_options_create()
        rocksdb_block_based_options_set_block_size(tableOptions, LSMBenchOptions.blockBytes)
        rocksdb_block_based_options_set_filter_policy(tableOptions,
                                                      rocksdb_filterpolicy_create_bloom_full(Double(LSMBenchOptions.bloomBitsPerKey)))
        writeOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(writeOptions, 0)
        rocksdb_writeoptions_disable_WAL(writeOptions, 0)
        readOptions = rocksdb_readoptions_create()
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        flushOptions = rocksdb_flushoptions_create()
        rocksdb_flushoptions_set_wait(flushOptions, 1)
        try openDatabase()
    }

    deinit {
        if db != nil { rocksdb_close(db) }
        if cache != nil { rocksdb_cache_destroy(cache) }
        rocksdb_flushoptions_destroy(flushOptions)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_options_destroy(options)
        keyScratch.deallocate()
    }

    /// Opens the database with a fresh block cache.
    private func openDatabase() throws {
        if cache != nil { rocksdb_cache_destroy(cache) }
        cache = rocksdb_cache_create_lru(LSMBenchOptions.blockCacheBytes)
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        var error: UnsafeMutablePointer<CChar>?
        db = rocksdb_open(options, path, &error)
        try check(error, "open")
    }

    private func check(_ error: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        guard let error else { return }
        let text = String(cString: error)
        free(error)
        throw BenchmarkFailure(description: "RocksDB \(what): \(text)")
    }

    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_put(db, writeOptions, key.baseAddress!.assumingMemoryBound(to: CChar.self), key.count,
                    value.baseAddress!.assumingMemoryBound(to: CChar.self), value.count, &error)
        if error != nil { try check(error, "put") }
    }

    func makeDurable() throws {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_flush_wal(db, 1, &error)
        try check(error, "flush_wal(sync)")
    }

    func get(_ key: UnsafeRawBufferPointer, check sum: inout UInt64) throws -> Int {
        var error: UnsafeMutablePointer<CChar>?
        let pinned = rocksdb_get_pinned(db, readOptions, key.baseAddress!.assumingMemoryBound(to: CChar.self), key.count, &error)
        if error != nil { try check(error, "get") }
        guard let pinned else { return -1 }
        var length = 0
        let value = rocksdb_pinnableslice_value(pinned, &length)
        if length >= 8, let value { sum &+= UnsafeRawPointer(value).loadUnaligned(as: UInt64.self) }
        rocksdb_pinnableslice_destroy(pinned)
        return length
    }

    func multiGet(_ keys: [[UInt8]], check sum: inout UInt64) throws -> Int {
        precondition(keys.count <= 64 && keys.allSatisfy { $0.count <= 32 }, "multi-get scratch holds 64 keys of 32 bytes")
        for (i, key) in keys.enumerated() {
            let slot = keyScratch + i * 32
            key.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            multiKeys[i] = UnsafePointer(slot.assumingMemoryBound(to: CChar.self))
            multiKeySizes[i] = key.count
        }
        rocksdb_multi_get(db, readOptions, keys.count, &multiKeys, &multiKeySizes, &multiValues, &multiValueSizes, &multiErrors)
        var found = 0
        var firstError: UnsafeMutablePointer<CChar>?
        for i in 0..<keys.count {
            if let e = multiErrors[i] {
                if firstError == nil { firstError = e } else { free(e) }
                multiErrors[i] = nil
            }
            if let v = multiValues[i] {
                found += 1
                if multiValueSizes[i] >= 8 { sum &+= UnsafeRawPointer(v).loadUnaligned(as: UInt64.self) }
                free(v)
                multiValues[i] = nil
            }
        }
        try check(firstError, "multi_get")
        return found
    }

    func newestOfAuthor(_ author: UInt64, limit: Int) throws -> (count: Int, idSum: UInt64) {
        let upper = Keys.authorTweet(author: author, tweet: UInt64.max)
        let iterator = rocksdb_create_iterator(db, readOptions)
        defer { rocksdb_iter_destroy(iterator) }
        upper.withUnsafeBytes { u in
            rocksdb_iter_seek_for_prev(iterator, u.baseAddress!.assumingMemoryBound(to: CChar.self), u.count)
        }
        var count = 0
        var sum: UInt64 = 0
        while count < limit && rocksdb_iter_valid(iterator) != 0 {
            var length = 0
            guard let key = rocksdb_iter_key(iterator, &length) else { break }
            let k = UnsafeRawBufferPointer(start: key, count: length)
            guard AuthorKeys.belongs(k, to: author) else { break }
            sum &+= Keys.number(k, at: 9)
            count += 1
            rocksdb_iter_prev(iterator)
        }
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        try check(error, "iterator")
        return (count, sum)
    }

    private func property(_ name: String) -> UInt64? {
        var value: UInt64 = 0
        return rocksdb_property_int(db, name, &value) == 0 ? value : nil
    }

    func settle() throws {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_flush(db, flushOptions, &error)
        try check(error, "flush")
        while (property("rocksdb.compaction-pending") ?? 0) != 0 || (property("rocksdb.num-running-compactions") ?? 0) != 0 ||
              (property("rocksdb.num-running-flushes") ?? 0) != 0 || (property("rocksdb.mem-table-flush-pending") ?? 0) != 0 {
            usleep(20_000)
        }
    }

    func compactFully() throws {
        rocksdb_compact_range(db, nil, 0, nil, 0)
        try settle()
    }

    func dropCaches(directory: String) throws {
        rocksdb_close(db)
        db = nil
        DirectoryUsage.dropPageCache(directory)
        try openDatabase()
    }

    /// The sum of `file_size` over the `table_file_creation` events of the info log (flushes and
    /// compactions; trivial moves create no file).
    func tableBytesWritten(directory: String) -> UInt64? {
        InfoLogs.rocksDBTableBytes(directory: directory)
    }

    func close() throws {
        if db != nil { rocksdb_close(db) }
        db = nil
    }
}

// MARK: LevelDB

final class LevelDBStore: KVStore {
    let systemName = "LevelDB"
    let path: String
    private var db: OpaquePointer?
    private var cache: OpaquePointer?
    private let options: OpaquePointer
    private let filter: OpaquePointer
    private let writeOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private let emptyBatch: OpaquePointer

    init(directory: String) throws {
        path = directory
        options = leveldb_options_create()
        leveldb_options_set_create_if_missing(options, 1)
        leveldb_options_set_compression(options, Int32(leveldb_no_compression))
        leveldb_options_set_write_buffer_size(options, LSMBenchOptions.memtableBytes)
        leveldb_options_set_block_size(options, LSMBenchOptions.blockBytes)
        filter = leveldb_filterpolicy_create_bloom(Int32(LSMBenchOptions.bloomBitsPerKey))
        leveldb_options_set_filter_policy(options, filter)
        writeOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(writeOptions, 0)
        syncWriteOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWriteOptions, 1)
        readOptions = leveldb_readoptions_create()
        leveldb_readoptions_set_verify_checksums(readOptions, 1)
        emptyBatch = leveldb_writebatch_create()
        try openDatabase()
    }

    deinit {
        if db != nil { leveldb_close(db) }
        if cache != nil { leveldb_cache_destroy(cache) }
        leveldb_writebatch_destroy(emptyBatch)
        leveldb_readoptions_destroy(readOptions)
        leveldb_writeoptions_destroy(syncWriteOptions)
        leveldb_writeoptions_destroy(writeOptions)
        leveldb_options_destroy(options)
        leveldb_filterpolicy_destroy(filter)
    }

    private func openDatabase() throws {
        if cache != nil { leveldb_cache_destroy(cache) }
        cache = leveldb_cache_create_lru(LSMBenchOptions.blockCacheBytes)
        leveldb_options_set_cache(options, cache)
        var error: UnsafeMutablePointer<CChar>?
        db = leveldb_open(options, path, &error)
        try check(error, "open")
    }

    private func check(_ error: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        guard let error else { return }
        let text = String(cString: error)
        leveldb_free(error)
        throw BenchmarkFailure(description: "LevelDB \(what): \(text)")
    }

    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        var error: UnsafeMutablePointer<CChar>?
        leveldb_put(db, writeOptions, key.baseAddress!.assumingMemoryBound(to: CChar.self), key.count,
                    value.baseAddress!.assumingMemoryBound(to: CChar.self), value.count, &error)
        if error != nil { try check(error, "put") }
    }

    /// An empty batch written with sync: LevelDB appends it to its log and fsyncs the log.
    func makeDurable() throws {
        var error: UnsafeMutablePointer<CChar>?
        leveldb_write(db, syncWriteOptions, emptyBatch, &error)
        try check(error, "write(sync)")
    }

    func get(_ key: UnsafeRawBufferPointer, check sum: inout UInt64) throws -> Int {
        var error: UnsafeMutablePointer<CChar>?
        var length = 0
        let value = leveldb_get(db, readOptions, key.baseAddress!.assumingMemoryBound(to: CChar.self), key.count, &length, &error)
        if error != nil { try check(error, "get") }
        guard let value else { return -1 }
        if length >= 8 { sum &+= UnsafeRawPointer(value).loadUnaligned(as: UInt64.self) }
        leveldb_free(value)
        return length
    }

    /// LevelDB has no multi-get: one get per key.
    func multiGet(_ keys: [[UInt8]], check sum: inout UInt64) throws -> Int {
        var found = 0
        for key in keys {
            let n = try key.withUnsafeBytes { try get($0, check: &sum) }
            if n >= 0 { found += 1 }
        }
        return found
    }

    func newestOfAuthor(_ author: UInt64, limit: Int) throws -> (count: Int, idSum: UInt64) {
        let upper = Keys.authorTweet(author: author, tweet: UInt64.max)
        let iterator = leveldb_create_iterator(db, readOptions)
        defer { leveldb_iter_destroy(iterator) }
        // Seek to the first key at or above the bound, then step back once (or start at the end).
        upper.withUnsafeBytes { u in
            leveldb_iter_seek(iterator, u.baseAddress!.assumingMemoryBound(to: CChar.self), u.count)
        }
        if leveldb_iter_valid(iterator) != 0 { leveldb_iter_prev(iterator) } else { leveldb_iter_seek_to_last(iterator) }
        var count = 0
        var sum: UInt64 = 0
        while count < limit && leveldb_iter_valid(iterator) != 0 {
            var length = 0
            guard let key = leveldb_iter_key(iterator, &length) else { break }
            let k = UnsafeRawBufferPointer(start: key, count: length)
            guard AuthorKeys.belongs(k, to: author) else { break }
            sum &+= Keys.number(k, at: 9)
            count += 1
            leveldb_iter_prev(iterator)
        }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_iter_get_error(iterator, &error)
        try check(error, "iterator")
        return (count, sum)
    }

    private var stats: String {
        guard let text = leveldb_property_value(db, "leveldb.stats") else { return "" }
        defer { leveldb_free(text) }
        return String(cString: text)
    }

    /// LevelDB has no flush call and no "compaction running" property: a compaction of a key
    /// range no table holds writes the memtable out (and nothing else), then the compaction
    /// statistics are polled until they stop changing for half a second.
    func settle() throws {
        let beyond: [UInt8] = [0xFF, 0xFF]
        beyond.withUnsafeBytes { b in
            let p = b.baseAddress!.assumingMemoryBound(to: CChar.self)
            leveldb_compact_range(db, p, b.count, p, b.count)
        }
        var last = stats
        var quietPolls = 0
        while quietPolls < 5 {
            usleep(100_000)
            let now = stats
            if now == last { quietPolls += 1 } else { quietPolls = 0; last = now }
        }
    }

    func compactFully() throws {
        leveldb_compact_range(db, nil, 0, nil, 0)
        try settle()
    }

    func dropCaches(directory: String) throws {
        leveldb_close(db)
        db = nil
        DirectoryUsage.dropPageCache(directory)
        try openDatabase()
    }

    /// The bytes of every table the info log reports written (memtable flushes and compaction outputs).
    func tableBytesWritten(directory: String) -> UInt64? {
        InfoLogs.levelDBTableBytes(directory: directory)
    }

    func close() throws {
        if db != nil { leveldb_close(db) }
        db = nil
    }
}

// MARK: helpers

enum AuthorKeys {
    /// Whether `key` is an author-index key (`Keys.authorTweet`) of `author`.
    @inline(__always)
    static func belongs(_ key: UnsafeRawBufferPointer, to author: UInt64) -> Bool {
        key.count == 17 && key[0] == KeySpace.tweetsByAuthor.rawValue && Keys.number(key, at: 1) == author
    }
}

/// Space used by a directory tree, and the page-cache dropping of its files.
enum DirectoryUsage {
    struct Usage {
        /// Allocated bytes (du) of every file.
        var total: UInt64 = 0
        /// Allocated bytes of table files (`.sst`, `.ldb`).
        var tables: UInt64 = 0
        /// Allocated bytes of write-ahead log files (socialdb's `log/` folder, the peers' `.log` files).
        var wal: UInt64 = 0
    }

    static func usage(_ directory: String) -> Usage {
        var u = Usage()
        walk(directory, insideLog: false) { path, info, insideLog in
            let bytes = UInt64(info.st_blocks) * 512
            u.total += bytes
            if path.hasSuffix(".sst") || path.hasSuffix(".ldb") { u.tables += bytes }
            if insideLog || path.hasSuffix(".log") { u.wal += bytes }
        }
        return u
    }

    /// posix_fadvise(DONTNEED) on every file under `directory`.
    static func dropPageCache(_ directory: String) {
        walk(directory, insideLog: false) { path, _, _ in
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { return }
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            Glibc.close(fd)
        }
    }

    private static func walk(_ directory: String, insideLog: Bool, _ body: (String, stat, Bool) -> Void) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                walk(path, insideLog: insideLog || name == "log", body)
            } else if (info.st_mode & S_IFMT) == S_IFREG {
                body(path, info, insideLog)
            }
        }
    }
}

/// Bytes this process has caused to be written to storage (`write_bytes` of /proc/self/io,
/// counted when a page is dirtied, minus `cancelled_write_bytes`), or nil when unavailable.
enum ProcessIO {
    static func writtenBytes() -> UInt64? {
        let fd = open("/proc/self/io", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        var written: UInt64?
        var cancelled: UInt64 = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":")
            guard parts.count == 2, let v = UInt64(parts[1].trimmingCharacters(in: " ")) else { continue }
            if parts[0] == "write_bytes" { written = v }
            if parts[0] == "cancelled_write_bytes" { cancelled = v }
        }
        guard let written else { return nil }
        return written >= cancelled ? written - cancelled : 0
    }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}
