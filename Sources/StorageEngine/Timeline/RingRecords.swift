/// The ring records, by ring number: a growable table of 32-byte `RingRecord`s whose storage
/// starts on a cache-line boundary, so each record sits in exactly one line.
///
/// Why not a `ContiguousArray<RingRecord>`: an array's elements start 32 bytes into a heap block
/// the allocator aligns to 16 bytes only (a large block from mmap begins 16 bytes into a page),
/// so half of all 32-byte records would straddle two lines, and every push and home read, whose
/// record load is a cache miss, would pay for two. (The 48-byte records this replaced straddled
/// half the time wherever the array began.)
///
/// Pointer rules: `base` is allocated (64-byte aligned) and moved only by `append` and
/// `removeAll`, which the store calls under its write lock; readers, under the read lock, use
/// `base` and the subscript, valid until the next such call. `deallocate()` frees the storage
/// (the store's deinit). A copy of this struct shares the storage: only the store's one state
/// owns it.
@usableFromInline
struct RingRecords {
    @usableFromInline private(set) var base: UnsafeMutablePointer<RingRecord>
    @usableFromInline private(set) var count = 0
    private(set) var capacity: Int
    /// Where `base` is when the table is in huge pages (see `allocate`), else nil.
    private var region: HugePageRegion?

    static let alignment = 64

    init() {
        precondition(MemoryLayout<RingRecord>.stride == 32, "a ring record is 32 bytes (half a cache line)")
        capacity = 64
        (base, region) = Self.allocate(capacity)
    }

    /// Storage for `capacity` records. From 2 MiB up (65,536 records) in transparent huge
    /// pages (`HugePageRegion`): every push and home read loads a record at a random place of
    /// the table, and with 4 KiB pages that was a TLB miss as well as a cache miss (a nested
    /// page walk in a virtual machine); the table is dense (every user up to the largest with
    /// a ring has a record), so whole huge pages cost no memory it would not use.
    private static func allocate(_ capacity: Int) -> (UnsafeMutablePointer<RingRecord>, HugePageRegion?) {
        let bytes = capacity * MemoryLayout<RingRecord>.stride
        if bytes >= HugePageRegion.hugePageBytes, let region = HugePageRegion(byteCount: bytes) {
            return (region.base.bindMemory(to: RingRecord.self, capacity: capacity), region)
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        return (raw.bindMemory(to: RingRecord.self, capacity: capacity), nil)
    }

    func deallocate() {
        if let region { region.deallocate() } else { UnsafeMutableRawPointer(base).deallocate() }
    }

    @inlinable var indices: Range<Int> { 0..<count }

    /// Record `number` (< `count`), in place.
    @inlinable
    subscript(number: Int) -> RingRecord {
        unsafeAddress {
            assert(number >= 0 && number < count, "ring number out of range")
            return UnsafePointer(base + number)
        }
        nonmutating unsafeMutableAddress {
            assert(number >= 0 && number < count, "ring number out of range")
            return base + number
        }
    }

    mutating func append(_ record: RingRecord) {
        if count == capacity {
            let (grown, grownRegion) = Self.allocate(capacity * 2)
            grown.moveInitialize(from: base, count: count)
            deallocate()
            base = grown
            region = grownRegion
            capacity *= 2
        }
        (base + count).initialize(to: record)
        count += 1
    }

    /// Forgets every record (the storage shrinks back to its first size).
    mutating func removeAll() {
        deallocate()
        capacity = 64
        (base, region) = Self.allocate(capacity)
        count = 0
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
