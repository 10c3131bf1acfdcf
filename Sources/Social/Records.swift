import StorageEngine
import Synchronization

/// The Social layer's records in the LSM tree's key spaces (see Docs/FORMATS.md, "Social
/// records"). These layouts are part of the on-disk format and must not change without a new
/// version byte.
///
///     users          user id -> UserRecord (below)
///     usersByHandle  lowercased handle (UTF-8) -> user id u64 LE
///     usersByNumber  dense number (u64 BE in the key) -> user id u64 LE
///     tweets         tweet id -> TweetRecord (StorageEngine/LSM/TweetRecord.swift)
///     tweetsByAuthor (author, tweet) -> AuthorTweetValue (below; empty when written before it)
///     likes          (tweet, user) -> empty;  likesByUser (user, tweet) -> empty
///     retweets       (original, retweeter) -> retweet id u64 LE
///     replies        (parent, reply) -> conversation root id u64 LE
///     conversations  (root, reply) -> empty
///     counters       (id, CounterKind) -> u64 LE; absent means 0
///     meta           "social.next-user-number" -> u64 LE
/// The value of a `tweetsByAuthor` entry: what a home timeline needs of the item, so a ring
/// rebuild reads the author index alone instead of every record. Layout: flags u8 (bit 0 reply,
/// bit 1 retweet, bit 2 quote, as the record's); a retweet adds the original's id and the
/// original's author id (u64 LE each). Empty (entries written before this value existed) means
/// unknown: readers fall back to the tweet record.
enum AuthorTweetValue {
    static func encode(_ record: TweetRecord, originalAuthor: UInt64?) -> [UInt8] {
        var flags: UInt8 = 0
        if record.replyTo != nil { flags |= 1 }
        if record.retweetOf != nil { flags |= 2 }
        if record.quoteOf != nil { flags |= 4 }
        var out: [UInt8] = [flags]
        if let original = record.retweetOf, let originalAuthor {
            out.appendLE(original)
            out.appendLE(originalAuthor)
        }
        return out
    }

    /// (reply, quote, retweeted original and its author), or nil when the value is empty or
    /// not this layout.
    static func decode(_ raw: UnsafeRawBufferPointer) -> (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)? {
        guard let flags = raw.first, flags & ~7 == 0 else { return nil }
        if flags & 2 != 0 {
            guard raw.count == 17 else { return nil }
            return (false, false, raw.loadLE(UInt64.self, at: 1), raw.loadLE(UInt64.self, at: 9))
        }
        guard raw.count == 1 else { return nil }
        return (flags & 1 != 0, flags & 4 != 0, nil, nil)
    }
}

struct UserRecord: Equatable {
    static let version: UInt8 = 1

    var id: UInt64
    /// The graph's dense number for this user.
    var number: UInt32
    var createdAtMilliseconds: UInt64
    var handle: String
    var name: String
    var bio: String

    /// Layout: version u8 (1), id u64 LE, number u32 LE, created ms u64 LE, then handle, name
    /// and bio each as varint length + UTF-8.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + handle.utf8.count + name.utf8.count + bio.utf8.count)
        out.append(Self.version)
        out.appendLE(id)
        out.appendLE(number)
        out.appendLE(createdAtMilliseconds)
        for text in [handle, name, bio] {
            Varint.append(UInt64(text.utf8.count), to: &out)
            out.append(contentsOf: text.utf8)
        }
        return out
    }

    static func decode(_ raw: UnsafeRawBufferPointer) -> UserRecord? {
        guard raw.count >= 21, raw[0] == version else { return nil }
        let id = raw.loadLE(UInt64.self, at: 1)
        let number = raw.loadLE(UInt32.self, at: 9)
        let created = raw.loadLE(UInt64.self, at: 13)
        var offset = 21
        var texts: [String] = []
        for _ in 0..<3 {
            guard let (length, next) = Varint.read(from: raw, at: offset), length <= UInt64(raw.count - next) else { return nil }
            let bytes = UnsafeRawBufferPointer(rebasing: raw[next..<(next + Int(length))])
            guard let text = bytes.strictUTF8String() else { return nil }
            texts.append(text)
            offset = next + Int(length)
        }
        guard offset == raw.count else { return nil }
        return UserRecord(id: id, number: number, createdAtMilliseconds: created, handle: texts[0], name: texts[1], bio: texts[2])
    }
}

/// The counts kept in key space `counters`, one key per (id, kind).
enum CounterKind: UInt64, CaseIterable {
    /// Of a user: tweets, replies, quotes and retweets they have.
    case tweets = 1
    /// Of a tweet: likes, retweets, replies and quotes it has.
    case likes = 2
    case retweets = 3
    case replies = 4
    case quotes = 5
}

enum SocialKeys {
    static let nextUserNumber = Keys.text(.meta, "social.next-user-number")
    /// The last id given to a like's or follow's notification: ids are not stored elsewhere,
    /// and the id floor at open must exceed them too.
    static let lastNotificationID = Keys.text(.meta, "social.last-notification-id")

    static func user(_ id: UInt64) -> [UInt8] { Keys.one(.users, id) }
    static func handle(_ lowercased: String) -> [UInt8] { Keys.text(.usersByHandle, lowercased) }
    static func number(_ number: UInt32) -> [UInt8] { Keys.one(.usersByNumber, UInt64(number)) }
    static func counter(_ id: UInt64, _ kind: CounterKind) -> [UInt8] { Keys.two(.counters, id, kind.rawValue) }
}

extension Array where Element == UInt8 {
    /// The u64 LE value of a record that holds one (user ids, retweet ids, counters).
    var u64: UInt64? {
        guard count == 8 else { return nil }
        return withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) }
    }

    static func u64(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8)
        out.appendLE(value)
        return out
    }
}

