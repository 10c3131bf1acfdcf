import StorageEngine

/// A user's profile with its counts, as read at one moment.
public struct User: Sendable, Equatable, Hashable {
    /// The snowflake id.
    public var id: UInt64
    /// The handle as it was registered (lookups ignore case).
    public var handle: String
    public var name: String
    public var bio: String
    /// Milliseconds since the Unix epoch.
    public var createdAtMilliseconds: UInt64
    public var followerCount: Int
    public var followingCount: Int
    /// Tweets, replies, quotes and retweets the user has now (what `tweets` pages through).
    public var tweetCount: Int
}

/// A tweet, reply, quote or retweet with its counts, as read at one moment.
///
/// A retweet has an id of its own and its retweeter as author; the original is `retweeted`.
/// A quote carries the quoted tweet in `quoted` while that tweet exists.
///
/// Layout: what never changes while the tweet exists (ids, author, time, text, entities) sits
/// in one shared immutable `Content` object, so a copy of a `Tweet` (into a page, out of the
/// view cache) retains one reference instead of every string and array it holds, and a cached
/// view's slot is a few words instead of ~190 bytes; setting one of those properties makes a
/// new `Content` for this value only (copy on write). Counts and the nested tweets are inline.
public struct Tweet: Sendable, Equatable, Hashable {
    /// The immutable part of a tweet.
    struct Fields: Sendable, Equatable, Hashable {
        var id: UInt64
        var authorID: UInt64
        var authorHandle: String
        var createdAtMilliseconds: UInt64
        var text: String
        var replyTo: UInt64?
        var conversationID: UInt64
        var retweetOf: UInt64?
        var quoteOf: UInt64?
        var mentions: [String]
        var hashtags: [String]
        var urls: [String]
    }

    final class Content: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    /// The retweeted original and the quoted tweet, when there are any (most tweets: nil).
    final class Nested: Sendable {
        let retweeted: Tweet?
        let quoted: Tweet?
        init(retweeted: Tweet?, quoted: Tweet?) {
            self.retweeted = retweeted
            self.quoted = quoted
        }
    }

    private(set) var content: Content
    public var likeCount: Int
    public var retweetCount: Int
    public var replyCount: Int
    public var quoteCount: Int
    private var nested: Nested?

    init(id: UInt64, authorID: UInt64, authorHandle: String, createdAtMilliseconds: UInt64, text: String,
         replyTo: UInt64?, conversationID: UInt64, retweetOf: UInt64?, quoteOf: UInt64?,
         mentions: [String], hashtags: [String], urls: [String],
         likeCount: Int, retweetCount: Int, replyCount: Int, quoteCount: Int) {
        content = Content(Fields(id: id, authorID: authorID, authorHandle: authorHandle, createdAtMilliseconds: createdAtMilliseconds,
                                 text: text, replyTo: replyTo, conversationID: conversationID, retweetOf: retweetOf,
                                 quoteOf: quoteOf, mentions: mentions, hashtags: hashtags, urls: urls))
        self.likeCount = likeCount
        self.retweetCount = retweetCount
        self.replyCount = replyCount
        self.quoteCount = quoteCount
        nested = nil
    }

    /// A tweet with `content`, the given counts and no nested tweets (a cached view, counted).
    init(content: Content, likeCount: Int = 0, retweetCount: Int = 0, replyCount: Int = 0, quoteCount: Int = 0) {
        self.content = content
        self.likeCount = likeCount
        self.retweetCount = retweetCount
        self.replyCount = replyCount
        self.quoteCount = quoteCount
        nested = nil
    }

    /// Sets one immutable field: a new `Content` for this value (others keep theirs).
    private mutating func edit(_ change: (inout Fields) -> Void) {
        var fields = content.fields
        change(&fields)
        content = Content(fields)
    }

