import StorageEngine

extension SocialDB {
    // MARK: Writing tweets

    /// Posts a tweet: 1-280 grapheme clusters (`invalid` when empty or only spaces, `too_long`
    /// above). Mentions of existing users, hashtags and URLs are extracted (see `Entities`).
    @discardableResult
    public func post(handle: String, text: String) throws(SocialError) -> Tweet {
        try createTweet(handle: handle, text: text, replyTo: nil, quoteOf: nil)
    }

    /// Replies to `tweet` (to the original when `tweet` is a retweet); the reply joins that
    /// tweet's conversation.
    @discardableResult
    public func reply(handle: String, to tweet: UInt64, text: String) throws(SocialError) -> Tweet {
        try createTweet(handle: handle, text: text, replyTo: tweet, quoteOf: nil)
    }

    /// Quotes `tweet` (the original when `tweet` is a retweet) with a text of one's own.
    @discardableResult
    public func quote(handle: String, tweet: UInt64, text: String) throws(SocialError) -> Tweet {
        try createTweet(handle: handle, text: text, replyTo: nil, quoteOf: tweet)
    }

    private func createTweet(handle: String, text: String, replyTo: UInt64?, quoteOf: UInt64?) throws(SocialError) -> Tweet {
        try answering(through: { () throws(SocialError) -> (answer: Tweet, through: UInt64) in
            _ = try Self.checkHandle(handle)
            try TextRules.checkTweet(text)
            try admitWrite(handle, .post)
            // Outside the writer lock (it serializes every write, so what it holds bounds the
            // posts per second): users are never removed and handles never change, so the
            // author and the mentioned users read here stay true; parsing needs no lock.
            let author = try userIdentity(handle: handle)
            let entities = Entities(text)
            var mentionIDs: [UInt64] = []
            for mention in entities.mentions {
                let id: UInt64?
                do throws(LSMError) { id = try consumers.users.id(ofFoldedHandle: TextRules.folded(mention)) } catch { throw SocialError(error) }
                if let id, !mentionIDs.contains(id) { mentionIDs.append(id) }
            }
            return try writing({ () throws(SocialError) -> (TweetRecord, NewTweetStamps) in
                // The tweets replied to or quoted may be deleted meanwhile: read under the lock.
                let parent = try replyTo.map { (id) throws(SocialError) in try target(id) }
                let quoted = try quoteOf.map { (id) throws(SocialError) in try target(id) }
                // The id is taken under the writer lock, so tweet ids increase in log order.
                let id = ids.next()
                let record = TweetRecord(id: id.rawValue, author: author.id, time: creationTime(of: id), text: text,
                                         replyTo: parent?.id, quoteOf: quoted?.id, mentions: mentionIDs,
                                         hashtags: entities.hashtags, urls: entities.urls)
                var changes = ChangeSet()
                addTweet(record, parent: parent, root: try parent.map { (p) throws(SocialError) in try conversationRoot(of: p) },
                         quoted: quoted, into: &changes)
                try changes.commit(to: self)
                return (record, newTweetStamps(record.id))
            }, answer: { (made) throws(SocialError) -> Tweet in try completed(try keepNew(made.0, made.1)) })
        })
    }

    /// Retweets `tweet` (the original when it is itself a retweet). The retweet is a tweet of
    /// its own with the retweeter as author; returned with the original inside. Retweeting the
    /// same tweet twice is `exists`.
    @discardableResult
    public func retweet(handle: String, tweet: UInt64) throws(SocialError) -> Tweet {
        try answering(through: { () throws(SocialError) -> (answer: Tweet, through: UInt64) in
            try admitWrite(handle, .post)
            return try writing({ () throws(SocialError) -> (TweetRecord, NewTweetStamps) in
                let user = try userRecord(handle: handle)
                let original = try target(tweet)
                if try retweetID(of: original.id, by: user.id) != nil {
                    throw .exists("@\(user.handle) has already retweeted \(original.id)")
                }
                let id = ids.next()
                let record = TweetRecord(id: id.rawValue, author: user.id, time: creationTime(of: id), text: "", retweetOf: original.id)
                var changes = ChangeSet()
                addRetweet(record, original: original, into: &changes)
                try changes.commit(to: self)
                return (record, newTweetStamps(record.id))
            }, answer: { (made) throws(SocialError) -> Tweet in try completed(try keepNew(made.0, made.1)) })
        })
    }

