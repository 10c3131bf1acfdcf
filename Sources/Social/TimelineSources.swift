import StorageEngine
import Synchronization

/// The home-timeline store's view of the follow graph: dense user numbers, as the graph keeps them.
struct GraphFollowerSource: FollowerSource {
    let graph: GraphStore

    func followerCount(of user: UInt32) -> Int { graph.followerCount(user) }

    func forEachFollowerBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {
        var buffer = ContiguousArray<UInt32>()
        graph.copyFollowers(of: user, into: &buffer)
        buffer.withUnsafeBufferPointer(body)
    }

    func forEachFolloweeBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {
        var buffer = ContiguousArray<UInt32>()
        graph.copyFollowing(of: user, into: &buffer)
        buffer.withUnsafeBufferPointer(body)
    }
}

/// Users' ids and dense graph numbers, both ways, and their handles. All three are fixed when
/// a user is created and users are never removed, so an entry, once read from the tree, stays
/// true: cached for the timeline source and the log consumers, which translate between the two
/// on every item, and for hydrating tweets (the author's and mentioned users' handles).
final class UserNumbers: Sendable {
    let tree: LSMTree
    // Striped (16 ways by key): many connections resolve users at once, and one mutex per map
    // made them queue behind whichever holder the scheduler had preempted.
    private let ids = StripedMap<UInt32, UInt64>()
    private let numbers = StripedMap<UInt64, UInt32>()
    private let handles = StripedMap<UInt64, String>()
    /// Handles cached at most (about 60 bytes each); past it lookups read the tree.
    static let handlesMax = 2_000_000

    /// Folded handle → user id (only handles that exist: a later user may take a handle
    /// absent now).
    private let idsByHandle = StripedMap<String, UInt64>()
    /// Folded handle → user id and number, for `SocialDB.userIdentity` (every page read by
    /// handle): one probe instead of the two of `id(ofFoldedHandle:)` and `number(ofUser:)`.
    private let identitiesByHandle = StripedMap<String, UserIdentity>()

    struct UserIdentity: Sendable {
        var id: UInt64
        var number: UInt32
    }

    /// The id and number of the user whose folded handle is `folded`, or nil when there is none.
    func identity(ofFoldedHandle folded: String) throws(LSMError) -> UserIdentity? {
        if let identity = identitiesByHandle[folded] { return identity }
        guard let id = try id(ofFoldedHandle: folded), let number = try number(ofUser: id) else { return nil }
        let identity = UserIdentity(id: id, number: number)
        identitiesByHandle.set(folded, identity, limit: Self.handlesMax)
        return identity
    }

    init(tree: LSMTree) { self.tree = tree }

    /// The id of the user whose folded handle is `folded`, or nil when there is none.
    func id(ofFoldedHandle folded: String) throws(LSMError) -> UInt64? {
        if let id = idsByHandle[folded] { return id }
        guard let id = try tree.get(SocialKeys.handle(folded))?.u64 else { return nil }
        idsByHandle.set(folded, id, limit: Self.handlesMax)
        return id
    }

    private func remember(id: UInt64, number: UInt32) {
        ids.set(number, id, limit: .max)
        numbers.set(id, number, limit: .max)
    }

    /// The record of user `id` from the tree: nil when there is none, `corrupt` when it does
    /// not decode (damage is reported, never taken for absence).
    private func record(ofUser id: UInt64) throws(LSMError) -> UserRecord? {
        guard let value = try tree.get(SocialKeys.user(id)) else { return nil }
        guard let record = value.withUnsafeBytes({ UserRecord.decode($0) }) else {
            throw .corrupt(file: "the record of user \(id)", detail: "does not decode")
        }
        return record
    }

    /// The handle of the user with id `id`, or nil when there is none.
    func handle(ofUser id: UInt64) throws(LSMError) -> String? {
        if let handle = handles[id] { return handle }
        guard let record = try record(ofUser: id) else { return nil }
        handles.set(id, record.handle, limit: Self.handlesMax)
        remember(id: id, number: record.number)
        return record.handle
    }

