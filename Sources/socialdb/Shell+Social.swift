import Social

/// The social commands of the shell: argument parsing, the call into `SocialDB`, and the two
/// renderings of the answer (human text, and the JSON fields documented in Docs/SHELL.md).
extension Shell {
    func social(_ verb: String, _ arguments: [Tokenizer.Word]) throws(SocialError) -> Response {
        var args = Arguments(words: arguments, verb: verb)
        switch verb {
        case "USER":
            let sub = try args.keyword(["ADD", "SHOW", "SET"])
            switch sub {
            case "ADD":
                let handle = try args.word("handle")
                var password: String?
                if let at = args.words.firstIndex(where: { !$0.quoted && $0.text.uppercased() == "PASSWORD" }) {
                    guard at == args.words.count - 2 else { throw .syntax("PASSWORD takes one word, the password, at the end (usage: \(args.usage))") }
                    password = args.words[at + 1].text
                    args.words.removeLast(2)
                }
                let name = args.rest()
                let user: User
                if let password {
                    user = try db.createUser(handle: handle, name: name.isEmpty ? nil : name, password: password)
                } else {
                    user = try db.createUser(handle: handle, name: name.isEmpty ? nil : name)
                }
                return .ok(fields: [("user", userJSON(user))], human: "created @\(user.handle) (id \(user.id))")
            case "SHOW":
                let handle = try args.word("handle")
                try args.end()
                let user = try db.user(handle: handle)
                return .ok(fields: [("user", userJSON(user))], human: userText(user))
            default:
                let handle = try args.word("handle")
                let field = try args.keyword(["NAME", "BIO"])
                let text = args.rest()
                let user = field == "NAME" ? try db.updateUser(handle: handle, name: text) : try db.updateUser(handle: handle, bio: text)
                return .ok(fields: [("user", userJSON(user))], human: userText(user))
            }
        case "AUTH":
            let handle = try args.word("handle")
            let password = try args.word("password")
            try args.end()
            let account = try db.authenticate(handle: handle, password: password)
            self.account = account
            return .ok(fields: [("user", .string(account.handle)), ("admin", .bool(account.isAdmin))],
                       human: "logged in as @\(account.handle)\(account.isAdmin ? " (admin)" : "")")
        case "PASSWORD":
            let handle = try args.word("handle")
            let password = try args.word("new password")
            try args.end()
            try db.setPassword(handle: handle, password: password)
            let user = try db.user(handle: handle)
            return .ok(fields: [("user", .string(user.handle))], human: "password of @\(user.handle) set")
        case "FORMAT":
            throw .invalid("FORMAT switches a connection of socialdb serve; the shell's form is chosen with --json")
        case "POST":
            let handle = try args.word("handle")
            let tweet = try db.post(handle: handle, text: args.rest())
            return tweetResponse(tweet)
        case "REPLY", "QUOTE":
            let handle = try args.word("handle")
            let id = try args.id("tweet-id")
            let text = args.rest()
            let tweet = verb == "REPLY" ? try db.reply(handle: handle, to: id, text: text) : try db.quote(handle: handle, tweet: id, text: text)
            return tweetResponse(tweet)
        case "RETWEET":
            let (handle, id) = try handleAndID(&args)
            return tweetResponse(try db.retweet(handle: handle, tweet: id))
        case "UNRETWEET":
            let (handle, id) = try handleAndID(&args)
            let removed = try db.unretweet(handle: handle, tweet: id)
            return .ok(fields: [("retweet_id", .string(String(removed)))], human: "removed retweet \(removed)")
        case "LIKE", "UNLIKE":
            let (handle, id) = try handleAndID(&args)
            let tweet = verb == "LIKE" ? try db.like(handle: handle, tweet: id) : try db.unlike(handle: handle, tweet: id)
            return tweetResponse(tweet)
        case "DELETE":
            let (handle, id) = try handleAndID(&args)
            try db.delete(handle: handle, tweet: id)
            return .ok(fields: [("deleted", .string(String(id)))], human: "deleted \(id)")
        case "TWEET":
            let id = try args.id("tweet-id")
            try args.end()
            if json {
                var tweet: [UInt8] = []
                try db.appendEncodedTweet(id: id, as: JSONTweetEncoding.self, into: &tweet)
                return .json(fields: [("tweet", .raw(tweet))])
            }
            return tweetResponse(try db.tweet(id: id))
        case "THREAD":
            let id = try args.id("tweet-id")
            try args.end()
            let tweets = try db.thread(id: id)
            let conversation = tweets.first?.conversationID ?? id
            return .tweets(fields: [("conversation_id", .string(String(conversation))), ("tweets", .tweets(tweets))],
                           list: tweets, more: nil, empty: "(no tweets)")
        case "FOLLOW", "UNFOLLOW":
            let follower = try args.word("follower")
            let followee = try args.word("followee")
            try args.end()
            let changed = verb == "FOLLOW" ? try db.follow(follower, followee) : try db.unfollow(follower, followee)
            let a = try db.user(handle: follower), b = try db.user(handle: followee)
            let human = verb == "FOLLOW"
                ? (changed ? "@\(a.handle) now follows @\(b.handle)" : "@\(a.handle) already follows @\(b.handle)")
                : (changed ? "@\(a.handle) no longer follows @\(b.handle)" : "@\(a.handle) did not follow @\(b.handle)")
            return .ok(fields: [("follower", .string(a.handle)), ("followee", .string(b.handle)), ("changed", .bool(changed))], human: human)
        case "FOLLOWERS", "FOLLOWING":
            let handle = try args.word("handle")
            let clauses = try args.clauses(["LIMIT", "AFTER"])
            let limit = clauses.limit ?? SocialDB.pageLimitDefault
            let page = verb == "FOLLOWERS"
                ? try db.followers(handle: handle, limit: limit, after: clauses.cursor)
                : try db.following(handle: handle, limit: limit, after: clauses.cursor)
            var lines = page.items.map { "@\($0.handle)  \($0.name)  (id \($0.id))" }
            if lines.isEmpty { lines = [verb == "FOLLOWERS" ? "(no followers)" : "(follows no one)"] }
            if let next = page.nextCursor { lines.append("more: AFTER \(next)") }
            return .ok(fields: [("users", .array(page.items.map(userJSON))), ("next", cursorJSON(page.nextCursor))],
                       human: lines.joined(separator: "\n"))
        case "TWEETS":
            let handle = try args.word("handle")
            let clauses = try args.clauses(["LIMIT", "BEFORE"])
            let limit = clauses.limit ?? SocialDB.pageLimitDefault
            if json {
                var page: [UInt8] = [UInt8(ascii: "[")]
                page.reserveCapacity(Self.pageBytesGuess(limit))
                let next = try db.appendEncodedTweets(handle: handle, limit: limit, before: clauses.cursor, as: JSONTweetEncoding.self, into: &page)
                return encodedPage(page, next)
            }
            return tweetPage(try db.tweets(handle: handle, limit: limit, before: clauses.cursor))
        case "HOME":
            let handle = try args.word("handle")
            let clauses = try args.clauses(["LIMIT", "BEFORE"])
            let limit = clauses.limit ?? SocialDB.pageLimitDefault
            if json {
                var page: [UInt8] = [UInt8(ascii: "[")]
                page.reserveCapacity(Self.pageBytesGuess(limit))
                let next = try db.appendEncodedHome(handle: handle, limit: limit, before: clauses.cursor, as: JSONTweetEncoding.self, into: &page)
                return encodedPage(page, next)
            }
            return tweetPage(try db.home(handle: handle, limit: limit, before: clauses.cursor))
        case "SEARCH":
            if let first = args.words.first, !first.quoted, first.text.uppercased() == "USERS" {
                args.words.removeFirst()
                let (limit, cursor) = try args.trailingClauses(["LIMIT"])
                _ = cursor
                let text = args.rest()
                guard !text.isEmpty else { throw .syntax("missing <text> (usage: \(args.usage))") }
                let users = try db.searchUsers(text, limit: limit ?? SocialDB.pageLimitDefault)
                let lines = users.map { "@\($0.handle)  \($0.name)  (id \($0.id)) · followers \($0.followerCount)" }
                return .ok(fields: [("users", .array(users.map(userJSON)))], human: lines.isEmpty ? "(no users)" : lines.joined(separator: "\n"))
            }
            if let first = args.words.first, !first.quoted, first.text.uppercased() == "TWEETS" { args.words.removeFirst() }
            let (limit, cursor) = try args.trailingClauses(["LIMIT", "BEFORE"])
            let query = args.rawText()
            guard !query.isEmpty else { throw .syntax("missing <query> (usage: \(args.usage))") }
            let page = try db.search(query, limit: limit ?? SocialDB.pageLimitDefault, before: cursor)
            return .tweets(fields: [("query", .string(query)), ("tweets", .tweets(page.items)), ("next", cursorJSON(page.nextCursor))],
                           list: page.items, more: page.nextCursor, empty: "(no tweets)")
        case "NOTIFICATIONS":
            let handle = try args.word("handle")
            let clauses = try args.clauses(["LIMIT"])
            let items = try db.notifications(handle: handle, limit: clauses.limit ?? SocialDB.pageLimitDefault)
            let lines = items.map { n -> String in
                let what: String
                switch n.kind {
                case .mention: what = "mentioned you"
                case .reply: what = "replied"
                case .quote: what = "quoted your tweet"
                case .retweet: what = "retweeted your tweet"
                case .like: what = "liked your tweet"
                case .follow: what = "followed you"
                }
                var line = "\(TimeFormat.human(n.createdAtMilliseconds))  @\(n.actor.handle) \(what)"
                if let tweet = n.tweet { line += "  \(tweet.id): \(tweet.text.split(separator: "\n").first.map(String.init) ?? "")" }
                return line
            }
            return .ok(fields: [("notifications", .array(items.map { n in
                .object([("id", .string(String(n.id))), ("kind", .string(n.kind.description)), ("actor", .string(n.actor.handle)),
                         ("tweet", n.tweet.map { .tweet($0) } ?? .null), ("created_at", .string(TimeFormat.iso8601(n.createdAtMilliseconds)))])
            }))], human: lines.isEmpty ? "(no notifications)" : lines.joined(separator: "\n"))
        case "TRENDS":
            let clauses = try args.clauses(["LIMIT"])
            let trends = try db.trends(limit: clauses.limit ?? SocialDB.pageLimitDefault)
            let width = trends.map(\.tag.count).max() ?? 0
            let lines = trends.enumerated().map { i, t in
                "\(i + 1). \(t.tag)\(String(repeating: " ", count: width - t.tag.count))  \(t.count) tweet\(t.count == 1 ? "" : "s")"
            }
            return .ok(fields: [("window_hours", .int(Int(SocialDB.trendWindowMilliseconds / 3_600_000))),
                                ("trends", .array(trends.map { .object([("tag", .string($0.tag)), ("count", .int($0.count))]) }))],
                       human: lines.isEmpty ? "(no hashtags in the last 24 hours)" : lines.joined(separator: "\n"))
        case "IMPORT":
            let kind = try args.keyword(["FOLLOWS", "TWEETS"])
            if kind == "TWEETS" { return try importTweets(&args) }
            let path = try args.word("path")
            let symmetric = args.words.first.map { !$0.quoted && $0.text.uppercased() == "SYMMETRIC" } ?? false
            if symmetric { args.words.removeFirst() }
            try args.end()
            let report = try db.importFollows(path: path, symmetric: symmetric, progress: importProgress)
            finishProgress()
            var human = "imported \(report.edgesRead) edges from \(report.lines) lines: \(report.usersCreated) users created, "
                + "\(report.usersReused) found; the graph has \(report.graphEdges) edges"
            if report.badLines > 0 {
                human += "\nskipped bad lines: \(report.badLines)"
                for sample in report.badLineSamples { human += "\n  line \(sample.line): \(sample.reason)" }
            }
            return .ok(fields: [
                ("lines", .int(report.lines)), ("edges_read", .int(report.edgesRead)), ("graph_edges", .int(report.graphEdges)),
                ("users_created", .int(report.usersCreated)), ("users_found", .int(report.usersReused)),
                ("bad_lines", .int(report.badLines)),
                ("bad", .array(report.badLineSamples.map { .object([("line", .int($0.line)), ("reason", .string($0.reason))]) })),
            ], human: human)
        default:
            throw .invalid("\(verb) is not available in this version of socialdb yet (usage: \(args.usage))")
        }
    }

