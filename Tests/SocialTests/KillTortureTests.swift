import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Kill torture of the real `socialdb` binary: a seeded workload of every write command goes
/// through the shell with `--json`, each acknowledged answer goes into a model, and the process
/// is killed with SIGKILL at a random moment (often in the middle of a command). The next
/// start must show every acknowledged write in every structure (user, follows, TWEETS, HOME,
/// SEARCH, NOTIFICATIONS, counts) and the one command in flight applied whole or not at all.
///
/// `SOCIALDB_TORTURE_ROUNDS` (default 50) sets the rounds, `SOCIALDB_SEED` replays a run,
/// `SOCIALDB_TORTURE_SYNC` forces a sync policy (`off` loses acknowledged writes at a kill, so
/// the harness must fail: a check of the checker);
/// `scripts/torture --rounds 5000` is the long mode.
@Suite struct KillTortureTests {
    @Test func acknowledgedWritesSurviveKillNine() throws {
        let binary = socialdbBinary()
        #expect(FileManager.default.isExecutableFile(atPath: binary), "socialdb not found beside the tests")
        signal(SIGPIPE, SIG_IGN)
        let rounds = tortureEnvironmentInt("SOCIALDB_TORTURE_ROUNDS", default: 50)
        let roundsPerDirectory = 10
        let seed = tortureSeed()
        print("KillTortureTests seed \(seed), \(rounds) rounds")
        var random = TortureRandom(seed: seed)
        var directory = TemporaryDirectory("kill")
        var model = TortureModel(tokenPrefix: "r")
        var inFlight: TortureCommand?
        var passed = 0, acknowledged = 0, checks = 0, killedMidCommand = 0, inFlightApplied = 0
        var problems: [String] = []

        for round in 0...rounds {
            let last = round == rounds
            if round > 0 && round % roundsPerDirectory == 0 && !last {
                directory = TemporaryDirectory("kill")
                model = TortureModel(tokenPrefix: "r")
                inFlight = nil
            }
            var arguments = ["--data", directory.path, "--json", "--checkpoint-seconds", "0",
                             "--checkpoint-records", String(Int.random(in: 3...40, using: &random))]
            if let sync = getenv("SOCIALDB_TORTURE_SYNC") {
                arguments += ["--sync", String(cString: sync)] // e.g. `off`, to see the harness catch losses
            } else if round % 3 == 2 {
                arguments += ["--sync", "interval:5"]
            }
            if Int.random(in: 0..<4, using: &random) == 0 { arguments += ["--timeline-capacity", "16", "--celebrity-threshold", "2"] }
            let process = try ShellProcess(binary: binary, arguments: arguments, stderrPath: directory.path + "/../kill-stderr.txt")
            let send: TortureSend = { process.send($0) }

            // Recovery: resolve the command the last kill cut short, then check everything.
            if round > 0 {
                guard send("STATS") != nil else {
                    Issue.record("round \(round): socialdb did not start (seed \(seed))")
                    break
                }
                if let command = inFlight {
                    let before = model.tweets.count + model.follows.count + model.likes.count + model.users.count
                    if let problem = model.resolve(command, send) { problems.append(problem) }
                    if model.tweets.count + model.follows.count + model.likes.count + model.users.count != before { inFlightApplied += 1 }
                    inFlight = nil
                }
                let found = model.check(send, checks: &checks, homeLimit: arguments.contains("16") ? 16 : 800)
                if found.isEmpty {
                    passed += 1
                } else {
                    problems += found.map { "round \(round): \($0)" }
                    Issue.record("round \(round) (seed \(seed)): \(found.count) problems, first: \(found.prefix(5).joined(separator: "\n"))")
                    break
                }
            }
            if last {
                _ = send("QUIT")
                // Script mode exits 1 when a command failed (the workload has refused ones on purpose).
                let status = process.finish()
                #expect(status & 0x7F == 0 && (status >> 8) <= 1, "socialdb exited with status \(status)")
                break
            }

            // The workload, killed during command `kill` (or at startup when it is -1).
            let count = Int.random(in: 5...25, using: &random)
            let kill = Int.random(in: 0..<10, using: &random) == 0 ? -1 : Int.random(in: 0..<count, using: &random)
            if kill < 0 {
                usleep(UInt32.random(in: 0...20_000, using: &random))
                process.killNow()
                continue
            }
            for i in 0...kill {
                let command = model.nextCommand(&random)
                if i < kill {
                    let (answered, _) = tortureStep(&model, command, send, problems: &problems)
                    if answered { acknowledged += 1 } else { Issue.record("round \(round): socialdb died at \(command.line)"); break }
                    continue
                }
                // The victim: written, then the process is killed while (or after) it runs.
                _ = process.write(command.line)
                if Bool.random(using: &random) { usleep(UInt32.random(in: 0...1_500, using: &random)) }
                process.killNow()
                if let line = process.readLine(), let answer = parseJSONLine(line) {
                    if answer["ok"] as? Bool == true, let problem = model.apply(command, answer: answer) { problems.append(problem) }
                    acknowledged += 1
                } else {
                    inFlight = command
                    killedMidCommand += 1
                }
            }
        }
        print("KillTortureTests: \(passed) of \(rounds) kill rounds passed; \(acknowledged) commands answered, \(killedMidCommand) killed in flight "
              + "(\(inFlightApplied) of them found applied), \(checks) checks")
        for problem in problems.prefix(20) { Issue.record("\(problem) (seed \(seed))") }
        #expect(passed == rounds)
    }
}
