import CLibURing
import Synchronization

/// Tweets' encoded parts by id (`SocialDB.tweetEncodings`): the bytes a page copies for each of
/// its tweets, so a page read is a few probes and copies. The same contract as `IDCache` (the
/// writer invalidates an id after the tree has the change and moves its shard's generation; a
/// reader that missed installs what it built only if the generation has not moved since its
/// `stamp`), in a form made for reading pages:
///
/// - Each shard is an open-addressing table (linear probing, deletion by backward shift) of
///   16-byte slots `(id, part)`; a part is one allocation: a 24-byte header (length, which
///   nested ids it has, the retweeted and quoted ids) and the bytes. A hit is one probe of the
///   slot's line and a copy from the part's lines, with no hashing beyond a multiply, no
///   reference counting and no copy of the entry.
/// - A page's ids are looked up in two passes (`appendParts`): the first prefetches every id's
///   slot line (through each shard's table address, read without the lock: a stale address
///   only wastes a prefetch, which never faults) and then, under each shard's lock, the first
///   lines of its part; the second copies the parts. The cache misses of a page's ten or twenty
///   tweets overlap instead of following one another.
///
/// Bounded in bytes like `IDCache`: past `maxBytes / shardCount` in a shard, entries go from
/// a rotating position in the table (effectively random ids) until an eighth of it is free.
final class PartCache: Sendable {
    /// A slot: `part` nil when empty.
    struct Slot {
        var id: UInt64
        var part: UnsafeMutableRawPointer?
    }

    /// A part's header before its bytes.
    static let headerBytes = 24
    /// Flags in the header: the part shows a retweeted original, a quoted tweet.
    static let hasRetweetOf: UInt32 = 1
    static let hasQuoteOf: UInt32 = 2

    struct Shard: ~Copyable {
        var slots: UnsafeMutablePointer<Slot>
        var mask: Int
        var count = 0
        var bytes = 0
        var generation: UInt64 = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var evictAt = 0

        init(capacity: Int) {
            slots = .allocate(capacity: capacity)
            slots.initialize(repeating: Slot(id: 0, part: nil), count: capacity)
            mask = capacity - 1
        }

        deinit {
            for i in 0...mask where slots[i].part != nil { slots[i].part!.deallocate() }
            slots.deallocate()
        }

        /// The slot holding `id`, or nil.
        @inline(__always)
        func find(_ id: UInt64, home: Int) -> Int? {
            var i = home & mask
            while let _ = slots[i].part {
                if slots[i].id == id { return i }
                i = (i + 1) & mask
            }
            return nil
        }

        /// Empties slot `at` (freeing its part) and shifts the entries after it back into
        /// place, so no probe sequence breaks.
        mutating func remove(at index: Int) {
            let part = slots[index].part!
            bytes -= PartCache.cost(part)
            part.deallocate()
            count -= 1
            var hole = index
            var j = index
            while true {
                j = (j + 1) & mask
                guard slots[j].part != nil else { break }
                let home = PartCache.home(slots[j].id) & mask
                // The entry at j stays when its home lies cyclically in (hole, j].
                let stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j)
                if stays { continue }
                slots[hole] = slots[j]
                hole = j
            }
            slots[hole] = Slot(id: 0, part: nil)
        }

        /// Puts `part` at `id` (replacing what was there), growing the table past half full.
        mutating func put(_ id: UInt64, _ part: UnsafeMutableRawPointer) {
            if let index = find(id, home: PartCache.home(id)) {
                bytes -= PartCache.cost(slots[index].part!)
                slots[index].part!.deallocate()
                slots[index].part = part
                bytes += PartCache.cost(part)
                return
            }
            if (count + 1) * 2 > mask + 1 { grow() }
            var i = PartCache.home(id) & mask
            while slots[i].part != nil { i = (i + 1) & mask }
            slots[i] = Slot(id: id, part: part)
            count += 1
            bytes += PartCache.cost(part)
        }

