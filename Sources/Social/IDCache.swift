import CLibURing
import Synchronization

/// Values derived from the tree and kept by 64-bit id (a tweet's counts, a tweet's hydrated
/// view), for the read paths that hydrate pages: one shard lock and one probe of eight keys per
/// id instead of point reads and decoding.
///
/// Kept true by the writer: after the tree has a batch that changes what a value was derived
/// from, it removes those ids (`invalidate`), which also moves the generation of each id's
/// shard. A reader that missed takes `stamp(id)` before it reads the tree, derives the value,
/// and installs it only if that shard's generation has not moved since (`install`), so a value
/// read before a write is never installed after that write's invalidation. Generations are per
/// shard (64), so a write spoils only the concurrent installs that share a shard with it.
///
/// Each shard is a set-associative table (`Table`): an id hashes to one set of eight ways whose
/// keys share one 64-byte line, so a probe costs one cache line of keys and, on a hit, the
/// value's slot; nothing is allocated, rehashed or shifted per lookup, install or eviction. A
/// full set gives up a way by CLOCK (a way hit since the hand last passed it is skipped once),
/// so values read again stay and values read once go first. Tables start small and double up to
/// the slots the budget pays for at `Value.typicalCacheBytes` each (so the table itself, empty
/// slots included, never costs more than the budget).
///
/// Bounded in bytes (each value says what it costs, `CacheCost`): past `maxBytes / shardCount`
/// in a shard, values go from a sweep over the shard's slots until it fits again. A value
/// above a quarter of a shard's bytes is not kept; `maxBytes` 0 caches nothing. Id 0 is never
/// kept (it marks an empty way; tweet ids are snowflakes, never 0).
final class IDCache<Value: Sendable & CacheCost>: Sendable {
    static var ways: Int { 8 }

    /// One shard's slots: `sets * ways` keys (0: empty), values and costs, and per set the
    /// CLOCK bits (bit w: way w was hit since the hand last passed) and hand.
    final class Table: @unchecked Sendable {
        // @unchecked: touched only under its shard's lock.
        let sets: Int
        let keys: UnsafeMutablePointer<UInt64>
        let values: UnsafeMutablePointer<Value?>
        let costs: UnsafeMutablePointer<UInt32>
        let referenced: UnsafeMutablePointer<UInt8>
        let hands: UnsafeMutablePointer<UInt8>

        init(sets: Int) {
            self.sets = sets
            let slots = sets * IDCache.ways
            let rawKeys = UnsafeMutableRawPointer.allocate(byteCount: slots * 8, alignment: 64)
            keys = rawKeys.initializeMemory(as: UInt64.self, repeating: 0, count: slots)
            // Line-aligned, so a set's values start a line (`prefetch` loads them by lines).
            values = UnsafeMutableRawPointer.allocate(byteCount: slots * MemoryLayout<Value?>.stride, alignment: 64)
                .bindMemory(to: Value?.self, capacity: slots)
            values.initialize(repeating: nil, count: slots)
            costs = .allocate(capacity: slots)
            costs.initialize(repeating: 0, count: slots)
            referenced = .allocate(capacity: sets)
            referenced.initialize(repeating: 0, count: sets)
            hands = .allocate(capacity: sets)
            hands.initialize(repeating: 0, count: sets)
        }

        deinit {
            let slots = sets * IDCache.ways
            values.deinitialize(count: slots)
            values.deallocate()
            UnsafeMutableRawPointer(keys).deallocate()
            costs.deallocate()
            referenced.deallocate()
            hands.deallocate()
        }
    }

    struct Shard {
        var table: Table?
        var count = 0
        var bytes = 0
        /// The next slot the budget's sweep empties.
        var sweep = 0
        var generation: UInt64 = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    /// Each shard in its own allocation, so two shards' locks never share a cache line.
    final class ShardBox: Sendable {
        let state = Mutex(Shard())
        /// The table's keys and set count, for `prefetch` (read without the lock: a stale
        /// pair only wastes a prefetch, which never faults).
        let keysHint = Atomic<Int>(0)
        let setsHint = Atomic<Int>(0)
        /// The table's values and CLOCK bits, for `prefetch` likewise.
        let valuesHint = Atomic<Int>(0)
        let referencedHint = Atomic<Int>(0)

        @inline(__always)
        func updateHints(_ table: Table) {
            keysHint.store(Int(bitPattern: UInt(bitPattern: table.keys)), ordering: .relaxed)
            setsHint.store(table.sets, ordering: .relaxed)
            valuesHint.store(Int(bitPattern: UInt(bitPattern: table.values)), ordering: .relaxed)
            referencedHint.store(Int(bitPattern: UInt(bitPattern: table.referenced)), ordering: .relaxed)
        }
    }

    static var shardCount: Int { 64 }
    /// Sets a shard's table starts with.
    static var initialSets: Int { 4 }

    let maxBytes: Int
    let shardCapacity: Int
    /// The most sets a shard's table grows to: the slots the shard's bytes pay for at
    /// `Value.typicalCacheBytes` each.
    let maxSets: Int
    let shards: [ShardBox]
    /// False with a zero budget.
    let enabled: Bool

