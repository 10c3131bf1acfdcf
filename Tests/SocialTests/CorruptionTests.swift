import Foundation
import Social
import StorageEngine
import Testing
@testable import socialdb

/// Random bit flips and truncations in every kind of file of a data directory. Each one must be
/// detected: by `DataDirectoryCheck` (what `socialdb check` runs), naming the file (and the
/// offset where it can), and by opening the database: either the open fails with an error that
/// names the file, or it succeeds and every answer is the acknowledged data or an `io` error,
/// never damaged data. Derived files (timeline checkpoint, search files, the newest graph base)
/// must be rebuilt: the database opens and everything acknowledged is there.
/// `SOCIALDB_CORRUPTION_TRIALS` (default 48) sets how many corrupt copies are made.
@Suite struct CorruptionTests {
    /// Runs the `socialdb` binary with `arguments`; its exit status and standard output.
    static func runBinary(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: socialdbBinary())
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    enum Kind: String, CaseIterable {
        case logSegment = "log segment", checkpoints = "log checkpoints", manifest = "lsm manifest", table = "lsm table"
        case graphBase = "graph base", timeline = "timeline checkpoint", searchState = "search state", searchSegment = "search segment"

        static func of(_ relative: String) -> Kind? {
            if relative.hasPrefix("log/") && relative.hasSuffix(".log") { return .logSegment }
            if relative == "log/CHECKPOINTS" { return .checkpoints }
            if relative == "lsm/MANIFEST" { return .manifest }
            if relative.hasSuffix(".sst") { return .table }
            if relative.hasSuffix(".graph") { return .graphBase }
            if relative == "timeline/TIMELINE" { return .timeline }
            if relative == "search/search.state" { return .searchState }
            if relative.hasSuffix(".search") { return .searchSegment }
            return nil
        }

        /// Rebuilt at open rather than reported: derived data.
        var derived: Bool { self == .timeline || self == .searchState || self == .searchSegment }
    }

