/// The files of the search index.
///
/// A search directory holds frozen segments `seg-<20 decimal digits>.search` and one state file
/// `search.state` that names the live segments and the log position they include. Every file is
/// written as `<name>.tmp`, fdatasynced, renamed and the directory fsynced; a leftover `.tmp`, or
/// a segment the state file does not name, is removed at open.
///
/// Segment layout (little-endian), the whole file read into memory at open:
///
///     0    header, 64 bytes:
///          0   8  magic "SDBSEARC"
///          8   4  format version (5; 4 has positions as runs after checkpoint tables
///                  instead of a byte per posting, 3 no positions checkpoint tables and 2
///                  neither those nor Elias-Fano blocks: all are still read, and rewritten
///                  as 5 by the next merge; 1 had no Rice blocks and is rebuilt)
///          12  4  flags (0)
///          16  8  segment number
///          24  8  document count N (documents are 0 ..< N in increasing tweet id)
///          32  8  term count T
///          40  8  posting count P (document-term pairs)
///          48  8  reserved (0)
///          56  8  XXH3-64 of bytes 0..<56, seed `headerSeed`
///     64   five sections, each starting on an 8-byte boundary, zero padding between:
///          documents  N x (u64 tweet id, u64 time in Unix ms), tweet ids strictly increasing
///          terms      T x 32: u32 name offset, u32 name length, u32 document count, u32 0,
///                     u64 postings offset, u64 positions offset (into the sections below)
///          names      the term names, UTF-8, terms sorted by these bytes, strictly increasing
///          postings   each term's coded document list (`PostingCodec`), then 8 zero bytes
///          positions  each term's positions stream (`PostingCodec`), then 8 zero bytes
///     end  footer, 136 bytes:
///          5 x (u64 offset, u64 length, u64 XXH3-64 of the section, seed `sectionSeed`)
///          8  magic "SDBSEND\n"
///          8  XXH3-64 of the footer's first 128 bytes, seed `footerSeed`
///
/// State file layout (little-endian):
///
///     0   8  magic "SDBSSTAT"
///     8   4  format version (2, `stateFormatVersion`: unchanged when segments went to 3)
///     12  4  flags (0)
///     16  8  applied LSN: every log record up to it is reflected in the named segments
///     24  8  next segment number
///     32  8  segment count S
///     40  8  tombstone count D
///     48  8  user count U
///     56  8  reserved (0)
///     64     S x u64 segment numbers; D x u64 deleted tweet ids not yet purged;
///            U x (u64 user id, u64 follower count, varint length + UTF-8 handle,
///                 varint length + UTF-8 display name)
///     end 8  XXH3-64 of everything before, seed `stateSeed`
///
/// A reader rejects a file whose magic, version, checksums or bounds do not check out, naming
/// the file and the reason; it never returns data from such a file.
///
/// These constants are part of the format and must not change.
public enum SearchFormat {
    /// The segment format written: 5 (4 with a block's positions as flags, a byte per
    /// posting and the irregular postings' runs; 4 added a checkpoint table at the start of
    /// each block's positions; 3 Elias-Fano blocks in lists of more than one block).
    public static let formatVersion: UInt32 = 5
    /// The oldest segment format read (2: the same layout without Elias-Fano blocks or
    /// positions checkpoints).
    public static let oldestReadableVersion: UInt32 = 2
    /// The state file's format (its layout did not change with the segments').
    public static let stateFormatVersion: UInt32 = 2
    public static let magic: [UInt8] = Array("SDBSEARC".utf8)
    public static let footerMagic: [UInt8] = Array("SDBSEND\n".utf8)
    public static let stateMagic: [UInt8] = Array("SDBSSTAT".utf8)
    public static let headerBytes = 64
    public static let footerBytes = 136
    public static let sectionCount = 5
    public static let documentBytes = 16
    public static let termEntryBytes = 32
    public static let headerSeed: UInt64 = 0x5344_4253_4844_5231
    public static let sectionSeed: UInt64 = 0x5344_4253_5345_4331
    public static let footerSeed: UInt64 = 0x5344_4253_4654_5231
    public static let stateSeed: UInt64 = 0x5344_4253_5354_4154
    public static let segmentSuffix = ".search"
    public static let stateFileName = "search.state"
    public static let temporarySuffix = ".tmp"

