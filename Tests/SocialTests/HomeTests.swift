@testable import Social
import StorageEngine
import Testing

/// HOME: the timeline store fed by every acknowledged write, its strong-consistency rules, the
/// independence from the celebrity threshold, and recovery across close, reopen and a crash.
@Suite struct HomeTests {
    static func ids(_ page: Page<Tweet>) -> [UInt64] { page.items.map(\.id) }

    @Test func postIsInOwnHomeAtOnce() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice")
        let a = try t.db.post(handle: "alice", text: "one")
        #expect(Self.ids(try t.db.home(handle: "alice")) == [a.id])
    }

    @Test func followThenHomeAndUnfollowThenHome() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        let a1 = try t.db.post(handle: "alice", text: "a1")
        let b1 = try t.db.post(handle: "bob", text: "b1")
        let c1 = try t.db.post(handle: "carol", text: "c1")
        #expect(Self.ids(try t.db.home(handle: "carol")) == [c1.id])
        try t.db.follow("carol", "alice")
        #expect(Self.ids(try t.db.home(handle: "carol")) == [c1.id, a1.id])
        try t.db.follow("carol", "bob")
        #expect(Self.ids(try t.db.home(handle: "carol")) == [c1.id, b1.id, a1.id])
        let a2 = try t.db.post(handle: "alice", text: "a2")
        #expect(Self.ids(try t.db.home(handle: "carol")) == [a2.id, c1.id, b1.id, a1.id])
        try t.db.unfollow("carol", "alice")
        #expect(Self.ids(try t.db.home(handle: "carol")) == [c1.id, b1.id])
        // Idempotent unfollow writes nothing and changes nothing.
        let before = t.nextLSN
        #expect(try t.db.unfollow("carol", "alice") == false)
        #expect(t.nextLSN == before)
    }

    @Test func deleteLeavesEveryHome() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        try t.db.follow("bob", "alice")
        try t.db.follow("carol", "bob")
        let a1 = try t.db.post(handle: "alice", text: "a1")
        let rt = try t.db.retweet(handle: "bob", tweet: a1.id)
        // bob's own retweet is the newer entry; the original is shown once, inside it.
        let bobs = Self.ids(try t.db.home(handle: "bob"))
        #expect(bobs == [rt.id])
        #expect(Self.ids(try t.db.home(handle: "carol")) == [rt.id])
        try t.db.delete(handle: "alice", tweet: a1.id)
        #expect(try t.db.home(handle: "alice").items.isEmpty)
        #expect(try t.db.home(handle: "bob").items.isEmpty)
        #expect(try t.db.home(handle: "carol").items.isEmpty)
    }

    /// Deletes are filtered at read by tombstones, then cleaned from the rings at the next
    /// checkpoint, which forgets the tombstones: the filter does not grow with every delete
    /// ever made, and the pages stay the same across the cleanup and a reopen.
    @Test func deletesAreCompactedAtCheckpoint() throws {
        var options = testOptions()
        options.celebrityThreshold = 1 // carol's two followers make her a celebrity: merged at read
        let directory = TemporaryDirectory()
        var db = try SocialDB.open(at: directory.path, options: options)
        for h in ["alice", "bob", "carol", "dave"] { try db.createUser(handle: h) }
        try db.follow("bob", "alice")
        try db.follow("bob", "carol")
        try db.follow("dave", "carol")
        var posts: [(id: UInt64, author: String)] = []
        for i in 0..<12 {
            let author = i % 2 == 0 ? "alice" : "carol"
            posts.append((try db.post(handle: author, text: "t\(i)").id, author))
        }
        let deleted = posts.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        let kept = posts.enumerated().filter { $0.offset % 3 != 0 }.map(\.element)
        _ = try db.retweet(handle: "dave", tweet: deleted[1].id) // carol's: the retweet goes with it
        for post in deleted { try db.delete(handle: post.author, tweet: post.id) }
        let bobs = Array(kept.map(\.id).reversed())
        let daves = Array(kept.filter { $0.author == "carol" }.map(\.id).reversed())
        #expect(Self.ids(try db.home(handle: "bob", limit: 50)) == bobs)
        #expect(Self.ids(try db.home(handle: "dave", limit: 50)) == daves)
        let filtered = try db.statistics().timelines.tombstones
        #expect(filtered == deleted.count + 1, "the four deleted tweets and the retweet that went with one")
        try db.close()
        db = try SocialDB.open(at: directory.path, options: options)
        defer { try? db.close() }
        #expect(try db.statistics().timelines.tombstones == 0)
        #expect(Self.ids(try db.home(handle: "bob", limit: 50)) == bobs)
        #expect(Self.ids(try db.home(handle: "dave", limit: 50)) == daves)
        // Further posts and deletes after the cleanup behave the same.
        let late = try db.post(handle: "carol", text: "late")
        #expect(Self.ids(try db.home(handle: "dave", limit: 50)) == [late.id] + daves)
        try db.delete(handle: "carol", tweet: late.id)
        #expect(Self.ids(try db.home(handle: "dave", limit: 50)) == daves)
    }

    @Test func unretweetLeavesHome() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        try t.db.follow("carol", "bob")
        let a1 = try t.db.post(handle: "alice", text: "a1")
        let rt = try t.db.retweet(handle: "bob", tweet: a1.id)
        #expect(Self.ids(try t.db.home(handle: "carol")) == [rt.id])
        #expect(try t.db.home(handle: "carol").items[0].retweeted?.id == a1.id)
        try t.db.unretweet(handle: "bob", tweet: a1.id)
        #expect(try t.db.home(handle: "carol").items.isEmpty)
    }

    @Test func retweetedOriginalShowsOnce() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol", "dave"] { try t.db.createUser(handle: h) }
        for f in ["alice", "bob", "carol"] { try t.db.follow("dave", f) }
        let a1 = try t.db.post(handle: "alice", text: "a1")
        _ = try t.db.retweet(handle: "bob", tweet: a1.id)
        _ = try t.db.retweet(handle: "carol", tweet: a1.id)
        let page = try t.db.home(handle: "dave")
        let shown = page.items.map { $0.retweeted?.id ?? $0.id }
        #expect(shown.filter { $0 == a1.id }.count == 1, "\(page.items.map(\.id))")
    }

    @Test func pagesWithBeforeAndLimits() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob"] { try t.db.createUser(handle: h) }
        try t.db.follow("bob", "alice")
        var posted: [UInt64] = []
        for i in 0..<7 { posted.append(try t.db.post(handle: i % 2 == 0 ? "alice" : "bob", text: "t\(i)").id) }
        let newestFirst = Array(posted.reversed())
        let first = try t.db.home(handle: "bob", limit: 3)
        #expect(Self.ids(first) == Array(newestFirst[0..<3]))
        #expect(first.nextCursor == newestFirst[2])
        let second = try t.db.home(handle: "bob", limit: 3, before: first.nextCursor)
        #expect(Self.ids(second) == Array(newestFirst[3..<6]))
        let third = try t.db.home(handle: "bob", limit: 3, before: second.nextCursor)
        #expect(Self.ids(third) == [newestFirst[6]])
        #expect(third.nextCursor == nil)
        t.expectRejected("invalid") { _ = try t.db.home(handle: "bob", limit: 0) }
        t.expectRejected("invalid") { _ = try t.db.home(handle: "bob", limit: t.db.homeLimitMax + 1) }
        t.expectRejected("not_found") { _ = try t.db.home(handle: "nobody") }
        t.expectRejected("invalid") { _ = try t.db.home(handle: "no way") }
    }

    /// A scripted history with follows, unfollows, posts, replies, quotes, retweets, unretweets
    /// and deletes; returns every user's whole home timeline (pages of 3 walked to the end).
    static func history(_ db: SocialDB, reopen: (() throws -> SocialDB)? = nil) throws -> [String: [String]] {
        var db = db
        let users = ["u0", "u1", "u2", "u3", "u4", "u5"]
        for u in users { try db.createUser(handle: u) }
        var rng = SplitMix(seed: 7)
        var tweets: [(id: UInt64, author: String)] = []
        for step in 0..<160 {
            let u = users[Int(rng.next() % 6)]
            let v = users[Int(rng.next() % 6)]
            switch rng.next() % 10 {
            case 0, 1: if u != v { try db.follow(u, v) }
            case 2: if u != v { try db.unfollow(u, v) }
            case 3, 4: tweets.append((try db.post(handle: u, text: "post \(step)").id, u))
            case 5:
                if let target = tweets.randomElement(using: &rng) { tweets.append((try db.reply(handle: u, to: target.id, text: "re \(step)").id, u)) }
            case 6:
                if let target = tweets.randomElement(using: &rng), (try? db.retweet(handle: u, tweet: target.id)) != nil {}
            case 7:
                if let target = tweets.randomElement(using: &rng) { _ = try? db.unretweet(handle: u, tweet: target.id) }
            case 8:
                if let i = tweets.indices.randomElement(using: &rng), rng.next() % 2 == 0 {
                    let target = tweets.remove(at: i)
                    try db.delete(handle: target.author, tweet: target.id)
                }
            default:
                if let target = tweets.randomElement(using: &rng) { tweets.append((try db.quote(handle: u, tweet: target.id, text: "q \(step)").id, u)) }
            }
            if step == 80, let reopen { db = try reopen() }
        }
        var result: [String: [String]] = [:]
        for u in users { result[u] = try allPages(db, u) }
        return result
    }

    /// Every page of `user`'s home, each item by what it shows (ids differ between runs that
    /// reopen: a reopened generator moves to the next millisecond).
    static func allPages(_ db: SocialDB, _ user: String) throws -> [String] {
        var all: [String] = []
        var cursor: UInt64?
        repeat {
            let page = try db.home(handle: user, limit: 3, before: cursor)
            for item in page.items {
                if let original = item.retweeted {
                    all.append("\(item.authorHandle) retweeted \(original.authorHandle): \(original.text)")
                } else {
                    all.append("\(item.authorHandle): \(item.text)")
                }
            }
            cursor = page.nextCursor
        } while cursor != nil
        return all
    }

    @Test func thresholdsGiveTheSamePages() throws {
        var results: [[String: [String]]] = []
        for threshold in [0, 2, Int.max] {
            let directory = TemporaryDirectory()
            var options = testOptions()
            options.celebrityThreshold = threshold
            let db = try SocialDB.open(at: directory.path, options: options)
            results.append(try Self.history(db))
            try db.close()
        }
        #expect(results[0] == results[1])
        #expect(results[1] == results[2])
        #expect(results[0].values.contains { $0.count > 3 }, "the history gives timelines of several pages")
    }

    @Test func reopenAndCrashGiveTheSamePages() throws {
        let plain = TemporaryDirectory()
        let plainDB = try SocialDB.open(at: plain.path, options: testOptions())
        let expected = try Self.history(plainDB)
        try plainDB.close()

        // Closed (checkpointed) and reopened halfway, then reopened at the end.
        let t = try TestDatabase()
        let reopened = try Self.history(t.db) {
            try t.reopen()
            return t.db
        }
        #expect(reopened == expected)
        try t.reopen()
        #expect(try Self.allUsers(t.db) == expected)

        // Closed without checkpoints halfway (a crash for the derived structures), and again
        // at the end: the next open replays the log from the older checkpoint.
        let c = try TestDatabase()
        let crashed = try Self.history(c.db) {
            try c.db.closeWithoutCheckpoints()
            c.db = try SocialDB.open(at: c.directory.path, options: testOptions())
            return c.db
        }
        #expect(crashed == expected)
        try c.db.closeWithoutCheckpoints()
        c.db = try SocialDB.open(at: c.directory.path, options: testOptions())
        #expect(try Self.allUsers(c.db) == expected)
        #expect(c.db.consumers.replayedRecords.load(ordering: .relaxed) > 0)
    }

    @Test func corruptOrMissingCheckpointRebuilds() throws {
        let plain = TemporaryDirectory()
        let plainDB = try SocialDB.open(at: plain.path, options: testOptions())
        let expected = try Self.history(plainDB)
        try plainDB.close()
        let t = try TestDatabase()
        _ = try Self.history(t.db)
        try t.db.close()
        let path = t.directory.path + "/timeline/TIMELINE"
        let fs = try FileSystem(backend: .posix)
        let file = try fs.open(path, FileSystem.OpenOptions(create: false, truncate: false))
        try [UInt8](repeating: 0xEE, count: 16).withUnsafeBytes { try file.write($0, at: 40) }
        file.close()
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
        guard case .unusable = t.db.consumers.timelineStatus else {
            Issue.record("expected an unusable checkpoint, got \(t.db.consumers.timelineStatus)")
            return
        }
        #expect(try Self.allUsers(t.db) == expected)
        try t.db.closeWithoutCheckpoints()
        try fs.remove(path)
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
        #expect(t.db.consumers.timelineStatus == .missing)
        #expect(try Self.allUsers(t.db) == expected)
    }

    static func allUsers(_ db: SocialDB) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for u in ["u0", "u1", "u2", "u3", "u4", "u5"] { result[u] = try allPages(db, u) }
        return result
    }
}

/// A small seeded generator, so a scripted history is the same in every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
