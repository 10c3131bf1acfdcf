/// The ring blocks, by ring number: a growable table of 512-byte blocks whose storage starts on
/// a cache-line boundary. A block is the ring's 32-byte `RingRecord` (its first half line) and
/// then up to `hotSlots` (30) of the ring's newest entries, oldest first (see `SplitRing`).
///
/// Why the newest entries beside the record: a home read of 20 ids and a push are then one
/// region whose address is the user's number times 512, so every line they touch is known
/// before any of them arrives: a read prefetches its reader's whole block and waits for one
/// memory latency, where a record then the ring's lines elsewhere in the arena were two in a
/// row; a push stores into the block (a huge page: no TLB miss), and only every tenth push of a
/// ring spills ten entries to its arena slot. Rings of up to 30 entries have no arena slot.
///
/// Why not a `ContiguousArray`: its elements start 32 bytes into a heap block the allocator
/// aligns to 16 bytes only, so records would straddle lines.
///
/// Pointer rules: `blocks` is allocated (64-byte aligned) and moved only by `append` and
/// `removeAll`, which the store calls under its write lock; readers, under the read lock, use
/// it, the subscript and `hot(_:)`, valid until the next such call. `deallocate()` frees the
/// storage (the store's deinit). A copy of this struct shares the storage: only the store's one
/// state owns it.
@usableFromInline
struct RingRecords {
    @usableFromInline private(set) var blocks: UnsafeMutableRawPointer
    /// Per ring number, the block's entry count and whether a fresh push may go straight into
    /// the block (`fastBlocked` clear), in one `UInt16` (see `hotState`): the table a fan-out
    /// push reads instead of the ring record, so that the push touches one line of the block
    /// (the one it stores into) where it used to wait for the record's line first and then
    /// load the slot's. 2 bytes a ring: 600 KB for 300,000 rings, mostly in the L2 cache.
    @usableFromInline private(set) var hotStates: UnsafeMutablePointer<UInt16>
    @usableFromInline private(set) var count = 0
    private(set) var capacity: Int
    /// Where `blocks` is when the table is in huge pages (see `allocate`), else nil.
    private var region: HugePageRegion?
    /// The ring's arena entries above which fresh pushes take the general way (the ring is
    /// within a block of its capacity): `capacity - hot` of the store's `RingLayout`.
    @usableFromInline let fastArenaLimit: Int
    /// At least the largest id any ring holds or has as its floor (0 for none). A post whose id
    /// is above it is newer than every ring's newest entry and floor, so its pushes need not
    /// compare ids (`TimelineState.pushFresh`). Raised by every change of a ring's contents
    /// (`update`, `noteStored`) and by fan-out after each post.
    @usableFromInline var newestId: UInt64 = 0

    static let alignment = 64
    /// Bytes per ring: the record and `hotSlots` entries, eight cache lines.
    @inlinable static var blockBytes: Int { 512 }
    @inlinable static var recordBytes: Int { 32 }
    /// Entries a block holds after its record.
    @inlinable static var hotSlots: Int { (blockBytes - recordBytes) / 16 }

    /// The bit of a `hotStates` value that sends fresh pushes the general way (see `sync`).
    @inlinable static var fastBlocked: UInt16 { 0x100 }

    init(layout: RingLayout) {
        precondition(MemoryLayout<RingRecord>.stride == Self.recordBytes, "a ring record is 32 bytes (half a cache line)")
        precondition(MemoryLayout<TimelineEntry>.stride == 16, "a ring entry is 16 bytes")
        capacity = 64
        fastArenaLimit = layout.capacity - layout.hot
        (blocks, region) = Self.allocate(capacity)
        hotStates = .allocate(capacity: capacity)
    }

