import StorageEngine
import Synchronization

/// The embedded database: the one object an app opens, with the whole social network's
/// operations as typed calls.
///
/// ```swift
/// let db = try SocialDB.open(at: "/var/lib/socialdb")
/// let alice = try db.createUser(handle: "alice", name: "Alice")
/// let tweet = try db.post(handle: "alice", text: "hello #swift")
/// try db.close()
/// ```
///
/// Pipeline: every write is validated completely first (a call that throws changed nothing),
/// then goes to the engine as one durable log record: an LSM write batch (type 0x0020) holding
/// all of the command's keys and counters, or a graph record (0x0100 follow, 0x0101 unfollow).
/// It returns once that record is durable under the sync policy and applied, so every read
/// afterwards, from any thread, sees it. Docs/ARCHITECTURE.md ("The Social layer") states the
/// contract a log consumer (the timeline fan-out, search) relies on.
///
/// Thread safety: every method may be called from any thread. Writes that read before they
/// write (handle uniqueness, like idempotence, counters) are serialized by `writer`; reads take
/// no lock of this class, and follows and unfollows only the graph's.
public final class SocialDB: Sendable {
    public let engine: Engine
    public let options: SocialOptions
    let ids: SnowflakeGenerator
    /// Serializes every write (LSM batches and graph records) from its validation until its
    /// record is in the tree or the graph and queued for the derived structures, so they
    /// receive records in log order (`writing`).
    let writer = ConditionLock()
    /// Tweets' counts as hydration reads them (see `TweetCounts`).
    let tweetCountsCache = TweetCountsCache(maxBytes: 64 << 20)
    /// Tweets as hydration builds them from their records, without counts or nested tweets
    /// (`SocialOptions.tweetCacheBytes`; see `SocialDB.tweets(ids:)`).
    let tweetViews: IDCache<Tweet.Content>
    /// Tweets' views in the one `TweetViewEncoding` the application reads pages in (the server's
    /// JSON), made at a tweet's first encoded read and dropped with its view
    /// (`SocialOptions.tweetCacheBytes` again; see `encodedView(id:as:)`).
    let tweetEncodings: PartCache
    /// The encoding `tweetEncodings` holds (`ObjectIdentifier` bits; 0 until the first use).
    let tweetEncodingType = Atomic<Int>(0)
    /// The derived structures that follow the log (home timelines).
    let consumers: Consumers
    /// The fixed-window counters of `options.rateLimits`.
    let rateLimiter: RateLimiter

    public typealias Options = SocialOptions

    /// Limits of list reads (`limit` is 1 to this).
    public static let pageLimitMax = 1000
    public static let pageLimitDefault = 20

    /// Opens (creating if needed) the database in `path`.
    public static func open(at path: String, options: Options = Options()) throws(SocialError) -> SocialDB {
        let engine: Engine
        do { engine = try Engine.open(at: path, options: options.engine) } catch { throw SocialError(error) }
        // New ids must exceed every stored one even if the clock stepped back since they were made.
        var largest: UInt64 = 0
        do {
            for space in [KeySpace.users, .tweets] {
                try engine.tree.scan(from: Keys.one(space, 0), to: Keys.one(space, UInt64.max), reverse: true, limit: 1) { key, _ in
                    largest = max(largest, Keys.number(key, at: 1))
                    return false
                }
            }
            // Likes' and follows' notifications take ids too (kept only in their keys).
            if let last = try engine.tree.get(SocialKeys.lastNotificationID)?.u64 { largest = max(largest, last) }
        } catch {
            try? engine.close()
            throw SocialError(error)
        }
        let ids = SnowflakeGenerator(node: options.node, floor: largest > 0 ? Snowflake(rawValue: largest) : nil,
                                     wallClockMilliseconds: options.wallClockMilliseconds)
        let consumers: Consumers
        let tweetViews = IDCache<Tweet.Content>(maxBytes: options.tweetCacheBytes)
        do {
            consumers = try Consumers.open(engine: engine, options: options, tweetViews: tweetViews)
        } catch {
            try? engine.close()
            throw error
        }
        return SocialDB(engine: engine, options: options, ids: ids, consumers: consumers, tweetViews: tweetViews)
    }

    private init(engine: Engine, options: Options, ids: SnowflakeGenerator, consumers: Consumers, tweetViews: IDCache<Tweet.Content>) {
        self.engine = engine
        self.options = options
        self.ids = ids
        self.consumers = consumers
        self.tweetViews = tweetViews
        tweetEncodings = PartCache(maxBytes: options.tweetCacheBytes)
        rateLimiter = RateLimiter(limits: options.rateLimits, clock: options.wallClockMilliseconds)
    }

