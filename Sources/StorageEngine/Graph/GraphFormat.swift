/// The base file of the graph store: both directions of the follow graph, compressed, immutable.
///
/// A graph directory holds base files named by generation, `base-<20 decimal digits>.graph`, of
/// which the store keeps the newest two (the older one is the fallback when the newest is found
/// corrupt, with the log replayed from the older one's LSN). A base is written as
/// `base-<gen>.graph.tmp`, fdatasynced, renamed and the directory fsynced; a leftover `.tmp` is a
/// crash mid-write and is removed at open.
///
/// Layout (little-endian), the whole file read into memory at open:
///
///     0    header, 64 bytes:
///          0   8  magic "SDBGRAPH"
///          8   4  format version (4; 3 is read too)
///          12  4  flags (0)
///          16  8  generation
///          24  8  covered LSN: every graph record of the log up to it is in this base
///          32  8  user count N (users are 0 ..< N in both directions)
///          40  8  edge count E (each direction holds E entries)
///          48  8  reserved (0)
///          56  8  XXH3-64 of bytes 0..<56, seed `GraphFormat.headerSeed`
///     64   four sections, each starting on an 8-byte boundary, zero padding between:
///          following index  N x 6-byte entries, zero padding to an 8-byte boundary (at
///                           least 2 bytes, so an 8-byte load of the last entry stays inside)
///          following lists  coded lists (GraphCodec), then 8 zero bytes of decode padding
///          followers index  the same as the following index
///          followers lists  the same
///     end  footer, 112 bytes:
///          4 x (u64 offset, u64 length, u64 XXH3-64 of the section, seed `sectionSeed`)
///          8  magic "SDBGEND\n"
///          8  XXH3-64 of the footer's first 104 bytes, seed `footerSeed`
///
/// An index entry is 48 bits, `offset | degree << 40`: the byte offset of the user's list
/// within the lists section (40 bits) and its length (8 bits). Degree 0 has no list. A degree
/// of 255 or more is written as 255 and the true degree as a u32 at the offset, the list right
/// after it (4 bytes for the few users with long lists, where 64-bit entries cost every user
/// 16 bits more: about 0.5 bits per edge at twitter's mean degree).
///
/// A reader rejects a file whose magic, version, checksums, section bounds or index entries do
/// not check out, naming the file and the reason; it never returns data from such a file.
///
/// These constants are part of the format and must not change.
public enum GraphFormat {
    /// 2: a block's gaps may be varints (mode byte 0xFF, see `GraphCodec`). 3: 6-byte index
    /// entries with an 8-bit degree (was 8 bytes, 24 bits). 4: a block's gaps may be Rice-coded
    /// (mode bytes 0x40...0x5F) or in adaptive Rice codes (0x60...0x7F). Version 3 files are
    /// read as they are (every version 3 list is a version 4 list that happens to use no Rice
    /// block, so lists copy verbatim into a new base); older files are rejected ("unknown
    /// format version N"); rebuild them from an edge list or the log.
    public static let formatVersion: UInt32 = 4
    /// The versions a reader accepts.
    public static let readableVersions: ClosedRange<UInt32> = 3...4
    public static let magic: [UInt8] = Array("SDBGRAPH".utf8)
    public static let footerMagic: [UInt8] = Array("SDBGEND\n".utf8)
    public static let headerBytes = 64
    public static let footerBytes = 112
    public static let sectionCount = 4
    public static let headerSeed: UInt64 = 0x5344_4247_4844_5231
    public static let sectionSeed: UInt64 = 0x5344_4247_5345_4331
    public static let footerSeed: UInt64 = 0x5344_4247_4654_5231
    public static let offsetBits: UInt64 = 40
    public static let offsetMask: UInt64 = (1 << 40) - 1
    public static let degreeEscape: UInt64 = 255
    public static let indexEntryBytes = 6
    public static let indexEntryMask: UInt64 = (1 << 48) - 1

    /// Bytes of an index section for `userCount` users (entries, then padding).
    public static func indexBytes(userCount: Int) -> Int { (userCount * indexEntryBytes + 2 + 7) & ~7 }
    public static let fileSuffix = ".graph"
    public static let temporarySuffix = ".tmp"

    public static func fileName(generation: UInt64) -> String {
        let digits = String(generation)
        return "base-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + fileSuffix
    }

    /// The generation a base file name carries, or nil if the name is not a base file's.
    public static func generation(ofFileNamed name: String) -> UInt64? {
        guard name.hasPrefix("base-"), name.hasSuffix(fileSuffix) else { return nil }
        let digits = name.dropFirst(5).dropLast(fileSuffix.count)
        guard digits.utf8.count == 20, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return UInt64(digits)
    }
}

