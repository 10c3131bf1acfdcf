import Social
import StorageEngine
import Testing

@Suite struct UserTests {
    @Test func createAndShow() throws {
        let t = try TestDatabase()
        let alice = try t.db.createUser(handle: "alice", name: "Alice Liddell")
        #expect(alice.handle == "alice")
        #expect(alice.name == "Alice Liddell")
        #expect(alice.followerCount == 0 && alice.followingCount == 0 && alice.tweetCount == 0)
        #expect(alice.createdAtMilliseconds == fixedClockMilliseconds)
        let bob = try t.db.createUser(handle: "@Bob_2")
        #expect(bob.handle == "Bob_2", "a leading @ is not part of the handle")
        #expect(bob.name == "Bob_2", "the display name defaults to the handle")
        #expect(bob.id > alice.id)
        #expect(try t.db.user(handle: "BOB_2") == bob, "lookups ignore case")
        #expect(try t.db.user(id: alice.id) == alice)
        #expect(try t.db.userCount() == 2)
    }

    @Test func handleRules() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "a")
        try t.db.createUser(handle: String(repeating: "z", count: 15))
        for bad in ["", "@", String(repeating: "x", count: 16), "has space", "dash-ed", "dot.ted", "émile", "@@two", "a!"] {
            t.expectRejected("invalid") { try t.db.createUser(handle: bad) }
        }
        t.expectRejected("exists") { try t.db.createUser(handle: "A") }
        t.expectRejected("exists") { try t.db.createUser(handle: "@" + String(repeating: "Z", count: 15)) }
        t.expectRejected("not_found") { _ = try t.db.user(handle: "nobody") }
        t.expectRejected("invalid") { _ = try t.db.user(handle: "no body") }
        #expect(try t.db.userCount() == 2)
    }

    @Test func updateProfile() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "carol")
        let updated = try t.db.updateUser(handle: "CAROL", name: "Carol C", bio: "likes #swift")
        #expect(updated.name == "Carol C" && updated.bio == "likes #swift")
        #expect(try t.db.user(handle: "carol") == updated)
        t.expectRejected("too_long") { try t.db.updateUser(handle: "carol", bio: String(repeating: "b", count: 161)) }
        t.expectRejected("too_long") { try t.db.updateUser(handle: "carol", name: String(repeating: "n", count: 51)) }
        t.expectRejected("invalid") { try t.db.updateUser(handle: "carol", name: "") }
        t.expectRejected("not_found") { try t.db.updateUser(handle: "dave", name: "Dave") }
        t.expectRejected("too_long") { try t.db.createUser(handle: "erin", name: String(repeating: "n", count: 51)) }
        #expect(try t.db.user(handle: "carol") == updated)
    }

    @Test func survivesReopen() throws {
        let t = try TestDatabase()
        let alice = try t.db.createUser(handle: "alice")
        let tweet = try t.db.post(handle: "alice", text: "before")
        try t.reopen()
        #expect(try t.db.user(handle: "alice").tweetCount == 1)
        #expect(try t.db.tweet(id: tweet.id).text == "before")
        // The clock is fixed at the same millisecond: new ids must still be above the stored ones.
        let bob = try t.db.createUser(handle: "bob")
        #expect(bob.id > tweet.id && bob.id > alice.id)
        let later = try t.db.post(handle: "bob", text: "after")
        #expect(later.id > bob.id)
    }
}