    static func files(in directory: String) -> [(String, Kind)] {
        var result: [(String, Kind)] = []
        for sub in ["log", "lsm", "graph", "timeline", "search"] {
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + sub)) ?? []).sorted() {
                if let kind = Kind.of(sub + "/" + name) { result.append((sub + "/" + name, kind)) }
            }
        }
        return result
    }

    /// Found by the test below: a list read that hit a damaged block (the counters of one of
    /// its tweets) dropped that tweet from the page instead of failing. Each table in turn gets
    /// its first data block damaged: every list answers whole or with `io`.
    @Test func aDamagedBlockNeverShortensAPage() throws {
        let work = TemporaryDirectory("corrupt-page")
        let pristine = work.path + "/pristine"
        var random = TortureRandom(seed: 7)
        do {
            let db = try PowerLossTests.open(pristine, faults: nil, random: &random)
            let shell = Shell(db: db, json: true)
            for line in ["USER ADD alice", "USER ADD bob", "FOLLOW bob alice", "POST alice \"one #x @bob\"", "POST alice \"two #x\"",
                         "LIKE bob 0", "POST alice \"three\""] { _ = shell.execute(line) }
            let ids = (shell.execute("TWEETS alice").flatMap { parseJSONLine($0.render(json: true)) }?["tweets"] as? [[String: Any]] ?? [])
            _ = shell.execute("LIKE bob \(ids.first?["id"] as? String ?? "0")")
            try db.close()
        }
        let tables = Self.files(in: pristine).filter { $0.1 == .table }.map(\.0)
        #expect(!tables.isEmpty)
        for table in tables {
            let copy = work.path + "/" + (table as NSString).lastPathComponent
            try FileManager.default.copyItem(atPath: pristine, toPath: copy)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: copy + "/" + table)))
            bytes[1] ^= 0x10
            try Data(bytes).write(to: URL(fileURLWithPath: copy + "/" + table))
            let db: SocialDB
            do {
                db = try PowerLossTests.open(copy, faults: nil, random: &random)
            } catch {
                // The open reads users and the newest tweets: refused, naming the table.
                #expect("\(error)".contains(table), "\(error)")
                continue
            }
            let send = PowerLossTests.sender(Shell(db: db, json: true))
            for (line, key, whole) in [("TWEETS alice", "tweets", 3), ("HOME bob", "tweets", 3), ("SEARCH #x", "tweets", 2),
                                       ("NOTIFICATIONS alice", "notifications", 2)] {
                guard let answer = send(line) else { continue }
                if answer["ok"] as? Bool == true {
                    #expect((answer[key] as? [Any])?.count == whole, "\(table) damaged: \(line) answered a short page \(answer)")
                } else {
                    #expect((answer["error"] as? [String: Any])?["code"] as? String == "io", "\(table) damaged: \(line): \(answer)")
                }
            }
            try? db.close()
        }
    }

    /// `socialdb check` itself: exit 0 and `"ok":true` on a sound directory; exit 1 and the
    /// file and offset of the damage when a byte of a table is flipped.
    @Test func checkCommandReportsDamage() throws {
        let work = TemporaryDirectory("check")
        let data = work.path + "/db"
        var random = TortureRandom(seed: 3)
        do {
            let db = try PowerLossTests.open(data, faults: nil, random: &random)
            let shell = Shell(db: db, json: true)
            for line in ["USER ADD alice", "POST alice hello", "USER ADD bob", "FOLLOW bob alice"] { _ = shell.execute(line) }
            try db.close()
        }
        func run(_ arguments: [String]) throws -> (Int32, String) { try Self.runBinary(arguments) }
        let (status, output) = try run(["check", "--data", data, "--json"])
        #expect(status == 0, "\(output)")
        let report = parseJSONLine(output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report?["ok"] as? Bool == true)
        #expect((report?["files_checked"] as? Int ?? 0) >= 6, "\(output)")
        let table = Self.files(in: data).first { $0.1 == .table }!.0
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: data + "/" + table)))
        bytes[3] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: data + "/" + table))
        let (damaged, text) = try run(["check", "--data", data])
        #expect(damaged == 1)
        #expect(text.contains("CORRUPT  \(table) at offset 0: block at offset 0 fails its checksum"), "\(text)")
        let (missing, _) = try run(["check", "--data", work.path + "/nowhere"])
        #expect(missing == 2)
    }

    /// `socialdb check --deep`: a graph adjacency list and a search posting list damaged under
    /// valid checksums (resealed, as a writer bug would leave them) pass the plain check, which
    /// trusts a list once its section checksum passes, and are reported by `--deep` with the
    /// file, the offset and a stable code.
    @Test func deepCheckFindsMalformedListsUnderValidChecksums() throws {
        let work = TemporaryDirectory("deep")
        let data = work.path + "/db"
        var random = TortureRandom(seed: 11)
        do {
            let db = try PowerLossTests.open(data, faults: nil, random: &random)
            let shell = Shell(db: db, json: true)
            let users = ["alice", "bob", "carol", "dave", "erin"]
            for u in users { _ = shell.execute("USER ADD \(u)") }
            for (i, u) in users.enumerated() where i > 0 { _ = shell.execute("FOLLOW \(u) alice") }
            for i in 0..<30 { _ = shell.execute("POST \(users[i % users.count]) \"deep check \(i) #t\(i % 3)\"") }
            try db.close()
        }
        func run(_ arguments: [String]) throws -> (Int32, [String: Any]?) {
            let (status, output) = try Self.runBinary(arguments)
            return (status, parseJSONLine(output.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let (sound, soundReport) = try run(["check", "--deep", "--json", "--data", data])
        #expect(sound == 0 && soundReport?["ok"] as? Bool == true && soundReport?["deep"] as? Bool == true, "\(soundReport ?? [:])")

        func reseal(_ path: String, footerBytes: Int, sections: Int, seeds: (UInt64, UInt64, UInt64),
                    _ edit: (UnsafeMutableRawBufferPointer, Int) -> Void) throws {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            bytes.withUnsafeMutableBytes { raw in
                let footer = raw.count - footerBytes
                edit(raw, footer)
                for i in 0..<sections {
                    let offset = Int(raw.loadLE(UInt64.self, at: footer + i * 24)), length = Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8))
                    raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), seed: seeds.1), at: footer + i * 24 + 16)
                }
                raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + footerBytes - 8)]), seed: seeds.2),
                            at: footer + footerBytes - 8)
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }
        var expected: [(file: String, code: String)] = []
        // The graph: a following list of one value (a follower of alice) made to name a user past the user count.
        let bases = Self.files(in: data).filter { $0.1 == .graphBase }.map(\.0)
        #expect(!bases.isEmpty, "a graph base was written")
        if let base = bases.last {
            try reseal(data + "/" + base, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                       seeds: (GraphFormat.headerSeed, GraphFormat.sectionSeed, GraphFormat.footerSeed)) { raw, footer in
                let lists = Int(raw.loadLE(UInt64.self, at: footer + 24))
                let users = Int(raw.loadLE(UInt64.self, at: 32))
                var target: Int?
                GraphFormat.forEachEntry(UnsafeRawBufferPointer(raw), direction: 0) { _, offset, _, degree in
                    if target == nil && degree == 1 { target = offset }
                }
                guard let target else {
                    Issue.record("no following list of one value in \(base)")
                    return
                }
                raw[lists + target] = UInt8(users + 3) // one varint byte: users < 100
            }
            expected.append((base, "graph-list-range"))
        }
        // Search: the first term's first document made past the segment's documents.
        let segments = Self.files(in: data).filter { $0.1 == .searchSegment }.map(\.0)
        if let segment = segments.last {
            try reseal(data + "/" + segment, footerBytes: SearchFormat.footerBytes, sections: SearchFormat.sectionCount,
                       seeds: (SearchFormat.headerSeed, SearchFormat.sectionSeed, SearchFormat.footerSeed)) { raw, footer in
                let terms = Int(raw.loadLE(UInt64.self, at: footer + 24)), postings = Int(raw.loadLE(UInt64.self, at: footer + 72))
                let documents = Int(raw.loadLE(UInt64.self, at: 24))
                let count = Int(raw.loadLE(UInt32.self, at: terms + 8))
                #expect(count <= 128 && documents + 3 < 128, "a one-block first term in a small segment")
                raw[postings + Int(raw.loadLE(UInt64.self, at: terms + 16))] = UInt8(documents + 3)
            }
            expected.append((segment, "search-postings-range"))
        }
        print("CorruptionTests.deep: damaged \(expected.map(\.file))")
        let (plain, plainReport) = try run(["check", "--json", "--data", data])
        #expect(plain == 0 && plainReport?["ok"] as? Bool == true, "the plain check trusts lists under valid checksums: \(plainReport ?? [:])")
        let (deep, deepReport) = try run(["check", "--deep", "--json", "--data", data])
        #expect(deep == 1 && deepReport?["ok"] as? Bool == false)
        let problems = (deepReport?["problems"] as? [[String: Any]]) ?? []
        for (file, code) in expected {
            #expect(problems.contains { $0["file"] as? String == file && $0["code"] as? String == code && $0["offset"] as? String != nil },
                    "\(file): \(code) expected in \(problems)")
        }
        #expect(problems.count == expected.count, "\(problems)")
    }

    @Test func everyCorruptionIsDetectedAndNeverReturnedAsData() throws {
        let trials = tortureEnvironmentInt("SOCIALDB_CORRUPTION_TRIALS", default: 48)
        let seed = tortureSeed()
        print("CorruptionTests seed \(seed), \(trials) trials")
        var random = TortureRandom(seed: seed)
        let work = TemporaryDirectory("corrupt")
        let pristine = work.path + "/pristine"
        var model = TortureModel(tokenPrefix: "c")
        do {
            let db = try PowerLossTests.open(pristine, faults: nil, random: &random)
            let send = PowerLossTests.sender(Shell(db: db, json: true))
            var problems: [String] = []
            for _ in 0..<120 { _ = tortureStep(&model, model.nextCommand(&random), send, problems: &problems) }
            #expect(problems.isEmpty, "\(problems)")
            try db.close()
        }
        #expect(DataDirectoryCheck.run(directory: pristine).isClean, "the pristine copy is sound")
        let all = Self.files(in: pristine)
        let kinds = Kind.allCases.filter { kind in all.contains { $0.1 == kind } }
        #expect(kinds.count == Kind.allCases.count, "every kind of file exists: \(kinds)")

        var made = 0, detectedByCheck = 0, refusedAtOpen = 0, rebuilt = 0, ioAnswers = 0
        var perKind: [String: (made: Int, detected: Int)] = [:]
        for trial in 0..<trials {
            let kind = kinds[trial % kinds.count]
            let candidates = all.filter { $0.1 == kind }.map(\.0)
            let relative = candidates[Int.random(in: 0..<candidates.count, using: &random)]
            let copy = work.path + "/trial-\(trial)"
            try FileManager.default.copyItem(atPath: pristine, toPath: copy)
            defer { try? FileManager.default.removeItem(atPath: copy) }
            let path = copy + "/" + relative
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            // Damage where the data is (a log segment is mostly preallocated zeros).
            let extent = (bytes.lastIndex { $0 != 0 } ?? 0) + 1
            let truncate = (trial / kinds.count) % 2 == 1
            let what: String
            if truncate {
                let size = Int.random(in: 0..<extent, using: &random)
                bytes.removeLast(bytes.count - size)
                what = "truncated to \(size) of \(extent) bytes"
            } else {
                let at = Int.random(in: 0..<extent, using: &random)
                let bit = Int.random(in: 0..<8, using: &random)
                bytes[at] ^= UInt8(1 << bit)
                what = "bit \(bit) flipped at offset \(at)"
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            made += 1
            let label = "trial \(trial) (seed \(seed)): \(relative) \(what)"

            // 1. The check names the file.
            let report = DataDirectoryCheck.run(directory: copy)
            let found = report.findings.contains { $0.file == path }
            if found { detectedByCheck += 1 } else { Issue.record("\(label): not detected by check; findings \(report.findings)") }
            perKind[kind.rawValue, default: (0, 0)].made += 1
            if found { perKind[kind.rawValue]!.detected += 1 }

            // 2. Opening it: refused with the file named, or every answer right or `io`.
            let db: SocialDB
            do {
                db = try PowerLossTests.open(copy, faults: nil, random: &random)
            } catch {
                let name = (relative as NSString).lastPathComponent
                if "\(error)".contains(name) || "\(error)".contains((relative as NSString).deletingLastPathComponent) {
                    refusedAtOpen += 1
                } else {
                    Issue.record("\(label): open failed without naming the file: \(error)")
                }
                if kind.derived { Issue.record("\(label): derived data, but the open failed: \(error)") }
                continue
            }
            defer { try? db.close() }
            let send = PowerLossTests.sender(Shell(db: db, json: true))
            var checks = 0
            var sawIO = 0
            let tolerant: TortureSend = { line in
                guard let answer = send(line) else { return nil }
                if answer["ok"] as? Bool == false, (answer["error"] as? [String: Any])?["code"] as? String == "io" {
                    sawIO += 1
                    return nil
                }
                return answer
            }
            let problems = model.check(tolerant, checks: &checks).filter { !$0.hasSuffix(": no answer") }
            ioAnswers += sawIO
            if !db.engine.logRecovery.isClean {
                // The log was cut at the damage and says so: what it held after is reported lost.
                refusedAtOpen += 1
                continue
            }
            if !problems.isEmpty {
                Issue.record("\(label): damaged data answered: \(problems.prefix(3))")
            } else if sawIO == 0 {
                rebuilt += 1
            }
            if kind.derived && sawIO > 0 { Issue.record("\(label): derived data not rebuilt (\(sawIO) io answers)") }
        }
        print("CorruptionTests: \(detectedByCheck) of \(made) corrupt files detected by check; at open: \(refusedAtOpen) refused or reported, "
              + "\(rebuilt) opened with every acknowledged write intact (derived files rebuilt or damage not on a read path), "
              + "\(ioAnswers) reads answered io")
        print("CorruptionTests per kind: " + perKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.detected)/\($0.value.made)" }.joined(separator: ", "))
        #expect(detectedByCheck == made)
    }
}
