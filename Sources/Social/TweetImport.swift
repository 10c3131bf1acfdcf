import Foundation
import StorageEngine

/// What `importTweets` did.
public struct TweetImportReport: Sendable {
    /// Lines in the file, blank ones among them.
    public var lines = 0
    public var blankLines = 0
    /// Tweets written: originals, replies and quotes of the file's lines, retweets, and the
    /// tweets nested in lines (`retweeted_status`, `quoted_status`) that were not stored yet.
    public var tweetsImported = 0
    public var retweetsImported = 0
    public var nestedImported = 0
    /// Lines whose tweet was stored already (an earlier import): skipped, not bad.
    public var alreadyPresent = 0
    public var usersCreated = 0
    public var usersFound = 0
    /// Lines skipped, and the first `badLineSamplesMax` of them with the reason, by line.
    public var badLines = 0
    public var badLineSamples: [(line: Int, reason: String)] = []
    public static let badLineSamplesMax = 100

    mutating func bad(_ line: Int, _ reason: String) {
        badLines += 1
        badLineSamples.append((line, reason))
    }
}

/// One tweet read from a line (a line with a retweet or a quote gives two or three).
struct ImportedTweet {
    var id: UInt64
    var line: Int
    /// From the file's line itself, not nested in another tweet.
    var topLevel: Bool
    var time: UInt64
    var text: String
    var handle: String
    var name: String
    /// The Twitter user id, to find the same user again within one import.
    var userKey: String
    var replyTo: UInt64?
    var quoteOf: UInt64?
    var retweetOf: UInt64?
    var mentions: [String]
    var hashtags: [String]
    var urls: [String]
}

/// Parses Twitter API v1.1 tweet objects (one JSON object a line).
enum TweetLineParser {
    static let textLengthMax = 1000

    struct Failure: Error { var reason: String }

