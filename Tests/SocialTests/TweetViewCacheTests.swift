@testable import Social
import StorageEngine
import Synchronization
import Testing

/// Pages are hydrated from `SocialDB.tweetViews` (tweets without counts or nested tweets, kept
/// by id): every read must give what the records give, and a deleted tweet must leave every
/// read once its delete is acknowledged.
@Suite struct TweetViewCacheTests {
    /// What a reader sees of a tweet, without ids (the two databases' ids differ).
    static func shown(_ t: Tweet) -> String {
        func one(_ t: Tweet) -> String {
            "@\(t.authorHandle) '\(t.text)' [\(t.likeCount) \(t.retweetCount) \(t.replyCount) \(t.quoteCount)] "
                + "reply:\(t.replyTo != nil) conv-own:\(t.conversationID == t.id) m:\(t.mentions) h:\(t.hashtags)"
        }
        var text = one(t)
        if let r = t.retweeted { text += " RT{\(one(r))}" }
        if let q = t.quoted { text += " Q{\(one(q))}" }
        return text
    }

    /// A seeded mix of posts (with mentions and hashtags), replies, quotes, retweets, likes,
    /// unlikes, unretweets and deletes on two databases, one with a small view cache (so views
    /// are evicted and read again) and one without; after every step home pages, own tweets,
    /// single tweets, search and notifications are compared.
    @Test func cachedViewsGiveTheSameReadsAsRecords() throws {
        var cached = testOptions()
        cached.tweetCacheBytes = 64 * 4096
        var uncached = testOptions()
        uncached.tweetCacheBytes = 0
        let a = try TestDatabase(options: cached)
        let b = try TestDatabase(options: uncached)
        let dbs = [a.db, b.db]
        let users = (0..<8).map { "u\($0)" }
        for db in dbs {
            for u in users { try db.createUser(handle: u) }
            for i in users.indices { for j in users.indices where i != j && (i * 3 + j) % 4 == 0 { try db.follow(users[i], users[j]) } }
            try db.follow("u0", "u1")
        }
        var random = TortureRandom(seed: 0x71EE_7C0C)
        var posted: [[UInt64]] = [[], []]
        for step in 0..<500 {
            let u = users[Int(random.next() % 8)], v = users[Int(random.next() % 8)]
            let roll = random.next() % 100
            let pick = posted[0].isEmpty ? nil : Int(random.next() % UInt64(posted[0].count))
            var made: [UInt64?] = [nil, nil]
            switch roll {
            case 0..<30: made = dbs.map { try? $0.post(handle: u, text: "p\(step) @\(v) #tag\(step % 5)").id }
            case 30..<40: if let pick { made = dbs.indices.map { i in try? dbs[i].reply(handle: u, to: posted[i][pick], text: "r\(step) #tag\(step % 5)").id } }
            case 40..<47: if let pick { made = dbs.indices.map { i in try? dbs[i].quote(handle: u, tweet: posted[i][pick], text: "q\(step)").id } }
            case 47..<57: if let pick { made = dbs.indices.map { i in try? dbs[i].retweet(handle: u, tweet: posted[i][pick]).id } }
            case 57..<60: if let pick { for i in dbs.indices { _ = try? dbs[i].unretweet(handle: u, tweet: posted[i][pick]) } }
            case 60..<75: if let pick { for i in dbs.indices { _ = try? dbs[i].like(handle: u, tweet: posted[i][pick]) } }
            case 75..<80: if let pick { for i in dbs.indices { _ = try? dbs[i].unlike(handle: u, tweet: posted[i][pick]) } }
            case 80..<90:
                if let pick {
                    for i in dbs.indices {
                        let id = posted[i][pick]
                        if let tweet = try? dbs[i].tweet(id: id) { _ = try? dbs[i].delete(handle: tweet.authorHandle, tweet: id) }
                    }
                }
            default: break
            }
            #expect((made[0] == nil) == (made[1] == nil), "step \(step): the two databases disagree on a write")
            if let x = made[0], let y = made[1] { posted[0].append(x); posted[1].append(y) }
            let w = users[Int(random.next() % 8)]
            func compare(_ what: String, _ read: (SocialDB, Int) throws -> [String]) {
                let seen = dbs.indices.map { i in (try? read(dbs[i], i)) ?? ["error"] }
                #expect(seen[0] == seen[1], "step \(step): \(what) differs with the view cache")
            }
            compare("@\(w)'s home") { db, _ in try db.home(handle: w, limit: 50).items.map(Self.shown) }
            compare("@\(w)'s home at offset 5") { db, _ in try db.home(handle: w, limit: 10, offset: 5).items.map(Self.shown) }
            compare("@\(w)'s tweets") { db, _ in try db.tweets(handle: w, limit: 30).items.map(Self.shown) }
            compare("search #tag\(step % 5)") { db, _ in try db.search("#tag\(step % 5)", limit: 30).items.map(Self.shown) }
            compare("@\(w)'s notifications") { db, _ in
                try db.notifications(handle: w, limit: 30).map { "\($0.kind) \($0.actor.handle) \($0.tweet.map(Self.shown) ?? "-")" }
            }
            // A page (read in batched rounds by `tweets(ids:)`) shows each tweet as the read of
            // that one tweet does (`tweet(id:)`, its counts and nested tweet read one by one);
            // 200 items, so later pages have more than 16 nested tweets (found by a table).
            for db in dbs {
                for t in try db.home(handle: w, limit: 200).items {
                    #expect(Self.shown(t) == Self.shown(try db.tweet(id: t.id)), "step \(step): tweet \(t.id) in @\(w)'s home")
                    for shown in [t] + (t.retweeted.map { [$0] } ?? []) + (t.quoted.map { [$0] } ?? []) {
                        let stored = try db.readTweetCounts(of: shown.id)
                        #expect(stored == (shown.likeCount, shown.retweetCount, shown.replyCount, shown.quoteCount),
                                "step \(step): the counts of tweet \(shown.id) in @\(w)'s home")
                    }
                    #expect(t.retweeted?.id == t.retweetOf)
                    if let quoted = t.quoted { #expect(quoted.id == t.quoteOf) }
                }
            }
            if let pick {
                compare("tweet \(pick)") { db, i in
                    do { return [Self.shown(try db.tweet(id: posted[i][pick]))] } catch { return ["\((error as? SocialError)?.code ?? "?")"] }
                }
            }
        }
        let stats = a.db.tweetViews.statistics
        #expect(stats.hits > 0 && stats.entries > 0, "\(stats)")
        #expect(b.db.tweetViews.statistics.entries == 0)
    }

