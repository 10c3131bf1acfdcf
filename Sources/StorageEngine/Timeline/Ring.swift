/// One user's ring: a fixed-capacity circular buffer of `TimelineEntry`s in a slot of the arena,
/// sorted by id from oldest (logical index 0) to newest (logical index count-1).
///
/// Invariants, checked by the exhaustive tests at every capacity, start and count:
/// - entries are strictly increasing by id (so a duplicate push is found and ignored: fan-out
///   is idempotent);
/// - `floor` is the largest id the ring ever let go of (evicted when full, or refused because it
///   was older than everything in a full ring), 0 if none: the ring holds every entry it was
///   given with an id above `floor`. A read that runs past the oldest entry continues from the
///   sources below `floor`, so evictions never change what a page shows.
///
/// Physical index of logical `i` is `head + i`, wrapped once by a compare and subtract rather
/// than a power-of-two mask: capacities are not powers of two (800 by default), and rounding
/// up to 1,024 would cost 28% more memory per full ring for a mask that saves one compare.
///
/// Pointer rules: `base` points into an arena segment that lives as long as the store and never
/// moves; the ring owns `slotCapacity` entries from it while its record says so. Only code
/// holding the store's write lock mutates a ring; readers hold the read lock.
@usableFromInline
struct Ring {
    @usableFromInline var base: UnsafeMutablePointer<TimelineEntry>
    @usableFromInline var slotCapacity: Int
    @usableFromInline var head: Int
    @usableFromInline var count: Int
    @usableFromInline var floor: UInt64

    /// Without the range checks, for a record the store keeps in range (the hot paths).
    @inlinable @inline(__always)
    init(unchecked base: UnsafeMutablePointer<TimelineEntry>, slotCapacity: Int, head: Int, count: Int, floor: UInt64) {
        self.base = base
        self.slotCapacity = slotCapacity
        self.head = head
        self.count = count
        self.floor = floor
    }

    @inlinable
    init(base: UnsafeMutablePointer<TimelineEntry>, slotCapacity: Int, head: Int = 0, count: Int = 0, floor: UInt64 = 0) {
        precondition(slotCapacity >= 1 && head >= 0 && head < slotCapacity && count >= 0 && count <= slotCapacity, "ring layout out of range")
        self.base = base
        self.slotCapacity = slotCapacity
        self.head = head
        self.count = count
        self.floor = floor
    }

    @inlinable @inline(__always)
    func physical(_ logical: Int) -> Int {
        let p = head &+ logical
        return p >= slotCapacity ? p &- slotCapacity : p
    }

    @inlinable @inline(__always)
    subscript(logical: Int) -> TimelineEntry {
        get { base[physical(logical)] }
        nonmutating set { base[physical(logical)] = newValue }
    }

    @inlinable var isFull: Bool { count == slotCapacity }
    @inlinable var newestId: UInt64 { count == 0 ? 0 : self[count &- 1].id }
    @inlinable var oldestId: UInt64 { count == 0 ? 0 : self[0].id }

    @usableFromInline
    enum PushOutcome: Equatable {
        /// Stored (appended as the newest, or inserted in id order).
        case stored
        /// Already there: nothing changed.
        case duplicate
        /// At or below the floor (or older than everything in a full ring, which raises the
        /// floor): the sources serve it.
        case belowFloor
    }

    /// Stores `entry` in id order. When the ring is full, the oldest entry is evicted first and
    /// the floor rises to its id. The common case, an entry newer than every other, is one
    /// compare and one store at the wrapped index, inlined; the rest is `insertInOrder`.
    @inlinable @inline(__always)
    mutating func push(_ entry: TimelineEntry) -> PushOutcome {
        if entry.id <= floor { return .belowFloor }
        if count == 0 || entry.id > self[count &- 1].id {
            if count == slotCapacity { evictOldest() }
            self[count] = entry
            count &+= 1
            return .stored
        }
        return insertInOrder(entry)
    }

    /// `push` of an entry above the floor and not newer than the newest: a binary search and
    /// a shift of the newer entries.
    @usableFromInline
    mutating func insertInOrder(_ entry: TimelineEntry) -> PushOutcome {
        var position = firstIndex(atLeast: entry.id)
        if position < count && self[position].id == entry.id { return .duplicate }
        if count == slotCapacity {
            if position == 0 {
                floor = max(floor, entry.id)
                return .belowFloor
            }
            evictOldest()
            position &-= 1
        }
        // Shift the newer entries up by one, newest first, then store in the gap.
        var i = count
        while i > position {
            self[i] = self[i &- 1]
            i &-= 1
        }
        self[position] = entry
        count &+= 1
        return .stored
    }

    @inlinable
    mutating func evictOldest() {
        assert(count > 0, "evicting from an empty ring")
        floor = max(floor, self[0].id)
        head = physical(1)
        count &-= 1
    }

    /// The logical index of the first entry with id >= `id` (`count` if none): binary search.
    @inlinable
    func firstIndex(atLeast id: UInt64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low &+ high) >> 1
            if self[middle].id < id { low = middle &+ 1 } else { high = middle }
        }
        return low
    }

    /// Removes every entry `shouldRemove` accepts, keeping the order; returns how many went.
    /// The floor does not change: the entries removed are ones no page may show any more.
    mutating func removeAll(where shouldRemove: (TimelineEntry) -> Bool) -> Int {
        var kept = 0
        for i in 0..<count {
            let entry = self[i]
            if shouldRemove(entry) { continue }
            if kept != i { self[kept] = entry }
            kept &+= 1
        }
        let removed = count &- kept
        count = kept
        return removed
    }

    /// Copies the entries, oldest first, into `destination` (which must have room for `count`).
    func copyOldestFirst(to destination: UnsafeMutablePointer<TimelineEntry>) {
        let firstRun = min(count, slotCapacity &- head)
        destination.update(from: base + head, count: firstRun)
        if firstRun < count {
            (destination + firstRun).update(from: base, count: count &- firstRun)
        }
    }
}
