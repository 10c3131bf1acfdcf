import Foundation
@testable import Social
import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The model test of the Social layer: random operations of every kind (users, profiles, posts,
/// replies, quotes, retweets and their undoing, likes and unlikes, deletes, follows and
/// unfollows, and bad calls) from a printed seed, against a naive in-memory model of the whole
/// social network, comparing every read: home timeline and user timeline pages (LIMIT, BEFORE),
/// followers and following pages (LIMIT, AFTER), profiles and their counts, tweets with their
/// counts, threads, likes, notifications, tweet and user searches, trends. The same run with
/// the celebrity threshold at 0, 2 and "infinity", across a close and reopen, and across a
/// reopen after a close that skipped the derived structures' checkpoints (what a crash leaves).
///
/// One configuration runs its last phase through the real `socialdb` binary (script mode,
/// `--json`, `--sync always`) and kills it with SIGKILL when it has answered its last command,
/// then opens the directory in-process and compares every read again.
///
/// `SOCIALDB_SEED=<seed>` replays a run; `SOCIALDB_MODEL_OPS` sets the operations per phase.
@Suite struct SocialModelTests {
    // MARK: The model

    struct MUser {
        var id: UInt64 = 0
        var handle: String
        var name: String
        var bio = ""
    }

    struct MTweet {
        var id: UInt64
        var author: Int
        var text: String
        var replyTo: UInt64?
        var quoteOf: UInt64?
        var retweetOf: UInt64?
        var conversation: UInt64
        var mentions: [Int]
        var hashtags: [String]
    }

    struct MNotification {
        enum Cause: Hashable {
            case tweet(UInt64, recipient: Int)
            case like(UInt64, liker: Int)
            case follow(followee: Int, follower: Int)
        }
        var order: Int
        var recipient: Int
        var kind: NotificationKind
        var actor: Int
        var subject: UInt64?
        var cause: Cause
    }

    struct Pair: Hashable {
        var a: UInt64
        var b: UInt64
    }

    final class Model {
        var users: [MUser] = []
        var byHandle: [String: Int] = [:]
        var tweets: [UInt64: MTweet] = [:]
        var deleted: [UInt64] = []
        var follows: Set<Pair> = []
        var likes: Set<Pair> = []
        /// (original, retweeter) -> retweet id
        var retweets: [Pair: UInt64] = [:]
        var notifications: [MNotification] = []
        var order = 0

        func user(_ handle: String) -> Int? { byHandle[handle.lowercased().drop { $0 == "@" }.description] }

        func follows(_ a: Int, _ b: Int) -> Bool { follows.contains(Pair(a: UInt64(a), b: UInt64(b))) }

        /// The tweet an action on `id` is about (the original of a retweet).
        func target(_ id: UInt64) -> MTweet? {
            guard let t = tweets[id] else { return nil }
            if let original = t.retweetOf { return tweets[original] }
            return t
        }

        /// Likes, retweets, replies and quotes of every tweet, computed once per step.
        private var countsAt = -1
        private var cachedCounts: [UInt64: [Int]] = [:]
        func counts(_ id: UInt64) -> [Int] {
            if countsAt != order {
                cachedCounts = [:]
                for like in likes { cachedCounts[like.a, default: [0, 0, 0, 0]][0] += 1 }
                for t in tweets.values {
                    if let o = t.retweetOf { cachedCounts[o, default: [0, 0, 0, 0]][1] += 1 }
                    if let p = t.replyTo { cachedCounts[p, default: [0, 0, 0, 0]][2] += 1 }
                    if let q = t.quoteOf { cachedCounts[q, default: [0, 0, 0, 0]][3] += 1 }
                }
                countsAt = order
            }
            return cachedCounts[id] ?? [0, 0, 0, 0]
        }

        func notify(_ recipient: Int, _ kind: NotificationKind, actor: Int, subject: UInt64?, cause: MNotification.Cause) {
            notifications.append(MNotification(order: order, recipient: recipient, kind: kind, actor: actor, subject: subject, cause: cause))
        }

        func unnotify(_ cause: MNotification.Cause) {
            notifications.removeAll { $0.cause == cause }
        }

        func unnotifyTweet(_ id: UInt64) {
            notifications.removeAll { if case .tweet(id, _) = $0.cause { return true } else { return false } }
        }

        func addTweet(_ t: MTweet) {
            tweets[t.id] = t
            var notified: Set<Int> = [t.author]
            func add(_ r: Int, _ kind: NotificationKind, subject: UInt64) {
                guard notified.insert(r).inserted else { return }
                notify(r, kind, actor: t.author, subject: subject, cause: .tweet(t.id, recipient: r))
            }
            if let o = t.retweetOf, let original = tweets[o] { add(original.author, .retweet, subject: o) }
            if let p = t.replyTo, let parent = tweets[p] { add(parent.author, .reply, subject: t.id) }
            if let q = t.quoteOf, let quoted = tweets[q] { add(quoted.author, .quote, subject: t.id) }
            for m in t.mentions { add(m, .mention, subject: t.id) }
        }

        func removeRetweet(_ id: UInt64) {
            guard let t = tweets[id], let o = t.retweetOf else { return }
            tweets[id] = nil
            deleted.append(id)
            retweets[Pair(a: o, b: UInt64(t.author))] = nil
            unnotifyTweet(id)
        }

        func removeTweet(_ id: UInt64) {
            guard let t = tweets[id] else { return }
            tweets[id] = nil
            deleted.append(id)
            unnotifyTweet(id)
            for (key, retweet) in retweets where key.a == id { removeRetweet(retweet) }
            for like in likes where like.a == id {
                likes.remove(like)
                unnotify(.like(id, liker: Int(like.b)))
            }
            _ = t
        }

        /// Tweets (and retweets) of `author`, newest first.
        func authored(_ author: Int) -> [UInt64] {
            tweets.values.filter { $0.author == author }.map(\.id).sorted(by: >)
        }

        /// The home timeline: the user's and their followees' items, newest first; a page shows
        /// an original once (the newest of it and its retweets in the page).
        func home(_ user: Int) -> [UInt64] {
            tweets.values.filter { $0.author == user || follows(user, $0.author) }.map(\.id).sorted(by: >)
        }

        static func dedup(_ ids: [UInt64], _ tweets: [UInt64: MTweet]) -> [UInt64] {
            var seen: Set<UInt64> = []
            var out: [UInt64] = []
            for id in ids {
                let original = tweets[id]?.retweetOf ?? id
                if seen.insert(original).inserted { out.append(id) }
            }
            return out
        }

        func followers(_ user: Int) -> [Int] { users.indices.filter { follows($0, user) } }
        func following(_ user: Int) -> [Int] { users.indices.filter { follows(user, $0) } }

        func thread(_ id: UInt64) -> [UInt64]? {
            guard let t = target(id) else { return nil }
            let root = t.conversation
            let replies = tweets.values.filter { $0.replyTo != nil && $0.conversation == root }.map(\.id).sorted()
            return (tweets[root] != nil ? [root] : []) + replies
        }

        func notifications(_ user: Int) -> [MNotification] {
            notifications.filter { $0.recipient == user }.sorted { $0.order > $1.order }
        }

        func trends() -> [(tag: String, count: Int)] {
            var counts: [String: Int] = [:]
            for t in tweets.values where t.retweetOf == nil {
                for tag in Set(t.hashtags.map { String($0.lowercased().map { $0 == "é" ? "e" : $0 }) }) { counts[tag, default: 0] += 1 }
            }
            return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { ("#" + $0.key, $0.value) }
        }
    }

    // MARK: Views compared

    struct UserView: Equatable, CustomStringConvertible {
        var id: UInt64, handle: String, name: String, bio: String, followers: Int, following: Int, tweets: Int
        var description: String { "@\(handle)(\(name)|\(bio)) \(followers)/\(following)/\(tweets)" }
    }

    struct TweetView: Equatable, CustomStringConvertible {
        var id: UInt64, author: String, text: String, replyTo: UInt64?, conversation: UInt64, retweetOf: UInt64?, quoteOf: UInt64?
        var mentions: [String], hashtags: [String], likes: Int, retweets: Int, replies: Int, quotes: Int
        var nested: [TweetView]
        var description: String {
            "\(id)@\(author)[\(text)] r\(replyTo.map(String.init) ?? "-") c\(conversation) rt\(retweetOf.map(String.init) ?? "-") q\(quoteOf.map(String.init) ?? "-") "
                + "m\(mentions) h\(hashtags) \(likes)/\(retweets)/\(replies)/\(quotes)\(nested.isEmpty ? "" : " {\(nested)}")"
        }
    }

    static func view(_ u: User) -> UserView {
        UserView(id: u.id, handle: u.handle, name: u.name, bio: u.bio, followers: u.followerCount, following: u.followingCount, tweets: u.tweetCount)
    }

    static func view(_ t: Tweet) -> TweetView {
        TweetView(id: t.id, author: t.authorHandle, text: t.text, replyTo: t.replyTo, conversation: t.conversationID, retweetOf: t.retweetOf,
                  quoteOf: t.quoteOf, mentions: t.mentions, hashtags: t.hashtags, likes: t.likeCount, retweets: t.retweetCount,
                  replies: t.replyCount, quotes: t.quoteCount, nested: (t.retweeted.map { [view($0)] } ?? []) + (t.quoted.map { [view($0)] } ?? []))
    }

    static func view(_ m: Model, user i: Int) -> UserView {
        let u = m.users[i]
        return UserView(id: u.id, handle: u.handle, name: u.name, bio: u.bio, followers: m.followers(i).count,
                        following: m.following(i).count, tweets: m.authored(i).count)
    }

    static func view(_ m: Model, tweet id: UInt64, nested: Bool = true) -> TweetView {
        let t = m.tweets[id]!
        let counts = m.counts(id)
        var inner: [TweetView] = []
        if let o = t.retweetOf { inner.append(view(m, tweet: o, nested: false)) }
        if nested, let q = t.quoteOf, m.tweets[q] != nil { inner.append(view(m, tweet: q, nested: false)) }
        return TweetView(id: id, author: m.users[t.author].handle, text: t.text, replyTo: t.replyTo, conversation: t.conversation,
                         retweetOf: t.retweetOf, quoteOf: t.quoteOf, mentions: t.mentions.map { m.users[$0].handle }, hashtags: t.hashtags,
                         likes: counts[0], retweets: counts[1], replies: counts[2], quotes: counts[3], nested: inner)
    }

    // MARK: The run

    struct Run {
        let seed: UInt64
        var random: TestRandom
        let model = Model()
        let directory = TemporaryDirectory("model")
        var options: SocialOptions
        var db: SocialDB
        let label: String
        /// While set, writes go to the real binary (and nothing is read).
        var shell: ShellPipe?
        let configuration: Configuration

        static let words = ["apple", "river", "stone", "cloud", "swift", "green", "night", "music"]
        static let tags = ["#tag1", "#Tag2", "#tag3", "#tagé"]
        static let handles = ["alice", "bob", "Carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "ned"]

        init(seed: UInt64, configuration: Configuration) throws {
            self.seed = seed
            self.label = configuration.label
            self.configuration = configuration
            random = TestRandom(seed: seed)
            options = testOptions()
            // The binary runs on the real clock: so does the database around it (trends' window).
            if configuration.killNine { options.wallClockMilliseconds = SnowflakeGenerator.systemWallClockMilliseconds }
            options.sync = .off
            options.celebrityThreshold = configuration.threshold
            options.timelineCapacity = configuration.capacity
            options.checkpointEveryRecords = configuration.checkpointRecords
            db = try SocialDB.open(at: directory.path, options: options)
        }

        var where_: String { "\(label) seed \(seed)" }

        mutating func text() -> String {
            var parts: [String] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0, 1: parts.append(random.pick(Self.tags))
                case 2: parts.append("@" + (random.chance(0.8) && !model.users.isEmpty ? random.pick(model.users).handle.uppercased() : "ghost"))
                default: parts.append(random.pick(Self.words))
                }
            }
            return parts.joined(separator: " ")
        }

        /// The entities the model expects of `text` (words separated by single spaces).
        func entities(_ text: String) -> (mentions: [Int], hashtags: [String]) {
            var mentions: [Int] = []
            var hashtags: [String] = []
            for word in text.split(separator: " ") {
                if word.hasPrefix("@"), let u = model.user(String(word.dropFirst())), !mentions.contains(u) { mentions.append(u) }
                if word.hasPrefix("#") { hashtags.append(String(word.dropFirst())) }
            }
            return (mentions, hashtags)
        }

        mutating func anyUser() -> Int { Int.random(in: 0..<model.users.count, using: &random) }

        /// An id to act on: mostly a live tweet or retweet, sometimes a deleted one or garbage.
        mutating func anyTweet() -> UInt64 {
            if random.chance(0.9), !model.tweets.isEmpty { return random.pick(model.tweets.keys.sorted()) }
            if random.chance(0.7), !model.deleted.isEmpty { return random.pick(model.deleted) }
            return 12345
        }

        /// Runs a call that the model says fails with `code`, or succeeds; on failure the log
        /// must not have moved.
        func expect<T>(_ code: String?, _ what: String, _ body: () throws(SocialError) -> T) -> T? {
            let before = shell == nil ? db.engine.log.nextSequenceNumber : 0
            do {
                let value = try body()
                if let code { Issue.record("\(where_): \(what): expected \(code), succeeded") }
                return value
            } catch {
                if code != error.code { Issue.record("\(where_): \(what): expected \(code ?? "success"), got \(error)") }
                if shell == nil { #expect(db.engine.log.nextSequenceNumber == before, "\(where_): \(what) failed and wrote to the log") }
                return nil
            }
        }

        /// A write: through the binary when it runs (`command`, the answer's JSON read with
        /// `field`), else through the API.
        func write<T>(_ command: String, _ field: ([String: Any]) -> T?, _ embedded: () throws(SocialError) -> T) throws(SocialError) -> T {
            guard let shell else { return try embedded() }
            let answer = try shell.run(command)
            guard let value = field(answer) else { throw .io("\(command): unexpected answer \(answer)") }
            return value
        }

        static func id(_ object: String) -> ([String: Any]) -> UInt64? {
            { (($0[object] as? [String: Any])?["id"] as? String).flatMap { UInt64($0) } }
        }
        static func changed(_ answer: [String: Any]) -> Bool? { answer["changed"] as? Bool }
        static func done(_ answer: [String: Any]) -> Void? { () }

        mutating func createUser(_ handle: String) {
            let taken = model.user(handle) != nil
            let name = handle.prefix(1).uppercased() + handle.dropFirst() + " " + random.pick(Self.words)
            if let u = expect(taken ? "exists" : nil, "USER ADD \(handle)", { () throws(SocialError) in
                try write("USER ADD \(handle) \(name)", Self.id("user")) { () throws(SocialError) in try db.createUser(handle: handle, name: name).id } }) {
                model.users.append(MUser(id: u, handle: handle, name: name))
                model.byHandle[handle.lowercased()] = model.users.count - 1
            }
        }

        /// IMPORT FOLLOWS of a few edges among users u0...u11 (created when missing, in
        /// number order), sometimes SYMMETRIC: edges without notifications, through the bulk path.
        mutating func importFollows() {
            let symmetric = random.chance(0.3)
            var edges: [(Int, Int)] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                edges.append((Int.random(in: 0..<12, using: &random), Int.random(in: 0..<12, using: &random)))
            }
            let path = directory.path + "/edges.txt"
            let text = "# follower followee\n" + edges.map { "\($0.0) \($0.1)\n" }.joined()
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress!, $0.count - 1) }
            close(fd)
            guard let report = read("IMPORT FOLLOWS", { () throws(SocialError) in try db.importFollows(path: path, symmetric: symmetric) }) else { return }
            var created = 0
            for n in Set(edges.flatMap { [$0.0, $0.1] }).sorted() where model.user("u\(n)") == nil {
                guard let u = read("USER SHOW u\(n)", { () throws(SocialError) in try db.user(handle: "u\(n)") }) else { return }
                model.users.append(MUser(id: u.id, handle: "u\(n)", name: "u\(n)"))
                model.byHandle["u\(n)"] = model.users.count - 1
                created += 1
            }
            for (a, b) in edges + (symmetric ? edges.map { ($0.1, $0.0) } : []) where a != b {
                model.follows.insert(Pair(a: UInt64(model.user("u\(a)")!), b: UInt64(model.user("u\(b)")!)))
            }
            #expect(report.usersCreated == created, "\(where_): IMPORT FOLLOWS created \(report.usersCreated) users, the model \(created)")
            #expect(report.graphEdges == model.follows.count, "\(where_): IMPORT FOLLOWS: \(report.graphEdges) edges, the model \(model.follows.count)")
        }

        /// One random operation, applied to the database and the model.
        mutating func step() {
            model.order += 1
            let roll = Int.random(in: 0..<100, using: &random)
            let u = anyUser(), h = model.users[u].handle
            switch roll {
            case 0 where shell == nil && random.chance(0.5):
                importFollows()
            case 0..<3:
                createUser(random.chance(0.3) ? random.pick(Self.handles).uppercased() : "user\(Int.random(in: 0..<1000, using: &random))")
            case 3..<5:
                let bio = random.chance(0.5)
                let value = bio ? text() : (0..<Int.random(in: 1...8, using: &random)).map { _ in random.pick(Self.words) }.joined(separator: " ")
                if expect(!bio && value.count > 50 ? "too_long" : nil, "USER SET \(h)", { () throws(SocialError) in
                    try write("USER SET \(h) \(bio ? "bio" : "name") \(value)", Self.done) { () throws(SocialError) in
                        _ = bio ? try db.updateUser(handle: h, bio: value) : try db.updateUser(handle: h, name: value) } }) != nil {
                    if bio { model.users[u].bio = value } else { model.users[u].name = value }
                }
            case 5..<30:
                let value = text()
                let e = entities(value)
                if let t = expect(nil, "POST \(h)", { () throws(SocialError) in
                    try write("POST \(h) \(value)", Self.id("tweet")) { () throws(SocialError) in try db.post(handle: h, text: value).id } }) {
                    model.addTweet(MTweet(id: t, author: u, text: value, conversation: t, mentions: e.mentions, hashtags: e.hashtags))
                }
            case 30..<40, 40..<45:
                let quote = roll >= 40
                let id = anyTweet(), value = text()
                let e = entities(value)
                let target = model.target(id)
                let verb = quote ? "QUOTE" : "REPLY"
                if let t = expect(target == nil ? "not_found" : nil, "\(verb) \(h) \(id)", { () throws(SocialError) in
                    try write("\(verb) \(h) \(id) \(value)", Self.id("tweet")) { () throws(SocialError) in
                        quote ? try db.quote(handle: h, tweet: id, text: value).id : try db.reply(handle: h, to: id, text: value).id } }), let target {
                    model.addTweet(MTweet(id: t, author: u, text: value, replyTo: quote ? nil : target.id, quoteOf: quote ? target.id : nil,
                                          conversation: quote ? t : target.conversation, mentions: e.mentions, hashtags: e.hashtags))
                }
            case 45..<54:
                let id = anyTweet()
                let target = model.target(id)
                let code = target == nil ? "not_found" : model.retweets[Pair(a: target!.id, b: UInt64(u))] != nil ? "exists" : nil
                if let t = expect(code, "RETWEET \(h) \(id)", { () throws(SocialError) in
                    try write("RETWEET \(h) \(id)", Self.id("tweet")) { () throws(SocialError) in try db.retweet(handle: h, tweet: id).id } }), let target {
                    model.retweets[Pair(a: target.id, b: UInt64(u))] = t
                    model.addTweet(MTweet(id: t, author: u, text: "", retweetOf: target.id, conversation: t, mentions: [], hashtags: []))
                }
            case 54..<58:
                // Mostly a retweet the user has, by its original's id or its own.
                var id = anyTweet()
                let own = model.retweets.filter { $0.key.b == UInt64(u) }.map { ($0.key.a, $0.value) }.sorted { $0.1 < $1.1 }
                if random.chance(0.7), let pick = own.randomElement(using: &random) { id = random.chance(0.5) ? pick.0 : pick.1 }
                let target = model.target(id)
                let retweet = target.flatMap { model.retweets[Pair(a: $0.id, b: UInt64(u))] }
                if let removed = expect(retweet == nil ? "not_found" : nil, "UNRETWEET \(h) \(id)", { () throws(SocialError) in
                    try write("UNRETWEET \(h) \(id)", { ($0["retweet_id"] as? String).flatMap { UInt64($0) } }) { () throws(SocialError) in
                        try db.unretweet(handle: h, tweet: id) } }) {
                    #expect(removed == retweet, "\(where_): UNRETWEET removed \(removed), the model's is \(String(describing: retweet))")
                    model.removeRetweet(retweet!)
                }
            case 58..<68, 68..<73:
                let like = roll < 68
                var id = anyTweet()
                if !like, random.chance(0.7), let pick = model.likes.filter({ $0.b == UInt64(u) }).map(\.a).sorted().randomElement(using: &random) {
                    id = pick
                }
                let target = model.target(id)
                if let t = expect(target == nil ? "not_found" : nil, "\(like ? "LIKE" : "UNLIKE") \(h) \(id)", { () throws(SocialError) in
                    try write("\(like ? "LIKE" : "UNLIKE") \(h) \(id)", Self.id("tweet")) { () throws(SocialError) in
                        like ? try db.like(handle: h, tweet: id).id : try db.unlike(handle: h, tweet: id).id } }), let target {
                    let key = Pair(a: target.id, b: UInt64(u))
                    if like, !model.likes.contains(key) {
                        model.likes.insert(key)
                        if target.author != u { model.notify(target.author, .like, actor: u, subject: target.id, cause: .like(target.id, liker: u)) }
                    } else if !like, model.likes.contains(key) {
                        model.likes.remove(key)
                        model.unnotify(.like(target.id, liker: u))
                    }
                    #expect(t == target.id, "\(where_): LIKE answers the liked tweet")
                }
            case 73..<80:
                // Mostly one's own tweet; sometimes someone else's (forbidden).
                var id = anyTweet()
                let own = model.authored(u)
                if random.chance(0.7), let pick = own.randomElement(using: &random) { id = pick }
                let t = model.tweets[id]
                let code = t == nil ? "not_found" : t!.author != u ? "forbidden" : nil
                if expect(code, "DELETE \(h) \(id)", { () throws(SocialError) in
                    try write("DELETE \(h) \(id)", Self.done) { () throws(SocialError) in try db.delete(handle: h, tweet: id) } }) != nil, let t {
                    if t.retweetOf != nil { model.removeRetweet(id) } else { model.removeTweet(id) }
                }
            case 80..<93:
                let v = anyUser()
                let code = u == v ? "invalid" : nil
                if let changed = expect(code, "FOLLOW \(h) \(model.users[v].handle)", { () throws(SocialError) in
                    try write("FOLLOW \(h) \(model.users[v].handle)", Self.changed) { () throws(SocialError) in try db.follow(h, model.users[v].handle) } }) {
                    #expect(changed == !model.follows(u, v), "\(where_): FOLLOW changed")
                    if changed {
                        model.follows.insert(Pair(a: UInt64(u), b: UInt64(v)))
                        model.notify(v, .follow, actor: u, subject: nil, cause: .follow(followee: v, follower: u))
                    }
                }
            default:
                var v = anyUser()
                if random.chance(0.7), let pick = model.following(u).randomElement(using: &random) { v = pick }
                let code = u == v ? "invalid" : nil
                if let changed = expect(code, "UNFOLLOW \(h) \(model.users[v].handle)", { () throws(SocialError) in
                    try write("UNFOLLOW \(h) \(model.users[v].handle)", Self.changed) { () throws(SocialError) in try db.unfollow(h, model.users[v].handle) } }) {
                    #expect(changed == model.follows(u, v), "\(where_): UNFOLLOW changed")
                    if changed {
                        model.follows.remove(Pair(a: UInt64(u), b: UInt64(v)))
                        model.unnotify(.follow(followee: v, follower: u))
                    }
                }
            }
        }

        // MARK: Reads

        func read<T>(_ what: String, _ body: () throws(SocialError) -> T) -> T? {
            do { return try body() } catch {
                Issue.record("\(where_): \(what): \(error)")
                return nil
            }
        }

        /// Pages through a list of tweets with `fetch`, comparing each page with the model's.
        func comparePages(_ what: String, limit: Int, expected: (UInt64?) -> (items: [UInt64], next: UInt64?),
                          fetch: (UInt64?) throws(SocialError) -> Page<Tweet>) {
            var before: UInt64?
            var pages = 0
            repeat {
                let cursor = before
                guard let page = read("\(what) LIMIT \(limit) BEFORE \(String(describing: cursor))", { () throws(SocialError) in try fetch(cursor) }) else { return }
                let want = expected(cursor)
                let got = page.items.map(\.id)
                guard got == want.items, page.nextCursor == want.next else {
                    Issue.record("\(where_): \(what) LIMIT \(limit) BEFORE \(String(describing: cursor)): got \(got) next \(String(describing: page.nextCursor)), model \(want.items) next \(String(describing: want.next))")
                    return
                }
                for t in page.items where SocialModelTests.view(t) != SocialModelTests.view(model, tweet: t.id) {
                    Issue.record("\(where_): \(what): tweet \(t.id) is \(SocialModelTests.view(t)), model \(SocialModelTests.view(model, tweet: t.id))")
                }
                before = page.nextCursor
                pages += 1
            } while before != nil && pages < 500
        }

        static func page(_ ids: [UInt64], limit: Int, before: UInt64?, dedup: [UInt64: MTweet]? = nil) -> (items: [UInt64], next: UInt64?) {
            var below = ids.filter { $0 < (before ?? .max) }
            if let tweets = dedup { below = Model.dedup(below, tweets) }
            let items = Array(below.prefix(limit))
            return (items, below.count > limit ? items.last : nil)
        }

        mutating func checkUser(_ i: Int) {
            let m = model
            let h = m.users[i].handle
            if let u = read("USER SHOW \(h)", { () throws(SocialError) in try db.user(handle: h.uppercased()) }), SocialModelTests.view(u) != SocialModelTests.view(m, user: i) {
                Issue.record("\(where_): USER SHOW \(h): \(SocialModelTests.view(u)), model \(SocialModelTests.view(m, user: i))")
            }
            let limit = Int.random(in: 1...7, using: &random)
            comparePages("TWEETS \(h)", limit: limit, expected: { Self.page(m.authored(i), limit: limit, before: $0) },
                         fetch: { (cursor) throws(SocialError) in try db.tweets(handle: h, limit: limit, before: cursor) })
            let homeLimit = Int.random(in: 1...min(9, options.timelineCapacity), using: &random)
            comparePages("HOME \(h)", limit: homeLimit, expected: { Self.page(m.home(i), limit: homeLimit, before: $0, dedup: m.tweets) },
                         fetch: { (cursor) throws(SocialError) in try db.home(handle: h, limit: homeLimit, before: cursor) })
            for followers in [true, false] {
                let want = followers ? m.followers(i) : m.following(i)
                var after: UInt64?
                var got: [UserView] = []
                let limit = Int.random(in: 1...4, using: &random)
                var pages = 0
                repeat {
                    let cursor = after
                    guard let page = read("FOLLOWERS/FOLLOWING \(h)", { () throws(SocialError) in
                        followers ? try db.followers(handle: h, limit: limit, after: cursor) : try db.following(handle: h, limit: limit, after: cursor)
                    }) else { break }
                    #expect(page.items.count == limit || page.nextCursor == nil, "\(where_): a short page ends the list")
                    got += page.items.map { SocialModelTests.view($0) }
                    after = page.nextCursor
                    pages += 1
                } while after != nil && pages < 100
                let expected = want.map { SocialModelTests.view(m, user: $0) }
                if got != expected { Issue.record("\(where_): \(followers ? "FOLLOWERS" : "FOLLOWING") \(h) LIMIT \(limit): \(got), model \(expected)") }
            }
            let want = m.notifications(i)
            let limit2 = random.chance(0.5) ? 1000 : Int.random(in: 1...5, using: &random)
            if let got = read("NOTIFICATIONS \(h)", { () throws(SocialError) in try db.notifications(handle: h, limit: limit2) }) {
                let a = got.map { "\($0.kind) @\($0.actor.handle) \($0.tweet.map { String($0.id) } ?? "-")" }
                let b = want.prefix(limit2).map { "\($0.kind) @\(m.users[$0.actor].handle) \($0.subject.map(String.init) ?? "-")" }
                if a != b { Issue.record("\(where_): NOTIFICATIONS \(h) LIMIT \(limit2): \(a), model \(b)") }
            }
        }

        mutating func checkTweet(_ id: UInt64) {
            let m = model
            if m.tweets[id] != nil {
                if let t = read("TWEET \(id)", { () throws(SocialError) in try db.tweet(id: id) }), SocialModelTests.view(t) != SocialModelTests.view(m, tweet: id) {
                    Issue.record("\(where_): TWEET \(id): \(SocialModelTests.view(t)), model \(SocialModelTests.view(m, tweet: id))")
                }
            } else {
                do {
                    _ = try db.tweet(id: id)
                    Issue.record("\(where_): TWEET \(id) of a deleted tweet answered")
                } catch {
                    #expect(error.code == "not_found", "\(where_): \(error)")
                }
            }
            if let want = m.thread(id) {
                if let got = read("THREAD \(id)", { () throws(SocialError) in try db.thread(id: id) })?.map(\.id), got != want {
                    Issue.record("\(where_): THREAD \(id): \(got), model \(want)")
                }
            }
        }

        mutating func checkSearch() {
            let m = model
            var query: String
            var matches: (MTweet) -> Bool
            let word = random.pick(Self.words), other = random.pick(Self.words)
            func words(_ t: MTweet) -> [Substring] { t.retweetOf == nil ? t.text.split(separator: " ") : [] }
            switch Int.random(in: 0..<11, using: &random) {
            case 7:
                query = "\"\(word) \(other)\""
                matches = { t in
                    let w = words(t)
                    return w.indices.dropLast().contains { w[$0] == Substring(word) && w[$0 + 1] == Substring(other) }
                }
            case 8:
                let kind = random.pick(["reply", "quote", "retweet"])
                query = "is:\(kind)"
                matches = { kind == "reply" ? $0.replyTo != nil : kind == "quote" ? $0.quoteOf != nil : $0.retweetOf != nil }
            case 9:
                let u = random.pick(m.users)
                query = "from:\(u.handle) -\(word)"
                matches = { m.users[$0.author].handle == u.handle && !words($0).contains(Substring(word)) }
            case 10:
                let tag = random.pick(Self.tags)
                query = "\(tag) OR \(word) is:reply"
                matches = { t in
                    (words(t).contains { $0.lowercased() == tag.lowercased() } || words(t).contains(Substring(word))) && t.replyTo != nil
                }
            case 0:
                query = word
                matches = { words($0).contains(Substring(word)) }
            case 1:
                let tag = random.pick(Self.tags)
                query = tag.lowercased()
                matches = { t in words(t).contains { $0.lowercased() == tag.lowercased() } }
            case 2:
                let u = m.users.isEmpty ? "ghost" : random.pick(m.users).handle
                query = "@" + u
                matches = { t in words(t).contains { $0.lowercased() == "@" + u.lowercased() } }
            case 3:
                let u = random.pick(m.users)
                query = "from:" + u.handle.lowercased()
                matches = { m.users[$0.author].handle == u.handle }
            case 4:
                query = "\(word) \(other)"
                matches = { words($0).contains(Substring(word)) && words($0).contains(Substring(other)) }
            case 5:
                query = "\(word) OR \(other)"
                matches = { words($0).contains(Substring(word)) || words($0).contains(Substring(other)) }
            default:
                query = "\(word) -\(other)"
                matches = { words($0).contains(Substring(word)) && !words($0).contains(Substring(other)) }
            }
            let ids = m.tweets.values.filter(matches).map(\.id).sorted(by: >)
            let limit = Int.random(in: 1...12, using: &random)
            comparePages("SEARCH \(query)", limit: limit, expected: { Self.page(ids, limit: limit, before: $0) },
                         fetch: { (cursor) throws(SocialError) in try db.search(query, limit: limit, before: cursor) })
        }

        func checkUserSearch(_ prefix: String) {
            let m = model
            let folded = prefix.lowercased().drop { $0 == "@" }
            let want = m.users.indices.filter { i in
                m.users[i].handle.lowercased().hasPrefix(folded)
                    || m.users[i].name.lowercased().split(separator: " ").contains { $0.hasPrefix(folded) }
            }.sorted { a, b in
                let fa = m.followers(a).count, fb = m.followers(b).count
                return fa != fb ? fa > fb : m.users[a].handle.lowercased() < m.users[b].handle.lowercased()
            }.prefix(20).map { m.users[$0].handle }
            if let got = read("SEARCH USERS \(prefix)", { () throws(SocialError) in try db.searchUsers(prefix) })?.map(\.handle), got != Array(want) {
                Issue.record("\(where_): SEARCH USERS \(prefix): \(got), model \(want)")
            }
        }

        func checkTrends() {
            let want = model.trends()
            if let got = read("TRENDS", { () throws(SocialError) in try db.trends(limit: 1000) }) {
                let a = got.map { "\($0.tag) \($0.count)" }, b = want.map { "\($0.tag) \($0.count)" }
                if a != b { Issue.record("\(where_): TRENDS: \(a), model \(b)") }
            }
        }

        /// A few reads after an operation.
        mutating func spotCheck() {
            switch Int.random(in: 0..<4, using: &random) {
            case 0: checkUser(anyUser())
            case 1: checkTweet(anyTweet())
            case 2: checkSearch()
            default: checkTrends()
            }
        }

        /// Every read of every user and tweet.
        mutating func fullCheck() {
            for i in model.users.indices { checkUser(i) }
            for id in model.tweets.keys.sorted() { checkTweet(id) }
            for id in model.deleted.suffix(20) { checkTweet(id) }
            for _ in 0..<20 { checkSearch() }
            for prefix in ["a", "B", "user", "ca", "@d", "apple"] { checkUserSearch(prefix) }
            checkTrends()
        }

        /// Closes the database and starts the binary on its directory, with the same knobs.
        mutating func startShell() throws {
            try db.close()
            shell = try ShellPipe(arguments: ["--data", directory.path, "--json", "--sync", "always",
                                              "--celebrity-threshold", String(options.celebrityThreshold),
                                              "--timeline-capacity", String(options.timelineCapacity),
                                              "--checkpoint-records", String(options.checkpointEveryRecords)])
        }

        /// SIGKILL, then the directory opened in-process again.
        mutating func killShell() throws {
            #expect((shell?.acknowledged ?? 0) > 100, "\(where_): the binary acknowledged \(shell?.acknowledged ?? 0) writes")
            shell?.kill()
            shell = nil
            db = try SocialDB.open(at: directory.path, options: options)
        }

        mutating func reopen(crash: Bool) throws {
            if crash { try db.closeWithoutCheckpoints() } else { try db.close() }
            db = try SocialDB.open(at: directory.path, options: options)
        }
    }

    /// One seed for the three thresholds: the same operations, so the same answers.
    static let seed = TestRandom.seed()

    struct Configuration: Sendable, CustomStringConvertible {
        var label: String
        var threshold: Int
        var capacity = 800
        var checkpointRecords = 250_000
        /// The last phase runs in the real binary and ends with kill -9.
        var killNine = false
        var description: String { label }
    }

    @Test(arguments: [
        Configuration(label: "threshold 0", threshold: 0),
        Configuration(label: "threshold 2", threshold: 2),
        Configuration(label: "threshold infinity", threshold: Int.max),
        // Small rings (pages past a ring's oldest entry read the sources) and a periodic
        // checkpoint every 50 records.
        Configuration(label: "threshold 2, capacity 8, checkpoints every 50 records", threshold: 2, capacity: 8, checkpointRecords: 50),
        Configuration(label: "threshold 2, last phase in the binary, then kill -9", threshold: 2, killNine: true),
    ])
    func randomOperationsMatchTheModel(_ configuration: Configuration) throws {
        let label = configuration.label
        let seed = Self.seed
        let operations = environmentValue("SOCIALDB_MODEL_OPS", default: 200)
        print("SocialModelTests \(label): seed \(seed), \(operations) operations a phase")
        var run = try Run(seed: seed, configuration: configuration)
        for handle in Run.handles.prefix(8) { run.createUser(handle) }
        for phase in 0..<3 {
            let inBinary = phase == 2 && configuration.killNine
            if inBinary { try run.startShell() }
            for _ in 0..<operations {
                run.step()
                if !inBinary && run.random.chance(0.3) { run.spotCheck() }
            }
            if inBinary { try run.killShell() }
            run.fullCheck()
            // Phase 0 ends with a clean close, phase 1 with a close that skips the checkpoints.
            if phase < 2 {
                try run.reopen(crash: phase == 1)
                run.fullCheck()
            }
        }
        try run.db.close()
    }
}