    typealias NewTweetStamps = (view: UInt64, counts: UInt64)

    /// The hydration caches' generations for a tweet just committed, taken under the writer
    /// lock: `keepNew` installs against them after the lock is released.
    func newTweetStamps(_ id: UInt64) -> NewTweetStamps { (tweetViews.stamp(id), tweetCountsCache.stamp(id)) }

    /// Puts a tweet just committed into the hydration caches, outside the writer lock: its view
    /// and no counts, each unless a write (a like, a delete) invalidated anything in its shard
    /// since `stamps`. Its first reads, the poster's answer among them, then need no record or
    /// counter reads. Returns the view.
    func keepNew(_ record: TweetRecord, _ stamps: NewTweetStamps) throws(SocialError) -> Tweet {
        let view = try view(of: record)
        tweetViews.install(record.id, view.content, since: stamps.view)
        tweetCountsCache.install(record.id, TweetCounts(likes: 0, retweets: 0, replies: 0, quotes: 0), since: stamps.counts)
        return view
    }

    /// The keys of a new tweet, reply or quote (the writer lock is held). `parent` and `quoted`
    /// are the stored records `record.replyTo` and `record.quoteOf` name, nil when absent: an
    /// import keeps a reply to a tweet it does not have, like a reply whose parent was deleted
    /// (keys `replies` and `conversations` are written, no counter or notification). `root`:
    /// the conversation root when `record.replyTo` is set.
    func addTweet(_ record: TweetRecord, parent: TweetRecord?, root: UInt64?, quoted: TweetRecord?, into changes: inout ChangeSet) {
        changes.put(Keys.tweet(record.id), record.encoded())
        changes.put(Keys.authorTweet(author: record.author, tweet: record.id), AuthorTweetValue.encode(record, originalAuthor: nil))
        changes.count(record.author, .tweets, 1)
        if let replyTo = record.replyTo {
            let root = root ?? replyTo
            changes.put(Keys.two(.replies, replyTo, record.id), .u64(root))
            changes.put(Keys.two(.conversations, root, record.id))
            if parent != nil { changes.count(replyTo, .replies, 1) }
        }
        if let quoted { changes.count(quoted.id, .quotes, 1) }
        notifyTweet(record, parentAuthor: parent?.author, quotedAuthor: quoted?.author, retweetedAuthor: nil, into: &changes)
    }

    /// The keys of a new retweet of `original` (the writer lock is held).
    func addRetweet(_ record: TweetRecord, original: TweetRecord, into changes: inout ChangeSet) {
        changes.put(Keys.tweet(record.id), record.encoded())
        changes.put(Keys.authorTweet(author: record.author, tweet: record.id), AuthorTweetValue.encode(record, originalAuthor: original.author))
        changes.put(Keys.two(.retweets, original.id, record.author), .u64(record.id))
        changes.count(record.author, .tweets, 1)
        changes.count(original.id, .retweets, 1)
        notifyTweet(record, parentAuthor: nil, quotedAuthor: nil, retweetedAuthor: original.author, into: &changes)
    }

    /// Undoes `handle`'s retweet of `tweet` (the original's id or the retweet's); `not_found`
    /// when there is none. Returns the id of the retweet removed.
    @discardableResult
    public func unretweet(handle: String, tweet: UInt64) throws(SocialError) -> UInt64 {
        try answering { () throws(SocialError) -> UInt64 in
            try admitWrite(handle)
            return try writing { () throws(SocialError) -> UInt64 in
                let user = try userRecord(handle: handle)
                let original = try target(tweet)
                guard let retweet = try retweetID(of: original.id, by: user.id) else {
                    throw .notFound("@\(user.handle) has not retweeted \(original.id)")
                }
                var changes = ChangeSet()
                try removeRetweet(retweet, of: original.id, by: user.id, originalExists: true, into: &changes)
                try changes.commit(to: self)
                return retweet
            }
        }
    }

