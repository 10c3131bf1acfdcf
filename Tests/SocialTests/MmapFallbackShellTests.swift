import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// What a user sees of a table mapping that fails (the engine side: StorageEngineTests'
/// `MmapFallbackTests`): a shortage is counted in STATS with a warning line and everything
/// still answers; any other failure refuses the open with an error naming the table.
@Suite struct MmapFallbackShellTests {
    /// A data directory with LSM tables in it (the small checkpoint interval flushes the tree).
    static func makeData(_ path: String) throws {
        var random = TortureRandom(seed: 11)
        let db = try PowerLossTests.open(path, faults: nil, random: &random)
        let shell = Shell(db: db, json: true)
        for line in ["USER ADD alice", "USER ADD bob", "FOLLOW bob alice"] { _ = shell.execute(line) }
        for i in 0..<40 { _ = shell.execute("POST alice \"tweet \(i) #x\"") }
        try db.close()
        #expect(CorruptionTests.files(in: path).contains { $0.1 == .table }, "the workload made no table")
    }

    @Test func aShortageShowsInStatsAndReadsStillAnswer() throws {
        let work = TemporaryDirectory("mmap-stats")
        let data = work.path + "/db"
        try Self.makeData(data)
        let faults = FaultInjector([.init(operation: .mmap, pathContains: ".sst", sticky: true, action: .fail(errno: ENOMEM))])
        var random = TortureRandom(seed: 12)
        let db = try PowerLossTests.open(data, faults: faults, random: &random)
        let shell = Shell(db: db, json: true)
        let stats = shell.execute("STATS").flatMap { parseJSONLine($0.render(json: true)) }
        let fallbacks = (stats?["lsm"] as? [String: Any])?["mmap_fallbacks"] as? Int
        #expect(fallbacks != nil && fallbacks! > 0 && fallbacks! == faults.hits, "\(String(describing: stats))")
        let human = Shell(db: db, json: false).execute("STATS")?.render(json: false) ?? ""
        #expect(human.contains("warning") && human.contains("not mapped") && human.contains("Cannot allocate memory"), "\(human)")
        let tweets = shell.execute("TWEETS alice LIMIT 100").flatMap { parseJSONLine($0.render(json: true)) }
        #expect((tweets?["tweets"] as? [Any])?.count == 40, "\(String(describing: tweets))")
        try db.close()
    }

    @Test func aClosedDescriptorRefusesTheOpenNamingTheTable() throws {
        let work = TemporaryDirectory("mmap-ebadf")
        let data = work.path + "/db"
        try Self.makeData(data)
        let faults = FaultInjector([.init(operation: .mmap, pathContains: ".sst", action: .fail(errno: EBADF))])
        var random = TortureRandom(seed: 13)
        var failure: Error?
        do { try PowerLossTests.open(data, faults: faults, random: &random).close() } catch { failure = error }
        let text = failure.map { "\($0)" } ?? "opened"
        #expect(text.contains("mmap \(data)/lsm/") && text.contains(".sst") && text.contains("Bad file descriptor"), "\(text)")
        // Nothing was changed: without the fault it opens with everything.
        let db = try PowerLossTests.open(data, faults: nil, random: &random)
        let tweets = Shell(db: db, json: true).execute("TWEETS alice LIMIT 100").flatMap { parseJSONLine($0.render(json: true)) }
        #expect((tweets?["tweets"] as? [Any])?.count == 40)
        try db.close()
    }
}
