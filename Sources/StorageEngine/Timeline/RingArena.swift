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
/// Segments faulted in ahead (2026-12-03, session 15): once the arena has handed out
/// `prefaultAfterBytes` of slots (16 MiB in a store, `TimelineOptions.arenaPrefaultAfterBytes`,
/// so a small store never starts a thread), every new segment is a 2 MiB mapping taken from a
/// `PrefaultedRegions` whose background thread keeps `segmentsAhead` (8) of them faulted in
/// (`MADV_POPULATE_WRITE`), so fan-out's spills and slot moves write memory that is already
/// mapped: in the development VM a first touch costs a guest fault and a host fault, and the
/// arena's were 10-20 ns of a fresh store's ~70-80 ns push. The thread's CPU (and wall) time is
/// in `TimelineStatistics` and the timeline suite adds it to fan-out's CPU per push (4-6 ns a
/// push: faulting 4 KiB pages in a loop in the kernel is cheaper than one fault per page
/// from user code). A segment taken when none is ready is mapped on the spot and faulted in by
/// the pushes, as before. The memory per entry rises by the ready segments (16 MiB: 1.1 bytes
/// an entry at the suite's `medium` scale) and by whole last segments of each class.
///
/// Why memory and not mmap: a home read must never wait for a page fault to the disk, a push
/// must not dirty file pages the kernel writes back on its own schedule, and a checkpoint must be
/// one consistent, checksummed, atomically renamed file, which an mmap'ed arena cannot give
/// without copying it anyway. Rings are derived data: a checkpoint plus the log rebuilds them.
///
/// Pointer rules: every segment is allocated once, never moved, and deallocated in
/// `deallocateAll()` (the store's deinit, or a reset), which also joins the supply's thread.
/// Slot pointers handed out stay valid until then. Not thread-safe: the store's write lock
/// covers every call (the supply synchronizes with its own thread).
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
    /// Segments taken from `supply` (2 MiB mappings), freed by `deallocateAll()`; every
    /// other segment was allocated on the heap.
    private var regions: [PrefaultedRegions.Region] = []
    /// Segments allocated so far, of every class.
    private(set) var segmentCount = 0
    /// Bytes of the segments allocated on the heap.
    private var heapBytes = 0
    /// Regions faulted in ahead by a background thread, started once the arena has handed out
    /// `prefaultAfterBytes` of fresh slots (nil before, and when `segmentsAhead` is 0).
    private(set) var supply: PrefaultedRegions?
    private let segmentsAhead: Int
    private let prefaultAfterBytes: Int
    /// Bytes of the slots handed out fresh (not reused from a free list), of every class.
    private var freshSlotBytes = 0

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

    /// Classes of `classCapacities(capacity:unit:)`. Once `prefaultAfterBytes` of slots were
    /// handed out, segments come faulted in from a background thread keeping `segmentsAhead`
    /// ready (none when 0).
    init(capacity: Int, unit: Int, segmentsAhead: Int = 0, prefaultAfterBytes: Int = 0) {
        let capacities = Self.classCapacities(capacity: capacity, unit: unit)
        precondition(capacities.count < Int(RingRecord.noSlot), "too many arena size classes")
        precondition(segmentsAhead >= 0 && prefaultAfterBytes >= 0, "counts are not negative")
        self.capacities = capacities
        self.segmentsAhead = segmentsAhead
        self.prefaultAfterBytes = prefaultAfterBytes
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
            classes[index].segments.append(newSegment(entries: classes[index].segmentEntries))
        }
        classes[index].nextSlot += 1
        freshSlotBytes += capacities[index] * MemoryLayout<TimelineEntry>.stride
        return (UInt32(slot), pointer(sizeClass: index, slot: UInt32(slot)))
    }

    /// A segment's memory: a faulted-in region from the supply once the arena has handed out
    /// `prefaultAfterBytes` of slots (the supply started on the way), else from the heap,
    /// uninitialized (see above). (By slots, not segments: a small store's rings in every
    /// class take a segment each, mostly never touched.)
    private mutating func newSegment(entries: Int) -> UnsafeMutablePointer<TimelineEntry> {
        defer { segmentCount += 1 }
        if segmentsAhead > 0 && freshSlotBytes >= prefaultAfterBytes
            && entries * MemoryLayout<TimelineEntry>.stride <= PrefaultedRegions.regionBytes {
            if supply == nil { supply = PrefaultedRegions(ahead: segmentsAhead) }
            let region = supply!.take()
            regions.append(region)
            return region.base.bindMemory(to: TimelineEntry.self, capacity: entries)
        }
        heapBytes += entries * MemoryLayout<TimelineEntry>.stride
        return .allocate(capacity: entries)
    }

    mutating func free(sizeClass index: Int, slot: UInt32) {
        classes[index].freeSlots.append(slot)
    }

    func pointer(sizeClass index: Int, slot: UInt32) -> UnsafeMutablePointer<TimelineEntry> {
        let (segment, within) = Int(slot).quotientAndRemainder(dividingBy: classes[index].slotsPerSegment)
        return classes[index].segments[segment] + within * capacities[index]
    }

    /// Bytes of segments allocated (a region from the supply counts whole), and of the regions
    /// the supply holds ready (faulted in, so memory in use).
    var allocatedBytes: Int {
        heapBytes + regions.count * PrefaultedRegions.regionBytes + (supply?.readyBytes ?? 0)
    }

    /// Bytes of slots in use (allocated segments minus free and never-used slots).
    var slotBytesInUse: Int {
        classes.reduce(0) { $0 + ($1.nextSlot - $1.freeSlots.count) * $1.slotCapacity * MemoryLayout<TimelineEntry>.stride }
    }

    /// Frees every segment and ends the supply's thread. The arena is empty afterwards (and may
    /// be used again: it allocates as a new one would).
    mutating func deallocateAll() {
        supply?.stop()
        supply = nil
        let regionBases = Set(regions.map { UnsafeMutableRawPointer($0.base) })
        for index in classes.indices {
            for segment in classes[index].segments where !regionBases.contains(UnsafeMutableRawPointer(segment)) {
                segment.deallocate()
            }
            classes[index].segments = []
            classes[index].nextSlot = 0
            classes[index].freeSlots = []
        }
        for region in regions { region.deallocate() }
        regions = []
        segmentCount = 0
        heapBytes = 0
        freshSlotBytes = 0
    }
}