/// One direction of a base: an index of N packed words and the coded lists it points into.
/// A view into memory its `GraphBase` owns; valid while that base is alive.
@usableFromInline
struct Adjacency: @unchecked Sendable {
    // @unchecked: the memory is immutable after the base is built or read.
    @usableFromInline let index: UnsafeRawPointer
    @usableFromInline let userCount: Int
    @usableFromInline let lists: UnsafeRawPointer
    @usableFromInline let listsBytes: Int

    @usableFromInline
    init(index: UnsafeRawPointer, userCount: Int, lists: UnsafeRawPointer, listsBytes: Int) {
        self.index = index
        self.userCount = userCount
        self.lists = lists
        self.listsBytes = listsBytes
    }

    /// The 48-bit index entry of user `u` (< userCount): one unaligned 8-byte load.
    @inlinable @inline(__always)
    func entry(_ u: Int) -> UInt64 {
        UInt64(littleEndian: index.loadUnaligned(fromByteOffset: u &* GraphFormat.indexEntryBytes, as: UInt64.self)) & GraphFormat.indexEntryMask
    }

    @inlinable
    func degree(_ user: UInt32) -> Int {
        let u = Int(user)
        guard u < userCount else { return 0 }
        let word = entry(u)
        let degree = word >> GraphFormat.offsetBits
        if degree < GraphFormat.degreeEscape { return Int(degree) }
        let offset = Int(word & GraphFormat.offsetMask)
        return Int(UInt32(littleEndian: lists.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// The degree as the index holds it: exact below `degreeEscape`, else `degreeEscape`
    /// (the true degree sits at the list's head: one more cache line to reach).
    @inlinable @inline(__always)
    func cappedDegree(_ user: UInt32) -> UInt64 {
        let u = Int(user)
        guard u < userCount else { return 0 }
        return entry(u) >> GraphFormat.offsetBits
    }

    /// Whether the base holds a -> b: searches the shorter of a's following list and b's
    /// follower list. Compares the degrees from the index alone unless both are escaped, so a
    /// popular b costs no extra load.
    @inlinable @inline(__always)
    static func edge(_ a: UInt32, _ b: UInt32, following: Adjacency, followers: Adjacency) -> Bool {
        let da = following.cappedDegree(a), db = followers.cappedDegree(b)
        let aShorter = da < GraphFormat.degreeEscape || db < GraphFormat.degreeEscape ? da <= db : following.degree(a) <= followers.degree(b)
        return aShorter ? following.contains(a, b) : followers.contains(b, a)
    }

    /// The user's coded list and its length (a nil list when the degree is 0).
    @inlinable
    func list(_ user: UInt32) -> (UnsafeRawPointer?, Int) {
        let u = Int(user)
        guard u < userCount else { return (nil, 0) }
        let word = entry(u)
        let degree = word >> GraphFormat.offsetBits
        let offset = Int(word & GraphFormat.offsetMask)
        if degree == 0 { return (nil, 0) }
        if degree < GraphFormat.degreeEscape { return (lists + offset, Int(degree)) }
        return (lists + offset + 4, Int(UInt32(littleEndian: lists.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
    }

    @inlinable
    func contains(_ user: UInt32, _ neighbour: UInt32) -> Bool {
        let (list, count) = self.list(user)
        guard let list else { return false }
        return GraphCodec.contains(list, count: count, neighbour)
    }

    /// The bytes of a user's whole coded entry (escape word included), for verbatim copies.
    func rawEntry(_ user: UInt32) -> UnsafeRawBufferPointer {
        let u = Int(user)
        guard u < userCount else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let offset = Int(entry(u) & GraphFormat.offsetMask)
        let end = u + 1 < userCount ? Int(entry(u + 1) & GraphFormat.offsetMask) : listsBytes - GraphCodec.paddingBytes
        return UnsafeRawBufferPointer(start: lists + offset, count: end - offset)
    }
}

/// An immutable base: the image of one base file in memory (built in memory and written, or
/// read and verified), with both directions as views into it.
///
/// Lifetime: the memory is freed in deinit; every `Adjacency` taken from a base is valid only
/// while the caller holds the base. Thread safety: immutable, so shared freely.
public final class GraphBase: @unchecked Sendable {
    // @unchecked: the image is never written after init.
    let image: UnsafeMutableRawBufferPointer
    public let generation: UInt64
    public let coveredLSN: UInt64
    public let userCount: Int
    public let edgeCount: Int
    @usableFromInline let following: Adjacency
    @usableFromInline let followers: Adjacency
    /// Byte sizes of the four sections (index and lists per direction, lists with padding).
    public let followingIndexBytes: Int, followingListsBytes: Int, followersIndexBytes: Int, followersListsBytes: Int

    /// Takes ownership of `image` (allocated with alignment 8), which must already be verified.
    init(image: UnsafeMutableRawBufferPointer) {
        self.image = image
        let raw = UnsafeRawBufferPointer(image)
        generation = raw.loadLE(UInt64.self, at: 16)
        coveredLSN = raw.loadLE(UInt64.self, at: 24)
        userCount = Int(raw.loadLE(UInt64.self, at: 32))
        edgeCount = Int(raw.loadLE(UInt64.self, at: 40))
        let footer = raw.count - GraphFormat.footerBytes
        func section(_ i: Int) -> (Int, Int) {
            (Int(raw.loadLE(UInt64.self, at: footer + i * 24)), Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8)))
        }
        let (oi, oiBytes) = section(0), (ol, olBytes) = section(1), (ii, iiBytes) = section(2), (il, ilBytes) = section(3)
        let base = image.baseAddress!
        following = Adjacency(index: UnsafeRawPointer(base + oi), userCount: userCount,
                              lists: UnsafeRawPointer(base + ol), listsBytes: olBytes)
        followers = Adjacency(index: UnsafeRawPointer(base + ii), userCount: userCount,
                              lists: UnsafeRawPointer(base + il), listsBytes: ilBytes)
        followingIndexBytes = oiBytes
        followingListsBytes = olBytes
        followersIndexBytes = iiBytes
        followersListsBytes = ilBytes
    }

    deinit { image.deallocate() }

    public var fileBytes: Int { image.count }

    /// The same sections under a new header: another generation and covered LSN. The sections
    /// and footer (whose checksums do not cover the header) are copied verbatim.
    func relabeled(generation: UInt64, coveredLSN: UInt64) -> GraphBase {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: image.count, alignment: 8)
        copy.copyMemory(from: UnsafeRawBufferPointer(image))
        copy.storeLE(generation, at: 16)
        copy.storeLE(coveredLSN, at: 24)
        copy.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: copy[0..<56]), seed: GraphFormat.headerSeed), at: 56)
        if let problem = GraphBase.verify(UnsafeRawBufferPointer(copy)) {
            preconditionFailure("relabeled graph base is invalid: \(problem)")
        }
        return GraphBase(image: copy)
    }