    /// Who may run `verb` when accounts are enforced (`socialdb serve`): reads of public data
    /// (profiles, tweets, timelines, graph pages, search, trends, HELP, STATS) anyone; a write,
    /// `NOTIFICATIONS` and `PASSWORD` only as the user they name, after AUTH as that user;
    /// `USER ADD` with a password anyone (signing up), without one and `IMPORT` the admin
    /// only. The admin may do anything. A refusal is `forbidden` and changes nothing.
    func authorize(_ verb: String, _ arguments: [Tokenizer.Word]) throws(SocialError) {
        guard enforcesAccounts, account?.isAdmin != true else { return }
        let actor: String
        switch verb {
        case "USER":
            guard let sub = arguments.first?.text.uppercased() else { return }
            switch sub {
            case "ADD":
                if arguments.dropFirst(2).contains(where: { !$0.quoted && $0.text.uppercased() == "PASSWORD" }) { return }
                throw .forbidden("only the admin adds users without a password (USER ADD <handle> [<name>] PASSWORD <password>)")
            case "SET":
                guard arguments.count >= 2 else { return }
                actor = arguments[1].text
            default:
                return
            }
        case "POST", "REPLY", "QUOTE", "RETWEET", "UNRETWEET", "LIKE", "UNLIKE", "DELETE", "FOLLOW", "UNFOLLOW",
             "NOTIFICATIONS", "PASSWORD":
            guard let first = arguments.first else { return }
            actor = first.text
        case "IMPORT":
            throw .forbidden("only the admin imports")
        default:
            return
        }
        let named = Self.foldedHandle(actor)
        guard let account else { throw .forbidden("\(verb) acts as @\(named); AUTH as that user first") }
        guard Self.foldedHandle(account.handle) == named else {
            throw .forbidden("logged in as @\(account.handle); \(verb) as @\(named) is not allowed")
        }
    }