    public static func segmentFileName(_ number: UInt64) -> String {
        let digits = String(number)
        return "seg-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + segmentSuffix
    }

    public static func segmentNumber(ofFileNamed name: String) -> UInt64? {
        guard name.hasPrefix("seg-"), name.hasSuffix(segmentSuffix) else { return nil }
        let digits = name.dropFirst(4).dropLast(segmentSuffix.count)
        guard digits.utf8.count == 20, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return UInt64(digits)
    }
}

/// What can go wrong in the search index's files.
public enum SearchError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(IOError)
    /// A file failed its checks; nothing was returned from it. The caller rebuilds the index
    /// from the tweet store and the log (`SearchIndex.removeFiles(directory:)`, then re-add).
    case corrupt(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let error): "search index I/O: \(error)"
        case .corrupt(let path, let reason): "corrupt search file \(path): \(reason)"
        }
    }
}

/// A frozen segment: immutable, compressed, the whole file image in memory.
///
/// Thread safety: immutable after init; any number of readers. The image is freed in deinit, so
/// readers hold a reference for as long as they use pointers into it.
final class FrozenSegment: @unchecked Sendable {
    // @unchecked: the image is never written after init.
    let number: UInt64
    let image: UnsafeMutableRawBufferPointer
    let documentCount: Int
    let termCount: Int
    let postingCount: Int
    let documents: UnsafeRawPointer
    let terms: UnsafeRawPointer
    let names: UnsafeRawPointer
    let postings: UnsafeRawPointer
    let positions: UnsafeRawPointer
    let postingsBytes: Int
    let positionsBytes: Int
    /// The segment's format version (positions checkpoint tables from 4 on).
    let version: UInt32
    /// An in-memory hash table over the term names (not part of the file): open addressing,
    /// `termSlotMask + 1` slots (a power of two, at least twice the term count), each 0 when
    /// empty or the name's hash in the high 32 bits and the term index + 1 in the low 32, so a
    /// lookup touches one slot line and the one name that matches instead of the ~16 names a
    /// binary search over the sorted table reads (a cache miss each in a large segment).
    let termSlots: UnsafeMutablePointer<UInt64>
    let termSlotMask: Int

