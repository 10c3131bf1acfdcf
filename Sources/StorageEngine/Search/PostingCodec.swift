/// The posting-list codec of frozen search segments: a term's documents (segment-local numbers,
/// strictly decreasing, newest first) coded as gaps bit-packed in blocks of 128, with a block
/// directory that intersections use to jump over blocks.
///
/// A list of `count` >= 1 documents, as bytes (little-endian):
///
///     count <= 128 (one block):
///         varint   first (largest) document
///         u8       bit width w (0...32)
///         packed   count-1 gaps at w bits each, LSB first, ceil((count-1)*w / 8) bytes
///
///     count > 128 (B = ceil(count / 128) blocks):
///         B x 12   directory: u32 first (largest) document of the block, u32 byte offset of the
///                  block's body from the start of the list, u32 byte offset of the block's first
///                  posting in the term's positions (from the term's positions start)
///         bodies   u8 bit width w, then the block's (size-1) gaps packed at w bits
///
/// A gap is `doc[i-1] - doc[i] - 1`, so consecutive documents cost 0 bits. Positions are a
/// separate stream per term: for each posting in list order, varint count c >= 1, then c varints
/// (the first position, then each later one minus the one before it minus 1).
///
/// Decoding loads 8 bytes at a time (unaligned), so a postings section ends with
/// `paddingBytes` zero bytes. These constants are part of the segment format and must not change.
public enum PostingCodec {
    public static let blockSize = 128
    public static let directoryEntryBytes = 12
    public static let paddingBytes = 8

    @inline(__always)
    static func bitWidth(_ value: UInt32) -> Int { 32 - value.leadingZeroBitCount }

    /// Appends the coded list of `docs` (strictly decreasing, non-empty); `blockPositionOffsets`
    /// gives, per block, the offset of its first posting's positions.
    static func encode(_ docs: UnsafeBufferPointer<UInt32>, blockPositionOffsets: [UInt32], into out: inout [UInt8]) {
        let count = docs.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            Varint.append(UInt64(docs[0]), to: &out)
            packBlock(docs, from: 0, to: count, into: &out)
            return
        }
        let blocks = (count + blockSize - 1) / blockSize
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: blocks * directoryEntryBytes))
        for b in 0..<blocks {
            let from = b * blockSize
            let bodyOffset = UInt32(out.count - start)
            packBlock(docs, from: from, to: min(count, from + blockSize), into: &out)
            out.withUnsafeMutableBytes { raw in
                raw.storeLE(docs[from], at: start + b * directoryEntryBytes)
                raw.storeLE(bodyOffset, at: start + b * directoryEntryBytes + 4)
                raw.storeLE(blockPositionOffsets[b], at: start + b * directoryEntryBytes + 8)
            }
        }
    }

    private static func packBlock(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, into out: inout [UInt8]) {
        var maximum: UInt32 = 0
        var i = from + 1
        while i < to {
            precondition(docs[i] < docs[i - 1], "posting documents must strictly decrease")
            maximum |= docs[i - 1] &- docs[i] &- 1
            i += 1
        }
        let width = bitWidth(maximum)
        out.append(UInt8(width))
        guard width > 0 else { return }
        var accumulator: UInt64 = 0
        var bits = 0
        i = from + 1
        while i < to {
            accumulator |= UInt64(docs[i - 1] &- docs[i] &- 1) << UInt64(bits)
            bits += width
            while bits >= 8 {
                out.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator >>= 8
                bits -= 8
            }
            i += 1
        }
        if bits > 0 { out.append(UInt8(truncatingIfNeeded: accumulator)) }
    }

    /// Decodes one block body at `body` (width byte, then gaps) whose first document is `first`,
    /// `size` documents, into `docs`. Returns the bytes the body takes.
    @inlinable @inline(__always)
    static func decodeBlock(_ body: UnsafeRawPointer, first: UInt32, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        let width = Int(body.load(as: UInt8.self))
        docs[0] = first
        if width == 0 {
            var i = 1
            while i < size {
                docs[i] = docs[i - 1] &- 1
                i += 1
            }
            return 1
        }
        let packed = body + 1
        let mask = (UInt64(1) << UInt64(width)) &- 1
        var bit = 0
        var i = 1
        while i < size {
            let word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self))
            let gap = UInt32(truncatingIfNeeded: (word >> UInt64(bit & 7)) & mask)
            docs[i] = docs[i - 1] &- gap &- 1
            bit += width
            i += 1
        }
        return 1 + ((size - 1) * width + 7) >> 3
    }
}
