import StorageEngine

/// The derived structures that follow the log: the home timelines (and, below, search). They are
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

    let timeline: HomeTimelines
    let timelineDirectory: String
    let users: UserNumbers
    let sourceFailure: FailureNote
    let engine: Engine
    /// What open found, for STATS and tests.
    let timelineStatus: TimelineCheckpointStatus
    let replayedRecords: Int

    static func position(_ lsn: UInt64, _ index: Int) -> UInt64 {
        precondition(index < 1 << eventBits, "a record holds at most 4,096 entries")
        return lsn << UInt64(eventBits) | UInt64(index)
    }

    /// Opens every consumer from its checkpoint and replays the log after it.
    static func open(engine: Engine, options: SocialOptions) throws(SocialError) -> Consumers {
        let users = UserNumbers(tree: engine.tree)
        let failure = FailureNote()
        let log = engine.log
        let lastLSN = log.nextSequenceNumber - 1
        let directory = engine.directory + "/timeline"
        do { try engine.fileSystem.makeDirectory(directory) } catch { throw .io("creating \(directory): \(error)") }
        let timelineOptions = TimelineOptions(capacity: options.timelineCapacity, celebrityThreshold: options.celebrityThreshold)
        let (timeline, status) = HomeTimelines.open(
            directory: directory, fileSystem: engine.fileSystem, options: timelineOptions,
            followers: GraphFollowerSource(graph: engine.graph),
            tweets: TweetStoreSource(tree: engine.tree, users: users, failure: failure),
            missingMeansEmpty: lastLSN == 0)
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
        var replayed = 0
        if let start = replayFrom, start <= lastLSN {
            do {
                let reader = try log.reader(from: start)
                while try reader.withNext({ lsn, type, payload in
                    let events = try SocialEvent.decode(type: type, payload: payload)
                    try Self.apply(events, lsn: lsn, timeline: timeline, users: users, tree: engine.tree)
                    replayed += 1
                }) {}
            } catch let error as SocialError {
                throw error
            } catch {
                throw .io("replaying the log into the home timelines: \(error)")
            }
        }
        let consumers = Consumers(timeline: timeline, timelineDirectory: directory, users: users, sourceFailure: failure,
                                  engine: engine, timelineStatus: status, replayedRecords: replayed)
        // A rebuilt store is checkpointed at once, so the log's checkpoint for it is where the
        // sources were and the log may let older segments go.
        if rebuilt || status == .missing { try consumers.checkpoint() }
        return consumers
    }

    private init(timeline: HomeTimelines, timelineDirectory: String, users: UserNumbers, sourceFailure: FailureNote,
                 engine: Engine, timelineStatus: TimelineCheckpointStatus, replayedRecords: Int) {
        self.timeline = timeline
        self.timelineDirectory = timelineDirectory
        self.users = users
        self.sourceFailure = sourceFailure
        self.engine = engine
        self.timelineStatus = timelineStatus
        self.replayedRecords = replayedRecords
    }

    /// Applies the events of the record at `lsn` (the writer lock is held).
    func apply(_ events: [SocialEvent], lsn: UInt64) throws(SocialError) {
        try Self.apply(events, lsn: lsn, timeline: timeline, users: users, tree: engine.tree)
    }

    /// Decodes the record a write just made durable and applies its events.
    func apply(recordAt lsn: UInt64, type: UInt16, payload: UnsafeRawBufferPointer) throws(SocialError) {
        try apply(try SocialEvent.decode(type: type, payload: payload), lsn: lsn)
    }

    private static func apply(_ events: [SocialEvent], lsn: UInt64, timeline: HomeTimelines, users: UserNumbers,
                              tree: LSMTree) throws(SocialError) {
        do throws(LSMError) {
            for (index, event) in events.enumerated() {
                let at = position(lsn, index)
                switch event {
                case .tweetCreated(let record):
                    guard let author = try users.number(ofUser: record.author) else { continue }
                    if let original = record.retweetOf {
                        // The original is gone only when a later record deleted it, and this
                        // retweet with it: nothing to show (at replay).
                        guard let value = try tree.get(Keys.tweet(original)),
                              let originalNumber = try users.number(ofUser: try TweetRecord.decode(value).author) else { continue }
                        timeline.fanOut(.retweet(id: record.id, retweeter: author, original: original, originalAuthor: originalNumber), lsn: at)
                    } else {
                        var flags: TimelineFlags = []
                        if record.replyTo != nil { flags.insert(.reply) }
                        if record.quoteOf != nil { flags.insert(.quote) }
                        timeline.fanOut(.post(id: record.id, author: author, flags: flags), lsn: at)
                    }
                case .tweetDeleted(let id, _):
                    timeline.delete(id: id, lsn: at)
                case .followed(let follower, let followee):
                    timeline.follow(follower: follower, followee: followee, lsn: at)
                case .unfollowed(let follower, let followee):
                    timeline.unfollow(follower: follower, followee: followee, lsn: at)
                case .liked, .unliked, .userChanged:
                    break
                }
            }
        } catch {
            throw SocialError(error)
        }
    }

    /// After a change that bypassed the log (IMPORT FOLLOWS' bulk load): the timelines start
    /// over from the sources, and that is checkpointed at once so no replay can undo it.
    func resetFromSources() throws(SocialError) {
        let last = engine.log.nextSequenceNumber - 1
        timeline.resetFromSources(appliedLSN: Self.position(last, (1 << Self.eventBits) - 1))
        try checkpoint()
    }

    /// Checkpoints every consumer and moves its log checkpoint (the writer lock is held, so no
    /// record is half applied).
    func checkpoint() throws(SocialError) {
        do { try engine.log.sync() } catch { throw .io("log: \(error)") }
        let applied = timeline.appliedLSN
        do { try timeline.checkpoint(directory: timelineDirectory, fileSystem: engine.fileSystem) } catch { throw .io("\(error)") }
        do { try engine.log.setCheckpoint(consumer: Self.timelineConsumer, lsn: applied >> UInt64(Self.eventBits)) } catch {
            throw .io("log: \(error)")
        }
    }
}