    /// An empty base (no users) covering nothing.
    static func empty(generation: UInt64, coveredLSN: UInt64) -> GraphBase {
        var builder = GraphBaseBuilder(userCount: 0, generation: generation, coveredLSN: coveredLSN)
        builder.finishDirection()
        builder.finishDirection()
        return builder.finish()
    }

    /// Verifies a file image: magic, version, header, footer and section checksums, bounds and
    /// index entries. Returns what is wrong, or nil when the image is sound.
    static func verify(_ raw: UnsafeRawBufferPointer) -> String? {
        guard raw.count >= GraphFormat.headerBytes + GraphFormat.footerBytes else { return "file too short (\(raw.count) bytes)" }
        guard GraphFormat.magic.elementsEqual(raw[0..<8]) else { return "bad magic" }
        let version = raw.loadLE(UInt32.self, at: 8)
        guard GraphFormat.readableVersions.contains(version) else { return "unknown format version \(version)" }
        guard Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<56]), seed: GraphFormat.headerSeed) == raw.loadLE(UInt64.self, at: 56) else {
            return "header checksum mismatch"
        }
        let footer = raw.count - GraphFormat.footerBytes
        guard Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + 104)]), seed: GraphFormat.footerSeed)
                == raw.loadLE(UInt64.self, at: footer + 104) else { return "footer checksum mismatch" }
        guard GraphFormat.footerMagic.elementsEqual(raw[(footer + 96)..<(footer + 104)]) else { return "bad footer magic" }
        let userCount = raw.loadLE(UInt64.self, at: 32)
        let edgeCount = raw.loadLE(UInt64.self, at: 40)
        guard userCount < (1 << 33), edgeCount < (1 << 40) else { return "implausible user or edge count" }
        var previousEnd = GraphFormat.headerBytes
        for i in 0..<GraphFormat.sectionCount {
            // Truncating: a value past Int.max reads as negative and fails the bounds check
            // (a plain Int(_:) would trap on it).
            let offset = Int(truncatingIfNeeded: raw.loadLE(UInt64.self, at: footer + i * 24))
            let length = Int(truncatingIfNeeded: raw.loadLE(UInt64.self, at: footer + i * 24 + 8))
            guard offset >= previousEnd, offset % 8 == 0, length >= 0, offset <= footer, length <= footer - offset else {
                return "section \(i) out of bounds"
            }
            // Alignment padding is zeros: no byte of the file is outside every check.
            if let pad = raw[previousEnd..<offset].firstIndex(where: { $0 != 0 }) { return "non-zero padding byte at offset \(pad)" }
            if i % 2 == 0 {
                guard length == GraphFormat.indexBytes(userCount: Int(userCount)) else { return "section \(i): index size \(length) for \(userCount) users" }
            } else {
                guard length >= GraphCodec.paddingBytes else { return "section \(i): lists without padding" }
            }
            let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), seed: GraphFormat.sectionSeed)
            guard sum == raw.loadLE(UInt64.self, at: footer + i * 24 + 16) else { return "section \(i) (offset \(offset), \(length) bytes) checksum mismatch" }
            previousEnd = offset + length
        }
        if let pad = raw[previousEnd..<footer].firstIndex(where: { $0 != 0 }) { return "non-zero padding byte at offset \(pad)" }
        // Index entries: offsets increase, every list lies inside its section, degrees add up.
        for direction in 0..<2 {
            let indexOffset = Int(raw.loadLE(UInt64.self, at: footer + direction * 48))
            let listsOffset = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 24))
            let listsLength = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 24 + 8)) - GraphCodec.paddingBytes
            var last = 0
            var total: UInt64 = 0
            for u in 0..<Int(userCount) {
                let word = raw.loadLE(UInt64.self, at: indexOffset + u * GraphFormat.indexEntryBytes) & GraphFormat.indexEntryMask
                let offset = Int(word & GraphFormat.offsetMask)
                let degree = word >> GraphFormat.offsetBits
                guard offset >= last, offset <= listsLength else { return "direction \(direction): index entry \(u) out of bounds" }
                if degree > 0 {
                    guard offset < listsLength else { return "direction \(direction): list \(u) past the end" }
                }
                if degree >= GraphFormat.degreeEscape {
                    guard offset + 4 <= listsLength else { return "direction \(direction): list \(u) past the end" }
                    total += UInt64(raw.loadLE(UInt32.self, at: listsOffset + offset))
                } else {
                    total += degree
                }
                last = offset
            }
            if total != edgeCount { return "direction \(direction): degrees add up to \(total), not \(edgeCount)" }
        }
        return nil
    }
}