    init(maxBytes: Int) {
        self.maxBytes = max(0, maxBytes)
        enabled = maxBytes > 0
        shardCapacity = max(1, self.maxBytes / Self.shardCount)
        maxSets = max(1, shardCapacity / max(1, Value.typicalCacheBytes) / Self.ways)
        shards = (0..<Self.shardCount).map { _ in ShardBox() }
    }

    /// Ids are snowflakes (time in the high bits, a sequence in the low ones): mixed first. The
    /// low 6 bits pick the shard, the high 32 the set (`setIndex`).
    @inline(__always)
    private static func mix(_ id: UInt64) -> UInt64 {
        var x = id &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return x
    }

    @inline(__always)
    private func shard(_ mixed: UInt64) -> ShardBox {
        shards[Int(truncatingIfNeeded: mixed & UInt64(Self.shardCount - 1))]
    }

    /// The set of a mixed id among `sets` (multiply and shift: any count of sets).
    @inline(__always)
    private static func setIndex(_ mixed: UInt64, sets: Int) -> Int {
        Int(truncatingIfNeeded: ((mixed >> 32) &* UInt64(truncatingIfNeeded: sets)) >> 32)
    }

    /// The slot of `id` in `table`, or -1.
    @inline(__always)
    private static func find(_ id: UInt64, _ mixed: UInt64, in table: Table) -> Int {
        let base = setIndex(mixed, sets: table.sets) &* ways
        let keys = table.keys + base
        for way in 0..<ways where keys[way] == id { return base &+ way }
        return -1
    }

    /// Starts loading what a probe of each of `ids` touches: its set's line of keys, the set's
    /// values (line-aligned; one line when a value is a reference) and its CLOCK byte, so a
    /// page's probes overlap their cache misses instead of paying them one after another.
    /// Changes nothing.
    @inline(__always)
    func prefetch(_ ids: [UInt64]) {
        guard enabled else { return }
        let valueSetBytes = Self.ways &* MemoryLayout<Value?>.stride
        for id in ids {
            let mixed = Self.mix(id)
            let box = shard(mixed)
            let keys = box.keysHint.load(ordering: .relaxed)
            guard let base = UnsafeRawPointer(bitPattern: keys) else { continue }
            let sets = box.setsHint.load(ordering: .relaxed)
            let set = Self.setIndex(mixed, sets: sets)
            socialdb_prefetch(base + set &* (Self.ways &* 8))
            if let values = UnsafeRawPointer(bitPattern: box.valuesHint.load(ordering: .relaxed)) {
                var line = 0
                while line < valueSetBytes {
                    socialdb_prefetch(values + (set &* valueSetBytes &+ line))
                    line &+= 64
                }
            }
            if let referenced = UnsafeRawPointer(bitPattern: box.referencedHint.load(ordering: .relaxed)) {
                socialdb_prefetch(referenced + set)
            }
        }
    }

    @inline(__always)
    func lookup(_ id: UInt64) -> Value? {
        guard enabled else { return nil }
        let mixed = Self.mix(id)
        return shard(mixed).state.withLock { s -> Value? in
            guard id != 0, let table = s.table else {
                s.misses &+= 1
                return nil
            }
            let slot = Self.find(id, mixed, in: table)
            guard slot >= 0 else {
                s.misses &+= 1
                return nil
            }
            s.hits &+= 1
            table.referenced[slot / Self.ways] |= UInt8(1) << UInt8(slot % Self.ways)
            return table.values[slot]
        }
    }

    /// Whether `id` is cached, without copying its value or counting a hit or miss.
    @inline(__always)
    func contains(_ id: UInt64) -> Bool {
        guard enabled, id != 0 else { return false }
        let mixed = Self.mix(id)
        return shard(mixed).state.withLock { s in
            guard let table = s.table else { return false }
            return Self.find(id, mixed, in: table) >= 0
        }
    }

    /// The generation to pass to `install` for `id`: take it before reading the tree.
    @inline(__always)
    func stamp(_ id: UInt64) -> UInt64 {
        guard enabled else { return 0 }
        return shard(Self.mix(id)).state.withLock { $0.generation }
    }

    /// Keeps `value` for `id` unless a write invalidated anything in its shard since `stamp`.
    func install(_ id: UInt64, _ value: Value, since stamp: UInt64) {
        guard enabled, id != 0 else { return }
        let cost = value.cacheBytes
        let capacity = shardCapacity
        guard cost <= capacity / 4 else { return }
        let mixed = Self.mix(id)
        let maxSets = maxSets
        let box = shard(mixed)
        box.state.withLock { s in
            guard s.generation == stamp else { return }
            let before = s.table
            Self.put(id, mixed, value, cost: cost, into: &s, capacity: capacity, maxSets: maxSets)
            if let table = s.table, table !== before { box.updateHints(table) }
        }
    }

