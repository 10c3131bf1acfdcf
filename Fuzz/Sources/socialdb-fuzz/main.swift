import Foundation
import FuzzSupport
@testable import Social
@testable import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

// socialdb-fuzz: libFuzzer targets for every on-disk decoder and the import parsers. Every target
// must return normally whatever the input: a rejection is an error value, never a trap; a hang
// is caught by libFuzzer's -timeout; ASan catches reads outside the input. See Fuzz/README.md.

let fileSystem = try! FileSystem(backend: .posix)

/// The input without its first byte, and whether that byte asks for checksum repair (`Fixup`).
func split(_ input: UnsafeRawBufferPointer) -> (fix: Bool, body: [UInt8])? {
    guard input.count >= 1 else { return nil }
    return (input[0] & 1 != 0, Array(input[1...]))
}

/// Seeds from files of the sample directory: each prefixed with a mode byte (0 and 1).
func seeds(_ files: [String], limit: Int = 1 << 16, transform: ([UInt8]) -> [UInt8] = { $0 }) -> [[UInt8]] {
    var out: [[UInt8]] = []
    for path in files {
        guard let bytes = readFile(path) else { continue }
        let body = transform(bytes)
        guard body.count <= limit else { continue }
        out.append([0] + body)
        out.append([1] + body)
    }
    return out
}

func files(_ folder: String, _ accept: (String) -> Bool) -> [String] {
    ((try? fileSystem.listDirectory(folder)) ?? []).filter(accept).sorted().map { folder + "/" + $0 }
}

// MARK: log

/// A segment file: a valid header page, then the input's records (repaired or not); verified as
/// `socialdb check` does and scanned as recovery does, every record's payload decoded into events.
func logSegment(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var region)? = split(input) else { return }
    if fix { Fixup.logRecords(&region, firstLSN: 1) }
    var bytes = [UInt8](repeating: 0, count: LogFormat.firstRecordOffset)
    bytes.withUnsafeMutableBytes { LogFormat.encodeSegmentHeader(firstLSN: 1, into: $0) }
    bytes += region
    let path = scratchFolder + "/" + LogFormat.segmentName(firstLSN: 1)
    bytes.withUnsafeBytes { writeFile(path, $0) }
    var report = CheckReport()
    let (records, next) = DataDirectoryCheck.checkSegment(path, firstLSN: 1, fileSystem, &report)
    if next != 1 + UInt64(records) { fuzzFailure("check counted \(records) records but ends at LSN \(next)") }
    let file = try! fileSystem.open(path, .readOnlyAccess)
    defer { file.close() }
    var scanner = SegmentScanner(file: file, fileSize: UInt64(bytes.count), firstLSN: 1)
    var scanned = 0
    while case .record(let lsn, let type, let payload)? = try? scanner.next() {
        scanned += 1
        if lsn != UInt64(scanned) { fuzzFailure("record \(scanned) has LSN \(lsn)") }
        if payload.count > bytes.count { fuzzFailure("payload larger than the file") }
        _ = try? SocialEvent.decode(type: type, payload: payload)
    }
    if scanned != records { fuzzFailure("scanner read \(scanned) records, check \(records)") }
}

/// One log record's payload, as the consumers decode it: the first two bytes are the type.
func logPayload(_ input: UnsafeRawBufferPointer) {
    guard input.count >= 2 else { return }
    let type = input.loadLE(UInt16.self, at: 0)
    let payload = UnsafeRawBufferPointer(rebasing: input[2...])
    _ = try? SocialEvent.decode(type: type, payload: payload)
    if type == LSMOptions().logRecordType {
        _ = try? WriteBatch.forEachEntry(inLogPayload: payload) { _, _, key, value in
            if key.count > payload.count || value.count > payload.count { fuzzFailure("entry larger than its payload") }
        }
    }
}

// MARK: LSM