    /// The tweets of one line's object, nested ones first.
    static func parse(line: Int, object: Any, topLevel: Bool = true) throws(Failure) -> [ImportedTweet] {
        guard let object = object as? [String: Any] else { throw Failure(reason: "not a JSON object") }
        let id = try tweetID(object)
        guard let createdAt = object["created_at"] as? String else { throw Failure(reason: "missing created_at") }
        guard let time = parseTime(createdAt) else {
            throw Failure(reason: "created_at '\(createdAt)' is not like \"Wed Oct 10 20:19:24 +0000 2018\"")
        }
        guard let user = object["user"] as? [String: Any] else { throw Failure(reason: "missing user") }
        let (handle, userKey) = try userHandle(user)
        var name = (user["name"] as? String) ?? handle
        if name.isEmpty || name.contains(where: { $0.isNewline }) { name = handle }
        if name.count > TextRules.nameLengthMax { name = String(name.prefix(TextRules.nameLengthMax)) }
        var result: [ImportedTweet] = []
        var tweet = ImportedTweet(id: id, line: line, topLevel: topLevel, time: time, text: "", handle: handle, name: name,
                                  userKey: userKey, mentions: [], hashtags: [], urls: [])
        if let original = object["retweeted_status"], !(original is NSNull) {
            let nested: [ImportedTweet]
            do { nested = try parse(line: line, object: original, topLevel: false) } catch {
                throw Failure(reason: "retweeted_status: \(error.reason)")
            }
            result += nested
            tweet.retweetOf = nested.last!.id
            result.append(tweet)
            return result
        }
        let extended = object["extended_tweet"] as? [String: Any]
        guard let raw = (object["full_text"] as? String) ?? (extended?["full_text"] as? String) ?? (object["text"] as? String) else {
            throw Failure(reason: "missing full_text and text")
        }
        let text = unescape(raw)
        guard text.contains(where: { !$0.isWhitespace }) else { throw Failure(reason: "the text is empty") }
        let count = text.count
        guard count <= textLengthMax else { throw Failure(reason: "the text is \(count) characters; at most \(textLengthMax)") }
        tweet.text = text
        if let parent = object["in_reply_to_status_id_str"] as? String {
            guard let parentID = UInt64(parent), parentID > 0 else { throw Failure(reason: "in_reply_to_status_id_str '\(parent)' is not an id") }
            tweet.replyTo = parentID
        }
        if let quoted = object["quoted_status"], !(quoted is NSNull) {
            let nested: [ImportedTweet]
            do { nested = try parse(line: line, object: quoted, topLevel: false) } catch {
                throw Failure(reason: "quoted_status: \(error.reason)")
            }
            result += nested
            tweet.quoteOf = nested.last!.id
        } else if let quoted = object["quoted_status_id_str"] as? String, let quotedID = UInt64(quoted), quotedID > 0 {
            tweet.quoteOf = quotedID
        }
        // Entities as Twitter found them; the text's own when the object has none.
        let entities = (extended?["entities"] as? [String: Any]) ?? (object["entities"] as? [String: Any])
        if let entities {
            tweet.hashtags = (entities["hashtags"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            tweet.mentions = (entities["user_mentions"] as? [[String: Any]] ?? []).compactMap { $0["screen_name"] as? String }
            tweet.urls = (entities["urls"] as? [[String: Any]] ?? []).compactMap { ($0["expanded_url"] as? String) ?? ($0["url"] as? String) }
        } else {
            let found = Entities(text)
            tweet.hashtags = found.hashtags
            tweet.mentions = found.mentions
            tweet.urls = found.urls
        }
        result.append(tweet)
        return result
    }

    private static func tweetID(_ object: [String: Any]) throws(Failure) -> UInt64 {
        let text: String
        if let s = object["id_str"] as? String {
            text = s
        } else if let n = object["id"] as? Int {
            text = String(n)
        } else {
            throw Failure(reason: "missing id_str")
        }
        // Ids are positive and keep the top bit clear, like every snowflake.
        guard let id = UInt64(text), id > 0, id <= UInt64(Int64.max) else { throw Failure(reason: "id_str '\(text)' is not an id") }
        return id
    }

    /// The handle: `screen_name` when it is a valid handle, else `t` + the Twitter user id in
    /// base 36 (at most 14 characters); the second string identifies the user in the file.
    private static func userHandle(_ user: [String: Any]) throws(Failure) -> (String, String) {
        let userID = (user["id_str"] as? String) ?? (user["id"] as? Int).map { String($0) }
        if let screenName = user["screen_name"] as? String, let handle = TextRules.validHandle(screenName), !screenName.hasPrefix("@") {
            return (handle, userID ?? "@" + TextRules.folded(handle))
        }
        guard let userID, let number = UInt64(userID) else {
            throw Failure(reason: "the user has neither a valid screen_name nor an id_str")
        }
        return ("t" + String(number, radix: 36), userID)
    }

    /// Twitter's text escapes `&`, `<` and `>` as HTML entities.
    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// "Wed Oct 10 20:19:24 +0000 2018" in Unix milliseconds (from 1970 on), or nil.
    static func parseTime(_ text: String) -> UInt64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, let monthIndex = months.firstIndex(of: String(parts[1])),
              let day = Int(parts[2]), day >= 1, day <= 31, let year = Int(parts[5]), year >= 1970, year <= 9999 else { return nil }
        let clock = parts[3].split(separator: ":")
        guard clock.count == 3, let h = Int(clock[0]), let m = Int(clock[1]), let s = Int(clock[2]),
              h < 24, m < 60, s < 61, h >= 0, m >= 0, s >= 0 else { return nil }
        let zone = parts[4]
        guard zone.count == 5, let sign = zone.first, sign == "+" || sign == "-",
              let hh = Int(zone.dropFirst().prefix(2)), let mm = Int(zone.suffix(2)) else { return nil }
        let offset = (hh * 3600 + mm * 60) * (sign == "+" ? 1 : -1)
        // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
        let month = monthIndex + 1
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + h * 3600 + m * 60 + s - offset
        guard seconds >= 0 else { return nil }
        return UInt64(seconds) * 1000
    }
}

extension SocialDB {
    // MARK: Importing tweets

