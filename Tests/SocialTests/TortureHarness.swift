import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The end-to-end torture harness shared by the kill, power-loss and I/O-error tests: a model of
/// what the database has acknowledged, a seeded generator of shell commands (every write
/// command), the resolution of a command whose answer never came (applied whole or not at all),
/// and a checker that asks the database, through shell commands with `--json`, whether every
/// acknowledged write is visible and consistent in every structure.
///
/// The harness speaks the shell language only (a `send` closure: one command line in, the parsed
/// JSON answer out, nil when the database is gone), so the same code drives the real `socialdb`
/// binary through a pipe and an in-process `Shell` over a fault-injected file layer.
typealias TortureSend = (String) -> [String: Any]?

struct TortureModel {
    enum Kind: Equatable { case post, reply, quote, retweet }

    struct TweetInfo {
        var id: UInt64
        var author: String
        var kind: Kind
        /// The parent (reply), the quoted tweet (quote) or the original (retweet), resolved to an original.
        var target: UInt64?
        /// Whether the target existed when this was written (a reply counts only then).
        var targetAlive: Bool
        var text: String
        var token: String
        var hashtags: [String]
        /// Existing users mentioned (lowercased handles), in order of first mention.
        var mentions: [String]
        var alive = true
    }

    /// Lowercased handles in creation order.
    var users: [String] = []
    var names: [String: String] = [:]
    var bios: [String: String] = [:]
    var tweets: [UInt64: TweetInfo] = [:]
    /// "follower followee"
    var follows: Set<String> = []
    /// "user tweet"
    var likes: Set<String> = []
    /// "user original" -> retweet id
    var retweets: [String: UInt64] = [:]
    var nextToken = 0
    let tokenPrefix: String

    init(tokenPrefix: String) { self.tokenPrefix = tokenPrefix }

    func exists(_ handle: String) -> Bool { names[handle] != nil }
    func alive(_ id: UInt64) -> Bool { tweets[id]?.alive == true }
    /// The original a command on `id` acts on (a retweet's original), if alive.
    func original(_ id: UInt64) -> UInt64? {
        guard let t = tweets[id], t.alive else { return nil }
        if t.kind == .retweet { return t.target.flatMap { alive($0) ? $0 : nil } }
        return id
    }

    func followers(of u: String) -> [String] { users.filter { follows.contains("\($0) \(u)") } }
    func following(of u: String) -> [String] { users.filter { follows.contains("\(u) \($0)") } }
    func aliveTweets(by u: String) -> [TweetInfo] { tweets.values.filter { $0.alive && $0.author == u } }
    func likeCount(_ id: UInt64) -> Int { users.filter { likes.contains("\($0) \(id)") }.count }
    func retweetCount(_ id: UInt64) -> Int { tweets.values.filter { $0.alive && $0.kind == .retweet && $0.target == id }.count }
    func replyCount(_ id: UInt64) -> Int { tweets.values.filter { $0.alive && $0.kind == .reply && $0.target == id && $0.targetAlive }.count }
    func quoteCount(_ id: UInt64) -> Int { tweets.values.filter { $0.alive && $0.kind == .quote && $0.target == id && $0.targetAlive }.count }

    // MARK: Applying acknowledged writes

    mutating func addUser(_ handle: String, name: String) {
        let h = handle.lowercased()
        guard names[h] == nil else { return }
        users.append(h)
        names[h] = name
        bios[h] = ""
    }

    mutating func addTweet(_ info: TweetInfo) {
        tweets[info.id] = info
        if info.kind == .retweet, let o = info.target { retweets["\(info.author) \(o)"] = info.id }
    }

    mutating func removeRetweet(_ id: UInt64) {
        guard let t = tweets[id], t.kind == .retweet else { return }
        tweets[id]?.alive = false
        if let o = t.target { retweets["\(t.author) \(o)"] = nil }
    }

    mutating func delete(_ id: UInt64) {
        guard let t = tweets[id], t.alive else { return }
        if t.kind == .retweet { removeRetweet(id); return }
        tweets[id]?.alive = false
        for (key, r) in retweets where key.hasSuffix(" \(id)") {
            tweets[r]?.alive = false
            retweets[key] = nil
        }
        for u in users { likes.remove("\(u) \(id)") }
    }
}

