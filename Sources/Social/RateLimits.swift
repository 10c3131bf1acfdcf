import StorageEngine
import Synchronization

/// Per-user rate limits of the Social layer, in fixed windows as Twitter's: each key (a user's
/// writes, posts, follows or likes; the failed logins of a handle) may be counted `limit` times
/// per window, then is answered `rate_limited`, with the seconds until the window ends, until
/// the next window starts. A limit of 0 is no limit. Off by default in the embedded API
/// (`.off`); `socialdb serve` turns them on (`.server`).
public struct RateLimits: Sendable {
    /// The short window of `writesPerWindow` and `authFailuresPerWindow`.
    public var windowSeconds = 60
    /// Writes of any kind (post, reply, quote, retweet, unretweet, like, unlike, delete, follow,
    /// unfollow, profile changes) per user per short window: a burst limit.
    public var writesPerWindow = 0
    /// Failed logins per handle per short window (then every login of that handle is refused
    /// until the window ends, right password or not).
    public var authFailuresPerWindow = 0
    /// The long window of the per-action limits below (a day, as Twitter's).
    public var daySeconds = 86_400
    /// Tweets of any kind (posts, replies, quotes, retweets) per user per day: Twitter's 2,400.
    public var postsPerDay = 0
    /// Follows per user per day: Twitter's 400.
    public var followsPerDay = 0
    /// Likes per user per day: Twitter's 1,000.
    public var likesPerDay = 0

    public init(windowSeconds: Int = 60, writesPerWindow: Int = 0, authFailuresPerWindow: Int = 0,
                daySeconds: Int = 86_400, postsPerDay: Int = 0, followsPerDay: Int = 0, likesPerDay: Int = 0) {
        self.windowSeconds = windowSeconds
        self.writesPerWindow = writesPerWindow
        self.authFailuresPerWindow = authFailuresPerWindow
        self.daySeconds = daySeconds
        self.postsPerDay = postsPerDay
        self.followsPerDay = followsPerDay
        self.likesPerDay = likesPerDay
    }

    public static let off = RateLimits()
    /// The server's defaults: Twitter's daily limits (2,400 tweets, 400 follows, 1,000 likes),
    /// 300 writes a minute per user, 10 failed logins a minute per handle.
    public static let server = RateLimits(windowSeconds: 60, writesPerWindow: 300, authFailuresPerWindow: 10,
                                          postsPerDay: 2_400, followsPerDay: 400, likesPerDay: 1_000)

    /// What a write is, for the per-action limits.
    public enum Action: Sendable {
        case post, follow, like, other
    }
}

/// The counters of the fixed windows. Thread safety: a mutex around the table. Memory: at most
/// `keysMax` keys; when full, keys of past windows are dropped first, and if all are current the
/// table is cleared (a burst of distinct keys then gets a fresh window rather than memory).
final class RateLimiter: Sendable {
    private struct Window {
        var index: UInt64
        var count: Int
    }

    private let table = Mutex<[String: Window]>([:])
    /// The short window's length; the per-action limits use `dayMilliseconds`.
    let windowMilliseconds: UInt64
    let dayMilliseconds: UInt64
    private let clock: SnowflakeGenerator.Clock
    static let keysMax = 100_000

    init(limits: RateLimits, clock: @escaping SnowflakeGenerator.Clock) {
        windowMilliseconds = UInt64(max(1, limits.windowSeconds)) * 1000
        dayMilliseconds = UInt64(max(1, limits.daySeconds)) * 1000
        self.clock = clock
    }

    /// The refusal: what was limited, the limit, and the seconds until its window ends.
    private func refusal(_ what: String, limit: Int, window: UInt64, now: UInt64) -> SocialError {
        let left = (window - now % window + 999) / 1000
        let per = window % 86_400_000 == 0 ? (window == 86_400_000 ? "day" : "\(window / 86_400_000) days") : "\(window / 1000) seconds"
        return .rateLimited("too many \(what): at most \(limit) per \(per); try again in \(left) seconds")
    }

    /// Throws `rate_limited` if `key` has used its `limit` in this window, without counting.
    func check(_ key: String, limit: Int, what: String, window: UInt64? = nil) throws(SocialError) {
        guard limit > 0 else { return }
        let length = window ?? windowMilliseconds
        let time = clock()
        let now = time / length
        let used = table.withLock { table -> Int in
            guard let window = table[key], window.index == now else { return 0 }
            return window.count
        }
        if used >= limit { throw refusal(what, limit: limit, window: length, now: time) }
    }

    /// Counts one use of `key` in this window.
    func record(_ key: String, limit: Int, window: UInt64? = nil) {
        guard limit > 0 else { return }
        let now = clock() / (window ?? windowMilliseconds)
        table.withLock { table in
            if table.count >= Self.keysMax && table[key] == nil {
                table = table.filter { $0.value.index == now }
                if table.count >= Self.keysMax { table.removeAll(keepingCapacity: true) }
            }
            if let window = table[key], window.index == now {
                table[key] = Window(index: now, count: window.count + 1)
            } else {
                table[key] = Window(index: now, count: 1)
            }
        }
    }

    /// Checks and counts in one step: throws `rate_limited` once `limit` uses are spent.
    func admit(_ key: String, limit: Int, what: String) throws(SocialError) {
        guard limit > 0 else { return }
        let time = clock()
        let now = time / windowMilliseconds
        let admitted = table.withLock { table -> Bool in
            if table.count >= Self.keysMax && table[key] == nil {
                table = table.filter { $0.value.index == now }
                if table.count >= Self.keysMax { table.removeAll(keepingCapacity: true) }
            }
            var window = table[key] ?? Window(index: now, count: 0)
            if window.index != now { window = Window(index: now, count: 0) }
            guard window.count < limit else { return false }
            window.count += 1
            table[key] = window
            return true
        }
        if !admitted { throw refusal(what, limit: limit, window: windowMilliseconds, now: time) }
    }
}

extension SocialDB {
    /// Counts a write by `handle` against its windows: the action's daily limit, then the
    /// short window of all writes (no-op while neither is limited). A refused write counts
    /// nowhere and changes nothing.
    @inline(__always)
    func admitWrite(_ handle: String, _ action: RateLimits.Action = .other) throws(SocialError) {
        let limits = options.rateLimits
        let daily: (limit: Int, what: String, tag: String)
        switch action {
        case .post: daily = (limits.postsPerDay, "tweets", "post:")
        case .follow: daily = (limits.followsPerDay, "follows", "follow:")
        case .like: daily = (limits.likesPerDay, "likes", "like:")
        case .other: daily = (0, "", "")
        }
        guard limits.writesPerWindow > 0 || daily.limit > 0 else { return }
        let user = TextRules.folded(TextRules.validHandle(handle) ?? handle)
        if daily.limit > 0 {
            try rateLimiter.check(daily.tag + user, limit: daily.limit, what: daily.what, window: rateLimiter.dayMilliseconds)
        }
        try rateLimiter.admit("write:" + user, limit: limits.writesPerWindow, what: "writes")
        if daily.limit > 0 { rateLimiter.record(daily.tag + user, limit: daily.limit, window: rateLimiter.dayMilliseconds) }
    }
}
