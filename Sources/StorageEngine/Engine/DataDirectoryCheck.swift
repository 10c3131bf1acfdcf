#if canImport(Glibc)
import Glibc
#endif

/// What `socialdb check` finds in one file.
public struct CheckFinding: Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem, stable across versions (`CheckCode`, DeepCheck.swift).
    public var code: CheckCode
    /// The file, as a path under the data directory.
    public var file: String
    /// The byte offset the problem starts at, when one can be named (nil: the whole file).
    public var offset: UInt64?
    public var problem: String

    public init(_ code: CheckCode, file: String, offset: UInt64?, problem: String) {
        self.code = code
        self.file = file
        self.offset = offset
        self.problem = problem
    }

    public var description: String { "\(file)\(offset.map { " at offset \($0)" } ?? ""): \(problem) [\(code.rawValue)]" }
}

/// The result of verifying a data directory, read-only: every file of every kind, by checksum
/// and structure (see `DataDirectoryCheck.run`).
public struct CheckReport: Sendable {
    /// Each file verified, with its kind (`log segment`, `lsm table`, ...) and what it holds.
    public var files: [(path: String, kind: String, summary: String)] = []
    /// Problems: a non-empty list means the directory is damaged.
    public var findings: [CheckFinding] = []
    /// Facts that are not damage (segments recovery set aside, leftover temporary files).
    public var notes: [String] = []
    /// What the LSM tables hold, per key space (the first key byte; tables are cut where it
    /// changes), in key-space order.
    public var keySpaces: [KeySpaceUsage] = []

    public var isClean: Bool { findings.isEmpty }
}

/// The LSM tables of one key space: entries, their keys and values, and the bytes they take
/// in data blocks as built (`rawBlockBytes`) and as stored (`storedBlockBytes`, compressed or
/// not) and in whole files (filters, indexes and footers too).
public struct KeySpaceUsage: Sendable, Equatable {
    public var space: UInt8
    /// The key space's name (`KeySpace`), or its number.
    public var name: String
    public var tables = 0
    public var entries: UInt64 = 0
    /// Internal keys (user key and 8-byte trailer) and values, as written.
    public var keyBytes: UInt64 = 0
    public var valueBytes: UInt64 = 0
    public var blocks = 0
    public var compressedBlocks = 0
    public var rawBlockBytes: UInt64 = 0
    public var storedBlockBytes: UInt64 = 0
    public var fileBytes: UInt64 = 0

    public init(space: UInt8) {
        self.space = space
        name = KeySpace(rawValue: space).map { "\($0)" } ?? "space \(space)"
    }
}

/// Verifies a data directory without changing it (it takes no lock: run it on a directory no
/// process has open, or accept that files may change under it).
///
/// - `log/*.log`: the segment header (magic, version, checksum, first LSN = name), zero padding
///   to the first record, every record (checksum, type, length, consecutive LSNs across
///   segments), and zeros after the last record (anything else is a torn or corrupt tail).
/// - `log/CHECKPOINTS`: magic, version, checksum, structure.
/// - `lsm/MANIFEST` and every table it names: footer, filter, index and every data block by
///   checksum, every block's entries parsed, sizes and entry counts as the manifest says.
/// - `graph/base-*.graph`: header, footer and section checksums, bounds, index entries, degrees.
/// - `timeline/TIMELINE`: every block's checksum and kind, header first, trailer last, nothing after.
/// - `search/search.state` and every segment it names: checksums, bounds, segment numbers.
///
/// `deep` (`socialdb check --deep`) also decodes every adjacency list of each graph base and
/// every posting list and positions stream of each search segment with bounds-checked decoders
/// and checks their invariants (`GraphBase.deepVerify`, `FrozenSegment.deepVerify`): what a
/// checksum cannot catch when a writer bug (or a collision) left a malformed list under a valid
/// checksum. Its problems carry the `graph-list-*`, `graph-directions` and `search-*` codes.
public enum DataDirectoryCheck {
    /// Problems listed per file by the deep check; the rest are counted in a note.
    public static let deepProblemsPerFile = 16

