import Foundation
import Social
import StorageEngine
import Synchronization
import Testing

/// Group commit through the Social layer: a write releases the writer lock once its record is
/// appended and applied, and waits for the log outside it, so concurrent writers share
/// fdatasyncs; and no call answers with a write the log has not acknowledged.
/// The log's fdatasyncs are slowed down by the fault injector (a slow disk) so the concurrency
/// is the same on any machine.
@Suite struct GroupCommitTests {
    static func slowLog(delayMicroseconds: UInt32) -> (SocialOptions, FaultInjector) {
        let faults = FaultInjector()
        faults.add(FaultInjector.Rule(operation: .fdatasync, pathContains: "/log/", sticky: true,
                                      action: .delay(microseconds: delayMicroseconds)))
        var options = testOptions()
        options.engine.sync = .always
        options.engine.faults = faults
        return (options, faults)
    }

    @Test func concurrentPostsShareFdatasyncsAndSurviveReopen() throws {
        let directory = TemporaryDirectory()
        let (options, _) = Self.slowLog(delayMicroseconds: 3_000)
        let db = try SocialDB.open(at: directory.path, options: options)
        let writers = 8, postsEach = 12
        for w in 0..<writers { try db.createUser(handle: "w\(w)") }
        try db.createUser(handle: "reader")
        for w in 0..<writers { try db.follow("reader", "w\(w)") }
        let before = db.engine.log.statistics.fdatasyncs
        let failures = Mutex<[String]>([])
        // One thread per writer (a dispatch pool would run only as many as there are cores).
        let done = DispatchGroup()
        for w in 0..<writers {
            done.enter()
            Thread {
                for i in 0..<postsEach {
                    do { try db.post(handle: "w\(w)", text: "post \(i) of w\(w)") } catch {
                        failures.withLock { $0.append("w\(w) post \(i): \(error)") }
                    }
                }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let posts = writers * postsEach
        let syncs = db.engine.log.statistics.fdatasyncs - before
        // One writer at a time would take one fdatasync per post; sharing takes far fewer.
        #expect(syncs < UInt64(posts / 2), "\(syncs) fdatasyncs for \(posts) concurrent posts")
        for w in 0..<writers {
            #expect(try db.user(handle: "w\(w)").tweetCount == postsEach)
        }
        #expect(try db.home(handle: "reader", limit: posts).items.count == posts)
        try db.close()

        let reopened = try SocialDB.open(at: directory.path, options: testOptions())
        for w in 0..<writers {
            let page = try reopened.tweets(handle: "w\(w)", limit: postsEach + 1)
            #expect(page.items.map(\.text) == (0..<postsEach).reversed().map { "post \($0) of w\(w)" })
        }
        #expect(try reopened.home(handle: "reader", limit: posts).items.count == posts)
        try reopened.close()
    }

    /// A read that runs while a post is applied but not yet durable waits for the log: when it
    /// answers with the post, the post's record is durable.
    @Test func readsNeverAnswerWithAnUnacknowledgedWrite() throws {
        let directory = TemporaryDirectory()
        let (options, _) = Self.slowLog(delayMicroseconds: 150_000)
        let db = try SocialDB.open(at: directory.path, options: options)
        try db.createUser(handle: "alice")
        let log = db.engine.log
        let appendedBefore = log.appendedSequenceNumber
        let posted = DispatchSemaphore(value: 0)
        let poster = Thread {
            _ = try? db.post(handle: "alice", text: "slow disk")
            posted.signal()
        }
        poster.start()
        // Wait until the post's record is appended (and so applied: it is applied under the
        // writer lock right after the append, and the read below waits for that lock's holder
        // only through the log).
        while log.appendedSequenceNumber == appendedBefore { usleep(100) }
        var answeredWithPost = 0
        for _ in 0..<3 {
            let page = try db.tweets(handle: "alice")
            if page.items.contains(where: { $0.text == "slow disk" }) {
                answeredWithPost += 1
                #expect(log.acknowledgedSequenceNumber > appendedBefore,
                        "a read answered with the post before its record was durable")
            }
            let home = try db.home(handle: "alice")
            if home.items.contains(where: { $0.text == "slow disk" }) {
                #expect(log.acknowledgedSequenceNumber > appendedBefore)
            }
        }
        // The first read may run between the append and the apply; the later ones, after it
        // waited for the fdatasync, see the post.
        #expect(answeredWithPost > 0)
        posted.wait()
        #expect(try db.tweets(handle: "alice").items.map(\.text) == ["slow disk"])
        try db.close()
    }

    /// A post waits for the LSN read right after it made its answer, not for the last one
    /// appended when it returns (`SocialDB.writing(_:answer:)`): each post still returns only
    /// once its own record is durable, whatever the other posters append meanwhile, and its
    /// answer holds what it wrote.
    @Test func concurrentPostsReturnOnlyOnceTheirOwnRecordIsDurable() throws {
        let directory = TemporaryDirectory()
        let (options, _) = Self.slowLog(delayMicroseconds: 2_000)
        let db = try SocialDB.open(at: directory.path, options: options)
        let writers = 8, postsEach = 10
        for w in 0..<writers { try db.createUser(handle: "p\(w)") }
        let log = db.engine.log
        let failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for w in 0..<writers {
            done.enter()
            Thread {
                for i in 0..<postsEach {
                    // The post's record is appended after this reading.
                    let before = log.appendedSequenceNumber
                    do {
                        let tweet = try db.post(handle: "p\(w)", text: "post \(i) of p\(w) @p\((w + 1) % writers)")
                        let durable = log.durableSequenceNumber
                        if durable <= before { failures.withLock { $0.append("p\(w) post \(i) returned at durable \(durable) <= \(before)") } }
                        if tweet.mentions != ["p\((w + 1) % writers)"] { failures.withLock { $0.append("p\(w) post \(i): mentions \(tweet.mentions)") } }
                    } catch {
                        failures.withLock { $0.append("p\(w) post \(i): \(error)") }
                    }
                }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        try db.close()
        let reopened = try SocialDB.open(at: directory.path, options: testOptions())
        for w in 0..<writers {
            #expect(try reopened.user(handle: "p\(w)").tweetCount == postsEach)
        }
        try reopened.close()
    }

    /// Mentions are resolved through the users' handle cache, which keeps only handles that
    /// exist: a mention of a handle nobody has is no mention, and once the user is created the
    /// next post's mention of it is one.
    @Test func mentionOfAUserCreatedLaterResolves() throws {
        let directory = TemporaryDirectory()
        let db = try SocialDB.open(at: directory.path, options: testOptions())
        try db.createUser(handle: "alice")
        #expect(try db.post(handle: "alice", text: "hi @Bob").mentions.isEmpty)
        try db.createUser(handle: "bob")
        #expect(try db.post(handle: "alice", text: "hi @Bob").mentions == ["bob"])
        #expect(try db.post(handle: "alice", text: "hi @BOB and @bob").mentions == ["bob"])
        try db.close()
    }
}
