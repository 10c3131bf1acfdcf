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
///          8   4  format version (7; 3 to 6 are read too)
///          12  4  flags (0)
///          16  8  generation
///          24  8  covered LSN: every graph record of the log up to it is in this base
///          32  8  user count N (users are 0 ..< N in both directions)
///          40  8  edge count E (each direction holds E entries)
///          48  8  reserved (0)
///          56  8  XXH3-64 of bytes 0..<56, seed `GraphFormat.headerSeed`
///     64   four sections, each starting on an 8-byte boundary, zero padding between:
///          following index  (below)
///          following lists  coded lists (GraphCodec), then 8 zero bytes of decode padding
///          followers index  the same as the following index; format 7: the filtered index
///                           (below), starting on a 64-byte boundary of the file
///          followers lists  the same; format 6: Rice lists (GraphRiceCodec)
///     end  footer, 112 bytes:
///          4 x (u64 offset, u64 length, u64 XXH3-64 of the section, seed `sectionSeed`)
///          8  magic "SDBGEND\n"
///          8  XXH3-64 of the footer's first 104 bytes, seed `footerSeed`
///
/// A user's entry in a lists section is its coded list, preceded by its true degree as a u32
/// when the degree is 255 or more (`degreeEscape`).
///
/// Index, formats 5 and 6 (grouped): users in groups of 32, G = ceil(N / 32) groups:
///
///     0       u64 L: how many long entries (below) the direction has
///     8       G group records of 72 bytes:
///             u64  the group's short base (the byte offset of its first short entry, 40 bits)
///                  | the number of long entries of the users before the group << 40 (24 bits)
///             32 x (u8 degree, u8 length), one pair per user of the group (zeros past N):
///                  degree = min(degree, 255); length = the entry's bytes when 1...254 (a
///                  short entry), 0 for no list (degree 0) or a long entry (degree > 0)
///     8+72G   L x u64: the byte offset of each long entry, in user order
///
/// Short entries (under 255 bytes) come first in the lists section, in user order and
/// back to back, so a user's offset is its group's short base plus the lengths of the pairs
/// before it in the group; long entries follow them, in user order, each found through the
/// table (its rank: the group's count plus the long pairs before it). 18 bits a user (and 64
/// a long entry) where format 4 took 48 (a 40-bit offset and the degree per user): about 0.8
/// bits per edge less at a mean degree of 35, and the index of a million users is 2.4 MB
/// instead of 6. (Records of 16 users took 20 bits a user: measured 0.06 bits per edge more
/// on the bench's medium graph, enough to keep its following lists above 14 bits per edge.)
///
/// Index, format 7 followers (filtered): users in records of 16, R = ceil(N / 16) records:
///
///     0       R records of 64 bytes:
///             0   u64  the record's short base (40 bits) | long entries before it << 40 (24 bits)
///             8   16 x u8  degree = min(degree, 255), one per user (zeros past N)
///             24  16 x u8  length = entry bytes when 1...254 (short), 0 for no list or a long one
///             40  16 x 12 bits, LSB first: the user's filter (`GraphFormat.filterMask`: the OR
///                 of its values' bits; 0 for no list and past N)
///     64R     L x u64: the byte offset of each long entry, in user order (L = (length - 64R) / 8)
///
/// The lists section is laid out as in format 5 (short entries first, then long ones). 32 bits
/// a user where format 5 takes 18: a membership test reads one 64-byte line of the index (the
/// section starts on a 64-byte boundary, so a record never straddles two), sums 2 words of
/// lengths instead of 8 words of pairs, and answers most tests of a value against a short list
/// that does not hold it from the filter, without reading the list.
///
/// Index, formats 3 and 4: N x 6-byte entries, zero padding to an 8-byte boundary (at least 2
/// bytes, so an 8-byte load of the last entry stays inside). An entry is 48 bits,
/// `offset | degree << 40`: the byte offset of the user's entry within the lists section (40
/// bits) and the degree (8 bits, 255 = escaped). Degree 0 has no list. Entries are in user order.
///
/// A reader rejects a file whose magic, version, checksums, section bounds or index do not
/// check out, naming the file and the reason; it never returns data from such a file.
///
/// These constants are part of the format and must not change.
public enum GraphFormat {
    /// 2: a block's gaps may be varints (mode byte 0xFF, see `GraphCodec`). 3: 6-byte index
    /// entries with an 8-bit degree (was 8 bytes, 24 bits). 4: a block's gaps may be Rice-coded
    /// (mode bytes 0x40...0x5F) or in adaptive Rice codes (0x60...0x7F). 5: the grouped index
    /// (lists coded as in 4; short entries first, long ones after them). 6: the follower lists
    /// are Rice lists (`GraphRiceCodec`; the index and the following lists as in 5). Versions 3
    /// to 5 are read as they are (every version 3 list is a version 4 list that happens to use
    /// no Rice block; following entries copy verbatim between versions 4 to 6, follower entries
    /// between 4 and 5, and a merge codes follower lists again between 5 and 6); older files
    /// are rejected ("unknown format version N"); rebuild them from an edge list or the log.
    /// 7: the lists and the following index as in 5; the followers index in filtered records
    /// (`filteredUsers` users in one 64-byte record with a 12-bit filter per user, see
    /// "Index, format 7 followers" above). Versions 3 to 6 are still read as they are; a merge
    /// writes the builder's version (7 by default), copying following entries and, from 4, 5
    /// or 7, follower entries verbatim (their filters computed from the decoded entry when the
    /// old base had none).
    public static let formatVersion: UInt32 = 7
    /// The version the builder writes by default: 7 (format 5's lists and following index,
    /// the filtered followers index). Format 6 takes 1.4 bits an edge less for follower lists
    /// (medium: 15.71 -> 14.29) but reads them slower (side by side, quiet, `graph-profile
    /// 100000 5:max:0,6:max`: copy 304M -> 225M edges/s, membership 8.3M -> 7.3M/s,
    /// intersection 642k -> 551k/s, page 3.89M -> 3.78M/s), and neither meets the 14
    /// bits; `GraphBuildOptions.compact` writes it.
    public static let defaultVersion: UInt32 = 7
    /// The versions a reader accepts.
    public static let readableVersions: ClosedRange<UInt32> = 3...7
    /// The versions the builder writes (4 to 6 for compatibility tests and side-by-side measurements).
    public static let writableVersions: ClosedRange<UInt32> = 4...7

    /// Whether a base of `version` codes its follower lists as Rice lists (`GraphRiceCodec`):
    /// 6 only. Its following lists, and every list of the other versions, are `GraphCodec` lists.
    @inlinable
    public static func riceFollowers(version: UInt32) -> Bool { version == 6 }

    /// Whether direction `direction` (0 following, 1 followers) of a base of `version` has the
    /// filtered index (format 7's followers).
    @inlinable
    public static func filteredIndex(version: UInt32, direction: Int) -> Bool { version >= 7 && direction == 1 }

    /// Format 7 followers index: users per record, its shift, bytes per record, and where a
    /// record keeps its 16 degree bytes, its 16 length bytes and its 16 12-bit filters.
    public static let filteredUsers = 16
    public static let filteredShift = 4
    public static let filteredBytes = 64
    public static let filteredDegreesAt = 8
    public static let filteredLengthsAt = 24
    public static let filteredFiltersAt = 40
    /// The filter of a list sets, for each of its values v, bit `p1(v)` and, when the list's
    /// degree is at most `filterPairsMax`, bit `p2(v)` too (`filterMask`): 12 bits hold two
    /// bits a value well up to about 6 values and one bit a value beyond.
    public static let filterPairsMax: UInt64 = 6
    /// Format 7: bytes of the filtered index section: the records, then the long-entry table.
    public static func filteredIndexBytes(userCount: Int, longCount: Int) -> Int {
        filteredCount(userCount: userCount) * filteredBytes + longCount * 8
    }
    public static func filteredCount(userCount: Int) -> Int { (userCount + filteredUsers - 1) >> filteredShift }

