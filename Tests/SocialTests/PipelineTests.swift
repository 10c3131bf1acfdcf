import Social
import StorageEngine
import Testing

/// The contract of Docs/ARCHITECTURE.md ("The Social layer"): each write command is one log
/// record a consumer can decode, and concurrent writers keep the counts exact.
@Suite struct PipelineTests {
    struct Entry: Equatable {
        var kind: ValueKind
        var space: UInt8
    }

    /// The records appended since `from`: type and, for LSM batches, each entry's kind and space.
    func records(_ t: TestDatabase, from: UInt64) throws -> [(type: UInt16, entries: [Entry])] {
        var result: [(UInt16, [Entry])] = []
        let reader = try t.db.engine.log.reader(from: from)
        while try reader.withNext({ _, type, payload in
            var entries: [Entry] = []
            if type == LSMOptions().logRecordType {
                try? WriteBatch.forEachEntry(inLogPayload: payload) { _, kind, key, _ in entries.append(Entry(kind: kind, space: key[0])) }
            }
            result.append((type, entries))
        }) {}
        return result
    }

    @Test func eachCommandIsOneLogRecord() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice")
        try t.db.createUser(handle: "bob")
        var start = t.nextLSN
        let tweet = try t.db.post(handle: "alice", text: "event")
        var log = try records(t, from: start)
        #expect(log.count == 1 && log[0].type == 0x0020)
        #expect(log[0].entries == [Entry(kind: .value, space: KeySpace.counters.rawValue),
                                   Entry(kind: .value, space: KeySpace.tweets.rawValue),
                                   Entry(kind: .value, space: KeySpace.tweetsByAuthor.rawValue)])

        start = t.nextLSN
        try t.db.follow("bob", "alice")
        log = try records(t, from: start)
        // The follow notification's batch first (reads skip it until the edge exists), then the graph record.
        #expect(log.count == 2 && log[0].type == 0x0020 && log[1].type == GraphRecord.followType)
        // With the id floor of the notification's id (meta social.last-notification-id).
        #expect(log[0].entries.map(\.space) == [KeySpace.notifications.rawValue, KeySpace.notificationCauses.rawValue, KeySpace.meta.rawValue])

        start = t.nextLSN
        try t.db.retweet(handle: "bob", tweet: tweet.id)
        try t.db.delete(handle: "alice", tweet: tweet.id)
        log = try records(t, from: start)
        #expect(log.count == 2 && log.allSatisfy { $0.type == 0x0020 })
        let deletes = log[1].entries.filter { $0.kind == .deletion }.map(\.space)
        #expect(deletes.filter { $0 == KeySpace.tweets.rawValue }.count == 2, "the tweet and its retweet in one record")
        #expect(deletes.filter { $0 == KeySpace.tweetsByAuthor.rawValue }.count == 2)
    }

    @Test func eventsDecodeTheLog() throws {
        let t = try TestDatabase()
        let start = t.nextLSN
        let alice = try t.db.createUser(handle: "alice")
        let bob = try t.db.createUser(handle: "bob")
        let tweet = try t.db.post(handle: "alice", text: "hi @bob #news")
        try t.db.follow("bob", "alice")
        try t.db.like(handle: "bob", tweet: tweet.id)
        let retweet = try t.db.retweet(handle: "bob", tweet: tweet.id)
        try t.db.delete(handle: "alice", tweet: tweet.id)
        try t.db.unfollow("bob", "alice")

        var events: [SocialEvent] = []
        let reader = try t.db.engine.log.reader(from: start)
        while try reader.withNext({ _, type, payload in events += try SocialEvent.decode(type: type, payload: payload) }) {}
        let posted = TweetRecord(id: tweet.id, author: alice.id, time: tweet.createdAtMilliseconds, text: "hi @bob #news",
                                 mentions: [bob.id], hashtags: ["news"])
        let retweeted = TweetRecord(id: retweet.id, author: bob.id, time: retweet.createdAtMilliseconds, text: "", retweetOf: tweet.id)
        #expect(events == [
            .userChanged(id: alice.id), .userChanged(id: bob.id),
            .tweetCreated(posted),
            .followed(follower: 1, followee: 0),
            .liked(tweet: tweet.id, user: bob.id),
            .tweetCreated(retweeted),
            .tweetDeleted(id: tweet.id, author: alice.id), .tweetDeleted(id: retweet.id, author: bob.id),
            .unliked(tweet: tweet.id, user: bob.id),
            .unfollowed(follower: 1, followee: 0),
        ])
    }

    @Test func concurrentWritersKeepCountsExact() async throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "star")
        let tweet = try t.db.post(handle: "star", text: "popular")
        let workers = 8, perWorker = 12
        for w in 0..<workers { for i in 0..<perWorker { try t.db.createUser(handle: "w\(w)_\(i)") } }
        let db = t.db
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    for i in 0..<perWorker {
                        let handle = "w\(w)_\(i)"
                        try db.like(handle: handle, tweet: tweet.id)
                        try db.like(handle: handle, tweet: tweet.id)
                        if i % 3 == 0 { try db.retweet(handle: handle, tweet: tweet.id) }
                        try db.post(handle: handle, text: "from \(handle)")
                        try db.follow(handle, "star")
                    }
                }
            }
            try await group.waitForAll()
        }
        let after = try t.db.tweet(id: tweet.id)
        #expect(after.likeCount == workers * perWorker)
        #expect(after.retweetCount == workers * 4)
        #expect(try t.db.user(handle: "star").followerCount == workers * perWorker)
        #expect(try t.db.user(handle: "w3_0").tweetCount == 2)
        #expect(try t.db.user(handle: "w3_1").tweetCount == 1)
    }

    /// A delete touches one counter for each retweeter (their tweet counts) besides the
    /// author's and the parent's: past the change set's few counters searched in a list, each
    /// is still written once with its whole delta, and a user who retweeted and replied keeps
    /// the reply counted.
    @Test(arguments: [3, 8, 9, 40])
    func aDeleteCountsEveryRetweeterOnce(retweeters: Int) throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "author")
        let parent = try t.db.post(handle: "author", text: "parent")
        let tweet = try t.db.reply(handle: "author", to: parent.id, text: "popular")
        for i in 0..<retweeters {
            try t.db.createUser(handle: "r\(i)")
            try t.db.retweet(handle: "r\(i)", tweet: tweet.id)
            if i % 4 == 0 { try t.db.reply(handle: "r\(i)", to: tweet.id, text: "reply \(i)") }
        }
        #expect(try t.db.user(handle: "author").tweetCount == 2)
        #expect(try t.db.tweet(id: parent.id).replyCount == 1)
        try t.db.delete(handle: "author", tweet: tweet.id)
        #expect(try t.db.user(handle: "author").tweetCount == 1)
        #expect(try t.db.tweet(id: parent.id).replyCount == 0)
        for i in 0..<retweeters {
            #expect(try t.db.user(handle: "r\(i)").tweetCount == (i % 4 == 0 ? 1 : 0), "r\(i)")
        }
    }
}
