@testable import Social
import Testing

/// `ChangeSet` sums each counter's deltas and writes it once: found by a list while a command
/// touches a few counters, by a dictionary past that (a deleted tweet's retweeters).
@Suite struct ChangeSetTests {
    @Test(arguments: [1, 8, 9, 60])
    func countersSumTheirDeltasWhateverTheirNumber(counters: Int) throws {
        let t = try TestDatabase()
        var changes = ChangeSet()
        var random = SplitMix(seed: UInt64(counters))
        var expected = [Int](repeating: 0, count: counters)
        // Every counter is touched in turn first (so the later ones are added past the list's
        // limit), then at random again, some back to zero.
        for id in 0..<counters {
            changes.count(UInt64(1_000 + id), .likes, 2)
            expected[id] += 2
        }
        for _ in 0..<(counters * 5) {
            let id = Int(random.next() % UInt64(counters))
            let delta = expected[id] > 0 && random.next() % 3 == 0 ? -1 : 1
            changes.count(UInt64(1_000 + id), .likes, delta)
            expected[id] += delta
        }
        try changes.commit(to: t.db)
        for id in 0..<counters {
            let stored = try t.db.engine.tree.get(SocialKeys.counter(UInt64(1_000 + id), .likes))?.u64 ?? 0
            #expect(Int(stored) == expected[id], "counter \(id)")
        }
        #expect(changes.entries.isEmpty)
    }
}