    /// Likes `tweet` (the original when it is a retweet). Idempotent: liking again changes
    /// nothing. Returns the liked tweet with its counts.
    @discardableResult
    public func like(handle: String, tweet: UInt64) throws(SocialError) -> Tweet {
        try setLike(handle: handle, tweet: tweet, liked: true)
    }

    /// Takes a like back; idempotent like `like`.
    @discardableResult
    public func unlike(handle: String, tweet: UInt64) throws(SocialError) -> Tweet {
        try setLike(handle: handle, tweet: tweet, liked: false)
    }

    private func setLike(handle: String, tweet: UInt64, liked: Bool) throws(SocialError) -> Tweet {
        try answering { () throws(SocialError) -> Tweet in
            try admitWrite(handle, liked ? .like : .other)
            let record = try writing { () throws(SocialError) -> TweetRecord in
                let user = try userRecord(handle: handle)
                let record = try target(tweet)
                let key = Keys.two(.likes, record.id, user.id)
                let present: Bool
                present = try value(key) != nil
                guard present != liked else { return record }
                var changes = ChangeSet()
                if liked {
                    changes.put(key)
                    changes.put(Keys.two(.likesByUser, user.id, record.id))
                    notifyLike(tweet: record, liker: user.id, into: &changes)
                } else {
                    changes.delete(key)
                    changes.delete(Keys.two(.likesByUser, user.id, record.id))
                    try unnotifyLike(tweet: record.id, author: record.author, liker: user.id, into: &changes)
                }
                changes.count(record.id, .likes, liked ? 1 : -1)
                try changes.commit(to: self)
                return record
            }
            return try self.tweet(record)
        }
    }

    /// Deletes one's own tweet (anyone else: `forbidden`). The tweet goes with its likes, its
    /// counters and every retweet of it, in one batch (several only when it has thousands of
    /// likes and retweets: the first holds the tweet and its retweets, so it vanishes at once).
    /// Replies and quotes of it stay, as on Twitter. Deleting a retweet is an unretweet.
    public func delete(handle: String, tweet id: UInt64) throws(SocialError) {
        try answering { () throws(SocialError) in
            try admitWrite(handle)
            try writing { () throws(SocialError) in
                let user = try userRecord(handle: handle)
                guard let record = try tweetRecord(id) else { throw .notFound("no tweet \(id)") }
                guard record.author == user.id else {
                    let author = try userRecord(id: record.author)?.handle ?? String(record.author)
                    throw .forbidden("tweet \(id) is by @\(author); only its author may delete it")
                }
                var changes = ChangeSet()
                if let original = record.retweetOf {
                    try removeRetweet(id, of: original, by: user.id, originalExists: try tweetRecord(original) != nil, into: &changes)
                } else {
                    try removeTweet(record, into: &changes)
                }
                try changes.commit(to: self)
                if record.retweetOf == nil { consumers.exclusively { consumers.forgetTrends(of: record) } }
            }
        }
    }

    private func removeRetweet(_ retweet: UInt64, of original: UInt64, by user: UInt64, originalExists: Bool,
                               into changes: inout ChangeSet) throws(SocialError) {
        try unnotifyTweet(retweet, into: &changes)
        changes.delete(Keys.tweet(retweet))
        changes.delete(Keys.authorTweet(author: user, tweet: retweet))
        changes.delete(Keys.two(.retweets, original, user))
        changes.count(user, .tweets, -1)
        if originalExists { changes.count(original, .retweets, -1) }
    }