/// One SSTable block (the bytes after its checksum passed): every cursor move and point lookup
/// stays inside the block and ends.
func tableBlock(_ input: UnsafeRawBufferPointer) {
    let bytes = Array(input)
    bytes.withUnsafeBytes { raw in
        guard let block = try? Block(viewing: raw, owner: Holder(), file: "fuzz") else { return }
        var forward = 0
        var cursor = BlockCursor(block, keyBuffer: KeyBuffer(backSlots: true))
        cursor.seekToFirst()
        var keys: [[UInt8]] = []
        while cursor.isValid {
            forward += 1
            if forward > raw.count { fuzzFailure("more entries than bytes") }
            if keys.count < 8 { keys.append(Array(cursor.key)) }
            _ = cursor.value.count
            cursor.next()
        }
        cursor.seekToLast()
        var backward = 0
        while cursor.isValid {
            backward += 1
            if backward > raw.count { fuzzFailure("more entries than bytes, backwards") }
            cursor.previous()
        }
        // Forwards and backwards may disagree on a block whose restart offsets do not fall on
        // entry boundaries: its checksum is what guards against that (a writer never makes one).
        keys.append([UInt8](repeating: 0xFF, count: 9))
        keys.append([UInt8](repeating: 0, count: 8))
        for key in keys where key.count >= 8 {
            key.withUnsafeBytes { k in
                cursor.seek(k)
                let user = UnsafeRawBufferPointer(rebasing: k[..<(k.count - 8)])
                if let found = try? block.locate(target: k, user: user, file: "fuzz") {
                    if found.valueStart < 0 || found.valueStart + found.valueCount > block.restartsOffset { fuzzFailure("value outside the block") }
                    _ = block.value(found).count
                }
            }
        }
    }
}

/// A whole table file (footer, filter, index, data blocks), opened as the tree opens one and
/// every block read and walked as `socialdb check` does.
func tableFile(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix { Fixup.table(&bytes) }
    let folder = scratchFolder + "/lsm"
    mkdir(folder, 0o755)
    bytes.withUnsafeBytes { writeFile(folder + "/" + TableFormat.fileName(1), $0) }
    let entries = bytes.count >= TableFormat.footerBytes ? Fixup.loadLE(bytes, bytes.count - TableFormat.footerBytes + 40, UInt64.self) : 0
    let meta = TableMeta(number: 1, fileBytes: UInt64(bytes.count), entries: entries, smallest: [UInt8](repeating: 0, count: 8), largest: [UInt8](repeating: 0xFF, count: 16))
    for mapped in [false, true] {
        guard let table = try? Table(meta: meta, directory: folder, fileSystem: fileSystem, cache: BlockCache(capacityBytes: 1 << 20), mapped: mapped) else { return }
        for i in 0..<table.blockCount {
            guard let block = try? table.block(i) else { continue }
            var cursor = BlockCursor(block)
            cursor.seekToFirst()
            var n = 0
            while cursor.isValid {
                n += 1
                if n > bytes.count { fuzzFailure("more entries than bytes") }
                cursor.next()
            }
        }
        [UInt8](repeating: 0x41, count: 12).withUnsafeBytes { k in
            _ = table.blockIndex(for: k)
            _ = table.mayContain(hash: BloomFilter.hash(UnsafeRawBufferPointer(rebasing: k[..<4])))
        }
    }
}

/// The LSM manifest: every table it lists is decoded, and the state round-trips.
func manifest(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix { Fixup.trailing(&bytes, seed: Checksum.Seed.manifest.rawValue) }
    guard let state = try? Manifest.decode(bytes, path: "MANIFEST") else { return }
    let tables = state.levels.reduce(0) { $0 + $1.count }
    if tables != Int(Fixup.loadLE(bytes, 56, UInt32.self)) { fuzzFailure("manifest names \(Fixup.loadLE(bytes, 56, UInt32.self)) tables, decoded \(tables)") }
    // Tables may be listed in any level order; the decoded state must survive a round trip.
    if (try? Manifest.decode(Manifest.encode(state), path: "MANIFEST")) != state { fuzzFailure("manifest does not round-trip") }
}

/// A tweet record (the tweet store's value).
func tweetRecord(_ input: UnsafeRawBufferPointer) {
    guard let record = try? TweetRecord.decode(input) else { return }
    if record.text.utf8.count > input.count { fuzzFailure("decoded text longer than the record") }
    _ = try? TweetRecord.decode(record.encoded())
    _ = UserRecord.decode(input)
}