    /// Imports tweets from JSON lines in the Twitter API v1.1 shape (archives and API dumps):
    /// `id_str`, `full_text` or `text`, `created_at`, `user` {`id_str`, `screen_name`, `name`},
    /// `in_reply_to_status_id_str`, `retweeted_status`, `quoted_status`, `entities`.
    ///
    /// - Tweets keep their ids, authors and times and may have up to 1,000 characters (the 280
    ///   limit is for new posts). A retweet's or quote's nested tweet is imported too, first.
    /// - Authors are found by handle (ignoring case) or created: the handle is `screen_name`
    ///   when valid, else `t` + the Twitter user id in base 36; the name is `name` (cut to 50).
    /// - A bad line (not JSON, a field missing or wrong, too long, an id already on an earlier
    ///   line) is skipped with its line number and reason; the rest is imported. A tweet that
    ///   is stored already counts as `alreadyPresent`, so rerunning an import is safe.
    /// - Tweets are written in id order in batches through the same pipeline as posts (tweet
    ///   store, author index, counters, notifications, then timelines and search from the log).
    ///   Authors are created before any tweet, so mentions resolve to the file's users and
    ///   to users that existed before (others are not mentions, as with POST).
    /// - Afterwards the id generator is past the largest id: Twitter's ids count from 2010, so
    ///   in our epoch (2024) they read as years ahead, and every later id is above them (their
    ///   records take the wall clock as their time; see `creationTime(of:)`).
    ///
    /// The file is read and parsed whole before writing; the writer lock is held while writing.
    public func importTweets(path: String, progress: ((ImportProgress) -> Void)? = nil) throws(SocialError) -> TweetImportReport {
        try answering { () throws(SocialError) -> TweetImportReport in
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                if !FileManager.default.fileExists(atPath: path) { throw .notFound("no file \(path)") }
                throw .io("reading \(path): \(error)")
            }
            var report = TweetImportReport()
            var parsed: [ImportedTweet] = []
            // Where each id came from: the line of a top-level tweet, or 0 for a nested one.
            var seen: [UInt64: Int] = [:]
            var indexOf: [UInt64: Int] = [:]
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let bytes = raw.bindMemory(to: UInt8.self)
                var start = 0
                var line = 0
                while start < bytes.count {
                    var end = start
                    while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                    line += 1
                    report.lines += 1
                    defer { start = end + 1 }
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                        report.blankLines += 1
                        continue
                    }
                    if line % 1000 == 0 { progress?(ImportProgress(phase: "reading", done: end, total: bytes.count)) }
                    let object: Any
                    do { object = try JSONSerialization.jsonObject(with: Data(slice)) } catch {
                        report.bad(line, "not valid JSON")
                        continue
                    }
                    let tweets: [ImportedTweet]
                    do throws(TweetLineParser.Failure) { tweets = try TweetLineParser.parse(line: line, object: object) } catch {
                        report.bad(line, error.reason)
                        continue
                    }
                    let top = tweets.last!
                    if let first = seen[top.id], first > 0 {
                        report.bad(line, "duplicate id \(top.id) (first on line \(first))")
                        continue
                    }
                    for tweet in tweets {
                        if let index = indexOf[tweet.id] {
                            // Seen nested before: the top-level copy replaces it (same tweet).
                            if tweet.topLevel { parsed[index] = tweet; seen[tweet.id] = line }
                            continue
                        }
                        seen[tweet.id] = tweet.topLevel ? line : 0
                        indexOf[tweet.id] = parsed.count
                        parsed.append(tweet)
                    }
                }
            }
            seen = [:]
            indexOf = [:]
            // In id order: nested originals before their retweets, and the search index takes
            // documents in increasing id order without sealing a segment for each.
            parsed.sort { $0.id < $1.id }
            if let largest = parsed.last?.id { ids.advance(past: Snowflake(rawValue: largest)) }
            try writing { () throws(SocialError) in
                try writeImported(parsed, report: &report, progress: progress)
            }
            report.badLineSamples.sort { $0.line < $1.line }
            if report.badLineSamples.count > TweetImportReport.badLineSamplesMax {
                report.badLineSamples.removeLast(report.badLineSamples.count - TweetImportReport.badLineSamplesMax)
            }
            return report
        }
    }

    /// Writes the parsed tweets in batches (the writer lock is held). A batch's own records are
    /// not in the tree until it commits, so they are looked up in `batch` first.
    private func writeImported(_ tweets: [ImportedTweet], report: inout TweetImportReport,
                               progress: ((ImportProgress) -> Void)?) throws(SocialError) {
        var nextNumber: UInt64 = try value(SocialKeys.nextUserNumber)?.u64 ?? 0
        var usersByKey: [String: UserRecord] = [:]
        var usersByHandle: [String: UserRecord] = [:]
        var changes = ChangeSet()
        var batch: [UInt64: TweetRecord] = [:]
        var batchRoots: [UInt64: UInt64] = [:]
        var batchRetweets: Set<[UInt8]> = []

        func stored(_ id: UInt64) throws(SocialError) -> TweetRecord? {
            if let record = batch[id] { return record }
            return try tweetRecord(id)
        }
        func findUser(handle: String) throws(SocialError) -> UserRecord? {
            let folded = TextRules.folded(handle)
            if let record = usersByHandle[folded] { return record }
            guard let id = try value(SocialKeys.handle(folded))?.u64, let record = try userRecord(id: id) else { return nil }
            usersByHandle[folded] = record
            return record
        }
        func author(of tweet: ImportedTweet) throws(SocialError) -> UserRecord {
            if let record = usersByKey[tweet.userKey] { return record }
            let record: UserRecord
            if let existing = try findUser(handle: tweet.handle) {
                record = existing
                report.usersFound += 1
            } else {
                record = try addUser(handle: tweet.handle, name: tweet.name, to: &changes, nextNumber: nextNumber)
                nextNumber += 1
                usersByHandle[TextRules.folded(tweet.handle)] = record
                report.usersCreated += 1
            }
            usersByKey[tweet.userKey] = record
            return record
        }
        func flush() throws(SocialError) {
            try changes.commit(to: self)
            changes = ChangeSet()
            batch = [:]
            batchRoots = [:]
            batchRetweets = []
        }

        // Every author first, so mentions of the file's own users resolve whatever the order.
        for tweet in tweets where usersByKey[tweet.userKey] == nil {
            _ = try author(of: tweet)
            // Four entries a user.
            if changes.entries.count >= 3600 { try flush() }
        }
        for (index, tweet) in tweets.enumerated() {
            if try stored(tweet.id) != nil {
                if tweet.topLevel { report.alreadyPresent += 1 }
                continue
            }
            let user = try author(of: tweet)
            let record: TweetRecord
            if let originalID = tweet.retweetOf {
                // A retweet of a retweet is a retweet of its original, as with RETWEET.
                var original = try stored(originalID)
                if let inner = original?.retweetOf { original = try stored(inner) }
                guard let original else {
                    report.bad(tweet.line, "the retweeted tweet \(originalID) is not stored")
                    continue
                }
                let key = Keys.two(.retweets, original.id, user.id)
                let retweetedBefore = try value(key) != nil
                if batchRetweets.contains(key) || retweetedBefore {
                    report.bad(tweet.line, "@\(user.handle) has already retweeted \(original.id)")
                    continue
                }
                record = TweetRecord(id: tweet.id, author: user.id, time: tweet.time, text: "", retweetOf: original.id)
                addRetweet(record, original: original, into: &changes)
                batchRetweets.insert(key)
                report.retweetsImported += 1
            } else {
                var mentionIDs: [UInt64] = []
                for handle in tweet.mentions {
                    guard let valid = TextRules.validHandle(handle), let mentioned = try findUser(handle: valid) else { continue }
                    if !mentionIDs.contains(mentioned.id) { mentionIDs.append(mentioned.id) }
                }
                var parent: TweetRecord?
                var quoted: TweetRecord?
                var root: UInt64?
                if let id = tweet.replyTo { parent = try stored(id) }
                if let id = tweet.quoteOf { quoted = try stored(id) }
                if let parent {
                    root = batchRoots[parent.id]
                    if root == nil { root = try conversationRoot(of: parent) }
                }
                record = TweetRecord(id: tweet.id, author: user.id, time: tweet.time, text: tweet.text,
                                     replyTo: tweet.replyTo, quoteOf: tweet.quoteOf, mentions: mentionIDs,
                                     hashtags: tweet.hashtags, urls: tweet.urls)
                addTweet(record, parent: parent, root: root, quoted: quoted, into: &changes)
                if let replyTo = tweet.replyTo { batchRoots[tweet.id] = root ?? replyTo }
                if tweet.topLevel { report.tweetsImported += 1 } else { report.nestedImported += 1 }
            }
            batch[record.id] = record
            // Well within one log record (at most `ChangeSet.entriesPerBatchMax` entries and
            // 4,096 events), so a batch is applied as one.
            if changes.entries.count >= 2500 || batch.count >= 500 {
                try flush()
                progress?(ImportProgress(phase: "tweets", done: index + 1, total: tweets.count))
            }
        }
        try flush()
        progress?(ImportProgress(phase: "tweets", done: tweets.count, total: tweets.count))
    }
}