        private mutating func grow() {
            let old = slots, oldCapacity = mask + 1
            let capacity = oldCapacity * 2
            slots = .allocate(capacity: capacity)
            slots.initialize(repeating: Slot(id: 0, part: nil), count: capacity)
            mask = capacity - 1
            for k in 0..<oldCapacity where old[k].part != nil {
                var i = PartCache.home(old[k].id) & mask
                while slots[i].part != nil { i = (i + 1) & mask }
                slots[i] = old[k]
            }
            old.deallocate()
        }

        /// Removes entries from the rotating position on until `bytes` is at most `target`,
        /// never `keep`.
        mutating func evict(to target: Int, keep: UInt64) {
            var steps = 0
            while bytes > target && count > 1 && steps <= 2 * (mask + 1) {
                let i = evictAt & mask
                if slots[i].part != nil && slots[i].id != keep {
                    remove(at: i) // the slot may now hold a shifted entry: look at it again
                } else {
                    evictAt &+= 1
                }
                steps += 1
            }
        }
    }

    /// Each shard in its own allocation, so two shards' locks never share a cache line; the
    /// table's address and mask are mirrored in atomics for `prefetch` (a hint, read without
    /// the lock).
    final class ShardBox: Sendable {
        let state: Mutex<Shard>
        let slotsHint = Atomic<Int>(0)
        let maskHint = Atomic<Int>(0)

        init() {
            let shard = Shard(capacity: 64)
            slotsHint.store(Int(bitPattern: UInt(bitPattern: shard.slots)), ordering: .relaxed)
            maskHint.store(shard.mask, ordering: .relaxed)
            state = Mutex(shard)
        }

        @inline(__always)
        func updateHints(_ s: borrowing Shard) {
            slotsHint.store(Int(bitPattern: UInt(bitPattern: s.slots)), ordering: .relaxed)
            maskHint.store(s.mask, ordering: .relaxed)
        }
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

    /// Snowflake ids have time in the high bits and a sequence in the low ones: one multiply
    /// spreads them. The shard is the top 6 bits, the slot the bits below.
    @inline(__always)
    static func mixed(_ id: UInt64) -> UInt64 { id &* 0x9E37_79B9_7F4A_7C15 }

    @inline(__always)
    static func home(_ id: UInt64) -> Int { Int(truncatingIfNeeded: mixed(id) >> 20) }

    @inline(__always)
    private func shard(_ id: UInt64) -> ShardBox {
        shards[Int(truncatingIfNeeded: Self.mixed(id) >> 58)]
    }

    /// What a part costs: its allocation (header and bytes, and malloc's own word or two) and
    /// its slot at the table's half load.
    @inline(__always)
    static func cost(_ part: UnsafeMutableRawPointer) -> Int {
        Int(part.load(as: UInt32.self)) + headerBytes + 16 + 2 * MemoryLayout<Slot>.stride
    }

    /// Appends `id`'s part and returns the ids it shows inside it; nil (appending nothing) when
    /// `id` has no part here.
    @inline(__always)
    func append(_ id: UInt64, into out: inout [UInt8]) -> (retweetOf: UInt64?, quoteOf: UInt64?)? {
        guard enabled else { return nil }
        let home = Self.home(id)
        return shard(id).state.withLock { s -> (retweetOf: UInt64?, quoteOf: UInt64?)? in
            guard let index = s.find(id, home: home) else {
                s.misses &+= 1
                return nil
            }
            s.hits &+= 1
            let part = UnsafeRawPointer(s.slots[index].part!)
            let length = Int(part.load(as: UInt32.self))
            let flags = part.load(fromByteOffset: 4, as: UInt32.self)
            out.append(contentsOf: UnsafeRawBufferPointer(start: part + Self.headerBytes, count: length))
            return (flags & Self.hasRetweetOf != 0 ? part.load(fromByteOffset: 8, as: UInt64.self) : nil,
                    flags & Self.hasQuoteOf != 0 ? part.load(fromByteOffset: 16, as: UInt64.self) : nil)
        }
    }

    /// The bytes of a part `prefetch` starts loading: a part's header and about 400 bytes of a
    /// typical tweet's JSON.
    static let prefetchedBytes = 512

    /// Starts loading what `append` will read for each of `ids`: first every slot's line, then
    /// (under each shard's lock, once the slots are on their way) the first lines of each part.
    /// Changes nothing and counts nothing. Returns the ids it has no part for (in order).
    @discardableResult
    func prefetch(_ ids: some Collection<UInt64>) -> [UInt64] {
        guard enabled else { return Array(ids) }
        for id in ids {
            let box = shard(id)
            let slots = box.slotsHint.load(ordering: .relaxed)
            let mask = box.maskHint.load(ordering: .relaxed)
            guard let base = UnsafeRawPointer(bitPattern: slots) else { continue }
            socialdb_prefetch(base + (Self.home(id) & mask) * MemoryLayout<Slot>.stride)
        }
        var missing: [UInt64] = []
        for id in ids {
            let home = Self.home(id)
            let found = shard(id).state.withLock { s -> Bool in
                guard let index = s.find(id, home: home) else { return false }
                // A fixed run of lines, not the part's own length: reading its header here
                // would wait for the part's first line before the next id's probe, one memory
                // latency per tweet in a row (8% of the server's CPU in a page read); a
                // prefetch past the part's end never faults and costs a line at most.
                let part = UnsafeRawPointer(s.slots[index].part!)
                var offset = 0
                while offset < Self.prefetchedBytes {
                    socialdb_prefetch(part + offset)
                    offset += 64
                }
                return true
            }
            if !found { missing.append(id) }
        }
        return missing
    }

    /// The generation to pass to `install` for `id`: take it before reading what the part is
    /// made of.
    @inline(__always)
    func stamp(_ id: UInt64) -> UInt64 {
        guard enabled else { return 0 }
        return shard(id).state.withLock { $0.generation }
    }

    /// Keeps `bytes` as `id`'s part unless a write invalidated anything in its shard since
    /// `stamp`.
    func install(_ id: UInt64, bytes: [UInt8], retweetOf: UInt64?, quoteOf: UInt64?, since stamp: UInt64) {
        guard enabled else { return }
        let total = Self.headerBytes + bytes.count
        guard bytes.count <= Int(UInt32.max), total + 16 <= shardCapacity / 4 else { return }
        let part = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 8)
        part.storeBytes(of: UInt32(bytes.count), as: UInt32.self)
        part.storeBytes(of: (retweetOf == nil ? 0 : Self.hasRetweetOf) | (quoteOf == nil ? 0 : Self.hasQuoteOf), toByteOffset: 4, as: UInt32.self)
        part.storeBytes(of: retweetOf ?? 0, toByteOffset: 8, as: UInt64.self)
        part.storeBytes(of: quoteOf ?? 0, toByteOffset: 16, as: UInt64.self)
        bytes.withUnsafeBytes { (part + Self.headerBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let capacity = shardCapacity
        let box = shard(id)
        // The lock's state may take only what is sent into it: the part goes in as its address.
        let address = UInt(bitPattern: part)
        let kept = box.state.withLock { s -> Bool in
            guard s.generation == stamp else { return false }
            let mask = s.mask
            s.put(id, UnsafeMutableRawPointer(bitPattern: address)!)
            if s.bytes > capacity { s.evict(to: capacity - capacity / 8, keep: id) }
            if s.mask != mask { box.updateHints(s) }
            return true
        }
        if !kept { part.deallocate() }
    }

    /// Removes `id` and moves its shard's generation (the writer, after the tree has the change).
    func invalidate(_ id: UInt64) {
        guard enabled else { return }
        let home = Self.home(id)
        shard(id).state.withLock { s in
            s.generation &+= 1
            if let index = s.find(id, home: home) { s.remove(at: index) }
        }
    }

    var statistics: IDCacheStatistics {
        var total = IDCacheStatistics()
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
