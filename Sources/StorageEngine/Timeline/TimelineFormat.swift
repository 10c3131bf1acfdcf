/// The timeline checkpoint: every ring, the retweet table, the tombstones, the celebrity marks
/// and dropped users, with the log position they include. One file, `TIMELINE`, in the store's
/// directory, replaced atomically (write `TIMELINE.tmp`, fdatasync, rename, fsync the directory).
///
/// The file is a sequence of blocks, each checksummed on its own so a reader never decodes a
/// damaged byte, and written as it is encoded so a checkpoint needs no file-sized buffer:
///
///     0    4  payload length L (at most `blockPayloadBytesMax`)
///     4    1  kind (1 header, 2 rings, 3 retweets, 4 tombstones, 5 celebrities, 6 dropped users, 7 trailer)
///     5    3  zero
///     8    L  payload
///     8+L  8  XXH3-64 of bytes 0..<8+L, seed `TimelineFormat.checksumSeed`
///
/// The header block comes first and the trailer last; the others in any number between. Ints
/// in payloads are LEB128 varints unless a width is given:
///
///     header     8 magic "SDBTIML\n", 4 format version (1), 4 ring capacity, 8 applied LSN,
///                4 flags (bit 0: lazy rebuild: users without a ring are rebuilt from the sources)
///     rings      per ring: user, count, floor, then `count` entries oldest first, each
///                (id - previous id, the first one's previous being the floor; at least 1)
///                and (user << 3 | flags)
///     retweets   per row: retweet id, original id, original author
///     tombstones per tombstone: id
///     celebrities, dropped users: per user: user
///     trailer    8 bytes each: rings, entries, retweets, tombstones, celebrities, dropped users,
///                blocks before the trailer
///
/// A ring entry costs 5 to 10 bytes here (ids of one ring are close, so the deltas are short),
/// against 16 in memory. These constants are part of the format and must not change.
enum TimelineFormat {
    static let fileName = "TIMELINE"
    static let magic: [UInt8] = Array("SDBTIML\n".utf8)
    static let formatVersion: UInt32 = 1
    /// "SDBTMLN": this seed is part of the format.
    static let checksumSeed: UInt64 = 0x534442_544D_4C4E
    static let blockHeaderBytes = 8
    static let blockTrailerBytes = 8
    /// Blocks are flushed once their payload passes this (bounds the encoder's buffer).
    static let blockPayloadBytesTarget = 1 << 20
    static let blockPayloadBytesMax = 16 << 20

    enum Kind: UInt8 {
        case header = 1, rings, retweets, tombstones, celebrities, droppedUsers, trailer
    }

    static let flagLazyRebuild: UInt32 = 1
}

/// Encodes blocks and appends them to a file.
struct TimelineBlockWriter {
    let file: File
    var offset: UInt64 = 0
    var payload: [UInt8] = []
    var blocks = 0
    var kind: TimelineFormat.Kind = .header

    init(file: File) {
        self.file = file
        payload.reserveCapacity(TimelineFormat.blockPayloadBytesTarget + 4096)
    }

    /// Starts a block of `kind`, writing the block in progress first if it has anything.
    mutating func begin(_ kind: TimelineFormat.Kind) throws(IOError) {
        if !payload.isEmpty { try writeBlock() }
        self.kind = kind
    }

    mutating func varint(_ value: UInt64) { Varint.append(value, to: &payload) }

    /// Called between records: writes the block once it is full enough, and goes on with
    /// another of the same kind.
    mutating func recordDone() throws(IOError) {
        if payload.count >= TimelineFormat.blockPayloadBytesTarget { try writeBlock() }
    }