    /// Takes ownership of a verified image. `hashes`, when given, holds each term's `hashName`
    /// in term order (a builder that knows them spares the table's build hashing every name).
    init(image: UnsafeMutableRawBufferPointer, hashes: UnsafePointer<UInt64>? = nil) {
        self.image = image
        let raw = UnsafeRawBufferPointer(image)
        number = raw.loadLE(UInt64.self, at: 16)
        version = raw.loadLE(UInt32.self, at: 8)
        documentCount = Int(raw.loadLE(UInt64.self, at: 24))
        termCount = Int(raw.loadLE(UInt64.self, at: 32))
        postingCount = Int(raw.loadLE(UInt64.self, at: 40))
        let footer = raw.count - SearchFormat.footerBytes
        func section(_ i: Int) -> (UnsafeRawPointer, Int) {
            (raw.baseAddress! + Int(raw.loadLE(UInt64.self, at: footer + i * 24)), Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8)))
        }
        documents = section(0).0
        terms = section(1).0
        names = section(2).0
        (postings, postingsBytes) = section(3)
        (positions, positionsBytes) = section(4)
        minTweetID = documentCount == 0 ? .max : UInt64(littleEndian: documents.loadUnaligned(as: UInt64.self))
        maxTweetID = documentCount == 0 ? 0 : UInt64(littleEndian: documents.loadUnaligned(fromByteOffset: (documentCount - 1) * 16, as: UInt64.self))
        var slots = 16
        while slots < 2 * termCount { slots <<= 1 }
        termSlotMask = slots - 1
        termSlots = .allocate(capacity: slots)
        termSlots.initialize(repeating: 0, count: slots)
        for t in 0..<termCount {
            let h: UInt64
            if let hashes {
                h = hashes[t]
            } else {
                let name = termName(t)
                h = Self.hashName(name.baseAddress, name.count)
            }
            var slot = Int(truncatingIfNeeded: h) & termSlotMask
            while termSlots[slot] != 0 { slot = (slot + 1) & termSlotMask }
            termSlots[slot] = (h & 0xFFFF_FFFF_0000_0000) | UInt64(t + 1)
        }
    }

    deinit {
        termSlots.deallocate()
        image.deallocate()
    }

    /// A 64-bit hash of a term name (8 bytes at a time, multiply and rotate; the tail bytes
    /// are read one by one so nothing past the name is touched). In memory only.
    @inline(__always)
    static func hashName(_ base: UnsafeRawPointer?, _ count: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        guard let base else { return h }
        var i = 0
        while i + 8 <= count {
            h = (h ^ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* 0xFF51_AFD7_ED55_8CCD
            h = (h &<< 29) | (h &>> 35)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) &<< shift
            shift &+= 8
            i += 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h &>> 31)
    }

    /// `hashName` and the name's first 8 bytes, zero-padded (`ActiveSegment.prefixWord`), of a
    /// name followed by at least 8 zero bytes (`PackedTerms` keeps them): the tail and the
    /// prefix are then whole-word loads, the same values as `hashName`'s byte loop.
    @inline(__always)
    static func hashNameAndPrefix(zeroPadded base: UnsafeRawPointer, _ count: Int) -> (hash: UInt64, prefix: UInt64) {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        var i = 0
        while i &+ 8 <= count {
            h = (h ^ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* 0xFF51_AFD7_ED55_8CCD
            h = (h &<< 29) | (h &>> 35)
            i &+= 8
        }
        let tail = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return (h ^ (h &>> 31), UInt64(littleEndian: base.loadUnaligned(as: UInt64.self)))
    }

    var fileBytes: Int { image.count }

    @inline(__always) func tweetID(_ doc: Int) -> UInt64 { UInt64(littleEndian: documents.loadUnaligned(fromByteOffset: doc * 16, as: UInt64.self)) }
    @inline(__always) func time(_ doc: Int) -> UInt64 { UInt64(littleEndian: documents.loadUnaligned(fromByteOffset: doc * 16 + 8, as: UInt64.self)) }

    /// The first and last documents' tweet ids, kept here (each query reads them per segment,
    /// and from the image each would be a cache miss of its own).
    let minTweetID: UInt64
    let maxTweetID: UInt64

    /// The number of documents with a tweet id below `id` (binary search).
    func documents(below id: UInt64) -> Int {
        var low = 0
        var high = documentCount
        while low < high {
            let mid = (low + high) >> 1
            if tweetID(mid) < id { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func document(of id: UInt64) -> Int? {
        let d = documents(below: id)
        return d < documentCount && tweetID(d) == id ? d : nil
    }

    struct TermInfo {
        var count: Int
        var postings: UnsafeRawPointer
        var positions: UnsafeRawPointer
        /// Whether each block's positions start with a checkpoint table (format 4 only).
        var checkpoints: Bool
        /// Whether each block's positions are flags, a byte per posting and the irregular
        /// postings' runs (format 5 on).
        var regular: Bool
    }

    @inline(__always) func termName(_ t: Int) -> UnsafeRawBufferPointer {
        let offset = Int(UInt32(littleEndian: terms.loadUnaligned(fromByteOffset: t * 32, as: UInt32.self)))
        let length = Int(UInt32(littleEndian: terms.loadUnaligned(fromByteOffset: t * 32 + 4, as: UInt32.self)))
        return UnsafeRawBufferPointer(start: names + offset, count: length)
    }

    func termInfo(_ t: Int) -> TermInfo {
        let count = Int(UInt32(littleEndian: terms.loadUnaligned(fromByteOffset: t * 32 + 8, as: UInt32.self)))
        let p = Int(UInt64(littleEndian: terms.loadUnaligned(fromByteOffset: t * 32 + 16, as: UInt64.self)))
        let q = Int(UInt64(littleEndian: terms.loadUnaligned(fromByteOffset: t * 32 + 24, as: UInt64.self)))
        return TermInfo(count: count, postings: postings + p, positions: positions + q, checkpoints: version == 4, regular: version >= 5)
    }

    /// The term's index (through the hash table), or nil.
    func lookup(_ term: String) -> Int? {
        // A copy so that `withUTF8` may make it contiguous (small strings are copied to the
        // stack, native ones are read in place: no allocation either way).
        var term = term
        return term.withUTF8 { utf8 -> Int? in
            let key = UnsafeRawBufferPointer(utf8)
            return lookup(key, hash: Self.hashName(key.baseAddress, key.count))
        }
    }

    /// The index of the term with these bytes, whose `hashName` is `h`, or nil.
    @inline(__always)
    func lookup(_ key: UnsafeRawBufferPointer, hash h: UInt64) -> Int? {
        let tag = h & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: h) & termSlotMask
        while true {
            let entry = termSlots[slot]
            if entry == 0 { return nil }
            if entry & 0xFFFF_FFFF_0000_0000 == tag {
                let t = Int(entry & 0xFFFF_FFFF) - 1
                if Self.compareWords(termName(t), key) == 0 { return t }
            }
            slot = (slot + 1) & termSlotMask
        }
    }

    /// `compare`, eight bytes at a time (big-endian words order like bytes); never reads past
    /// the shorter of the two.
    @inline(__always)
    static func compareWords(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        var i = 0
        if n > 0 {
            let pa = a.baseAddress!
            let pb = b.baseAddress!
            while i + 8 <= n {
                let x = UInt64(bigEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let y = UInt64(bigEndian: pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if x != y { return x < y ? -1 : 1 }
                i += 8
            }
            while i < n {
                let x = pa.load(fromByteOffset: i, as: UInt8.self)
                let y = pb.load(fromByteOffset: i, as: UInt8.self)
                if x != y { return Int(x) - Int(y) }
                i += 1
            }
        }
        return a.count - b.count
    }

    static func compare(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Int {
        b.withUnsafeBytes { bb in compare(a, bb) }
    }

    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        if n > 0 {
            let c = memcmpBytes(a.baseAddress!, b.baseAddress!, n)
            if c != 0 { return c }
        }
        return a.count - b.count
    }

    @inline(__always)
    static func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Int {
        var i = 0
        while i < n {
            let x = a.load(fromByteOffset: i, as: UInt8.self)
            let y = b.load(fromByteOffset: i, as: UInt8.self)
            if x != y { return Int(x) - Int(y) }
            i += 1
        }
        return 0
    }

    /// Decodes a term's whole list: documents (decreasing) and, per posting, its positions.
    func decodeAll(_ t: Int, docs: inout [UInt32], positionStarts: inout [Int], positionValues: inout [UInt32]) {
        let info = termInfo(t)
        var cursor = PostingCursor(frozen: info)
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: PostingCodec.blockSize)
        defer { scratch.deallocate() }
        cursor.buffer = scratch
        var target = Int32.max
        while true {
            let d = cursor.seek(atOrBelow: target)
            if d < 0 { break }
            docs.append(UInt32(d))
            positionStarts.append(positionValues.count)
            cursor.positions(into: &positionValues)
            target = d - 1
            if target < 0 { break }
        }
    }

    // MARK: Verification

    /// Checks magic, version, checksums and bounds; returns what is wrong, or nil. The segment
    /// builder checks its own image without the section checksums it has just computed
    /// (`checkingSections: false`): every other check runs.
    static func verify(_ raw: UnsafeRawBufferPointer, checkingSections: Bool = true) -> String? {
        guard raw.count >= SearchFormat.headerBytes + SearchFormat.footerBytes else { return "file too short (\(raw.count) bytes)" }
        guard SearchFormat.magic.elementsEqual(raw[0..<8]) else { return "bad magic" }
        let version = raw.loadLE(UInt32.self, at: 8)
        guard version >= SearchFormat.oldestReadableVersion && version <= SearchFormat.formatVersion else { return "unknown format version \(version)" }
        guard Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<56]), seed: SearchFormat.headerSeed) == raw.loadLE(UInt64.self, at: 56) else {
            return "header checksum mismatch"
        }
        let footer = raw.count - SearchFormat.footerBytes
        guard Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + 128)]), seed: SearchFormat.footerSeed)
                == raw.loadLE(UInt64.self, at: footer + 128) else { return "footer checksum mismatch" }
        guard SearchFormat.footerMagic.elementsEqual(raw[(footer + 120)..<(footer + 128)]) else { return "bad footer magic" }
        let n = raw.loadLE(UInt64.self, at: 24)
        let t = raw.loadLE(UInt64.self, at: 32)
        guard n < (1 << 31), t < (1 << 31) else { return "implausible document or term count" }
        var previousEnd = SearchFormat.headerBytes
        var sections: [(Int, Int)] = []
        for i in 0..<SearchFormat.sectionCount {
            let offset = Int(truncatingIfNeeded: raw.loadLE(UInt64.self, at: footer + i * 24))
            let length = Int(truncatingIfNeeded: raw.loadLE(UInt64.self, at: footer + i * 24 + 8))
            guard offset >= previousEnd, offset % 8 == 0, length >= 0, offset <= footer, length <= footer - offset else {
                return "section \(i) out of bounds"
            }
            // Alignment padding is zeros: no byte of the file is outside every check.
            if let pad = raw[previousEnd..<offset].firstIndex(where: { $0 != 0 }) { return "non-zero padding byte at offset \(pad)" }
            if checkingSections {
                let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), seed: SearchFormat.sectionSeed)
                guard sum == raw.loadLE(UInt64.self, at: footer + i * 24 + 16) else { return "section \(i) (offset \(offset), \(length) bytes) checksum mismatch" }
            }
            sections.append((offset, length))
            previousEnd = offset + length
        }
        if let pad = raw[previousEnd..<footer].firstIndex(where: { $0 != 0 }) { return "non-zero padding byte at offset \(pad)" }
        guard sections[0].1 == Int(n) * SearchFormat.documentBytes else { return "documents section size" }
        guard sections[1].1 == Int(t) * SearchFormat.termEntryBytes else { return "terms section size" }
        guard sections[3].1 >= PostingCodec.paddingBytes, sections[4].1 >= PostingCodec.paddingBytes else { return "postings without padding" }
        var last: UInt64 = 0
        for d in 0..<Int(n) {
            let id = raw.loadLE(UInt64.self, at: sections[0].0 + d * 16)
            guard d == 0 || id > last else { return "document \(d): tweet ids not increasing" }
            last = id
        }
        var previousName: UnsafeRawBufferPointer?
        for i in 0..<Int(t) {
            let e = sections[1].0 + i * 32
            let nameOffset = Int(raw.loadLE(UInt32.self, at: e))
            let nameLength = Int(raw.loadLE(UInt32.self, at: e + 4))
            let count = UInt64(raw.loadLE(UInt32.self, at: e + 8))
            let p = raw.loadLE(UInt64.self, at: e + 16)
            let q = raw.loadLE(UInt64.self, at: e + 24)
            guard nameOffset + nameLength <= sections[2].1, count >= 1, count <= n,
                  p < UInt64(sections[3].1 - PostingCodec.paddingBytes), q < UInt64(sections[4].1 - PostingCodec.paddingBytes) else {
                return "term \(i) out of bounds"
            }
            let name = UnsafeRawBufferPointer(rebasing: raw[(sections[2].0 + nameOffset)..<(sections[2].0 + nameOffset + nameLength)])
            if let previousName, compareWords(previousName, name) >= 0 { return "term \(i): names not increasing" }
            previousName = name
        }
        return nil
    }
}

