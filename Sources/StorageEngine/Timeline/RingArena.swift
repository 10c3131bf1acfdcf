/// The memory rings live in: per size class, segments of equal slots, allocated as needed and
/// kept for the store's life.
///
/// A ring starts in the smallest class (8 entries) and moves up a class (x4) each time it fills,
/// up to the store's capacity, so a user with 3 entries costs 128 bytes, not 800 x 16. Freed
/// slots (a ring that moved up, or was dropped) go on their class's free list and are reused
/// first. Segments are about 2 MiB, so allocation is rare and memory stays in big blocks.
///
/// A class's slots per segment are as many as fit in 2 MiB (163 of 800 entries). Segments are
/// not zeroed: entries are plain values and no slot is read beyond its ring's count, so the
/// pages are first touched by the pushes that fill them. (Advising segments as transparent huge
/// pages was tried: on the development VM it made fan-out 1.6x and reads 1.2x slower, the
/// kernel's clearing of whole 2 MiB pages showing as a quarter of the profile. Tried again on
/// 2026-12-02 with 2 MiB-aligned mappings, `timeline-profile 300000 450000`: home reads took
/// 10-25% less CPU (fewer TLB misses), but fan-out into the new store 60-80 ns more per push,
/// `clear_page_erms` 35% of its profile; advising only the user table, ring records and activity
/// table (collapsed with MADV_COLLAPSE after each growth) moved nothing the load-6 noise did not.
/// Once more on 2026-12-03 with each segment one 2 MiB-aligned huge page: `clear_page_erms` took
/// a quarter of `timeline-profile 300000 450000 3000000 1`'s samples. The ring records, read
/// hints and activity days, dense tables, are in huge pages instead: see `RingRecords`.)
///
/// Why memory and not mmap: a home read must never wait for a page fault to the disk, a push
/// must not dirty file pages the kernel writes back on its own schedule, and a checkpoint must be
/// one consistent, checksummed, atomically renamed file, which an mmap'ed arena cannot give
/// without copying it anyway. Rings are derived data: a checkpoint plus the log rebuilds them.
///
/// Pointer rules: every segment is allocated once, never moved, and deallocated in
/// `deallocateAll()` (the store's deinit). Slot pointers handed out stay
/// valid until then. Not thread-safe: the store's write lock covers every call.
@usableFromInline
struct RingArena {
    struct SizeClass {
        let slotCapacity: Int
        /// As many slots as fit in one segment (at least one).
        let slotsPerSegment: Int
        var segments: [UnsafeMutablePointer<TimelineEntry>] = []
        var nextSlot = 0
        var freeSlots: [UInt32] = []

        var segmentEntries: Int { slotsPerSegment * slotCapacity }
    }

    static let segmentBytesTarget = 2 << 20
    static let smallestClassCapacity = 8

    private(set) var classes: [SizeClass]

    /// Classes of 8, 32, 128, ... entries below `capacity`, then `capacity` itself.
    init(capacity: Int) {
        var capacities: [Int] = []
        var size = Self.smallestClassCapacity
        while size < capacity {
            capacities.append(size)
            size *= 4
        }
        capacities.append(capacity)
        classes = capacities.map { slotCapacity in
            let slotBytes = slotCapacity * MemoryLayout<TimelineEntry>.stride
            return SizeClass(slotCapacity: slotCapacity, slotsPerSegment: max(1, Self.segmentBytesTarget / slotBytes))
        }
    }

    /// The smallest class whose slots hold `entries`.
    func sizeClass(for entries: Int) -> Int {
        for (index, sizeClass) in classes.enumerated() where sizeClass.slotCapacity >= entries { return index }
        preconditionFailure("no size class holds \(entries) entries")
    }

    @usableFromInline var largestClass: Int { classes.count - 1 }

    func slotCapacity(ofClass index: Int) -> Int { classes[index].slotCapacity }

    mutating func allocate(sizeClass index: Int) -> (slot: UInt32, base: UnsafeMutablePointer<TimelineEntry>) {
        if let slot = classes[index].freeSlots.popLast() {
            return (slot, pointer(sizeClass: index, slot: slot))
        }
        let slot = classes[index].nextSlot
        precondition(slot < Int(UInt32.max), "ring arena slot numbers exhausted")
        if slot / classes[index].slotsPerSegment == classes[index].segments.count {
            // Uninitialized: see above.
            classes[index].segments.append(.allocate(capacity: classes[index].segmentEntries))
        }
        classes[index].nextSlot += 1
        return (UInt32(slot), pointer(sizeClass: index, slot: UInt32(slot)))
    }

    mutating func free(sizeClass index: Int, slot: UInt32) {
        classes[index].freeSlots.append(slot)
    }

    func pointer(sizeClass index: Int, slot: UInt32) -> UnsafeMutablePointer<TimelineEntry> {
        let sizeClass = classes[index]
        let (segment, within) = Int(slot).quotientAndRemainder(dividingBy: sizeClass.slotsPerSegment)
        return sizeClass.segments[segment] + within * sizeClass.slotCapacity
    }

    /// Bytes of segments allocated.
    var allocatedBytes: Int {
        classes.reduce(0) { $0 + $1.segments.count * $1.segmentEntries * MemoryLayout<TimelineEntry>.stride }
    }

    /// Bytes of slots in use (allocated segments minus free and never-used slots).
    var slotBytesInUse: Int {
        classes.reduce(0) { $0 + ($1.nextSlot - $1.freeSlots.count) * $1.slotCapacity * MemoryLayout<TimelineEntry>.stride }
    }

    mutating func deallocateAll() {
        for index in classes.indices {
            for segment in classes[index].segments { segment.deallocate() }
            classes[index].segments = []
            classes[index].nextSlot = 0
            classes[index].freeSlots = []
        }
    }
}
