/// Every ring's celebrity list (the celebrities among the ring owner's followees and the owner
/// itself) in one pool of user numbers, each list a range of it found by ring number.
///
/// A home read finds its list with one 8-byte load and reads it from a pool that stays warm in
/// cache. A list per ring (an array each, in an array of arrays) cost every read a retain and a
/// release of the list and, for the half of readers who follow a celebrity, a miss on a heap
/// object of its own.
///
/// A list that shrinks stays where it is; one that grows moves to the end of the pool, and the
/// space it left counts as garbage. When the pool must grow and at least half of it is garbage,
/// it is compacted instead. So the pool holds at most about twice the lists' total length.
///
/// Pointer rules: `pool` is allocated here, moved (grown, compacted) and freed only by the
/// mutating methods, which the store calls under its write lock; readers, under the read lock,
/// use `list(of:)`, whose buffer stays valid until the next mutation. `deallocate()` frees the
/// pool (the store's deinit).
@usableFromInline
struct CelebrityLists {
    /// Per ring number: start in the pool << 32 | count.
    @usableFromInline var ranges = ContiguousArray<UInt64>()
    @usableFromInline var pool: UnsafeMutablePointer<UInt32>
    private(set) var poolCapacity: Int
    private(set) var poolCount = 0
    /// Pool entries no list uses any more.
    private(set) var garbage = 0

    init() {
        poolCapacity = 64
        pool = .allocate(capacity: poolCapacity)
    }

    func deallocate() { pool.deallocate() }

    /// The list of ring `number` (no ring number past `ranges` is ever read).
    @inlinable @inline(__always)
    func list(of number: Int) -> UnsafeBufferPointer<UInt32> {
        let range = ranges[number]
        return UnsafeBufferPointer(start: pool + Int(truncatingIfNeeded: range >> 32), count: Int(truncatingIfNeeded: range & 0xFFFF_FFFF))
    }

    /// A new ring number, with an empty list.
    mutating func appendEmpty() { ranges.append(0) }

    /// Empties every list and forgets every ring number.
    mutating func removeAll() {
        ranges.removeAll()
        poolCount = 0
        garbage = 0
    }

    mutating func set(_ number: Int, to list: some Collection<UInt32>) {
        let old = ranges[number]
        let oldStart = Int(truncatingIfNeeded: old >> 32)
        let oldCount = Int(truncatingIfNeeded: old & 0xFFFF_FFFF)
        let count = list.count
        if count <= oldCount {
            var i = oldStart
            for user in list { pool[i] = user; i += 1 }
            garbage += oldCount - count
            ranges[number] = UInt64(oldStart) << 32 | UInt64(count)
            return
        }
        // The old range becomes garbage before any compaction, so it is not copied.
        ranges[number] = 0
        garbage += oldCount
        if poolCount + count > poolCapacity {
            if garbage * 2 >= poolCount { compact() }
            if poolCount + count > poolCapacity { grow(toHold: poolCount + count) }
        }
        let start = poolCount
        var i = start
        for user in list { pool[i] = user; i += 1 }
        poolCount += count
        precondition(poolCount < Int(UInt32.max), "celebrity list pool exhausted")
        ranges[number] = UInt64(start) << 32 | UInt64(count)
    }

    /// Rewrites the pool with the live lists only, in ring-number order.
    private mutating func compact() {
        let fresh = UnsafeMutablePointer<UInt32>.allocate(capacity: poolCapacity)
        var next = 0
        for number in ranges.indices {
            let range = ranges[number]
            let start = Int(truncatingIfNeeded: range >> 32)
            let count = Int(truncatingIfNeeded: range & 0xFFFF_FFFF)
            (fresh + next).initialize(from: pool + start, count: count)
            ranges[number] = UInt64(next) << 32 | UInt64(count)
            next += count
        }
        pool.deallocate()
        pool = fresh
        poolCount = next
        garbage = 0
    }

    private mutating func grow(toHold entries: Int) {
        let capacity = max(entries, poolCapacity * 2)
        let fresh = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        fresh.initialize(from: pool, count: poolCount)
        pool.deallocate()
        pool = fresh
        poolCapacity = capacity
    }
}
