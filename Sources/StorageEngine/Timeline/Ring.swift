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
        firstEntryIndex(count: count, atLeast: id) { self[$0].id }
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

/// The shape of every ring of a store: its capacity and how many of its newest entries live in
/// the ring's block (`RingRecords`) rather than in an arena slot.
@usableFromInline
struct RingLayout: Equatable {
    /// Entries a ring keeps (`TimelineOptions.capacity`).
    @usableFromInline let capacity: Int
    /// Entries the block holds (`H`, at most `RingRecords.hotSlots`).
    @usableFromInline let hot: Int
    /// Entries a spill leaves in the block (`K < H`): the oldest `H - K` go to the arena slot at
    /// once, so a spill is one write of a few lines every `H - K` pushes, and a page of `K`
    /// entries is in the block whenever the ring has that many.
    @usableFromInline let keep: Int

    @usableFromInline
    init(capacity: Int, hot: Int) {
        precondition(capacity >= 1 && hot >= 1 && hot <= RingRecords.hotSlots, "ring layout out of range")
        self.capacity = capacity
        self.hot = hot
        keep = hot - max(1, hot / 3)
    }
}

/// A user's ring as pushes and reads see it: the oldest entries in an arena slot (`arena`, a
/// `Ring` whose own capacity is the slot's), the newest `hotCount` in the block beside the ring
/// record (`hot`, oldest first at 0), one sequence sorted by id from logical index 0. The ring's
/// capacity (`layout.capacity`) bounds the sum; `floor` is the arena ring's field and means what
/// it means for `Ring` (the largest id let go of).
///
/// The block holds up to `layout.hot` entries; a push into a full block first spills its oldest
/// `hot - keep` to the end of the arena slot, which must have room (`spillFits`): the store grows
/// the slot before it pushes (`TimelineState.makeRoomToPush`). So a ring of up to `hot` entries
/// has no arena slot at all, and a read of the newest `keep` entries or fewer reads the block alone.
@usableFromInline
struct SplitRing {
    @usableFromInline var arena: Ring
    @usableFromInline let hot: UnsafeMutablePointer<TimelineEntry>
    @usableFromInline var hotCount: Int
    @usableFromInline let layout: RingLayout

    @inlinable @inline(__always)
    init(arena: Ring, hot: UnsafeMutablePointer<TimelineEntry>, hotCount: Int, layout: RingLayout) {
        self.arena = arena
        self.hot = hot
        self.hotCount = hotCount
        self.layout = layout
    }

    @inlinable var count: Int { @inline(__always) get { arena.count &+ hotCount } }
    @inlinable var floor: UInt64 {
        @inline(__always) get { arena.floor }
        set { arena.floor = newValue }
    }
    @inlinable var isFull: Bool { count >= layout.capacity }

    @inlinable @inline(__always)
    subscript(logical: Int) -> TimelineEntry {
        get {
            let inHot = logical &- arena.count
            return inHot >= 0 ? hot[inHot] : arena[logical]
        }
        nonmutating set {
            let inHot = logical &- arena.count
            if inHot >= 0 { hot[inHot] = newValue } else { arena[logical] = newValue }
        }
    }

    /// The logical index of the first entry with id >= `id` (`count` if none): binary search.
    @inlinable
    func firstIndex(atLeast id: UInt64) -> Int {
        firstEntryIndex(count: count, atLeast: id) { self[$0].id }
    }

    /// Whether a spill of the block (`hot - keep` entries) fits the arena slot now.
    @inlinable var spillFits: Bool { arena.count &+ (layout.hot &- layout.keep) <= arena.slotCapacity }

    /// Moves the block's oldest `hot - keep` entries to the end of the arena slot (which has
    /// room: `spillFits`), the rest to the block's start.
    @inlinable
    mutating func spill() {
        let moved = hotCount &- layout.keep
        precondition(moved >= 1 && arena.count &+ moved <= arena.slotCapacity, "a spill the arena slot cannot take")
        var i = 0
        while i < moved {
            arena[arena.count &+ i] = hot[i]
            i &+= 1
        }
        arena.count &+= moved
        hot.update(from: hot + moved, count: layout.keep)
        hotCount = layout.keep
    }

    /// Stores `entry` in id order, as `Ring.push` does for one slot: a duplicate is ignored, an
    /// entry at or below the floor refused, and when the ring is at capacity the oldest entry
    /// goes first (the floor rises to it). A full block spills first, so the arena slot must
    /// take a spill when the block is full (`spillFits`; the store grows it before calling).
    @inlinable
    mutating func push(_ entry: TimelineEntry) -> Ring.PushOutcome {
        if entry.id <= floor { return .belowFloor }
        var position = count
        if count > 0 && entry.id <= self[count &- 1].id {
            position = firstIndex(atLeast: entry.id)
            if position < count && self[position].id == entry.id { return .duplicate }
        }
        if isFull {
            if position == 0 {
                floor = max(floor, entry.id)
                return .belowFloor
            }
            evictOldest()
            position &-= 1
        }
        if hotCount == layout.hot { spill() }
        // The block's next slot becomes logical `count - 1`; shift the newer entries up by one
        // into it, newest first, then store in the gap.
        hotCount &+= 1
        var i = count &- 1
        while i > position {
            self[i] = self[i &- 1]
            i &-= 1
        }
        self[position] = entry
        return .stored
    }

    /// Lets the oldest entry go; the floor rises to its id.
    @inlinable
    mutating func evictOldest() {
        if arena.count > 0 {
            arena.evictOldest()
        } else {
            precondition(hotCount > 0, "evicting from an empty ring")
            floor = max(floor, hot[0].id)
            hot.update(from: hot + 1, count: hotCount &- 1)
            hotCount &-= 1
        }
    }

    /// Removes every entry `shouldRemove` accepts, keeping the order; returns how many went.
    /// The floor does not change.
    mutating func removeAll(where shouldRemove: (TimelineEntry) -> Bool) -> Int {
        let total = count
        var kept = 0
        for i in 0..<total {
            let entry = self[i]
            if shouldRemove(entry) { continue }
            if kept != i { self[kept] = entry }
            kept &+= 1
        }
        // The kept entries are logical 0..<kept of the old split.
        let arenaKept = min(kept, arena.count)
        arena.count = arenaKept
        hotCount = kept &- arenaKept
        return total &- kept
    }

    /// Copies the entries, oldest first, into `destination` (room for `count`).
    func copyOldestFirst(to destination: UnsafeMutablePointer<TimelineEntry>) {
        arena.copyOldestFirst(to: destination)
        (destination + arena.count).update(from: hot, count: hotCount)
    }
}

/// The logical index of the first of `count` entries (ids ascending, `idAt` the id at a logical
/// index) with id >= `id`, `count` if none: the binary search of `Ring` and `SplitRing`.
@inlinable
func firstEntryIndex(count: Int, atLeast id: UInt64, _ idAt: (Int) -> UInt64) -> Int {
    var low = 0
    var high = count
    while low < high {
        let middle = (low &+ high) >> 1
        if idAt(middle) < id { low = middle &+ 1 } else { high = middle }
    }
    return low
}
