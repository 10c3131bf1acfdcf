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
        t.db.consumers.timeline.rebuildRing(of: bob)
        #expect(Self.ids(try t.db.home(handle: "bob", limit: 200)) == expected)
        #expect(Self.ids(try t.db.home(handle: "bob", limit: 10, offset: 7)) == Array(expected[7..<17]))
    }
}
