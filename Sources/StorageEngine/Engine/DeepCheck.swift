/// The stable codes of `socialdb check` findings (the `code` of a `CheckFinding`). The first group
/// comes from the file-by-file check every run does; the second from `--deep`, which decodes
/// every adjacency list of each graph base and every posting list of each search segment with
/// bounds-checked decoders (the databases' own decoders trust a list once its section checksum
/// passes, so a checksum-valid malformed list, from a writer bug or a checksum collision, is
/// what only `--deep` finds).
public enum CheckCode: String, Sendable, CaseIterable {
    /// A file or directory that cannot be opened, listed or read.
    case unreadable
    /// A log segment's header, a record's checksum or structure, or bytes after the last record.
    case logSegment = "log-segment"
    /// A segment that does not start where the one before it ended.
    case logSequence = "log-sequence"
    case logCheckpoints = "log-checkpoints"
    /// The log ends before a consumer's checkpoint: acknowledged records are gone.
    case logMissingRecords = "log-missing-records"
    case lsmManifest = "lsm-manifest"
    case lsmTable = "lsm-table"
    /// A graph base file failing its checksums, bounds or index entries.
    case graphBase = "graph-base"
    case timeline
    case searchState = "search-state"
    /// A search segment failing its checksums, bounds or term table, or naming another number.
    case searchSegment = "search-segment"
    /// A segment `search.state` names that is not there.
    case searchSegmentMissing = "search-segment-missing"

    // --deep: adjacency lists of graph bases.
    /// A list's bytes do not decode inside the list: a bad mode byte, a block directory out of
    /// bounds, a varint running past the end, an escaped degree below 255.
    case graphListMalformed = "graph-list-malformed"
    /// Decoding the index's degree of values does not end exactly at the list's end (bytes left
    /// over or missing, non-zero padding bits, bytes that belong to no list).
    case graphListLength = "graph-list-length"
    /// Values not strictly increasing.
    case graphListOrder = "graph-list-order"
    /// A value that is not a user number of the base (at or past the user count).
    case graphListRange = "graph-list-range"
    /// An edge in one direction (a follows b) missing from the other (b's followers lack a).
    case graphDirections = "graph-directions"
    /// Format 7: a follower list's filter in the index is not the OR of its values' filter
    /// bits (a membership test could answer no for an edge the list holds).
    case graphFilter = "graph-filter"

    // --deep: posting lists of search segments.
    case searchPostingsMalformed = "search-postings-malformed"
    case searchPostingsLength = "search-postings-length"
    /// Documents not strictly decreasing.
    case searchPostingsOrder = "search-postings-order"
    /// A document number at or past the segment's document count.
    case searchPostingsRange = "search-postings-range"
    /// The terms' document counts do not add up to the header's posting count.
    case searchPostingsCount = "search-postings-count"
    /// A term's positions stream: a count of 0, a varint past the end, positions not
    /// increasing, or bytes left over.
    case searchPositions = "search-positions"
    /// A block directory entry whose positions offset is not where its block's first posting's
    /// positions start.
    case searchDirectory = "search-directory"
}

/// One problem the deep check found in a file: its code, the absolute byte offset in the file and
/// what is wrong.
public struct DeepProblem: Sendable, Equatable, CustomStringConvertible {
    public var code: CheckCode
    public var offset: Int
    public var detail: String

    public var description: String { "\(code.rawValue) at offset \(offset): \(detail)" }
}

/// Collects problems, at most `limit` of them (a damaged list tends to repeat), counting the rest.
struct DeepProblems {
    var problems: [DeepProblem] = []
    var omitted = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    mutating func add(_ code: CheckCode, _ offset: Int, _ detail: String) {
        if problems.count < limit { problems.append(DeepProblem(code: code, offset: offset, detail: detail)) } else { omitted += 1 }
    }
}

/// Bits of a bounded byte range, LSB first, every read checked against its end.
struct CheckedBits {
    let bytes: UnsafeRawBufferPointer
    /// The bit position from the start of `bytes`.
    var bit = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var bitsLeft: Int { bytes.count * 8 - bit }

    /// The next `width` (0...32) bits, or nil when fewer are left.
    mutating func take(_ width: Int) -> UInt64? {
        guard width <= bitsLeft else { return nil }
        var value: UInt64 = 0
        var got = 0
        while got < width {
            let shift = bit & 7
            let n = min(8 - shift, width - got)
            let byte = UInt64(bytes.load(fromByteOffset: bit >> 3, as: UInt8.self)) >> UInt64(shift)
            value |= (byte & ((1 << UInt64(n)) - 1)) << UInt64(got)
            got += n
            bit += n
        }
        return value
    }

    /// The next one bit's distance (the number of zero bits before it, consumed with it), or nil
    /// when the bytes end first.
    mutating func unary() -> Int? {
        var zeros = 0
        while bit < bytes.count * 8 {
            let set = (bytes.load(fromByteOffset: bit >> 3, as: UInt8.self) >> UInt8(bit & 7)) & 1
            bit += 1
            if set == 1 { return zeros }
            zeros += 1
        }
        return nil
    }

    /// Whether the bits left in the current byte are zero; moves to the next byte boundary.
    mutating func finishByte() -> Bool {
        let shift = bit & 7
        guard shift != 0 else { return true }
        let rest = bytes.load(fromByteOffset: bit >> 3, as: UInt8.self) >> UInt8(shift)
        bit += 8 - shift
        return rest == 0
    }

    var byteOffset: Int { (bit + 7) >> 3 }
}

/// Reads a varint inside `bytes` at `at`, moving `at`; nil when it runs past the end or past 64 bits.
@inline(__always)
func checkedVarint(_ bytes: UnsafeRawBufferPointer, _ at: inout Int) -> UInt64? {
    guard at >= 0, at <= bytes.count, let (value, next) = Varint.read(from: bytes, at: at) else { return nil }
    at = next
    return value
}