    private func removeTweet(_ record: TweetRecord, into changes: inout ChangeSet) throws(SocialError) {
        let id = record.id
        changes.delete(Keys.tweet(id))
        changes.delete(Keys.authorTweet(author: record.author, tweet: id))
        changes.count(record.author, .tweets, -1)
        var retweets: [(user: UInt64, retweet: UInt64)] = []
        var likers: [UInt64] = []
        do {
            try tree.scan(from: Keys.two(.retweets, id, 0), to: Keys.two(.retweets, id, UInt64.max)) { key, value in
                if value.count == 8 { retweets.append((Keys.number(key, at: 9), value.loadLE(UInt64.self, at: 0))) }
                return true
            }
            try tree.scan(from: Keys.two(.likes, id, 0), to: Keys.two(.likes, id, UInt64.max)) { key, _ in
                likers.append(Keys.number(key, at: 9))
                return true
            }
        } catch { throw SocialError(error) }
        try unnotifyTweet(id, into: &changes)
        for (user, retweet) in retweets {
            try unnotifyTweet(retweet, into: &changes)
            changes.delete(Keys.tweet(retweet))
            changes.delete(Keys.authorTweet(author: user, tweet: retweet))
            changes.delete(Keys.two(.retweets, id, user))
            changes.count(user, .tweets, -1)
        }
        if let parent = record.replyTo {
            let root: UInt64?
            root = try value(Keys.two(.replies, parent, id))?.u64
            changes.delete(Keys.two(.replies, parent, id))
            if let root { changes.delete(Keys.two(.conversations, root, id)) }
            if try tweetRecord(parent) != nil { changes.count(parent, .replies, -1) }
        }
        if let quoted = record.quoteOf, try tweetRecord(quoted) != nil { changes.count(quoted, .quotes, -1) }
        for kind in CounterKind.allCases where kind != .tweets { changes.delete(SocialKeys.counter(id, kind)) }
        for user in likers {
            try unnotifyLike(tweet: id, author: record.author, liker: user, into: &changes)
            changes.delete(Keys.two(.likes, id, user))
            changes.delete(Keys.two(.likesByUser, user, id))
        }
    }

    // MARK: Reading tweets

    /// One tweet with its counts; a retweet comes with its original inside.
    public func tweet(id: UInt64) throws(SocialError) -> Tweet {
        try answering { () throws(SocialError) -> Tweet in
            guard let view = try view(id: id) else { throw .notFound("no tweet \(id)") }
            return try completed(view)
        }
    }

    /// The conversation `id` belongs to, in order: its first tweet (while it exists), then every
    /// reply in it, oldest first, at most `limit` replies.
    public func thread(id: UInt64, limit: Int = SocialDB.pageLimitMax) throws(SocialError) -> [Tweet] {
        try answering { () throws(SocialError) -> [Tweet] in
            try Self.checkLimit(limit)
            let record = try target(id)
            let root = try conversationRoot(of: record)
            var ids: [UInt64] = [root]
            do throws(LSMError) {
                try tree.scan(from: Keys.two(.conversations, root, 0), to: Keys.two(.conversations, root, UInt64.max), limit: limit) { key, _ in
                    ids.append(Keys.number(key, at: 9))
                    return true
                }
            } catch { throw SocialError(error) }
            return try tweets(ids: ids)
        }
    }

    /// `handle`'s tweets, replies, quotes and retweets, newest first, below `before` (exclusive).
    public func tweets(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil) throws(SocialError) -> Page<Tweet> {
        try answering { () throws(SocialError) -> Page<Tweet> in
            let (ids, next) = try authorPageIDs(handle: handle, limit: limit, before: before)
            return Page(items: try tweets(ids: ids), nextCursor: next)
        }
    }

    /// The ids of the page `tweets(handle:limit:before:)` shows, and its next cursor.
    func authorPageIDs(handle: String, limit: Int, before: UInt64?) throws(SocialError) -> (ids: [UInt64], next: UInt64?) {
        try Self.checkLimit(limit)
        let user = try userIdentity(handle: handle)
        // One more than asked tells whether there is a next page, so the last page has no cursor.
        var ids: [UInt64]
        ids = try authorItemIDs(user, before: before ?? UInt64.max, limit: limit + 1)
        let more = ids.count > limit
        if more { ids.removeLast() }
        return (ids, more ? ids.last : nil)
    }

    /// The largest `offset` of `tweets(handle:limit:offset:)`.
    public static let offsetMax = 10_000

