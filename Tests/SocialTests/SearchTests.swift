@testable import Social
import StorageEngine
import Testing

/// SEARCH, SEARCH USERS and TRENDS through the search index, fed by every acknowledged write and
/// recovered from its checkpoint, the log, or the tweet store.
@Suite struct SearchTests {
    static func ids(_ page: Page<Tweet>) -> [UInt64] { page.items.map(\.id) }

    @Test func postThenSearchAndDeleteThenSearch() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        let a = try t.db.post(handle: "alice", text: "hello #Swift world")
        let b = try t.db.post(handle: "bob", text: "hello rust, says @alice")
        let c = try t.db.post(handle: "carol", text: "check #rust today")
        #expect(Self.ids(try t.db.search("hello")) == [b.id, a.id])
        #expect(Self.ids(try t.db.search("hello -#swift")) == [b.id])
        #expect(Self.ids(try t.db.search("#swift OR #rust")) == [c.id, a.id])
        #expect(Self.ids(try t.db.search("from:carol")) == [c.id])
        #expect(Self.ids(try t.db.search("@alice")) == [b.id])
        #expect(Self.ids(try t.db.search("\"check #rust\"")) == [c.id])
        #expect(Self.ids(try t.db.search("\"rust check\"")).isEmpty)
        let rt = try t.db.retweet(handle: "bob", tweet: a.id)
        #expect(Self.ids(try t.db.search("from:bob is:retweet")) == [rt.id])
        try t.db.delete(handle: "alice", tweet: a.id)
        #expect(Self.ids(try t.db.search("hello")) == [b.id])
        #expect(try t.db.search("from:bob is:retweet").items.isEmpty, "a deleted original's retweets leave search too")
        // Pages.
        let page = try t.db.search("hello OR rust", limit: 1)
        #expect(Self.ids(page) == [c.id])
        #expect(Self.ids(try t.db.search("hello OR rust", limit: 1, before: page.nextCursor)) == [b.id])
        t.expectRejected("invalid") { _ = try t.db.search("") }
        t.expectRejected("invalid") { _ = try t.db.search("hello", limit: 1001) }
        t.expectRejected("invalid") { _ = try t.db.search("\"unclosed") }
    }

    @Test func usersByPrefixRankedByFollowers() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice", name: "Alice Liddell")
        try t.db.createUser(handle: "alfred", name: "Alfred")
        try t.db.createUser(handle: "bob", name: "Bob Lidl")
        try t.db.follow("bob", "alfred")
        #expect(try t.db.searchUsers("al").map(\.handle) == ["alfred", "alice"])
        #expect(try t.db.searchUsers("lid").map(\.handle) == ["alice", "bob"])
        try t.db.follow("alfred", "alice")
        try t.db.follow("bob", "alice")
        #expect(try t.db.searchUsers("@AL").map(\.handle) == ["alice", "alfred"])
        try t.db.updateUser(handle: "bob", name: "Robert")
        #expect(try t.db.searchUsers("lid").map(\.handle) == ["alice"])
        #expect(try t.db.searchUsers("rob").map(\.handle) == ["bob"])
        t.expectRejected("invalid") { _ = try t.db.searchUsers("  ") }
    }

    @Test func trendsCountTheWindow() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice")
        try t.db.post(handle: "alice", text: "#swift is fun")
        try t.db.post(handle: "alice", text: "#Swift and #rust")
        try t.db.post(handle: "alice", text: "#rust again and #swift")
        try t.db.post(handle: "alice", text: "#zig")
        #expect(try t.db.trends(limit: 2) == [Trend(tag: "#swift", count: 3), Trend(tag: "#rust", count: 2)])
        try t.reopen()
        #expect(try t.db.trends(limit: 3) == [Trend(tag: "#swift", count: 3), Trend(tag: "#rust", count: 2), Trend(tag: "#zig", count: 1)])
        t.expectRejected("invalid") { _ = try t.db.trends(limit: 0) }
    }

    /// The same searches after a clean reopen, after a close without checkpoints (replay from
    /// the log) and after the search files are lost (rebuild from the tweet store).
    @Test func recovery() throws {
        let t = try TestDatabase()
        for h in ["alice", "bob"] { try t.db.createUser(handle: h) }
        var kept: [UInt64] = []
        for i in 0..<30 {
            let tweet = try t.db.post(handle: i % 2 == 0 ? "alice" : "bob", text: "note \(i) #n\(i % 3)")
            if i % 5 == 0 { try t.db.delete(handle: tweet.authorHandle, tweet: tweet.id) } else { kept.append(tweet.id) }
            if i == 10 { try t.reopen() }
        }
        let expected = Array(kept.reversed())
        func check(_ label: String) throws {
            #expect(Self.ids(try t.db.search("note", limit: 100)) == expected, "\(label)")
            #expect(try t.db.searchUsers("bo").map(\.handle) == ["bob"], "\(label)")
        }
        try check("live")
        try t.reopen()
        try check("reopened")
        #expect(t.db.consumers.searchRebuildReason == nil)
        try t.db.closeWithoutCheckpoints()
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
        try check("after a crash")
        try t.db.post(handle: "alice", text: "note late")
        try t.db.close()
        try FileSystem(backend: .posix).removeTree(t.directory.path + "/search")
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
        #expect(t.db.consumers.searchRebuildReason != nil)
        #expect(try t.db.search("note", limit: 100).items.count == expected.count + 1)
        #expect(try t.db.search("late").items.count == 1)
    }
}
