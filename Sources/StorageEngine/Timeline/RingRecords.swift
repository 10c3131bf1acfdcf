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

    static let alignment = 64

    init() {
        precondition(MemoryLayout<RingRecord>.stride == 32, "a ring record is 32 bytes (half a cache line)")
        capacity = 64
        base = Self.allocate(capacity)
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<RingRecord> {
        UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<RingRecord>.stride, alignment: alignment)
            .bindMemory(to: RingRecord.self, capacity: capacity)
    }

    func deallocate() { UnsafeMutableRawPointer(base).deallocate() }

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
            let grown = Self.allocate(capacity * 2)
            grown.moveInitialize(from: base, count: count)
            deallocate()
            base = grown
            capacity *= 2
        }
        (base + count).initialize(to: record)
        count += 1
    }

    /// Forgets every record (the storage shrinks back to its first size).
    mutating func removeAll() {
        deallocate()
        capacity = 64
        base = Self.allocate(capacity)
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
