import StorageEngine
import Synchronization

/// Per-user rate limits of the Social layer, in fixed windows: each key (a user's writes, the
/// failed logins of a handle) may be counted `limit` times per window of `windowSeconds`, then
/// is answered `rate_limited` until the next window starts. A limit of 0 is no limit. Off by
/// default in the embedded API (`.off`); `socialdb serve` turns them on (`.server`).
public struct RateLimits: Sendable {
    public var windowSeconds = 60
    /// Writes (post, reply, quote, retweet, unretweet, like, unlike, delete, follow, unfollow,
    /// profile changes) per user per window.
    public var writesPerWindow = 0
    /// Failed logins per handle per window (then every login of that handle is refused until
    /// the window ends, right password or not).
    public var authFailuresPerWindow = 0

    public init(windowSeconds: Int = 60, writesPerWindow: Int = 0, authFailuresPerWindow: Int = 0) {
        self.windowSeconds = windowSeconds
        self.writesPerWindow = writesPerWindow
        self.authFailuresPerWindow = authFailuresPerWindow
    }

    public static let off = RateLimits()
    /// The server's defaults: 300 writes a minute per user, 10 failed logins a minute per handle.
    public static let server = RateLimits(windowSeconds: 60, writesPerWindow: 300, authFailuresPerWindow: 10)
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
    private let windowMilliseconds: UInt64
    private let clock: SnowflakeGenerator.Clock
    static let keysMax = 100_000

    init(limits: RateLimits, clock: @escaping SnowflakeGenerator.Clock) {
        windowMilliseconds = UInt64(max(1, limits.windowSeconds)) * 1000
        self.clock = clock
    }

    private var currentWindow: UInt64 { clock() / windowMilliseconds }

    /// Throws `rate_limited` if `key` has used its `limit` in this window, without counting.
    func check(_ key: String, limit: Int, what: String) throws(SocialError) {
        guard limit > 0 else { return }
        let now = currentWindow
        let used = table.withLock { table -> Int in
            guard let window = table[key], window.index == now else { return 0 }
            return window.count
        }
        if used >= limit {
            throw .rateLimited("too many \(what): at most \(limit) per \(windowMilliseconds / 1000) seconds; try again later")
        }
    }

    /// Counts one use of `key` in this window.
    func record(_ key: String, limit: Int) {
        guard limit > 0 else { return }
        let now = currentWindow
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
        let now = currentWindow
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
        if !admitted {
            throw .rateLimited("too many \(what): at most \(limit) per \(windowMilliseconds / 1000) seconds; try again later")
        }
    }
}

extension SocialDB {
    /// Counts a write by `handle` against its window (no-op while writes are not limited).
    @inline(__always)
    func admitWrite(_ handle: String) throws(SocialError) {
        let limit = options.rateLimits.writesPerWindow
        guard limit > 0 else { return }
        try rateLimiter.admit("write:" + TextRules.folded(TextRules.validHandle(handle) ?? handle), limit: limit, what: "writes")
    }
}