    static func foldedHandle(_ text: String) -> String {
        (text.hasPrefix("@") ? String(text.dropFirst()) : text).lowercased()
    }

    private func importTweets(_ args: inout Arguments) throws(SocialError) -> Response {
        let path = try args.word("path")
        try args.end()
        let report = try db.importTweets(path: path, progress: importProgress)
        finishProgress()
        let written = report.tweetsImported + report.retweetsImported + report.nestedImported
        var human = "imported \(written) tweets from \(report.lines) lines: \(report.tweetsImported) tweets, "
            + "\(report.retweetsImported) retweets, \(report.nestedImported) nested; \(report.alreadyPresent) already there; "
            + "\(report.usersCreated) users created, \(report.usersFound) found"
        if report.badLines > 0 {
            human += "\nskipped bad lines: \(report.badLines)"
            for sample in report.badLineSamples.prefix(10) { human += "\n  line \(sample.line): \(sample.reason)" }
            if report.badLines > 10 { human += "\n  ..." }
        }
        return .ok(fields: [
            ("lines", .int(report.lines)), ("tweets", .int(report.tweetsImported)), ("retweets", .int(report.retweetsImported)),
            ("nested", .int(report.nestedImported)), ("already_present", .int(report.alreadyPresent)),
            ("users_created", .int(report.usersCreated)), ("users_found", .int(report.usersFound)),
            ("bad_lines", .int(report.badLines)),
            ("bad", .array(report.badLineSamples.map { .object([("line", .int($0.line)), ("reason", .string($0.reason))]) })),
        ], human: human)
    }