/// Builds a segment image in memory: documents first, then terms in increasing byte order.
/// Single owner; `finish()` hands the memory to a `FrozenSegment`.
struct SegmentBuilder: ~Copyable {
    let number: UInt64
    private var documents = ByteSink()
    private var termEntries = ByteSink()
    private var names = ByteSink()
    private var postings = ByteSink()
    private var positions = ByteSink()
    /// Each term's `FrozenSegment.hashName`, in term order (u64 each), handed to the segment's
    /// in-memory term table so that it does not hash every name again.
    private var hashes = ByteSink()
    private(set) var documentCount = 0
    private(set) var termCount = 0
    private(set) var postingCount = 0
    /// The previous term's name: `names[lastNameStart...]` (none while `termCount` is 0).
    private var lastNameStart = 0
    /// The current term's blocks' positions offsets: the first `blockOffsetCount` entries
    /// (entries past them are stale; not emptied per term, which cost an array call a term).
    private var blockOffsets: [UInt32] = []
    private var blockOffsetCount = 0
    /// The segment format written: `SearchFormat.formatVersion`, or an older one (2: no
    /// Elias-Fano blocks; 3: no positions checkpoints; 4: positions as runs after checkpoint
    /// tables) for tests that need a segment as an older build wrote it.
    let version: UInt32