/// Builds a base file image in memory, one direction after the other, users in order.
/// Single owner; `finish()` hands the memory to a `GraphBase`.
struct GraphBaseBuilder {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    private var count: Int
    let userCount: Int
    private let generation: UInt64
    private let coveredLSN: UInt64
    private var sections: [(offset: Int, length: Int)] = []
    private var indexOffset = 0
    private var listsOffset = 0
    private var nextUser = 0
    private(set) var edgeCount = 0
    private var directionEdges = 0
    /// Whether lists of at most one block (and every following list) may take the Rice and
    /// adaptive Rice forms. Off: every list is coded in the packed and varint forms, which
    /// decode about twice as fast (bench, small, quiet, side by side: follower-list decode
    /// 485M vs 230M edges/s, forEach 19.3x vs 14.2x SQLite, membership 7.9M vs 7.1M/s) for
    /// about 2.4 bits/edge more on following lists and 0.3 on followers at medium. Readers take
    /// every form either way.
    var denseLists = false

    init(userCount: Int, generation: UInt64, coveredLSN: UInt64, expectedBytes: Int = 4096) {
        self.userCount = userCount
        self.generation = generation
        self.coveredLSN = coveredLSN
        capacity = max(4096, expectedBytes)
        base = .allocate(byteCount: capacity, alignment: 8)
        count = GraphFormat.headerBytes
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        startDirection()
    }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let newCapacity = max(capacity * 2, count + extra)
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 8)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    private mutating func pad(to alignment: Int) {
        let padded = (count + alignment - 1) / alignment * alignment
        reserve(padded - count)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: padded - count)
        count = padded
    }

    private mutating func startDirection() {
        pad(to: 8)
        indexOffset = count
        let bytes = GraphFormat.indexBytes(userCount: userCount)
        reserve(bytes)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        count += bytes
        sections.append((indexOffset, bytes))
        listsOffset = count
        nextUser = 0
        directionEdges = 0
    }

    private mutating func setIndex(_ user: Int, offset: Int, degree: Int) {
        precondition(offset <= Int(GraphFormat.offsetMask), "lists section over 1 TiB")
        let word = UInt64(offset) | UInt64(min(degree, Int(GraphFormat.degreeEscape))) << GraphFormat.offsetBits
        let at = base + indexOffset + user * GraphFormat.indexEntryBytes
        at.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, as: UInt32.self)
        at.storeBytes(of: UInt16(truncatingIfNeeded: word >> 32).littleEndian, toByteOffset: 4, as: UInt16.self)
    }

    /// Appends the list of the next user (users must come in order; skipped users get degree 0).
    mutating func append(user: Int, _ values: UnsafeBufferPointer<UInt32>) {
        precondition(user >= nextUser && user < userCount, "users must be appended in order")
        fillEmpty(upTo: user)
        let offset = count - listsOffset
        if values.isEmpty {
            setIndex(user, offset: offset, degree: 0)
        } else {
            let escape = values.count >= Int(GraphFormat.degreeEscape)
            // The fast forms unless `denseLists`; even then the follower lists of more than a
            // block keep them (see GraphCodec.Forms).
            let forms: GraphCodec.Forms = !denseLists || (sections.count >= 2 && values.count > GraphCodec.blockSize) ? .fast : .all
            let size = GraphCodec.encodedSize(values, forms: forms) + (escape ? 4 : 0)
            reserve(size)
            if escape {
                (base + count).storeBytes(of: UInt32(values.count).littleEndian, as: UInt32.self)
                count += 4
            }
            count += GraphCodec.encode(values, into: base + count, forms: forms)
            setIndex(user, offset: offset, degree: values.count)
        }
        directionEdges += values.count
        nextUser = user + 1
    }

    /// Appends an already coded entry (escape word included) of `degree` values, copied verbatim.
    mutating func appendCoded(user: Int, _ entry: UnsafeRawBufferPointer, degree: Int) {
        precondition(user >= nextUser && user < userCount, "users must be appended in order")
        fillEmpty(upTo: user)
        let offset = count - listsOffset
        reserve(entry.count)
        if entry.count > 0 { (base + count).copyMemory(from: entry.baseAddress!, byteCount: entry.count) }
        count += entry.count
        setIndex(user, offset: offset, degree: degree)
        directionEdges += degree
        nextUser = user + 1
    }

    private mutating func fillEmpty(upTo user: Int) {
        let offset = count - listsOffset
        while nextUser < user {
            setIndex(nextUser, offset: offset, degree: 0)
            nextUser += 1
        }
    }

    /// Ends the current direction (the following lists first, then the followers lists).
    mutating func finishDirection() {
        fillEmpty(upTo: userCount)
        reserve(GraphCodec.paddingBytes)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: GraphCodec.paddingBytes)
        count += GraphCodec.paddingBytes
        sections.append((listsOffset, count - listsOffset))
        if sections.count == 2 {
            edgeCount = directionEdges
            startDirection()
        } else {
            precondition(directionEdges == edgeCount, "both directions must hold the same edges")
        }
    }

    /// Writes header and footer and hands the image to a new base.
    consuming func finish() -> GraphBase {
        precondition(sections.count == 4, "both directions must be finished")
        pad(to: 8)
        reserve(GraphFormat.footerBytes)
        let footer = count
        count += GraphFormat.footerBytes
        let image = UnsafeMutableRawBufferPointer(start: base, count: count)
        image.storeLE(GraphFormat.formatVersion, at: 8)
        image.storeLE(UInt32(0), at: 12)
        for (i, byte) in GraphFormat.magic.enumerated() { image[i] = byte }
        image.storeLE(generation, at: 16)
        image.storeLE(coveredLSN, at: 24)
        image.storeLE(UInt64(userCount), at: 32)
        image.storeLE(UInt64(edgeCount), at: 40)
        image.storeLE(UInt64(0), at: 48)
        image.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[0..<56]), seed: GraphFormat.headerSeed), at: 56)
        for (i, section) in sections.enumerated() {
            image.storeLE(UInt64(section.offset), at: footer + i * 24)
            image.storeLE(UInt64(section.length), at: footer + i * 24 + 8)
            let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[section.offset..<(section.offset + section.length)]),
                                    seed: GraphFormat.sectionSeed)
            image.storeLE(sum, at: footer + i * 24 + 16)
        }
        for (i, byte) in GraphFormat.footerMagic.enumerated() { image[footer + 96 + i] = byte }
        image.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: image[footer..<(footer + 104)]), seed: GraphFormat.footerSeed),
                      at: footer + 104)
        // Check before it can reach the disk, as a reader will after it comes back.
        if let problem = GraphBase.verify(UnsafeRawBufferPointer(image)) {
            preconditionFailure("graph base builder produced an invalid image: \(problem)")
        }
        return GraphBase(image: image)
    }
}