    public var id: UInt64 {
        get { content.fields.id }
        set { edit { $0.id = newValue } }
    }
    public var authorID: UInt64 {
        get { content.fields.authorID }
        set { edit { $0.authorID = newValue } }
    }
    public var authorHandle: String {
        get { content.fields.authorHandle }
        set { edit { $0.authorHandle = newValue } }
    }
    /// Milliseconds since the Unix epoch (the time inside the snowflake id).
    public var createdAtMilliseconds: UInt64 {
        get { content.fields.createdAtMilliseconds }
        set { edit { $0.createdAtMilliseconds = newValue } }
    }
    /// The text (empty for a retweet).
    public var text: String {
        get { content.fields.text }
        set { edit { $0.text = newValue } }
    }
    /// For a reply: the tweet it answers.
    public var replyTo: UInt64? {
        get { content.fields.replyTo }
        set { edit { $0.replyTo = newValue } }
    }
    /// The id of the conversation's first tweet (its own id unless it is a reply).
    public var conversationID: UInt64 {
        get { content.fields.conversationID }
        set { edit { $0.conversationID = newValue } }
    }
    /// For a retweet: the original's id.
    public var retweetOf: UInt64? {
        get { content.fields.retweetOf }
        set { edit { $0.retweetOf = newValue } }
    }
    /// For a quote: the quoted tweet's id (kept when that tweet is deleted).
    public var quoteOf: UInt64? {
        get { content.fields.quoteOf }
        set { edit { $0.quoteOf = newValue } }
    }
    /// Handles of the users mentioned who existed when it was posted, in text order.
    public var mentions: [String] {
        get { content.fields.mentions }
        set { edit { $0.mentions = newValue } }
    }
    /// Hashtags without `#`, as written.
    public var hashtags: [String] {
        get { content.fields.hashtags }
        set { edit { $0.hashtags = newValue } }
    }
    public var urls: [String] {
        get { content.fields.urls }
        set { edit { $0.urls = newValue } }
    }

    /// For a retweet: the original, with its current counts.
    public var retweeted: Tweet? {
        get { nested?.retweeted }
        set { setNested(retweeted: newValue, quoted: quoted) }
    }
    /// For a quote: the quoted tweet, while it exists (without its own nested tweets).
    public var quoted: Tweet? {
        get { nested?.quoted }
        set { setNested(retweeted: retweeted, quoted: newValue) }
    }
    public var isRetweet: Bool { content.fields.retweetOf != nil }

    /// Sets both nested tweets at once (one allocation, none when both are nil).
    mutating func setNested(retweeted: Tweet?, quoted: Tweet?) {
        nested = retweeted == nil && quoted == nil ? nil : Nested(retweeted: retweeted, quoted: quoted)
    }

    public static func == (a: Tweet, b: Tweet) -> Bool {
        guard a.likeCount == b.likeCount, a.retweetCount == b.retweetCount,
              a.replyCount == b.replyCount, a.quoteCount == b.quoteCount else { return false }
        guard a.content === b.content || a.content.fields == b.content.fields else { return false }
        return a.retweeted == b.retweeted && a.quoted == b.quoted
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(content.fields)
        hasher.combine(likeCount)
        hasher.combine(retweetCount)
        hasher.combine(replyCount)
        hasher.combine(quoteCount)
        hasher.combine(retweeted)
        hasher.combine(quoted)
    }
}