    /// `handle`'s tweets, replies, quotes and retweets, newest first, skipping the `offset`
    /// newest (0 to `offsetMax`; `invalid` above): the offset paging of DeathStarBench's
    /// user-timeline read. `nextCursor` continues with `before` like any page.
    public func tweets(handle: String, limit: Int = SocialDB.pageLimitDefault, offset: Int) throws(SocialError) -> Page<Tweet> {
        try answering { () throws(SocialError) -> Page<Tweet> in
            try Self.checkLimit(limit)
            guard offset >= 0 && offset <= Self.offsetMax else {
                throw .invalid("OFFSET must be 0 to \(Self.offsetMax), not \(offset)")
            }
            let user = try userIdentity(handle: handle)
            var ids: [UInt64]
            ids = try authorItemIDs(user, before: UInt64.max, limit: offset + limit + 1)
            ids.removeFirst(min(offset, ids.count))
            let more = ids.count > limit
            if more { ids.removeLast(ids.count - limit) }
            return Page(items: try tweets(ids: ids), nextCursor: more ? ids.last : nil)
        }
    }

    /// The ids of `user`'s newest items below `before`, at most `limit`: from the authors'
    /// recent items kept for ring rebuilds (`AuthorItemsCache`) when they cover the page, else
    /// a reverse scan of the author index. Both leave out a retweet whose original is gone (the
    /// page would drop it anyway).
    func authorItemIDs(_ user: (id: UInt64, number: UInt32), before: UInt64, limit: Int) throws(SocialError) -> [UInt64] {
        if limit <= AuthorItemsCache.perAuthorMax {
            var items = ContiguousArray<TimelineItem>()
            consumers.tweetSource.newestItems(of: user.number, before: before, limit: limit, into: &items)
            if let failure = consumers.sourceFailure.take() { throw .io(failure) }
            return items.map(\.id)
        }
        do { return try tree.authorTweets(author: user.id, before: before, limit: limit) } catch { throw SocialError(error) }
    }

    /// The tweets of `ids` that exist, in that order, completed as `completed(_:)` does (counts,
    /// the retweeted or quoted tweet), a retweet whose original is gone left out.
    ///
    /// A page is read in two rounds, each one batched multi-get through this thread's spare
    /// `RecordBatch`: the tweets' views (`tweetViews`) and counts (`tweetCountsCache`), and for
    /// those the caches do not have, their records and four counter keys; then the same for
    /// the tweets they retweet or quote. The tree's pipelined lookups overlap the page's cache
    /// misses instead of paying them one key after another.
    ///
    /// A view holds only what never changes while the tweet exists (its record, the author's
    /// and mentioned users' handles, which never change, and its conversation, fixed at
    /// creation); `ChangeSet.commit` invalidates it when the record is deleted. Counts and the
    /// retweeted or quoted tweet are added at every read.
    func tweets(ids: [UInt64]) throws(SocialError) -> [Tweet] {
        guard !ids.isEmpty else { return [] }
        return try RecordBatch.withThreadBatch { (batch) throws(SocialError) -> [Tweet] in
            let top = try hydrate(ids, batch: batch)
            var nestedIDs: [UInt64] = []
            for case let view? in top.views {
                if let original = view.retweetOf { nestedIDs.append(original) }
                if let quoted = view.quoteOf { nestedIDs.append(quoted) }
            }
            let nested = nestedIDs.isEmpty ? Hydrated() : try hydrate(nestedIDs, batch: batch)
            // Long pages (up to the timeline capacity) find their nested tweets by a table.
            var nestedIndex: [UInt64: Int] = [:]
            if nestedIDs.count > 16 { for (k, id) in nestedIDs.enumerated() where nestedIndex[id] == nil { nestedIndex[id] = k } }
            func shown(_ id: UInt64) -> Tweet? {
                let position = nestedIDs.count > 16 ? nestedIndex[id] : nestedIDs.firstIndex(of: id)
                guard let k = position, let view = nested.views[k] else { return nil }
                return Self.counted(view, nested.counts[k])
            }
            var result: [Tweet] = []
            result.reserveCapacity(ids.count)
            for i in ids.indices {
                guard let view = top.views[i] else { continue }
                var tweet = Self.counted(view, top.counts[i])
                var originalTweet: Tweet? = nil
                if let original = tweet.retweetOf {
                    // Its original is being deleted with it: a page leaves it out.
                    guard let shownOriginal = shown(original) else { continue }
                    originalTweet = shownOriginal
                }
                var quotedTweet: Tweet? = nil
                if let quoted = tweet.quoteOf { quotedTweet = shown(quoted) }
                tweet.setNested(retweeted: originalTweet, quoted: quotedTweet)
                result.append(tweet)
            }
            return result
        }
    }

