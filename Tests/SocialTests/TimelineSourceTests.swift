@testable import Social
import StorageEngine
import Testing

/// The author index's values (`AuthorTweetValue`) carry each item's kind, so a ring rebuild
/// reads no records; entries written before the values existed (empty) still rebuild the same
/// rings from the records.
@Suite struct TimelineSourceTests {
    static func ids(_ page: Page<Tweet>) -> [UInt64] { page.items.map(\.id) }

    @Test func valuesRoundTripAndRejectOtherLayouts() {
        let post = TweetRecord(id: 5, author: 6, time: 7, text: "x")
        let reply = TweetRecord(id: 5, author: 6, time: 7, text: "x", replyTo: 1, quoteOf: 2)
        let retweet = TweetRecord(id: 5, author: 6, time: 7, text: "", retweetOf: 1 << 62)
        func decode(_ bytes: [UInt8]) -> (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)? {
            bytes.withUnsafeBytes { AuthorTweetValue.decode($0) }
        }
        #expect(decode(AuthorTweetValue.encode(post, originalAuthor: nil)).map { [$0.reply, $0.quote] } == [false, false])
        #expect(decode(AuthorTweetValue.encode(reply, originalAuthor: nil)).map { [$0.reply, $0.quote] } == [true, true])
        let r = decode(AuthorTweetValue.encode(retweet, originalAuthor: 99))
        #expect(r?.original == 1 << 62 && r?.originalAuthor == 99)
        for bad: [UInt8] in [[], [8], [2], [1, 0], [2] + [UInt8](repeating: 0, count: 15)] { #expect(decode(bad) == nil) }
    }

    /// Posts, replies, quotes and retweets; bob's ring rebuilt from the index values, then from
    /// the records after the values are erased (the older format), gives the same pages.
    @Test func rebuildsFromValuesAndFromOlderEmptyEntriesAgree() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol", "dave"] { try t.db.createUser(handle: h) }
        try t.db.follow("bob", "alice")
        try t.db.follow("bob", "carol")
        var all: [UInt64] = []
        for i in 0..<30 {
            let a = try t.db.post(handle: "alice", text: "alice \(i)")
            all.append(a.id)
            if i % 3 == 0 { all.append(try t.db.reply(handle: "carol", to: a.id, text: "re \(i)").id) }
            if i % 4 == 0 { all.append(try t.db.quote(handle: "alice", tweet: a.id, text: "q \(i)").id) }
            if i % 5 == 0 { all.append(try t.db.retweet(handle: "carol", tweet: try t.db.post(handle: "dave", text: "d \(i)").id).id) }
        }
        // A retweet whose original is deleted leaves every home.
        let gone = try t.db.post(handle: "dave", text: "soon gone")
        try t.db.retweet(handle: "carol", tweet: gone.id)
        try t.db.delete(handle: "dave", tweet: gone.id)
        let expected = Self.ids(try t.db.home(handle: "bob", limit: 200))
        #expect(expected.count > 40)
        let bob = try t.db.userRecord(handle: "bob").number
        t.db.consumers.timeline.rebuildRing(of: bob)
        #expect(Self.ids(try t.db.home(handle: "bob", limit: 200)) == expected)
        // Erase the values of every author index entry: the older format.
        var batch = WriteBatch()
        for handle in ["alice", "carol"] {
            let id = try t.db.userRecord(handle: handle).id
            _ = try t.db.engine.tree.scan(from: Keys.authorTweet(author: id, tweet: 0), to: Keys.authorTweet(author: id, tweet: .max)) { key, value in
                #expect(!value.isEmpty)
                batch.put(Array(key), [])
                return true
            }
        }
        _ = try t.db.engine.tree.write(batch)
        // The change bypassed the log: the authors' cached items (the values' answers) go.
        t.db.consumers.recentItems.clear()
        t.db.consumers.timeline.rebuildRing(of: bob)
        #expect(Self.ids(try t.db.home(handle: "bob", limit: 200)) == expected)
        #expect(Self.ids(try t.db.home(handle: "bob", limit: 10, offset: 7)) == Array(expected[7..<17]))
    }

