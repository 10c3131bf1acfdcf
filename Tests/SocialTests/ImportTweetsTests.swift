import Social
import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ImportTweetsTests {
    static let first: UInt64 = 1_050_118_621_198_921_728    // Wed Oct 10 20:19:24 +0000 2018
    static let reply: UInt64 = 1_050_118_621_198_921_800
    static let nested: UInt64 = 1_050_118_621_198_900_000
    static let retweet: UInt64 = 1_050_118_621_198_922_000

    /// Good and bad lines: bad JSON (2), missing created_at (3), over 1,000 characters (5),
    /// a duplicate id (6), a blank line (8), no user (9).
    static let fixture: [String] = [
        #"{"id_str":"\#(first)","created_at":"Wed Oct 10 20:19:24 +0000 2018","full_text":"Hello #swift world &amp; friends @bob","user":{"id_str":"11","screen_name":"alice","name":"Alice A."},"entities":{"hashtags":[{"text":"swift"}],"user_mentions":[{"screen_name":"bob"}],"urls":[]}}"#,
        #"{"id_str":"1", "#,
        #"{"id_str":"2","text":"no time","user":{"id_str":"11","screen_name":"alice"}}"#,
        #"{"id_str":"\#(reply)","created_at":"Wed Oct 10 20:20:00 +0000 2018","text":"@alice agreed","in_reply_to_status_id_str":"\#(first)","user":{"id_str":"12","screen_name":"bob","name":"Bob"}}"#,
        #"{"id_str":"3","created_at":"Wed Oct 10 20:20:00 +0000 2018","text":"\#(String(repeating: "x", count: 1001))","user":{"id_str":"11","screen_name":"alice"}}"#,
        #"{"id_str":"\#(first)","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"again","user":{"id_str":"11","screen_name":"alice"}}"#,
        #"{"id_str":"\#(retweet)","created_at":"Wed Oct 10 21:00:00 +0000 2018","text":"RT @dave: old #news","user":{"id_str":"13","screen_name":"carol"},"retweeted_status":{"id_str":"\#(nested)","created_at":"Tue Oct 09 08:00:00 +0000 2018","text":"old #news","user":{"id_str":"14","screen_name":"dave-x","name":"Dave"}}}"#,
        "",
        #"{"id_str":"4","created_at":"Wed Oct 10 20:20:00 +0000 2018","text":"who"}"#,
    ]

    func writeFixture(in directory: TemporaryDirectory) -> String {
        let path = directory.path + "/tweets.jsonl"
        let text = Self.fixture.joined(separator: "\n") + "\n"
        let file = fopen(path, "w")!
        fputs(text, file)
        fclose(file)
        return path
    }

    @Test func importsGoodLinesAndReportsBadOnes() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "Alice")
        try t.db.createUser(handle: "zed")
        try t.db.follow("zed", "alice")
        let files = TemporaryDirectory("fixture")
        let path = writeFixture(in: files)
        let report = try t.db.importTweets(path: path)
        #expect(report.lines == 9)
        #expect(report.blankLines == 1)
        #expect(report.tweetsImported == 2)
        #expect(report.retweetsImported == 1)
        #expect(report.nestedImported == 1)
        #expect(report.alreadyPresent == 0)
        #expect(report.usersCreated == 3, "bob, carol and dave's fallback handle")
        #expect(report.usersFound == 1, "alice existed")
        #expect(report.badLines == 5)
        #expect(report.badLineSamples.map(\.line) == [2, 3, 5, 6, 9])
        #expect(report.badLineSamples[0].reason == "not valid JSON")
        #expect(report.badLineSamples[1].reason == "missing created_at")
        #expect(report.badLineSamples[2].reason.contains("1001 characters"))
        #expect(report.badLineSamples[3].reason == "duplicate id \(Self.first) (first on line 1)")
        #expect(report.badLineSamples[4].reason == "missing user")

        let tweet = try t.db.tweet(id: Self.first)
        #expect(tweet.authorHandle == "Alice")
        #expect(tweet.text == "Hello #swift world & friends @bob")
        #expect(tweet.createdAtMilliseconds == 1_539_202_764_000)
        #expect(tweet.mentions == ["bob"], "mentions resolve to users the file creates")
        #expect(tweet.replyCount == 1)
        let reply = try t.db.tweet(id: Self.reply)
        #expect(reply.replyTo == Self.first && reply.conversationID == Self.first)
        let retweet = try t.db.tweet(id: Self.retweet)
        #expect(retweet.authorHandle == "carol" && retweet.retweetOf == Self.nested)
        #expect(retweet.retweeted?.authorHandle == "t" + String(14, radix: 36), "an invalid screen_name falls back to t + base-36 id")
        #expect(try t.db.tweet(id: Self.nested).retweetCount == 1)

        // The same pipeline as posts: timelines, search, notifications, author index.
        #expect(try t.db.home(handle: "zed").items.map(\.id) == [Self.first])
        #expect(try t.db.home(handle: "bob").items.map(\.id) == [Self.reply])
        #expect(try t.db.search("#swift").items.map(\.id) == [Self.first])
        #expect(try t.db.search("agreed").items.map(\.id) == [Self.reply])
        #expect(try t.db.tweets(handle: "carol").items.map(\.id) == [Self.retweet])
        #expect(try t.db.tweets(handle: "alice").items.map(\.id) == [Self.first])
        let aliceNotes = try t.db.notifications(handle: "alice")
        #expect(aliceNotes.map(\.kind) == [.reply, .follow], "zed followed before the import; ordered by id")
        #expect(try t.db.notifications(handle: "bob").map(\.kind) == [.mention])
        #expect(try t.db.user(handle: "alice").tweetCount == 1)

        // New ids stay above Twitter's, with the wall clock as their time, also after reopening.
        let post = try t.db.post(handle: "zed", text: "after the import")
        #expect(post.id > Self.retweet)
        #expect(post.createdAtMilliseconds == fixedClockMilliseconds)
        try t.reopen()
        let later = try t.db.post(handle: "zed", text: "after reopening")
        #expect(later.id > post.id)
        #expect(later.createdAtMilliseconds == fixedClockMilliseconds)
        #expect(try t.db.tweet(id: Self.first).createdAtMilliseconds == 1_539_202_764_000)
        #expect(try t.db.search("#swift").items.map(\.id) == [Self.first])
        #expect(try t.db.home(handle: "zed").items.map(\.id) == [later.id, post.id, Self.first])

        // Rerunning finds every tweet stored: nothing new, the same bad lines.
        let again = try t.db.importTweets(path: path)
        #expect(again.alreadyPresent == 3)
        #expect(again.tweetsImported + again.retweetsImported + again.nestedImported == 0)
        #expect(again.usersCreated == 0 && again.badLines == 5)
    }

    @Test func retweetOfARetweetIsARetweetOfTheOriginal() throws {
        let t = try TestDatabase()
        let files = TemporaryDirectory("fixture")
        let path = files.path + "/rt.jsonl"
        let original = #"{"id_str":"100","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"first","user":{"id_str":"1","screen_name":"x"}}"#
        let retweet = #"{"id_str":"200","created_at":"Wed Oct 10 20:19:25 +0000 2018","text":"RT","user":{"id_str":"2","screen_name":"y"},"retweeted_status":\#(original)}"#
        let again = #"{"id_str":"300","created_at":"Wed Oct 10 20:19:26 +0000 2018","text":"RT","user":{"id_str":"3","screen_name":"z"},"retweeted_status":\#(retweet)}"#
        let file = fopen(path, "w")!
        fputs(again + "\n" + retweet + "\n", file)
        fclose(file)
        let report = try t.db.importTweets(path: path)
        #expect(report.badLines == 0 && report.retweetsImported == 2 && report.nestedImported == 1)
        #expect(try t.db.tweet(id: 300).retweetOf == 100)
        #expect(try t.db.tweet(id: 100).retweetCount == 2)
        #expect(try t.db.tweet(id: 100).createdAtMilliseconds == 1_539_202_764_000)
    }

    @Test func missingFileIsNotFound() throws {
        let t = try TestDatabase()
        t.expectRejected("not_found") { _ = try t.db.importTweets(path: t.directory.path + "/nope.jsonl") }
    }
}
