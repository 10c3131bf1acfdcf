/// The mutable overlay of one user in one direction: the edges changed since the base, sorted by
/// neighbour, each with the LSN of the last change applied to it.
///
/// Why an LSN per entry: concurrent follow and unfollow of the same edge are appended to the log
/// in one order but may be applied here in another (each appender applies after its own append
/// returns). An entry only takes a change newer than the one it holds, so the overlay always ends
/// in the state the log's order gives, which is also what replay rebuilds.
@usableFromInline
struct DeltaEntry: Sendable {
    @usableFromInline var neighbour: UInt32
    /// `lsn << 1 | present`.
    @usableFromInline var stamp: UInt64

    @inlinable var present: Bool { stamp & 1 == 1 }
    @inlinable var lsn: UInt64 { stamp >> 1 }

    @usableFromInline
    init(neighbour: UInt32, lsn: UInt64, present: Bool) {
        self.neighbour = neighbour
        stamp = lsn << 1 | (present ? 1 : 0)
    }
}

@usableFromInline
struct DeltaList: Sendable {
    @usableFromInline var entries: ContiguousArray<DeltaEntry> = []
    /// Present entries not in the base minus absent entries that are in the base.
    @usableFromInline var degreeChange = 0

    @usableFromInline init() {}

    /// The index of the entry for `neighbour`, or where it would go.
    @inlinable
    func search(_ neighbour: UInt32) -> (index: Int, found: Bool) {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) >> 1
            if entries[middle].neighbour < neighbour { low = middle + 1 } else { high = middle }
        }
        return (low, low < entries.count && entries[low].neighbour == neighbour)
    }

    /// The overlay's word on `neighbour`: present, absent, or nil when the base decides.
    @inlinable
    func state(of neighbour: UInt32) -> Bool? {
        let (i, found) = search(neighbour)
        return found ? entries[i].present : nil
    }

    /// Records a change made at `lsn`. Returns whether the edge's visible state changed, or nil
    /// when the entry already holds a newer change (this one is superseded and ignored).
    mutating func apply(_ neighbour: UInt32, present: Bool, lsn: UInt64, inBase: Bool) -> Bool? {
        let (i, found) = search(neighbour)
        let old: Bool
        if found {
            if entries[i].lsn > lsn { return nil }
            old = entries[i].present
            entries[i] = DeltaEntry(neighbour: neighbour, lsn: lsn, present: present)
        } else {
            old = inBase
            entries.insert(DeltaEntry(neighbour: neighbour, lsn: lsn, present: present), at: i)
        }
        degreeChange += (present ? 1 : 0) - (old ? 1 : 0)
        return old != present
    }
}