/// The real `socialdb` binary in script mode with `--json`: one command in, one line of JSON out.
final class ShellPipe {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    private var pending: [UInt8] = []
    /// Commands the binary acknowledged with `"ok":true`.
    private(set) var acknowledged = 0

    init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: InteractiveShellTests.binary())
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning { kill() }
    }

    /// Sends one command; the answer's JSON object, or the error it reports as a `SocialError`.
    func run(_ command: String) throws(SocialError) -> [String: Any] {
        var bytes = Array((command + "\n").utf8)
        let fd = input.fileHandleForWriting.fileDescriptor
        let written = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
        guard written == bytes.count else { throw .io("writing to socialdb failed") }
        guard let line = readLine(timeoutSeconds: 60) else { throw .io("socialdb did not answer \(command)") }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw .io("not JSON: \(line)")
        }
        if object["ok"] as? Bool == true {
            acknowledged += 1
            return object
        }
        let error = object["error"] as? [String: Any]
        let message = error?["message"] as? String ?? line
        switch error?["code"] as? String {
        case "not_found": throw .notFound(message)
        case "exists": throw .exists(message)
        case "invalid": throw .invalid(message)
        case "forbidden": throw .forbidden(message)
        case "too_long": throw .tooLong(message)
        case "rate_limited": throw .rateLimited(message)
        case "syntax": throw .syntax(message)
        default: throw .io(message)
        }
    }

    private func readLine(timeoutSeconds: Int32) -> String? {
        let fd = output.fileHandleForReading.fileDescriptor
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, timeoutSeconds * 1000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            pending.append(contentsOf: buffer[0..<n])
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
