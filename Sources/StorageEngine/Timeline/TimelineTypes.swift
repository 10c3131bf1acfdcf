/// The values of the home-timeline store: what a ring holds, what a post and a page item are,
/// and the two sources the store reads the rest of the world from.

/// What kind of item an entry is. Bits of a 32-bit word; the rest are reserved and zero.
public struct TimelineFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Computed, not `static let`: a stored global is read through its lazy-initialization
    // addressor, a call per use that showed in profiles of the read loop.
    @inlinable public static var retweet: TimelineFlags { TimelineFlags(rawValue: 1) }
    @inlinable public static var reply: TimelineFlags { TimelineFlags(rawValue: 2) }
    @inlinable public static var quote: TimelineFlags { TimelineFlags(rawValue: 4) }
    /// Every bit a valid entry may carry (checked after reading a checkpoint back).
    public static let all: TimelineFlags = [.retweet, .reply, .quote]
}

/// One entry of a ring, exactly 16 bytes in memory.
///
/// `id` is the item's own id, the key rings are sorted by and the cursor of pages: the tweet's id
/// for a post, reply or quote, the retweet's own id for a retweet (so a retweet sits in the
/// timeline at the moment it was retweeted, as on Twitter). `user` is the followee who put it in
/// the timeline: the author, or the retweeter for a retweet. A retweet's original (tweet id and
/// author) is not in the entry but in the store's retweet table, one row per retweet however
/// many rings it reaches; so the entry stays at 16 bytes and unfollowing the retweeter removes
/// exactly the entries it brought.
@frozen
public struct TimelineEntry: Equatable, Sendable {
    public var id: UInt64
    public var user: UInt32
    public var flags: TimelineFlags

    @inlinable
    public init(id: UInt64, user: UInt32, flags: TimelineFlags = []) {
        self.id = id
        self.user = user
        self.flags = flags
    }
}

/// An item of a home timeline: what a source returns, what fan-out receives and what a page lists.
public struct TimelineItem: Equatable, Sendable, CustomStringConvertible {
    /// The item's own id: the tweet's, or the retweet's for a retweet. Pages are sorted by it,
    /// newest first, and it is the `before` cursor of the next page.
    public var id: UInt64
    /// Who posted it: the author, or the retweeter for a retweet.
    public var author: UInt32
    public var flags: TimelineFlags
    /// The tweet shown: `id` itself, or the retweeted tweet for a retweet.
    public var tweetId: UInt64
    /// The author of `tweetId`.
    public var tweetAuthor: UInt32

    @inlinable
    public init(id: UInt64, author: UInt32, flags: TimelineFlags, tweetId: UInt64, tweetAuthor: UInt32) {
        self.id = id
        self.author = author
        self.flags = flags
        self.tweetId = tweetId
        self.tweetAuthor = tweetAuthor
    }

    /// A post, reply or quote by `author`.
    @inlinable
    public static func post(id: UInt64, author: UInt32, flags: TimelineFlags = []) -> TimelineItem {
        precondition(!flags.contains(.retweet), "a retweet needs its original: use .retweet(...)")
        return TimelineItem(id: id, author: author, flags: flags, tweetId: id, tweetAuthor: author)
    }

    /// `retweeter`'s retweet `id` of tweet `original` by `originalAuthor`.
    @inlinable
    public static func retweet(id: UInt64, retweeter: UInt32, original: UInt64, originalAuthor: UInt32) -> TimelineItem {
        precondition(original < id, "a retweet is newer than what it retweets")
        return TimelineItem(id: id, author: retweeter, flags: .retweet, tweetId: original, tweetAuthor: originalAuthor)
    }

    @inlinable public var isRetweet: Bool { flags.contains(.retweet) }

    public var description: String {
        isRetweet ? "rt \(id) by \(author) of \(tweetId) by \(tweetAuthor)" : "\(id) by \(author)\(flags.isEmpty ? "" : " \(flags.rawValue)")"
    }
}

/// Where the store learns who follows whom: the graph store, or a model in tests.
///
/// Users are dense numbers. Batches let a compressed adjacency store hand over a decoded block
/// at a time, so the store pays one call per block, not per follower. Implementations must be
/// safe to call from several threads at once (home reads run in parallel).
public protocol FollowerSource: Sendable {
    /// How many followers `user` has (compared with the celebrity threshold at fan-out).
    func followerCount(of user: UInt32) -> Int
    /// Calls `body` with every follower of `user`, each once, in batches, in any order.
    func forEachFollowerBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void)
    /// Calls `body` with every user `user` follows, each once, in batches, in any order.
    func forEachFolloweeBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void)
}

/// Where the store reads an author's own items: the tweet store's (author, id) keyspace, or a
/// model in tests. Safe to call from several threads at once.
public protocol AuthorTweetSource: Sendable {
    /// Appends to `items` up to `limit` of the items `author` posted (posts, replies, quotes and
    /// retweets, as `TimelineItem`s) whose id is below `before`, newest first. Deleted items may
    /// be left out or returned; the store filters them with its tombstones either way.
    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>)
}