    /// A rebuild trusts the hydration cache (`tweetViews`) that a retweeted original exists and
    /// looks the others up in the tree: an original the tree no longer has (the first record of
    /// a DELETE split over several records, its view invalidated as `ChangeSet.commit` does)
    /// drops its retweet, cached before or not.
    @Test func retweetsOfOriginalsTheTreeLostAreSkippedWhateverWasCached() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob"] { try t.db.createUser(handle: h) }
        let kept = try t.db.post(handle: "alice", text: "kept")
        let lost = try t.db.post(handle: "alice", text: "lost")
        let keptRetweet = try t.db.retweet(handle: "bob", tweet: kept.id)
        let lostRetweet = try t.db.retweet(handle: "bob", tweet: lost.id)
        #expect(t.db.tweetViews.contains(kept.id) && t.db.tweetViews.contains(lost.id))
        let bob = try t.db.userRecord(handle: "bob").number
        func bobsItems() -> [UInt64] {
            t.db.consumers.recentItems.clear()
            var items = ContiguousArray<TimelineItem>()
            t.db.consumers.tweetSource.newestItems(of: bob, before: .max, limit: 10, into: &items)
            return items.map(\.id)
        }
        #expect(bobsItems() == [lostRetweet.id, keptRetweet.id])
        // The original's record goes, its retweet's author entry stays (bypassing the log).
        var batch = WriteBatch()
        batch.delete(Keys.tweet(lost.id))
        _ = try t.db.engine.tree.write(batch)
        t.db.tweetViews.invalidate(lost.id)
        #expect(bobsItems() == [keptRetweet.id])
        // Nothing cached: the tree answers for both.
        t.db.tweetViews.invalidate(kept.id)
        #expect(bobsItems() == [keptRetweet.id])
    }

    /// The authors' recent items (`AuthorItemsCache`) give the same rebuilt rings as scans of
    /// the tree: a seeded mix of posts, replies, quotes, retweets, unretweets, deletes, follows
    /// and unfollows runs on two databases, one with the cache (small, so lists are evicted and
    /// refilled) and one without; at every step a few users' rings are rebuilt in both and
    /// their home pages and own tweets compared, and reads hit the cache.
    @Test func authorCacheRebuildsTheSamePagesAsScans() throws {
        var cached = testOptions()
        cached.authorCacheItems = 60
        var uncached = testOptions()
        uncached.authorCacheItems = 0
        let a = try TestDatabase(options: cached)
        let b = try TestDatabase(options: uncached)
        let dbs = [a.db, b.db]
        let users = (0..<8).map { "u\($0)" }
        for db in dbs { for u in users { try db.createUser(handle: u) } }
        var random = TortureRandom(seed: 0x5EED_CAC4E)
        var posted: [[UInt64]] = [[], []]
        func both(_ body: (SocialDB) throws -> UInt64?) -> [UInt64?] { dbs.map { try? body($0) } }
        for step in 0..<400 {
            let u = users[Int(random.next() % 8)], v = users[Int(random.next() % 8)]
            let roll = random.next() % 100
            let pick = posted[0].isEmpty ? nil : Int(random.next() % UInt64(posted[0].count))
            var made: [UInt64?] = [nil, nil]
            switch roll {
            case 0..<35: made = both { try $0.post(handle: u, text: "p\(step)").id }
            case 35..<45: if let pick { made = dbs.indices.map { i in try? dbs[i].reply(handle: u, to: posted[i][pick], text: "r\(step)").id } }
            case 45..<50: if let pick { made = dbs.indices.map { i in try? dbs[i].quote(handle: u, tweet: posted[i][pick], text: "q\(step)").id } }
            case 50..<62: if let pick { made = dbs.indices.map { i in try? dbs[i].retweet(handle: u, tweet: posted[i][pick]).id } }
            case 62..<67: if let pick { for i in dbs.indices { _ = try? dbs[i].unretweet(handle: u, tweet: posted[i][pick]) } }
            case 67..<75:
                if let pick {
                    for i in dbs.indices {
                        let id = posted[i][pick]
                        if let tweet = try? dbs[i].tweet(id: id) { _ = try? dbs[i].delete(handle: tweet.authorHandle, tweet: id) }
                    }
                }
            case 75..<90: if u != v { for db in dbs { _ = try db.follow(u, v) } }
            default: if u != v { for db in dbs { _ = try db.unfollow(u, v) } }
            }
            #expect((made[0] == nil) == (made[1] == nil), "step \(step): the two databases disagree on a write")
            if let x = made[0], let y = made[1] { posted[0].append(x); posted[1].append(y) }
            for _ in 0..<2 {
                let w = users[Int(random.next() % 8)]
                var pages: [[String]] = []
                for db in dbs {
                    db.consumers.timeline.rebuildRing(of: try db.userRecord(handle: w).number)
                    pages.append(try db.home(handle: w, limit: 100).items.map { "\($0.authorHandle):\($0.text):\($0.retweetOf != nil)" })
                }
                #expect(pages[0] == pages[1], "step \(step): @\(w)'s rebuilt home differs with the author cache")
                // User timelines read the same lists (pages by cursor and by offset).
                let own = dbs.map { db in (try? db.tweets(handle: w, limit: 30).items.map(\.text)) ?? ["error"] }
                #expect(own[0] == own[1], "step \(step): @\(w)'s tweets differ with the author cache")
                let offset = dbs.map { db in (try? db.tweets(handle: w, limit: 5, offset: 3).items.map(\.text)) ?? ["error"] }
                #expect(offset[0] == offset[1], "step \(step): @\(w)'s tweets at offset 3 differ with the author cache")
            }
        }
        let stats = try a.db.statistics().authorCache
        #expect(stats.hits > 0 && stats.evictions > 0, "\(stats)")
        #expect(try b.db.statistics().authorCache.hits == 0)
    }
}
