import Synchronization

/// The block cache: verified blocks of all tables under one byte budget, sharded by key so
/// concurrent readers rarely meet on a lock. Each shard evicts with the CLOCK algorithm (a
/// referenced bit per entry, a sweeping hand), which approximates LRU without moving entries.
final class BlockCache: Sendable {
    struct Key: Hashable, Sendable {
        var file: UInt64
        var offset: UInt64
    }

    private struct Slot {
        var key: Key
        var block: Block?
        var referenced: Bool
    }

    private struct Shard {
        var map: [Key: Int] = [:]
        var slots: [Slot] = []
        var free: [Int] = []
        var hand = 0
        var bytes = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    private final class ShardBox: Sendable {
        let mutex = Mutex(Shard())
        func withLock<R>(_ body: (inout Shard) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    private static let shardCount = 16
    private let shards: [ShardBox]
    private let shardBudget: Int
    let capacityBytes: Int

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        shardBudget = max(64 << 10, capacityBytes / Self.shardCount)
        var s: [ShardBox] = []
        for _ in 0..<Self.shardCount { s.append(ShardBox()) }
        shards = s
    }

    @inline(__always)
    private func shardIndex(_ key: Key) -> Int {
        var h = key.file &* 0x9E37_79B9_7F4A_7C15 ^ key.offset &* 0xC2B2_AE3D_27D4_EB4F
        h ^= h >> 29
        return Int(h % UInt64(Self.shardCount))
    }

    func lookup(_ key: Key) -> Block? {
        shards[shardIndex(key)].withLock { shard in
            if let i = shard.map[key] {
                shard.slots[i].referenced = true
                shard.hits += 1
                return shard.slots[i].block
            }
            shard.misses += 1
            return nil
        }
    }

    func insert(_ key: Key, _ block: Block) {
        guard capacityBytes > 0 else { return }
        let budget = shardBudget
        shards[shardIndex(key)].withLock { shard in
            if shard.map[key] != nil { return }
            let cost = block.memoryBytes
            // Evict until the new block fits.
            var sweeps = 0
            while shard.bytes + cost > budget && !shard.map.isEmpty && sweeps < 2 * shard.slots.count + 2 {
                if shard.hand >= shard.slots.count { shard.hand = 0 }
                let h = shard.hand
                shard.hand += 1
                sweeps += 1
                guard let b = shard.slots[h].block else { continue }
                if shard.slots[h].referenced {
                    shard.slots[h].referenced = false
                } else {
                    shard.bytes -= b.memoryBytes
                    shard.map[shard.slots[h].key] = nil
                    shard.slots[h].block = nil
                    shard.free.append(h)
                }
            }
            let slot = Slot(key: key, block: block, referenced: false)
            let i: Int
            if let f = shard.free.popLast() {
                shard.slots[f] = slot
                i = f
            } else {
                shard.slots.append(slot)
                i = shard.slots.count - 1
            }
            shard.map[key] = i
            shard.bytes += cost
        }
    }

    /// Drops every block of a table (after compaction deleted it).
    func evict(file: UInt64) {
        for shard in shards {
            shard.withLock { s in
                for (key, i) in s.map where key.file == file {
                    if let b = s.slots[i].block { s.bytes -= b.memoryBytes }
                    s.slots[i].block = nil
                    s.map[key] = nil
                    s.free.append(i)
                }
            }
        }
    }

    func clear() {
        for shard in shards {
            shard.withLock { s in
                s.map.removeAll()
                s.slots.removeAll()
                s.free.removeAll()
                s.bytes = 0
                s.hand = 0
            }
        }
    }

    struct Statistics: Sendable {
        var bytes = 0
        var blocks = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
    }

    var statistics: Statistics {
        var st = Statistics()
        for shard in shards {
            shard.withLock { s in
                st.bytes += s.bytes
                st.blocks += s.map.count
                st.hits += s.hits
                st.misses += s.misses
            }
        }
        return st
    }
}