    init(number: UInt64, version: UInt32 = SearchFormat.formatVersion) {
        precondition(version >= SearchFormat.oldestReadableVersion && version <= SearchFormat.formatVersion, "segment format \(version) is not written")
        self.number = number
        self.version = version
    }

    /// Makes room up front for a segment of about these sizes (a freeze knows them), so the
    /// sections do not grow by copying (they still grow if the guess falls short).
    mutating func reserve(documents documentCount: Int, terms: Int, nameBytes: Int, postings postingCount: Int) {
        documents.reserve(documentCount * SearchFormat.documentBytes)
        termEntries.reserve(terms * SearchFormat.termEntryBytes)
        names.reserve(nameBytes)
        hashes.reserve(terms * 8)
        // About 1.5 bytes a posting of documents and 2.2 of positions, with room to spare.
        postings.reserve(postingCount * 2 + 4096)
        positions.reserve(postingCount * 3 + 4096)
    }

    mutating func addDocument(tweetID: UInt64, time: UInt64) {
        documents.appendLE(tweetID)
        documents.appendLE(time)
        documentCount += 1
    }

    /// Adds a term with its documents (strictly decreasing, below `documentCount`) and, per
    /// posting i, its positions `positionValues[positionStarts[i] ..< positionStarts[i+1]]`
    /// (increasing; the last posting's run ends at the end of `positionValues`).
    mutating func addTerm(_ name: [UInt8], docs: [UInt32], positionStarts: [Int], positionValues: [UInt32]) {
        name.withUnsafeBytes { addTerm($0, docs: docs, positionStarts: positionStarts, positionValues: positionValues) }
    }

