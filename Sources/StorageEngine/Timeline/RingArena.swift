/// The memory rings live in: per size class, segments of equal slots, allocated as needed and
/// kept for the store's life.
///
/// A ring's slot is of the smallest class that holds its older entries (those its block does
/// not), and moves up a class each time a spill does not fit, up to the store's capacity, so a
/// user with 40 such entries costs 800 bytes, not 800 x 16. Classes grow by half (x1.5, each
/// rounded up to a multiple of the spill, `RingLayout.hot - keep` entries: 10, 20, 30, 50, 80,
/// 120, 180, 270, 410, 620, then the capacity, 800, by default), so slots are on average about
/// three quarters used. Freed slots (a ring that moved up, or was dropped) go on their class's free list
/// and are reused first. Segments are about 2 MiB, so allocation is rare and memory stays in
/// big blocks.
///
/// Why classes this fine (2026-12-03, session 14; they grew by four from 8 before): a new
/// store's fan-out first touches every page of slots it fills, and in the development VM a
/// first touch of fresh memory costs 3-14 us per 4 KiB page (the host backs it then), so the
/// memory slots leave unused is time. `timeline-profile 300000 450000` (the timeline suite's
/// `medium` data): the process's page faults fell from 129,600 to 94,700 (the arena's from
/// about 77,000 to 42,000; the entries it holds need about 31,000 pages), and the RAM per
/// ring entry from 31.2 to 22.0 bytes; the price is more copying as rings move up (about
/// twice their final size instead of a third) and more moves (2.2 a ring instead of about
/// one), 8 instructions a push (callgrind), which the pages saved should outweigh: with every
/// arena page faulted in before the fan-out (an experiment) the fan-out took 50-52 ns of CPU
/// a push against 67-70 at the same time, so the arena's first touch cost up to ~20 ns a
/// push and the classes save about half of its pages. Order-balanced runs at load 7-8 could
/// not show the time gain through the noise (Benchmarks README). With the segments in huge
/// pages the fan-out was slower (86-108 ns).
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

    private(set) var classes: [SizeClass]
    /// Each class's slot capacity, ascending (what `sizeClass(for:above:)` searches without
    /// copying a `SizeClass`, whose arrays a copy would retain).
    private let capacities: [Int]

    /// The slot capacities: `unit` (the entries a spill moves, at least 1), then each class
    /// half as large again as the one before, rounded up to a multiple of `unit`, below
    /// `capacity`, then `capacity` itself.
    static func classCapacities(capacity: Int, unit: Int) -> [Int] {
        let unit = max(1, unit)
        var capacities: [Int] = []
        var size = unit
        while size < capacity {
            capacities.append(size)
            let grown = (size * 3 + 1) / 2
            size = (grown + unit - 1) / unit * unit
        }
        capacities.append(capacity)
        return capacities
    }

    /// Classes of `classCapacities(capacity:unit:)`.
    init(capacity: Int, unit: Int) {
        let capacities = Self.classCapacities(capacity: capacity, unit: unit)
        precondition(capacities.count < Int(RingRecord.noSlot), "too many arena size classes")
        self.capacities = capacities
        classes = capacities.map { slotCapacity in
            let slotBytes = slotCapacity * MemoryLayout<TimelineEntry>.stride
            return SizeClass(slotCapacity: slotCapacity, slotsPerSegment: max(1, Self.segmentBytesTarget / slotBytes))
        }
    }

    /// The smallest class above class `above` (-1: any) whose slots hold `entries`: a ring
    /// that grows looks from its own class up (usually the next one).
    func sizeClass(for entries: Int, above: Int = -1) -> Int {
        var index = above + 1
        while index < capacities.count {
            if capacities[index] >= entries { return index }
            index += 1
        }
        preconditionFailure("no size class holds \(entries) entries")
    }

    @usableFromInline var largestClass: Int { classes.count - 1 }

    func slotCapacity(ofClass index: Int) -> Int { capacities[index] }

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
        let (segment, within) = Int(slot).quotientAndRemainder(dividingBy: classes[index].slotsPerSegment)
        return classes[index].segments[segment] + within * capacities[index]
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