    private static func put(_ id: UInt64, _ mixed: UInt64, _ value: Value, cost: Int, into s: inout Shard, capacity: Int, maxSets: Int) {
        var table: Table
        if let t = s.table {
            table = t
        } else {
            table = Table(sets: min(maxSets, initialSets))
            s.table = table
        }
        var slot = find(id, mixed, in: table)
        if slot >= 0 {
            s.bytes -= Int(table.costs[slot])
        } else {
            if table.sets < maxSets && s.count >= table.sets * ways / 2 {
                table = grow(&s, table, to: min(maxSets, table.sets * 2))
            }
            let set = setIndex(mixed, sets: table.sets)
            let base = set &* ways
            for way in 0..<ways where table.keys[base &+ way] == 0 {
                slot = base &+ way
                break
            }
            if slot < 0 {
                // CLOCK over the set's ways: skip (and clear) a way hit since the hand passed.
                var hand = Int(table.hands[set])
                var bits = table.referenced[set]
                while bits & (UInt8(1) << UInt8(hand)) != 0 {
                    bits &= ~(UInt8(1) << UInt8(hand))
                    hand = (hand &+ 1) & (ways - 1)
                }
                table.referenced[set] = bits
                table.hands[set] = UInt8((hand &+ 1) & (ways - 1))
                slot = base &+ hand
                remove(slot, from: &s, table)
            }
            table.keys[slot] = id
            s.count += 1
        }
        table.values[slot] = value
        table.costs[slot] = UInt32(clamping: cost)
        s.bytes += cost
        // Over the budget: sweep the shard's other slots until it fits.
        let slots = table.sets * ways
        var visited = 0
        while s.bytes > capacity && visited < slots {
            let victim = s.sweep
            s.sweep = s.sweep &+ 1 == slots ? 0 : s.sweep &+ 1
            visited &+= 1
            if victim != slot && table.keys[victim] != 0 { remove(victim, from: &s, table) }
        }
    }

    @inline(__always)
    private static func remove(_ slot: Int, from s: inout Shard, _ table: Table) {
        table.keys[slot] = 0
        table.values[slot] = nil
        s.bytes -= Int(table.costs[slot])
        table.costs[slot] = 0
        table.referenced[slot / ways] &= ~(UInt8(1) << UInt8(slot % ways))
        s.count -= 1
    }

    /// The shard's table with `sets` sets (more than now), each value moved to its set in the
    /// new table. Doubling splits each set in two, so every value fits; a last step to a count
    /// that is not double may find a set full, and the values that do not fit go.
    private static func grow(_ s: inout Shard, _ old: Table, to sets: Int) -> Table {
        let table = Table(sets: sets)
        var filled = [Int](repeating: 0, count: table.sets)
        for slot in 0..<(old.sets * ways) where old.keys[slot] != 0 {
            let id = old.keys[slot]
            let set = setIndex(mix(id), sets: table.sets)
            guard filled[set] < ways else {
                s.bytes -= Int(old.costs[slot])
                s.count -= 1
                continue
            }
            let target = set &* ways &+ filled[set]
            filled[set] &+= 1
            table.keys[target] = id
            table.values[target] = old.values[slot].take()
            table.costs[target] = old.costs[slot]
            if old.referenced[slot / ways] & (UInt8(1) << UInt8(slot % ways)) != 0 {
                table.referenced[set] |= UInt8(1) << UInt8(target % ways)
            }
        }
        s.table = table
        s.sweep = 0
        return table
    }

    /// Removes `id` and moves its shard's generation (the writer, after the tree has the change).
    func invalidate(_ id: UInt64) {
        guard enabled else { return }
        let mixed = Self.mix(id)
        shard(mixed).state.withLock { s in
            s.generation &+= 1
            guard id != 0, let table = s.table else { return }
            let slot = Self.find(id, mixed, in: table)
            if slot >= 0 { Self.remove(slot, from: &s, table) }
        }
    }

    typealias Statistics = IDCacheStatistics

    var statistics: Statistics {
        var total = Statistics()
        for shard in shards {
            shard.state.withLock { s in
                total.entries += s.count
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
    /// What a value usually costs: `IDCache` sizes its tables for its bytes at this cost each.
    static var typicalCacheBytes: Int { get }
}

extension Tweet.Content: CacheCost {
    /// A short tweet's: its slot (the reference, key, cost and CLOCK bit), the object, a handle
    /// and about 100 bytes of text.
    static var typicalCacheBytes: Int { 8 + 16 + objectBytes + 64 + 8 + 100 }

    /// The object: its header and fields.
    static var objectBytes: Int { 16 + MemoryLayout<Tweet.Fields>.stride }

    /// Its slot, the object, and the UTF-8 and header of every string it holds.
    var cacheBytes: Int {
        func listBytes(_ list: [String]) -> Int {
            guard !list.isEmpty else { return 0 }
            var bytes = 32
            for item in list { bytes += item.utf8.count + 16 }
            return bytes
        }
        return 8 + 16 + Self.objectBytes + fields.authorHandle.utf8.count + fields.text.utf8.count + 64
            + listBytes(fields.mentions) + listBytes(fields.hashtags) + listBytes(fields.urls)
    }
}
