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
/// scan of `tweetsByAuthor` plus one `multiGet` of the records (and one of the retweeted
/// originals). The store's contract: deleted tweets are left out (their keys are gone), and so
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
            while wanted > 0 {
                let batch = min(max(wanted, 16), 1024)
                let ids = try tree.authorTweets(author: authorID, before: cursor, limit: batch)
                guard let last = ids.last else { return }
                cursor = last
                let records = try tree.multiGet(ids.map { Keys.tweet($0) })
                // Only the records' fixed headers: kind and references, no strings.
                var decoded: [TweetRecord.Header] = []
                decoded.reserveCapacity(records.count)
                for value in records {
                    guard let value else { continue }
                    decoded.append(try TweetRecord.decodeHeader(value))
                }
                let originalIDs = decoded.compactMap(\.retweetOf)
                var originalAuthors: [UInt64: UInt64] = [:]
                if !originalIDs.isEmpty {
                    let originals = try tree.multiGet(originalIDs.map { Keys.tweet($0) })
                    for value in originals {
                        guard let value else { continue }
                        let original = try TweetRecord.decodeHeader(value)
                        originalAuthors[original.id] = original.author
                    }
                }
                for record in decoded where wanted > 0 {
                    if let original = record.retweetOf {
                        guard let originalAuthor = originalAuthors[original],
                              let originalNumber = try users.number(ofUser: originalAuthor) else { continue }
                        items.append(.retweet(id: record.id, retweeter: author, original: original, originalAuthor: originalNumber))
                    } else {
                        var flags: TimelineFlags = []
                        if record.replyTo != nil { flags.insert(.reply) }
                        if record.quoteOf != nil { flags.insert(.quote) }
                        items.append(.post(id: record.id, author: author, flags: flags))
                    }
                    wanted -= 1
                }
                if ids.count < batch { return }
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