    mutating func addTerm(_ name: UnsafeRawBufferPointer, docs: [UInt32], positionStarts: [Int], positionValues: [UInt32]) {
        docs.withUnsafeBufferPointer { docs in
            positionStarts.withUnsafeBufferPointer { starts in
                positionValues.withUnsafeBufferPointer { values in
                    addTerm(name, docs: docs, starts: starts, values: values, descending: false)
                }
            }
        }
    }

    @inline(__always)
    private mutating func addBlockOffset(_ offset: UInt32) {
        if blockOffsetCount < blockOffsets.count { blockOffsets[blockOffsetCount] = offset } else { blockOffsets.append(offset) }
        blockOffsetCount += 1
    }

    /// Adds a term with all its postings at once (a freeze collects each term's in scratch
    /// buffers first, so every block's size, and so its checkpoint table's, is known before
    /// its positions are written): `docs` strictly decreasing (below `documentCount`), and
    /// posting i's positions `values[starts[i] ..< starts[i + 1]]` (the last run ends at the
    /// end of `values`), increasing, or decreasing when `descending` (the order a freeze reads
    /// them in; they are written increasing either way). The name comes after the previous
    /// term's in byte order; `hash` is its `FrozenSegment.hashName` when the caller knows it
    /// (else it is computed here).
    mutating func addTerm(_ name: UnsafeRawBufferPointer, docs: UnsafeBufferPointer<UInt32>, starts: UnsafeBufferPointer<Int>,
                          values: UnsafeBufferPointer<UInt32>, descending: Bool, hash: UInt64? = nil) {
        let count = docs.count
        precondition(count > 0 && starts.count == count, "a term needs postings, one run of positions each")
        let termPositionsStart = positions.count
        blockOffsetCount = 0
        let interval = PostingCodec.positionCheckpointInterval
        var from = 0
        while version >= 5 && from < count {
            let to = min(count, from + PostingCodec.blockSize)
            addRegularBlock(docs.count, from: from, to: to, starts: starts, values: values, descending: descending,
                            termPositionsStart: termPositionsStart)
            from = to
        }
        while from < count {
            let to = min(count, from + PostingCodec.blockSize)
            // The block's positions: from format 4 on, a checkpoint table first (its entry k
            // is the offset of posting 16k's run from the table's end), then the runs.
            let tableStart = positions.count
            let marks = version >= 4 ? (to - from - 1) / interval : 0
            if marks > 0 { positions.appendZeros(marks * 4) }
            let streamStart = positions.count
            addBlockOffset(UInt32(tableStart - termPositionsStart))
            var i = from
            var mark = 0
            while true {
                let groupEnd = min(to, i + interval)
                while i < groupEnd {
                    writeRun(values, from: starts[i], to: i + 1 < count ? starts[i + 1] : values.count, descending: descending)
                    i += 1
                }
                if i == to { break }
                if marks > 0 {
                    positions.mutableBytes.storeLE(UInt32(positions.count - streamStart), at: tableStart + mark * 4)
                    mark += 1
                }
            }
            from = to
        }
        let ordered = termCount == 0 || FrozenSegment.compareWords(UnsafeRawBufferPointer(rebasing: names.bytes[lastNameStart...]), name) < 0
        precondition(ordered, "terms must be added in increasing byte order")
        lastNameStart = names.count
        let postingsOffset = postings.count
        PostingCodec.encode(docs, blockPositionOffsets: blockOffsets, eliasFano: version >= 3, into: &postings)
        // The 32-byte entry in one append (six appendLE calls cost more than the rest of a
        // one-posting term).
        let entry = (UInt32(names.count).littleEndian, UInt32(name.count).littleEndian, UInt32(count).littleEndian, UInt32(0),
                     UInt64(postingsOffset).littleEndian, UInt64(termPositionsStart).littleEndian)
        withUnsafeBytes(of: entry) { termEntries.append($0) }
        names.append(name)
        assert(hash == nil || hash == FrozenSegment.hashName(name.baseAddress, name.count), "a term's given hash is not its name's")
        hashes.appendLE(hash ?? FrozenSegment.hashName(name.baseAddress, name.count))
        termCount += 1
        postingCount += count
    }