    /// Makes everything written so far durable in the structures' own files and lets the log
    /// remove the segments they have all passed, as SQLite's `wal_checkpoint(TRUNCATE)` empties
    /// its WAL: the home timelines and the search index are checkpointed (writes wait for that
    /// part), the tweet store's memtable is written out, and the graph's changes are folded into
    /// its base. Reads go on throughout. The periodic checkpoints (`checkpointEveryRecords`,
    /// `checkpointEverySeconds`) do the first part on their own; this is for a bulk load's end,
    /// or before a backup, when the log should hold nothing the structures already have.
    public func checkpoint() throws(SocialError) {
        try writing { () throws(SocialError) in try consumers.exclusively { () throws(SocialError) in try consumers.checkpoint() } }
        do { try engine.tree.flush() } catch { throw SocialError(error) }
        // The second merge moves the graph's checkpoint on from its fallback (GraphStore.merge).
        do throws(GraphError) {
            try engine.graph.merge()
            try engine.graph.merge()
        } catch { throw SocialError(error) }
    }

    /// Checkpoints the derived structures (home timelines), makes every acknowledged write
    /// durable, folds the graph's changes into its base, and releases the directory.
    public func close() throws(SocialError) {
        var first: SocialError?
        do { try writing { () throws(SocialError) in try consumers.exclusively { () throws(SocialError) in try consumers.checkpoint() } } } catch { first = error }
        consumers.close()
        do { try engine.close() } catch { if first == nil { first = SocialError(error) } }
        if let first { throw first }
    }

    /// Closes like a crash would leave things: the engine is closed (so the directory can be
    /// opened again in this process), but no derived structure is checkpointed, so the next open
    /// must recover them from older checkpoints and the log. For tests.
    func closeWithoutCheckpoints() throws(SocialError) {
        // Every call has returned, so nothing waits to be applied; this only keeps a drain from
        // running into the closed search index.
        writer.withLock { consumers.exclusively {} }
        consumers.close()
        do { try engine.close() } catch { throw SocialError(error) }
    }

    /// The time of a new record whose id is `id`: the wall clock. The id's own time is the
    /// same except when the generator runs ahead of the clock: after a clock step back, or
    /// after IMPORT TWEETS raised it past Twitter's ids (Twitter's epoch is 2010, so its ids
    /// read as years ahead in ours), where the wall clock is the truth.
    func creationTime(of id: Snowflake) -> UInt64 {
        min(id.unixMilliseconds, options.wallClockMilliseconds())
    }

    /// Runs one public call: its answer, value or error, is given only once the log has
    /// acknowledged every record appended so far (`acknowledged`). Every public method of
    /// `SocialDB` runs its body in this.
    @inline(__always)
    func answering<T>(_ body: () throws(SocialError) -> T) throws(SocialError) -> T {
        let result: T
        do {
            result = try body()
        } catch {
            try settle()
            throw error
        }
        return try acknowledged(result)
    }

    /// Runs a write's `body` under the writer lock, then, with the lock released, returns once
    /// the records it appended are applied to the derived structures (timelines, search).
    ///
    /// The pipeline: `body` validates, writes its batches to the tree (or its edge to the graph)
    /// and queues each record (`Consumers.enqueue`), all under `writer`, so records queue in log
    /// order. The lock goes, the next writer starts, and this one applies the queue in order
    /// under the consumers' own lock (`Consumers.finish`), other writers' records included when
    /// they are first in line (combining): on two cores one writer builds and writes its batch
    /// while another fans out and indexes. A call still returns only after its own records are
    /// applied (and, by `answering`, durable), so a caller reads its own writes everywhere.
    /// The records a failing body appended are applied before its error is thrown.
    @inline(__always)
    func writing<T>(_ body: () throws(SocialError) -> T) throws(SocialError) -> T {
        try writing(body, answer: { (value) throws(SocialError) -> T in value }).answer
    }