/// One generated write command, with what is needed to apply its answer or resolve it unanswered.
struct TortureCommand {
    enum Op {
        case userAdd(String, name: String)
        case userSet(String, bio: Bool, text: String)
        case post(String, text: String, token: String)
        case reply(String, to: UInt64, text: String, token: String)
        case quote(String, of: UInt64, text: String, token: String)
        case retweet(String, UInt64)
        case unretweet(String, UInt64)
        case like(String, UInt64)
        case unlike(String, UInt64)
        case delete(String, UInt64)
        case follow(String, String)
        case unfollow(String, String)
    }

    var op: Op
    var line: String

    var verb: String { String(line.prefix { $0 != " " }) }
}

/// A small seeded generator (xorshift64*).
struct TortureRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

func tortureSeed() -> UInt64 {
    if let env = getenv("SOCIALDB_SEED"), let seed = UInt64(String(cString: env)) { return seed }
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_nsec) ^ UInt64(ts.tv_sec) << 20
}

func tortureEnvironmentInt(_ name: String, default value: Int) -> Int {
    guard let raw = getenv(name), let parsed = Int(String(cString: raw)) else { return value }
    return parsed
}

extension TortureModel {
    static let hashtags = ["h0", "h1", "h2", "h3", "h4"]
    static let maxUsers = 8