    /// The filter bits value `value` needs in the filter of a list of (capped) degree `degree`:
    /// from h = value * 0x9E3779B97F4A7C15 (mod 2^64), p1 = ((h >> 32) & 0xFFFF) * 12 >> 16 and
    /// p2 = (h >> 48) * 12 >> 16 (each 0...11); bit p1, and bit p2 when degree <= 6. A list's
    /// filter is the OR of its values' bits (0 for no list), so a value whose bits are not
    /// all set is surely not in the list.
    @inlinable @inline(__always)
    public static func filterMask(_ value: UInt32, degree: UInt64) -> UInt64 {
        let h = UInt64(value) &* 0x9E37_79B9_7F4A_7C15
        let p1 = (((h &>> 32) & 0xFFFF) &* 12) &>> 16
        let p2 = ((h &>> 48) &* 12) &>> 16
        return (1 &<< p1) | (degree <= filterPairsMax ? 1 &<< p2 : 0)
    }

    /// The filter of `values` (a list of `degree` values, capped at 255 as the index holds it).
    public static func filter(_ values: UnsafeBufferPointer<UInt32>) -> UInt64 {
        let degree = UInt64(min(values.count, Int(degreeEscape)))
        var bits: UInt64 = 0
        for v in values { bits |= filterMask(v, degree: degree) }
        return bits
    }

    /// Format 7: masks keeping the bytes of a record's 16 before byte i: the 16 bytes at
    /// `filteredPrefixMasks + 16 - i` (16 bytes of 0xFF, then 16 zero bytes). Made once, never freed.
    nonisolated(unsafe) public static let filteredPrefixMasks: UnsafeRawPointer = {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 32)
        for k in 0..<32 { bytes.storeBytes(of: UInt8(k < 16 ? 0xFF : 0), toByteOffset: k, as: UInt8.self) }
        return UnsafeRawPointer(bytes)
    }()
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
    /// Format 5: users per group, its shift, bytes per group record.
    public static let groupUsers = 32
    public static let groupShift = 5
    public static let groupBytes = 72
    /// Format 5: masks over a group record's 32 pairs (64 bytes) that keep the pairs before
    /// pair i: the 8 words at `pairMasks + pairMaskLengths - 2i` keep their length bytes (the
    /// odd bytes), the 8 at `pairMasks + pairMaskPairs - 2i` the whole pairs. Each half is 64
    /// bytes of kept pattern then 64 zero bytes, so the window slides from all kept (i = 32) to
    /// none (i = 0). Made once, never freed.
    nonisolated(unsafe) public static let pairMasks: UnsafeRawPointer = {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
        for k in 0..<256 {
            let kept = k & 127 < 64
            let byte: UInt8 = !kept ? 0 : k < 128 ? (k & 1 == 1 ? 0xFF : 0) : 0xFF
            bytes.storeBytes(of: byte, toByteOffset: k, as: UInt8.self)
        }
        return UnsafeRawPointer(bytes)
    }()
    public static let pairMaskLengths = 64
    public static let pairMaskPairs = 128 + 64

    /// Format 5: the longest entry kept short (in the group's length byte).
    public static let shortEntryBytesMax = 254
    /// Format 5: at most this many long entries per direction (the rank's 24 bits).
    public static let longEntriesMax = 1 << 24

    /// Bytes of a format 3 or 4 index section for `userCount` users (entries, then padding).
    public static func indexBytes(userCount: Int) -> Int { (userCount * indexEntryBytes + 2 + 7) & ~7 }

    /// Bytes of a format 5 index section: the long count, the group records, the long table.
    public static func groupedIndexBytes(userCount: Int, longCount: Int) -> Int {
        8 + groupCount(userCount: userCount) * groupBytes + longCount * 8
    }

    public static func groupCount(userCount: Int) -> Int { (userCount + groupUsers - 1) >> groupShift }

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

    /// Format 5: one bit per pair of the word (bit 15 of its lane) whose entry is long:
    /// degree not 0, length 0.
    @inlinable @inline(__always)
    static func longPairs(_ word: UInt64) -> UInt64 {
        let lanes: UInt64 = 0x00FF_00FF_00FF_00FF, high: UInt64 = 0x8000_8000_8000_8000
        // A lane (<= 255) plus 0x7FFF reaches bit 15 exactly when it is not 0, with no carry out.
        let degreeSet = ((word & lanes) &+ 0x7FFF_7FFF_7FFF_7FFF) & high
        let lengthSet = (((word &>> 8) & lanes) &+ 0x7FFF_7FFF_7FFF_7FFF) & high
        return degreeSet & ~lengthSet
    }

    /// The offsets and degrees of every user's entry in one direction of a verified image, in
    /// user order: `body(user, offset in the lists section, entry bytes, capped degree)` (the
    /// degree as the index holds it, 255 when escaped; bytes 0 for no list). For tools and
    /// tests that look into a base file (`socialdb check --deep`, corruption tests).
    public static func forEachEntry(_ raw: UnsafeRawBufferPointer, direction: Int,
                                    _ body: (_ user: Int, _ offset: Int, _ bytes: Int, _ degree: Int) -> Void) {
        let footer = raw.count - footerBytes
        let version = raw.loadLE(UInt32.self, at: 8)
        let userCount = Int(raw.loadLE(UInt64.self, at: 32))
        let index = Int(raw.loadLE(UInt64.self, at: footer + direction * 48))
        let listsEnd = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 24 + 8)) - GraphCodec.paddingBytes
        if version >= 5 {
            let filtered = filteredIndex(version: version, direction: direction)
            let indexLength = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 8))
            let longCount = filtered ? (indexLength - filteredCount(userCount: userCount) * filteredBytes) / 8
                : Int(raw.loadLE(UInt64.self, at: index))
            let table = filtered ? index + filteredCount(userCount: userCount) * filteredBytes
                : index + 8 + groupCount(userCount: userCount) * groupBytes
            var short = 0
            var long = 0
            for u in 0..<userCount {
                let degree: Int, length: Int
                if filtered {
                    let record = index + (u >> filteredShift) * filteredBytes, i = u & (filteredUsers - 1)
                    degree = Int(raw[record + filteredDegreesAt + i])
                    length = Int(raw[record + filteredLengthsAt + i])
                } else {
                    let pair = index + 8 + (u >> groupShift) * groupBytes + 8 + (u & (groupUsers - 1)) * 2
                    degree = Int(raw[pair])
                    length = Int(raw[pair + 1])
                }
                if degree == 0 {
                    body(u, short, 0, 0)
                } else if length > 0 {
                    body(u, short, length, degree)
                    short += length
                } else {
                    let start = Int(raw.loadLE(UInt64.self, at: table + long * 8))
                    let end = long + 1 < longCount ? Int(raw.loadLE(UInt64.self, at: table + (long + 1) * 8)) : listsEnd
                    body(u, start, end - start, degree)
                    long += 1
                }
            }
            return
        }
        func entry(_ u: Int) -> (offset: Int, degree: Int) {
            let word = raw.loadLE(UInt64.self, at: index + u * indexEntryBytes) & indexEntryMask
            return (Int(word & offsetMask), Int(word >> offsetBits))
        }
        for u in 0..<userCount {
            let current = entry(u)
            let end = u + 1 < userCount ? entry(u + 1).offset : listsEnd
            body(u, current.offset, end - current.offset, current.degree)
        }
    }
}

