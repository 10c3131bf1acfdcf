import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// Random and mutated command lines fed to `Shell.execute` on a small database: no crash, no
/// hang, and a rejected command changes nothing (the log's next LSN, the user and edge counts,
/// and the tweet counts of the users are the same before and after it). Seeded: the seed is
/// printed; `SOCIALDB_SEED=<seed>` replays a run, `SOCIALDB_FUZZ_LINES` sets its length.
@Suite struct ShellFuzzTests {
    /// What any change to the data moves.
    struct Fingerprint: Equatable, CustomStringConvertible {
        var nextLSN: UInt64
        var users: Int
        var edges: Int
        var tweetCounts: [Int]

        var description: String { "LSN \(nextLSN), \(users) users, \(edges) edges, tweets \(tweetCounts)" }
    }

    static func fingerprint(_ db: SocialDB, handles: [String]) -> Fingerprint {
        Fingerprint(nextLSN: db.engine.log.nextSequenceNumber, users: (try? db.userCount()) ?? -1,
                    edges: db.engine.graph.statistics().edges,
                    tweetCounts: handles.map { (try? db.user(handle: $0).tweetCount) ?? -1 })
    }

    @Test(.timeLimit(.minutes(3))) func randomAndMutatedLines() throws {
        let seed = TestRandom.seed()
        let count = environmentValue("SOCIALDB_FUZZ_LINES", default: 3000)
        print("ShellFuzzTests seed \(seed), \(count) lines")
        var random = TestRandom(seed: seed)
        let directory = TemporaryDirectory("fuzz")
        var options = testOptions()
        options.sync = .off
        let db = try SocialDB.open(at: directory.path + "/db", options: options)
        defer { try? db.close() }
        let edges = directory.path + "/edges.txt"
        try "1 2\n2 3\nnot an edge\n".write(toFile: edges, atomically: true, encoding: .utf8)
        let shell = Shell(db: db, json: random.chance(0.5))
        let handles = ["alice", "bob", "carol", "u1", "u2", "u3"]
        for h in handles.prefix(3) { #expect(shell.execute("USER ADD \(h)")?.isError == false) }
        var tweetIDs: [String] = []
        for (i, h) in handles.prefix(3).enumerated() {
            if case .tweet(let tweet)? = shell.execute("POST \(h) \"tweet \(i) #tag @alice\"")?.fields?.first?.1 {
                tweetIDs.append(String(tweet.id))
            }
        }
        #expect(tweetIDs.count == 3)

        func anyID(_ random: inout TestRandom) -> String {
            random.chance(0.8) ? random.pick(tweetIDs) : random.pick(["0", "1", "-1", "18446744073709551615", "18446744073709551616", "abc", "1e3", ""])
        }
        func anyHandle(_ random: inout TestRandom) -> String {
            random.chance(0.8) ? random.pick(handles) : random.pick(["@alice", "ALICE", "nobody", "", "a b", "toolonghandle_123", "é", "@"])
        }
        let texts = ["hi", "\"quoted text\"", "#swift and @bob", "\"\"", "\"  \"", "\"a \\\"b\\\" c\"", "\"line\\nbreak\"",
                     String(repeating: "x", count: 281), "https://x.org", "--", "\"\\q\"", "\"open"]
        func template(_ random: inout TestRandom) -> String {
            let h = anyHandle(&random), id = anyID(&random), text = random.pick(texts)
            let limit = random.pick(["", " LIMIT 1", " LIMIT 0", " LIMIT 1001", " LIMIT x", " LIMIT", " BEFORE \(id)", " AFTER \(id)", " LIMIT 2 LIMIT 3"])
            return random.pick([
                "USER ADD \(h) \(text)", "USER SHOW \(h)", "USER SET \(h) name \(text)", "USER SET \(h) bio \(text)", "USER SET \(h) age 3",
                "POST \(h) \(text)", "REPLY \(h) \(id) \(text)", "QUOTE \(h) \(id) \(text)", "RETWEET \(h) \(id)", "UNRETWEET \(h) \(id)",
                "LIKE \(h) \(id)", "UNLIKE \(h) \(id)", "DELETE \(h) \(id)", "TWEET \(id)", "THREAD \(id)",
                "FOLLOW \(h) \(anyHandle(&random))", "UNFOLLOW \(h) \(anyHandle(&random))", "FOLLOWERS \(h)\(limit)", "FOLLOWING \(h)\(limit)",
                "HOME \(h)\(limit)", "TWEETS \(h)\(limit)", "SEARCH \(random.pick(["#tag", "tweet -0", "\"tweet 1\"", "from:alice", "OR", "-", "(", "is:nothing", "@"]))\(limit)",
                "SEARCH USERS \(random.pick(["a", "@", "", "bo"]))\(limit)", "NOTIFICATIONS \(h)\(limit)", "TRENDS\(limit)",
                "IMPORT FOLLOWS \(random.pick([edges, directory.path + "/missing", directory.path, ""]))\(random.pick(["", " SYMMETRIC", " X"]))",
                "IMPORT TWEETS \(random.pick([edges, directory.path + "/missing", ""]))", "STATS", "STATS x", "HELP", "HELP \(random.pick(["POST", "NOPE", "a b"]))",
                "AUTH \(h) secret", "USER ADD \(h) PASSWORD x", "\\timing \(random.pick(["on", "off", "x", ""]))", "\\x",
            ])
        }
        let alphabet = Array("aZ09 _@#-\"\\\t:\n()*'é👨‍👩‍👧\u{0}\u{7F}\u{301}LIMITBEFOREPOSTUSER")
        func mutate(_ line: String, _ random: inout TestRandom) -> String {
            var chars = Array(line)
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let at = chars.isEmpty ? 0 : Int.random(in: 0..<chars.count, using: &random)
                switch Int.random(in: 0..<5, using: &random) {
                case 0: chars.insert(random.pick(alphabet), at: at)
                case 1: if !chars.isEmpty { chars.remove(at: at) }
                case 2: if !chars.isEmpty { chars[at] = random.pick(alphabet) }
                case 3: chars = Array(chars.prefix(at)) // truncated
                default:
                    var words = String(chars).split(separator: " ").map(String.init)
                    if words.count > 1 { words.swapAt(0, Int.random(in: 1..<words.count, using: &random)) }
                    chars = Array(words.joined(separator: " "))
                }
            }
            return String(chars)
        }

        var rejected = 0, accepted = 0
        for step in 0..<count {
            let line: String
            switch Int.random(in: 0..<10, using: &random) {
            case 0, 1: line = String((0..<Int.random(in: 0...40, using: &random)).map { _ in random.pick(alphabet) })
            case 2, 3, 4: line = template(&random)
            default: line = mutate(template(&random), &random)
            }
            let before = Self.fingerprint(db, handles: handles)
            guard let response = shell.execute(line) else { continue }
            _ = response.render(json: shell.json)
            if response.isError {
                rejected += 1
                let after = Self.fingerprint(db, handles: handles)
                #expect(after == before, "seed \(seed) step \(step): the rejected \(line.debugDescription) changed \(before) to \(after)")
            } else {
                accepted += 1
            }
            // Keep some ids of new tweets to aim at.
            if case .tweet(let tweet)? = response.fields?.first(where: { $0.0 == "tweet" })?.1, tweetIDs.count < 40 {
                tweetIDs.append(String(tweet.id))
            }
        }
        print("ShellFuzzTests: \(accepted) accepted, \(rejected) rejected")
        #expect(rejected > count / 4 && accepted > count / 20, "the mix exercises both paths")
    }
}

func environmentValue(_ name: String, default value: Int) -> Int {
    guard let raw = getenv(name), let parsed = Int(String(cString: raw)) else { return value }
    return parsed
}