    /// Views and counts of a round of `tweets(ids:)`, by position.
    struct Hydrated {
        var views: [Tweet?] = []
        var counts: [TweetCounts] = []
    }

    static func counted(_ view: Tweet, _ counts: TweetCounts) -> Tweet {
        var tweet = view
        tweet.likeCount = Int(counts.likes)
        tweet.retweetCount = Int(counts.retweets)
        tweet.replyCount = Int(counts.replies)
        tweet.quoteCount = Int(counts.quotes)
        return tweet
    }

    /// The view (nil: no such tweet) and counts of each of `ids`: from the caches, the rest in
    /// one multi-get of `batch` (records and counter keys), decoded and kept in the caches.
    /// Each cache's generation is taken before the tree is read, so a value a write replaced
    /// meanwhile is not kept.
    func hydrate(_ ids: [UInt64], batch: RecordBatch) throws(SocialError) -> Hydrated {
        batch.removeAll()
        // Most counter keys are absent (a tweet nobody liked, retweeted, replied to or quoted):
        // `tweetCountsCache` keeps the counts, so the record cache keeps its slots for values.
        batch.keepsAbsent = false
        var out = Hydrated(views: [Tweet?](repeating: nil, count: ids.count),
                           counts: [TweetCounts](repeating: TweetCounts(likes: 0, retweets: 0, replies: 0, quotes: 0), count: ids.count))
        /// Per id: its record's and first counter's index in the batch (-1: cached), stamps.
        struct Pending {
            var record = -1
            var counters = -1
            var viewStamp: UInt64 = 0
            var countsStamp: UInt64 = 0
        }
        var pending = [Pending](repeating: Pending(), count: ids.count)
        tweetViews.prefetch(ids)
        tweetCountsCache.prefetch(ids)
        for i in ids.indices {
            let id = ids[i]
            if let content = tweetViews.lookup(id) {
                let view = Tweet(content: content)
                out.views[i] = view
            } else {
                pending[i].viewStamp = tweetViews.stamp(id)
                pending[i].record = batch.count
                batch.append(.tweets, id)
            }
            if let counts = tweetCountsCache.lookup(id) {
                out.counts[i] = counts
            } else {
                pending[i].countsStamp = tweetCountsCache.stamp(id)
                pending[i].counters = batch.count
                batch.append(.counters, id, CounterKind.likes.rawValue)
                batch.append(.counters, id, CounterKind.retweets.rawValue)
                batch.append(.counters, id, CounterKind.replies.rawValue)
                batch.append(.counters, id, CounterKind.quotes.rawValue)
            }
        }
        guard batch.count > 0 else { return out }
        do { try tree.multiGet(batch) } catch { throw SocialError(error) }
        func count(_ index: Int) -> Int {
            guard let value = batch.value(at: index), value.count == 8 else { return 0 }
            return Int(clamping: value.loadLE(UInt64.self, at: 0))
        }
        for i in ids.indices {
            let p = pending[i]
            if p.counters >= 0 {
                let counts = TweetCounts(likes: count(p.counters), retweets: count(p.counters + 1),
                                         replies: count(p.counters + 2), quotes: count(p.counters + 3))
                out.counts[i] = counts
                tweetCountsCache.install(ids[i], counts, since: p.countsStamp)
            }
            guard p.record >= 0, let value = batch.value(at: p.record) else { continue }
            let record: TweetRecord
            do { record = try TweetRecord.decode(value) } catch { throw SocialError(error) }
            guard record.id == ids[i] else { throw .io("storage: the record under tweet \(ids[i]) names tweet \(record.id)") }
            let view = try self.view(of: record)
            tweetViews.install(ids[i], view.content, since: p.viewStamp)
            out.views[i] = view
        }
        return out
    }