    /// A random write command over the current state: mostly valid, some that must be refused.
    mutating func nextCommand(_ random: inout TortureRandom) -> TortureCommand {
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        let live = tweets.values.filter(\.alive).map(\.id).sorted()
        if users.count < 2 || (users.count < Self.maxUsers && Int.random(in: 0..<12, using: &random) == 0) {
            let h = "u\(users.count)"
            let name = "User \(users.count)"
            return TortureCommand(op: .userAdd(h, name: name), line: "USER ADD \(h) \"\(name)\"")
        }
        let u = pick(users)
        func text() -> (String, String) {
            nextToken += 1
            let token = "\(tokenPrefix)k\(nextToken)"
            var words = [token, pick(["hello", "crash", "world", "disk"])]
            if Bool.random(using: &random) { words.append("#" + pick(Self.hashtags)) }
            if Int.random(in: 0..<3, using: &random) == 0 { words.append("@" + pick(users)) }
            if Int.random(in: 0..<10, using: &random) == 0 { words.append("@nobody") }
            return (words.joined(separator: " "), token)
        }
        let anyTweet: UInt64? = live.isEmpty ? nil : pick(live)
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<4:
            if Int.random(in: 0..<4, using: &random) == 0 {
                // A duplicate handle (ignoring case): refused with `exists`.
                let h = pick(users).uppercased()
                return TortureCommand(op: .userAdd(h, name: h), line: "USER ADD \(h)")
            }
            let bio = Bool.random(using: &random)
            nextToken += 1
            let value = bio ? "bio \(nextToken)" : "Name \(nextToken)"
            return TortureCommand(op: .userSet(u, bio: bio, text: value), line: "USER SET \(u) \(bio ? "bio" : "name") \"\(value)\"")
        case 4..<34:
            let (t, token) = text()
            return TortureCommand(op: .post(u, text: t, token: token), line: "POST \(u) \"\(t)\"")
        case 34..<42:
            guard let id = anyTweet else { fallthrough }
            let (t, token) = text()
            return TortureCommand(op: .reply(u, to: id, text: t, token: token), line: "REPLY \(u) \(id) \"\(t)\"")
        case 42..<48:
            guard let id = anyTweet else { fallthrough }
            let (t, token) = text()
            return TortureCommand(op: .quote(u, of: id, text: t, token: token), line: "QUOTE \(u) \(id) \"\(t)\"")
        case 48..<58:
            guard let id = anyTweet else { fallthrough }
            return TortureCommand(op: .retweet(u, id), line: "RETWEET \(u) \(id)")
        case 58..<62:
            let mine = retweets.filter { $0.key.hasPrefix("\(u) ") }.map(\.value).sorted()
            guard let id = mine.isEmpty ? anyTweet : pick(mine) else { fallthrough }
            let target = tweets[id].flatMap { $0.kind == .retweet ? $0.target : $0.id } ?? id
            return TortureCommand(op: .unretweet(u, target), line: "UNRETWEET \(u) \(Bool.random(using: &random) ? target : id)")
        case 62..<74:
            guard let id = anyTweet else { fallthrough }
            return TortureCommand(op: .like(u, id), line: "LIKE \(u) \(id)")
        case 74..<78:
            let mine = likes.filter { $0.hasPrefix("\(u) ") }.compactMap { UInt64($0.split(separator: " ")[1]) }.sorted()
            guard let id = mine.isEmpty ? anyTweet : pick(mine) else { fallthrough }
            return TortureCommand(op: .unlike(u, id), line: "UNLIKE \(u) \(id)")
        case 78..<84:
            // Mostly one's own tweet; sometimes someone else's (`forbidden`) or a deleted one.
            let own = live.filter { tweets[$0]?.author == u }
            let deleted = tweets.values.filter { !$0.alive }.map(\.id).sorted()
            let roll = Int.random(in: 0..<10, using: &random)
            let id: UInt64
            if roll == 0, let other = anyTweet {
                id = other
            } else if roll == 1, !deleted.isEmpty {
                id = pick(deleted)
            } else if !own.isEmpty {
                id = pick(own)
            } else if let other = anyTweet {
                id = other
            } else {
                let (t, token) = text()
                return TortureCommand(op: .post(u, text: t, token: token), line: "POST \(u) \"\(t)\"")
            }
            return TortureCommand(op: .delete(u, id), line: "DELETE \(u) \(id)")
        case 84..<94:
            let v = pick(users)
            return TortureCommand(op: .follow(u, v), line: "FOLLOW \(u) \(v)")
        default:
            let v = pick(users)
            return TortureCommand(op: .unfollow(u, v), line: "UNFOLLOW \(u) \(v)")
        }
    }

    /// Applies an acknowledged (`"ok":true`) answer. Returns a problem when the answer itself
    /// contradicts the model.
    mutating func apply(_ command: TortureCommand, answer: [String: Any]) -> String? {
        func tweetInfo(_ author: String, _ kind: Kind, _ text: String, _ token: String) -> String? {
            guard let tweet = answer["tweet"] as? [String: Any], let id = (tweet["id"] as? String).flatMap(UInt64.init) else {
                return "\(command.line): no tweet in \(answer)"
            }
            var target: UInt64?
            switch kind {
            case .reply: target = (tweet["reply_to"] as? String).flatMap(UInt64.init)
            case .quote: target = (tweet["quote_of"] as? String).flatMap(UInt64.init)
            default: break
            }
            var mentions: [String] = []
            for word in text.split(separator: " ") where word.hasPrefix("@") {
                let h = String(word.dropFirst()).lowercased()
                if exists(h) && !mentions.contains(h) { mentions.append(h) }
            }
            let tags = text.split(separator: " ").filter { $0.hasPrefix("#") }.map { String($0.dropFirst()) }
            addTweet(TweetInfo(id: id, author: author, kind: kind, target: target, targetAlive: target.map(alive) ?? false,
                               text: text, token: token, hashtags: tags, mentions: mentions))
            return nil
        }
        switch command.op {
        case .userAdd(let h, let name):
            if exists(h.lowercased()) { return "\(command.line): acknowledged a taken handle" }
            addUser(h, name: name)
        case .userSet(let h, let bio, let text):
            if bio { bios[h] = text } else { names[h] = text }
        case .post(let u, let text, let token): return tweetInfo(u, .post, text, token)
        case .reply(let u, _, let text, let token): return tweetInfo(u, .reply, text, token)
        case .quote(let u, _, let text, let token): return tweetInfo(u, .quote, text, token)
        case .retweet(let u, let id):
            guard let tweet = answer["tweet"] as? [String: Any], let rid = (tweet["id"] as? String).flatMap(UInt64.init),
                  let o = (tweet["retweet_of"] as? String).flatMap(UInt64.init) else { return "\(command.line): no retweet in \(answer)" }
            if o != original(id) { return "\(command.line): retweeted \(o), the model says \(String(describing: original(id)))" }
            addTweet(TweetInfo(id: rid, author: u, kind: .retweet, target: o, targetAlive: true, text: "", token: "", hashtags: [], mentions: []))
        case .unretweet(let u, let o):
            guard let rid = (answer["retweet_id"] as? String).flatMap(UInt64.init) else { return "\(command.line): no retweet_id" }
            if retweets["\(u) \(o)"] != rid { return "\(command.line): removed \(rid), the model has \(String(describing: retweets["\(u) \(o)"]))" }
            removeRetweet(rid)
        case .like(let u, let id):
            guard let o = original(id) else { return "\(command.line): acknowledged a like of a deleted tweet" }
            likes.insert("\(u) \(o)")
        case .unlike(let u, let id):
            guard let o = original(id) else { return "\(command.line): acknowledged an unlike of a deleted tweet" }
            likes.remove("\(u) \(o)")
        case .delete(let u, let id):
            guard let t = tweets[id], t.alive, t.author == u else { return "\(command.line): acknowledged a delete the model refuses" }
            delete(id)
        case .follow(let a, let b):
            if a == b { return "\(command.line): acknowledged a self-follow" }
            follows.insert("\(a) \(b)")
        case .unfollow(let a, let b):
            follows.remove("\(a) \(b)")
        }
        return nil
    }

    /// Decides, by asking the primary stores, whether a command whose answer never came (or
    /// came as an `io` error) was applied, and applies it to the model if so. The full check
    /// that follows then proves it applied everywhere or nowhere.
    mutating func resolve(_ command: TortureCommand, _ send: TortureSend) -> String? {
        func tweetsOf(_ u: String) -> [[String: Any]]? {
            guard let answer = send("TWEETS \(u) LIMIT 1000"), answer["ok"] as? Bool == true else { return nil }
            return answer["tweets"] as? [[String: Any]]
        }
        func fake(_ fields: [String: Any]) -> String? { apply(command, answer: fields) }
        switch command.op {
        case .userAdd(let h, _):
            guard !exists(h.lowercased()) else { return nil }
            if let answer = send("USER SHOW \(h)"), answer["ok"] as? Bool == true { return fake([:]) }
        case .userSet(let h, let bio, let text):
            guard exists(h), let answer = send("USER SHOW \(h)"), let user = answer["user"] as? [String: Any] else { return nil }
            if (user[bio ? "bio" : "name"] as? String) == text { return fake([:]) }
        case .post(let u, let text, _), .reply(let u, _, let text, _), .quote(let u, _, let text, _):
            guard exists(u), let list = tweetsOf(u) else { return nil }
            if let found = list.first(where: { ($0["text"] as? String) == text }) { return fake(["tweet": found]) }
        case .retweet(let u, let id):
            guard exists(u), let o = original(id), retweets["\(u) \(o)"] == nil, let list = tweetsOf(u) else { return nil }
            if let found = list.first(where: { ($0["retweet_of"] as? String) == String(o) }) { return fake(["tweet": found]) }
        case .unretweet(let u, let o):
            guard let rid = retweets["\(u) \(o)"], let list = tweetsOf(u) else { return nil }
            if !list.contains(where: { ($0["id"] as? String) == String(rid) }) { return fake(["retweet_id": String(rid)]) }
        case .like(let u, let id), .unlike(let u, let id):
            guard exists(u), let o = original(id), let answer = send("TWEET \(o)"), let tweet = answer["tweet"] as? [String: Any],
                  let count = tweet["likes"] as? Int else { return nil }
            let liking: Bool
            if case .like = command.op { liking = true } else { liking = false }
            let had = likes.contains("\(u) \(o)")
            if liking != had && count == likeCount(o) + (liking ? 1 : -1) { return fake([:]) }
        case .delete(let u, let id):
            guard let t = tweets[id], t.alive, t.author == u, let answer = send("TWEET \(id)") else { return nil }
            if answer["ok"] as? Bool == false { delete(id) }
        case .follow(let a, let b), .unfollow(let a, let b):
            guard exists(a), exists(b), a != b, let answer = send("FOLLOWING \(a) LIMIT 1000"),
                  let list = answer["users"] as? [[String: Any]] else { return nil }
            let present = list.contains { ($0["handle"] as? String)?.lowercased() == b }
            if present { follows.insert("\(a) \(b)") } else { follows.remove("\(a) \(b)") }
        }
        return nil
    }
}