/// One page of a list, with the cursor that continues it (nil on the last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    /// Pass back as `after` (users) or `before` (tweets) for the next page; nil when there are no
    /// more items.
    public var nextCursor: UInt64?

    public init(items: [Item], nextCursor: UInt64?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

extension Page: Equatable where Item: Equatable {}

/// What `importFollows` did.
public struct FollowImportReport: Sendable {
    /// Lines read, comments among them, and lines skipped as malformed (with the first few).
    public var lines = 0
    public var commentLines = 0
    public var badLines = 0
    public var badLineSamples: [(line: Int, reason: String)] = []
    /// Edges in the file (self-follows and duplicates included) and edges in the graph after.
    public var edgesRead = 0
    public var graphEdges = 0
    /// Users the file named that did not exist and were created (`u<number>`).
    public var usersCreated = 0
    public var usersReused = 0
}

/// Figures for `STATS`.
public struct SocialStatistics: Sendable {
    public var users: Int
    public var graph: GraphStatistics
    /// Home timelines: rings, entries, bytes, fan-out pushes, merges at read, rebuilds,
    /// tombstones still filtered and entries compacted.
    public var timelines: TimelineStatistics
    public var search: SearchIndex.Statistics
    /// Periodic checkpoints of the derived structures since open.
    public var periodicCheckpoints: Int
    /// The authors' recent items kept for rebuilds (`SocialOptions.authorCacheItems`).
    public var authorCache: AuthorCacheStatistics
    /// The hydration caches: tweets' views (`SocialOptions.tweetCacheBytes`) and counts.
    public var tweetCache: HydrationCacheStatistics
    public var countsCache: HydrationCacheStatistics
    /// Tweets' encoded parts for the pages the server and the shell's JSON form answer
    /// (`SocialOptions.tweetCacheBytes` again; see `SocialDB.appendEncodedHome`).
    public var encodedCache: HydrationCacheStatistics
    /// The apply pipeline (`SocialDB.writing`): records written but not yet applied to the
    /// derived structures (0 when no write is in flight), records one writer applied for
    /// another (combining), and drains run.
    public var pendingApplies: Int
    public var combinedApplies: Int
    public var applyDrains: Int
}

public struct HydrationCacheStatistics: Sendable {
    public var entries: Int
    public var bytes: Int
    public var hits: Int
    public var misses: Int
}

public struct AuthorCacheStatistics: Sendable {
    public var authors: Int
    public var items: Int
    public var hits: Int
    public var misses: Int
    public var evictions: Int
}

/// The knobs of a database. The engine's knobs keep the names the shell and server use.
public struct SocialOptions: Sendable {
    public var engine = EngineOptions()
    /// Unix milliseconds for new ids (tests pass a fixed clock for reproducible ids; ids stay
    /// strictly increasing whatever it returns).
    public var wallClockMilliseconds: SnowflakeGenerator.Clock = SnowflakeGenerator.systemWallClockMilliseconds
    /// The snowflake node of this process (0-1023).
    public var node: UInt16 = 0
    /// Periodic checkpoints of the derived structures (home timelines, search index): after
    /// this many log records applied by writes since the last checkpoint (0: never by count),
    /// or at the first write this many seconds after it (0: never by time). Each moves the log
    /// consumer checkpoints `timeline` and `search` on, so the log can remove older segments
    /// while running (it also needs the LSM tree and the graph past them, which move on as they
    /// flush and merge), and bounds what the next open replays. A checkpoint runs under the
    /// writer lock, so the write that triggers it waits for it.
    public var checkpointEveryRecords: Int = 250_000
    public var checkpointEverySeconds: Int = 600
    /// Home timelines of users who neither read their home timeline nor posted for this many
    /// days are dropped at the next checkpoint (Twitter skipped users inactive for 30 days):
    /// their memory is freed, fan-out skips them, and their next read rebuilds the ring from the
    /// graph and the tweet store (the same pages). 0: never.
    public var dropInactiveTimelinesAfterDays: Int = 30
    /// Items of recently read authors kept in memory for home-timeline rebuilds (at most 128 an
    /// author, 32 bytes an item; see `AuthorItemsCache`). 0: none, every rebuild scans the tree.
    public var authorCacheItems: Int = 1_000_000
    /// Bytes of tweets kept hydrated for page reads (author handle, conversation, mention
    /// handles resolved; counts are kept apart): about 300 bytes for a typical tweet, each
    /// charged for its strings, and none above 1/256 of this. 0: none, every page decodes its
    /// records.
    public var tweetCacheBytes: Int = 64 << 20
    /// Per-user rate limits (off by default; `socialdb serve` uses `RateLimits.server`).
    public var rateLimits = RateLimits.off
    /// The cost of new password hashes (accounts).
    public var passwordHashing = PasswordHashing()

    public init() {}

    public var sync: LogSyncPolicy {
        get { engine.sync }
        set { engine.sync = newValue }
    }
    public var timelineCapacity: Int {
        get { engine.timelineCapacity }
        set { engine.timelineCapacity = newValue }
    }
    public var celebrityThreshold: Int {
        get { engine.celebrityThreshold }
        set { engine.celebrityThreshold = newValue }
    }
    public var cacheSizeBytes: Int {
        get { engine.cacheSizeBytes }
        set { engine.cacheSizeBytes = newValue }
    }
    /// How the LSM tree stores new table blocks: zstd (the default) or `.none`.
    public var compression: LSMCompression {
        get { engine.compression }
        set { engine.compression = newValue }
    }
}