    public static func run(directory: String, deep: Bool = false) -> CheckReport {
        var report = CheckReport()
        let fileSystem: FileSystem
        do { fileSystem = try FileSystem(backend: .posix) } catch {
            report.findings.append(CheckFinding(.unreadable, file: directory, offset: nil, problem: "\(error)"))
            return report
        }
        guard fileSystem.isDirectory(directory) else {
            report.findings.append(CheckFinding(.unreadable, file: directory, offset: nil, problem: "not a directory"))
            return report
        }
        checkLog(directory + "/log", fileSystem, &report)
        checkLSM(directory + "/lsm", fileSystem, &report)
        checkGraph(directory + "/graph", fileSystem, deep: deep, &report)
        checkTimeline(directory + "/timeline", fileSystem, &report)
        checkSearch(directory + "/search", fileSystem, deep: deep, &report)
        return report
    }

    private static func names(_ directory: String, _ fileSystem: FileSystem, _ report: inout CheckReport) -> [String] {
        guard fileSystem.isDirectory(directory) else { return [] }
        do { return try fileSystem.listDirectory(directory) } catch {
            report.findings.append(CheckFinding(.unreadable, file: directory, offset: nil, problem: "cannot list: \(error)"))
            return []
        }
    }

    private static func readAll(_ path: String, _ fileSystem: FileSystem, _ report: inout CheckReport) -> [UInt8]? {
        do {
            let image = try fileSystem.readWholeFile(path)
            defer { image.deallocate() }
            return Array(image)
        } catch {
            report.findings.append(CheckFinding(.unreadable, file: path, offset: nil, problem: "cannot read: \(error)"))
            return nil
        }
    }

    // MARK: Log