// MARK: log checkpoints

func checkpoints(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix { Fixup.trailing(&bytes, seed: Checksum.Seed.checkpointFile.rawValue) }
    guard case .success(let decoded) = CheckpointFile.decode(bytes) else { return }
    if decoded.count > bytes.count / 10 { fuzzFailure("more checkpoints than the bytes can hold") }
}

// MARK: graph

/// A graph base file: verified, then (when accepted) every user's lists in both directions
/// decoded and probed. The lists' coded bytes are trusted once their section checksum passes
/// (GraphFormat), so with checksum repair the deep check (`socialdb check --deep`, bounds-checked
/// decoding) runs first, and the fast decoders only on a file it passes: a checksum-valid
/// malformed list must be caught by it, never read out of bounds.
func graphBase(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix {
        Fixup.sectioned(&bytes, headerSeed: GraphFormat.headerSeed, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                        sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
    }
    let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
    bytes.withUnsafeBytes { image.copyMemory(from: $0) }
    guard GraphBase.verify(UnsafeRawBufferPointer(image)) == nil else { image.deallocate(); return }
    if fix && !GraphBase.deepVerify(UnsafeRawBufferPointer(image)).problems.isEmpty { image.deallocate(); return }
    let base = GraphBase(image: image)
    let users = min(base.userCount, 1 << 16)
    var out = [UInt32](repeating: 0, count: 1 << 16)
    for adjacency in [base.following, base.followers] {
        for u in 0..<users {
            let (list, count) = adjacency.list(UInt32(u))
            guard let list else { continue }
            if count > base.edgeCount { fuzzFailure("a list longer than the edge count") }
            if count > out.count { out = [UInt32](repeating: 0, count: count) }
            out.withUnsafeMutableBufferPointer { GraphCodec.decode(list, count: count, into: $0.baseAddress!) }
            _ = adjacency.contains(UInt32(u), 1)
            _ = adjacency.contains(UInt32(u), UInt32(users))
        }
    }
}

/// An edge list as IMPORT FOLLOWS reads it (a file, in chunks).
func importFollows(_ input: UnsafeRawBufferPointer) {
    let path = scratchFolder + "/edges.txt"
    writeFile(path, input)
    for symmetric in [false, true] {
        guard let result = try? EdgeListParser(symmetric: symmetric).parse(path: path, fileSystem: fileSystem) else { fuzzFailure("parse failed on a readable file") }
        let lines = input.isEmpty ? 0 : input.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) } - (input.last == 0x0A ? 1 : 0)
        if result.lines != lines { fuzzFailure("\(result.lines) lines counted, \(lines) in the file") }
        if result.edges.count > (symmetric ? 2 : 1) * lines { fuzzFailure("more edges than lines") }
        if result.badLines + result.commentLines > lines { fuzzFailure("more bad and comment lines than lines") }
    }
}

// MARK: timeline

struct NoFollowers: FollowerSource {
    func followerCount(of user: UInt32) -> Int { 0 }
    func forEachFollowerBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {}
    func forEachFolloweeBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) {}
}

struct NoTweets: AuthorTweetSource {
    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {}
}

/// The timeline checkpoint (rings, retweets, tombstones, ...): loaded as at open, then every
/// loaded ring read.
func timelineCheckpoint(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix { Fixup.timeline(&bytes) }
    let folder = scratchFolder + "/timeline"
    mkdir(folder, 0o755)
    bytes.withUnsafeBytes { writeFile(folder + "/" + TimelineFormat.fileName, $0) }
    var report = CheckReport()
    DataDirectoryCheck.checkTimeline(folder, fileSystem, &report)
    // As Social opens it: with the number of users the database has (the seeds' sample
    // directory has 300), so a checkpoint naming a larger number is rejected before the dense
    // user table grows to it (which was most of this target's time per input).
    let (store, status) = TimelineStore.open(directory: folder, fileSystem: fileSystem, followers: NoFollowers(), tweets: NoTweets(),
                                             knownUsers: 1024)
    if case .loaded = status {
        for reader in 0..<UInt32(64) {
            let items = store.home(of: reader, limit: 50)
            if items.count > 50 { fuzzFailure("more items than the limit") }
            for i in items.indices.dropFirst() where items[i].id >= items[i - 1].id { fuzzFailure("home items not in decreasing id order") }
        }
    }
}

