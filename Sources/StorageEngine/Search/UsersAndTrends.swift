import Synchronization

/// A user as user search sees it.
public struct SearchUser: Equatable, Sendable {
    public var id: UInt64
    public var handle: String
    public var displayName: String
    public var followers: UInt64

    public init(id: UInt64, handle: String, displayName: String, followers: UInt64) {
        self.id = id
        self.handle = handle
        self.displayName = displayName
        self.followers = followers
    }
}

/// Users by handle and display-name prefix, ranked by follower count.
///
/// Keys are the folded handle and each folded word of the display name. A sorted array of
/// (key, user) answers prefixes by binary search; new keys wait in a small pending list that is
/// searched linearly and merged in once it holds `pendingLimit` keys. A key whose user has
/// since been renamed is skipped at query time (checked against the user's current keys).
struct UserDirectory {
    static let pendingLimit = 1024
    private(set) var users: [UInt64: SearchUser] = [:]
    private var sorted: [(key: String, id: UInt64)] = []
    private var pending: [(key: String, id: UInt64)] = []

    static func keys(handle: String, displayName: String) -> [String] {
        var keys = [SearchTokenizer.foldWord(Substring(handle))]
        for token in SearchTokenizer.tokenize(displayName) where !keys.contains(token.term) { keys.append(token.term) }
        return keys
    }

    mutating func upsert(_ user: SearchUser) {
        let old = users[user.id]
        users[user.id] = user
        if let old, old.handle == user.handle, old.displayName == user.displayName { return }
        for key in Self.keys(handle: user.handle, displayName: user.displayName) { pending.append((key, user.id)) }
        if pending.count >= Self.pendingLimit { compact() }
    }

    private mutating func compact() {
        sorted.append(contentsOf: pending)
        pending.removeAll()
        sorted.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) || ($0.key == $1.key && $0.id < $1.id) }
        // Drop stale keys (renamed users) and duplicates.
        var kept: [(key: String, id: UInt64)] = []
        kept.reserveCapacity(sorted.count)
        for entry in sorted {
            if let last = kept.last, last.key == entry.key, last.id == entry.id { continue }
            guard let user = users[entry.id], Self.keys(handle: user.handle, displayName: user.displayName).contains(entry.key) else { continue }
            kept.append(entry)
        }
        sorted = kept
    }

    func search(prefix raw: String, limit: Int) -> [SearchUser] {
        var text = Substring(raw)
        while text.hasPrefix("@") { text = text.dropFirst() }
        let prefix = SearchTokenizer.foldWord(text)
        guard !prefix.isEmpty, limit > 0 else { return [] }
        var ids = Set<UInt64>()
        let p = Array(prefix.utf8)
        var low = 0
        var high = sorted.count
        while low < high {
            let mid = (low + high) >> 1
            if sorted[mid].key.utf8.lexicographicallyPrecedes(p) { low = mid + 1 } else { high = mid }
        }
        while low < sorted.count, sorted[low].key.utf8.starts(with: p) {
            ids.insert(sorted[low].id)
            low += 1
        }
        for entry in pending where entry.key.utf8.starts(with: p) { ids.insert(entry.id) }
        var matches: [SearchUser] = []
        for id in ids {
            guard let user = users[id], Self.keys(handle: user.handle, displayName: user.displayName).contains(where: { $0.utf8.starts(with: p) }) else { continue }
            matches.append(user)
        }
        // Ties by handle ignoring case (handles are unique that way): `alice` before `JUDY`.
        matches.sort {
            $0.followers != $1.followers ? $0.followers > $1.followers
                : $0.handle.lowercased().utf8.lexicographicallyPrecedes($1.handle.lowercased().utf8)
        }
        return Array(matches.prefix(limit))
    }
}

/// Hashtag counts in minute buckets over a bounded retention, for trends.
///
/// Bounded: buckets older than `retentionMinutes` before the newest recorded minute are dropped.
struct TrendCounter {
    static let retentionMinutes: UInt64 = 7 * 24 * 60
    private var buckets: [UInt64: [String: Int]] = [:]
    private var newestMinute: UInt64 = 0

    /// The distinct folded tags of one tweet: a tweet counts once for a tag it repeats.
    static func folded(_ tags: [String]) -> [String] {
        var result: [String] = []
        for tag in tags {
            var body = Substring(tag)
            while body.hasPrefix("#") { body = body.dropFirst() }
            let folded = SearchTokenizer.foldWord(body)
            if !folded.isEmpty && !result.contains(folded) { result.append(folded) }
        }
        return result
    }

    mutating func record(_ tags: [String], atMilliseconds time: UInt64) {
        let minute = time / 60_000
        for folded in Self.folded(tags) {
            buckets[minute, default: [:]][folded, default: 0] += 1
        }
        if minute > newestMinute {
            newestMinute = minute
            if buckets.count > Int(Self.retentionMinutes) + 1 {
                let oldest = newestMinute - Self.retentionMinutes
                for key in buckets.keys where key < oldest { buckets[key] = nil }
            }
        }
    }

    /// Takes back what `record` counted for a tweet with these tags at this time (a deleted
    /// tweet); a count that is not there (the minute was never fed, or has been dropped) stays
    /// as it is.
    mutating func forget(_ tags: [String], atMilliseconds time: UInt64) {
        let minute = time / 60_000
        guard var counts = buckets[minute] else { return }
        for folded in Self.folded(tags) {
            guard let n = counts[folded] else { continue }
            counts[folded] = n > 1 ? n - 1 : nil
        }
        buckets[minute] = counts.isEmpty ? nil : counts
    }

    /// Top `limit` tags over the minutes in (now - window, now], by count, ties by tag.
    func top(nowMilliseconds now: UInt64, windowMilliseconds window: UInt64, limit: Int) -> [(tag: String, count: Int)] {
        let last = now / 60_000
        let minutes = max(1, (window + 59_999) / 60_000)
        let first = last >= minutes - 1 ? last - (minutes - 1) : 0
        var totals: [String: Int] = [:]
        if UInt64(buckets.count) < minutes {
            for (minute, counts) in buckets where minute >= first && minute <= last {
                for (tag, n) in counts { totals[tag, default: 0] += n }
            }
        } else {
            for minute in first...last {
                guard let counts = buckets[minute] else { continue }
                for (tag, n) in counts { totals[tag, default: 0] += n }
            }
        }
        let ranked = totals.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return ranked.prefix(max(0, limit)).map { (tag: "#" + $0.key, count: $0.value) }
    }
}
