import Synchronization

/// Values derived from the tree and kept by 64-bit id (a tweet's counts, a tweet's hydrated
/// view), for the read paths that hydrate pages: one shard lock and one dictionary probe per
/// id instead of point reads and decoding.
///
/// Kept true by the writer: after the tree has a batch that changes what a value was derived
/// from, it removes those ids (`invalidate`), which also moves the generation of each id's
/// shard. A reader that missed takes `stamp(id)` before it reads the tree, derives the value,
/// and installs it only if that shard's generation has not moved since (`install`), so a value
/// read before a write is never installed after that write's invalidation. Generations are per
/// shard (64), so a write spoils only the concurrent installs that share a shard with it.
///
/// Bounded in bytes (each value says what it costs, `CacheCost`): past `maxBytes / shardCount`
/// in a shard, an eighth of that shard's entries (the dictionary's order: effectively random)
/// goes, again until it fits. `maxBytes` 0 caches nothing.
final class IDCache<Value: Sendable & CacheCost>: Sendable {
    struct Shard {
        var values: [UInt64: Value] = [:]
        var bytes = 0
        var generation: UInt64 = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    /// Each shard in its own allocation, so two shards' locks never share a cache line.
    final class ShardBox: Sendable {
        let state = Mutex(Shard())
    }

    static var shardCount: Int { 64 }

    let maxBytes: Int
    let shardCapacity: Int
    let shards: [ShardBox]
    /// False with a zero budget.
    let enabled: Bool

    init(maxBytes: Int) {
        self.maxBytes = max(0, maxBytes)
        enabled = maxBytes > 0
        shardCapacity = max(1, self.maxBytes / Self.shardCount)
        shards = (0..<Self.shardCount).map { _ in ShardBox() }
    }

    @inline(__always)
    private func shard(_ id: UInt64) -> ShardBox {
        // Ids are snowflakes (time in the high bits, a sequence in the low ones): mix first.
        var x = id &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return shards[Int(truncatingIfNeeded: x & UInt64(Self.shardCount - 1))]
    }

    @inline(__always)
    func lookup(_ id: UInt64) -> Value? {
        guard enabled else { return nil }
        return shard(id).state.withLock { s -> Value? in
            if let value = s.values[id] {
                s.hits &+= 1
                return value
            }
            s.misses &+= 1
            return nil
        }
    }

    /// Whether `id` is cached, without copying its value or counting a hit or miss.
    @inline(__always)
    func contains(_ id: UInt64) -> Bool {
        guard enabled else { return false }
        return shard(id).state.withLock { $0.values.index(forKey: id) != nil }
    }

    /// `body` run on `id`'s value under its shard's lock (nothing of it leaves the lock but
    /// what `body` returns); nil when `id` has no value. `body` must be short.
    @inline(__always)
    func withValue<Result>(_ id: UInt64, _ body: (borrowing Value) -> Result) -> Result? {
        guard enabled else { return nil }
        return shard(id).state.withLock { s -> Result? in
            guard let index = s.values.index(forKey: id) else {
                s.misses &+= 1
                return nil
            }
            s.hits &+= 1
            return body(s.values.values[index])
        }
    }

    /// The generation to pass to `install` for `id`: take it before reading the tree.
    @inline(__always)
    func stamp(_ id: UInt64) -> UInt64 {
        guard enabled else { return 0 }
        return shard(id).state.withLock { $0.generation }
    }

    /// Keeps `value` for `id` unless a write invalidated anything in its shard since `stamp`.
    func install(_ id: UInt64, _ value: Value, since stamp: UInt64) {
        guard enabled else { return }
        let capacity = shardCapacity
        shard(id).state.withLock { s in
            guard s.generation == stamp else { return }
            Self.put(id, value, into: &s, capacity: capacity)
        }
    }

    private static func put(_ id: UInt64, _ value: Value, into s: inout Shard, capacity: Int) {
        let cost = value.cacheBytes
        guard cost <= capacity / 4 else { return }
        if let old = s.values.updateValue(value, forKey: id) { s.bytes -= old.cacheBytes }
        s.bytes += cost
        while s.bytes > capacity {
            for key in Array(s.values.keys.prefix(max(1, s.values.count / 8))) where key != id {
                if let gone = s.values.removeValue(forKey: key) { s.bytes -= gone.cacheBytes }
            }
            if s.values.count <= 1 { break }
        }
    }

    /// Removes `id` and moves its shard's generation (the writer, after the tree has the change).
    func invalidate(_ id: UInt64) {
        guard enabled else { return }
        shard(id).state.withLock { s in
            s.generation &+= 1
            if let gone = s.values.removeValue(forKey: id) { s.bytes -= gone.cacheBytes }
        }
    }

    typealias Statistics = IDCacheStatistics

    var statistics: Statistics {
        var total = Statistics()
        for shard in shards {
            shard.state.withLock { s in
                total.entries += s.values.count
                total.bytes += s.bytes
                total.hits += s.hits
                total.misses += s.misses
            }
        }
        return total
    }
}

/// A hydration cache's figures (`IDCache`, `PartCache`).
struct IDCacheStatistics {
    var entries = 0
    var bytes = 0
    var hits: UInt64 = 0
    var misses: UInt64 = 0
}

/// What a cached value costs in memory, roughly: its inline size, the heap storage it owns and
/// the dictionary slot.
protocol CacheCost {
    var cacheBytes: Int { get }
}

extension Tweet: CacheCost {
    /// The struct, the dictionary slot, and the UTF-8 and header of every string it holds (a
    /// view has no nested tweets).
    var cacheBytes: Int {
        var bytes = MemoryLayout<Tweet>.stride + 48 + authorHandle.utf8.count + text.utf8.count + 64
        for list in [mentions, hashtags, urls] where !list.isEmpty {
            bytes += 32
            for item in list { bytes += item.utf8.count + 16 }
        }
        return bytes
    }
}
