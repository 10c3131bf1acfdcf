import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// Power-loss simulation for the whole database: the shell runs in process over a file layer
/// with a `CrashSimulator`, which records every write, truncate and fallocate not covered by a
/// completed fdatasync and every name change not covered by a directory fsync. At a random
/// mutating syscall the power goes (that call and every later one fail with EIO), the database
/// is closed as far as it can be, everything unsynced is undone (or, in half the rounds, all but
/// a random in-order prefix of each file's unsynced writes), and the database reopens: every
/// acknowledged write must be there and consistent everywhere, the command cut short applied
/// whole or not at all. `SOCIALDB_POWER_ROUNDS` (default 30) sets the rounds.
@Suite struct PowerLossTests {
    /// Opens the shell's database over `faults`; small log segments and frequent checkpoints so
    /// rolls, checkpoints and segment removal happen within a few commands.
    static func open(_ path: String, faults: FaultInjector?, random: inout TortureRandom) throws -> SocialDB {
        var options = SocialOptions()
        options.engine.faults = faults
        options.engine.ioBackend = Bool.random(using: &random) ? .posix : .automatic
        options.engine.logSegmentSizeBytes = 64 << 10
        options.checkpointEveryRecords = Int.random(in: 3...30, using: &random)
        options.checkpointEverySeconds = 0
        // A policy that acknowledges before fdatasync (`interval:1000`) must make this test fail:
        // a check that the simulator really drops unsynced writes.
        if let sync = getenv("SOCIALDB_POWER_SYNC"), let policy = LogSyncPolicy(parsing: String(cString: sync)) { options.sync = policy }
        return try SocialDB.open(at: path, options: options)
    }

    static func sender(_ shell: Shell) -> TortureSend {
        { line in shell.execute(line).flatMap { parseJSONLine($0.render(json: true)) } }
    }

    @Test func acknowledgedWritesSurvivePowerLoss() throws {
        let rounds = tortureEnvironmentInt("SOCIALDB_POWER_ROUNDS", default: 30)
        let seed = tortureSeed()
        print("PowerLossTests seed \(seed), \(rounds) rounds")
        var random = TortureRandom(seed: seed)
        var directory = TemporaryDirectory("power")
        var model = TortureModel(tokenPrefix: "p")
        var inFlight: [TortureCommand] = []
        var passed = 0, acknowledged = 0, checks = 0, undoneWrites = 0, undoneNames = 0, crashesInCommand = 0
        var problems: [String] = []

        for round in 0...rounds {
            if round > 0 && round % 6 == 0 && round < rounds {
                directory = TemporaryDirectory("power")
                model = TortureModel(tokenPrefix: "p")
                inFlight = []
            }
            let data = directory.path + "/db"
            let simulator = CrashSimulator(stashDirectory: directory.path + "/stash-\(round)")
            let faults = FaultInjector(crash: simulator)
            let db: SocialDB
            do {
                db = try Self.open(data, faults: faults, random: &random)
            } catch {
                Issue.record("round \(round) (seed \(seed)): the database does not open after a power cut: \(error)")
                break
            }
            let shell = Shell(db: db, json: true)
            let send = Self.sender(shell)
            if round > 0 {
                for command in inFlight {
                    if let problem = model.resolve(command, send) { problems.append(problem) }
                }
                inFlight = []
                let found = model.check(send, checks: &checks)
                if found.isEmpty {
                    passed += 1
                } else {
                    Issue.record("round \(round) (seed \(seed)): \(found.count) problems, first: \(found.prefix(5).joined(separator: "\n"))")
                    try? db.close()
                    break
                }
            }
            if round == rounds {
                try db.close()
                break
            }
            // The workload, with the power cut armed somewhere inside it.
            let count = Int.random(in: 4...20, using: &random)
            simulator.arm(afterMutations: Int.random(in: 1...(count * 5), using: &random))
            for _ in 0..<count {
                let command = model.nextCommand(&random)
                let crashedBefore = simulator.crashed
                let (_, ioError) = tortureStep(&model, command, send, problems: &problems, allowIOErrors: true)
                if ioError {
                    inFlight.append(command)
                    if !crashedBefore { crashesInCommand += 1 }
                } else {
                    acknowledged += 1
                }
                if simulator.crashed { break }
            }
            if !simulator.crashed { simulator.arm(afterMutations: 1) }
            try? db.close()
            let undone = simulator.powerCut(keepPrefixes: Bool.random(using: &random), using: &random)
            undoneWrites += undone.writes
            undoneNames += undone.names
        }
        print("PowerLossTests: \(passed) of \(rounds) power-loss rounds passed; \(acknowledged) commands answered, "
              + "\(crashesInCommand) cut inside a command; \(undoneWrites) unsynced writes and \(undoneNames) unsynced name changes undone; \(checks) checks")
        for problem in problems.prefix(20) { Issue.record("\(problem) (seed \(seed))") }
        #expect(passed == rounds)
    }
}