    static func checkLog(_ directory: String, _ fileSystem: FileSystem, _ report: inout CheckReport) {
        let all = names(directory, fileSystem, &report)
        let segments = all.compactMap { name in LogFormat.firstLSN(ofSegmentNamed: name).map { (name, $0) } }.sorted { $0.1 < $1.1 }
        var expectedNext: UInt64?
        for (name, firstLSN) in segments {
            let path = directory + "/" + name
            if let expectedNext, expectedNext != firstLSN {
                report.findings.append(CheckFinding(.logSequence, file: path, offset: nil,
                                                    problem: "starts at LSN \(firstLSN), the segment before ends at \(expectedNext - 1)"))
            }
            let (records, next) = checkSegment(path, firstLSN: firstLSN, fileSystem, &report)
            report.files.append((path, "log segment", "\(records) records, LSN \(firstLSN)...\(next - 1)"))
            expectedNext = next
        }
        for name in all where name.contains(".corrupt-") {
            report.notes.append("\(directory)/\(name): set aside by an earlier recovery (never read again)")
        }
        if all.contains(CheckpointFile.name) {
            let path = directory + "/" + CheckpointFile.name
            if let bytes = readAll(path, fileSystem, &report) {
                switch CheckpointFile.decode(bytes) {
                case .success(let checkpoints):
                    report.files.append((path, "log checkpoints", checkpoints.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
                    // A consumer never checkpoints past the durable end: a log that ends before a
                    // checkpoint lost records (a segment cut at a record boundary, or removed).
                    let last = (expectedNext ?? 1) - 1
                    for (name, lsn) in checkpoints where lsn > last {
                        let segment = segments.last.map { directory + "/" + $0.0 } ?? directory
                        report.findings.append(CheckFinding(.logMissingRecords, file: segment, offset: nil,
                                                            problem: "the log ends at LSN \(last), but consumer \(name) has checkpointed LSN \(lsn): records are missing"))
                    }
                case .failure(let error):
                    report.findings.append(CheckFinding(.logCheckpoints, file: path, offset: nil, problem: "\(error)"))
                }
            }
        }
        for name in all where name.hasSuffix(".tmp") { report.notes.append("\(directory)/\(name): a leftover temporary file") }
    }

    /// Verifies one segment; returns its record count and the LSN after its last record.
    static func checkSegment(_ path: String, firstLSN: UInt64, _ fileSystem: FileSystem, _ report: inout CheckReport) -> (Int, UInt64) {
        let file: File
        do { file = try fileSystem.open(path, .readOnlyAccess) } catch {
            report.findings.append(CheckFinding(.unreadable, file: path, offset: nil, problem: "cannot open: \(error)"))
            return (0, firstLSN)
        }
        defer { file.close() }
        do {
            let size = try file.size()
            guard size >= UInt64(LogFormat.firstRecordOffset) else {
                report.findings.append(CheckFinding(.logSegment, file: path, offset: size, problem: "truncated: \(size) bytes, shorter than the segment header page"))
                return (0, firstLSN)
            }
            var page = [UInt8](repeating: 0, count: LogFormat.firstRecordOffset)
            var failure: IOError?
            page.withUnsafeMutableBytes { raw in
                do throws(IOError) { try file.readExactly(into: raw, at: 0) } catch { failure = error }
            }
            if let failure { throw failure }
            if let problem = page.withUnsafeBytes({ LogFormat.checkSegmentHeader($0, expectedFirstLSN: firstLSN) }) {
                report.findings.append(CheckFinding(.logSegment, file: path, offset: 0, problem: "segment header: \(problem)"))
                return (0, firstLSN)
            }
            if let i = page.withUnsafeBytes({ SegmentScanner.firstNonZeroByte($0, from: LogFormat.segmentHeaderBytes) }) {
                report.findings.append(CheckFinding(.logSegment, file: path, offset: UInt64(i), problem: "non-zero byte in the header page's padding"))
            }
            var scanner = SegmentScanner(file: file, fileSize: size, firstLSN: firstLSN)
            var records = 0
            var next = firstLSN
            scan: while true {
                switch try scanner.next() {
                case .record(let lsn, _, _):
                    records += 1
                    next = lsn + 1
                case .end:
                    let extent = try scanner.nonZeroExtent(from: scanner.offset)
                    if extent > 0 {
                        report.findings.append(CheckFinding(.logSegment, file: path, offset: scanner.offset,
                                                            problem: "\(extent) bytes of data after the last valid record (a torn write or a corrupt record; recovery drops them)"))
                    }
                    break scan
                case .problem(let what):
                    report.findings.append(CheckFinding(.logSegment, file: path, offset: scanner.offset,
                                                        problem: "\(what) (recovery cuts the log here and sets later segments aside)"))
                    break scan
                }
            }
            return (records, next)
        } catch {
            report.findings.append(CheckFinding(.unreadable, file: path, offset: nil, problem: "cannot read: \(error)"))
            return (0, firstLSN)
        }
    }

    // MARK: LSM

    static func checkLSM(_ directory: String, _ fileSystem: FileSystem, _ report: inout CheckReport) {
        let all = names(directory, fileSystem, &report)
        guard all.contains("MANIFEST") else {
            let tables = all.filter { TableFormat.parseFileName($0) != nil }
            if !tables.isEmpty {
                report.findings.append(CheckFinding(.lsmManifest, file: directory + "/MANIFEST", offset: nil, problem: "missing, with \(tables.count) tables present"))
            }
            return
        }
        let state: ManifestState
        do {
            guard let read = try Manifest.read(directory: directory, fileSystem: fileSystem) else { return }
            state = read
        } catch {
            report.findings.append(finding(error, path: directory + "/MANIFEST", code: .lsmManifest))
            return
        }
        let tables = state.levels.enumerated().flatMap { level, metas in metas.map { (level, $0) } }
        report.files.append((directory + "/MANIFEST", "lsm manifest", "\(tables.count) tables, covered LSN \(state.coveredLSN)"))
        let cache = BlockCache(capacityBytes: 0)
        var usage: [UInt8: KeySpaceUsage] = [:]
        for (level, meta) in tables {
            let path = directory + "/" + TableFormat.fileName(meta.number)
            do throws(LSMError) {
                let table = try Table(meta: meta, directory: directory, fileSystem: fileSystem, cache: cache, mapped: false)
                let space = meta.smallest.first ?? 0
                var u = usage[space] ?? KeySpaceUsage(space: space)
                var raw: UInt64 = 0
                var compressed = 0
                for i in 0..<table.blockCount {
                    // Every block passes its checksum (over the stored bytes) and, when
                    // compressed, decompresses to the size it states.
                    let block = try table.block(i)
                    var cursor = BlockCursor(block)
                    cursor.seekToFirst()
                    while cursor.isValid {
                        u.keyBytes += UInt64(cursor.key.count)
                        u.valueBytes += UInt64(cursor.value.count)
                        cursor.next()
                    }
                    if cursor.corrupt { throw LSMError.corrupt(file: path, detail: "malformed entries in the data block at offset \(table.blockOffsets[i])") }
                    raw += UInt64(block.raw.count)
                    if table.blockTypes[i] != BlockCompressionType.none.rawValue { compressed += 1 }
                }
                u.tables += 1
                u.entries += meta.entries
                u.blocks += table.blockCount
                u.compressedBlocks += compressed
                u.rawBlockBytes += raw
                u.storedBlockBytes += table.blockSizes.reduce(0) { $0 + UInt64($1) }
                u.fileBytes += meta.fileBytes
                usage[space] = u
                report.files.append((path, "lsm table", "level \(level), \(meta.entries) entries, \(table.blockCount) blocks"
                    + " (\(compressed) compressed), format version \(table.formatVersion)"))
            } catch {
                report.findings.append(finding(error, path: path, code: .lsmTable))
            }
        }
        report.keySpaces = usage.keys.sorted().map { usage[$0]! }
        let live = Set(tables.map { $0.1.number })
        for name in all {
            if let number = TableFormat.parseFileName(name), !live.contains(number) {
                report.notes.append("\(directory)/\(name): not in the manifest (a leftover of an interrupted flush or compaction; removed at open)")
            }
        }
    }

    private static func finding(_ error: LSMError, path: String, code: CheckCode) -> CheckFinding {
        switch error {
        case .corrupt(let file, let detail):
            return CheckFinding(code, file: file, offset: offset(in: detail), problem: detail)
        default:
            return CheckFinding(code, file: path, offset: nil, problem: "\(error)")
        }
    }

    /// The number after "offset " in a message, if any.
    static func offset(in message: String) -> UInt64? {
        let bytes = Array(message.utf8)
        let word = Array("offset ".utf8)
        guard bytes.count > word.count else { return nil }
        for start in 0...(bytes.count - word.count) where bytes[start..<(start + word.count)].elementsEqual(word) {
            let digits = bytes[(start + word.count)...].prefix { $0 >= 48 && $0 <= 57 }
            if !digits.isEmpty { return UInt64(String(decoding: digits, as: UTF8.self)) }
        }
        return nil
    }

    // MARK: Graph

    static func checkGraph(_ directory: String, _ fileSystem: FileSystem, deep: Bool = false, _ report: inout CheckReport) {
        let all = names(directory, fileSystem, &report)
        for name in all {
            let path = directory + "/" + name
            guard GraphFormat.generation(ofFileNamed: name) != nil else {
                if name.hasSuffix(".corrupt") { report.notes.append("\(path): set aside by an earlier open") }
                if name.hasSuffix(GraphFormat.temporarySuffix) { report.notes.append("\(path): a leftover temporary file") }
                continue
            }
            guard let bytes = readAll(path, fileSystem, &report) else { continue }
            if let problem = bytes.withUnsafeBytes({ GraphBase.verify($0) }) {
                report.findings.append(CheckFinding(.graphBase, file: path, offset: offset(in: problem), problem: problem))
            } else if !deep || addDeep(bytes.withUnsafeBytes { GraphBase.deepVerify($0, limit: deepProblemsPerFile) }, path, &report) {
                let users = bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: 32) }
                let edges = bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: 40) }
                report.files.append((path, "graph base", "\(users) users, \(edges) edges" + (deep ? ", every list decoded" : "")))
            }
        }
    }

    /// Adds a deep check's problems to the report; returns whether there were none.
    private static func addDeep(_ result: (problems: [DeepProblem], omitted: Int), _ path: String, _ report: inout CheckReport) -> Bool {
        for problem in result.problems {
            report.findings.append(CheckFinding(problem.code, file: path, offset: UInt64(problem.offset), problem: problem.detail))
        }
        if result.omitted > 0 { report.notes.append("\(path): \(result.omitted) more problems not listed") }
        return result.problems.isEmpty
    }

    // MARK: Timeline

    static func checkTimeline(_ directory: String, _ fileSystem: FileSystem, _ report: inout CheckReport) {
        let path = directory + "/" + TimelineFormat.fileName
        guard fileSystem.exists(path) else { return }
        do throws(TimelineError) {
            let file: File
            do { file = try fileSystem.open(path, .readOnlyAccess) } catch { throw .io(error) }
            defer { file.close() }
            var reader: TimelineBlockReader
            do { reader = try TimelineBlockReader(file: file) } catch { throw .io(error) }
            var blocks = 0
            var last: TimelineFormat.Kind?
            while !reader.atEnd {
                let at = reader.offset
                let kind = try reader.next()
                if blocks == 0 && kind != .header { throw .corrupt("\(path): the first block (offset \(at)) is not the header") }
                if last == .trailer { throw .corrupt("\(path): a block after the trailer at offset \(at)") }
                last = kind
                blocks += 1
            }
            guard last == .trailer else { throw .corrupt("\(path): no trailer block (the file is cut short at offset \(reader.offset))") }
            report.files.append((path, "timeline checkpoint", "\(blocks) blocks, \(reader.size) bytes"))
        } catch {
            let text = "\(error)"
            report.findings.append(CheckFinding(.timeline, file: path, offset: offset(in: text), problem: text))
        }
    }

    // MARK: Search

    static func checkSearch(_ directory: String, _ fileSystem: FileSystem, deep: Bool = false, _ report: inout CheckReport) {
        let all = names(directory, fileSystem, &report)
        var named = Set<UInt64>()
        if all.contains(SearchFormat.stateFileName) {
            let path = directory + "/" + SearchFormat.stateFileName
            if let bytes = readAll(path, fileSystem, &report) {
                if let state = bytes.withUnsafeBytes({ SearchIndex.decodeState($0) }) {
                    named = Set(state.segments)
                    report.files.append((path, "search state", "\(state.segments.count) segments, \(state.tombstones.count) tombstones, \(state.users.count) users"))
                } else {
                    report.findings.append(CheckFinding(.searchState, file: path, offset: nil, problem: "the state file fails its checksum or structure checks"))
                }
            }
        }
        for name in all {
            guard let number = SearchFormat.segmentNumber(ofFileNamed: name) else {
                if name.hasSuffix(".tmp") { report.notes.append("\(directory)/\(name): a leftover temporary file") }
                continue
            }
            let path = directory + "/" + name
            if !named.contains(number) {
                report.notes.append("\(path): not named by search.state (removed at open)")
                continue
            }
            guard let bytes = readAll(path, fileSystem, &report) else { continue }
            if let problem = bytes.withUnsafeBytes({ FrozenSegment.verify($0) }) {
                report.findings.append(CheckFinding(.searchSegment, file: path, offset: offset(in: problem), problem: problem))
            } else if bytes.withUnsafeBytes({ $0.loadLE(UInt64.self, at: 16) }) != number {
                report.findings.append(CheckFinding(.searchSegment, file: path, offset: 16, problem: "the header names another segment number"))
            } else if !deep || addDeep(bytes.withUnsafeBytes { FrozenSegment.deepVerify($0, limit: deepProblemsPerFile) }, path, &report) {
                let documents = bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: 24) }
                report.files.append((path, "search segment", "\(documents) documents" + (deep ? ", every list decoded" : "")))
            }
        }
        for number in named.sorted() where !all.contains(SearchFormat.segmentFileName(number)) {
            report.findings.append(CheckFinding(.searchSegmentMissing, file: directory + "/" + SearchFormat.segmentFileName(number), offset: nil,
                                                problem: "named by search.state but missing"))
        }
    }
}
