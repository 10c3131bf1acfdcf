import StorageEngine
import Synchronization

/// How an application that serves tweets as bytes (the server's JSON answers) encodes a tweet:
/// each tweet's own part, its view (see `SocialDB.tweets(ids:)`) and its counts, is encoded
/// once and kept beside its view (`SocialDB.tweetEncodings`) until the tweet's record or one of
/// its counts changes; a page is then written by copying those parts into the answer, with the
/// few bytes this protocol gives between them (nested tweets, the end of a tweet, separators).
///
/// The shape of a tweet written from parts, `T` a tweet's part, `O` and `Q` the parts of the
/// original of a retweet and of a quoted tweet:
///
///     T beforeNested(.retweeted) (O afterNestedTweet | absentNested)
///       beforeNested(.quoted) (Q afterNestedTweet | absentNested) afterTweet
///
/// and a page is its tweets with `separator` between them. A database keeps the parts of one
/// encoding: every call passes the same type (a second type is a programmer error and traps).
public protocol TweetViewEncoding {
    /// Appends the part of `view` with its counts (the view's own counts are zero: use the
    /// arguments) and without nested tweets (the view has none).
    static func encodeView(_ view: Tweet, likes: Int, retweets: Int, replies: Int, quotes: Int, into out: inout [UInt8])
    /// Between a tweet's part and its nested tweet of `kind`.
    static func appendBeforeNested(_ kind: NestedTweetKind, into out: inout [UInt8])
    /// After a nested tweet's part (a nested tweet has no nested tweets of its own).
    static func appendAfterNestedTweet(into out: inout [UInt8])
    /// In place of a nested tweet that is not there.
    static func appendAbsentNested(into out: inout [UInt8])
    /// After a tweet (its nested tweets written).
    static func appendAfterTweet(into out: inout [UInt8])
    /// Between two tweets of a page.
    static func appendSeparator(into out: inout [UInt8])
}

/// What a tweet shows inside it: for a retweet the original, for a quote the quoted tweet (as
/// `Tweet.retweeted` and `Tweet.quoted`).
public enum NestedTweetKind: Sendable {
    case retweeted
    case quoted
}

extension SocialDB {
    /// Appends the page `home(handle:limit:before:)` shows, written in `encoding` (its tweets
    /// with separators, no brackets), and returns the page's next cursor: the same tweets, in
    /// the same order, with the same cursor. When it throws, what it appended is to be dropped.
    public func appendEncodedHome<Encoding: TweetViewEncoding>(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil,
                                                               as encoding: Encoding.Type, into out: inout [UInt8]) throws(SocialError) -> UInt64? {
        try answering { () throws(SocialError) -> UInt64? in
            let (ids, next) = try homeIDs(handle: handle, limit: limit, before: before)
            try appendEncodedTweets(ids: ids, as: encoding, into: &out)
            return next
        }
    }

    /// Appends the page `tweets(handle:limit:before:)` shows, as `appendEncodedHome` does.
    public func appendEncodedTweets<Encoding: TweetViewEncoding>(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil,
                                                                 as encoding: Encoding.Type, into out: inout [UInt8]) throws(SocialError) -> UInt64? {
        try answering { () throws(SocialError) -> UInt64? in
            let (ids, next) = try authorPageIDs(handle: handle, limit: limit, before: before)
            try appendEncodedTweets(ids: ids, as: encoding, into: &out)
            return next
        }
    }

    /// Appends the tweet `tweet(id:)` answers, written in `encoding`; throws what it throws.
    public func appendEncodedTweet<Encoding: TweetViewEncoding>(id: UInt64, as encoding: Encoding.Type, into out: inout [UInt8]) throws(SocialError) {
        try answering { () throws(SocialError) in
            let start = out.count
            guard let inside = try appendPart(id, as: encoding, into: &out) else { throw .notFound("no tweet \(id)") }
            guard try appendNested(inside, as: encoding, into: &out) else {
                out.removeSubrange(start...)
                throw .notFound("no tweet \(inside.retweetOf ?? 0) (retweeted by \(id))")
            }
        }
    }

    /// The tweets of `ids` that exist, as `tweets(ids:)` shows them (a retweet whose original
    /// is gone is left out), each from its part and the parts of its nested tweets.
    func appendEncodedTweets<Encoding: TweetViewEncoding>(ids: [UInt64], as encoding: Encoding.Type, into out: inout [UInt8]) throws(SocialError) {
        let missing = tweetEncodings.prefetch(ids)
        if !missing.isEmpty { try warmViews(missing) }
        var first = true
        for id in ids {
            let start = out.count
            if !first { Encoding.appendSeparator(into: &out) }
            guard let inside = try appendPart(id, as: encoding, into: &out), try appendNested(inside, as: encoding, into: &out) else {
                out.removeSubrange(start...)
                continue
            }
            first = false
        }
    }

