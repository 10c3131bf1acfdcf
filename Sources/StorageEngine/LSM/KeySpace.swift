/// The logical key spaces of the tweet store, sharing one tree: the first key byte names the
/// space, the rest is big-endian so byte order is numeric order. Flushes and compactions cut
/// tables where the space changes, so the increasing ids of `tweets` stay in tables of their own
/// that compaction moves instead of rewriting.
public enum KeySpace: UInt8, Sendable, CaseIterable {
    /// tweet id -> TweetRecord
    case tweets = 1
    /// (author id, tweet id) -> empty: an author's tweets, read newest first
    case tweetsByAuthor = 2
    /// user id -> user record
    case users = 3
    /// lowercased handle -> user id
    case usersByHandle = 4
    /// (tweet id, user id) -> empty: who liked a tweet
    case likes = 5
    /// (tweet id, user id) -> retweet id: who retweeted a tweet
    case retweets = 6
    /// (tweet id, reply id) -> empty: the replies to a tweet
    case replies = 7
    /// (user id, tweet id) -> empty: what a user liked
    case likesByUser = 8
    /// dense user number (the graph's UInt32) -> user id (u64 little-endian)
    case usersByNumber = 9
    /// (conversation root id, reply id) -> empty: a conversation's replies in time order
    case conversations = 10
    /// (id, counter kind) -> u64 little-endian: per-user and per-tweet counts kept in the same
    /// batch as the change they count (the kinds are the Social layer's, see FORMATS.md)
    case counters = 11
    /// (recipient id, sort id, kind, actor id, subject id) -> time: a user's notifications,
    /// read newest first (the Social layer's layout, see FORMATS.md)
    case notifications = 12
    /// what a notification was caused by -> where it is, so undoing the cause removes it
    case notificationCauses = 13
    /// user id -> account record: a salted password hash and a role (the Social layer's
    /// layout, see FORMATS.md, "Accounts")
    case accounts = 14
    /// engine metadata (counters, id floors)
    case meta = 0x7F
}

/// Builds keys of the key spaces without allocating more than the key itself.
public enum Keys {
    @inlinable
    public static func one(_ space: KeySpace, _ a: UInt64) -> [UInt8] {
        var k = [UInt8](repeating: 0, count: 9)
        k.withUnsafeMutableBytes { p in
            p[0] = space.rawValue
            p.storeBytes(of: a.bigEndian, toByteOffset: 1, as: UInt64.self)
        }
        return k
    }

    @inlinable
    public static func two(_ space: KeySpace, _ a: UInt64, _ b: UInt64) -> [UInt8] {
        var k = [UInt8](repeating: 0, count: 17)
        k.withUnsafeMutableBytes { p in
            p[0] = space.rawValue
            p.storeBytes(of: a.bigEndian, toByteOffset: 1, as: UInt64.self)
            p.storeBytes(of: b.bigEndian, toByteOffset: 9, as: UInt64.self)
        }
        return k
    }

    @inlinable
    public static func text(_ space: KeySpace, _ s: String) -> [UInt8] {
        var k: [UInt8] = [space.rawValue]
        k.append(contentsOf: s.utf8)
        return k
    }

    public static func tweet(_ id: UInt64) -> [UInt8] { one(.tweets, id) }
    public static func authorTweet(author: UInt64, tweet: UInt64) -> [UInt8] { two(.tweetsByAuthor, author, tweet) }

    /// Reads the big-endian u64 at `offset` of a key.
    @inlinable
    public static func number(_ key: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        UInt64(bigEndian: key.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

extension LSMTree {
    /// The newest `limit` tweet ids of `author` below `before` (exclusive), newest first: a
    /// reverse scan of the author key space.
    public func authorTweets(author: UInt64, before: UInt64 = UInt64.max, limit: Int = 20) throws(LSMError) -> [UInt64] {
        var ids: [UInt64] = []
        ids.reserveCapacity(min(limit, 1000))
        try scan(from: Keys.authorTweet(author: author, tweet: 0), to: Keys.authorTweet(author: author, tweet: before),
                 reverse: true, limit: limit) { key, _ in
            ids.append(Keys.number(key, at: 9))
            return true
        }
        return ids
    }
}