    /// `writing` for a write whose answer is made from the body's value alone (a new tweet's
    /// view and counts): `answer` runs after the writer lock is released and before the
    /// records are applied, and the log's last appended LSN is read right after it. Returns
    /// the answer and that LSN, which covers the write's own records and everything the answer
    /// read (it was appended before those reads), for `answering(through:)`.
    ///
    /// Why not wait for the last LSN appended when the call returns, as `acknowledged` does:
    /// the apply (`Consumers.finish`) runs in between, often waiting for another writer's
    /// drain, and meanwhile the other writers append. A poster whose record went out in the
    /// fdatasync in flight then also waited for the next one, which held records it never
    /// read (the applies read nothing the answer shows).
    @inline(__always)
    func writing<T, A>(_ body: () throws(SocialError) -> T,
                       answer: (T) throws(SocialError) -> A) throws(SocialError) -> (answer: A, through: UInt64) {
        var first: UInt64 = 0
        var last: UInt64 = 0
        let result: Result<T, SocialError> = writer.withLock {
            first = consumers.issuedTickets + 1
            defer { last = consumers.issuedTickets }
            do throws(SocialError) { return .success(try body()) } catch { return .failure(error) }
        }
        switch result {
        case .success(let value):
            let made: A
            do { made = try answer(value) } catch {
                try? consumers.finish(first: first, last: last)
                throw error
            }
            let through = engine.log.appendedSequenceNumber
            try consumers.finish(first: first, last: last)
            return (made, through)
        case .failure(let error):
            try? consumers.finish(first: first, last: last)
            throw error
        }
    }

    /// `answering` for a body that names the LSN its answer needs acknowledged (see
    /// `writing(_:answer:)`): the value is returned once the log has acknowledged `through`;
    /// an error, as in `answering`, once it has acknowledged everything appended.
    @inline(__always)
    func answering<T>(through body: () throws(SocialError) -> (answer: T, through: UInt64)) throws(SocialError) -> T {
        let result: (answer: T, through: UInt64)
        do {
            result = try body()
        } catch {
            try settle()
            throw error
        }
        if result.through > engine.log.acknowledgedSequenceNumber { try waitForLog(through: result.through) }
        return result.answer
    }

    /// Returns `value` once the log has acknowledged every record appended so far.
    ///
    /// Group commit: a write appends its record and applies it to the tree, the graph and the
    /// derived structures under `writer`, then releases `writer` and only then waits for the
    /// log (`Log.waitForAcknowledgement`), so the next writers append while the fdatasync runs
    /// and share the next one. Their effects are in memory before they are durable; no call may
    /// answer with them until they are. A call may have seen any record appended before it
    /// returns (effects are applied after the append, and that ordering reaches the reader
    /// through the structures' own synchronization), so it waits for the last LSN appended,
    /// read after its reads: with no write in flight that is one comparison of two atomics;
    /// with writes in flight it joins their fdatasync. When the log fails (an fdatasync or a
    /// write answered an error) the records after the last acknowledged one may be lost, and
    /// every call from then on answers `io` until the database is reopened (fail-stop).
    @inline(__always)
    func acknowledged<T>(_ value: T) throws(SocialError) -> T {
        let log = engine.log
        let appended = log.appendedSequenceNumber
        if appended > log.acknowledgedSequenceNumber { try waitForLog(through: appended) }
        return value
    }

    /// `acknowledged` for a call that returns nothing.
    @inline(__always)
    func settle() throws(SocialError) { _ = try acknowledged(()) }

    func waitForLog(through lsn: UInt64) throws(SocialError) {
        let log = engine.log
        do {
            try log.waitForAcknowledgement(through: lsn)
        } catch {
            throw .io("the log failed (\(error)): writes after log record \(log.acknowledgedSequenceNumber) may be lost, "
                      + "and their effects are in memory, so this database answers nothing more until it is reopened")
        }
    }

    var tree: LSMTree { engine.tree }
    var graph: GraphStore { engine.graph }

    // MARK: Users

    /// Registers a user. The handle is 1-15 of A-Z a-z 0-9 _ (a leading `@` is dropped) and
    /// unique ignoring case (`exists`); the display name defaults to the handle, at most 50
    /// characters.
    @discardableResult
    public func createUser(handle: String, name: String? = nil) throws(SocialError) -> User {
        try answering { () throws(SocialError) -> User in
            let handle = try Self.checkHandle(handle)
            let name = name ?? handle
            guard name.count <= TextRules.nameLengthMax else {
                throw .tooLong("the display name is \(name.count) characters; at most \(TextRules.nameLengthMax)")
            }
            let record = try writing { () throws(SocialError) -> UserRecord in
                var changes = ChangeSet()
                let record = try addUser(handle: handle, name: name, to: &changes, nextNumber: nil)
                try changes.commit(to: self)
                return record
            }
            return try makeUser(record)
        }
    }

