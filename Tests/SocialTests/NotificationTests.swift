@testable import Social
import StorageEngine
import Testing

/// NOTIFICATIONS: each kind, newest first, none to oneself, and each removed when its cause is undone.
@Suite struct NotificationTests {
    static func kinds(_ db: SocialDB, _ handle: String) throws -> [String] {
        try db.notifications(handle: handle).map { "\($0.kind) \($0.actor.handle)" }
    }

    @Test func everyKindNewestFirstAndUndone() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        let a = try t.db.post(handle: "alice", text: "hi @bob and @alice")
        #expect(try Self.kinds(t.db, "alice").isEmpty, "no notification to oneself")
        #expect(try Self.kinds(t.db, "bob") == ["mention alice"])
        try t.db.follow("bob", "alice")
        let r = try t.db.reply(handle: "bob", to: a.id, text: "hello @alice")
        let q = try t.db.quote(handle: "carol", tweet: a.id, text: "look")
        let rt = try t.db.retweet(handle: "carol", tweet: a.id)
        try t.db.like(handle: "bob", tweet: a.id)
        try t.db.like(handle: "alice", tweet: a.id)
        #expect(try Self.kinds(t.db, "alice") == ["like bob", "retweet carol", "quote carol", "reply bob", "follow bob"])
        let n = try t.db.notifications(handle: "alice")
        #expect(n[1].tweet?.id == a.id && n[2].tweet?.id == q.id && n[3].tweet?.id == r.id && n[4].tweet == nil)
        #expect(try t.db.notifications(handle: "alice", limit: 2).count == 2)
        // Undo each cause.
        try t.db.unlike(handle: "bob", tweet: a.id)
        try t.db.unretweet(handle: "carol", tweet: rt.id)
        try t.db.unfollow("bob", "alice")
        #expect(try Self.kinds(t.db, "alice") == ["quote carol", "reply bob"])
        try t.db.delete(handle: "bob", tweet: r.id)
        #expect(try Self.kinds(t.db, "alice") == ["quote carol"])
        // Following again notifies again, once.
        try t.db.follow("bob", "alice")
        #expect(try Self.kinds(t.db, "alice") == ["follow bob", "quote carol"])
        // Deleting the original removes what was about it (likes, retweets) and what it caused.
        try t.db.like(handle: "carol", tweet: a.id)
        _ = try t.db.retweet(handle: "bob", tweet: a.id)
        try t.db.delete(handle: "alice", tweet: a.id)
        #expect(try Self.kinds(t.db, "bob").isEmpty)
        #expect(try Self.kinds(t.db, "alice") == ["follow bob", "quote carol"])
        try t.reopen()
        #expect(try Self.kinds(t.db, "alice") == ["follow bob", "quote carol"])
        t.expectRejected("not_found") { _ = try t.db.notifications(handle: "nobody") }
        t.expectRejected("invalid") { _ = try t.db.notifications(handle: "alice", limit: 0) }
    }
}