    func id(ofNumber number: UInt32) throws(LSMError) -> UInt64? {
        if let id = ids[number] { return id }
        guard let id = try tree.get(SocialKeys.number(number))?.u64 else { return nil }
        remember(id: id, number: number)
        return id
    }

    func number(ofUser id: UInt64) throws(LSMError) -> UInt32? {
        if let number = numbers[id] { return number }
        guard let record = try record(ofUser: id) else { return nil }
        remember(id: id, number: record.number)
        return record.number
    }
}

/// The home-timeline store's view of the tweet store: an author's items newest first, a reverse
/// scan of `tweetsByAuthor`, whose values say each item's kind (`AuthorTweetValue`), plus one
/// `multiGet` of the retweeted originals hydration has not cached (still there?); records are read only for entries
/// written before the values existed. The store's contract: deleted tweets are left out (their keys are gone), and so
/// are retweets whose original is gone (a DELETE split over several records can leave them for
/// a moment; checked here, not assumed).
///
/// The protocol cannot throw: a storage error is remembered in `failure`, and `home` reports it
/// as `io` rather than show a page that may be missing items.
///
/// Rebuilding a home ring asks ~35 authors for their newest items; each scan seeks the memtable
/// and every table level. `recent` (`AuthorItemsCache`) keeps the answers, so a rebuild merges
/// arrays instead (the miss path below fills it).
struct TweetStoreSource: AuthorTweetSource {
    let tree: LSMTree
    let users: UserNumbers
    let failure: FailureNote
    let recent: AuthorItemsCache
    /// The tweets hydration has cached (`SocialDB.tweetViews`): a retweeted original found
    /// there exists, so only the others are looked up in the tree. A cached view is removed
    /// after the tree has a batch that deletes its record, and a view is installed only from a
    /// record read (or a post) with no such write since, so an original the tree lost (a
    /// delete, or a crash in the middle of a DELETE split over several records) is never there.
    let views: IDCache<Tweet.Content>

    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {
        guard limit > 0 else { return }
        if recent.lookup(author: author, before: before, limit: limit, into: &items) { return }
        let start = items.count
        let generation = recent.generation
        scan(author: author, before: before, limit: limit, into: &items)
        if before == .max && failure.isEmpty {
            recent.install(author: author, items: items[start...], complete: items.count - start < limit, since: generation)
        }
    }

