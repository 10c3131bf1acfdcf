import Social
import StorageEngine
import Testing

@Suite struct TweetTests {
    func network() throws -> TestDatabase {
        let t = try TestDatabase()
        for handle in ["alice", "bob", "carol"] { try t.db.createUser(handle: handle) }
        return t
    }

    @Test func postAndRead() throws {
        let t = try network()
        let tweet = try t.db.post(handle: "alice", text: "hello @bob and @nobody, see https://example.org/x. #Swift #2024 a#b #día")
        #expect(tweet.authorHandle == "alice")
        #expect(tweet.conversationID == tweet.id)
        #expect(tweet.mentions == ["bob"], "only existing users are mentions")
        #expect(tweet.hashtags == ["Swift", "día"], "a hashtag needs a non-digit and a word boundary before #")
        #expect(tweet.urls == ["https://example.org/x"], "trailing punctuation is not part of a URL")
        #expect(try t.db.tweet(id: tweet.id) == tweet)
        #expect(try t.db.user(handle: "alice").tweetCount == 1)
        #expect(try t.db.tweets(handle: "alice").items == [tweet])
    }

    @Test func lengthsAreGraphemeClusters() throws {
        let t = try network()
        let family = "👨‍👩‍👧"  // five scalars, one character
        try t.db.post(handle: "alice", text: String(repeating: family, count: 280))
        try t.db.post(handle: "alice", text: String(repeating: "e\u{301}", count: 280))
        t.expectRejected("too_long") { try t.db.post(handle: "alice", text: String(repeating: "x", count: 281)) }
        t.expectRejected("invalid") { try t.db.post(handle: "alice", text: "") }
        t.expectRejected("invalid") { try t.db.post(handle: "alice", text: " \n\t ") }
        t.expectRejected("not_found") { try t.db.post(handle: "zed", text: "hi") }
        t.expectRejected("invalid") { try t.db.post(handle: "no way", text: "hi") }
        #expect(try t.db.user(handle: "alice").tweetCount == 2)
    }

    @Test func repliesAndThreads() throws {
        let t = try network()
        let root = try t.db.post(handle: "alice", text: "root")
        let r1 = try t.db.reply(handle: "bob", to: root.id, text: "first")
        let r2 = try t.db.reply(handle: "carol", to: r1.id, text: "second, to the first")
        let r3 = try t.db.reply(handle: "alice", to: root.id, text: "third")
        let other = try t.db.post(handle: "bob", text: "unrelated")
        #expect(r1.replyTo == root.id && r2.replyTo == r1.id)
        #expect([r1, r2, r3].allSatisfy { $0.conversationID == root.id })
        #expect(try t.db.tweet(id: root.id).replyCount == 2)
        #expect(try t.db.tweet(id: r1.id).replyCount == 1)
        let thread = try t.db.thread(id: r2.id).map(\.id)
        #expect(thread == [root.id, r1.id, r2.id, r3.id], "the conversation, oldest first, from any of its tweets")
        #expect(try t.db.thread(id: other.id).map(\.id) == [other.id])
        t.expectRejected("not_found") { try t.db.reply(handle: "bob", to: 12345, text: "to nothing") }
        t.expectRejected("not_found") { _ = try t.db.thread(id: 12345) }
        // Deleting a reply takes it out of the thread and its parent's count; the rest stays.
        try t.db.delete(handle: "bob", tweet: r1.id)
        #expect(try t.db.tweet(id: root.id).replyCount == 1)
        #expect(try t.db.thread(id: r3.id).map(\.id) == [root.id, r2.id, r3.id])
        #expect(try t.db.tweet(id: r2.id).conversationID == root.id, "a reply keeps its conversation when its parent goes")
    }

    @Test func retweets() throws {
        let t = try network()
        let original = try t.db.post(handle: "alice", text: "share me")
        let retweet = try t.db.retweet(handle: "bob", tweet: original.id)
        #expect(retweet.id != original.id && retweet.isRetweet)
        #expect(retweet.authorHandle == "bob" && retweet.retweetOf == original.id)
        #expect(retweet.retweeted?.id == original.id && retweet.retweeted?.retweetCount == 1)
        #expect(try t.db.tweet(id: retweet.id) == retweet, "TWEET of a retweet: the retweet with the original inside")
        #expect(try t.db.tweets(handle: "bob").items.map(\.id) == [retweet.id])
        #expect(try t.db.user(handle: "bob").tweetCount == 1)
        t.expectRejected("exists") { try t.db.retweet(handle: "bob", tweet: original.id) }
        t.expectRejected("exists") { try t.db.retweet(handle: "bob", tweet: retweet.id) }
        // Retweeting a retweet retweets the original.
        let second = try t.db.retweet(handle: "carol", tweet: retweet.id)
        #expect(second.retweetOf == original.id)
        #expect(try t.db.tweet(id: original.id).retweetCount == 2)

        #expect(try t.db.unretweet(handle: "bob", tweet: original.id) == retweet.id)
        t.expectRejected("not_found") { try t.db.unretweet(handle: "bob", tweet: original.id) }
        t.expectRejected("not_found") { _ = try t.db.tweet(id: retweet.id) }
        #expect(try t.db.tweets(handle: "bob").items.isEmpty)
        #expect(try t.db.user(handle: "bob").tweetCount == 0)
        #expect(try t.db.tweet(id: original.id).retweetCount == 1)
        // Unretweet by the retweet's own id works too.
        #expect(try t.db.unretweet(handle: "carol", tweet: second.id) == second.id)
        #expect(try t.db.tweet(id: original.id).retweetCount == 0)
    }

