import Social
import StorageEngine
import Testing

@Suite struct CheckpointTests {
    /// A database over 64 KiB log segments (periodic checkpoints every `everyRecords` records,
    /// none by time) where bob follows alice and alice posted 1,500 padded tweets tagged #run;
    /// returns it, its options and the newest tweet's id.
    static func posted(_ directory: TemporaryDirectory, everyRecords: Int) throws -> (SocialDB, SocialOptions, UInt64) {
        var options = testOptions()
        options.engine.logSegmentSizeBytes = 64 << 10
        options.checkpointEveryRecords = everyRecords
        options.checkpointEverySeconds = 0
        let db = try SocialDB.open(at: directory.path, options: options)
        try db.createUser(handle: "alice")
        try db.createUser(handle: "bob")
        try db.follow("bob", "alice")
        let padding = String(repeating: "x", count: 200)
        var newest: UInt64 = 0
        for i in 0..<1500 { newest = try db.post(handle: "alice", text: "post \(i) #run \(padding)").id }
        return (db, options, newest)
    }

    /// Small log segments, many posts: with periodic checkpoints the timeline and search
    /// checkpoints follow the log, so once the tree has flushed and the graph merged, the log
    /// removes old segments while the database runs; without them it keeps every segment.
    func run(everyRecords: Int) throws -> (first: UInt64, last: UInt64, timeline: UInt64, search: UInt64) {
        let directory = TemporaryDirectory("checkpoint")
        let (db, options, newest) = try Self.posted(directory, everyRecords: everyRecords)
        try db.engine.tree.flush()
        try db.engine.graph.merge()
        try db.engine.graph.merge()
        let log = db.engine.log
        let result = (log.firstSequenceNumber, log.nextSequenceNumber - 1,
                      log.checkpoint(of: "timeline") ?? 0, log.checkpoint(of: "search") ?? 0)
        #expect(try db.home(handle: "bob", limit: 1).items.map(\.id) == [newest])
        #expect(try db.search("#run", limit: 1).items.map(\.id) == [newest])
        try db.close()
        // Reopening replays only what the last checkpoint left, and reads are unchanged.
        let again = try SocialDB.open(at: directory.path, options: options)
        #expect(try again.home(handle: "bob", limit: 1).items.map(\.id) == [newest])
        #expect(try again.search("#run", limit: 1).items.map(\.id) == [newest])
        try again.close()
        return result
    }

    /// `checkpoint()` alone, with no periodic checkpoints: afterwards the log holds none of the
    /// segments the structures have passed, and the data reads the same, before and after a
    /// reopen.
    @Test func anExplicitCheckpointLetsTheLogRemoveSegments() throws {
        let directory = TemporaryDirectory("checkpoint-explicit")
        var (db, options, newest) = try Self.posted(directory, everyRecords: 0)
        let log = db.engine.log
        #expect(log.firstSequenceNumber == 1, "nothing removed before the checkpoint")
        try db.checkpoint()
        let last = log.nextSequenceNumber - 1
        #expect(log.firstSequenceNumber > last - 200, "segments before the checkpoint are gone: first \(log.firstSequenceNumber), last \(last)")
        #expect(try db.home(handle: "bob", limit: 1).items.map(\.id) == [newest])
        #expect(try db.search("#run", limit: 1).items.map(\.id) == [newest])
        // Writes go on after it.
        newest = try db.post(handle: "alice", text: "after #run").id
        try db.close()
        let again = try SocialDB.open(at: directory.path, options: options)
        #expect(try again.home(handle: "bob", limit: 1).items.map(\.id) == [newest])
        #expect(try again.search("#run", limit: 1).items.map(\.id) == [newest])
        #expect(try again.user(handle: "alice").tweetCount == 1501)
        try again.close()
    }

    @Test func periodicCheckpointsLetTheLogRemoveSegments() throws {
        let on = try run(everyRecords: 100)
        #expect(on.timeline + 100 > on.last && on.search + 100 > on.last, "checkpoints within 100 records of the end")
        #expect(on.first > on.last - 200, "segments before the last checkpoints are gone: \(on)")
        let off = try run(everyRecords: 0)
        #expect(off.first == 1, "without periodic checkpoints every segment stays: \(off)")
        #expect(off.timeline < 10)
    }
}