    private func handleAndID(_ args: inout Arguments) throws(SocialError) -> (String, UInt64) {
        let handle = try args.word("handle")
        let id = try args.id("tweet-id")
        try args.end()
        return (handle, id)
    }

    private func tweetResponse(_ tweet: Tweet) -> Response {
        .tweets(fields: [("tweet", .tweet(tweet))], list: [tweet], more: nil, empty: "")
    }

    /// A page of HOME or TWEETS served from the tweets' cached JSON (the shell answers in JSON):
    /// `page` holds `[` and the tweets.
    /// About the bytes of a page of `limit` tweets, for its buffer's first capacity: the LIMIT
    /// as typed, so clamped to the largest page (a LIMIT of 10^11 is an `invalid` answer, not
    /// a 50 TB allocation that ends the process).
    static func pageBytesGuess(_ limit: Int) -> Int {
        min(max(limit, 0), SocialDB.pageLimitMax) * 512
    }

    private func encodedPage(_ page: [UInt8], _ next: UInt64?) -> Response {
        var page = page
        page.append(UInt8(ascii: "]"))
        return .json(fields: [("tweets", .raw(page)), ("next", cursorJSON(next))])
    }

    /// A page of HOME or TWEETS: `tweets` and `next`, each form rendered only when asked for.
    private func tweetPage(_ page: Page<Tweet>) -> Response {
        .tweets(fields: [("tweets", .tweets(page.items)), ("next", cursorJSON(page.nextCursor))],
                list: page.items, more: page.nextCursor, empty: "(no tweets)")
    }
}