    @Test func quotes() throws {
        let t = try network()
        let original = try t.db.post(handle: "alice", text: "quotable")
        let quote = try t.db.quote(handle: "bob", tweet: original.id, text: "so true")
        #expect(quote.quoteOf == original.id && quote.quoted?.text == "quotable")
        #expect(try t.db.tweet(id: original.id).quoteCount == 1)
        try t.db.delete(handle: "alice", tweet: original.id)
        let after = try t.db.tweet(id: quote.id)
        #expect(after.quoteOf == original.id && after.quoted == nil, "a quote stays; the quoted tweet is gone")
        t.expectRejected("not_found") { try t.db.quote(handle: "bob", tweet: original.id, text: "again") }
    }

    @Test func likesAreIdempotent() throws {
        let t = try network()
        let tweet = try t.db.post(handle: "alice", text: "like me")
        #expect(try t.db.like(handle: "bob", tweet: tweet.id).likeCount == 1)
        let before = t.nextLSN
        #expect(try t.db.like(handle: "bob", tweet: tweet.id).likeCount == 1)
        #expect(t.nextLSN == before, "liking again writes nothing")
        #expect(try t.db.like(handle: "carol", tweet: tweet.id).likeCount == 2)
        #expect(try t.db.unlike(handle: "bob", tweet: tweet.id).likeCount == 1)
        #expect(try t.db.unlike(handle: "bob", tweet: tweet.id).likeCount == 1)
        // Liking a retweet likes the original.
        let retweet = try t.db.retweet(handle: "carol", tweet: tweet.id)
        #expect(try t.db.like(handle: "bob", tweet: retweet.id).id == tweet.id)
        #expect(try t.db.tweet(id: tweet.id).likeCount == 2)
        t.expectRejected("not_found") { try t.db.like(handle: "bob", tweet: 99) }
        t.expectRejected("not_found") { try t.db.like(handle: "nobody", tweet: tweet.id) }
    }

    @Test func deleteRemovesTheTweetAndItsRetweets() throws {
        let t = try network()
        let tweet = try t.db.post(handle: "alice", text: "regret")
        let keep = try t.db.post(handle: "alice", text: "keep")
        let retweet = try t.db.retweet(handle: "bob", tweet: tweet.id)
        try t.db.retweet(handle: "alice", tweet: tweet.id)
        try t.db.like(handle: "carol", tweet: tweet.id)
        let reply = try t.db.reply(handle: "carol", to: tweet.id, text: "why")
        t.expectRejected("forbidden") { try t.db.delete(handle: "bob", tweet: tweet.id) }
        t.expectRejected("forbidden") { try t.db.delete(handle: "alice", tweet: retweet.id) }
        t.expectRejected("not_found") { try t.db.delete(handle: "alice", tweet: 7) }

        try t.db.delete(handle: "alice", tweet: tweet.id)
        t.expectRejected("not_found") { _ = try t.db.tweet(id: tweet.id) }
        t.expectRejected("not_found") { _ = try t.db.tweet(id: retweet.id) }
        #expect(try t.db.tweets(handle: "alice").items.map(\.id) == [keep.id], "gone with alice's own retweet of it")
        #expect(try t.db.tweets(handle: "bob").items.isEmpty, "gone from the retweeter's timeline")
        #expect(try t.db.user(handle: "alice").tweetCount == 1)
        #expect(try t.db.user(handle: "bob").tweetCount == 0)
        #expect(try t.db.tweet(id: reply.id).replyTo == tweet.id, "replies stay")
        t.expectRejected("not_found") { try t.db.delete(handle: "alice", tweet: tweet.id) }
        t.expectRejected("not_found") { try t.db.like(handle: "carol", tweet: tweet.id) }
        // Deleting a retweet is an unretweet.
        let again = try t.db.retweet(handle: "bob", tweet: keep.id)
        try t.db.delete(handle: "bob", tweet: again.id)
        #expect(try t.db.tweet(id: keep.id).retweetCount == 0)
    }

    @Test func userTimelinePages() throws {
        let t = try network()
        var ids: [UInt64] = []
        for i in 0..<7 { ids.append(try t.db.post(handle: "alice", text: "tweet \(i)").id) }
        let newestFirst = Array(ids.reversed())
        let first = try t.db.tweets(handle: "alice", limit: 3)
        #expect(first.items.map(\.id) == Array(newestFirst[0..<3]))
        let second = try t.db.tweets(handle: "alice", limit: 3, before: first.nextCursor)
        #expect(second.items.map(\.id) == Array(newestFirst[3..<6]))
        let third = try t.db.tweets(handle: "alice", limit: 3, before: second.nextCursor)
        #expect(third.items.map(\.id) == [newestFirst[6]] && third.nextCursor == nil)
        t.expectRejected("invalid") { _ = try t.db.tweets(handle: "alice", limit: 0) }
        t.expectRejected("invalid") { _ = try t.db.tweets(handle: "alice", limit: 1001) }
        #expect(try t.db.tweets(handle: "alice", limit: 1000).items.count == 7)
    }
}
