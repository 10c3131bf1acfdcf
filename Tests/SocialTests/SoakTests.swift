import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Soak (issue 10): the torture workload (every write command, through the real `socialdb`
/// binary with `--json`) with periodic checkpoints (`--checkpoint-records`) and restarts,
/// alternately clean (QUIT) and kill -9. Each process life runs `lifeCommands` commands, samples
/// the child's memory every `sampleEvery` commands, and checks every invariant of the torture
/// model mid-life and after each restart. A fresh data directory starts when the model holds
/// `tweetsPerDirectory` tweets (the checks read whole lists).
///
/// In the default suite it is short: `SOCIALDB_SOAK_LIVES` (4) lives of 500 commands. With
/// `SOCIALDB_SOAK_SECONDS` set (scripts/soak: a few minutes by default, an hour with
/// `--minutes 60`) it runs lives of 3000 commands until that time has passed. `SOCIALDB_SEED`
/// replays a run.
///
/// Memory must stay flat (`memoryProblems`): anonymous memory (the heap: what a leak grows;
/// file pages of the mapped tables and the page cache come and go with the kernel's reclaim and
/// the data files, so they are left out) may grow within a life, after its first third (caches
/// warming, the first reads), only by a slack plus an allowance per tweet added; and the growth
/// of later lives must not trend above that of the early ones. The first life is the warm-up
/// and is not judged. Nothing is timed: lives are counted in commands.
///
/// Under AddressSanitizer (scripts/sanitize) the child runs with `quarantine_size_mb=0`: ASan
/// otherwise keeps every freed chunk unusable in a quarantine of up to 256 MiB, so the heap grows
/// by every byte a check's reads free (25 to 53 MiB a life in the run that found it) and the
/// rule measures the quarantine, not the program. Without it the lives stay flat under ASan
/// too (1 to 2 MiB of growth a life); the other children keep the quarantine's use-after-free
/// detection.
@Suite struct SoakTests {
    static let timed = ProcessInfo.processInfo.environment["SOCIALDB_SOAK_SECONDS"] != nil

    /// The resident set and its anonymous part of a process in MiB, from /proc/<pid>/status.
    static func memoryMiB(_ pid: pid_t) -> (resident: Double, anonymous: Double)? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var resident: Double?
        var anonymous: Double?
        for line in status.split(separator: "\n") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first
            if line.hasPrefix("VmRSS:") { resident = kb.map { $0 / 1024 } }
            if line.hasPrefix("RssAnon:") { anonymous = kb.map { $0 / 1024 } }
        }
        guard let resident, let anonymous else { return nil }
        return (resident, anonymous)
    }

    struct MemorySample: Equatable {
        /// Commands run in this life so far.
        var command: Int
        var residentMiB: Double
        var anonymousMiB: Double
        /// Tweets the model holds (the data a life's memory may grow with).
        var tweets: Int
    }

    struct Life {
        var number: Int
        var samples: [MemorySample]
    }

    /// The bounds of `memoryProblems`, from measured lives: the heap of a `socialdb` process
    /// running this workload is 2 to 8 MiB, and a life grows it by 0.1 to 1.3 MiB after its
    /// first third, in steps of about 1 MiB (buffers and arena chunks), about 5 to 8 KiB per
    /// tweet added. With these bounds a 500-command life (the default suite) fails on a leak of
    /// about 32 KiB per command and more, a 3000-command life (scripts/soak) on about 12 KiB.
    struct MemoryBounds {
        /// Growth allowed in any judged life, after its first third, whatever the data.
        var slackMiB = 8.0
        /// Allowed on top per tweet added after the first third (twice what was measured).
        var perTweetKiB = 16.0
        /// With at least `trendLives` judged lives, the late third of them may grow on average
        /// at most `trendFactor` times as much as the early third, plus `trendSlackMiB` (a leak
        /// that rises with the data or the run, before it passes the per-life bound).
        var trendLives = 6
        var trendFactor = 1.5
        var trendSlackMiB = 3.0
    }

    /// What breaks the flat-memory rule, as readable lines (empty: flat). Lives before
    /// `warmUpLives` are not judged; lives with fewer than 3 samples neither.
    static func memoryProblems(_ lives: [Life], warmUpLives: Int = 1, bounds: MemoryBounds = MemoryBounds()) -> [String] {
        var problems: [String] = []
        var growths: [Double] = []
        for life in lives.dropFirst(warmUpLives) where life.samples.count >= 3 {
            let from = life.samples[life.samples.count / 3]
            let to = life.samples[life.samples.count - 1]
            let growth = to.anonymousMiB - from.anonymousMiB
            let allowed = bounds.slackMiB + bounds.perTweetKiB * Double(max(0, to.tweets - from.tweets)) / 1024
            if growth > allowed {
                problems.append("life \(life.number): anonymous memory grew \(String(format: "%.1f", growth)) MiB from command "
                                + "\(from.command) to \(to.command) with \(to.tweets - from.tweets) tweets added (allowed \(String(format: "%.1f", allowed)))")
            }
            growths.append(max(0, growth))
        }
        // A leak that grows with the data or with time shows as growth trending up.
        if growths.count >= bounds.trendLives {
            let third = max(1, growths.count / 3)
            let early = growths.prefix(third).reduce(0, +) / Double(third)
            let late = growths.suffix(third).reduce(0, +) / Double(third)
            if late > bounds.trendFactor * early + bounds.trendSlackMiB {
                problems.append("memory growth per life trends up: \(String(format: "%.1f", early)) MiB in the early lives, "
                                + "\(String(format: "%.1f", late)) MiB in the late ones")
            }
        }
        return problems
    }

    /// The child's environment: no ASan quarantine (see the suite's comment; ignored by
    /// builds without ASan).
    static var childEnvironment: [String: String] {
        let options = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] ?? ""
        return ["ASAN_OPTIONS": (options.isEmpty ? "" : options + ":") + "quarantine_size_mb=0"]
    }

    @Test func mixedWorkloadWithCheckpointsAndRestarts() throws {
        let seconds = tortureEnvironmentInt("SOCIALDB_SOAK_SECONDS", default: 0)
        let livesMax = Self.timed ? Int.max : tortureEnvironmentInt("SOCIALDB_SOAK_LIVES", default: 4)
        let lifeCommands = tortureEnvironmentInt("SOCIALDB_SOAK_LIFE_COMMANDS", default: Self.timed ? 3000 : 500)
        let sampleEvery = Self.timed ? 250 : 50, checkEvery = Self.timed ? 1000 : 250, tweetsPerDirectory = 2500
        let binary = socialdbBinary()
        signal(SIGPIPE, SIG_IGN)
        let seed = tortureSeed()
        print("SoakTests seed \(seed), " + (Self.timed ? "\(seconds) seconds" : "\(livesMax) lives") + ", \(lifeCommands) commands per process life")
        var random = TortureRandom(seed: seed)
        let start = Date()
        var directory = TemporaryDirectory("soak")
        var model = TortureModel(tokenPrefix: "s0")
        var directories = 1, lives = 0, commands = 0, checks = 0, kills = 0, cleanStops = 0
        var problems: [String] = []
        var peaks: [Double] = []
        var memory: [Life] = []
        func more() -> Bool { Self.timed ? Date().timeIntervalSince(start) < Double(seconds) : lives < livesMax }

        soak: while more() {
            if model.tweets.count >= tweetsPerDirectory {
                directory = TemporaryDirectory("soak")
                directories += 1
                model = TortureModel(tokenPrefix: "s\(directories)")
            }
            let arguments = ["--data", directory.path, "--json", "--checkpoint-seconds", "0",
                             "--checkpoint-records", String(Int.random(in: 100...400, using: &random))]
            let process = try ShellProcess(binary: binary, arguments: arguments, stderrPath: directory.path + "/../soak-stderr.txt",
                                           environment: Self.childEnvironment)
            let send: TortureSend = { process.send($0) }
            lives += 1
            guard send("STATS") != nil else { problems.append("life \(lives): socialdb did not start"); break }
            if lives > 1 {
                let found = model.check(send, checks: &checks)
                if !found.isEmpty { problems += found.map { "after restart \(lives): \($0)" }; break }
            }
            var samples: [MemorySample] = []
            for i in 1...lifeCommands {
                let command = model.nextCommand(&random)
                let (answered, _) = tortureStep(&model, command, send, problems: &problems)
                commands += 1
                if !answered { problems.append("life \(lives): socialdb died at \(command.line)"); break soak }
                if i % sampleEvery == 0, let m = Self.memoryMiB(process.pid) {
                    samples.append(MemorySample(command: i, residentMiB: m.resident, anonymousMiB: m.anonymous, tweets: model.tweets.count))
                }
                if i % checkEvery == 0 {
                    let found = model.check(send, checks: &checks)
                    if !found.isEmpty { problems += found.map { "life \(lives), command \(i): \($0)" }; break soak }
                }
                if model.tweets.count >= tweetsPerDirectory || (Self.timed && Date().timeIntervalSince(start) >= Double(seconds)) { break }
            }
            if let peak = samples.map(\.residentMiB).max() { peaks.append(peak) }
            memory.append(Life(number: lives, samples: samples))
            print("life \(lives) (directory \(directories), \(model.tweets.count) tweets): MiB resident/anonymous every \(sampleEvery) commands: "
                  + samples.map { String(format: "%.0f/%.1f", $0.residentMiB, $0.anonymousMiB) }.joined(separator: " "))
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
            let process = try ShellProcess(binary: binary, arguments: ["--data", directory.path, "--json"], stderrPath: directory.path + "/../soak-stderr.txt",
                                           environment: Self.childEnvironment)
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
        // Memory: a life's peak may grow with its data, but never without bound, and the heap
        // stays flat (see `memoryProblems`).
        #expect((peaks.max() ?? 0) < 1024, "a socialdb process passed 1 GiB resident")
        let memoryFindings = Self.memoryProblems(memory)
        for finding in memoryFindings { Issue.record("\(finding) (seed \(seed))") }
        #expect(memoryFindings.isEmpty)
    }

    /// The flat-memory rule itself, on made-up lives: flat lives and lives that grow with their
    /// data pass; a leak per command, or growth that rises from life to life, fails.
    @Test func memoryRuleCatchesLeaksAndNotData() {
        func life(_ number: Int, start: Double, perSample: Double, tweetsPerSample: Int = 10, samples: Int = 10) -> Life {
            Life(number: number, samples: (0..<samples).map { i in
                MemorySample(command: (i + 1) * 50, residentMiB: 0, anonymousMiB: start + perSample * Double(i), tweets: 100 + tweetsPerSample * i)
            })
        }
        // Flat, with noise of a few MiB up and down.
        let flat = (1...9).map { life($0, start: 40 + Double($0 % 3), perSample: $0 % 2 == 0 ? 0.4 : -0.3) }
        #expect(Self.memoryProblems(flat).isEmpty)
        // Growing with the data: 8 KiB a tweet (as measured), 200 tweets a sample.
        let data = (1...9).map { life($0, start: 40, perSample: 200 * 8 / 1024, tweetsPerSample: 200) }
        #expect(Self.memoryProblems(data).isEmpty)
        // The warm-up life may do anything.
        #expect(Self.memoryProblems([life(1, start: 10, perSample: 30)] + flat.dropFirst()).isEmpty)
        // A leak of 40 KiB per command (about 2 MiB a sample of 50 commands), few tweets.
        let leak = (1...6).map { life($0, start: 40, perSample: 50 * 40 / 1024, tweetsPerSample: 2) }
        #expect(Self.memoryProblems(leak).count == 5, "every judged life")
        // Growth that rises life by life (each within the per-life bound): a trend.
        let rising = (1...10).map { life($0, start: 40, perSample: Double($0 - 1) * 0.14, tweetsPerSample: 0) }
        let found = Self.memoryProblems(rising)
        #expect(found.count == 1 && found.first?.contains("trends up") == true, "\(found)")
    }
}