    /// Adds the keys of a new user to `changes`; the writer lock is held. `nextNumber`, when
    /// given, is the number to use and is advanced (bulk creation keeps it in memory).
    func addUser(handle: String, name: String, to changes: inout ChangeSet, nextNumber: UInt64?) throws(SocialError) -> UserRecord {
        let folded = TextRules.folded(handle)
        let taken: Bool
        taken = try value(SocialKeys.handle(folded)) != nil
        if taken { throw .exists("the handle @\(handle) is taken (handles ignore case)") }
        let number: UInt64
        if let nextNumber {
            number = nextNumber
        } else {
            number = try value(SocialKeys.nextUserNumber)?.u64 ?? 0
        }
        guard number < UInt64(UInt32.max) else { throw .io("the graph's 2^32 user numbers are used up") }
        let id = ids.next()
        let record = UserRecord(id: id.rawValue, number: UInt32(number), createdAtMilliseconds: creationTime(of: id),
                                handle: handle, name: name, bio: "")
        changes.put(SocialKeys.user(record.id), record.encoded())
        changes.put(SocialKeys.handle(folded), .u64(record.id))
        changes.put(SocialKeys.number(record.number), .u64(record.id))
        changes.put(SocialKeys.nextUserNumber, .u64(number + 1))
        return record
    }

    /// The profile of `handle`, with its counts.
    public func user(handle: String) throws(SocialError) -> User {
        try answering { () throws(SocialError) -> User in
            try makeUser(try userRecord(handle: handle))
        }
    }

    /// The profile of the user with id `id`.
    public func user(id: UInt64) throws(SocialError) -> User {
        try answering { () throws(SocialError) -> User in
            guard let record = try userRecord(id: id) else { throw .notFound("no user with id \(id)") }
            return try makeUser(record)
        }
    }

    /// Changes the display name (at most 50 characters) and/or the bio (at most 160).
    @discardableResult
    public func updateUser(handle: String, name: String? = nil, bio: String? = nil) throws(SocialError) -> User {
        try answering { () throws(SocialError) -> User in
            if let name {
                guard !name.isEmpty else { throw .invalid("the display name must not be empty") }
                guard name.count <= TextRules.nameLengthMax else {
                    throw .tooLong("the display name is \(name.count) characters; at most \(TextRules.nameLengthMax)")
                }
            }
            if let bio, bio.count > TextRules.bioLengthMax {
                throw .tooLong("the bio is \(bio.count) characters; at most \(TextRules.bioLengthMax)")
            }
            try admitWrite(handle)
            let record = try writing { () throws(SocialError) -> UserRecord in
                var record = try userRecord(handle: handle)
                if let name { record.name = name }
                if let bio { record.bio = bio }
                var changes = ChangeSet()
                changes.put(SocialKeys.user(record.id), record.encoded())
                try changes.commit(to: self)
                return record
            }
            return try makeUser(record)
        }
    }

    /// How many users exist (the next dense number).
    public func userCount() throws(SocialError) -> Int {
        try answering { () throws(SocialError) -> Int in
            return Int(try value(SocialKeys.nextUserNumber)?.u64 ?? 0)
        }
    }

    public func statistics() throws(SocialError) -> SocialStatistics {
        SocialStatistics(users: try userCount(), graph: graph.statistics(), timelines: consumers.timeline.statistics,
                         search: consumers.search.statistics(),
                         periodicCheckpoints: consumers.periodicCheckpoints.load(ordering: .relaxed),
                         authorCache: consumers.recentItems.statistics,
                         tweetCache: Self.figures(tweetViews.statistics), countsCache: Self.figures(tweetCountsCache.statistics),
                         encodedCache: Self.figures(tweetEncodings.statistics),
                         pendingApplies: consumers.pendingApplies, combinedApplies: consumers.combinedApplies.load(ordering: .relaxed),
                         applyDrains: consumers.applyDrains.load(ordering: .relaxed))
    }

    private static func figures(_ s: IDCacheStatistics) -> HydrationCacheStatistics {
        HydrationCacheStatistics(entries: s.entries, bytes: s.bytes, hits: Int(clamping: s.hits), misses: Int(clamping: s.misses))
    }

    // MARK: Reading records

    static func checkHandle(_ text: String) throws(SocialError) -> String {
        guard let handle = TextRules.validHandle(text) else {
            throw .invalid("'\(text)' is not a handle: 1 to 15 of A-Z, a-z, 0-9 and _, with or without @")
        }
        return handle
    }