    private func scan(author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {
        do throws(LSMError) {
            guard let authorID = try users.id(ofNumber: author) else { return }
            var cursor = before
            var wanted = limit
            var entries: [(id: UInt64, value: (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)?)] = []
            while wanted > 0 {
                let batch = min(max(wanted, 16), 1024)
                // The author index carries each item's kind (AuthorTweetValue): the records are
                // read only for entries written before it, and for retweets (is the original
                // still there?).
                entries.removeAll(keepingCapacity: true)
                _ = try tree.scan(from: Keys.authorTweet(author: authorID, tweet: 0), to: Keys.authorTweet(author: authorID, tweet: cursor),
                              reverse: true, limit: batch) { key, value in
                    entries.append((Keys.number(key, at: 9), AuthorTweetValue.decode(value)))
                    return true
                }
                guard let last = entries.last else { return }
                cursor = last.id
                var unknown: [UInt64] = []
                for entry in entries where entry.value == nil { unknown.append(entry.id) }
                var known: [UInt64: (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)] = [:]
                if !unknown.isEmpty {
                    for value in try tree.multiGet(unknown.map { Keys.tweet($0) }) {
                        guard let value else { continue }
                        let header = try TweetRecord.decodeHeader(value)
                        var originalAuthor: UInt64?
                        if let original = header.retweetOf, let record = try tree.get(Keys.tweet(original)) {
                            originalAuthor = try TweetRecord.decodeHeader(record).author
                        }
                        known[header.id] = (header.replyTo != nil, header.quoteOf != nil, header.retweetOf, originalAuthor)
                    }
                }
                var originals: [UInt64] = []
                for entry in entries {
                    if let original = entry.value?.original, !views.contains(original) { originals.append(original) }
                }
                var absent = Set<UInt64>()
                if !originals.isEmpty {
                    let values = try tree.multiGet(originals.map { Keys.tweet($0) })
                    for (original, value) in zip(originals, values) where value == nil { absent.insert(original) }
                }
                for entry in entries where wanted > 0 {
                    let kind: (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)
                    if let value = entry.value {
                        kind = value
                        if let original = value.original, absent.contains(original) { continue }
                    } else {
                        // Written before the index carried kinds: the record says (and a
                        // retweet whose original is gone has no original author).
                        guard let value = known[entry.id] else { continue }
                        if value.original != nil && value.originalAuthor == nil { continue }
                        kind = value
                    }
                    if let original = kind.original {
                        guard let originalAuthor = kind.originalAuthor,
                              let originalNumber = try users.number(ofUser: originalAuthor) else { continue }
                        items.append(.retweet(id: entry.id, retweeter: author, original: original, originalAuthor: originalNumber))
                    } else {
                        var flags: TimelineFlags = []
                        if kind.reply { flags.insert(.reply) }
                        if kind.quote { flags.insert(.quote) }
                        items.append(.post(id: entry.id, author: author, flags: flags))
                    }
                    wanted -= 1
                }
                if entries.count < batch { return }
            }
        } catch {
            failure.note("storage: \(error)")
        }
    }
}

/// The first failure a source met (sources cannot throw); read and cleared by the caller.
final class FailureNote: Sendable {
    private let message = Mutex<String?>(nil)
    func note(_ text: String) { message.withLock { if $0 == nil { $0 = text } } }
    func take() -> String? { message.withLock { let m = $0; $0 = nil; return m } }
    var isEmpty: Bool { message.withLock { $0 == nil } }
}

/// Each recently read author's newest items (at most `perAuthorMax`, newest first), as
/// `TweetStoreSource` returns them, so ring rebuilds need no tree scans: Twitter's timeline
/// service kept the same per-author lists in memory for its read-time merges.
///
/// Kept true by the log consumer: `Consumers.apply` calls `added` for every post, reply, quote
/// and retweet it fans out and `removed` for every deleted item, under the writer lock, right
/// after the tree has the record. A list is installed by a reader after a scan of the tree
/// (`install`), only if no item of that author was added or removed since the reader took
/// `generation` before its scan (else the scan may have missed it): each write stamps its
/// author's slot in `stamps`. An item the scan already saw and `added` brings again is ignored.
/// `complete` says the list holds every item of the author (the scan ran out first).
///
/// Bounded: past `maxItems` items in all, the least recently used quarter of the lists goes.
/// Thread safety: one mutex; every operation is short (a binary search, a copy of a few items).
final class AuthorItemsCache: Sendable {
    struct Entry {
        var items: ContiguousArray<TimelineItem>
        var complete: Bool
        var used: UInt64
    }

    struct State {
        var entries: [UInt32: Entry] = [:]
        var itemCount = 0
        var generation: UInt64 = 0
        /// The generation of the last write to each slot (authors hashed onto 4,096 slots).
        var stamps = [UInt64](repeating: 0, count: AuthorItemsCache.stampSlots)
        var clock: UInt64 = 0
        var hits = 0
        var misses = 0
        var evictions = 0
    }

    static let stampSlots = 4096
    /// Rebuilds ask each of ~35 followees for 16 items first (`fetchNewestMerged`, 128 entries).
    static let perAuthorMax = 128
    let maxItems: Int
    private let state = Mutex(State())

    init(maxItems: Int) { self.maxItems = maxItems }

    var generation: UInt64 { state.withLock { $0.generation } }

    var statistics: AuthorCacheStatistics {
        state.withLock { AuthorCacheStatistics(authors: $0.entries.count, items: $0.itemCount, hits: $0.hits, misses: $0.misses,
                                                evictions: $0.evictions) }
    }