    /// `view` completed as shown in a list, or nil for a retweet whose original is gone (it is
    /// being deleted with it). Any other failure (a storage error) is thrown, not taken for
    /// absence: a damaged block must never make a tweet silently vanish from a page.
    func shownTweet(_ view: Tweet) throws(SocialError) -> Tweet? {
        do {
            return try completed(view)
        } catch {
            if case .notFound = error, view.retweetOf != nil { return nil }
            throw error
        }
    }

    // MARK: Helpers

    func tweetRecord(_ id: UInt64) throws(SocialError) -> TweetRecord? {
        let value = try self.value(Keys.tweet(id))
        guard let value else { return nil }
        do { return try TweetRecord.decode(value) } catch { throw SocialError(error) }
    }

    /// The tweet an action on `id` is about: the tweet, or the original of a retweet.
    func target(_ id: UInt64) throws(SocialError) -> TweetRecord {
        guard let record = try tweetRecord(id) else { throw .notFound("no tweet \(id)") }
        guard let original = record.retweetOf else { return record }
        guard let originalRecord = try tweetRecord(original) else { throw .notFound("no tweet \(original) (retweeted by \(id))") }
        return originalRecord
    }

    func retweetID(of original: UInt64, by user: UInt64) throws(SocialError) -> UInt64? {
        return try value(Keys.two(.retweets, original, user))?.u64
    }

    func conversationRoot(of record: TweetRecord) throws(SocialError) -> UInt64 {
        guard let parent = record.replyTo else { return record.id }
        return try value(Keys.two(.replies, parent, record.id))?.u64 ?? parent
    }

    /// The value of a stored tweet: author handle, counts, conversation, mention handles, and
    /// for the top level the retweeted or quoted tweet. Throws `not_found` for a retweet whose
    /// original is gone.
    func tweet(_ record: TweetRecord, nested: Bool = true) throws(SocialError) -> Tweet {
        try completed(try view(of: record), nested: nested)
    }

    /// What of `record`'s tweet never changes while it exists: no counts, no nested tweets.
    func view(of record: TweetRecord) throws(SocialError) -> Tweet {
        var mentions: [String] = []
        for id in record.mentions {
            if let handle = try handle(ofUser: id) { mentions.append(handle) }
        }
        return Tweet(id: record.id, authorID: record.author, authorHandle: try handle(ofUser: record.author) ?? "",
                     createdAtMilliseconds: record.time, text: record.text, replyTo: record.replyTo,
                     conversationID: try conversationRoot(of: record), retweetOf: record.retweetOf, quoteOf: record.quoteOf,
                     mentions: mentions, hashtags: record.hashtags, urls: record.urls,
                     likeCount: 0, retweetCount: 0, replyCount: 0, quoteCount: 0)
    }

    /// The view of tweet `id` (from `tweetViews`, else read and kept), or nil when it does not exist.
    func view(id: UInt64) throws(SocialError) -> Tweet? {
        if let content = tweetViews.lookup(id) { return Tweet(content: content) }
        let stamp = tweetViews.stamp(id)
        guard let record = try tweetRecord(id) else { return nil }
        guard record.id == id else { throw .io("storage: the record under tweet \(id) names tweet \(record.id)") }
        let view = try self.view(of: record)
        tweetViews.install(id, view.content, since: stamp)
        return view
    }

    /// `view` with its counts and, for the top level (`nested`), the retweeted or quoted tweet.
    func completed(_ view: Tweet, nested: Bool = true) throws(SocialError) -> Tweet {
        var tweet = view
        let counts = try tweetCounts(of: tweet.id)
        tweet.likeCount = counts.likes
        tweet.retweetCount = counts.retweets
        tweet.replyCount = counts.replies
        tweet.quoteCount = counts.quotes
        if let original = tweet.retweetOf {
            guard let originalView = try self.view(id: original) else {
                throw .notFound("no tweet \(original) (retweeted by \(tweet.id))")
            }
            tweet.retweeted = try completed(originalView, nested: false)
        }
        if nested, let quoted = tweet.quoteOf, let quotedView = try self.view(id: quoted) {
            tweet.quoted = try completed(quotedView, nested: false)
        }
        return tweet
    }
}

