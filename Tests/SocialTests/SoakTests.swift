import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Soak (issue 10): the torture workload (every write command, through the real `socialdb`
/// binary with `--json`) for a bounded time, with periodic checkpoints (`--checkpoint-records`)
/// and restarts, alternately clean (QUIT) and kill -9. Each process life runs `lifeCommands`
/// commands, samples the child's resident memory every `sampleEvery` commands, and checks every
/// invariant of the torture model mid-life and after each restart. A fresh data directory starts
/// when the model holds `tweetsPerDirectory` tweets (the checks read whole lists).
///
/// Runs only when `SOCIALDB_SOAK_SECONDS` is set (scripts/soak sets it: a few minutes by
/// default, an hour with `--minutes 60`); `SOCIALDB_SEED` replays a run.
@Suite struct SoakTests {
    static let enabled = ProcessInfo.processInfo.environment["SOCIALDB_SOAK_SECONDS"] != nil

    /// The resident set of a process in MiB, from /proc/<pid>/status.
    static func residentMiB(_ pid: pid_t) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first
            return kb.map { $0 / 1024 }
        }
        return nil
    }

    @Test(.enabled(if: enabled)) func mixedWorkloadWithCheckpointsAndRestarts() throws {
        let seconds = tortureEnvironmentInt("SOCIALDB_SOAK_SECONDS", default: 180)
        let lifeCommands = tortureEnvironmentInt("SOCIALDB_SOAK_LIFE_COMMANDS", default: 3000)
        let sampleEvery = 250, checkEvery = 1000, tweetsPerDirectory = 2500
        let binary = socialdbBinary()
        signal(SIGPIPE, SIG_IGN)
        let seed = tortureSeed()
        print("SoakTests seed \(seed), \(seconds) seconds, \(lifeCommands) commands per process life")
        var random = TortureRandom(seed: seed)
        let start = Date()
        var directory = TemporaryDirectory("soak")
        var model = TortureModel(tokenPrefix: "s0")
        var directories = 1, lives = 0, commands = 0, checks = 0, kills = 0, cleanStops = 0
        var problems: [String] = []
        var peaks: [Double] = []

        soak: while Date().timeIntervalSince(start) < Double(seconds) {
            if model.tweets.count >= tweetsPerDirectory {
                directory = TemporaryDirectory("soak")
                directories += 1
                model = TortureModel(tokenPrefix: "s\(directories)")
            }
            let arguments = ["--data", directory.path, "--json", "--checkpoint-seconds", "0",
                             "--checkpoint-records", String(Int.random(in: 100...400, using: &random))]
            let process = try ShellProcess(binary: binary, arguments: arguments, stderrPath: directory.path + "/../soak-stderr.txt")
            let send: TortureSend = { process.send($0) }
            lives += 1
            guard send("STATS") != nil else { problems.append("life \(lives): socialdb did not start"); break }
            if lives > 1 {
                let found = model.check(send, checks: &checks)
                if !found.isEmpty { problems += found.map { "after restart \(lives): \($0)" }; break }
            }
            var samples: [Double] = []
            for i in 1...lifeCommands {
                let command = model.nextCommand(&random)
                let (answered, _) = tortureStep(&model, command, send, problems: &problems)
                commands += 1
                if !answered { problems.append("life \(lives): socialdb died at \(command.line)"); break soak }
                if i % sampleEvery == 0, let rss = Self.residentMiB(process.pid) { samples.append(rss) }
                if i % checkEvery == 0 {
                    let found = model.check(send, checks: &checks)
                    if !found.isEmpty { problems += found.map { "life \(lives), command \(i): \($0)" }; break soak }
                }
                if model.tweets.count >= tweetsPerDirectory || Date().timeIntervalSince(start) >= Double(seconds) { break }
            }
            if let peak = samples.max() { peaks.append(peak) }
            print("life \(lives) (directory \(directories), \(model.tweets.count) tweets): RSS MiB every \(sampleEvery) commands: "
                  + samples.map { String(format: "%.0f", $0) }.joined(separator: " "))
            if lives % 2 == 0 {
                _ = send("QUIT")
                let status = process.finish()
                if status & 0x7F != 0 || (status >> 8) > 1 { problems.append("life \(lives): exit status \(status)") }
                cleanStops += 1
            } else {
                process.killNow()
                kills += 1
            }
        }
        // The last state, checked once more after a final restart.
        if problems.isEmpty {
            let process = try ShellProcess(binary: binary, arguments: ["--data", directory.path, "--json"], stderrPath: directory.path + "/../soak-stderr.txt")
            let found = model.check({ process.send($0) }, checks: &checks)
            problems += found.map { "final check: \($0)" }
            _ = process.send("QUIT")
            _ = process.finish()
        }
        let elapsed = Date().timeIntervalSince(start)
        print("SoakTests: \(Int(elapsed)) s, \(lives) process lives (\(kills) kill -9, \(cleanStops) clean), \(directories) directories, "
              + "\(commands) commands, \(checks) checks; peak RSS per life MiB: " + peaks.map { String(format: "%.0f", $0) }.joined(separator: " "))
        for problem in problems.prefix(20) { Issue.record("\(problem) (seed \(seed))") }
        #expect(problems.isEmpty)
        // Memory: a life's peak may grow with its data, but never without bound.
        #expect((peaks.max() ?? 0) < 1024, "a socialdb process passed 1 GiB resident")
    }
}