/// How the base builder codes lists: the file format and, per direction, which lists take the
/// dense body forms (Rice and adaptive Rice, `GraphCodec.Forms.all`) rather than only the fast
/// ones (packed and varint). Readers take every form either way; this only trades size for
/// decode speed (see "Codec" in Docs/ARCHITECTURE.md for what was measured).
///
/// The default: format 7 (format 5's lists with the filtered followers index), every following
/// list dense, every follower list in the fast forms (`compact`, format 6: every follower list
/// a Rice list, `GraphRiceCodec`; `denseFollowersMax` applies to the other formats). Following lists are
/// read a list at a time (home timeline sources, intersections), and in the dense forms they
/// take 13.40 bits per edge instead of 15.76 on the bench's medium graph (13.96 with format 5's
/// index, under the 14). Follower lists are close to random subsets of the users, for
/// which one Rice parameter a list is near their entropy (see `GraphRiceCodec`); in format 5
/// they stayed in the fast forms (packed, varint), because the dense forms halve their decode
/// rate, and membership tests searched them first (`GraphStore.followersFirst`).
public struct GraphBuildOptions: Sendable, Equatable {
    /// The format written: `GraphFormat.defaultVersion` (7), 6 (`compact`), or 4 and 5 (their
    /// 6-byte entries and grouped followers index), for compatibility tests and side-by-side
    /// measurements.
    public var formatVersion: UInt32
    /// Following lists of at most this many values take the dense forms.
    public var denseFollowingMax: Int
    /// Follower lists of at most this many values take the dense forms.
    public var denseFollowersMax: Int

    public init(formatVersion: UInt32 = GraphFormat.defaultVersion, denseFollowingMax: Int = Int.max, denseFollowersMax: Int = 0) {
        precondition(GraphFormat.writableVersions.contains(formatVersion), "the builder writes graph format 4, 5 or 6")
        self.formatVersion = formatVersion
        self.denseFollowingMax = denseFollowingMax
        self.denseFollowersMax = denseFollowersMax
    }

    /// Every list in the fast forms (what the builder wrote before format 5): about 2.4 bits per
    /// edge more on following lists for faster membership tests (callgrind, below).
    /// Format 5: its follower lists are `GraphCodec` lists too (format 6 codes them as Rice lists).
    public static let fast = GraphBuildOptions(formatVersion: 5, denseFollowingMax: 0, denseFollowersMax: 0)

    /// The smallest form: format 6, follower lists as Rice lists (see `GraphFormat.defaultVersion`).
    public static let compact = GraphBuildOptions(formatVersion: 6)
}

/// One direction of a base: its index and the coded lists it points into. A view into memory
/// its `GraphBase` owns; valid while that base is alive.
@usableFromInline
struct Adjacency: @unchecked Sendable {
    // @unchecked: the memory is immutable after the base is built or read.
    @usableFromInline let index: UnsafeRawPointer
    @usableFromInline let userCount: Int
    @usableFromInline let lists: UnsafeRawPointer
    @usableFromInline let listsBytes: Int
    /// Format 5's grouped index; false: formats 3 and 4 (6-byte entries).
    @usableFromInline let grouped: Bool
    /// Format 5: the first group record and the long-entry table.
    @usableFromInline let groups: UnsafeRawPointer
    @usableFromInline let longOffsets: UnsafeRawPointer
    @usableFromInline let longCount: Int
    /// The lists are Rice lists (`GraphRiceCodec`: a format 6 base's followers), not
    /// `GraphCodec` lists.
    @usableFromInline let rice: Bool
    /// The in-memory search marks of the long entries (`SearchMarks`), by long-entry rank: a
    /// `UInt64` slot per long entry (byte offset of its marks << 1 | 1 when they are 32-bit),
    /// nil when this direction has none.
    @usableFromInline let markSlots: UnsafePointer<UInt64>?
    @usableFromInline let marks: UnsafeRawPointer
    /// `GraphFormat.pairMasks` (format 7's filtered index: `filteredPrefixMasks`), kept here
    /// so a lookup reads it with the view (no lazy global).
    @usableFromInline let pairMasks: UnsafeRawPointer
    /// Format 7's followers: the filtered index (records of 16 users in 64 bytes, with a filter
    /// per user); `grouped` is true as well.
    @usableFromInline let filtered: Bool
    /// The grouped index's record layout: users per record as a shift, bytes per record, where
    /// user i's degree byte and length byte are (`degreesAt + i * pairStride`, `lengthsAt + i *
    /// pairStride`). Format 5: 5, 72, 8, 9, 2; format 7's followers: 4, 64, 8, 24, 1.
    @usableFromInline let recordShift: Int
    @usableFromInline let recordBytes: Int
    @usableFromInline let degreesAt: Int
    @usableFromInline let lengthsAt: Int
    @usableFromInline let pairStride: Int

    @usableFromInline
    init(index: UnsafeRawPointer, indexBytes: Int, userCount: Int, lists: UnsafeRawPointer, listsBytes: Int, version: UInt32,
         direction: Int, marks: SearchMarks? = nil) {
        rice = direction == 1 && GraphFormat.riceFollowers(version: version)
        filtered = GraphFormat.filteredIndex(version: version, direction: direction)
        pairMasks = filtered ? GraphFormat.filteredPrefixMasks : GraphFormat.pairMasks
        markSlots = marks.map { UnsafePointer($0.slots) }
        self.marks = marks.map { UnsafeRawPointer($0.marks) } ?? lists
        self.index = index
        self.userCount = userCount
        self.lists = lists
        self.listsBytes = listsBytes
        grouped = version >= 5
        if filtered {
            recordShift = GraphFormat.filteredShift
            recordBytes = GraphFormat.filteredBytes
            degreesAt = GraphFormat.filteredDegreesAt
            lengthsAt = GraphFormat.filteredLengthsAt
            pairStride = 1
            groups = index
            let records = GraphFormat.filteredCount(userCount: userCount) * GraphFormat.filteredBytes
            longCount = (indexBytes - records) / 8
            longOffsets = index + records
        } else {
            recordShift = GraphFormat.groupShift
            recordBytes = GraphFormat.groupBytes
            degreesAt = 8
            lengthsAt = 9
            pairStride = 2
            groups = index + 8
            if grouped {
                longCount = Int(UInt64(littleEndian: index.loadUnaligned(as: UInt64.self)))
                longOffsets = index + 8 + GraphFormat.groupCount(userCount: userCount) * GraphFormat.groupBytes
            } else {
                longCount = 0
                longOffsets = index
            }
        }
    }

    /// Formats 3 and 4: the 48-bit index entry of user `u` (< userCount): one unaligned 8-byte load.
    @inlinable @inline(__always)
    func entry(_ u: Int) -> UInt64 {
        UInt64(littleEndian: index.loadUnaligned(fromByteOffset: u &* GraphFormat.indexEntryBytes, as: UInt64.self)) & GraphFormat.indexEntryMask
    }

    /// Format 5: the group record of user `u` (format 7's followers: its filtered record).
    @inlinable @inline(__always)
    func record(_ u: Int) -> UnsafeRawPointer { groups + (u &>> recordShift) &* recordBytes }

    /// User `u`'s place in its record.
    @inlinable @inline(__always)
    func slot(_ u: Int) -> Int { u & ((1 &<< recordShift) &- 1) }

    /// Format 7's followers: user `u`'s filter (< userCount; 0 when it has no list).
    @inlinable @inline(__always)
    func filter(_ u: Int) -> UInt64 {
        let i = u & (GraphFormat.filteredUsers - 1)
        let word = UInt16(littleEndian: record(u).loadUnaligned(fromByteOffset: GraphFormat.filteredFiltersAt &+ (3 &* i) &>> 1, as: UInt16.self))
        return (UInt64(word) &>> UInt64((i & 1) &* 4)) & 0xFFF
    }

    /// Format 7's followers: whether `neighbour` may be in user `u`'s list (< userCount): false
    /// means surely not (no list, or a filter bit the value needs is clear).
    @inlinable @inline(__always)
    func mayContain(_ u: Int, _ neighbour: UInt32) -> Bool {
        let degree = UInt64(record(u).load(fromByteOffset: GraphFormat.filteredDegreesAt &+ (u & (GraphFormat.filteredUsers - 1)), as: UInt8.self))
        let need = GraphFormat.filterMask(neighbour, degree: degree)
        return filter(u) & need == need
    }

    /// The address of the index bytes that user `u` (< userCount) reads first, for prefetching.
    @inlinable @inline(__always)
    func entryAddress(_ u: Int) -> UnsafeRawPointer { grouped ? record(u) : index + u &* GraphFormat.indexEntryBytes }