    /// Storage for `capacity` blocks. From 2 MiB up (4,096 blocks) in transparent huge pages
    /// (`HugePageRegion`): every push and home read loads a block at a random place of the
    /// table, and with 4 KiB pages that was a TLB miss as well as a cache miss (a nested page
    /// walk in a virtual machine); the table is dense (every user up to the largest with a ring
    /// has a block), so whole huge pages cost little memory it would not use.
    private static func allocate(_ capacity: Int) -> (UnsafeMutableRawPointer, HugePageRegion?) {
        let bytes = capacity * blockBytes
        if bytes >= HugePageRegion.hugePageBytes, let region = HugePageRegion(byteCount: bytes) {
            return (region.base, region)
        }
        return (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment), nil)
    }

    func deallocate() {
        if let region { region.deallocate() } else { blocks.deallocate() }
        hotStates.deallocate()
    }

    @inlinable var indices: Range<Int> { 0..<count }

    /// The block of ring `number`: its record, then its hot entries.
    @inlinable @inline(__always)
    func block(_ number: Int) -> UnsafeMutableRawPointer { blocks + number &* Self.blockBytes }

    /// The record of ring `number` (< `count`), in place.
    @inlinable @inline(__always)
    func record(_ number: Int) -> UnsafeMutablePointer<RingRecord> {
        block(number).assumingMemoryBound(to: RingRecord.self)
    }

    /// The block's entries of ring `number` (`hotSlots` of them; the record says how many are used).
    @inlinable @inline(__always)
    func hot(_ number: Int) -> UnsafeMutablePointer<TimelineEntry> {
        (block(number) + Self.recordBytes).assumingMemoryBound(to: TimelineEntry.self)
    }

    /// Record `number` (< `count`), in place.
    @inlinable
    subscript(number: Int) -> RingRecord {
        unsafeAddress {
            assert(number >= 0 && number < count, "ring number out of range")
            return UnsafePointer(record(number))
        }
        nonmutating unsafeMutableAddress {
            assert(number >= 0 && number < count, "ring number out of range")
            return record(number)
        }
    }

    /// Entries in ring `number`'s block (its newest), at most `hotSlots`.
    @inlinable @inline(__always)
    func hotCount(_ number: Int) -> Int { Int(hotStates[number] & 0xFF) }

    /// Total entries of ring `number`: its arena slot's and its block's.
    @inlinable
    func entries(_ number: Int) -> Int { Int(record(number).pointee.count) &+ hotCount(number) }

    /// Ring `number` as pushes and reads see it: the arena slot and the block's entries.
    @inlinable @inline(__always)
    func ring(_ number: Int, layout: RingLayout) -> SplitRing {
        let r = record(number)
        return SplitRing(arena: r.pointee.arenaRing, hot: hot(number), hotCount: hotCount(number), layout: layout)
    }

    /// Stores what `ring` changed (the arena ring's head, count and floor, the block's count).
    @inlinable @inline(__always)
    mutating func update(_ number: Int, from ring: SplitRing) {
        let r = record(number)
        r.pointee.head = UInt16(truncatingIfNeeded: ring.arena.head)
        r.pointee.count = UInt32(truncatingIfNeeded: ring.arena.count)
        r.pointee.floor = ring.arena.floor
        setHotCount(number, ring.hotCount)
        if ring.count > 0 { noteStored(ring[ring.count &- 1].id) }
        noteStored(ring.arena.floor)
    }

    /// Sets ring `number`'s block count and recomputes its fast-push bit (`sync`).
    @inlinable
    func setHotCount(_ number: Int, _ hotCount: Int) {
        hotStates[number] = UInt16(truncatingIfNeeded: hotCount)
        sync(number)
    }

    /// Recomputes ring `number`'s fast-push bit from its record: a fresh push (an id above
    /// `newestId`) may store straight into the block's next slot, with no other check than the
    /// block having room, when the number's user has a live ring, the ring is more than a
    /// block short of its capacity (so no push into the block can reach it), and the block is
    /// not empty while the arena slot holds entries (after removals: that push must go to the
    /// general way, which keeps the newest in the block). Every change of a record's
    /// `presence` or `count`, or of a block's count, calls it; pushes into the block keep it
    /// true (they only raise the block's count).
    @inlinable
    func sync(_ number: Int) {
        let r = record(number)
        let hotCount = hotStates[number] & 0xFF
        let arenaCount = Int(r.pointee.count)
        let fast = r.pointee.presence == RingRecord.live && arenaCount <= fastArenaLimit && (arenaCount == 0 || hotCount > 0)
        hotStates[number] = fast ? hotCount : hotCount | Self.fastBlocked
    }

    /// Raises `newestId` to `id`: an entry with that id (or a floor) is in a ring now.
    @inlinable @inline(__always)
    mutating func noteStored(_ id: UInt64) {
        if id > newestId { newestId = id }
    }

    /// Grows the table to at least `minimum` blocks (only the storage: `count` is unchanged).
    mutating func reserve(_ minimum: Int) {
        guard minimum > capacity else { return }
        var grown = capacity
        while grown < minimum { grown *= 2 }
        let (fresh, freshRegion) = Self.allocate(grown)
        fresh.copyMemory(from: blocks, byteCount: count * Self.blockBytes)
        for number in 0..<count {
            (fresh + number * Self.blockBytes).bindMemory(to: RingRecord.self, capacity: 1)
            (fresh + number * Self.blockBytes + Self.recordBytes).bindMemory(to: TimelineEntry.self, capacity: Self.hotSlots)
        }
        let freshStates = UnsafeMutablePointer<UInt16>.allocate(capacity: grown)
        freshStates.initialize(from: hotStates, count: count)
        deallocate()
        blocks = fresh
        hotStates = freshStates
        region = freshRegion
        capacity = grown
    }

    /// Appends `record` with an empty block.
    mutating func append(_ record: RingRecord) {
        if count == capacity { reserve(capacity * 2) }
        (blocks + count * Self.blockBytes).bindMemory(to: RingRecord.self, capacity: 1).initialize(to: record)
        (blocks + count * Self.blockBytes + Self.recordBytes).bindMemory(to: TimelineEntry.self, capacity: Self.hotSlots)
        (hotStates + count).initialize(to: 0)
        count += 1
        sync(count - 1)
    }

    /// Forgets every record (the storage shrinks back to its first size).
    mutating func removeAll() {
        deallocate()
        capacity = 64
        (blocks, region) = Self.allocate(capacity)
        hotStates = .allocate(capacity: capacity)
        count = 0
        newestId = 0
    }
}

/// Where a ring is in the arena, by ring number: what only the writers need (growing, freeing
/// and checkpointing rings), kept out of the 32-byte `RingRecord` that pushes and reads load.
struct RingOwner {
    /// The user whose ring it is (the ring is live when the user table points back at it).
    var user: UInt32
    /// The ring's slot in its size class of the arena.
    var slot: UInt32
}