extension TortureModel {
    /// Asks the database for everything the model says and returns what disagrees (empty: all
    /// consistent). `checks` counts the questions asked.
    func check(_ send: TortureSend, checks: inout Int, homeLimit: Int = 800) -> [String] {
        var problems: [String] = []
        func ask(_ line: String) -> [String: Any]? {
            checks += 1
            guard let answer = send(line) else { problems.append("\(line): no answer"); return nil }
            guard answer["ok"] as? Bool == true else { problems.append("\(line): \(answer)"); return nil }
            return answer
        }
        func ids(_ list: Any?) -> [UInt64] { ((list as? [[String: Any]]) ?? []).compactMap { ($0["id"] as? String).flatMap(UInt64.init) } }
        func describe(_ set: Set<UInt64>) -> String { set.sorted().map { id in "\(id)\(tweets[id].map { "(\($0.author) \($0.kind)\($0.alive ? "" : " deleted"))" } ?? "(unknown)")" }.joined(separator: ",") }

        for u in users {
            let mine = Set(aliveTweets(by: u).map(\.id))
            if let answer = ask("USER SHOW \(u)"), let user = answer["user"] as? [String: Any] {
                let want: [(String, Any)] = [("followers", followers(of: u).count), ("following", following(of: u).count), ("tweets", mine.count),
                                             ("name", names[u]!), ("bio", bios[u]!)]
                for (field, value) in want where "\(user[field] ?? "nil")" != "\(value)" {
                    problems.append("USER SHOW \(u): \(field) \(user[field] ?? "nil"), acknowledged \(value)")
                }
            }
            for (verb, expected) in [("FOLLOWERS", followers(of: u)), ("FOLLOWING", following(of: u))] {
                if let answer = ask("\(verb) \(u) LIMIT 1000") {
                    let got = Set(((answer["users"] as? [[String: Any]]) ?? []).compactMap { ($0["handle"] as? String)?.lowercased() })
                    if got != Set(expected) { problems.append("\(verb) \(u): \(got.sorted()), acknowledged \(expected.sorted())") }
                }
            }
            if let answer = ask("TWEETS \(u) LIMIT 1000") {
                let got = Set(ids(answer["tweets"]))
                if got != mine { problems.append("TWEETS \(u): missing \(describe(mine.subtracting(got))), extra \(describe(got.subtracting(mine)))") }
            }
            if let answer = ask("SEARCH from:\(u) LIMIT 1000") {
                let got = Set(ids(answer["tweets"]))
                if got != mine { problems.append("SEARCH from:\(u): missing \(describe(mine.subtracting(got))), extra \(describe(got.subtracting(mine)))") }
            }
            // HOME: every live tweet and retweet of u and its followees, an original at most once.
            let authors = Set(following(of: u) + [u])
            let expected = tweets.values.filter { $0.alive && authors.contains($0.author) }
            if expected.count < homeLimit, let answer = ask("HOME \(u) LIMIT \(homeLimit)") {
                let entries = (answer["tweets"] as? [[String: Any]]) ?? []
                let got = ids(entries)
                if got != got.sorted(by: >) { problems.append("HOME \(u): not newest first") }
                var shown: [UInt64] = []
                for entry in entries {
                    let retweeted = (entry["retweeted"] as? [String: Any]).flatMap { ($0["id"] as? String).flatMap(UInt64.init) }
                    if let id = (entry["id"] as? String).flatMap(UInt64.init) { shown.append(retweeted ?? id) }
                }
                if Set(shown).count != shown.count { problems.append("HOME \(u): an original shown twice") }
                let expectedIDs = Set(expected.map(\.id))
                let extra = Set(got).subtracting(expectedIDs)
                if !extra.isEmpty { problems.append("HOME \(u): unexpected \(describe(extra))") }
                let missing = expected.filter { !Set(shown).contains($0.kind == .retweet ? $0.target! : $0.id) }.map(\.id)
                if !missing.isEmpty { problems.append("HOME \(u): missing \(describe(Set(missing)))") }
            }
            // NOTIFICATIONS: exactly the live causes.
            var want = Set<String>()
            for t in tweets.values where t.alive {
                var notified: Set<String> = [t.author]
                func add(_ recipient: String?, _ kind: String, _ subject: UInt64) {
                    guard let recipient, notified.insert(recipient).inserted, recipient == u else { return }
                    want.insert("\(kind) \(t.author) \(subject)")
                }
                switch t.kind {
                case .retweet: add(t.target.flatMap { tweets[$0]?.author }, "retweet", t.target!)
                case .reply where t.targetAlive: add(t.target.flatMap { tweets[$0]?.author }, "reply", t.id)
                case .quote where t.targetAlive: add(t.target.flatMap { tweets[$0]?.author }, "quote", t.id)
                default: break
                }
                for m in t.mentions { add(m, "mention", t.id) }
            }
            for like in likes {
                let parts = like.split(separator: " ")
                if let id = UInt64(parts[1]), let t = tweets[id], t.author == u, String(parts[0]) != u { want.insert("like \(parts[0]) \(id)") }
            }
            for f in followers(of: u) { want.insert("follow \(f) 0") }
            if let answer = ask("NOTIFICATIONS \(u) LIMIT 1000") {
                var got = Set<String>()
                for n in (answer["notifications"] as? [[String: Any]]) ?? [] {
                    let tweet = (n["tweet"] as? [String: Any]).flatMap { $0["id"] as? String } ?? "0"
                    got.insert("\(n["kind"] as? String ?? "?") \((n["actor"] as? String ?? "?").lowercased()) \(tweet)")
                }
                if got != want { problems.append("NOTIFICATIONS \(u): missing \(want.subtracting(got).sorted()), extra \(got.subtracting(want).sorted())") }
            }
        }
        for tag in Self.hashtags {
            let want = Set(tweets.values.filter { $0.alive && $0.hashtags.contains(tag) }.map(\.id))
            if let answer = ask("SEARCH #\(tag) LIMIT 1000") {
                let got = Set(ids(answer["tweets"]))
                if got != want { problems.append("SEARCH #\(tag): missing \(describe(want.subtracting(got))), extra \(describe(got.subtracting(want)))") }
            }
        }
        for t in tweets.values.sorted(by: { $0.id < $1.id }) {
            if !t.alive {
                checks += 1
                if let answer = send("TWEET \(t.id)"), answer["ok"] as? Bool != false { problems.append("TWEET \(t.id): deleted, but answered \(answer)") }
                if !t.token.isEmpty, let answer = ask("SEARCH \(t.token)"), !ids(answer["tweets"]).isEmpty {
                    problems.append("SEARCH \(t.token): finds deleted tweet \(t.id)")
                }
                continue
            }
            if let answer = ask("TWEET \(t.id)"), let tweet = answer["tweet"] as? [String: Any] {
                let counts: [(String, Int)] = t.kind == .retweet ? [] :
                    [("likes", likeCount(t.id)), ("retweets", retweetCount(t.id)), ("replies", replyCount(t.id)), ("quotes", quoteCount(t.id))]
                for (field, value) in counts where tweet[field] as? Int != value {
                    problems.append("TWEET \(t.id): \(field) \(tweet[field] ?? "nil"), acknowledged \(value)")
                }
                if (tweet["author"] as? String)?.lowercased() != t.author { problems.append("TWEET \(t.id): author \(tweet["author"] ?? "nil")") }
                if t.kind != .retweet && tweet["text"] as? String != t.text { problems.append("TWEET \(t.id): text \(tweet["text"] ?? "nil")") }
            }
            if !t.token.isEmpty, let answer = ask("SEARCH \(t.token)"), ids(answer["tweets"]) != [t.id] {
                problems.append("SEARCH \(t.token): \(ids(answer["tweets"])), want [\(t.id)]")
            }
        }
        return problems
    }
}