/// The words after a verb, consumed left to right.
struct Arguments {
    var words: [Tokenizer.Word]
    let verb: String

    init(words: [Tokenizer.Word], verb: String) {
        self.words = words
        self.verb = verb
    }

    /// The verb's usage line, for error messages (looked up only when one is made).
    var usage: String { commandInfo(verb)?.usage ?? verb }

    mutating func word(_ name: String) throws(SocialError) -> String {
        guard !words.isEmpty else { throw .syntax("missing <\(name)> (usage: \(usage))") }
        return words.removeFirst().text
    }

    mutating func keyword(_ choices: [String]) throws(SocialError) -> String {
        guard let first = words.first else { throw .syntax("expected \(choices.joined(separator: " or ")) (usage: \(usage))") }
        let upper = first.text.uppercased()
        guard !first.quoted, choices.contains(upper) else {
            throw .syntax("expected \(choices.joined(separator: " or ")), not '\(first.text)' (usage: \(usage))")
        }
        words.removeFirst()
        return upper
    }

    mutating func id(_ name: String) throws(SocialError) -> UInt64 {
        let text = try word(name)
        guard let id = UInt64(text) else { throw .invalid("<\(name)> must be a number (a tweet id), not '\(text)'") }
        return id
    }

    /// Everything left, joined by single spaces (the text of POST, REPLY, QUOTE, USER SET).
    mutating func rest() -> String {
        defer { words = [] }
        return words.map(\.text).joined(separator: " ")
    }

    func end() throws(SocialError) {
        guard words.isEmpty else { throw .syntax("unexpected '\(words[0].text)' (usage: \(usage))") }
    }

