import Social
import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the code of Docs/EMBEDDING.md, section by section, and checks what the guide says it
/// does. When the API changes, this fails until the guide is brought along.
@Suite struct GuideTests {
    @Test func theGuideRunsAsWritten() throws {
        let directory = TemporaryDirectory("guide")

        // Open and close.
        var options = SocialDB.Options()
        options.sync = .always
        options.timelineCapacity = 800
        options.celebrityThreshold = 10_000
        options.engine.ioBackend = .posix
        let db = try SocialDB.open(at: directory.path + "/socialdb", options: options)
        defer { try? db.close() }

        // Errors.
        var caught = ""
        do {
            _ = try db.post(handle: "nobody", text: "hi")
        } catch .notFound(let message) {
            caught = message
        } catch {
            Issue.record("unexpected \(error.code) \(error)")
        }
        #expect(caught == "no user @nobody")

        // Users, tweets, likes and retweets.
        let alice = try db.createUser(handle: "alice", name: "Alice")
        _ = try db.createUser(handle: "bob")
        let bob = try db.updateUser(handle: "bob", bio: "I read everything")
        #expect(alice.name == "Alice" && bob.bio == "I read everything")

        let hello = try db.post(handle: "alice", text: "hello #swift @bob https://swift.org")
        #expect(hello.hashtags == ["swift"] && hello.mentions == ["bob"] && hello.urls == ["https://swift.org"])
        let answer = try db.reply(handle: "bob", to: hello.id, text: "hi alice")
        _ = try db.like(handle: "bob", tweet: hello.id)
        _ = try db.like(handle: "bob", tweet: hello.id)
        _ = try db.retweet(handle: "bob", tweet: hello.id)
        _ = try db.quote(handle: "bob", tweet: hello.id, text: "worth reading")
        let now = try db.tweet(id: hello.id)
        #expect(now.likeCount == 1 && now.retweetCount == 1 && now.replyCount == 1 && now.quoteCount == 1)
        let conversation = try db.thread(id: answer.id)
        #expect(conversation.map(\.id) == [hello.id, answer.id])

        // Follows and timelines (before the delete, so there is something to page through).
        #expect(try db.follow("bob", "alice"))
        #expect(try !db.follow("bob", "alice"))
        #expect(try db.follows("bob", "alice"))
        for i in 0..<45 { _ = try db.post(handle: "alice", text: "tweet \(i)") }
        var page = try db.home(handle: "bob", limit: 20)
        var seen = page.items.count
        while let cursor = page.nextCursor {
            page = try db.home(handle: "bob", limit: 20, before: cursor)
            seen += page.items.count
        }
        // alice's 46 tweets and bob's reply and quote: bob's retweet of `hello` is not shown again,
        // since an original appears at most once (the brief's rule).
        #expect(seen == 48)
        let own = try db.tweets(handle: "alice", limit: 20)
        #expect(own.items.count == 20 && own.nextCursor != nil)
        let fans = try db.followers(handle: "alice", limit: 100)
        #expect(fans.items.map(\.handle) == ["bob"])

        // Search, users by prefix, trends, notifications.
        let found = try db.search("#swift OR @bob -spam", limit: 20)
        #expect(found.items.contains { $0.id == hello.id })
        let people = try db.searchUsers("al")
        #expect(people.map(\.handle) == ["alice"])
        let tags = try db.trends(limit: 10)
        #expect(tags.contains { $0.tag == "#swift" })
        let inbox = try db.notifications(handle: "alice", limit: 50)
        #expect(Set(inbox.map(\.kind)) == [.reply, .like, .retweet, .quote, .follow])

        // The delete: gone everywhere before it returns.
        try db.delete(handle: "alice", tweet: hello.id)
        #expect(throws: SocialError.self) { try db.tweet(id: hello.id) }
        #expect(try !db.search("#swift", limit: 20).items.contains { $0.id == hello.id })
        #expect(try !db.home(handle: "bob", limit: 800).items.contains { $0.id == hello.id || $0.retweetOf == hello.id })
        #expect(try db.notifications(handle: "alice", limit: 50).allSatisfy { $0.kind == .follow || $0.tweet?.id != hello.id })

        // Bulk import: a small edge list in the SNAP shape (a comment, then "follower followee").
        let edges = directory.path + "/edges.txt"
        let text = "% a ring of five\n1 2\n2 3\n3 4\n4 5\n5 1\nnot an edge\n"
        let file = fopen(edges, "w")!
        fputs(text, file)
        fclose(file)
        var phases = Set<String>()
        let graph = try db.importFollows(path: edges, symmetric: true) { progress in phases.insert(progress.phase) }
        #expect(graph.usersCreated == 5 && graph.badLines == 1)
        #expect(try db.follows("u1", "u2") && db.follows("u2", "u1"))
        #expect(!phases.isEmpty)
    }
}