/// Runs one generated command through `send` and applies its answer. Returns false when no
/// answer came (the database is gone: the command is in flight).
func tortureStep(_ model: inout TortureModel, _ command: TortureCommand, _ send: TortureSend, problems: inout [String],
                 allowIOErrors: Bool = false) -> (answered: Bool, ioError: Bool) {
    guard let answer = send(command.line) else { return (false, false) }
    if answer["ok"] as? Bool == true {
        if let problem = model.apply(command, answer: answer) { problems.append(problem) }
        return (true, false)
    }
    let code = (answer["error"] as? [String: Any])?["code"] as? String ?? "?"
    if code == "io" {
        if !allowIOErrors { problems.append("\(command.line): \(answer)") }
        return (true, true)
    }
    return (true, false)
}

func parseJSONLine(_ line: String) -> [String: Any]? {
    guard let data = line.data(using: .utf8) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
}

/// A `socialdb` child process driven through pipes: one command line in, one JSON line out.
final class ShellProcess {
    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var buffer: [UInt8] = []
    private(set) var exited = false

    /// `environment`: variables set for the child on top of this process's environment.
    init(binary: String, arguments: [String], stderrPath: String, environment: [String: String] = [:]) throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw POSIXError(.EMFILE) }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            throw POSIXError(.EMFILE)
        }
        // Close-on-exec at once (Glibc's module does not export pipe2): tests run in parallel
        // in one process, and a child another test spawns must not inherit our pipe ends (it
        // would hold them open, so this child would not see the end of its input). The spawn's
        // dup2 onto 0 and 1 makes the child's copies without the flag.
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        for fd in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = [nil]
        if !environment.isEmpty {
            var merged = ProcessInfo.processInfo.environment
            for (name, value) in environment { merged[name] = value }
            envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = environment.isEmpty
            ? posix_spawn(&child, binary, &actions, nil, argv, environ)
            : posix_spawn(&child, binary, &actions, nil, argv, envp)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .ENOENT)
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
    }

    /// Whether `finish()` closed standard input already. Each descriptor is closed exactly
    /// once: the test process runs suites in parallel, and the number of a closed descriptor is
    /// handed to the next file any test opens, so a second close closes that file under its
    /// owner. (It did: `finish()` and deinit both closed `input`, and a database opened by
    /// another test lost a table's descriptor, read 0 bytes from the empty file that got the
    /// number next, and reported "LSM corrupt: short read of block at 0".)
    private var inputClosed = false

    /// The descriptor of the child's standard input (for the test that checks it is closed once).
    var inputDescriptor: Int32 { input }

    deinit {
        if !exited { kill(pid, SIGKILL); wait() }
        if !inputClosed { close(input) }
        close(output)
    }

    /// Writes one line; false when the child is gone.
    func write(_ line: String) -> Bool {
        let bytes = Array((line + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(input, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }

    /// Reads one whole line; nil at end of output (a partial last line is not an answer).
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    func send(_ line: String) -> [String: Any]? {
        guard write(line), let answer = readLine() else { return nil }
        return parseJSONLine(answer)
    }

    func wait() {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exited = true
    }

    func killNow() {
        kill(pid, SIGKILL)
        wait()
    }

    /// Closes standard input and waits for a clean exit; the exit status.
    func finish() -> Int32 {
        if !inputClosed {
            close(input)
            inputClosed = true
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exited = true
        return status
    }
}

/// The built `socialdb` executable, found next to the test bundle.
func socialdbBinary() -> String {
    let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    var dir = URL(fileURLWithPath: selfPath).deletingLastPathComponent()
    while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("socialdb").path) && dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("socialdb").path
}
