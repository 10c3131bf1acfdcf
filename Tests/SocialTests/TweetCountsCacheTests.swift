@testable import Social
import StorageEngine
import Synchronization
import Testing

/// Hydration's counts come from `TweetCountsCache` once read: every write that changes a count
/// (like, unlike, reply, quote, retweet, unretweet, delete) must show in the next read, from the
/// same thread and from others.
@Suite struct TweetCountsCacheTests {
    @Test func countsFollowEveryWriteThroughTheCache() throws {
        let t = try TestDatabase()
        let db = t.db
        for h in ["a", "b", "c", "d"] { try db.createUser(handle: h) }
        let tweet = try db.post(handle: "a", text: "counted")
        func counts() throws -> [Int] {
            let x = try db.tweet(id: tweet.id)
            return [x.likeCount, x.retweetCount, x.replyCount, x.quoteCount]
        }
        #expect(try counts() == [0, 0, 0, 0])
        #expect(try counts() == [0, 0, 0, 0])  // from the cache
        try db.like(handle: "b", tweet: tweet.id)
        #expect(try counts() == [1, 0, 0, 0])
        try db.like(handle: "c", tweet: tweet.id)
        let reply = try db.reply(handle: "d", to: tweet.id, text: "re")
        #expect(try counts() == [2, 0, 1, 0])
        let retweet = try db.retweet(handle: "b", tweet: tweet.id)
        try db.quote(handle: "c", tweet: tweet.id, text: "q")
        #expect(try counts() == [2, 1, 1, 1])
        // A retweet shows the original's counts, which change with it.
        #expect(try db.tweet(id: retweet.id).retweeted?.likeCount == 2)
        try db.unlike(handle: "b", tweet: tweet.id)
        try db.unretweet(handle: "b", tweet: tweet.id)
        try db.delete(handle: "d", tweet: reply.id)
        #expect(try counts() == [1, 0, 0, 1])
        try db.like(handle: "d", tweet: tweet.id)
        #expect(try db.home(handle: "a").items.first { $0.id == tweet.id }?.likeCount == 2)
        #expect(db.tweetCountsCache.lookup(tweet.id) != nil, "reads fill the cache")
    }

    /// Likes from one thread while another reads: a count a reader sees never goes down (likes
    /// only), and after the writer is done every reader sees the final count.
    @Test func concurrentReadersNeverSeeAStaleCountAfterAWrite() throws {
        let t = try TestDatabase()
        let db = t.db
        try db.createUser(handle: "author")
        let likers = 60
        for i in 0..<likers { try db.createUser(handle: "l\(i)") }
        let tweet = try db.post(handle: "author", text: "popular")
        let done = Atomic<Bool>(false)
        let problems = Mutex<[String]>([])
        let readers = (0..<2).map { _ in
            BackgroundThread {
                var last = 0
                while true {
                    let finished = done.load(ordering: .acquiring)
                    guard let count = try? db.tweet(id: tweet.id).likeCount else { continue }
                    if count < last { problems.withLock { $0.append("\(count) after \(last)") } }
                    last = count
                    if finished {
                        if count != likers { problems.withLock { $0.append("final \(count), not \(likers)") } }
                        return
                    }
                }
            }
        }
        for i in 0..<likers {
            try db.like(handle: "l\(i)", tweet: tweet.id)
            // Once acknowledged, the like is in every later read, the cache's included.
            let seen = try db.tweet(id: tweet.id).likeCount
            if seen != i + 1 { problems.withLock { $0.append("after like \(i + 1) the writer read \(seen)") } }
        }
        done.store(true, ordering: .releasing)
        for reader in readers { reader.join() }
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(5) })")
    }
}
