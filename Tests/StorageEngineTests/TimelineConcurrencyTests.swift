@testable import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every author's items, fixed before the store exists (so reader threads may read it while a
/// writer thread fans the same items out): a source that already has items the store has not
/// seen yet, which fan-out then finds in place (duplicates are ignored).
final class FrozenTweets: AuthorTweetSource, @unchecked Sendable {
    // @unchecked: never mutated after init.
    let byAuthor: [UInt32: [TimelineItem]]

    init(_ items: [TimelineItem]) {
        var byAuthor: [UInt32: [TimelineItem]] = [:]
        for item in items { byAuthor[item.author, default: []].append(item) }
        self.byAuthor = byAuthor
    }

    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {
        var added = 0
        for item in (byAuthor[author] ?? []).reversed() where item.id < before {
            if added == limit { break }
            items.append(item)
            added += 1
        }
    }
}

/// Home reads on two threads while a third fans posts and retweets out and deletes some, with
/// celebrities whose items readers merge from their caches, read in place under the read lock
/// (and each reader's celebrity list from the shared pool). Every page a reader sees must be
/// newest first, within the limit, list only known items and show an original once; after the
/// writer is done, every page equals the model's. `scripts/sanitize thread` runs it under
/// ThreadSanitizer, which checks that reads touch the caches and the pool only under the lock.
@Suite struct TimelineConcurrencyTests {
    @Test func readersDuringFanOutSeeWellFormedPagesAndTheModelAfter() {
        let seed = testSeed()
        print("TimelineConcurrencyTests seed \(seed) (rerun with SOCIALDB_SEED=\(seed))")
        var random = SeededRandom(seed: seed)
        let users: UInt32 = 40
        let graph = ModelGraph()
        for follower in 0..<users {
            // Users 0...3 are followed by most (celebrities above 8 followers), the rest by a few.
            for followee in 0..<users where followee != follower {
                let p = followee < 4 ? 70 : 8
                if Int.random(in: 0..<100, using: &random) < p { graph.follow(follower, followee) }
            }
        }
        var items: [TimelineItem] = []
        var id: UInt64 = 1000
        for _ in 0..<600 {
            id += UInt64.random(in: 1...3, using: &random)
            let author = UInt32.random(in: 0..<users, using: &random)
            if !items.isEmpty && Int.random(in: 0..<5, using: &random) == 0,
               let original = items.filter({ !$0.isRetweet && $0.author != author }).randomElement(using: &random) {
                items.append(.retweet(id: id, retweeter: author, original: original.id, originalAuthor: original.author))
            } else {
                items.append(.post(id: id, author: author))
            }
        }
        let posts = items
        let deletes = Set(items.filter { !$0.isRetweet }.shuffled(using: &random).prefix(30).map(\.id))
        let tweets = FrozenTweets(items)
        let store = TimelineStore(options: TimelineOptions(capacity: 30, celebrityThreshold: 8, celebrityCacheItems: 5),
                                  followers: graph, tweets: tweets)
        let known = Set(items.map(\.id))
        let stop = Atomic<Bool>(false)
        let bad = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        let readers = (0..<2).map { index in
            BackgroundThread {
                var page = TimelinePage()
                // Every fourth read is a batch of 4 (`homes`), the first page checked.
                var batchPages = [TimelinePage](repeating: TimelinePage(), count: 4)
                var generator = SeededRandom(seed: seed &+ UInt64(index) &+ 1)
                while !stop.load(ordering: .relaxed) {
                    let reader = UInt32.random(in: 0..<users, using: &generator)
                    let limit = Int.random(in: 1...30, using: &generator)
                    if reader % 4 == 0 {
                        let batch = (0..<UInt32(4)).map { (reader &+ $0 &* 7) % users }
                        batch.withUnsafeBufferPointer { r in batchPages.withUnsafeMutableBufferPointer { store.homes(of: r, limit: limit, into: $0) } }
                        page = batchPages[0]
                    } else {
                        store.home(of: reader, limit: limit, into: &page)
                    }
                    var previous = UInt64.max
                    var originals = Set<UInt64>()
                    var wellFormed = page.items.count <= limit
                    for item in page.items {
                        if item.id >= previous || !known.contains(item.id) || !originals.insert(item.tweetId).inserted { wellFormed = false }
                        previous = item.id
                    }
                    if !wellFormed { bad.add(1, ordering: .relaxed) }
                    reads.add(1, ordering: .relaxed)
                }
            }
        }
        let writer = BackgroundThread {
            // The readers are reading before the first event (so reads and events overlap).
            while reads.load(ordering: .relaxed) < 100 { sched_yield() }
            var lsn: UInt64 = 0
            for item in posts {
                lsn += 1
                store.fanOut(item, lsn: lsn)
                if deletes.contains(item.id) {
                    lsn += 1
                    store.delete(id: item.id, lsn: lsn)
                }
            }
        }
        writer.join()
        stop.store(true, ordering: .relaxed)
        for reader in readers { reader.join() }
        #expect(bad.load(ordering: .relaxed) == 0, "seed \(seed)")
        #expect(reads.load(ordering: .relaxed) > 0)
        #expect(store.statistics.celebrityPosts > 0)
        // The model: every item is in the source; deleted ones (and retweets of them) are gone.
        let model = ModelTweets()
        for item in items { model.add(item) }
        model.deleted = deletes
        for reader in 0..<users {
            for limit in [1, 7, 30] {
                var before = UInt64.max
                for _ in 0..<100 {
                    let page = store.home(of: reader, limit: limit, before: before)
                    let expected = model.page(of: reader, graph: graph, limit: limit, before: before)
                    #expect(page == expected, "seed \(seed): user \(reader) limit \(limit) before \(before)")
                    guard page == expected, let next = page.last?.id else { break }
                    before = next
                }
            }
        }
        #expect(store.statistics.mergesAtRead > 0)
    }
}