    /// The words as typed, quotes restored around quoted ones (a search query keeps its
    /// `"exact phrase"`; a `"` inside one is dropped), joined by single spaces; consumes them.
    mutating func rawText() -> String {
        defer { words = [] }
        return words.map { word in
            guard word.quoted else { return word.text }
            return "\"" + String(word.text.filter { $0 != "\"" }) + "\""
        }.joined(separator: " ")
    }

    /// `LIMIT n` and/or a cursor clause at the end of free text (SEARCH): taken off the end,
    /// in either order, each at most once.
    mutating func trailingClauses(_ allowed: [String]) throws(SocialError) -> (limit: Int?, cursor: UInt64?) {
        var limit: Int?
        var cursor: UInt64?
        while words.count >= 3 {
            let keyword = words[words.count - 2]
            let upper = keyword.text.uppercased()
            guard !keyword.quoted, allowed.contains(upper) else { break }
            let value = words[words.count - 1].text
            if upper == "LIMIT" {
                guard limit == nil else { throw .syntax("LIMIT given twice") }
                guard let n = Int(value) else { throw .invalid("LIMIT must be a number, not '\(value)'") }
                limit = n
            } else {
                guard cursor == nil else { throw .syntax("\(upper) given twice") }
                guard let n = UInt64(value) else { throw .invalid("\(upper) must be an id, not '\(value)'") }
                cursor = n
            }
            words.removeLast(2)
        }
        return (limit, cursor)
    }

    /// Trailing `LIMIT n` and one cursor clause (`AFTER` or `BEFORE`), in any order.
    mutating func clauses(_ allowed: [String]) throws(SocialError) -> (limit: Int?, cursor: UInt64?) {
        var limit: Int?
        var cursor: UInt64?
        while !words.isEmpty {
            let keyword = try self.keyword(allowed)
            guard let value = words.first?.text else { throw .syntax("\(keyword) needs a value (usage: \(usage))") }
            words.removeFirst()
            if keyword == "LIMIT" {
                guard limit == nil else { throw .syntax("LIMIT given twice") }
                guard let n = Int(value) else { throw .invalid("LIMIT must be a number, not '\(value)'") }
                limit = n
            } else {
                guard cursor == nil else { throw .syntax("\(keyword) given twice") }
                guard let n = UInt64(value) else { throw .invalid("\(keyword) must be an id, not '\(value)'") }
                cursor = n
            }
        }
        return (limit, cursor)
    }
}

// MARK: Rendering

func userJSON(_ user: User) -> JSONValue {
    .object([
        ("id", .string(String(user.id))), ("handle", .string(user.handle)), ("name", .string(user.name)), ("bio", .string(user.bio)),
        ("created_at", .string(TimeFormat.iso8601(user.createdAtMilliseconds))),
        ("followers", .int(user.followerCount)), ("following", .int(user.followingCount)), ("tweets", .int(user.tweetCount)),
    ])
}

func userText(_ user: User) -> String {
    var lines = ["@\(user.handle) (\(user.name))", "  id \(user.id), joined \(TimeFormat.human(user.createdAtMilliseconds))",
                 "  followers \(user.followerCount) · following \(user.followingCount) · tweets \(user.tweetCount)"]
    if !user.bio.isEmpty { lines.append("  bio: \(user.bio)") }
    return lines.joined(separator: "\n")
}

func cursorJSON(_ cursor: UInt64?) -> JSONValue { cursor.map { .string(String($0)) } ?? .null }

/// One tweet as a JSON object, written into `out` field by field (the fields of Docs/SHELL.md,
/// in that order; a retweet or quote nests the original the same way).
func renderTweetJSON(_ tweet: Tweet, into out: inout [UInt8]) {
    JSONTweetEncoding.encodeView(tweet, likes: tweet.likeCount, retweets: tweet.retweetCount, replies: tweet.replyCount,
                                 quotes: tweet.quoteCount, into: &out)
    JSONBytes.append(",\"retweeted\":", to: &out)
    if let retweeted = tweet.retweeted { renderTweetJSON(retweeted, into: &out) } else { JSONBytes.append("null", to: &out) }
    JSONBytes.append(",\"quoted\":", to: &out)
    if let quoted = tweet.quoted { renderTweetJSON(quoted, into: &out) } else { JSONBytes.append("null", to: &out) }
    out.append(UInt8(ascii: "}"))
}

