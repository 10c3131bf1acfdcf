import StorageEngine

/// Why a user was notified.
public enum NotificationKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case mention = 1, reply = 2, quote = 3, retweet = 4, like = 5, follow = 6

    public var description: String {
        switch self {
        case .mention: "mention"
        case .reply: "reply"
        case .quote: "quote"
        case .retweet: "retweet"
        case .like: "like"
        case .follow: "follow"
        }
    }
}

/// One notification, as read at one moment.
public struct Notification: Sendable, Equatable {
    /// Orders notifications (newest first = largest): the causing tweet's id for a mention,
    /// reply, quote or retweet; an id of its own for a like or follow.
    public var id: UInt64
    public var kind: NotificationKind
    /// Who did it.
    public var actor: User
    /// The tweet it is about: the mentioning tweet, the reply, the quote; the tweet retweeted
    /// or liked. Nil for a follow.
    public var tweet: Tweet?
    public var createdAtMilliseconds: UInt64
}

/// The notification key spaces (layouts in Docs/FORMATS.md):
///
///     notifications       (recipient, sort id, kind u8, actor, subject) -> u64 time ms
///     notificationCauses  tag 1, (cause tweet, recipient) -> kind u8, actor, subject
///                             (mention, reply, quote: the cause is the new tweet; retweet: the retweet)
///                         tag 2, (tweet, liker) -> sort id     (like; recipient: the tweet's author)
///                         tag 3, (followee, follower) -> sort id  (follow)
///
/// Written in the same batch as their cause (a follow's just before its graph record), so they
/// need no checkpoint or replay; the cause index lets undoing the cause (unlike, unretweet,
/// unfollow, delete) find and remove them.
enum NotificationKeys {
    static func notification(recipient: UInt64, sortID: UInt64, kind: NotificationKind, actor: UInt64, subject: UInt64) -> [UInt8] {
        var key: [UInt8] = [KeySpace.notifications.rawValue]
        key.reserveCapacity(34)
        key.appendBE(recipient)
        key.appendBE(sortID)
        key.append(kind.rawValue)
        key.appendBE(actor)
        key.appendBE(subject)
        return key
    }

    static func cause(_ tag: UInt8, _ a: UInt64, _ b: UInt64) -> [UInt8] {
        var key: [UInt8] = [KeySpace.notificationCauses.rawValue, tag]
        key.reserveCapacity(18)
        key.appendBE(a)
        key.appendBE(b)
        return key
    }

    static let tweetCause: UInt8 = 1
    static let likeCause: UInt8 = 2
    static let followCause: UInt8 = 3
}

extension Array where Element == UInt8 {
    /// Appends `value` in big-endian byte order (keys sort by it), as one 8-byte append.
    mutating func appendBE(_ value: UInt64) {
        var v = value.bigEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}

extension SocialDB {
    // MARK: Notifications (writes; the writer lock is held)

    /// Notifications a new tweet causes: a reply to the parent's author, a quote to the quoted
    /// tweet's author, a mention to each mentioned user (unless already notified of the reply
    /// or quote), a retweet to the original's author; never to the author itself.
    func notifyTweet(_ record: TweetRecord, parentAuthor: UInt64?, quotedAuthor: UInt64?, retweetedAuthor: UInt64?,
                     into changes: inout ChangeSet) {
        // A few recipients at most (a tweet has at most ~90 mentions): a list, not a set.
        var notified: [UInt64] = [record.author]
        func add(_ recipient: UInt64, _ kind: NotificationKind, subject: UInt64) {
            guard !notified.contains(recipient) else { return }
            notified.append(recipient)
            changes.put(NotificationKeys.notification(recipient: recipient, sortID: record.id, kind: kind, actor: record.author, subject: subject),
                        .u64(record.time))
            var cause: [UInt8] = [kind.rawValue]
            cause.appendBE(record.author)
            cause.appendBE(subject)
            changes.put(NotificationKeys.cause(NotificationKeys.tweetCause, record.id, recipient), cause)
        }
        if let original = record.retweetOf, let retweetedAuthor { add(retweetedAuthor, .retweet, subject: original) }
        if let parentAuthor { add(parentAuthor, .reply, subject: record.id) }
        if let quotedAuthor { add(quotedAuthor, .quote, subject: record.id) }
        for mention in record.mentions { add(mention, .mention, subject: record.id) }
    }

    /// Removes the notifications tweet (or retweet) `id` caused.
    func unnotifyTweet(_ id: UInt64, into changes: inout ChangeSet) throws(SocialError) {
        var found: [(recipient: UInt64, value: [UInt8])] = []
        do {
            try tree.scan(from: NotificationKeys.cause(NotificationKeys.tweetCause, id, 0),
                          to: NotificationKeys.cause(NotificationKeys.tweetCause, id, UInt64.max)) { key, value in
                if value.count == 17 { found.append((Keys.number(key, at: 10), Array(value))) }
                return true
            }
        } catch { throw SocialError(error) }
        for (recipient, value) in found {
            let kind = NotificationKind(rawValue: value[0]) ?? .mention
            let actor = value.withUnsafeBytes { Keys.number($0, at: 1) }
            let subject = value.withUnsafeBytes { Keys.number($0, at: 9) }
            changes.delete(NotificationKeys.notification(recipient: recipient, sortID: id, kind: kind, actor: actor, subject: subject))
            changes.delete(NotificationKeys.cause(NotificationKeys.tweetCause, id, recipient))
        }
    }

