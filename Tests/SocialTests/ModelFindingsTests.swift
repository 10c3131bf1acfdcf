import Foundation
@testable import Social
import StorageEngine
import Testing

// Focused tests for what the model test (SocialModelTests) found.

/// HOME with LIMIT at the timeline capacity (the most the store reads at once) still has no
/// cursor on its last page, and a cursor when older items exist.
@Suite struct HomeCapacityPageTests {
    @Test func lastPageAtCapacityHasNoCursor() throws {
        let directory = TemporaryDirectory()
        var options = testOptions()
        options.timelineCapacity = 4
        let db = try SocialDB.open(at: directory.path, options: options)
        defer { try? db.close() }
        try db.createUser(handle: "alice")
        var ids: [UInt64] = []
        for i in 0..<6 { ids.append(try db.post(handle: "alice", text: "post \(i)").id) }
        let first = try db.home(handle: "alice", limit: 4)
        #expect(first.items.map(\.id) == Array(ids.reversed().prefix(4)))
        #expect(first.nextCursor == ids[2])
        let second = try db.home(handle: "alice", limit: 4, before: first.nextCursor)
        #expect(second.items.map(\.id) == [ids[1], ids[0]])
        #expect(second.nextCursor == nil)
        try db.delete(handle: "alice", tweet: ids[0])
        try db.delete(handle: "alice", tweet: ids[1])
        let only = try db.home(handle: "alice", limit: 4)
        #expect(only.items.count == 4)
        #expect(only.nextCursor == nil, "four items, no more: no cursor")
    }
}

/// SEARCH USERS ranks by follower count, ties by handle ignoring case, and counts the follows
/// of IMPORT FOLLOWS (which bypass the log) at once and after a reopen.
@Suite struct UserSearchRankingTests {
    @Test func tiesIgnoreCaseAndImportedFollowsCount() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "JUDY", name: "Judy Apple")
        try t.db.createUser(handle: "alice", name: "Alice Apple")
        #expect(try t.db.searchUsers("apple").map(\.handle) == ["alice", "JUDY"])
        try t.db.createUser(handle: "u1", name: "Apple Pie")
        try "2 1\n3 1\n".write(toFile: t.directory.path + "/edges.txt", atomically: true, encoding: .utf8)
        _ = try t.db.importFollows(path: t.directory.path + "/edges.txt")
        #expect(try t.db.searchUsers("apple").map(\.handle) == ["u1", "alice", "JUDY"])
        try t.reopen()
        #expect(try t.db.searchUsers("apple").map(\.handle) == ["u1", "alice", "JUDY"])
    }
}

/// The ids of likes' and follows' notifications are part of the id floor at open: after a
/// restart with the clock stepped back (to before the last like, after the last post), a new
/// mention must still be newer than that like in NOTIFICATIONS.
@Suite struct NotificationOrderAcrossRestartTests {
    final class Clock: @unchecked Sendable {
        // @unchecked: set by the test between calls, on its one thread.
        var now = fixedClockMilliseconds
    }

    @Test func newerNotificationStaysFirstAfterClockStepsBack() throws {
        let directory = TemporaryDirectory()
        let clock = Clock()
        var options = testOptions()
        options.wallClockMilliseconds = { clock.now }
        var db = try SocialDB.open(at: directory.path, options: options)
        try db.createUser(handle: "alice")
        try db.createUser(handle: "bob")
        let a = try db.post(handle: "alice", text: "hello")
        clock.now += 10
        try db.like(handle: "bob", tweet: a.id)
        clock.now += 10
        try db.follow("bob", "alice")
        try db.close()
        clock.now -= 19
        db = try SocialDB.open(at: directory.path, options: options)
        defer { try? db.close() }
        let mention = try db.post(handle: "bob", text: "hi @alice")
        let got = try db.notifications(handle: "alice")
        #expect(got.map(\.kind) == [.mention, .follow, .like], "newest first")
        #expect(got.first?.id == mention.id)
        #expect(got.map(\.id) == got.map(\.id).sorted(by: >), "ids newest first: \(got.map(\.id))")
    }
}
