import Synchronization

/// How an application that serves tweets as bytes (the server's JSON answers) encodes the part
/// of a tweet that never changes while the tweet exists: its view (see `SocialDB.tweets(ids:)`),
/// with no counts and no nested tweet. The Social layer keeps each tweet's encoded view beside
/// its view (`SocialDB.tweetEncodings`), so a page of tweets is served by copying bytes; the
/// application adds the counts and the nested tweets, which change, at every read.
///
/// A database keeps the views of one encoding: every call passes the same type (a second type
/// is a programmer error and traps).
public protocol TweetViewEncoding {
    /// Appends the encoding of `view`'s fields that never change (a view's counts are zero and
    /// it has no nested tweet: write neither).
    static func encodeView(_ view: Tweet, into out: inout [UInt8])
}

/// A tweet of a page as an encoding shows it: its encoded view and counts, and for a retweet
/// the original, for a quote the quoted tweet while it exists (each without nested tweets of
/// its own), as `Tweet.retweeted` and `Tweet.quoted` hold them.
public struct EncodedTweet: Sendable {
    public var tweet: Part
    public var retweeted: Part?
    public var quoted: Part?

    /// One tweet: the bytes `TweetViewEncoding.encodeView` made of its view (shared with the
    /// cache: reading them copies nothing) and its counts as read now.
    public struct Part: Sendable {
        public var view: [UInt8]
        public var likeCount: Int
        public var retweetCount: Int
        public var replyCount: Int
        public var quoteCount: Int
    }
}

/// A tweet's encoded view as `SocialDB.tweetEncodings` keeps it, with the ids of the tweets a
/// page shows inside it.
struct EncodedView: Sendable, CacheCost {
    var bytes: [UInt8]
    var retweetOf: UInt64?
    var quoteOf: UInt64?

    /// The bytes, the array's header, and the dictionary's slot and metadata.
    var cacheBytes: Int { bytes.count + 32 + 64 }
}

extension SocialDB {
    /// `home(handle:limit:before:)` with each tweet as its encoded view and counts: the same
    /// tweets, in the same order, with the same cursor.
    public func encodedHome<Encoding: TweetViewEncoding>(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil,
                                                         as encoding: Encoding.Type) throws(SocialError) -> Page<EncodedTweet> {
        try answering { () throws(SocialError) -> Page<EncodedTweet> in
            let (ids, next) = try homeIDs(handle: handle, limit: limit, before: before)
            return Page(items: try encodedTweets(ids: ids, as: encoding), nextCursor: next)
        }
    }

    /// `tweets(handle:limit:before:)` with each tweet as its encoded view and counts.
    public func encodedTweets<Encoding: TweetViewEncoding>(handle: String, limit: Int = SocialDB.pageLimitDefault, before: UInt64? = nil,
                                                           as encoding: Encoding.Type) throws(SocialError) -> Page<EncodedTweet> {
        try answering { () throws(SocialError) -> Page<EncodedTweet> in
            let (ids, next) = try authorPageIDs(handle: handle, limit: limit, before: before)
            return Page(items: try encodedTweets(ids: ids, as: encoding), nextCursor: next)
        }
    }

    /// `tweet(id:)` as its encoded view and counts.
    public func encodedTweet<Encoding: TweetViewEncoding>(id: UInt64, as encoding: Encoding.Type) throws(SocialError) -> EncodedTweet {
        try answering { () throws(SocialError) -> EncodedTweet in
            guard let view = try encodedView(id: id, as: encoding) else { throw .notFound("no tweet \(id)") }
            guard let shown = try shownEncoded(id, view, as: encoding) else {
                throw .notFound("no tweet \(view.retweetOf ?? 0) (retweeted by \(id))")
            }
            return shown
        }
    }

    /// The tweets of `ids` that exist, as `tweets(ids:)` shows them (a retweet whose original
    /// is gone is left out), each from its encoded view.
    func encodedTweets<Encoding: TweetViewEncoding>(ids: [UInt64], as encoding: Encoding.Type) throws(SocialError) -> [EncodedTweet] {
        var result: [EncodedTweet] = []
        result.reserveCapacity(ids.count)
        for id in ids {
            guard let view = try encodedView(id: id, as: encoding) else { continue }
            if let shown = try shownEncoded(id, view, as: encoding) { result.append(shown) }
        }
        return result
    }

    /// `view` with its counts and nested tweets; nil for a retweet whose original is gone.
    private func shownEncoded<Encoding: TweetViewEncoding>(_ id: UInt64, _ view: EncodedView, as encoding: Encoding.Type) throws(SocialError) -> EncodedTweet? {
        var shown = EncodedTweet(tweet: try part(id, view.bytes), retweeted: nil, quoted: nil)
        if let original = view.retweetOf {
            guard let originalView = try encodedView(id: original, as: encoding) else { return nil }
            shown.retweeted = try part(original, originalView.bytes)
        }
        if let quoted = view.quoteOf, let quotedView = try encodedView(id: quoted, as: encoding) {
            shown.quoted = try part(quoted, quotedView.bytes)
        }
        return shown
    }

    private func part(_ id: UInt64, _ bytes: [UInt8]) throws(SocialError) -> EncodedTweet.Part {
        let counts = try tweetCounts(of: id)
        return EncodedTweet.Part(view: bytes, likeCount: counts.likes, retweetCount: counts.retweets,
                                 replyCount: counts.replies, quoteCount: counts.quotes)
    }

    /// Tweet `id`'s encoded view: from `tweetEncodings`, else encoded from its view (itself from
    /// `tweetViews` or the tree) and kept; nil when the tweet does not exist.
    ///
    /// Kept true as the views are: `ChangeSet.commit` invalidates a tweet's encoded view right
    /// after its view, and the generation is taken here before the view is read, so an encoding
    /// of a view that a write replaced is never installed after that write's invalidation.
    func encodedView<Encoding: TweetViewEncoding>(id: UInt64, as encoding: Encoding.Type) throws(SocialError) -> EncodedView? {
        if let encoded = tweetEncodings.lookup(id) { return encoded }
        checkEncoding(encoding)
        let stamp = tweetEncodings.stamp(id)
        guard let view = try view(id: id) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + view.text.utf8.count)
        Encoding.encodeView(view, into: &bytes)
        let encoded = EncodedView(bytes: bytes, retweetOf: view.retweetOf, quoteOf: view.quoteOf)
        tweetEncodings.install(id, encoded, since: stamp)
        return encoded
    }

    /// Traps when a second encoding type is used on this database (its cached views would be
    /// of the first).
    private func checkEncoding<Encoding: TweetViewEncoding>(_ encoding: Encoding.Type) {
        let identity = Int(bitPattern: ObjectIdentifier(encoding))
        let (exchanged, original) = tweetEncodingType.compareExchange(expected: 0, desired: identity, ordering: .relaxed)
        precondition(exchanged || original == identity, "a database keeps the views of one TweetViewEncoding; \(encoding) is a second one")
    }
}
