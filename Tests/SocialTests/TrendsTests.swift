@testable import Social
import StorageEngine
import Testing

/// TRENDS counts each tweet once per tag, and a DELETE takes its tags back at once (and after a
/// reopen, where the counts are rebuilt from the stored tweets).
@Suite struct TrendsTests {
    static func counts(_ db: SocialDB) throws -> [String] {
        try db.trends(limit: 100).map { "\($0.tag) \($0.count)" }
    }

    @Test func deleteStopsCountingAtOnce() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice")
        try t.db.createUser(handle: "bob")
        let a = try t.db.post(handle: "alice", text: "#Swift and #swift again, #rust")
        let b = try t.db.post(handle: "bob", text: "#swift")
        let rt = try t.db.retweet(handle: "bob", tweet: a.id)
        #expect(try Self.counts(t.db) == ["#swift 2", "#rust 1"], "a tweet counts once per tag; a retweet not at all")
        try t.db.delete(handle: "bob", tweet: rt.id)
        #expect(try Self.counts(t.db) == ["#swift 2", "#rust 1"], "unretweeting takes nothing back")
        try t.db.delete(handle: "alice", tweet: a.id)
        #expect(try Self.counts(t.db) == ["#swift 1"])
        try t.reopen()
        #expect(try Self.counts(t.db) == ["#swift 1"])
        try t.db.delete(handle: "bob", tweet: b.id)
        #expect(try Self.counts(t.db).isEmpty)
    }
}
