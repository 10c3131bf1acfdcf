@testable import Social
import StorageEngine
import Synchronization
import Testing
@testable import socialdb

/// Pages served from the tweets' cached JSON (`SocialDB.appendEncodedHome`, `appendEncodedTweets`,
/// `appendEncodedTweet`, what `socialdb serve` answers in JSON) must be the bytes the `Tweet` values
/// of the same reads render to, through every change a tweet goes through (likes, retweets,
/// quotes, deletes of originals and of quoted tweets), with the cache evicting and without it.
@Suite struct EncodedPagesTests {
    static func json(_ tweets: [Tweet]) -> String {
        var bytes: [UInt8] = []
        JSONValue.tweets(tweets).render(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A page written by one of the `appendEncoded` calls, in brackets as the shell sends it.
    static func encodedPage(_ append: (inout [UInt8]) throws -> UInt64?) throws -> (String, UInt64?) {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        let next = try append(&bytes)
        bytes.append(UInt8(ascii: "]"))
        return (String(decoding: bytes, as: UTF8.self), next)
    }

    static func encodedTweet(_ db: SocialDB, _ id: UInt64) throws -> String {
        var bytes: [UInt8] = []
        try db.appendEncodedTweet(id: id, as: JSONTweetEncoding.self, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func json(_ tweet: Tweet) -> String {
        var bytes: [UInt8] = []
        JSONValue.tweet(tweet).render(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// What a read answered: its JSON and cursor, or its error code.
    static func outcome(_ read: () throws -> (String, UInt64?)) -> String {
        do {
            let (text, next) = try read()
            return "\(text) next:\(next.map(String.init) ?? "-")"
        } catch {
            return "error \((error as? SocialError)?.code ?? "?")"
        }
    }

    /// A seeded mix of writes; after each, a random user's home and own pages (by cursor, with
    /// LIMITs that end inside the timeline and past it) and a random tweet are read both ways.
    @Test(arguments: [0, 64 * 4096, 64 << 20])
    func encodedReadsAreTheBytesOfTweetReads(cacheBytes: Int) throws {
        var options = testOptions()
        options.tweetCacheBytes = cacheBytes
        let t = try TestDatabase(options: options)
        let db = t.db
        let users = (0..<8).map { "u\($0)" }
        for u in users { try db.createUser(handle: u) }
        for i in users.indices { for j in users.indices where i != j && (i * 3 + j) % 4 == 0 { try db.follow(users[i], users[j]) } }
        let seed: UInt64 = 0xE4C0_DED5
        var random = TortureRandom(seed: seed)
        var posted: [UInt64] = []
        for step in 0..<400 {
            let u = users[Int(random.next() % 8)], v = users[Int(random.next() % 8)]
            let pick = posted.isEmpty ? nil : posted[Int(random.next() % UInt64(posted.count))]
            switch random.next() % 100 {
            case 0..<30: if let id = try? db.post(handle: u, text: "p\(step) @\(v) #tag\(step % 5) \"quoted\" \\ https://x.org/\(step)").id { posted.append(id) }
            case 30..<40: if let pick, let id = try? db.reply(handle: u, to: pick, text: "r\(step) é #tag").id { posted.append(id) }
            case 40..<48: if let pick, let id = try? db.quote(handle: u, tweet: pick, text: "q\(step)").id { posted.append(id) }
            case 48..<58: if let pick, let id = try? db.retweet(handle: u, tweet: pick).id { posted.append(id) }
            case 58..<62: if let pick { _ = try? db.unretweet(handle: u, tweet: pick) }
            case 62..<77: if let pick { _ = try? db.like(handle: u, tweet: pick) }
            case 77..<80: if let pick { _ = try? db.unlike(handle: u, tweet: pick) }
            case 80..<90:
                if let pick, let tweet = try? db.tweet(id: pick) { _ = try? db.delete(handle: tweet.authorHandle, tweet: pick) }
            default: break
            }
            let w = users[Int(random.next() % 8)]
            let limit = [1, 3, 10, 50][Int(random.next() % 4)]
            let before = pick.flatMap { random.next() % 2 == 0 ? $0 : nil }
            let reads: [(String, () throws -> (String, UInt64?), () throws -> (String, UInt64?))] = [
                ("HOME \(w) LIMIT \(limit)",
                 { let p = try db.home(handle: w, limit: limit, before: before); return (Self.json(p.items), p.nextCursor) },
                 { try Self.encodedPage { try db.appendEncodedHome(handle: w, limit: limit, before: before, as: JSONTweetEncoding.self, into: &$0) } }),
                ("TWEETS \(w) LIMIT \(limit)",
                 { let p = try db.tweets(handle: w, limit: limit, before: before); return (Self.json(p.items), p.nextCursor) },
                 { try Self.encodedPage { try db.appendEncodedTweets(handle: w, limit: limit, before: before, as: JSONTweetEncoding.self, into: &$0) } }),
            ] + (pick.map { id in
                [("TWEET \(id)",
                  { (Self.json(try db.tweet(id: id)), nil) },
                  { (try Self.encodedTweet(db, id), nil) })]
            } ?? [])
            for (what, fromTweets, encoded) in reads {
                let expected = Self.outcome(fromTweets)
                #expect(Self.outcome(encoded) == expected, "seed \(seed) step \(step): \(what)")
            }
        }
        let stats = db.tweetEncodings.statistics
        if cacheBytes > 0 {
            #expect(stats.hits > 0 && stats.entries > 0, "\(stats)")
        } else {
            #expect(stats.entries == 0)
        }
    }

    /// Readers serve a tweet and a retweet of it from the cached JSON over and over while it is
    /// deleted: once the delete is acknowledged, no encoded read shows either.
    @Test func aDeletedTweetLeavesEveryEncodedReadOnceAcknowledged() throws {
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
            let marker = Array("doomed \(round)\"".utf8)
            let readers = (0..<2).map { _ in
                BackgroundThread {
                    while !stop.load(ordering: .acquiring) {
                        let wasDeleted = deleted.load(ordering: .acquiring)
                        let single = try? Self.encodedTweet(db, tweet.id)
                        let viaRetweet = try? Self.encodedTweet(db, retweet.id)
                        var home: [UInt8] = []
                        _ = try? db.appendEncodedHome(handle: "reader", limit: 20, as: JSONTweetEncoding.self, into: &home)
                        let shown = home.containsBytes(marker)
                        if wasDeleted && (single != nil || viaRetweet != nil || shown) {
                            problems.withLock { $0.append("round \(round): an encoded read after the delete still shows it") }
                        }
                    }
                }
            }
            try db.delete(handle: "author", tweet: tweet.id)
            deleted.store(true, ordering: .releasing)
            for _ in 0..<50 {
                var page: [UInt8] = []
                _ = try db.appendEncodedHome(handle: "reader", limit: 20, as: JSONTweetEncoding.self, into: &page)
            }
            stop.store(true, ordering: .releasing)
            for reader in readers { reader.join() }
            #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(3) })")
            #expect(throws: SocialError.self) { try Self.encodedTweet(db, tweet.id) }
        }
    }
}

private extension Array where Element == UInt8 {
    func containsBytes(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        for start in 0...(count - needle.count) where self[start..<(start + needle.count)].elementsEqual(needle) { return true }
        return false
    }
}
