import StorageEngine
import Synchronization

/// The derived structures that follow the log: the home timelines and the search index (tweets,
/// users, trends). They are
/// fed in two ways with the same code (`apply`):
///
/// - live: every write of `SocialDB` holds the writer lock from before its log record is appended
///   until the record's events are applied here, so events arrive in log order and a call returns
///   only when every structure reflects it (reads see every acknowledged write);
/// - at open: each structure loads its checkpoint, and the log records after the oldest
///   checkpoint are decoded with `SocialEvent.decode` and applied again (a structure ignores
///   what its checkpoint already includes).
///
/// Positions. One log record can hold several events (a DELETE takes the tweet and its retweets,
/// an import many tweets), while a structure accepts one event per position and ignores a
/// position at or below the one it has applied. So event `i` of the record at LSN `n` is applied
/// at position `n << 12 | i` (a record has at most 4,096 entries): the structures' "applied LSN"
/// is in those units, and their log checkpoint is `position >> 12` (the records of one LSN are
/// applied together, under the writer lock, and checkpoints are taken under it too).
final class Consumers: Sendable {
    static let eventBits = 12
    static let timelineConsumer = "timeline"
    static let searchConsumer = "search"
    /// Trends count the hashtags of this window before now.
    static let trendWindowMilliseconds: UInt64 = 24 * 3_600_000

    let timeline: HomeTimelines
    let timelineDirectory: String
    let search: SearchIndex
    /// What open found: nil when the search files were loaded, else why the index was rebuilt.
    let searchRebuildReason: String?
    let users: UserNumbers
    /// The timelines' view of the tweet store, also read by user timelines (`authorItemIDs`).
    let tweetSource: TweetStoreSource
    /// Authors' newest items for ring rebuilds (the source's cache), kept true here.
    var recentItems: AuthorItemsCache { tweetSource.recent }
    let sourceFailure: FailureNote
    let engine: Engine
    /// What open found, for STATS and tests.
    let timelineStatus: TimelineCheckpointStatus

    static func position(_ lsn: UInt64, _ index: Int) -> UInt64 {
        precondition(index < 1 << eventBits, "a record holds at most 4,096 entries")
        return lsn << UInt64(eventBits) | UInt64(index)
    }

