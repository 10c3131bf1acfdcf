import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// Transcript tests of the shell: `Transcripts/<name>.txt` holds input lines (`> ` then the
/// line, exactly as typed) each followed by the expected output, up to the next input line.
/// `$DIR` in a line stands for the database's directory (where the runner writes `edges.txt`
/// and `tweets.jsonl`).
/// The database runs on a fixed clock, so ids and times are the same in every run.
///
/// To regenerate after a deliberate change: `SOCIALDB_UPDATE_TRANSCRIPTS=1 swift test --filter
/// ShellTranscriptTests`, then read the diff before committing it.
@Suite struct ShellTranscriptTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Transcripts").path

    /// A reply, a retweet with its original nested, and a bad line, for `IMPORT TWEETS`.
    static let tweetLines = [
        #"{"id_str":"1050118621198921728","created_at":"Wed Oct 10 20:19:24 +0000 2018","full_text":"archived #swift tweet","user":{"id_str":"783214","screen_name":"archivist","name":"The Archivist"}}"#,
        #"{"id_str":"1050118621198921800","created_at":"Wed Oct 10 20:20:00 +0000 2018","text":"@archivist a reply","in_reply_to_status_id_str":"1050118621198921728","user":{"id_str":"7","screen_name":"u11"}}"#,
        #"{"id_str":"1050118621198922000","created_at":"Wed Oct 10 21:00:00 +0000 2018","text":"RT @archivist: archived #swift tweet","user":{"id_str":"8","screen_name":"fan"},"retweeted_status":{"id_str":"1050118621198921728","created_at":"Wed Oct 10 20:19:24 +0000 2018","full_text":"archived #swift tweet","user":{"id_str":"783214","screen_name":"archivist"}}}"#,
        #"{"id_str":"1050118621198923000","user":{"screen_name":"fan"}}"#,
    ]

    @Test(arguments: [("social.txt", false), ("social.json.txt", true), ("errors.txt", false), ("errors.json.txt", true)])
    func transcript(_ name: String, _ json: Bool) throws {
        let path = Self.directory + "/" + name
        let source = try String(contentsOfFile: path, encoding: .utf8)
        let t = try TestDatabase()
        try "# follower followee\n10 11\n11 10\n12 10\nbad line\n".write(toFile: t.directory.path + "/edges.txt", atomically: true, encoding: .utf8)
        try Self.tweetLines.joined(separator: "\n").write(toFile: t.directory.path + "/tweets.jsonl", atomically: true, encoding: .utf8)
        let shell = Shell(db: t.db, json: json)

        var steps: [(input: String, expected: [String])] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("> ") {
                steps.append((String(line.dropFirst(2)), []))
            } else if !steps.isEmpty {
                steps[steps.count - 1].expected.append(String(line))
            }
        }
        var regenerated = ""
        for step in steps {
            let input = step.input.replacingOccurrences(of: "$DIR", with: t.directory.path)
            let output = shell.execute(input)?.render(json: json).replacingOccurrences(of: t.directory.path, with: "$DIR") ?? ""
            var expected = step.expected
            while expected.last == "" { expected.removeLast() }
            #expect(output == expected.joined(separator: "\n"), "\(name): > \(step.input)")
            regenerated += "> \(step.input)\n" + (output.isEmpty ? "" : output + "\n")
        }
        if ProcessInfo.processInfo.environment["SOCIALDB_UPDATE_TRANSCRIPTS"] != nil {
            try regenerated.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// Every shell error code comes from the matching `SocialError` case, and JSON errors keep
    /// the brief's shape.
    @Test func errorCodesMapOneToOne() {
        let cases: [SocialError] = [.notFound("m"), .exists("m"), .invalid("m"), .forbidden("m"), .tooLong("m"), .rateLimited("m"),
                                    .syntax("m"), .io("m")]
        #expect(Set(cases.map(\.code)).count == cases.count)
        for error in cases {
            #expect(ErrorCode(rawValue: error.code) != nil, "\(error.code) is a shell code")
        }
    }

    /// An I/O failure under a write is reported as `io`, and what failed is never shown: the
    /// log failed, so the database answers `io` to everything (fail-stop) until it is reopened,
    /// and the reopened database has the user and at most the one uncertain post.
    @Test func ioErrorsAreReported() throws {
        let directory = TemporaryDirectory()
        let faults = FaultInjector()
        var options = testOptions()
        options.engine.faults = faults
        let db = try SocialDB.open(at: directory.path, options: options)
        let shell = Shell(db: db, json: true)
        #expect(shell.execute("USER ADD alice")?.isError == false)
        faults.add(FaultInjector.Rule(operation: .fdatasync, sticky: true, action: .fail(errno: 5)))
        let response = shell.execute("POST alice \"lost\"")?.render(json: true) ?? ""
        #expect(response.hasPrefix("{\"ok\":false,\"error\":{\"code\":\"io\""), "\(response)")
        faults.removeAll()
        let read = shell.execute("USER SHOW alice")?.render(json: true) ?? ""
        #expect(read.hasPrefix("{\"ok\":false,\"error\":{\"code\":\"io\""), "\(read)")
        #expect(read.contains("until it is reopened"), "\(read)")
        try? db.close()
        let reopened = try SocialDB.open(at: directory.path, options: testOptions())
        let alice = try reopened.user(handle: "alice")
        // The post's record may have reached the disk before its fdatasync failed; if it did,
        // it is whole (in the count and in alice's tweets), else it is absent everywhere.
        #expect(alice.tweetCount <= 1)
        #expect(try reopened.tweets(handle: "alice").items.count == alice.tweetCount)
        try reopened.close()
    }

    /// STATS reports the users and the graph (its other figures vary from run to run).
    @Test func statsShowsUsersAndGraph() throws {
        let t = try TestDatabase()
        let shell = Shell(db: t.db, json: true)
        _ = shell.execute("USER ADD a")
        _ = shell.execute("USER ADD b")
        _ = shell.execute("FOLLOW a b")
        let stats = shell.execute("STATS")?.render(json: true) ?? ""
        #expect(stats.contains("\"users\":2,\"graph\":{\"users\":2,\"edges\":1,"), "\(stats)")
        _ = shell.execute("POST b \"hello #stats\"")
        let after = shell.execute("STATS")?.render(json: true) ?? ""
        // b's post went to b's ring and a's (a follows b), and into the search index.
        #expect(after.contains("\"pushes\":2,"), "\(after)")
        #expect(after.contains("\"search\":{\"documents\":1,"), "\(after)")
        // A JSON page builds b's tweet's encoded part once (a miss), the next reads find it.
        _ = shell.execute("HOME a")
        _ = shell.execute("HOME a")
        _ = shell.execute("TWEETS b")
        let reads = shell.execute("STATS")?.render(json: true) ?? ""
        #expect(reads.contains("\"encoded_cache_entries\":1,\"encoded_cache_bytes\":"), "\(reads)")
        #expect(reads.contains("\"encoded_cache_hits\":2,\"encoded_cache_misses\":1}"), "\(reads)")
    }
}