    /// Format 5: the offset of user `u`'s entry (< userCount) in the lists section and its
    /// capped degree (0: no list; the offset is then meaningless). A short entry: the group's
    /// base plus the length bytes of the pairs before it (four pairs a word); a long entry: the
    /// table at its rank (the group's count plus the long pairs before it).
    @inlinable @inline(__always)
    func groupedEntry(_ u: Int) -> (offset: Int, degree: UInt64) {
        let (offset, degree, _) = rankedEntry(u)
        return (offset, degree)
    }

    /// `groupedEntry` with the long entry's rank (its place in the long-entry table), -1 for a
    /// short entry or none.
    ///
    /// The pairs before the user's are added without a branch on where the user sits in its
    /// group: all 8 words of pairs, each ANDed with its word of a mask that keeps the pairs
    /// before the user (`GraphFormat.pairMasks`, 8 consecutive words from a place that depends
    /// on the user), so no loop over the words (a loop, or its unrolled chain of compares,
    /// mispredicted about once a lookup: the user's place is random).
    @inlinable @inline(__always)
    func rankedEntry(_ u: Int) -> (offset: Int, degree: UInt64, rank: Int) {
        if filtered { return filteredEntry(u) }
        let r = record(u)
        let i = u & (GraphFormat.groupUsers - 1)
        let header = UInt64(littleEndian: r.loadUnaligned(as: UInt64.self))
        let pair = UInt16(littleEndian: r.loadUnaligned(fromByteOffset: 8 &+ i &* 2, as: UInt16.self))
        let degree = UInt64(pair & 0xFF)
        let words = r + 8
        if pair >= 0x100 || degree == 0 {
            // The length bytes of the pairs before i (each <= 254), in 16-bit lanes summed over
            // the 8 words (<= 2,032 a lane), folded by one multiply.
            let masks = pairMasks + (GraphFormat.pairMaskLengths &- 2 &* i)
            var sums: UInt64 = 0
            for w in 0..<8 {
                let word = UInt64(littleEndian: words.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self))
                sums &+= (word & masks.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self)) &>> 8
            }
            let offset = Int(truncatingIfNeeded: header & GraphFormat.offsetMask)
            return (offset &+ Int(truncatingIfNeeded: (sums &* 0x0001_0001_0001_0001) &>> 48), degree, -1)
        }
        // A long entry: its rank is the group's count plus the long pairs before it (whole
        // pairs kept by the mask; a cleared pair reads as no list).
        let masks = pairMasks + (GraphFormat.pairMaskPairs &- 2 &* i)
        var longs: UInt64 = 0
        for w in 0..<8 {
            let word = UInt64(littleEndian: words.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self))
            longs &+= GraphFormat.longPairs(word & masks.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self)) &>> 15
        }
        let rank = Int(truncatingIfNeeded: header &>> GraphFormat.offsetBits) &+ Int(truncatingIfNeeded: (longs &* 0x0001_0001_0001_0001) &>> 48)
        return (Int(truncatingIfNeeded: UInt64(littleEndian: longOffsets.loadUnaligned(fromByteOffset: rank &* 8, as: UInt64.self))), degree, rank)
    }

    /// `rankedEntry` in format 7's filtered index: the lengths before user i are bytes 0 ..< i
    /// of the record's 16 length bytes (two words, masked by `filteredPrefixMasks`), added in
    /// 16-bit lanes and folded by one multiply; a long entry's rank is the record's count plus
    /// the long users before it (degree byte set, length byte clear), counted a bit a byte.
    @inlinable @inline(__always)
    func filteredEntry(_ u: Int) -> (offset: Int, degree: UInt64, rank: Int) {
        let r = index + (u &>> GraphFormat.filteredShift) &* GraphFormat.filteredBytes
        let i = u & (GraphFormat.filteredUsers - 1)
        let header = UInt64(littleEndian: r.loadUnaligned(as: UInt64.self))
        let degree = UInt64(r.load(fromByteOffset: GraphFormat.filteredDegreesAt &+ i, as: UInt8.self))
        let length = r.load(fromByteOffset: GraphFormat.filteredLengthsAt &+ i, as: UInt8.self)
        let keep = pairMasks + (16 &- i)
        let keep0 = keep.loadUnaligned(as: UInt64.self), keep1 = keep.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let lengths0 = UInt64(littleEndian: r.loadUnaligned(fromByteOffset: GraphFormat.filteredLengthsAt, as: UInt64.self))
        let lengths1 = UInt64(littleEndian: r.loadUnaligned(fromByteOffset: GraphFormat.filteredLengthsAt &+ 8, as: UInt64.self))
        let lanes: UInt64 = 0x00FF_00FF_00FF_00FF
        if length != 0 || degree == 0 {
            let l0 = lengths0 & keep0, l1 = lengths1 & keep1
            let sums = (l0 & lanes) &+ ((l0 &>> 8) & lanes) &+ (l1 & lanes) &+ ((l1 &>> 8) & lanes)
            let offset = Int(truncatingIfNeeded: header & GraphFormat.offsetMask)
            return (offset &+ Int(truncatingIfNeeded: (sums &* 0x0001_0001_0001_0001) &>> 48), degree, -1)
        }
        // Bit 7 of each byte that is not 0 (no carry leaves a byte: 0x7F + 0x7F < 0x100).
        func nonzero(_ x: UInt64) -> UInt64 { (((x & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | x) & 0x8080_8080_8080_8080 }
        let degrees0 = UInt64(littleEndian: r.loadUnaligned(fromByteOffset: GraphFormat.filteredDegreesAt, as: UInt64.self)) & keep0
        let degrees1 = UInt64(littleEndian: r.loadUnaligned(fromByteOffset: GraphFormat.filteredDegreesAt &+ 8, as: UInt64.self)) & keep1
        let longs0 = (nonzero(degrees0) & ~nonzero(lengths0)) &>> 7, longs1 = (nonzero(degrees1) & ~nonzero(lengths1)) &>> 7
        let before = ((longs0 &+ longs1) &* 0x0101_0101_0101_0101) &>> 56
        let rank = Int(truncatingIfNeeded: header &>> GraphFormat.offsetBits) &+ Int(truncatingIfNeeded: before)
        return (Int(truncatingIfNeeded: UInt64(littleEndian: longOffsets.loadUnaligned(fromByteOffset: rank &* 8, as: UInt64.self))), degree, rank)
    }

    @inlinable
    func degree(_ user: UInt32) -> Int {
        let u = Int(user)
        guard u < userCount else { return 0 }
        let degree = cappedDegree(user)
        if degree < GraphFormat.degreeEscape { return Int(degree) }
        let offset = grouped ? groupedEntry(u).offset : Int(entry(u) & GraphFormat.offsetMask)
        return Int(UInt32(littleEndian: lists.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// The degree as the index holds it: exact below `degreeEscape`, else `degreeEscape`
    /// (the true degree sits at the list's head: one more cache line to reach).
    @inlinable @inline(__always)
    func cappedDegree(_ user: UInt32) -> UInt64 {
        let u = Int(user)
        guard u < userCount else { return 0 }
        if grouped {
            return UInt64(record(u).load(fromByteOffset: degreesAt &+ slot(u) &* pairStride, as: UInt8.self))
        }
        return entry(u) >> GraphFormat.offsetBits
    }

    /// Whether the base holds a -> b: searches the shorter of a's following list and b's
    /// follower list. Compares the degrees from the index alone unless both are escaped, so a
    /// popular b costs no extra load. With `followersFirst` (the store codes following lists in
    /// the dense forms and follower lists in the fast ones) it searches b's follower list
    /// whenever b has one: a packed block is searched eight gaps at a time and entered through
    /// the block directory, where a dense following list is walked a gap at a time (callgrind,
    /// see `GraphStore.followersFirst`).
    @inlinable @inline(__always)
    static func edge(_ a: UInt32, _ b: UInt32, following: Adjacency, followers: Adjacency, followersFirst: Bool = false) -> Bool {
        let db = followers.cappedDegree(b)
        if followersFirst { return db != 0 && followers.contains(b, a) }
        if followers.filtered && (Int(b) >= followers.userCount || !followers.mayContain(Int(b), a)) { return false }
        let da = following.cappedDegree(a)
        let aShorter = da < GraphFormat.degreeEscape || db < GraphFormat.degreeEscape ? da <= db : following.degree(a) <= followers.degree(b)
        return aShorter ? following.contains(a, b) : followers.contains(b, a)
    }

    /// The user's coded list and its length (a nil list when the degree is 0). Inlined: out of
    /// line, a membership test copied both directions' views to the stack to pass them.
    @inlinable @inline(__always)
    func list(_ user: UInt32) -> (UnsafeRawPointer?, Int) {
        let u = Int(user)
        guard u < userCount else { return (nil, 0) }
        let offset: Int, degree: UInt64
        if grouped {
            (offset, degree) = groupedEntry(u)
        } else {
            let word = entry(u)
            degree = word >> GraphFormat.offsetBits
            offset = Int(word & GraphFormat.offsetMask)
        }
        if degree == 0 { return (nil, 0) }
        if degree < GraphFormat.degreeEscape { return (lists + offset, Int(degree)) }
        return (lists + offset + 4, Int(UInt32(littleEndian: lists.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
    }

    @inlinable @inline(__always)
    func contains(_ user: UInt32, _ neighbour: UInt32) -> Bool {
        // Format 7's followers: the filter in the record answers most tests of a value that a
        // short list does not hold (and every test of a user without a list) before the
        // entry's offset is computed or its list read.
        if filtered { return filteredContains(user, neighbour) }
        if let markSlots {
            // A grouped index of `GraphCodec` lists with search marks: a long entry's block is
            // entered at the mark below `neighbour` (`GraphCodec.markedContains`).
            let u = Int(user)
            guard u < userCount else { return false }
            let (offset, degree, rank) = rankedEntry(u)
            if degree == 0 { return false }
            var list = lists + offset
            var count = Int(degree)
            if degree >= GraphFormat.degreeEscape {
                count = Int(UInt32(littleEndian: list.loadUnaligned(as: UInt32.self)))
                list += 4
            }
            if rank < 0 { return GraphCodec.contains(list, count: count, neighbour) }
            let slot = markSlots[rank]
            return GraphCodec.markedContains(list, count: count, neighbour, marks: marks + Int(truncatingIfNeeded: slot &>> 1),
                                             wide: slot & 1 != 0)
        }
        let (list, count) = self.list(user)
        guard let list else { return false }
        return rice ? GraphRiceCodec.contains(list, count: count, neighbour) : GraphCodec.contains(list, count: count, neighbour)
    }

    /// `contains` in format 7's filtered index, with its record layout as constants: one
    /// record (one 64-byte line) gives the degree and the filter, and the entry's offset when
    /// the filter lets `neighbour` through.
    @inlinable @inline(__always)
    func filteredContains(_ user: UInt32, _ neighbour: UInt32) -> Bool {
        let u = Int(user)
        guard u < userCount else { return false }
        let r = index + (u &>> GraphFormat.filteredShift) &* GraphFormat.filteredBytes
        let i = u & (GraphFormat.filteredUsers - 1)
        let degree = UInt64(r.load(fromByteOffset: GraphFormat.filteredDegreesAt &+ i, as: UInt8.self))
        let word = UInt16(littleEndian: r.loadUnaligned(fromByteOffset: GraphFormat.filteredFiltersAt &+ (3 &* i) &>> 1, as: UInt16.self))
        let filter = UInt64(word) &>> UInt64((i & 1) &* 4)
        let need = GraphFormat.filterMask(neighbour, degree: degree)
        // No list (filter 0) or a bit `neighbour` needs is clear: surely not in the list.
        if filter & need != need { return false }
        let (offset, _, rank) = filteredEntry(u)
        var list = lists + offset
        var count = Int(degree)
        if degree >= GraphFormat.degreeEscape {
            count = Int(UInt32(littleEndian: list.loadUnaligned(as: UInt32.self)))
            list += 4
        }
        if rank >= 0, let markSlots {
            let slot = markSlots[rank]
            return GraphCodec.markedContains(list, count: count, neighbour, marks: marks + Int(truncatingIfNeeded: slot &>> 1),
                                             wide: slot & 1 != 0)
        }
        return GraphCodec.contains(list, count: count, neighbour)
    }

    // The list walkers of this direction's codec (`AdjacencyBlockCodec`), for a coded list of
    // this adjacency (`list(_:)`).

    @inlinable
    func decode(_ list: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        if rice { GraphRiceCodec.decode(list, count: count, into: out) } else { GraphCodec.decode(list, count: count, into: out) }
    }

    @inlinable
    func scan(_ list: UnsafeRawPointer, count: Int, after: UInt32?, _ body: (UInt32) throws -> Bool) rethrows {
        if rice { try GraphRiceCodec.scan(list, count: count, after: after, body) } else { try GraphCodec.scan(list, count: count, after: after, body) }
    }

    @inlinable @inline(__always)
    func forEach(_ list: UnsafeRawPointer, count: Int, _ body: (UInt32) throws -> Void) rethrows {
        if rice { try GraphRiceCodec.forEach(list, count: count, body) } else { try GraphCodec.forEach(list, count: count, body) }
    }

    @inlinable
    func copy(_ list: UnsafeRawPointer, count: Int, after: UInt32?, limit: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        rice ? GraphRiceCodec.copy(list, count: count, after: after, limit: limit, into: out)
            : GraphCodec.copy(list, count: count, after: after, limit: limit, into: out)
    }

    @inlinable
    func intersect(_ probes: UnsafeBufferPointer<UInt32>, _ list: UnsafeRawPointer, count: Int, _ body: (UInt32) -> Bool) {
        if rice { GraphRiceCodec.intersect(probes, list, count: count, body) } else { GraphCodec.intersect(probes, list, count: count, body) }
    }

    /// The bytes of a user's whole coded entry (escape word included), for verbatim copies.
    func rawEntry(_ user: UInt32) -> UnsafeRawBufferPointer {
        let u = Int(user)
        guard u < userCount else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        if grouped {
            let (offset, degree) = groupedEntry(u)
            guard degree > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            let length = Int(record(u).load(fromByteOffset: lengthsAt &+ slot(u) &* pairStride, as: UInt8.self))
            if length > 0 { return UnsafeRawBufferPointer(start: lists + offset, count: length) }
            // A long entry ends where the next long one starts, the last at the section's end.
            // (The table is increasing: binary search for the first start past this one.)
            func start(_ rank: Int) -> Int { Int(UInt64(littleEndian: longOffsets.loadUnaligned(fromByteOffset: rank * 8, as: UInt64.self))) }
            var low = 0, high = longCount
            while low < high {
                let middle = (low + high) >> 1
                if start(middle) <= offset { low = middle + 1 } else { high = middle }
            }
            let end = low < longCount ? start(low) : listsBytes - GraphCodec.paddingBytes
            return UnsafeRawBufferPointer(start: lists + offset, count: end - offset)
        }
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
    /// The followers direction's search marks (nil for Rice lists, formats 3 and 4, or no long entry).
    let followerMarks: SearchMarks?
    /// Where the image lives when it is 2 MiB or more: advised huge pages (`HugePageRegion`).
    /// Membership tests, pages and intersections read a few bytes at random places of the
    /// whole image; with 4 KiB pages nearly every one of those reads was a TLB miss as well as
    /// a cache miss (in a virtual machine a TLB miss walks two sets of page tables).
    private let region: HugePageRegion?
    public let generation: UInt64
    public let coveredLSN: UInt64
    public let userCount: Int
    public let edgeCount: Int
    /// The format version of the file (3, 4 or 5).
    public let formatVersion: UInt32
    @usableFromInline let following: Adjacency
    @usableFromInline let followers: Adjacency
    /// Byte sizes of the four sections (index and lists per direction, lists with padding).
    public let followingIndexBytes: Int, followingListsBytes: Int, followersIndexBytes: Int, followersListsBytes: Int

    /// Takes ownership of `image` (allocated with alignment 8), which must already be verified.
    /// An image of 2 MiB or more is copied into huge pages and the original freed.
    init(image original: UnsafeMutableRawBufferPointer) {
        var image = original
        region = original.count >= HugePageRegion.hugePageBytes ? HugePageRegion(byteCount: original.count) : nil
        if let region {
            image = UnsafeMutableRawBufferPointer(start: region.base, count: original.count)
            image.copyMemory(from: UnsafeRawBufferPointer(original))
            original.deallocate()
        }
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
        formatVersion = raw.loadLE(UInt32.self, at: 8)
        following = Adjacency(index: UnsafeRawPointer(base + oi), indexBytes: oiBytes, userCount: userCount,
                              lists: UnsafeRawPointer(base + ol), listsBytes: olBytes, version: formatVersion, direction: 0)
        let plainFollowers = Adjacency(index: UnsafeRawPointer(base + ii), indexBytes: iiBytes, userCount: userCount,
                                       lists: UnsafeRawPointer(base + il), listsBytes: ilBytes, version: formatVersion, direction: 1)
        followerMarks = SearchMarks.build(plainFollowers)
        followers = followerMarks == nil ? plainFollowers
            : Adjacency(index: UnsafeRawPointer(base + ii), indexBytes: iiBytes, userCount: userCount, lists: UnsafeRawPointer(base + il),
                        listsBytes: ilBytes, version: formatVersion, direction: 1, marks: followerMarks)
        followingIndexBytes = oiBytes
        followingListsBytes = olBytes
        followersIndexBytes = iiBytes
        followersListsBytes = ilBytes
    }

    deinit {
        if let region { region.deallocate() } else { image.deallocate() }
        followerMarks?.deallocate()
    }

    /// Bytes of the followers' in-memory search marks (slots and marks; 0 without).
    public var followerMarkBytes: Int { followerMarks?.byteCount ?? 0 }

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
    static func empty(generation: UInt64, coveredLSN: UInt64, options: GraphBuildOptions = GraphBuildOptions()) -> GraphBase {
        var builder = GraphBaseBuilder(userCount: 0, generation: generation, coveredLSN: coveredLSN, options: options)
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
                if GraphFormat.filteredIndex(version: version, direction: i / 2) {
                    let records = GraphFormat.filteredCount(userCount: Int(userCount)) * GraphFormat.filteredBytes
                    guard offset % GraphFormat.filteredBytes == 0 else { return "section \(i): filtered index not on a 64-byte boundary" }
                    guard length >= records, (length - records) % 8 == 0, UInt64((length - records) / 8) <= userCount else {
                        return "section \(i): index size \(length) for \(userCount) users"
                    }
                } else if version >= 5 {
                    let longCount = length >= 8 ? raw.loadLE(UInt64.self, at: offset) : UInt64.max
                    guard longCount <= userCount,
                          length == GraphFormat.groupedIndexBytes(userCount: Int(userCount), longCount: Int(longCount)) else {
                        return "section \(i): index size \(length) for \(userCount) users"
                    }
                } else {
                    guard length == GraphFormat.indexBytes(userCount: Int(userCount)) else { return "section \(i): index size \(length) for \(userCount) users" }
                }
            } else {
                guard length >= GraphCodec.paddingBytes else { return "section \(i): lists without padding" }
            }
            let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), seed: GraphFormat.sectionSeed)
            guard sum == raw.loadLE(UInt64.self, at: footer + i * 24 + 16) else { return "section \(i) (offset \(offset), \(length) bytes) checksum mismatch" }
            previousEnd = offset + length
        }
        if let pad = raw[previousEnd..<footer].firstIndex(where: { $0 != 0 }) { return "non-zero padding byte at offset \(pad)" }
        if version >= 5 {
            for direction in 0..<2 {
                if let problem = verifyGrouped(raw, direction: direction, userCount: Int(userCount), edgeCount: edgeCount) { return problem }
            }
            return nil
        }
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

extension GraphBase {
    /// Format 5: checks one direction's grouped index against its lists section (sizes already
    /// checked): every group's base and long count are the running totals, every pair is a
    /// no list (0, 0), a short entry (degree > 0, length) or a long one (degree > 0, 0); short
    /// entries fill the section from 0 up to the first long one, long offsets increase inside
    /// it, escaped degrees are at least 255, and the degrees add up to the edge count.
    static func verifyGrouped(_ raw: UnsafeRawBufferPointer, direction: Int, userCount: Int, edgeCount: UInt64) -> String? {
        let footer = raw.count - GraphFormat.footerBytes
        let index = Int(raw.loadLE(UInt64.self, at: footer + direction * 48))
        let indexLength = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 8))
        let listsOffset = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 24))
        let listsLength = Int(raw.loadLE(UInt64.self, at: footer + direction * 48 + 24 + 8)) - GraphCodec.paddingBytes
        // Format 7's followers: records of 16 users in 64 bytes (no count word; the table fills
        // the rest of the section), with a filter per user.
        let filtered = GraphFormat.filteredIndex(version: raw.loadLE(UInt32.self, at: 8), direction: direction)
        let groupUsers = filtered ? GraphFormat.filteredUsers : GraphFormat.groupUsers
        let recordBytes = filtered ? GraphFormat.filteredBytes : GraphFormat.groupBytes
        let groups = filtered ? GraphFormat.filteredCount(userCount: userCount) : GraphFormat.groupCount(userCount: userCount)
        let recordsAt = filtered ? index : index + 8
        let longCount = filtered ? (indexLength - groups * recordBytes) / 8 : Int(raw.loadLE(UInt64.self, at: index))
        let table = recordsAt + groups * recordBytes
        func longStart(_ rank: Int) -> Int { Int(truncatingIfNeeded: raw.loadLE(UInt64.self, at: table + rank * 8)) }
        let shortEnd = longCount > 0 ? longStart(0) : listsLength
        guard shortEnd >= 0 && shortEnd <= listsLength else { return "direction \(direction): long entry 0 out of bounds" }
        // Long offsets increase, each entry at least as long as a short one can be, inside the section.
        for rank in 0..<longCount {
            let start = longStart(rank)
            let end = rank + 1 < longCount ? longStart(rank + 1) : listsLength
            guard start >= 0, end <= listsLength, end - start > GraphFormat.shortEntryBytesMax else {
                return "direction \(direction): long entry \(rank) out of bounds"
            }
        }
        var short = 0
        var long = 0
        var total: UInt64 = 0
        for g in 0..<groups {
            let record = recordsAt + g * recordBytes
            let header = raw.loadLE(UInt64.self, at: record)
            guard Int(header & GraphFormat.offsetMask) == short, Int(header >> GraphFormat.offsetBits) == long else {
                return "direction \(direction): group \(g) header does not match the entries before it"
            }
            for i in 0..<groupUsers {
                let u = g * groupUsers + i
                let degree = UInt64(raw[filtered ? record + GraphFormat.filteredDegreesAt + i : record + 8 + i * 2])
                let length = Int(raw[filtered ? record + GraphFormat.filteredLengthsAt + i : record + 9 + i * 2])
                // A filter is 0 exactly when there is no list (a list's sets at least a bit);
                // whether its bits are its values' is for the deep check, which decodes them.
                let filter = filtered ? (Int(raw.loadLE(UInt16.self, at: record + GraphFormat.filteredFiltersAt + 3 * i / 2)) >> (4 * (i & 1))) & 0xFFF : -1
                if degree == 0 || u >= userCount {
                    guard degree == 0 && length == 0 && filter <= 0 else { return "direction \(direction): index pair of user \(u) is invalid" }
                    continue
                }
                if filter == 0 { return "direction \(direction): user \(u) has a list but an empty filter" }
                let start: Int, bytes: Int
                if length > 0 {
                    start = short
                    bytes = length
                    short += length
                    guard short <= shortEnd else { return "direction \(direction): list \(u) past the end" }
                } else {
                    guard long < longCount else { return "direction \(direction): more long entries than the table holds" }
                    start = longStart(long)
                    bytes = (long + 1 < longCount ? longStart(long + 1) : listsLength) - start
                    long += 1
                }
                if degree >= GraphFormat.degreeEscape {
                    guard bytes >= 5 else { return "direction \(direction): list \(u) past the end" }
                    let escaped = UInt64(raw.loadLE(UInt32.self, at: listsOffset + start))
                    guard escaped >= GraphFormat.degreeEscape else { return "direction \(direction): escaped degree of user \(u) below 255" }
                    total += escaped
                } else {
                    total += degree
                }
            }
        }
        guard short == shortEnd else { return "direction \(direction): short entries end at \(short), not at \(shortEnd)" }
        guard long == longCount else { return "direction \(direction): \(long) long entries, the table holds \(longCount)" }
        if total != edgeCount { return "direction \(direction): degrees add up to \(total), not \(edgeCount)" }
        return nil
    }
}

/// Builds a base file image in memory, one direction after the other, users in order.
/// Single owner; `finish()` hands the memory to a `GraphBase`.
///
/// Format 5: a direction's group records, short and long entries are gathered apart (the
/// index section's size depends on how many entries are long) and laid out when it finishes.
struct GraphBaseBuilder {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    private var count: Int
    let userCount: Int
    private let generation: UInt64
    private let coveredLSN: UInt64
    let options: GraphBuildOptions
    private var sections: [(offset: Int, length: Int)] = []
    private var indexOffset = 0
    private var listsOffset = 0
    private var nextUser = 0
    private(set) var edgeCount = 0
    private var directionEdges = 0
    /// Format 5, the current direction: group records, short and long entries, long offsets
    /// (from the start of the long entries).
    private var records: [UInt8] = []
    private var shortEntries: [UInt8] = []
    private var longEntries: [UInt8] = []
    private var longStarts: [UInt64] = []

    init(userCount: Int, generation: UInt64, coveredLSN: UInt64, expectedBytes: Int = 4096,
         options: GraphBuildOptions = GraphBuildOptions()) {
        self.userCount = userCount
        self.generation = generation
        self.coveredLSN = coveredLSN
        self.options = options
        capacity = max(4096, expectedBytes)
        base = .allocate(byteCount: capacity, alignment: 8)
        count = GraphFormat.headerBytes
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        startDirection()
    }

    private var grouped: Bool { options.formatVersion >= 5 }
    /// Whether the current direction (the followers once the following have added their two
    /// sections) writes format 7's filtered index.
    private var filtered: Bool { GraphFormat.filteredIndex(version: options.formatVersion, direction: sections.count >= 2 ? 1 : 0) }
    private var recordUsers: Int { filtered ? GraphFormat.filteredUsers : GraphFormat.groupUsers }
    private var recordBytes: Int { filtered ? GraphFormat.filteredBytes : GraphFormat.groupBytes }

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

    private mutating func append(bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if bytes.count > 0 { (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        count += bytes.count
    }

    private mutating func startDirection() {
        nextUser = 0
        directionEdges = 0
        if grouped {
            records = [UInt8](repeating: 0, count: (userCount + recordUsers - 1) / recordUsers * recordBytes)
            shortEntries.removeAll(keepingCapacity: true)
            longEntries.removeAll(keepingCapacity: true)
            longStarts.removeAll(keepingCapacity: true)
            return
        }
        pad(to: 8)
        indexOffset = count
        let bytes = GraphFormat.indexBytes(userCount: userCount)
        reserve(bytes)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        count += bytes
        sections.append((indexOffset, bytes))
        listsOffset = count
    }

    /// Format 4: the 6-byte index entry of `user`.
    private mutating func setIndex(_ user: Int, offset: Int, degree: Int) {
        precondition(offset <= Int(GraphFormat.offsetMask), "lists section over 1 TiB")
        let word = UInt64(offset) | UInt64(min(degree, Int(GraphFormat.degreeEscape))) << GraphFormat.offsetBits
        let at = base + indexOffset + user * GraphFormat.indexEntryBytes
        at.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, as: UInt32.self)
        at.storeBytes(of: UInt16(truncatingIfNeeded: word >> 32).littleEndian, toByteOffset: 4, as: UInt16.self)
    }

    /// Format 5: writes the header of `user`'s group when `user` opens it (every user passes
    /// through here in order, those without a list too).
    private mutating func openUser(_ user: Int) {
        guard grouped, user % recordUsers == 0 else { return }
        precondition(shortEntries.count <= Int(GraphFormat.offsetMask), "short entries over 1 TiB")
        precondition(longStarts.count < GraphFormat.longEntriesMax, "more than 2^24 long entries in a direction")
        let header = UInt64(shortEntries.count) | UInt64(longStarts.count) << GraphFormat.offsetBits
        let at = user / recordUsers * recordBytes
        records.withUnsafeMutableBytes { $0.storeLE(header, at: at) }
    }

    /// Format 5: adds `user`'s entry (`bytes` of them, written by `write`) and its pair (format
    /// 7's followers: its degree, length and `filter`).
    private mutating func appendGrouped(user: Int, bytes: Int, degree: Int, filter: UInt64, _ write: (UnsafeMutableRawPointer) -> Void) {
        let long = bytes > GraphFormat.shortEntryBytesMax
        if long {
            longStarts.append(UInt64(longEntries.count))
            let at = longEntries.count
            longEntries.append(contentsOf: repeatElement(0, count: bytes))
            longEntries.withUnsafeMutableBytes { write($0.baseAddress! + at) }
        } else {
            let at = shortEntries.count
            shortEntries.append(contentsOf: repeatElement(0, count: bytes))
            shortEntries.withUnsafeMutableBytes { write($0.baseAddress! + at) }
        }
        let capped = UInt8(min(degree, Int(GraphFormat.degreeEscape))), length = long ? 0 : UInt8(bytes)
        if filtered {
            let record = user / GraphFormat.filteredUsers * GraphFormat.filteredBytes, i = user % GraphFormat.filteredUsers
            precondition(filter != 0 && filter <= 0xFFF, "a list's filter is 12 bits, not 0")
            records[record + GraphFormat.filteredDegreesAt + i] = capped
            records[record + GraphFormat.filteredLengthsAt + i] = length
            let at = record + GraphFormat.filteredFiltersAt + 3 * i / 2
            let word = (UInt16(records[at]) | UInt16(records[at + 1]) << 8) | UInt16(filter) << UInt16(4 * (i & 1))
            records[at] = UInt8(truncatingIfNeeded: word)
            records[at + 1] = UInt8(truncatingIfNeeded: word >> 8)
            return
        }
        let pair = (user >> GraphFormat.groupShift) * GraphFormat.groupBytes + 8 + (user & (GraphFormat.groupUsers - 1)) * 2
        records[pair] = capped
        records[pair + 1] = length
    }

    /// Whether the current direction codes Rice lists: the followers of a format 6 base.
    var currentRiceLists: Bool { sections.count >= 2 && GraphFormat.riceFollowers(version: options.formatVersion) }

    /// Whether the current direction (0 following, 1 followers) of this builder codes Rice lists.
    func riceLists(direction: Int) -> Bool { direction == 1 && GraphFormat.riceFollowers(version: options.formatVersion) }

    /// The body forms for a list of `count` values in the current direction (the followers
    /// direction once the first has added its two sections).
    private func forms(count: Int) -> GraphCodec.Forms {
        count <= (sections.count >= 2 ? options.denseFollowersMax : options.denseFollowingMax) ? .all : .fast
    }

    /// Appends the list of the next user (users must come in order; skipped users get degree 0).
    mutating func append(user: Int, _ values: UnsafeBufferPointer<UInt32>) {
        precondition(user >= nextUser && user < userCount, "users must be appended in order")
        fillEmpty(upTo: user)
        openUser(user)
        if values.isEmpty {
            if !grouped { setIndex(user, offset: count - listsOffset, degree: 0) }
        } else {
            let escape = values.count >= Int(GraphFormat.degreeEscape)
            let forms = self.forms(count: values.count)
            let rice = currentRiceLists
            let size = (rice ? GraphRiceCodec.encodedSize(values) : GraphCodec.encodedSize(values, forms: forms)) + (escape ? 4 : 0)
            let write = { (at: UnsafeMutableRawPointer) in
                var out = at
                if escape {
                    out.storeBytes(of: UInt32(values.count).littleEndian, as: UInt32.self)
                    out += 4
                }
                let written = rice ? GraphRiceCodec.encode(values, into: out) : GraphCodec.encode(values, into: out, forms: forms)
                precondition(written + (escape ? 4 : 0) == size, "coded size mismatch")
            }
            if grouped {
                appendGrouped(user: user, bytes: size, degree: values.count, filter: filtered ? GraphFormat.filter(values) : 0, write)
            } else {
                let offset = count - listsOffset
                reserve(size)
                write(base + count)
                count += size
                setIndex(user, offset: offset, degree: values.count)
            }
        }
        directionEdges += values.count
        nextUser = user + 1
    }

    /// Appends an already coded entry (escape word included) of `degree` values, copied verbatim.
    /// Format 7's followers: `filter` is the entry's filter when the base it comes from has one
    /// (format 7), else nil and the entry (a `GraphCodec` list) is decoded to compute it.
    mutating func appendCoded(user: Int, _ entry: UnsafeRawBufferPointer, degree: Int, filter: UInt64? = nil) {
        precondition(user >= nextUser && user < userCount, "users must be appended in order")
        fillEmpty(upTo: user)
        openUser(user)
        if grouped {
            if degree > 0 || entry.count > 0 {
                var bits: UInt64 = 0
                if filtered {
                    if let filter {
                        bits = filter
                    } else {
                        var values = [UInt32](repeating: 0, count: degree)
                        let list = entry.baseAddress! + (degree >= Int(GraphFormat.degreeEscape) ? 4 : 0)
                        values.withUnsafeMutableBufferPointer { GraphCodec.decode(list, count: degree, into: $0.baseAddress!) }
                        bits = values.withUnsafeBufferPointer { GraphFormat.filter($0) }
                    }
                }
                appendGrouped(user: user, bytes: entry.count, degree: degree, filter: bits) { at in
                    if entry.count > 0 { at.copyMemory(from: entry.baseAddress!, byteCount: entry.count) }
                }
            }
        } else {
            let offset = count - listsOffset
            append(bytes: entry)
            setIndex(user, offset: offset, degree: degree)
        }
        directionEdges += degree
        nextUser = user + 1
    }

    private mutating func fillEmpty(upTo user: Int) {
        while nextUser < user {
            openUser(nextUser)
            if !grouped { setIndex(nextUser, offset: count - listsOffset, degree: 0) }
            nextUser += 1
        }
    }

    /// Ends the current direction (the following lists first, then the followers lists).
    mutating func finishDirection() {
        fillEmpty(upTo: userCount)
        if grouped {
            // Index: long count, group records, long table; then the lists: short, long, padding.
            // Format 7's followers: the records on a 64-byte boundary, no count word.
            let filtered = self.filtered
            pad(to: filtered ? GraphFormat.filteredBytes : 8)
            indexOffset = count
            let shortBytes = UInt64(shortEntries.count)
            if !filtered {
                var longCount = UInt64(longStarts.count).littleEndian
                withUnsafeBytes(of: &longCount) { append(bytes: $0) }
            }
            // (Local copies share the storage; `append` may not run inside an access to `self`.)
            let records = self.records, shortEntries = self.shortEntries, longEntries = self.longEntries
            records.withUnsafeBytes { append(bytes: $0) }
            for start in longStarts {
                var offset = (shortBytes + start).littleEndian
                withUnsafeBytes(of: &offset) { append(bytes: $0) }
            }
            sections.append((indexOffset, count - indexOffset))
            listsOffset = count
            shortEntries.withUnsafeBytes { append(bytes: $0) }
            longEntries.withUnsafeBytes { append(bytes: $0) }
        }
        reserve(GraphCodec.paddingBytes)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: GraphCodec.paddingBytes)
        count += GraphCodec.paddingBytes
        sections.append((listsOffset, count - listsOffset))
        if sections.count == 2 {
            edgeCount = directionEdges
            startDirection()
        } else {
            precondition(directionEdges == edgeCount, "both directions must hold the same edges")
            records = []
            shortEntries = []
            longEntries = []
            longStarts = []
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
        image.storeLE(options.formatVersion, at: 8)
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

/// In-memory search marks for the long entries of one direction (a grouped index of
/// `GraphCodec` lists: a format 5 base's followers), built when a base is loaded or built and
/// never written to disk. For every block of a long entry, the values at block positions 32, 64
/// and 96 less the block's first value (`GraphCodec.markStride`), as 16-bit marks when every one
/// of the entry's marks fits (<= 0xFFFE) and 32-bit marks otherwise; a position the block does
/// not reach, or a block that is not bit-packed, holds the all-ones sentinel. A membership test
/// in a packed block then walks at most 32 gaps (four groups of eight) from the mark below the
/// value instead of up to 127 from the block's start: 48 bits per 128 values (96 when 32-bit),
/// plus a 64-bit slot per long entry. Long entries (255 bytes and more) are the popular users'
/// lists, which membership tests of existing edges mostly land in; a short entry is searched
/// from its start as before.
@usableFromInline
struct SearchMarks {
    let slots: UnsafeMutablePointer<UInt64>
    let marks: UnsafeMutableRawPointer
    let slotCount: Int
    let marksBytes: Int

    var byteCount: Int { slotCount * 8 + marksBytes }

    func deallocate() {
        slots.deallocate()
        marks.deallocate()
    }

    /// The marks of `adjacency`'s long entries, or nil when it has none to mark (not grouped,
    /// Rice lists, no long entry).
    static func build(_ adjacency: Adjacency) -> SearchMarks? {
        guard adjacency.grouped, !adjacency.rice, adjacency.longCount > 0 else { return nil }
        let perBlock = GraphCodec.blockSize / GraphCodec.markStride - 1
        var bytes: [UInt8] = []
        var slotValues: [UInt64] = []
        slotValues.reserveCapacity(adjacency.longCount)
        var values = [UInt32](repeating: 0, count: GraphCodec.blockSize)
        var listMarks: [UInt32] = []
        for u in 0..<adjacency.userCount {
            let (_, degree, rank) = adjacency.rankedEntry(u)
            guard degree > 0, rank >= 0 else { continue }
            precondition(rank == slotValues.count, "long entries are ranked in user order")
            let (list, count) = adjacency.list(UInt32(u))
            guard let list else { continue }
            let blocks = (count + GraphCodec.blockSize - 1) >> GraphCodec.blockShift
            listMarks.removeAll(keepingCapacity: true)
            for b in 0..<blocks {
                let (first, body, size) = GraphCodec.block(list, count: count, b)
                let packed = body.load(as: UInt8.self) <= 32
                if packed {
                    values.withUnsafeMutableBufferPointer { out in
                        _ = GraphCodec.decodeBlock(first: first, body: body, size: size, into: out.baseAddress!)
                    }
                }
                for j in 1...perBlock {
                    let position = j * GraphCodec.markStride
                    listMarks.append(packed && position < size ? values[position] &- first : UInt32.max)
                }
            }
            let wide = listMarks.contains { $0 != UInt32.max && $0 > 0xFFFE }
            slotValues.append(UInt64(bytes.count) << 1 | (wide ? 1 : 0))
            for mark in listMarks {
                if wide {
                    withUnsafeBytes(of: mark.littleEndian) { bytes.append(contentsOf: $0) }
                } else {
                    withUnsafeBytes(of: UInt16(truncatingIfNeeded: mark).littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
        }
        guard !slotValues.isEmpty else { return nil }
        // 32-bit loads read up to 2 bytes past a 16-bit list's last mark.
        bytes.append(contentsOf: repeatElement(0, count: 8))
        let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: slotValues.count)
        slots.initialize(from: slotValues, count: slotValues.count)
        let marks = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 8)
        bytes.withUnsafeBytes { marks.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return SearchMarks(slots: slots, marks: marks, slotCount: slotValues.count, marksBytes: bytes.count)
    }
}