public struct TimelineOptions: Sendable {
    /// Entries a ring keeps (newest first). Default 800, as Twitter's Redis timelines.
    public var capacity: Int = 800
    /// Authors with more followers than this are not fanned out; their items are merged at read.
    public var celebrityThreshold: Int = 10_000
    /// Newest items kept per celebrity for read-time merges.
    public var celebrityCacheItems: Int = 64
    /// Entries a ring is built with from the sources (its first read after a bulk import, or
    /// after it was dropped), at most `capacity`: the newest this many, the floor just below
    /// them. Fan-out then grows the ring towards `capacity`; a read past the floor merges every
    /// followee's older items from the source, so pages are the same whatever this is. Default
    /// 128: DeathStarBench's deepest read (offset 100, 10 items) and six pages of 20 come from
    /// the ring, for about a sixth of a full rebuild's reads and memory.
    public var rebuildEntries: Int = 128
    /// Newest entries of each ring kept in its block beside its record (see `RingRecords`),
    /// 1...30. Not public: 30 is what the block holds; the tests set fewer, so that rings of a
    /// few entries spill into their arena slots as big ones do.
    var hotEntries: Int = 30
    /// Arena segments (2 MiB each) a background thread keeps faulted in ahead of fan-out once
    /// the arena is large (see `RingArena`, `PrefaultedRegions`); 0: none, every segment is
    /// first touched by the pushes that fill it. Default 8 (16 MiB).
    public var arenaSegmentsAhead: Int = 8
    /// Bytes of slots the arena hands out before it starts the thread above (a small store
    /// never does). Not public: the tests set 0.
    var arenaPrefaultAfterBytes: Int = 16 << 20

    public init(capacity: Int = 800, celebrityThreshold: Int = 10_000, celebrityCacheItems: Int = 64, rebuildEntries: Int = 128) {
        precondition(capacity >= 1 && capacity <= TimelineOptions.capacityMax, "timeline capacity must be 1...\(TimelineOptions.capacityMax)")
        precondition(celebrityThreshold >= 0, "the celebrity threshold is a follower count")
        precondition(celebrityCacheItems >= 1, "a celebrity cache holds at least one item")
        precondition(rebuildEntries >= 1, "a rebuilt ring holds at least one entry")
        self.capacity = capacity
        self.celebrityThreshold = celebrityThreshold
        self.celebrityCacheItems = celebrityCacheItems
        self.rebuildEntries = rebuildEntries
    }

    /// A bound on everything a ring allocates: 65,536 entries (1 MiB) per user.
    public static let capacityMax = 1 << 16
}

public enum TimelineError: Error, Equatable, CustomStringConvertible {
    case io(IOError)
    /// A checkpoint failed a check: its checksums, structure or values.
    case corrupt(String)
    /// A checkpoint (checksums valid) names a user number at or past `limit`, the users the
    /// database has (or, when the caller did not say, what the file's size can justify): it is
    /// corrupt, and the user table is never grown to that number.
    case userOutOfRange(file: String, user: UInt64, limit: UInt64)

    public var description: String {
        switch self {
        case .io(let e): "timeline I/O error: \(e)"
        case .corrupt(let m): "timeline checkpoint corrupt: \(m)"
        case .userOutOfRange(let file, let user, let limit):
            "timeline checkpoint corrupt: \(file): names user \(user), past the \(limit) users there can be"
        }
    }

    /// A stable word for the kind of error (logs and tests match on it, not on the text).
    public var code: String {
        switch self {
        case .io: "io"
        case .corrupt: "timeline-corrupt"
        case .userOutOfRange: "timeline-user-range"
        }
    }
}

/// What the store has and has done since it was opened.
public struct TimelineStatistics: Sendable, Equatable {
    /// Users with a ring in memory.
    public var rings = 0
    /// Entries in all rings.
    public var entries = 0
    /// Bytes of ring memory: arena segments allocated and the ring blocks (512 bytes per ring
    /// number, see `RingRecords`), what the rings cost in memory.
    public var ringBytes = 0
    /// Bytes of the last checkpoint written or loaded.
    public var checkpointBytes = 0
    /// Ring entries written by fan-out (one per ring reached).
    public var pushes = 0
    /// Posts not fanned out because their author was above the threshold.
    public var celebrityPosts = 0
    /// Home reads that merged at least one author's items from a source or celebrity cache.
    public var mergesAtRead = 0
    /// Rings built from the sources (first read, follow of a user with no ring, after a drop).
    public var rebuilds = 0
    /// Events ignored because their log position was at or below the applied one.
    public var replayedEventsIgnored = 0
    public var retweets = 0
    /// Deleted ids the reads still filter (until the next `compact`).
    public var tombstones = 0
    /// Ring and cache entries `compact` removed since open.
    public var compactedEntries = 0
    /// Rings dropped by `dropInactiveRings` since open.
    public var inactiveRingsDropped = 0
    /// CPU time the arena's background thread spent faulting segments in ahead of fan-out
    /// (`TimelineOptions.arenaSegmentsAhead`), in nanoseconds: part of what fan-out costs.
    public var arenaPrefaultCPUNanoseconds = 0
    /// The same thread's wall-clock time at that work (in a virtual machine the host's backing
    /// of the pages stalls it without counting as its CPU time).
    public var arenaPrefaultBusyNanoseconds = 0
    /// Arena segments that thread faulted in, and segments fan-out had to map itself because
    /// none was ready.
    public var arenaSegmentsPrefaulted = 0
    public var arenaSegmentsMadeInline = 0
    public var appliedLSN: UInt64 = 0
}
