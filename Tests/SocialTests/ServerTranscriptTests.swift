import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// The server's answers, byte for byte: the shell's transcripts (`Transcripts/*.txt`, made by
/// the shell) run through a server `Session`, in `FORMAT json` (each answer one JSON line) and
/// `FORMAT text` (each answer's lines, a line starting with `.` given one more, then `.`).
/// The session serves pages from the tweets' cached JSON and the shell's transcripts were
/// written from `Tweet` values, so a difference between the two paths shows here.
@Suite struct ServerTranscriptTests {
    @Test(arguments: [("social.txt", false), ("social.json.txt", true), ("errors.txt", false), ("errors.json.txt", true)])
    func transcriptThroughASession(_ name: String, _ json: Bool) throws {
        let source = try String(contentsOfFile: ShellTranscriptTests.directory + "/" + name, encoding: .utf8)
        let t = try TestDatabase()
        try "# follower followee\n10 11\n11 10\n12 10\nbad line\n".write(toFile: t.directory.path + "/edges.txt", atomically: true, encoding: .utf8)
        try ShellTranscriptTests.tweetLines.joined(separator: "\n").write(toFile: t.directory.path + "/tweets.jsonl", atomically: true, encoding: .utf8)
        let session = Session(db: t.db, metrics: nil)
        // The transcripts act as every user without logging in, as the embedded shell may.
        session.shell.enforcesAccounts = false
        var output: [UInt8] = []
        if !json {
            _ = session.run([.line("FORMAT text")], into: &output, outputBytesMax: 1 << 20)
            #expect(String(decoding: output, as: UTF8.self) == "format is text\n.\n")
        }

        var steps: [(input: String, expected: [String])] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("> ") {
                steps.append((String(line.dropFirst(2)), []))
            } else if !steps.isEmpty {
                steps[steps.count - 1].expected.append(String(line))
            }
        }
        var checked = 0
        for step in steps where !Shell.isMetaCommand(step.input) { // `\timing` is the shell client's
            let input = step.input.replacingOccurrences(of: "$DIR", with: t.directory.path)
            output.removeAll()
            _ = session.run([.line(input)], into: &output, outputBytesMax: 1 << 20)
            var expected = step.expected
            while expected.last == "" { expected.removeLast() }
            var wire = ""
            if !expected.isEmpty {
                if json {
                    wire = expected.joined(separator: "\n") + "\n"
                } else {
                    for line in expected { wire += (line.hasPrefix(".") ? "." : "") + line + "\n" }
                    wire += ".\n"
                }
            }
            let got = String(decoding: output, as: UTF8.self).replacingOccurrences(of: t.directory.path, with: "$DIR")
            #expect(got == wire, "\(name): > \(step.input)")
            checked += 1
        }
        #expect(checked > 50)
    }
}
