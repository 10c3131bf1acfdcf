import StorageEngine

/// A hashtag and how many tweets of the trend window carry it.
public struct Trend: Sendable, Equatable {
    /// With its `#`, folded (lowercase, accents removed) as the index counts it.
    public var tag: String
    public var count: Int
}

extension SocialDB {
    // MARK: Search

    /// Tweets matching `query` (Twitter's search-box syntax: terms ANDed, `OR`, `-term`,
    /// `#hashtag`, `@mention`, `from:handle`, `"exact phrase"`), newest first, below `before`
    /// (exclusive). A malformed query is `invalid` with the parser's message. Deleted tweets
    /// never appear. A retweet is indexed under `from:` its retweeter and `is:retweet` only.
    public func search(_ query: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil) throws(SocialError) -> Page<Tweet> {
        try answering { () throws(SocialError) -> Page<Tweet> in
            try Self.checkLimit(limit)
            guard !query.allSatisfy(\.isWhitespace) else { throw .invalid("the search query is empty") }
            var ids: [UInt64]
            do throws(SearchQueryError) { ids = try consumers.search.search(query, before: before, limit: limit + 1) } catch {
                throw .invalid("search query: \(error.message)")
            }
            let more = ids.count > limit
            if more { ids.removeLast() }
            return Page(items: try tweets(ids: ids), nextCursor: more ? ids.last : nil)
        }
    }

    /// Users whose handle or a word of whose display name starts with `prefix` (folded; a
    /// leading `@` ignored), most followers first, ties by handle ignoring case.
    public func searchUsers(_ prefix: String, limit: Int = SocialDB.pageLimitDefault) throws(SocialError) -> [User] {
        try answering { () throws(SocialError) -> [User] in
            try Self.checkLimit(limit)
            guard !prefix.allSatisfy({ $0.isWhitespace || $0 == "@" }) else { throw .invalid("the user search text is empty") }
            var users: [User] = []
            for found in consumers.search.searchUsers(prefix: prefix, limit: limit) {
                guard let record = try userRecord(id: found.id) else { continue }
                users.append(try makeUser(record))
            }
            return users
        }
    }

    /// How far back `trends` looks: the last 24 hours.
    public static var trendWindowMilliseconds: UInt64 { Consumers.trendWindowMilliseconds }

    /// The top hashtags of the tweets posted in the last 24 hours (by their time), most used
    /// first, ties by tag; a tweet counts once for each tag it has. A deleted tweet stops counting
    /// at once.
    public func trends(limit: Int = SocialDB.pageLimitDefault) throws(SocialError) -> [Trend] {
        try answering { () throws(SocialError) -> [Trend] in
            try Self.checkLimit(limit)
            return consumers.search.trends(nowMilliseconds: options.wallClockMilliseconds(),
                                           windowMilliseconds: Self.trendWindowMilliseconds, limit: limit)
                .map { Trend(tag: $0.tag, count: $0.count) }
        }
    }
}