    /// After a tweet's part: its nested tweets and its end. False (having written part of it)
    /// for a retweet whose original is gone, which a page leaves out.
    private func appendNested<Encoding: TweetViewEncoding>(_ inside: (retweetOf: UInt64?, quoteOf: UInt64?), as encoding: Encoding.Type,
                                                           into out: inout [UInt8]) throws(SocialError) -> Bool {
        Encoding.appendBeforeNested(.retweeted, into: &out)
        if let original = inside.retweetOf {
            guard try appendPart(original, as: encoding, into: &out) != nil else { return false }
            Encoding.appendAfterNestedTweet(into: &out)
        } else {
            Encoding.appendAbsentNested(into: &out)
        }
        Encoding.appendBeforeNested(.quoted, into: &out)
        if let quoted = inside.quoteOf, try appendPart(quoted, as: encoding, into: &out) != nil {
            Encoding.appendAfterNestedTweet(into: &out)
        } else {
            Encoding.appendAbsentNested(into: &out)
        }
        Encoding.appendAfterTweet(into: &out)
        return true
    }

    /// Appends tweet `id`'s part and returns the ids of the tweets it shows inside it; appends
    /// nothing and returns nil when the tweet does not exist. The part is copied from
    /// `tweetEncodings` under its shard's lock rather than handed out (a page holds no
    /// reference to cached bytes), else
    /// encoded from the tweet's view (itself from `tweetViews` or the tree) and counts
    /// (`tweetCounts(of:)`) and kept.
    ///
    /// Kept true as the views and counts are: `ChangeSet.commit` invalidates a tweet's part
    /// right after its view (its record changed) or its counts (a counter changed), and the
    /// generation is taken here before the view and counts are read, so a part made of values
    /// that a write replaced is never installed after that write's invalidation.
    @discardableResult
    func appendPart<Encoding: TweetViewEncoding>(_ id: UInt64, as encoding: Encoding.Type,
                                                 into out: inout [UInt8]) throws(SocialError) -> (retweetOf: UInt64?, quoteOf: UInt64?)? {
        if let inside = tweetEncodings.append(id, into: &out) { return inside }
        checkEncoding(encoding)
        let stamp = tweetEncodings.stamp(id)
        guard let view = try view(id: id) else { return nil }
        let counts = try tweetCounts(of: id)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(320 + view.text.utf8.count)
        Encoding.encodeView(view, likes: counts.likes, retweets: counts.retweets, replies: counts.replies, quotes: counts.quotes, into: &bytes)
        out.append(contentsOf: bytes)
        tweetEncodings.install(id, bytes: bytes, retweetOf: view.retweetOf, quoteOf: view.quoteOf, since: stamp)
        return (view.retweetOf, view.quoteOf)
    }

    /// Reads the views and counts of `ids` (tweets whose parts are not cached) and of the
    /// tweets they retweet or quote into `tweetViews` and `tweetCountsCache`, in the batched
    /// rounds `tweets(ids:)` reads a page in, so that `appendPart` then finds them there
    /// instead of reading each record and its four counters one tweet at a time. Nothing when
    /// views are not cached (each would be read twice).
    private func warmViews(_ ids: [UInt64]) throws(SocialError) {
        guard tweetViews.enabled else { return }
        try RecordBatch.withThreadBatch { (batch) throws(SocialError) in
            let top = try hydrate(ids, batch: batch)
            var nested: [UInt64] = []
            for case let view? in top.views {
                if let original = view.retweetOf { nested.append(original) }
                if let quoted = view.quoteOf { nested.append(quoted) }
            }
            let nestedMissing = nested.isEmpty ? [] : tweetEncodings.prefetch(nested)
            if !nestedMissing.isEmpty { _ = try hydrate(nestedMissing, batch: batch) }
        }
    }

    /// Traps when a second encoding type is used on this database (its cached parts would be
    /// of the first).
    private func checkEncoding<Encoding: TweetViewEncoding>(_ encoding: Encoding.Type) {
        let identity = Int(bitPattern: ObjectIdentifier(encoding))
        let (exchanged, original) = tweetEncodingType.compareExchange(expected: 0, desired: identity, ordering: .relaxed)
        precondition(exchanged || original == identity, "a database keeps the parts of one TweetViewEncoding; \(encoding) is a second one")
    }
}