    func userRecord(handle text: String) throws(SocialError) -> UserRecord {
        let handle = try Self.checkHandle(text)
        let id: UInt64?
        id = try value(SocialKeys.handle(TextRules.folded(handle)))?.u64
        guard let id, let record = try userRecord(id: id) else { throw .notFound("no user @\(handle)") }
        return record
    }

    /// The id and graph number of the user `text` names (a valid handle, `@` optional), else
    /// `not_found`: from the users' caches (both are fixed for a user's life), without reading
    /// or decoding the user's record.
    func userIdentity(handle text: String) throws(SocialError) -> (id: UInt64, number: UInt32) {
        let handle = try Self.checkHandle(text)
        let users = consumers.users
        let found: (id: UInt64, number: UInt32)?
        do {
            found = try users.identity(ofFoldedHandle: TextRules.folded(handle)).map { ($0.id, $0.number) }
        } catch { throw SocialError(error) }
        guard let found else { throw .notFound("no user @\(handle)") }
        return found
    }

    func userRecord(id: UInt64) throws(SocialError) -> UserRecord? {
        guard let value = try value(SocialKeys.user(id)) else { return nil }
        guard let record = value.withUnsafeBytes({ UserRecord.decode($0) }) else {
            throw .io("storage: the record of user \(id) does not decode")
        }
        return record
    }

    /// The value of `key` in the tree, or nil.
    func value(_ key: [UInt8]) throws(SocialError) -> [UInt8]? {
        do { return try tree.get(key) } catch { throw SocialError(error) }
    }

    /// The handle of user `id` (cached: handles never change), or nil.
    func handle(ofUser id: UInt64) throws(SocialError) -> String? {
        do { return try consumers.users.handle(ofUser: id) } catch { throw SocialError(error) }
    }

    func userRecord(number: UInt32) throws(SocialError) -> UserRecord? {
        let id: UInt64?
        id = try value(SocialKeys.number(number))?.u64
        guard let id else { return nil }
        return try userRecord(id: id)
    }

    /// A tweet's counts: from `tweetCountsCache`, else one batched point read of its four
    /// counter keys (absent: 0), kept in the cache unless a write changed counters meanwhile.
    func tweetCounts(of id: UInt64) throws(SocialError) -> (likes: Int, retweets: Int, replies: Int, quotes: Int) {
        if let c = tweetCountsCache.lookup(id) { return (Int(c.likes), Int(c.retweets), Int(c.replies), Int(c.quotes)) }
        let stamp = tweetCountsCache.stamp(id)
        let counts = try readTweetCounts(of: id)
        tweetCountsCache.install(id, TweetCounts(likes: counts.likes, retweets: counts.retweets,
                                                 replies: counts.replies, quotes: counts.quotes),
                                 since: stamp)
        return counts
    }

    /// The counts as the tree has them (no cache).
    func readTweetCounts(of id: UInt64) throws(SocialError) -> (likes: Int, retweets: Int, replies: Int, quotes: Int) {
        let values: [[UInt8]?]
        do {
            values = try tree.multiGet([SocialKeys.counter(id, .likes), SocialKeys.counter(id, .retweets),
                                        SocialKeys.counter(id, .replies), SocialKeys.counter(id, .quotes)])
        } catch { throw SocialError(error) }
        func count(_ value: [UInt8]?) -> Int {
            guard let value, value.count == 8 else { return 0 }
            return Int(clamping: value.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) })
        }
        return (count(values[0]), count(values[1]), count(values[2]), count(values[3]))
    }

    /// How many tweets, replies, quotes and retweets the user with id `id` has.
    func tweetCount(ofUser id: UInt64) throws(SocialError) -> Int {
        guard let value = try value(SocialKeys.counter(id, .tweets)), value.count == 8 else { return 0 }
        return Int(clamping: value.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) })
    }

    func makeUser(_ record: UserRecord) throws(SocialError) -> User {
        User(id: record.id, handle: record.handle, name: record.name, bio: record.bio,
             createdAtMilliseconds: record.createdAtMilliseconds,
             followerCount: graph.followerCount(record.number), followingCount: graph.followingCount(record.number),
             tweetCount: try tweetCount(ofUser: record.id))
    }

    static func checkLimit(_ limit: Int, max: Int = pageLimitMax) throws(SocialError) {
        guard limit >= 1 && limit <= max else { throw .invalid("LIMIT must be 1 to \(max), not \(limit)") }
    }
}
