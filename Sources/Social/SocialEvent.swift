import StorageEngine

/// The domain events in the engine's log, decoded for a derived structure that follows it (the
/// timeline fan-out, search, notifications). Docs/ARCHITECTURE.md ("The contract for log
/// consumers") states what each key space's entries mean; this is that table as code.
///
/// Usage: read records with `engine.log.reader(from:)` and pass each record's type and payload
/// to `SocialEvent.decode`. Entries of bookkeeping key spaces (counters, indexes) give no event.
public enum SocialEvent: Sendable, Equatable {
    /// A tweet, reply, quote or retweet now exists (the fan-out and indexing event).
    case tweetCreated(TweetRecord)
    /// A tweet or retweet is gone, with its author (from the same record's `tweetsByAuthor`
    /// tombstone). A deleted original's retweets come as events of the same record.
    case tweetDeleted(id: UInt64, author: UInt64)
    case liked(tweet: UInt64, user: UInt64)
    case unliked(tweet: UInt64, user: UInt64)
    /// Graph events, on dense user numbers (key space `usersByNumber` maps them to user ids).
    case followed(follower: UInt32, followee: UInt32)
    case unfollowed(follower: UInt32, followee: UInt32)
    /// A user was created or their profile changed.
    case userChanged(id: UInt64)

    /// The events of one log record, in record order; empty for records of other types.
    /// Throws `.io` for a record of a known type that does not decode.
    public static func decode(type: UInt16, payload: UnsafeRawBufferPointer) throws(SocialError) -> [SocialEvent] {
        if GraphRecord.typeRange.contains(type) {
            let record: GraphRecord?
            do { record = try GraphRecord.decode(type: type, payload: payload) } catch { throw SocialError(error) }
            switch record {
            case .follow(let a, let b)?: return [.followed(follower: a, followee: b)]
            case .unfollow(let a, let b)?: return [.unfollowed(follower: a, followee: b)]
            case nil: return []
            }
        }
        guard type == LSMOptions().logRecordType else { return [] }
        var events: [SocialEvent] = []
        var deletedAuthors: [UInt64: UInt64] = [:]
        var problem: SocialError?
        do throws(LSMError) {
            try WriteBatch.forEachEntry(inLogPayload: payload) { _, kind, key, value in
                guard problem == nil, let space = KeySpace(rawValue: key[0]) else { return }
                switch (space, kind) {
                case (.tweets, .value):
                    do throws(LSMError) { events.append(.tweetCreated(try TweetRecord.decode(value))) } catch { problem = SocialError(error) }
                case (.tweets, .deletion) where key.count == 9:
                    events.append(.tweetDeleted(id: Keys.number(key, at: 1), author: 0))
                case (.tweetsByAuthor, .deletion) where key.count == 17:
                    deletedAuthors[Keys.number(key, at: 9)] = Keys.number(key, at: 1)
                case (.likes, _) where key.count == 17:
                    let tweet = Keys.number(key, at: 1), user = Keys.number(key, at: 9)
                    events.append(kind == .value ? .liked(tweet: tweet, user: user) : .unliked(tweet: tweet, user: user))
                case (.users, .value) where key.count == 9:
                    events.append(.userChanged(id: Keys.number(key, at: 1)))
                default:
                    break
                }
            }
        } catch { throw SocialError(error) }
        if let problem { throw problem }
        // Tombstones of `tweets` and `tweetsByAuthor` travel together; join them by tweet id.
        for i in events.indices {
            if case .tweetDeleted(let id, _) = events[i] { events[i] = .tweetDeleted(id: id, author: deletedAuthors[id] ?? 0) }
        }
        return events
    }
}
