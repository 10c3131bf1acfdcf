@testable import Social
import Testing

/// `IDCache` (the tweets' views and counts): what the read paths rely on is that a lookup gives
/// the value last installed for an id or nothing, never a value from before an invalidation,
/// and that the cache stays within its bytes.
@Suite struct IDCacheTests {
    /// Random installs (with fresh and with stale stamps), invalidations and lookups against a
    /// model of what may be cached; several budgets, so tables grow, sets fill and the sweep
    /// runs.
    @Test(arguments: [0, 4 << 10, 64 << 10, 1 << 20])
    func lookupsGiveTheLastInstalledValueOrNothing(maxBytes: Int) {
        let seed = UInt64(0x1DCA_C4E) &+ UInt64(maxBytes)
        var random = SplitMix(seed: seed)
        let cache = IDCache<TweetCounts>(maxBytes: maxBytes)
        // The value each id may show (nil: none may show).
        var model: [UInt64: UInt32] = [:]
        // Stamps taken and not yet used: (id, stamp, value to install).
        var pending: [(UInt64, UInt64, UInt32)] = []
        var problems: [String] = []
        let ids = 5_000
        for step in 0..<200_000 {
            let id = UInt64(1 + Int(random.next() % UInt64(ids))) &* 0x1_0000_0001  // spread like snowflakes
            switch Int(random.next() % 10) {
            case 0..<4:
                let value = UInt32(truncatingIfNeeded: random.next())
                cache.install(id, TweetCounts(likes: Int(value), retweets: 0, replies: 0, quotes: 0), since: cache.stamp(id))
                model[id] = value
            case 4:
                // A reader takes a stamp now and installs later (a write may come between).
                pending.append((id, cache.stamp(id), UInt32(truncatingIfNeeded: random.next())))
            case 5 where !pending.isEmpty:
                let (pid, stamp, value) = pending.remove(at: Int(random.next() % UInt64(pending.count)))
                let shownBefore = cache.lookup(pid)?.likes
                cache.install(pid, TweetCounts(likes: Int(value), retweets: 0, replies: 0, quotes: 0), since: stamp)
                if let shown = cache.lookup(pid)?.likes, shown != shownBefore {
                    // Installed: then it is the value the model allows from now on.
                    if shown != value { problems.append("step \(step): \(pid) shows \(shown), installed \(value)") }
                    model[pid] = value
                }
            case 6:
                cache.invalidate(id)
                model[id] = nil
            default:
                if let shown = cache.lookup(id) {
                    if model[id] != shown.likes {
                        problems.append("step \(step): \(id) shows \(shown.likes), model \(String(describing: model[id]))")
                    }
                }
            }
            if problems.count > 5 { break }
        }
        let stats = cache.statistics
        #expect(problems.isEmpty, "seed \(seed): \(problems)")
        #expect(stats.bytes <= maxBytes, "seed \(seed): \(stats)")
        #expect(stats.bytes == stats.entries * 40, "\(stats)")
        if maxBytes >= 64 << 10 { #expect(stats.entries > 0 && stats.hits > 0, "\(stats)") }
        if maxBytes == 0 { #expect(stats.entries == 0) }
    }

    /// An install whose stamp an invalidation of its shard overtook is dropped: a value derived
    /// before a write never shows after it.
    @Test func aStaleStampIsNotInstalled() {
        let cache = IDCache<TweetCounts>(maxBytes: 1 << 20)
        let stamp = cache.stamp(42)
        cache.invalidate(42)
        cache.install(42, TweetCounts(likes: 1, retweets: 0, replies: 0, quotes: 0), since: stamp)
        #expect(cache.lookup(42) == nil)
        cache.install(42, TweetCounts(likes: 2, retweets: 0, replies: 0, quotes: 0), since: cache.stamp(42))
        #expect(cache.lookup(42)?.likes == 2)
    }

    /// Values read again outlast a stream of values read once (CLOCK in each set): after ten
    /// budgets' worth of one-off installs, nearly all of a small, often-read set is still there.
    @Test func valuesReadAgainOutlastOneOffs() {
        let cache = IDCache<TweetCounts>(maxBytes: 256 << 10)  // ~6,500 values
        let hot = (1...200).map { UInt64($0) &* 0x9_0000_0007 }
        for id in hot { cache.install(id, TweetCounts(likes: 7, retweets: 0, replies: 0, quotes: 0), since: cache.stamp(id)) }
        for i in 0..<65_000 {
            let id = UInt64(1_000_000 + i) &* 0x1_0000_0001
            cache.install(id, TweetCounts(likes: 1, retweets: 0, replies: 0, quotes: 0), since: cache.stamp(id))
            if i % 50 == 0 { for h in hot { _ = cache.lookup(h) } }
        }
        let kept = hot.filter { cache.lookup($0)?.likes == 7 }.count
        #expect(kept >= 190, "\(kept) of \(hot.count) often-read values kept")
        #expect(cache.statistics.bytes <= 256 << 10)
    }
}