    /// Opens every consumer from its checkpoint and replays the log after it.
    static func open(engine: Engine, options: SocialOptions, tweetViews: IDCache<Tweet.Content>) throws(SocialError) -> Consumers {
        let users = UserNumbers(tree: engine.tree)
        let failure = FailureNote()
        let recent = AuthorItemsCache(maxItems: max(0, options.authorCacheItems))
        let tweetSource = TweetStoreSource(tree: engine.tree, users: users, failure: failure, recent: recent, views: tweetViews)
        let log = engine.log
        let lastLSN = log.nextSequenceNumber - 1
        let directory = engine.directory + "/timeline"
        do { try engine.fileSystem.makeDirectory(directory) } catch { throw .io("creating \(directory): \(error)") }
        let timelineOptions = TimelineOptions(capacity: options.timelineCapacity, celebrityThreshold: options.celebrityThreshold)
        // Every user the checkpoint can name exists already: the tree and the graph are
        // recovered to the end of the log, and the checkpoint is older. A number past both is
        // a corrupt file (rebuilt below), never a reason to grow the user table.
        let nextUserNumber: UInt64
        do { nextUserNumber = try engine.tree.get(SocialKeys.nextUserNumber)?.u64 ?? 0 } catch { throw SocialError(error) }
        let knownUsers = max(Int(clamping: nextUserNumber), engine.graph.statistics().users)
        let (timeline, status) = HomeTimelines.open(
            directory: directory, fileSystem: engine.fileSystem, options: timelineOptions,
            followers: GraphFollowerSource(graph: engine.graph),
            tweets: tweetSource,
            missingMeansEmpty: lastLSN == 0, knownUsers: knownUsers)
        // Where the timeline's replay starts; nil: the store was rebuilt from the sources instead.
        var replayFrom: UInt64?
        var rebuilt = false
        switch status {
        case .loaded(let applied, _):
            let covered = applied >> UInt64(eventBits)
            // The log must still hold every record after the checkpoint (and must not end before
            // it: a checkpoint ahead of the log describes writes the log lost).
            if covered + 1 >= log.firstSequenceNumber && covered <= lastLSN {
                replayFrom = covered + 1
            } else {
                timeline.resetFromSources(appliedLSN: position(lastLSN, (1 << eventBits) - 1))
                rebuilt = true
            }
        case .missing where lastLSN == 0:
            replayFrom = 1
        case .missing, .unusable:
            // The sources (graph and tweet store, both recovered already) are current up to the
            // last record: rings are rebuilt from them when read.
            timeline.resetFromSources(appliedLSN: position(lastLSN, (1 << eventBits) - 1))
            rebuilt = true
        }
        // The search index: its files, or a rebuild from the tweet store and users when they
        // are missing on a database that has data, corrupt, or older than the log still holds.
        let searchDirectory = engine.directory + "/search"
        let (search, searchReplayFrom, searchRebuildReason) = try openSearch(directory: searchDirectory, engine: engine, lastLSN: lastLSN)
        if let searchReplayFrom { replayFrom = min(replayFrom ?? searchReplayFrom, searchReplayFrom) }

        let consumers = Consumers(timeline: timeline, timelineDirectory: directory, search: search,
                                  searchRebuildReason: searchRebuildReason, users: users, sourceFailure: failure,
                                  tweetSource: tweetSource, engine: engine, timelineStatus: status, options: options)
        do {
            if let start = replayFrom, start <= lastLSN {
                let reader = try log.reader(from: start)
                while try reader.withNext({ lsn, type, payload in
                    let events = try SocialEvent.decode(type: type, payload: payload)
                    try consumers.apply(events, lsn: lsn, live: false)
                    consumers.replayedRecords.add(1, ordering: .relaxed)
                }) {}
            }
            try consumers.feedTrends(nowMilliseconds: options.wallClockMilliseconds())
            // A rebuilt structure is checkpointed at once, so the log's checkpoint for it is
            // where the sources were and the log may let older segments go.
            if rebuilt || status == .missing || searchRebuildReason != nil { try consumers.checkpoint() }
        } catch {
            search.close()
            if let error = error as? SocialError { throw error }
            throw .io("replaying the log into the derived structures: \(error)")
        }
        return consumers
    }

    private static func openSearch(directory: String, engine: Engine, lastLSN: UInt64) throws(SocialError)
        -> (SearchIndex, UInt64?, String?) {
        let fileSystem = engine.fileSystem
        let existed = fileSystem.exists(directory + "/" + SearchFormat.stateFileName)
        var reason: String?
        do throws(SearchError) {
            let index = try SearchIndex.open(directory: directory, fileSystem: fileSystem)
            let covered = index.checkpointLSN >> UInt64(eventBits)
            if !existed && lastLSN > 0 {
                reason = "no search files"
            } else if covered + 1 < engine.log.firstSequenceNumber || covered > lastLSN {
                reason = "the search files are at LSN \(covered), the log holds \(engine.log.firstSequenceNumber)...\(lastLSN)"
            } else {
                return (index, covered + 1, nil)
            }
            index.close()
        } catch {
            reason = "\(error)"
        }
        let index: SearchIndex
        do throws(SearchError) {
            try SearchIndex.removeFiles(directory: directory, fileSystem: fileSystem)
            index = try SearchIndex.open(directory: directory, fileSystem: fileSystem)
        } catch {
            throw .io("\(error)")
        }
        do {
            try rebuildSearch(index, engine: engine)
        } catch {
            index.close()
            throw error
        }
        index.advanceAppliedLSN(to: position(lastLSN, (1 << eventBits) - 1))
        return (index, nil, reason)
    }