    func notifyLike(tweet: TweetRecord, liker: UInt64, into changes: inout ChangeSet) {
        guard tweet.author != liker else { return }
        let sortID = ids.next()
        changes.put(NotificationKeys.notification(recipient: tweet.author, sortID: sortID.rawValue, kind: .like, actor: liker, subject: tweet.id),
                    .u64(creationTime(of: sortID)))
        changes.put(NotificationKeys.cause(NotificationKeys.likeCause, tweet.id, liker), .u64(sortID.rawValue))
        changes.put(SocialKeys.lastNotificationID, .u64(sortID.rawValue))
    }

    func unnotifyLike(tweet: UInt64, author: UInt64, liker: UInt64, into changes: inout ChangeSet) throws(SocialError) {
        let cause = NotificationKeys.cause(NotificationKeys.likeCause, tweet, liker)
        guard let sortID = try value(cause)?.u64 else { return }
        changes.delete(NotificationKeys.notification(recipient: author, sortID: sortID, kind: .like, actor: liker, subject: tweet))
        changes.delete(cause)
    }

    /// The follow notification goes in a batch of its own just before the graph record (reads
    /// skip one whose edge is absent, so a crash between the two shows nothing).
    func notifyFollow(follower: UInt64, followee: UInt64) throws(SocialError) {
        var changes = ChangeSet()
        try unnotifyFollow(follower: follower, followee: followee, into: &changes)
        let sortID = ids.next()
        changes.put(NotificationKeys.notification(recipient: followee, sortID: sortID.rawValue, kind: .follow, actor: follower, subject: 0),
                    .u64(creationTime(of: sortID)))
        changes.put(NotificationKeys.cause(NotificationKeys.followCause, followee, follower), .u64(sortID.rawValue))
        changes.put(SocialKeys.lastNotificationID, .u64(sortID.rawValue))
        try changes.commit(to: self)
    }

    func unnotifyFollow(follower: UInt64, followee: UInt64, into changes: inout ChangeSet) throws(SocialError) {
        let cause = NotificationKeys.cause(NotificationKeys.followCause, followee, follower)
        guard let sortID = try value(cause)?.u64 else { return }
        changes.delete(NotificationKeys.notification(recipient: followee, sortID: sortID, kind: .follow, actor: follower, subject: 0))
        changes.delete(cause)
    }

    // MARK: Reading

    /// `handle`'s notifications, newest first: mentions, replies, quotes, retweets, likes and
    /// follows by others, each gone once its cause is undone (unlike, unretweet, unfollow, delete).
    public func notifications(handle: String, limit: Int = SocialDB.pageLimitDefault) throws(SocialError) -> [Notification] {
        try answering { () throws(SocialError) -> [Notification] in
            try Self.checkLimit(limit)
            let user = try userRecord(handle: handle)
            var result: [Notification] = []
            var start = Keys.one(.notifications, user.id)
            var upper = Keys.one(.notifications, user.id)
            start.append(contentsOf: [UInt8](repeating: 0, count: 25))
            upper.append(contentsOf: [UInt8](repeating: 0xFF, count: 25))
            var raw: [(sortID: UInt64, kind: NotificationKind, actor: UInt64, subject: UInt64, time: UInt64)] = []
            var cursor = upper
            // Reads in rounds: a follow whose edge is absent (a crash between its two records) is skipped.
            while result.count < limit {
                raw.removeAll()
                let wanted = limit - result.count
                do throws(LSMError) {
                    try tree.scan(from: start, to: cursor, reverse: true, limit: wanted) { key, value in
                        guard key.count == 34, let kind = NotificationKind(rawValue: key[17]) else { return true }
                        raw.append((Keys.number(key, at: 9), kind, Keys.number(key, at: 18), Keys.number(key, at: 26),
                                    value.count == 8 ? value.loadLE(UInt64.self, at: 0) : 0))
                        return true
                    }
                } catch { throw SocialError(error) }
                guard let last = raw.last else { break }
                cursor = NotificationKeys.notification(recipient: user.id, sortID: last.sortID, kind: last.kind, actor: last.actor, subject: last.subject)
                for n in raw {
                    guard let actorRecord = try userRecord(id: n.actor) else { continue }
                    var tweet: Tweet?
                    if n.kind == .follow {
                        guard graph.follows(actorRecord.number, user.number) else { continue }
                    } else {
                        guard let view = try view(id: n.subject), let shown = try shownTweet(view) else { continue }
                        tweet = shown
                    }
                    result.append(Notification(id: n.sortID, kind: n.kind, actor: try makeUser(actorRecord), tweet: tweet,
                                               createdAtMilliseconds: n.time))
                }
                if raw.count < wanted { break }
            }
            return result
        }
    }
}