/// One write under construction: the entries of one command, with its counter changes summed
/// so a counter touched twice (a user deleting a tweet they also retweeted) is written once.
struct ChangeSet {
    private(set) var entries: [(key: [UInt8], value: [UInt8]?)] = []
    /// The counters touched, in first-touch order, with their summed deltas. Most commands
    /// touch one to three, found by a linear search (hashing a 17-byte key goes a byte at a
    /// time); past `linearCountersMax` (a deleted tweet's retweeters) `counterIndex` finds them.
    private var counterDeltas: [(key: [UInt8], delta: Int)] = []
    private var counterIndex: [[UInt8]: Int] = [:]
    static let linearCountersMax = 8

    mutating func put(_ key: [UInt8], _ value: [UInt8] = []) { entries.append((key, value)) }
    mutating func delete(_ key: [UInt8]) { entries.append((key, nil)) }

    mutating func count(_ id: UInt64, _ kind: CounterKind, _ delta: Int) {
        let key = SocialKeys.counter(id, kind)
        let found = counterDeltas.count <= Self.linearCountersMax
            ? counterDeltas.firstIndex(where: { $0.key == key })
            : counterIndex[key]
        if let found {
            counterDeltas[found].delta += delta
            return
        }
        counterDeltas.append((key, delta))
        if counterDeltas.count == Self.linearCountersMax + 1 {
            for (index, entry) in counterDeltas.enumerated() { counterIndex[entry.key] = index }
        } else if counterDeltas.count > Self.linearCountersMax + 1 {
            counterIndex[key] = counterDeltas.count - 1
        }
    }

    /// Writes the changes (the caller holds the writer lock, in `SocialDB.writing`): counters first (read now, under the caller's writer lock, and
    /// written as their new values), then the entries in the order given, as one batch, or
    /// as several of at most `entriesPerBatchMax` when a delete cleans up that much (the first
    /// batch then holds the counters and the first entries, which callers make the visible part).
    func commit(to db: SocialDB) throws(SocialError) {
        let tree = db.tree
        var all: [(key: [UInt8], value: [UInt8]?)] = []
        all.reserveCapacity(counterDeltas.count + entries.count)
        for (key, delta) in counterDeltas {
            if delta == 0 { continue }
            let current: UInt64
            do { current = try tree.get(key)?.u64 ?? 0 } catch { throw SocialError(error) }
            let updated = Int64(clamping: current) + Int64(delta)
            all.append(updated > 0 ? (key, .u64(UInt64(updated))) : (key, nil))
        }
        all.append(contentsOf: entries)
        var start = 0
        while start < all.count {
            let end = min(all.count, start + Self.entriesPerBatchMax)
            var batch = WriteBatch()
            for (key, value) in all[start..<end] {
                if let value { batch.put(key, value) } else { batch.delete(key) }
            }
            // Once the tree has the batch, what the hydration caches derived from its keys goes
            // (a tweet's counts when a counter key changed, its view when its record did); also
            // when the write failed, since it may have reached the memtable before the failure.
            func invalidate() {
                for (key, _) in all[start..<end] {
                    if key.count == 17 && key[0] == KeySpace.counters.rawValue {
                        // The counts first, then the encoding made from them (see below).
                        let id = key.withUnsafeBytes { Keys.number($0, at: 1) }
                        db.tweetCountsCache.invalidate(id)
                        db.tweetEncodings.invalidate(id)
                    } else if key.count == 9 && key[0] == KeySpace.tweets.rawValue {
                        // The view first: an encoding made after the second invalidation
                        // reads a view made after the first (see `SocialDB.encodedView`).
                        let id = key.withUnsafeBytes { Keys.number($0, at: 1) }
                        db.tweetViews.invalidate(id)
                        db.tweetEncodings.invalidate(id)
                    }
                }
            }
            let lsn: UInt64
            do { lsn = try tree.write(batch, waitForAcknowledgement: false) } catch {
                invalidate()
                throw SocialError(error)
            }
            invalidate()
            // In the tree: now the derived structures, in log order, after the writer lock is
            // released (see `SocialDB.writing`). Durable later: the public call waits for the
            // log before it answers (`SocialDB.acknowledged`).
            db.consumers.enqueue(lsn: lsn, type: tree.options.logRecordType, payload: batch.encoded)
            start = end
        }
    }

    /// Below `WriteBatch.maxEntries`, with room to spare.
    static let entriesPerBatchMax = 4000
}

/// A tweet's four counts as hydration reads them, kept in `SocialDB.tweetCountsCache` (most of
/// them zero): one probe per tweet instead of four record-cache probes (each a hash, a shard
/// lock and a key comparison behind a pointer). `ChangeSet.commit` invalidates a tweet's entry
/// after the tree has a batch that writes or deletes one of its counter keys.
struct TweetCounts: Sendable {
    var likes: UInt32
    var retweets: UInt32
    var replies: UInt32
    var quotes: UInt32

    init(likes: Int, retweets: Int, replies: Int, quotes: Int) {
        self.likes = UInt32(clamping: likes)
        self.retweets = UInt32(clamping: retweets)
        self.replies = UInt32(clamping: replies)
        self.quotes = UInt32(clamping: quotes)
    }
}

extension TweetCounts: CacheCost {
    /// Key, counts in an optional (17 bytes padded to 20), cost and CLOCK bit, rounded up.
    var cacheBytes: Int { 40 }
    static var typicalCacheBytes: Int { 40 }
}

typealias TweetCountsCache = IDCache<TweetCounts>