/// A tweet's JSON object in parts: its fields up to its counts (`encodeView`, from `{"id":` to
/// `"quotes":N`, which `SocialDB` keeps per tweet for pages until the tweet or its counts
/// change), then its nested tweets and closing brace, written at every read. `renderTweetJSON`
/// (from a `Tweet`) writes the same fields through `encodeView`, and `SocialDB.appendEncodedHome`
/// and the like write the same punctuation through the other methods, so the bytes are the
/// same whichever path a page took.
enum JSONTweetEncoding: TweetViewEncoding {
    static func encodeView(_ tweet: Tweet, likes: Int, retweets: Int, replies: Int, quotes: Int, into out: inout [UInt8]) {
        func strings(_ values: [String], _ out: inout [UInt8]) {
            out.append(UInt8(ascii: "["))
            var first = true
            for value in values {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONBytes.appendString(value, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONBytes.append("{\"id\":", to: &out); JSONBytes.appendID(tweet.id, to: &out)
        JSONBytes.append(",\"author\":", to: &out); JSONBytes.appendString(tweet.authorHandle, to: &out)
        JSONBytes.append(",\"author_id\":", to: &out); JSONBytes.appendID(tweet.authorID, to: &out)
        JSONBytes.append(",\"created_at\":\"", to: &out); TimeFormat.appendISO8601(tweet.createdAtMilliseconds, to: &out)
        JSONBytes.append("\",\"text\":", to: &out); JSONBytes.appendString(tweet.text, to: &out)
        JSONBytes.append(",\"reply_to\":", to: &out); JSONBytes.appendID(tweet.replyTo, to: &out)
        JSONBytes.append(",\"conversation_id\":", to: &out); JSONBytes.appendID(tweet.conversationID, to: &out)
        JSONBytes.append(",\"retweet_of\":", to: &out); JSONBytes.appendID(tweet.retweetOf, to: &out)
        JSONBytes.append(",\"quote_of\":", to: &out); JSONBytes.appendID(tweet.quoteOf, to: &out)
        JSONBytes.append(",\"mentions\":", to: &out); strings(tweet.mentions, &out)
        JSONBytes.append(",\"hashtags\":", to: &out); strings(tweet.hashtags, &out)
        JSONBytes.append(",\"urls\":", to: &out); strings(tweet.urls, &out)
        JSONBytes.append(",\"likes\":", to: &out); JSONBytes.appendInteger(likes, to: &out)
        JSONBytes.append(",\"retweets\":", to: &out); JSONBytes.appendInteger(retweets, to: &out)
        JSONBytes.append(",\"replies\":", to: &out); JSONBytes.appendInteger(replies, to: &out)
        JSONBytes.append(",\"quotes\":", to: &out); JSONBytes.appendInteger(quotes, to: &out)
    }

    static func appendBeforeNested(_ kind: NestedTweetKind, into out: inout [UInt8]) {
        switch kind {
        case .retweeted: JSONBytes.append(",\"retweeted\":", to: &out)
        case .quoted: JSONBytes.append(",\"quoted\":", to: &out)
        }
    }

    static func appendAfterNestedTweet(into out: inout [UInt8]) { JSONBytes.append(",\"retweeted\":null,\"quoted\":null}", to: &out) }
    static func appendAbsentNested(into out: inout [UInt8]) { JSONBytes.append("null", to: &out) }
    static func appendAfterTweet(into out: inout [UInt8]) { out.append(UInt8(ascii: "}")) }
    static func appendSeparator(into out: inout [UInt8]) { out.append(UInt8(ascii: ",")) }
}

func tweetText(_ tweet: Tweet, indent: String = "") -> [String] {
    if let original = tweet.retweeted {
        return ["\(indent)\(tweet.id)  @\(tweet.authorHandle) retweeted  \(TimeFormat.human(tweet.createdAtMilliseconds))"]
            + tweetText(original, indent: indent + "  ")
    }
    var header = "\(indent)\(tweet.id)  @\(tweet.authorHandle)  \(TimeFormat.human(tweet.createdAtMilliseconds))"
    if let parent = tweet.replyTo { header += "  reply to \(parent)" }
    var lines = [header]
    for line in tweet.text.split(separator: "\n", omittingEmptySubsequences: false) { lines.append("\(indent)  \(line)") }
    if let quoted = tweet.quoted {
        lines += tweetText(quoted, indent: indent + "  | ")
    } else if let quoteOf = tweet.quoteOf {
        lines.append("\(indent)  | \(quoteOf) is no longer available")
    }
    lines.append("\(indent)  likes \(tweet.likeCount) · retweets \(tweet.retweetCount) · replies \(tweet.replyCount) · quotes \(tweet.quoteCount)")
    return lines
}

func tweetsText(_ tweets: [Tweet], empty: String) -> String {
    if tweets.isEmpty { return empty }
    return tweets.map { tweetText($0).joined(separator: "\n") }.joined(separator: "\n\n")
}

/// UTC times without Foundation: days since 1970 to a civil date (Howard Hinnant's algorithm).
enum TimeFormat {
    static func parts(_ milliseconds: UInt64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        let ms = Int(milliseconds)
        let days = ms / 86_400_000
        let inDay = ms % 86_400_000
        let z = days + 719_468
        let era = z / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day, inDay / 3_600_000, inDay / 60_000 % 60, inDay / 1000 % 60, inDay % 1000)
    }

    static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// `2025-01-31T12:00:00.000Z`, written digit by digit into one 24-byte string (the server
    /// renders one per tweet of every page).
    static func iso8601(_ milliseconds: UInt64) -> String {
        String(unsafeUninitializedCapacity: 24) { writeISO8601(milliseconds, into: $0) }
    }

    /// `iso8601` appended to a byte buffer (one per tweet of a JSON page): written on the stack,
    /// appended in one copy.
    static func appendISO8601(_ milliseconds: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            let count = writeISO8601(milliseconds, into: buffer)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Writes the 24 bytes of `iso8601` into `buffer` (room for 24) and returns 24.
    private static func writeISO8601(_ milliseconds: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let p = parts(milliseconds)
        var i = 0
        func digits(_ value: Int, _ width: Int) {
            var v = value
            for k in stride(from: width - 1, through: 0, by: -1) {
                buffer[i + k] = UInt8(truncatingIfNeeded: 48 + v % 10)
                v /= 10
            }
            i += width
        }
        func byte(_ c: UInt8) { buffer[i] = c; i += 1 }
        digits(p.year, 4); byte(UInt8(ascii: "-")); digits(p.month, 2); byte(UInt8(ascii: "-")); digits(p.day, 2)
        byte(UInt8(ascii: "T")); digits(p.hour, 2); byte(UInt8(ascii: ":")); digits(p.minute, 2); byte(UInt8(ascii: ":"))
        digits(p.second, 2); byte(UInt8(ascii: ".")); digits(p.millisecond, 3); byte(UInt8(ascii: "Z"))
        return i
    }

    /// `2025-01-31 12:00:00Z`
    static func human(_ milliseconds: UInt64) -> String {
        let p = parts(milliseconds)
        return "\(pad(p.year, 4))-\(pad(p.month, 2))-\(pad(p.day, 2)) \(pad(p.hour, 2)):\(pad(p.minute, 2)):\(pad(p.second, 2))Z"
    }
}