extension SocialDB {
    // MARK: Home timeline

    /// The largest `limit` of `home`: the timeline capacity.
    public var homeLimitMax: Int { consumers.timeline.options.capacity }

    /// `handle`'s home timeline: tweets, replies, quotes and retweets by the user and everyone
    /// they follow, newest first (by the item's own id: a retweet sits where it was retweeted),
    /// below `before` (exclusive). An original appears at most once in a page however many
    /// followees retweeted it. `limit` is 1 to the timeline capacity.
    public func home(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil) throws(SocialError) -> Page<Tweet> {
        try answering { () throws(SocialError) -> Page<Tweet> in
            let (ids, next) = try homeIDs(handle: handle, limit: limit, before: before)
            return Page(items: try tweets(ids: ids), nextCursor: next)
        }
    }

    /// The ids of the page `home(handle:limit:before:)` shows, and its next cursor.
    func homeIDs(handle: String, limit: Int, before: UInt64?) throws(SocialError) -> (ids: [UInt64], next: UInt64?) {
        try Self.checkLimit(limit, max: homeLimitMax)
        let user = try userIdentity(handle: handle)
        // One more than asked tells whether there is a next page (when the capacity allows).
        let fetch = min(limit + 1, homeLimitMax)
        consumers.noteActivityDay()
        let items = consumers.timeline.home(of: user.number, limit: fetch, before: before ?? .max)
        if let failure = consumers.sourceFailure.take() { throw .io(failure) }
        var ids = items.map(\.id)
        var more = ids.count > limit
        if ids.count > limit { ids.removeLast(ids.count - limit) }
        if fetch == limit && ids.count == limit, let last = ids.last {
            // LIMIT is the capacity, the most the store reads at once: look past the page for an
            // item the page would not have hidden (an original it already showed).
            let shown = Set(items.map(\.tweetId))
            let after = consumers.timeline.home(of: user.number, limit: fetch, before: last)
            if let failure = consumers.sourceFailure.take() { throw .io(failure) }
            more = after.contains { !shown.contains($0.tweetId) }
        }
        return (ids, more ? ids.last : nil)
    }

    /// `handle`'s home timeline like `home(handle:limit:before:)`, skipping the `offset` newest
    /// items (DeathStarBench's read: 10 items at an offset of 0 to 100). The page must lie within
    /// the timeline: `offset + limit` at most the capacity (`homeLimitMax`), else `invalid`.
    /// `nextCursor` continues with `before`.
    public func home(handle: String, limit: Int = SocialDB.pageLimitDefault, offset: Int) throws(SocialError) -> Page<Tweet> {
        try answering { () throws(SocialError) -> Page<Tweet> in
            try Self.checkLimit(limit, max: homeLimitMax)
            guard offset >= 0 && offset + limit <= homeLimitMax else {
                throw .invalid("OFFSET + LIMIT must be at most the timeline capacity \(homeLimitMax), not \(offset) + \(limit)")
            }
            if offset == 0 { return try home(handle: handle, limit: limit) }
            let user = try userIdentity(handle: handle)
            let wanted = offset + limit
            let fetch = min(wanted + 1, homeLimitMax)
            consumers.noteActivityDay()
            let items = consumers.timeline.home(of: user.number, limit: fetch, before: .max)
            if let failure = consumers.sourceFailure.take() { throw .io(failure) }
            guard items.count > offset else { return Page(items: [], nextCursor: nil) }
            let end = min(items.count, wanted)
            var ids: [UInt64] = []
            ids.reserveCapacity(end - offset)
            for i in offset..<end { ids.append(items[i].id) }
            var more = items.count > wanted
            if fetch == wanted && end == wanted, let last = ids.last {
                // The page ends at the capacity: look past it as `home(handle:limit:before:)` does.
                let shown = Set(items.map(\.tweetId))
                let after = consumers.timeline.home(of: user.number, limit: limit, before: last)
                if let failure = consumers.sourceFailure.take() { throw .io(failure) }
                more = after.contains { !shown.contains($0.tweetId) }
            }
            return Page(items: try tweets(ids: ids), nextCursor: more ? ids.last : nil)
        }
    }
}