// MARK: search

/// A frozen search segment: verified, then (when accepted) every term's postings and positions
/// decoded and every term looked up. Posting and position bytes are trusted once their section
/// checksum passes (PostingCodec), so with checksum repair the deep check (bounds-checked
/// decoding) runs first, and the fast decoders only on a segment it passes.
func searchSegment(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix {
        Fixup.sectioned(&bytes, headerSeed: SearchFormat.headerSeed, footerBytes: SearchFormat.footerBytes, sections: SearchFormat.sectionCount,
                        sectionSeed: SearchFormat.sectionSeed, footerSeed: SearchFormat.footerSeed)
    }
    guard bytes.withUnsafeBytes({ FrozenSegment.verify($0) }) == nil else { return }
    if fix && !bytes.withUnsafeBytes({ FrozenSegment.deepVerify($0) }).problems.isEmpty { return }
    let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
    bytes.withUnsafeBytes { image.copyMemory(from: $0) }
    let segment = FrozenSegment(image: image)
    for t in 0..<min(segment.termCount, 4096) {
        var docs: [UInt32] = [], starts: [Int] = [], positions: [UInt32] = []
        segment.decodeAll(t, docs: &docs, positionStarts: &starts, positionValues: &positions)
        if docs.count > segment.documentCount { fuzzFailure("a term with more postings than documents") }
        for d in docs where Int(d) >= segment.documentCount { fuzzFailure("posting \(d) past the \(segment.documentCount) documents") }
        for i in docs.indices.dropFirst() where docs[i] >= docs[i - 1] { fuzzFailure("postings not strictly decreasing") }
        _ = segment.lookup(String(decoding: segment.termName(t), as: UTF8.self))
    }
}

/// The search index's state file.
func searchState(_ input: UnsafeRawBufferPointer) {
    guard case (let fix, var bytes)? = split(input) else { return }
    if fix { Fixup.trailing(&bytes, seed: SearchFormat.stateSeed) }
    guard let state = bytes.withUnsafeBytes({ SearchIndex.decodeState($0) }) else { return }
    if state.segments.count + state.tombstones.count + state.users.count > bytes.count { fuzzFailure("more entries than bytes") }
}

/// One line of IMPORT TWEETS (JSON, as Twitter's API gave tweets).
func importTweetLine(_ input: UnsafeRawBufferPointer) {
    guard let object = try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed]) else { return }
    guard let tweets = try? TweetLineParser.parse(line: 1, object: object) else { return }
    if tweets.isEmpty { fuzzFailure("a line parsed into no tweet") }
}