    /// A block's positions in format 5: the flag bitmap (bit i set: posting i is irregular),
    /// one byte per posting (a regular posting's one position; an irregular one's run offset
    /// from the first run, or `PostingCodec.farRunMark` from that offset on), then the irregular
    /// postings' runs as `writeRun` writes them. A posting is regular when it has one position,
    /// at most `PostingCodec.regularPositionLimit`.
    private mutating func addRegularBlock(_ count: Int, from: Int, to: Int, starts: UnsafeBufferPointer<Int>,
                                          values: UnsafeBufferPointer<UInt32>, descending: Bool, termPositionsStart: Int) {
        let size = to - from
        let blockStart = positions.count
        addBlockOffset(UInt32(blockStart - termPositionsStart))
        let flagBytes = (size + 7) / 8
        positions.appendZeros(flagBytes + size)
        let bytesStart = blockStart + flagBytes
        let runsStart = positions.count
        var i = from
        while i < to {
            let start = starts[i]
            let end = i + 1 < count ? starts[i + 1] : values.count
            if end - start == 1 && values[start] <= PostingCodec.regularPositionLimit {
                positions.mutableBytes[bytesStart + (i - from)] = UInt8(truncatingIfNeeded: values[start])
            } else {
                positions.mutableBytes[blockStart + (i - from) / 8] |= UInt8(1) << UInt8((i - from) % 8)
                positions.mutableBytes[bytesStart + (i - from)] = UInt8(min(positions.count - runsStart, Int(PostingCodec.farRunMark)))
                writeRun(values, from: start, to: end, descending: descending)
            }
            i += 1
        }
    }

