import Social
import StorageEngine
import Testing
@testable import socialdb

/// The server's direct answers to `HOME` and `TWEETS` (`Session.appendPageRead`) against the
/// general way (`Shell.execute`, the answer's JSON), byte for byte, on pages with retweets,
/// quotes, deleted tweets, cursors and errors.
@Suite struct PageReadsTests {
    @Test func thePlainFormIsParsedAndEverythingElseIsLeftToTheShell() {
        typealias R = Session.PageRead
        #expect(Session.parsePageRead("HOME alice") == R(verb: .home, handle: "alice"))
        #expect(Session.parsePageRead("  home\t@Alice  LIMIT 10 ") == R(verb: .home, handle: "@Alice", limit: 10))
        #expect(Session.parsePageRead("Tweets bob before 123 limit 007") == R(verb: .tweets, handle: "bob", limit: 7, before: 123))
        #expect(Session.parsePageRead("TWEETS bob BEFORE 0") == R(verb: .tweets, handle: "bob", before: 0))
        #expect(Session.parsePageRead("HOME x LIMIT 999999999999999999") == R(verb: .home, handle: "x", limit: 999_999_999_999_999_999))
        for line in ["", "   ", "HOME", "HOMES alice", "HOM alice", "TWEET 123", "HOME \"alice\"", "HOME alice LIMIT",
                     "HOME alice LIMIT ten", "HOME alice LIMIT -1", "HOME alice LIMIT +1", "HOME alice LIMIT 1 LIMIT 2",
                     "HOME alice BEFORE 1 BEFORE 2", "HOME alice AFTER 1", "HOME alice LIMIT 1234567890123456789",
                     "HOME alice OFFSET 10", "HOME alice extra", "-- HOME alice", "\\timing", "POST alice HOME"] {
            #expect(Session.parsePageRead(line) == nil, "\(line)")
        }
    }

    @Test func directAnswersAreTheShellsAnswersByteForByte() throws {
        let t = try TestDatabase()
        let db = t.db
        for handle in ["alice", "bob", "carol", "Dave_2"] { _ = try db.createUser(handle: handle) }
        _ = try db.follow("alice", "bob")
        _ = try db.follow("alice", "carol")
        _ = try db.follow("bob", "alice")
        var ids: [UInt64] = []
        for i in 0..<30 {
            let author = ["alice", "bob", "carol", "Dave_2"][i % 4]
            ids.append(try db.post(handle: author, text: "tweet \(i) with \"quotes\", a \\ and ünïcödé #tag\(i % 3) @bob").id)
        }
        ids.append(try db.retweet(handle: "alice", tweet: ids[1]).id)
        ids.append(try db.quote(handle: "bob", tweet: ids[2], text: "quoting \n a line").id)
        ids.append(try db.retweet(handle: "carol", tweet: ids[5]).id)
        _ = try db.like(handle: "carol", tweet: ids[4])
        _ = try db.reply(handle: "carol", to: ids[0], text: "a reply")
        try db.delete(handle: "bob", tweet: ids[5]) // carol's retweet of it goes too
        try db.delete(handle: "alice", tweet: ids[8])

        let session = Session(db: db, metrics: nil)
        var lines: [String] = []
        for verb in ["HOME", "TWEETS", "home", "Tweets"] {
            for handle in ["alice", "@bob", "CAROL", "dave_2", "nobody", "bad-handle!"] {
                lines.append("\(verb) \(handle)")
                lines.append("\(verb) \(handle) LIMIT 3")
                lines.append("\(verb)\t\(handle)  limit 1 ")
                lines.append("\(verb) \(handle) LIMIT 5 BEFORE \(ids[20])")
                lines.append("\(verb) \(handle) BEFORE \(ids[3]) LIMIT 2")
                lines.append("\(verb) \(handle) BEFORE 1")
                lines.append("\(verb) \(handle) LIMIT 0")
                lines.append("\(verb) \(handle) LIMIT 1001")
                lines.append("\(verb) \(handle) LIMIT 99999999999")
                lines.append("\(verb) \(handle) LIMIT 999999999999999999")
                lines.append("\(verb) \(handle) LIMIT 9223372036854775807")
                lines.append("\(verb) \(handle) LIMIT 2 LIMIT 3")
                lines.append("\(verb) \(handle) LIMIT x")
            }
        }
        var direct = 0
        for line in lines {
            var fast: [UInt8] = [1, 2, 3]
            let answered = session.appendPageRead(line, into: &fast)
            var general: [UInt8] = [1, 2, 3]
            if let response = session.shell.execute(line) {
                response.appendJSON(to: &general)
                general.append(10)
            }
            if answered {
                direct += 1
                #expect(String(decoding: fast, as: UTF8.self) == String(decoding: general, as: UTF8.self), "\(line)")
                #expect(general.starts(with: [1, 2, 3, UInt8(ascii: "{")]) && general.count > 20)
            } else {
                #expect(fast == [1, 2, 3], "\(line): appended before leaving it to the shell")
                #expect(String(decoding: general, as: UTF8.self).hasPrefix("\u{1}\u{2}\u{3}{\"ok\":false"), "\(line): a plain read that succeeds is answered directly")
            }
            // And through the session, as the server runs a batch.
            var batch: [UInt8] = []
            _ = session.run([.line(line)], into: &batch, outputBytesMax: 1 << 20)
            #expect(batch == Array(general.dropFirst(3)), "\(line)")
        }
        #expect(direct == 4 * 4 * 6) // 4 verbs x 4 users x the 6 lines that succeed
    }