fuzzMain([
    FuzzTarget("log-segment", "log segment records: check, recovery scan, event decoding", seeds: { dir in
        seeds(files(dir + "/log") { $0.hasSuffix(".log") }, transform: { b in
            var body = Array(b[min(b.count, LogFormat.firstRecordOffset)...])
            while body.last == 0 { body.removeLast() }
            return Array(body.prefix(1 << 16))
        })
    }, run: logSegment),
    FuzzTarget("log-payload", "a log record's payload decoded into social events", seeds: { dir in
        var out: [[UInt8]] = []
        for path in files(dir + "/log", { $0.hasSuffix(".log") }) {
            guard let b = readFile(path) else { continue }
            b.withUnsafeBytes { raw in
                let file = try! fileSystem.open(path, .readOnlyAccess)
                defer { file.close() }
                var scanner = SegmentScanner(file: file, fileSize: UInt64(raw.count), firstLSN: LogFormat.firstLSN(ofSegmentNamed: String(path.split(separator: "/").last!))!)
                while out.count < 200, case .record(_, let type, let payload)? = try? scanner.next() {
                    var seed: [UInt8] = []
                    seed.appendLE(type)
                    seed.append(contentsOf: payload)
                    out.append(seed)
                }
            }
        }
        return out
    }, run: logPayload),
    FuzzTarget("table-block", "an SSTable block: cursors both ways, seeks, point lookups", seeds: { dir in
        var out: [[UInt8]] = []
        for path in files(dir + "/lsm", { $0.hasSuffix(".sst") }) {
            guard let b = readFile(path) else { continue }
            let f = b.count - TableFormat.footerBytes
            let indexOffset = Int(Fixup.loadLE(b, f + 16, UInt64.self)), indexSize = Int(Fixup.loadLE(b, f + 32, UInt32.self))
            out.append(Array(b[indexOffset..<(indexOffset + indexSize)]))
            // The first data block: its size is in the index; take the bytes up to the first checksum guess.
            let index = Array(b[indexOffset..<(indexOffset + indexSize)])
            index.withUnsafeBytes { raw in
                guard let blk = try? Block(viewing: raw, owner: Holder(), file: "seed") else { return }
                var cursor = BlockCursor(blk)
                cursor.seekToFirst()
                while cursor.isValid && out.count < 40 {
                    if let (off, i) = Varint.read(from: cursor.value, at: 0), let (size, _) = Varint.read(from: cursor.value, at: i) {
                        out.append(Array(b[Int(off)..<Int(off + size)]))
                    }
                    cursor.next()
                }
            }
        }
        return out
    }, run: tableBlock),
    FuzzTarget("table-file", "an SSTable file: footer, filter, index and data blocks", seeds: { dir in
        seeds(files(dir + "/lsm") { $0.hasSuffix(".sst") })
    }, run: tableFile),
    FuzzTarget("manifest", "the LSM manifest", seeds: { dir in seeds(files(dir + "/lsm") { $0 == "MANIFEST" }) }, run: manifest),
    FuzzTarget("tweet-record", "a tweet record and a user record (LSM values)", run: tweetRecord),
    FuzzTarget("log-checkpoints", "the log's CHECKPOINTS file", seeds: { dir in seeds(files(dir + "/log") { $0 == CheckpointFile.name }) }, run: checkpoints),
    FuzzTarget("graph-base", "a graph base file: index entries and adjacency blocks (GraphCodec)", seeds: { dir in
        seeds(files(dir + "/graph") { $0.hasSuffix(".graph") })
    }, run: graphBase),
    FuzzTarget("import-follows", "IMPORT FOLLOWS: an edge list file", seeds: { _ in
        [Array("1 2\n2 3\n# comment\n%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1\t3\n4,5\n".utf8), Array("a b\n1 2 3\n\n-1 2\n".utf8)]
    }, run: importFollows),
    FuzzTarget("timeline-checkpoint", "the timeline checkpoint: ring segments, retweets, tombstones", seeds: { dir in
        seeds(files(dir + "/timeline") { $0 == TimelineFormat.fileName })
    }, run: timelineCheckpoint),
    FuzzTarget("search-segment", "a frozen search segment: terms, posting blocks (PostingCodec), positions", seeds: { dir in
        seeds(files(dir + "/search") { SearchFormat.segmentNumber(ofFileNamed: $0) != nil })
    }, run: searchSegment),
    FuzzTarget("search-state", "the search index's state file", seeds: { dir in seeds(files(dir + "/search") { $0 == SearchFormat.stateFileName }) }, run: searchState),
    FuzzTarget("import-tweets", "IMPORT TWEETS: one JSON line", seeds: { _ in
        [#"{"id_str":"1","text":"hi @bob #tag","created_at":"Wed Oct 10 20:19:24 +0000 2018","user":{"screen_name":"alice","name":"Alice"}}"#,
         #"{"id":2,"full_text":"RT","user":{"screen_name":"b"},"retweeted_status":{"id_str":"1","text":"x","user":{"screen_name":"a"}},"in_reply_to_status_id_str":"1"}"#]
            .map { Array($0.utf8) }
    }, run: importTweetLine),
], sampleDirectory: SampleDirectory.build)