    /// One posting's positions `values[start ..< end]` (at least one): their count, then the
    /// first and each later one minus the one before minus 1, as varints. A single position
    /// below 128 (most postings) is the two bytes [1, p] in one store.
    @inline(__always)
    private mutating func writeRun(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, descending: Bool) {
        let n = end - start
        precondition(n > 0, "a posting needs a position")
        if n == 1 {
            let p = values[start]
            if p < 0x80 {
                positions.appendLE(UInt16(1) | UInt16(truncatingIfNeeded: p) << 8)
                return
            }
        }
        positions.appendVarint(UInt64(n))
        var previous: UInt32 = 0
        for k in 0..<n {
            let p = descending ? values[end - 1 - k] : values[start + k]
            let v = k == 0 ? p : p &- previous &- 1
            if v < 0x80 {
                positions.append(UInt8(truncatingIfNeeded: v))
            } else {
                positions.appendVarint(UInt64(v))
            }
            previous = p
        }
    }

    consuming func finish() -> FrozenSegment {
        postings.appendZeros(PostingCodec.paddingBytes)
        positions.appendZeros(PostingCodec.paddingBytes)
        let parts = [documents.bytes, termEntries.bytes, names.bytes, postings.bytes, positions.bytes]
        var size = SearchFormat.headerBytes
        var offsets: [Int] = []
        for part in parts {
            size = (size + 7) & ~7
            offsets.append(size)
            size += part.count
        }
        size = (size + 7) & ~7
        let footer = size
        size += SearchFormat.footerBytes
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        // Every byte gets written once: the header and footer zeroed and then filled, the
        // sections copied, and only the alignment padding between them zeroed (zeroing the
        // whole image first was another pass over megabytes).
        let base = image.baseAddress!
        base.initializeMemory(as: UInt8.self, repeating: 0, count: SearchFormat.headerBytes)
        var zeroFrom = SearchFormat.headerBytes
        for (i, part) in parts.enumerated() {
            (base + zeroFrom).initializeMemory(as: UInt8.self, repeating: 0, count: offsets[i] - zeroFrom)
            zeroFrom = offsets[i] + part.count
        }
        (base + zeroFrom).initializeMemory(as: UInt8.self, repeating: 0, count: size - zeroFrom)
        for (i, byte) in SearchFormat.magic.enumerated() { image[i] = byte }
        image.storeLE(version, at: 8)
        image.storeLE(number, at: 16)
        image.storeLE(UInt64(documentCount), at: 24)
        image.storeLE(UInt64(termCount), at: 32)
        image.storeLE(UInt64(postingCount), at: 40)
        image.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[0..<56]), seed: SearchFormat.headerSeed), at: 56)
        for (i, part) in parts.enumerated() {
            if part.count > 0 { (image.baseAddress! + offsets[i]).copyMemory(from: part.baseAddress!, byteCount: part.count) }
            image.storeLE(UInt64(offsets[i]), at: footer + i * 24)
            image.storeLE(UInt64(part.count), at: footer + i * 24 + 8)
            let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[offsets[i]..<(offsets[i] + part.count)]), seed: SearchFormat.sectionSeed)
            image.storeLE(sum, at: footer + i * 24 + 16)
        }
        for (i, byte) in SearchFormat.footerMagic.enumerated() { image[footer + 120 + i] = byte }
        image.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[footer..<(footer + 128)]), seed: SearchFormat.footerSeed),
                      at: footer + 128)
        // Check before it can reach the disk, as a reader will after it comes back.
        // (The section checksums were computed just above from these bytes: not again.)
        if let problem = FrozenSegment.verify(UnsafeRawBufferPointer(image), checkingSections: false) {
            preconditionFailure("search segment builder produced an invalid image: \(problem)")
        }
        return FrozenSegment(image: image, hashes: UnsafeRawPointer(hashes.base).assumingMemoryBound(to: UInt64.self))
    }
}