    /// Appends `author`'s newest items below `before`, at most `limit`, when the cached list
    /// can say them all; false (nothing appended) when the tree must be asked.
    func lookup(author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) -> Bool {
        guard maxItems > 0 else { return false }
        return state.withLock { s in
            guard let entry = s.entries[author] else { s.misses += 1; return false }
            // The first item below `before` (the list is newest first).
            var low = 0, high = entry.items.count
            while low < high {
                let middle = (low + high) / 2
                if entry.items[middle].id >= before { low = middle + 1 } else { high = middle }
            }
            let available = entry.items.count - low
            guard available >= limit || entry.complete else { s.misses += 1; return false }
            items.append(contentsOf: entry.items[low..<(low + min(limit, available))])
            s.clock += 1
            s.entries[author]!.used = s.clock
            s.hits += 1
            return true
        }
    }

    /// Keeps a scan's answer (newest first) unless a write to the author came after `since`.
    func install(author: UInt32, items: ArraySlice<TimelineItem>, complete: Bool, since: UInt64) {
        guard maxItems > 0 else { return }
        state.withLock { s in
            guard s.stamps[Int(author) & (Self.stampSlots - 1)] <= since else { return }
            let kept = ContiguousArray(items.prefix(Self.perAuthorMax))
            let isComplete = complete && kept.count == items.count
            s.clock += 1
            if let old = s.entries[author] { s.itemCount -= old.items.count }
            s.entries[author] = Entry(items: kept, complete: isComplete, used: s.clock)
            s.itemCount += kept.count
            if s.itemCount > maxItems { evictLocked(&s) }
        }
    }

    /// A new item of `item.author` (applied from the log).
    func added(_ item: TimelineItem) {
        guard maxItems > 0 else { return }
        state.withLock { s in
            s.generation += 1
            s.stamps[Int(item.author) & (Self.stampSlots - 1)] = s.generation
            guard var entry = s.entries[item.author] else { return }
            var index = 0
            while index < entry.items.count && entry.items[index].id > item.id { index += 1 }
            if index < entry.items.count && entry.items[index].id == item.id { return }
            entry.items.insert(item, at: index)
            s.itemCount += 1
            if entry.items.count > Self.perAuthorMax {
                entry.items.removeLast()
                entry.complete = false
                s.itemCount -= 1
            }
            s.entries[item.author] = entry
            if s.itemCount > maxItems { evictLocked(&s) }
        }
    }

    /// Item `id` of `author` is gone (nil author: unknown, every list goes).
    func removed(id: UInt64, author: UInt32?) {
        guard maxItems > 0 else { return }
        state.withLock { s in
            s.generation += 1
            guard let author else {
                for slot in s.stamps.indices { s.stamps[slot] = s.generation }
                s.entries.removeAll()
                s.itemCount = 0
                return
            }
            s.stamps[Int(author) & (Self.stampSlots - 1)] = s.generation
            guard var entry = s.entries[author], let index = entry.items.firstIndex(where: { $0.id == id }) else { return }
            entry.items.remove(at: index)
            s.itemCount -= 1
            s.entries[author] = entry
        }
    }

    /// Forgets every list (a change that bypassed the log; tests).
    func clear() { removed(id: 0, author: nil) }

    private func evictLocked(_ s: inout State) {
        var uses = s.entries.values.map(\.used)
        uses.sort()
        let cut = uses[uses.count / 4]
        for (author, entry) in s.entries where entry.used <= cut {
            s.itemCount -= entry.items.count
            s.entries[author] = nil
            s.evictions += 1
        }
    }
}

typealias HomeTimelines = TimelineStore<GraphFollowerSource, TweetStoreSource>

/// A dictionary split over 16 mutexes by the key's hash, for read-mostly caches that many
/// threads probe at once.
final class StripedMap<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    final class Stripe: Sendable {
        let state = Mutex<[Key: Value]>([:])
    }

    private let stripes: [Stripe] = (0..<16).map { _ in Stripe() }

    @inline(__always)
    private func stripe(_ key: Key) -> Stripe { stripes[key.hashValue & 15] }

    subscript(key: Key) -> Value? { stripe(key).state.withLock { $0[key] } }

    /// Keeps `value` unless the stripe already holds `limit / 16` entries.
    func set(_ key: Key, _ value: Value, limit: Int) {
        let perStripe = limit == .max ? Int.max : limit / 16
        stripe(key).state.withLock { if $0.count < perStripe || $0[key] != nil { $0[key] = value } }
    }
}