    /// A text connection answers pages in the human form: the direct path is JSON only.
    @Test func aTextSessionAnswersPagesTheGeneralWay() throws {
        let t = try TestDatabase()
        _ = try t.db.createUser(handle: "alice")
        _ = try t.db.post(handle: "alice", text: "hello")
        let session = Session(db: t.db, metrics: nil)
        var output: [UInt8] = []
        _ = session.run([.line("FORMAT text")], into: &output, outputBytesMax: 1 << 20)
        var page: [UInt8] = []
        #expect(!session.appendPageRead("HOME alice", into: &page))
        #expect(page.isEmpty)
        _ = session.run([.line("TWEETS alice")], into: &page, outputBytesMax: 1 << 20)
        let text = String(decoding: page, as: UTF8.self)
        #expect(text.contains("hello") && text.hasSuffix("\n.\n") && !text.contains("{\"ok\""))
    }

    /// Which lines may run on an event loop: reads always, the small writes only when asked,
    /// and never AUTH (a password hash), DELETE, IMPORT or USER.
    @Test func eventLoopLinesAreReadsAndWhenAskedTheSmallWrites() {
        func inline(_ line: String, writes: Bool) -> Bool { Session.runsOnEventLoop(.line(line), writes: writes) }
        for read in ["HOME a", "tweets a LIMIT 3", "SEARCH x", "  FOLLOWERS a", "", "-- note", "format text"] {
            #expect(inline(read, writes: false) && inline(read, writes: true), "\(read)")
        }
        for write in ["POST a \"x\"", "post a \"x\"", "REPLY a 1 \"x\"", "QUOTE a 1 \"x\"", "RETWEET a 1", "UNRETWEET a 1",
                      "LIKE a 1", "unlike a 1", "FOLLOW a b", "UNFOLLOW a b"] {
            #expect(!inline(write, writes: false) && inline(write, writes: true), "\(write)")
        }
        for other in ["AUTH a pw", "DELETE a 1", "IMPORT FOLLOWS /tmp/x", "USER ADD a", "PASSWORD a b", "CHECKPOINT", "POSTS a", "POS a"] {
            #expect(!inline(other, writes: true), "\(other)")
        }
    }
}