    /// Adds every user and every stored tweet (deleted ones are gone from the store).
    private static func rebuildSearch(_ index: SearchIndex, engine: Engine) throws(SocialError) {
        var handles: [UInt64: String] = [:]
        do throws(LSMError) {
            try engine.tree.scan(from: Keys.one(.users, 0), to: Keys.one(.users, UInt64.max)) { _, value in
                if let record = UserRecord.decode(value) {
                    handles[record.id] = record.handle
                    index.addUser(id: record.id, handle: record.handle, displayName: record.name,
                                  followers: UInt64(engine.graph.followerCount(record.number)))
                }
                return true
            }
            var failure: LSMError?
            try engine.tree.scan(from: Keys.one(.tweets, 0), to: Keys.one(.tweets, UInt64.max)) { _, value in
                do throws(LSMError) {
                    let record = try TweetRecord.decode(value)
                    index.add(tweet: record, authorHandle: handles[record.author], lsn: 0)
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
        } catch {
            throw SocialError(error)
        }
    }

    /// Trends live in memory: count the hashtags of the window's tweets from the tweet store
    /// (newest ids first, down to the first id older than the window).
    private func feedTrends(nowMilliseconds now: UInt64) throws(SocialError) {
        let start = now > Self.trendWindowMilliseconds ? now - Self.trendWindowMilliseconds : 0
        trendsFedFrom.store(start, ordering: .relaxed)
        let oldest = start > Snowflake.epochMilliseconds ? (start - Snowflake.epochMilliseconds) << 22 : 0
        do throws(LSMError) {
            var failure: LSMError?
            try engine.tree.scan(from: Keys.one(.tweets, oldest), to: Keys.one(.tweets, UInt64.max), reverse: true) { _, value in
                do throws(LSMError) {
                    let record = try TweetRecord.decode(value)
                    if !record.hashtags.isEmpty && record.time >= start && record.time <= now {
                        search.recordHashtags(record.hashtags, timeMilliseconds: record.time)
                    }
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
        } catch {
            throw SocialError(error)
        }
    }

    private init(timeline: HomeTimelines, timelineDirectory: String, search: SearchIndex, searchRebuildReason: String?,
                 users: UserNumbers, sourceFailure: FailureNote, tweetSource: TweetStoreSource, engine: Engine,
                 timelineStatus: TimelineCheckpointStatus, options: SocialOptions) {
        self.tweetSource = tweetSource
        checkpointEveryRecords = max(0, options.checkpointEveryRecords)
        checkpointEveryNanoseconds = UInt64(max(0, options.checkpointEverySeconds)) * 1_000_000_000
        inactiveDays = max(0, options.dropInactiveTimelinesAfterDays)
        wallClockMilliseconds = options.wallClockMilliseconds
        timeline.setActivityDay(UInt32(truncatingIfNeeded: options.wallClockMilliseconds() / 86_400_000))
        self.timeline = timeline
        self.timelineDirectory = timelineDirectory
        self.search = search
        self.searchRebuildReason = searchRebuildReason
        self.users = users
        self.sourceFailure = sourceFailure
        self.engine = engine
        self.timelineStatus = timelineStatus
    }

    /// Tweets at or after this time (Unix ms) were counted by trends when the database opened;
    /// older ones only if written since.
    private let trendsFedFrom = Atomic<UInt64>(0)

    /// A deleted tweet's hashtags stop counting in trends (the writer lock is held; run in
    /// `exclusively`, after the post's own record is applied). Only for
    /// a tweet trends counted: fed at open (its time is in the window then) or written since
    /// (at a time at or after that window's start, as every live post is).
    func forgetTrends(of record: TweetRecord) {
        guard !record.hashtags.isEmpty, record.time >= trendsFedFrom.load(ordering: .relaxed) else { return }
        search.forgetHashtags(record.hashtags, timeMilliseconds: record.time)
    }

    /// Records replayed from the log at open.
    let replayedRecords = Atomic<Int>(0)

    // MARK: The apply pipeline (live writes)

    /// A live record waiting to be applied: the encoded LSM batch as the log holds it (decoded
    /// by whoever applies it), or a graph record's event.
    struct PendingRecord: Sendable {
        enum Body: Sendable {
            case batch(type: UInt16, payload: [UInt8])
            case events([SocialEvent])
        }
        let lsn: UInt64
        let body: Body
    }

    /// Records appended and written to the tree/graph but not yet applied here, in log order.
    /// Tickets number them from 1 (`issued`); a ticket's apply error waits in `failures` for its
    /// writer (rare: the database stops checkpointing then, see `missedRecord`).
    private struct Queue {
        var records: [PendingRecord] = []
        /// The encoded batches' bytes in `records`.
        var bytes = 0
        var issued: UInt64 = 0
        var failures: [UInt64: SocialError] = [:]
    }
    private let queue = Mutex(Queue())
    /// Held while records are applied (and while a checkpoint or another change of the derived
    /// structures outside the log runs: `exclusively`). A pthread mutex, not `Mutex`: a writer
    /// whose record another writer is applying sleeps at once, where `Mutex` spun first (on 2
    /// cores a posting server spent 17% of its CPU spinning there, taken from the drain it
    /// waited for).
    private let applying = ConditionLock()
    /// The spare buffer the queue is swapped with, so draining allocates nothing (touched only
    /// with `applying` held).
    nonisolated(unsafe) private let spare: UnsafeMutablePointer<[PendingRecord]> = {
        let p = UnsafeMutablePointer<[PendingRecord]>.allocate(capacity: 1)
        p.initialize(to: [])
        return p
    }()

    deinit {
        spare.deinitialize(count: 1)
        spare.deallocate()
    }
    /// Tickets applied, in order: every ticket at or below is done.
    private let appliedTickets = Atomic<UInt64>(0)
    /// Whether `failures` may hold anything (read without the queue's lock).
    private let hasFailures = Atomic<Bool>(false)
    /// Records applied by a writer other than the one that appended them, and drains run.
    let combinedApplies = Atomic<Int>(0)
    let applyDrains = Atomic<Int>(0)
    /// A writer appending while this many records, or this many bytes of them, wait applies them
    /// itself first (under the writer lock), so a long import cannot queue its input in memory
    /// (nor leave the apply of a batch until its bytes have left the CPU caches).
    static let pendingRecordsMax = 256
    static let pendingBytesMax = 1 << 20

    /// The last ticket issued: a writer reads it under the writer lock before and after its
    /// body to know its own tickets (the writer lock serializes every enqueue).
    var issuedTickets: UInt64 { queue.withLock { $0.issued } }

    /// Records queued and not yet applied.
    var pendingApplies: Int {
        let applied = appliedTickets.load(ordering: .acquiring)  // first: tickets only grow
        return Int(issuedTickets - applied)
    }

    /// Queues the record a write just appended (the writer lock is held, so records queue in log
    /// order). Its writer calls `finish` after releasing the writer lock.
    func enqueue(lsn: UInt64, type: UInt16, payload: [UInt8]) {
        enqueue(PendingRecord(lsn: lsn, body: .batch(type: type, payload: payload)))
    }

    func enqueue(_ events: [SocialEvent], lsn: UInt64) {
        enqueue(PendingRecord(lsn: lsn, body: .events(events)))
    }

    private func enqueue(_ record: PendingRecord) {
        let full = queue.withLock { q -> Bool in
            q.issued += 1
            q.records.append(record)
            if case .batch(_, let payload) = record.body { q.bytes += payload.count }
            return q.records.count >= Self.pendingRecordsMax || q.bytes >= Self.pendingBytesMax
        }
        if full { applying.withLock { drainLocked(&spare.pointee, own: nil, through: .max) } }
    }

    /// Returns once every ticket through `last` is applied (applying whatever waits, other
    /// writers' records included, when no one else is), then throws the first apply error of
    /// tickets `first...last`, the caller's own.
    func finish(first: UInt64, last: UInt64) throws(SocialError) {
        guard last >= first else { return }
        if appliedTickets.load(ordering: .acquiring) < last {
            applying.withLock {
                if appliedTickets.load(ordering: .relaxed) < last { drainLocked(&spare.pointee, own: first...last, through: last) }
            }
        }
        guard hasFailures.load(ordering: .acquiring) else { return }
        let failure = queue.withLock { q -> SocialError? in
            var found: SocialError?
            for ticket in first...last {
                if let error = q.failures.removeValue(forKey: ticket), found == nil { found = error }
            }
            return found
        }
        if let failure { throw failure }
    }

    /// Applies queued records in order (`applying` is held) until none waits or every ticket
    /// through `through` is applied (so a writer leaves once its own are, while others keep
    /// queueing). `own`: the caller's tickets, for counting the records it applied for others.
    private func drainLocked(_ spare: inout [PendingRecord], own: ClosedRange<UInt64>?, through: UInt64) {
        applyDrains.add(1, ordering: .relaxed)
        while appliedTickets.load(ordering: .relaxed) < through {
            var first: UInt64 = 0
            queue.withLock { q in
                first = q.issued - UInt64(q.records.count) + 1
                swap(&spare, &q.records)
                q.bytes = 0
            }
            if spare.isEmpty { return }
            var ticket = first
            var others = 0
            for record in spare {
                if let own, !own.contains(ticket) { others += 1 }
                do throws(SocialError) {
                    switch record.body {
                    case .batch(let type, let payload):
                        let decoded = payload.withUnsafeBytes { bytes -> Result<[SocialEvent], SocialError> in
                            do throws(SocialError) { return .success(try SocialEvent.decode(type: type, payload: bytes)) } catch { return .failure(error) }
                        }
                        try apply(try decoded.get(), lsn: record.lsn)
                    case .events(let events):
                        try apply(events, lsn: record.lsn)
                    }
                } catch {
                    queue.withLock { $0.failures[ticket] = error }
                    hasFailures.store(true, ordering: .releasing)
                }
                appliedTickets.store(ticket, ordering: .releasing)
                ticket += 1
            }
            if others > 0 { combinedApplies.add(others, ordering: .relaxed) }
            spare.removeAll(keepingCapacity: true)
        }
    }

    /// Runs `body` with every queued record applied and no apply running: for what changes the
    /// derived structures outside the log order (checkpoints, trends of a delete, a bulk load's
    /// reset). Callers hold the writer lock, so nothing queues meanwhile.
    func exclusively<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try applying.withLock { () throws(E) -> T in
            drainLocked(&spare.pointee, own: nil, through: .max)
            return try body()
        }
    }

    /// Applies the events of the record at `lsn` (`applying` is held, records come in log
    /// order), then checkpoints when one is due (see `SocialOptions.checkpointEveryRecords`).
    private func apply(_ events: [SocialEvent], lsn: UInt64) throws(SocialError) {
        do {
            try apply(events, lsn: lsn, live: true)
        } catch {
            // The record is in the log (and in the tree) but the derived structures may have
            // missed part of it, while later records move their applied positions past it. So
            // they are not checkpointed again in this process: the next open replays the log
            // from their last checkpoint, which holds this record, and repairs them.
            missedRecord.withLock { if $0 == nil { $0 = "log record \(lsn): \(error)" } }
            throw error
        }
        checkpointIfDue()
    }

    /// The first logged record the derived structures failed to apply, if any (see `apply`).
    let missedRecord = Mutex<String?>(nil)

    /// Records applied by writes since the last checkpoint, and when that was (monotonic ns).
    private struct Periodic {
        var records = 0
        var lastNanoseconds: UInt64
    }
    private let periodic = Mutex(Periodic(lastNanoseconds: SnowflakeGenerator.systemMonotonicNanoseconds()))
    private let checkpointEveryRecords: Int
    private let checkpointEveryNanoseconds: UInt64
    /// Periodic checkpoints taken, and why the last one failed (nil: it did not). A failure
    /// does not fail the write that triggered it (that write is durable and applied); the next
    /// write tries again.
    let periodicCheckpoints = Atomic<Int>(0)
    let inactiveDays: Int
    let wallClockMilliseconds: SnowflakeGenerator.Clock
    let periodicCheckpointFailure = Mutex<String?>(nil)

    /// Keeps the timelines' activity day current (days since the Unix epoch by the wall clock),
    /// so home reads and posts are dated right for `dropInactiveTimelinesAfterDays`.
    @inline(__always)
    func noteActivityDay() {
        let day = UInt32(truncatingIfNeeded: wallClockMilliseconds() / 86_400_000)
        timeline.setActivityDay(day)
    }

    private func checkpointIfDue() {
        let due = periodic.withLock { p -> Bool in
            p.records += 1
            if checkpointEveryRecords > 0 && p.records >= checkpointEveryRecords { return true }
            return checkpointEveryNanoseconds > 0
                && SnowflakeGenerator.systemMonotonicNanoseconds() &- p.lastNanoseconds >= checkpointEveryNanoseconds
        }
        guard due else { return }
        do {
            try checkpoint()
            periodicCheckpoints.add(1, ordering: .relaxed)
            periodicCheckpointFailure.withLock { $0 = nil }
        } catch {
            periodicCheckpointFailure.withLock { $0 = "\(error)" }
            periodic.withLock { $0.records = 0; $0.lastNanoseconds = SnowflakeGenerator.systemMonotonicNanoseconds() }
        }
    }

    /// `live`: a write of this process (trends count it; at replay they were fed from the store).
    private func apply(_ events: [SocialEvent], lsn: UInt64, live: Bool) throws(SocialError) {
        if live { noteActivityDay() }
        let tree = engine.tree
        do {
            for (index, event) in events.enumerated() {
                let at = Self.position(lsn, index)
                switch event {
                case .tweetCreated(let record):
                    let author: UInt32?
                    do { author = try users.number(ofUser: record.author) } catch { throw SocialError(error) }
                    guard let author else { continue }
                    if search.appliedLSN < at {
                        search.add(tweet: record, authorHandle: try handle(of: record.author), lsn: at)
                        if live && !record.hashtags.isEmpty { search.recordHashtags(record.hashtags, timeMilliseconds: record.time) }
                    }
                    if let original = record.retweetOf {
                        // The original is gone only when a later record deleted it, and this
                        // retweet with it: nothing to show (at replay).
                        let originalNumber: UInt32?
                        do throws(LSMError) {
                            guard let value = try tree.get(Keys.tweet(original)) else { continue }
                            originalNumber = try users.number(ofUser: try TweetRecord.decode(value).author)
                        } catch { throw SocialError(error) }
                        guard let originalNumber else { continue }
                        let item = TimelineItem.retweet(id: record.id, retweeter: author, original: original, originalAuthor: originalNumber)
                        recentItems.added(item)
                        timeline.fanOut(item, lsn: at)
                    } else {
                        var flags: TimelineFlags = []
                        if record.replyTo != nil { flags.insert(.reply) }
                        if record.quoteOf != nil { flags.insert(.quote) }
                        let item = TimelineItem.post(id: record.id, author: author, flags: flags)
                        recentItems.added(item)
                        timeline.fanOut(item, lsn: at)
                    }
                case .tweetDeleted(let id, let authorID):
                    let authorNumber: UInt32?
                    do { authorNumber = authorID == 0 ? nil : try users.number(ofUser: authorID) } catch { throw SocialError(error) }
                    recentItems.removed(id: id, author: authorNumber)
                    timeline.delete(id: id, lsn: at)
                    search.delete(tweetID: id, lsn: at)
                case .followed(let follower, let followee):
                    timeline.follow(follower: follower, followee: followee, lsn: at)
                    try refreshUser(number: followee)
                case .unfollowed(let follower, let followee):
                    timeline.unfollow(follower: follower, followee: followee, lsn: at)
                    try refreshUser(number: followee)
                case .userChanged(let id):
                    try refreshUser(id: id)
                case .liked, .unliked:
                    break
                }
            }
        }
    }

    private func userRecord(id: UInt64) throws(SocialError) -> UserRecord? {
        let value: [UInt8]?
        do { value = try engine.tree.get(SocialKeys.user(id)) } catch { throw SocialError(error) }
        guard let value else { return nil }
        guard let record = value.withUnsafeBytes({ UserRecord.decode($0) }) else { throw .io("storage: the record of user \(id) does not decode") }
        return record
    }

    /// Handles never change: from the users' handle cache.
    private func handle(of id: UInt64) throws(SocialError) -> String? {
        do { return try users.handle(ofUser: id) } catch { throw SocialError(error) }
    }

    /// User search keeps handle, name and follower count (its ranking) per user: rewritten when
    /// the profile or the follower count changes. Idempotent, so replays need no position.
    private func refreshUser(id: UInt64) throws(SocialError) {
        guard let record = try userRecord(id: id) else { return }
        search.addUser(id: record.id, handle: record.handle, displayName: record.name,
                       followers: UInt64(engine.graph.followerCount(record.number)))
    }

    func refreshUser(number: UInt32) throws(SocialError) {
        let id: UInt64?
        do { id = try users.id(ofNumber: number) } catch { throw SocialError(error) }
        if let id { try refreshUser(id: id) }
    }

    /// After a change that bypassed the log (IMPORT FOLLOWS' bulk load): the timelines start
    /// over from the sources, and that is checkpointed at once so no replay can undo it (run in
    /// `exclusively`).
    func resetTimelines() throws(SocialError) {
        let last = engine.log.nextSequenceNumber - 1
        timeline.resetFromSources(appliedLSN: Self.position(last, (1 << Self.eventBits) - 1))
        try checkpoint()
    }

    /// Checkpoints every consumer and moves its log checkpoint. `applying` is held (a drain's
    /// periodic checkpoint, or `exclusively`), so no record is half applied; writers may append
    /// meanwhile, and their records, queued, are after every structure's applied position.
    func checkpoint() throws(SocialError) {
        periodic.withLock { $0.records = 0; $0.lastNanoseconds = SnowflakeGenerator.systemMonotonicNanoseconds() }
        do { try engine.log.sync() } catch { throw .io("log: \(error)") }
        // Derived structures that missed a record keep their last checkpoint (see `apply`).
        if missedRecord.withLock({ $0 }) != nil { return }
        // The background cleanup of deletes: the rings lose the deleted entries and the reads
        // their tombstone filter, so neither the checkpoint nor the filter grows with deletes.
        // The tombstones may go: a delete removes the tweet and its retweets from the author
        // keyspace (the source) in the batch before it reaches the timelines, and a deleted
        // tweet can be neither posted nor retweeted again.
        if timeline.pendingTombstones > 0 { timeline.compact(forgettingTombstones: true) }
        // Inactive users' rings go (rebuilt from the sources on their next read).
        timeline.setActivityDay(UInt32(truncatingIfNeeded: wallClockMilliseconds() / 86_400_000))
        if inactiveDays > 0 { timeline.dropInactiveRings(inactiveDays: UInt32(inactiveDays)) }
        let applied = timeline.appliedLSN
        do { try timeline.checkpoint(directory: timelineDirectory, fileSystem: engine.fileSystem) } catch { throw .io("\(error)") }
        let searched: UInt64
        do { searched = try search.checkpoint() } catch { throw .io("\(error)") }
        do {
            try engine.log.setCheckpoint(consumer: Self.timelineConsumer, lsn: applied >> UInt64(Self.eventBits))
            try engine.log.setCheckpoint(consumer: Self.searchConsumer, lsn: searched >> UInt64(Self.eventBits))
        } catch {
            throw .io("log: \(error)")
        }
    }

    /// Stops the search index's background thread (after `checkpoint`, or without one).
    func close() {
        search.close()
    }
}
