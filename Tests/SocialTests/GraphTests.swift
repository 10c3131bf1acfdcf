import Social
import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct FollowTests {
    @Test func followAndUnfollow() throws {
        let t = try TestDatabase()
        for handle in ["alice", "bob", "carol"] { try t.db.createUser(handle: handle) }
        #expect(try t.db.follow("bob", "alice"))
        #expect(try t.db.follow("carol", "@Alice"))
        let before = t.nextLSN
        #expect(try t.db.follow("bob", "alice") == false, "idempotent")
        #expect(t.nextLSN == before, "a follow that changes nothing writes nothing")
        #expect(try t.db.follows("bob", "alice") && !t.db.follows("alice", "bob"))
        #expect(try t.db.user(handle: "alice").followerCount == 2)
        #expect(try t.db.user(handle: "bob").followingCount == 1)
        #expect(try t.db.followers(handle: "alice").items.map(\.handle) == ["bob", "carol"])
        #expect(try t.db.following(handle: "carol").items.map(\.handle) == ["alice"])
        t.expectRejected("invalid") { try t.db.follow("bob", "BOB") }
        t.expectRejected("not_found") { try t.db.follow("bob", "zed") }
        t.expectRejected("invalid") { try t.db.follow("b ob", "alice") }
        #expect(try t.db.unfollow("bob", "alice"))
        #expect(try t.db.unfollow("bob", "alice") == false)
        #expect(try t.db.followers(handle: "alice").items.map(\.handle) == ["carol"])
        try t.reopen()
        #expect(try t.db.followers(handle: "alice").items.map(\.handle) == ["carol"], "follows survive a reopen")
        #expect(try t.db.user(handle: "alice").followerCount == 1)
    }

    @Test func pages() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "star")
        var fans: [String] = []
        for i in 0..<5 {
            fans.append("fan\(i)")
            try t.db.createUser(handle: "fan\(i)")
            try t.db.follow("fan\(i)", "star")
        }
        let first = try t.db.followers(handle: "star", limit: 2)
        #expect(first.items.map(\.handle) == ["fan0", "fan1"])
        let second = try t.db.followers(handle: "star", limit: 2, after: first.nextCursor)
        #expect(second.items.map(\.handle) == ["fan2", "fan3"])
        let third = try t.db.followers(handle: "star", limit: 2, after: second.nextCursor)
        #expect(third.items.map(\.handle) == ["fan4"] && third.nextCursor == nil)
        t.expectRejected("invalid") { _ = try t.db.followers(handle: "star", limit: 2, after: 42) }
        t.expectRejected("invalid") { _ = try t.db.following(handle: "star", limit: 1001) }
    }

    @Test func importEdgeList() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "u1", name: "existing one")
        try t.db.createUser(handle: "alice")
        let path = t.directory.path + "/edges.txt"
        let text = "# a comment\n1 2\n2 1\n3 1\nnot an edge\n3 3\n1 2\n"
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let report = try t.db.importFollows(path: path)
        #expect(report.lines == 7 && report.commentLines == 1 && report.badLines == 1)
        #expect(report.badLineSamples.first?.line == 5)
        #expect(report.usersCreated == 2 && report.usersReused == 1)
        #expect(report.graphEdges == 3, "the self-follow and the duplicate are dropped")
        #expect(try t.db.user(handle: "u1").name == "existing one")
        #expect(try t.db.followers(handle: "u1").items.map(\.handle) == ["u2", "u3"])
        #expect(try t.db.following(handle: "u1").items.map(\.handle) == ["u2"])
        // The graph keeps working after the bulk path, and both survive a reopen.
        try t.db.follow("alice", "u3")
        try t.reopen()
        #expect(try t.db.user(handle: "u3").followerCount == 1)
        #expect(try t.db.user(handle: "u1").followerCount == 2)
        // Importing again finds every user and adds nothing.
        let again = try t.db.importFollows(path: path)
        #expect(again.usersCreated == 0 && again.graphEdges == 4)
        t.expectRejected("not_found") { _ = try t.db.importFollows(path: t.directory.path + "/missing.txt") }
    }
}
