import Social
import StorageEngine
import Synchronization
import Testing

/// The per-user rate limits of the Social layer (issue 7): Twitter-like daily limits per action
/// and a short window over all writes, off by default, answered `rate_limited` with the time to
/// retry, changing nothing, and open again when the window turns.
@Suite struct RateLimitTests {
    final class Clock: Sendable {
        let now = Atomic<UInt64>(1_767_225_600_000) // 2026-01-01T00:00:00Z, a day boundary
        func advance(seconds: UInt64) { now.add(seconds * 1000, ordering: .relaxed) }
    }

    static func open(_ directory: TemporaryDirectory, _ limits: RateLimits, clock: Clock) throws -> SocialDB {
        var options = SocialOptions()
        options.engine.ioBackend = .posix
        options.wallClockMilliseconds = { clock.now.load(ordering: .relaxed) }
        options.rateLimits = limits
        return try SocialDB.open(at: directory.path, options: options)
    }

    static func expectLimited(_ db: SocialDB, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
                              _ body: () throws(SocialError) -> Void) {
        let before = db.engine.log.nextSequenceNumber
        do {
            try body()
            Issue.record("expected rate_limited", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == "rate_limited", "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(fragment), "\(error.message)", sourceLocation: sourceLocation)
        }
        #expect(db.engine.log.nextSequenceNumber == before, "a refused write wrote nothing", sourceLocation: sourceLocation)
    }

    @Test func offByDefault() throws {
        let directory = TemporaryDirectory("rate-off")
        let db = try Self.open(directory, SocialOptions().rateLimits, clock: Clock())
        defer { try? db.close() }
        try db.createUser(handle: "alice")
        for i in 0..<50 { try db.post(handle: "alice", text: "post \(i)") }
    }

    @Test func dailyLimitsPerActionWithTheTimeToRetry() throws {
        let directory = TemporaryDirectory("rate-daily")
        let clock = Clock()
        let db = try Self.open(directory, RateLimits(postsPerDay: 3, followsPerDay: 2, likesPerDay: 2), clock: clock)
        defer { try? db.close() }
        for handle in ["alice", "bob", "carol", "dave"] { try db.createUser(handle: handle) }
        // Posts, replies, quotes and retweets share the daily tweet limit.
        let first = try db.post(handle: "bob", text: "bob's")
        try db.post(handle: "alice", text: "one")
        try db.reply(handle: "alice", to: first.id, text: "two")
        try db.quote(handle: "alice", tweet: first.id, text: "three")
        clock.advance(seconds: 3600)
        Self.expectLimited(db, "at most 3 per day; try again in 82800 seconds") { () throws(SocialError) in _ = try db.retweet(handle: "alice", tweet: first.id) }
        Self.expectLimited(db, "tweets") { () throws(SocialError) in _ = try db.post(handle: "alice", text: "four") }
        // Other actions and other users are not held back by alice's tweets.
        try db.post(handle: "bob", text: "bob is free")
        #expect(try db.follow("alice", "bob"))
        #expect(try db.follow("alice", "carol"))
        Self.expectLimited(db, "follows") { () throws(SocialError) in _ = try db.follow("alice", "dave") }
        #expect(try db.unfollow("alice", "carol"), "unfollows are not follows")
        _ = try db.like(handle: "alice", tweet: first.id)
        _ = try db.unlike(handle: "alice", tweet: first.id)
        _ = try db.like(handle: "alice", tweet: first.id)
        _ = try db.unlike(handle: "alice", tweet: first.id)
        Self.expectLimited(db, "likes") { () throws(SocialError) in _ = try db.like(handle: "alice", tweet: first.id) }
        _ = try db.like(handle: "bob", tweet: first.id)
        // The next day everything is open again.
        clock.advance(seconds: 82_800)
        _ = try db.retweet(handle: "alice", tweet: first.id)
        #expect(try db.follow("alice", "dave"))
    }

    @Test func shortWindowOverAllWrites() throws {
        let directory = TemporaryDirectory("rate-window")
        let clock = Clock()
        let db = try Self.open(directory, RateLimits(windowSeconds: 60, writesPerWindow: 2), clock: clock)
        defer { try? db.close() }
        try db.createUser(handle: "alice")
        try db.createUser(handle: "bob")
        try db.post(handle: "alice", text: "one")
        _ = try db.updateUser(handle: "alice", bio: "hi")
        clock.advance(seconds: 15)
        Self.expectLimited(db, "at most 2 per 60 seconds; try again in 45 seconds") { () throws(SocialError) in _ = try db.follow("alice", "bob") }
        clock.advance(seconds: 45)
        #expect(try db.follow("alice", "bob"))
    }
}