    /// The caches are bounded in bytes: however many values go in, a shard stays within its
    /// share, and a value too large for it is not kept.
    @Test func theCacheStaysWithinItsBytes() {
        let cache = IDCache<TweetCounts>(maxBytes: 64 * 1024)
        for id in 0..<UInt64(50_000) { cache.install(id, TweetCounts(likes: 1, retweets: 0, replies: 0, quotes: 0), since: cache.stamp(id)) }
        let stats = cache.statistics
        #expect(stats.bytes <= 64 * 1024 && stats.entries > 500, "\(stats)")
        let views = IDCache<Tweet.Content>(maxBytes: 256 * 1024)
        let big = Tweet(id: 1, authorID: 2, authorHandle: "a", createdAtMilliseconds: 0, text: String(repeating: "é", count: 1000),
                        replyTo: nil, conversationID: 1, retweetOf: nil, quoteOf: nil, mentions: [], hashtags: [], urls: [],
                        likeCount: 0, retweetCount: 0, replyCount: 0, quoteCount: 0)
        views.install(1, big.content, since: views.stamp(1))
        #expect(views.lookup(1) == nil, "a view above a quarter of its shard's 4 KiB is not kept")
        var small = big
        small.text = "hi"
        views.install(1, small.content, since: views.stamp(1))
        #expect(views.lookup(1)?.fields.text == "hi")
    }

    /// A user record that does not decode is reported as damage (`io`), not as a missing user,
    /// on the paths that resolve a handle from the caches.
    @Test func aDamagedUserRecordIsIONotNotFound() throws {
        let t = try TestDatabase()
        let user = try t.db.createUser(handle: "damaged")
        var batch = WriteBatch()
        batch.put(SocialKeys.user(user.id), [0xFF, 1, 2])
        _ = try t.db.engine.tree.write(batch)
        for read in [{ _ = try t.db.home(handle: "damaged") }, { _ = try t.db.tweets(handle: "damaged") },
                     { _ = try t.db.post(handle: "damaged", text: "x") }] as [() throws -> Void] {
            do {
                try read()
                Issue.record("a damaged user record was read as data")
            } catch let error as SocialError {
                #expect(error.code == "io", "\(error)")
            }
        }
    }

    /// Two readers read a tweet (and a retweet of it) over and over while it is deleted: once
    /// the delete is acknowledged, no read shows either of them.
    @Test func aDeletedTweetLeavesEveryReadOnceAcknowledged() throws {
        let t = try TestDatabase()
        let db = t.db
        for h in ["author", "fan", "reader"] { try db.createUser(handle: h) }
        try db.follow("reader", "author")
        try db.follow("reader", "fan")
        for round in 0..<20 {
            let tweet = try db.post(handle: "author", text: "doomed \(round)")
            let retweet = try db.retweet(handle: "fan", tweet: tweet.id)
            let deleted = Atomic<Bool>(false)
            let stop = Atomic<Bool>(false)
            let problems = Mutex<[String]>([])
            let readers = (0..<2).map { _ in
                BackgroundThread {
                    while !stop.load(ordering: .acquiring) {
                        let wasDeleted = deleted.load(ordering: .acquiring)
                        let single = try? db.tweet(id: tweet.id)
                        let viaRetweet = try? db.tweet(id: retweet.id)
                        let home = (try? db.home(handle: "reader", limit: 20).items.map(\.id)) ?? []
                        if wasDeleted && (single != nil || viaRetweet != nil || home.contains(tweet.id) || home.contains(retweet.id)) {
                            problems.withLock { $0.append("round \(round): a read after the delete still shows it") }
                        }
                    }
                }
            }
            try db.delete(handle: "author", tweet: tweet.id)
            deleted.store(true, ordering: .releasing)
            // Let the readers run a little past the delete.
            for _ in 0..<50 { _ = try db.home(handle: "reader", limit: 20) }
            stop.store(true, ordering: .releasing)
            for reader in readers { reader.join() }
            #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(3) })")
            #expect(throws: SocialError.self) { try db.tweet(id: tweet.id) }
        }
    }
}
