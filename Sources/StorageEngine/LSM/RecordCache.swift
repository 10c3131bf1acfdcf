import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Recently read records (key → value) in front of the memtables and tables, sized in bytes:
/// RocksDB's row cache. A hit costs a hash, a shard lock and a dictionary probe, and hands out
/// the cached value array itself (no copy), instead of a bloom check, a block index search and a
/// block search per level. Tweets, users and counters are read far more often than written,
/// and a home page asks for the same recent tweets again and again, so this is where a
/// hydrated home read spends its time when it misses.
///
/// Consistency with writes (a seqlock on `sequence`, one writer at a time: the tree's insert
/// lock):
/// - a write makes `sequence` odd, inserts its batch into the memtable, removes every key of
///   the batch from the cache, and makes `sequence` even again;
/// - a reader notes `sequence` (`begin`) before it looks anything up; it uses the cache only if
///   that was even, inserts what it read from the tree only if `sequence` is still the same
///   (checked under the shard lock, so a write's removal, which takes the same lock, comes after
///   any insert it raced with), and a multi-key read whose keys may straddle a write (the
///   sequence moved during it) is done again without the cache, so it sees a batch all or none.
/// Absent keys are cached too (`insertAbsent`): most lookups of a tweet's counters find none,
/// and an absent key otherwise costs a memtable search and a bloom probe per level every time.
/// Every write removes each key of its batch, puts and deletes alike. Compaction never changes
/// a key's value, so it needs nothing here.
final class RecordCache: Sendable {
    struct Entry {
        var key: [UInt8]
        var value: [UInt8]
        var referenced: Bool
        /// The key has no value (the entry says so; `value` is empty).
        var absent = false
    }

    /// What the cache knows of a key.
    enum Probe {
        case miss
        case absent
        case value([UInt8])
    }

    /// One shard: entries by the key's 64-bit hash (a colliding key replaces the other; a probe
    /// compares the whole key), and CLOCK order for eviction.
    struct Shard {
        var entries: [UInt64: Entry] = [:]
        /// Insertion order of hashes; `front` is the clock hand. Hashes of removed entries are
        /// skipped when the hand reaches them.
        var order: [UInt64] = []
        var front = 0
        var bytes = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    static let shardCount = 64
    /// Bookkeeping bytes charged per entry besides its key and value.
    static let entryOverhead = 96

    let capacityBytes: Int
    /// False with a zero budget: nothing is cached, only the sequence is kept.
    let enabled: Bool
    let shardCapacity: Int
    /// Each shard in its own allocation, so two shards' locks never share a cache line.
    final class ShardBox: Sendable {
        let state = Mutex(Shard())
    }
    let shards: [ShardBox]
    let sequence = Atomic<UInt64>(0)

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        enabled = capacityBytes > 0
        shardCapacity = max(1, capacityBytes / Self.shardCount)
        shards = enabled ? (0..<Self.shardCount).map { _ in ShardBox() } : []
    }

    @inline(__always)
    private func shard(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: (hash >> 58) & UInt64(Self.shardCount - 1)) }

    // MARK: Readers

    /// The sequence to pass to `lookup`/`insert`/`unchanged`; odd means a write is in progress.
    @inline(__always)
    func begin() -> UInt64 { sequence.load(ordering: .acquiring) }

    /// True when no write started or finished since `begin` returned `token`.
    @inline(__always)
    func unchanged(since token: UInt64) -> Bool { sequence.load(ordering: .acquiring) == token }

    /// What the cache knows of `key`: its value, that it has none, or nothing.
    @inline(__always)
    func probe(_ key: UnsafeRawBufferPointer, hash: UInt64) -> Probe {
        guard enabled else { return .miss }
        return shards[shard(hash)].state.withLock { s -> Probe in
            guard let entry = s.entries[hash], Self.equal(entry.key, key) else {
                s.misses &+= 1
                return .miss
            }
            s.hits &+= 1
            if !entry.referenced { s.entries[hash]!.referenced = true }
            return entry.absent ? .absent : .value(entry.value)
        }
    }

    /// Caches `value` for `key` if no write happened since `token` (which must be even).
    func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: [UInt8], token: UInt64) {
        insert(key, hash: hash, value: value, absent: false, token: token)
    }

    /// Caches that `key` has no value, if no write happened since `token`.
    func insertAbsent(_ key: UnsafeRawBufferPointer, hash: UInt64, token: UInt64) {
        insert(key, hash: hash, value: [], absent: true, token: token)
    }

    private func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: [UInt8], absent: Bool, token: UInt64) {
        let cost = key.count + value.count + Self.entryOverhead
        guard enabled, token & 1 == 0, cost <= shardCapacity / 8 else { return }
        let keyBytes = [UInt8](key)
        shards[shard(hash)].state.withLock { s in
            guard sequence.load(ordering: .acquiring) == token else { return }
            if let old = s.entries[hash] { s.bytes -= old.key.count + old.value.count + Self.entryOverhead }
            s.entries[hash] = Entry(key: keyBytes, value: value, referenced: false, absent: absent)
            s.order.append(hash)
            s.bytes += cost
            while s.bytes > shardCapacity && s.front < s.order.count {
                let h = s.order[s.front]
                s.front += 1
                guard let e = s.entries[h] else { continue }
                if e.referenced {
                    s.entries[h]!.referenced = false
                    s.order.append(h)
                } else {
                    s.bytes -= e.key.count + e.value.count + Self.entryOverhead
                    s.entries[h] = nil
                }
            }
            if s.front > 1024 && s.front * 2 > s.order.count {
                s.order.removeFirst(s.front)
                s.front = 0
            }
        }
    }

    @inline(__always)
    static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in
            pa.count == 0 || memcmp(pa.baseAddress!, b.baseAddress!, pa.count) == 0
        }
    }

    // MARK: The writer (one at a time)

    func beginWrite() { sequence.add(1, ordering: .sequentiallyConsistent) }

    /// Removes `key` (inside `beginWrite`/`endWrite`, after the memtable has the new version).
    func remove(_ key: UnsafeRawBufferPointer) {
        guard enabled else { return }
        let hash = BloomFilter.hash(key)
        shards[shard(hash)].state.withLock { s in
            guard let e = s.entries[hash] else { return }
            s.bytes -= e.key.count + e.value.count + Self.entryOverhead
            s.entries[hash] = nil
        }
    }

    func endWrite() { sequence.add(1, ordering: .sequentiallyConsistent) }

    /// Empties the cache (for cold-read measurements). Concurrent readers' inserts that started
    /// before may land; they hold current values.
    func clear() {
        for shard in shards {
            shard.state.withLock { s in s = Shard(hits: s.hits, misses: s.misses) }
        }
    }

    struct Statistics {
        var bytes = 0
        var entries = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    var statistics: Statistics {
        var total = Statistics()
        for shard in shards {
            shard.state.withLock { s in
                total.bytes += s.bytes
                total.entries += s.entries.count
                total.hits += s.hits
                total.misses += s.misses
            }
        }
        return total
    }
}