    /// Writes the block in progress (even an empty one: the header and trailer are always
    /// written) and starts an empty one of the same kind.
    mutating func writeBlock() throws(IOError) {
        precondition(payload.count <= TimelineFormat.blockPayloadBytesMax, "timeline block too large")
        var block: [UInt8] = []
        block.reserveCapacity(payload.count + 16)
        block.appendLE(UInt32(payload.count))
        block.append(kind.rawValue)
        block.append(contentsOf: [0, 0, 0])
        block.append(contentsOf: payload)
        block.appendLE(Checksum.xxh3(block, seed: TimelineFormat.checksumSeed))
        try file.write(block, at: offset)
        offset += UInt64(block.count)
        if kind != .trailer { blocks += 1 }
        payload.removeAll(keepingCapacity: true)
    }
}

extension Checksum {
    static func xxh3(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
        bytes.withUnsafeBytes { xxh3($0, seed: seed) }
    }
}

/// Reads blocks back, checking each checksum before a byte of it is decoded.
struct TimelineBlockReader {
    let file: File
    let size: UInt64
    var offset: UInt64 = 0
    var payload: [UInt8] = []
    var position = 0

    init(file: File) throws(IOError) {
        self.file = file
        size = try file.size()
    }

    var atEnd: Bool { offset >= size }

    /// Reads the next block; returns its kind.
    mutating func next() throws(TimelineError) -> TimelineFormat.Kind {
        let path = file.path
        guard offset + 16 <= size else { throw .corrupt("\(path): truncated block at offset \(offset)") }
        var header = [UInt8](repeating: 0, count: TimelineFormat.blockHeaderBytes)
        try read(into: &header, at: offset)
        let length = header.withUnsafeBytes { Int($0.loadLE(UInt32.self, at: 0)) }
        guard length <= TimelineFormat.blockPayloadBytesMax,
              offset + UInt64(8 + length + 8) <= size else {
            throw .corrupt("\(path): block at offset \(offset) runs past the end (length \(length))")
        }
        var block = [UInt8](repeating: 0, count: 8 + length + 8)
        try read(into: &block, at: offset)
        let stored = block.withUnsafeBytes { $0.loadLE(UInt64.self, at: 8 + length) }
        let computed = block.withUnsafeBytes { Checksum.xxh3(UnsafeRawBufferPointer(rebasing: $0[0..<(8 + length)]), seed: TimelineFormat.checksumSeed) }
        guard stored == computed else { throw .corrupt("\(path): checksum mismatch in block at offset \(offset)") }
        guard let kind = TimelineFormat.Kind(rawValue: block[4]), block[5] == 0, block[6] == 0, block[7] == 0 else {
            throw .corrupt("\(path): unknown block kind \(block[4]) at offset \(offset)")
        }
        payload = Array(block[8..<(8 + length)])
        position = 0
        offset += UInt64(block.count)
        return kind
    }

    private func read(into bytes: inout [UInt8], at offset: UInt64) throws(TimelineError) {
        var failure: IOError?
        let file = self.file
        bytes.withUnsafeMutableBytes { raw in
            do throws(IOError) { try file.readExactly(into: raw, at: offset) } catch { failure = error }
        }
        if let failure { throw .io(failure) }
    }

    var payloadRemaining: Bool { position < payload.count }

    mutating func varint() throws(TimelineError) -> UInt64 {
        guard let (value, next) = payload.withUnsafeBytes({ Varint.read(from: $0, at: position) }) else {
            throw .corrupt("\(file.path): bad varint in block before offset \(offset)")
        }
        position = next
        return value
    }

    mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws(TimelineError) -> T {
        let width = MemoryLayout<T>.size
        guard position + width <= payload.count else { throw .corrupt("\(file.path): block before offset \(offset) too short") }
        let value = payload.withUnsafeBytes { $0.loadLE(T.self, at: position) }
        position += width
        return value
    }

    mutating func bytes(_ count: Int) throws(TimelineError) -> [UInt8] {
        guard position + count <= payload.count else { throw .corrupt("\(file.path): block before offset \(offset) too short") }
        defer { position += count }
        return Array(payload[position..<(position + count)])
    }
}
