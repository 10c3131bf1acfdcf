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

/// Users' ids and dense graph numbers, both ways. Both are fixed when a user is created and users
/// are never removed, so an entry, once read from the tree, stays true: cached for the timeline
/// source and the log consumers, which translate between the two on every item.
final class UserNumbers: Sendable {
    let tree: LSMTree
    private let cache = Mutex<(ids: [UInt32: UInt64], numbers: [UInt64: UInt32])>(([:], [:]))

    init(tree: LSMTree) { self.tree = tree }

    func id(ofNumber number: UInt32) throws(LSMError) -> UInt64? {
        if let id = cache.withLock({ $0.ids[number] }) { return id }
        guard let id = try tree.get(SocialKeys.number(number))?.u64 else { return nil }
        cache.withLock { $0.ids[number] = id; $0.numbers[id] = number }
        return id
    }

    func number(ofUser id: UInt64) throws(LSMError) -> UInt32? {
        if let number = cache.withLock({ $0.numbers[id] }) { return number }
        guard let value = try tree.get(SocialKeys.user(id)),
              let record = value.withUnsafeBytes({ UserRecord.decode($0) }) else { return nil }
        cache.withLock { $0.ids[record.number] = id; $0.numbers[id] = record.number }
        return record.number
    }
}

/// The home-timeline store's view of the tweet store: an author's items newest first, a reverse
/// scan of `tweetsByAuthor`, whose values say each item's kind (`AuthorTweetValue`), plus one
/// `multiGet` of the retweeted originals (still there?); records are read only for entries
/// written before the values existed. The store's contract: deleted tweets are left out (their keys are gone), and so
/// are retweets whose original is gone (a DELETE split over several records can leave them for
/// a moment; checked here, not assumed).
///
/// The protocol cannot throw: a storage error is remembered in `failure`, and `home` reports it
/// as `io` rather than show a page that may be missing items.
struct TweetStoreSource: AuthorTweetSource {
    let tree: LSMTree
    let users: UserNumbers
    let failure: FailureNote

    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {
        do throws(LSMError) {
            guard limit > 0, let authorID = try users.id(ofNumber: author) else { return }
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
                for entry in entries { if let original = entry.value?.original { originals.append(original) } }
                var present = Set<UInt64>()
                if !originals.isEmpty {
                    let values = try tree.multiGet(originals.map { Keys.tweet($0) })
                    for (original, value) in zip(originals, values) where value != nil { present.insert(original) }
                }
                for entry in entries where wanted > 0 {
                    let kind: (reply: Bool, quote: Bool, original: UInt64?, originalAuthor: UInt64?)
                    if let value = entry.value {
                        kind = value
                        if let original = value.original, !present.contains(original) { continue }
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
}

typealias HomeTimelines = TimelineStore<GraphFollowerSource, TweetStoreSource>
