/// The posting-list codec of frozen search segments: a term's documents (segment-local numbers,
/// strictly decreasing, newest first) coded as gaps in blocks of 128, each block bit-packed or
/// Rice-coded (whichever is smaller), with a block directory that intersections use to jump
/// over blocks.
///
/// A list of `count` >= 1 documents, as bytes (little-endian):
///
///     count <= 128 (one block):
///         varint   first (largest) document
///         body     the block's count-1 gaps (nothing at all when count is 1)
///
///     count > 128 (B = ceil(count / 128) blocks):
///         B x 12   directory: u32 first (largest) document of the block, u32 byte offset of the
///                  block's body from the start of the list, u32 byte offset of the block's first
///                  posting in the term's positions (from the term's positions start)
///         bodies   one body per block of (size-1) gaps (nothing when size is 1)
///
/// A gap is `doc[i-1] - doc[i] - 1`, so consecutive documents cost 0 bits. A body starts with
/// one byte:
///   - 0...32: bit-packed: that many bits per gap, LSB first, ceil((size-1)*w / 8) bytes;
///   - 0x80 | k (k 0...31): Rice-coded with parameter k, in two runs: the k low bits of every
///     gap, LSB first, padded to a whole byte (absent when k is 0); then per gap q = gap >> k
///     zero bits and a one bit, LSB first, padded to a whole byte. (The split lets a decoder
///     take the low bits like packed gaps and the high parts one set bit at a time.)
/// The encoder takes Rice only when it is at least 1/20 smaller than bit-packing (it decodes a
/// little slower), so blocks of evenly spread gaps stay bit-packed and blocks with a few large
/// gaps among small ones (rare terms, `from:` lists) shrink.
///
/// Positions are a separate stream per term: for each posting in list order, varint count
/// c >= 1, then c varints (the first position, then each later one minus the one before it
/// minus 1).
///
/// Decoding loads 8 bytes at a time (unaligned), so a postings section ends with
/// `paddingBytes` zero bytes. These constants are part of the segment format and must not change.
public enum PostingCodec {
    public static let blockSize = 128
    public static let directoryEntryBytes = 12
    public static let paddingBytes = 8
    /// The first byte of a Rice-coded body: this flag plus k.
    static let riceFlag: UInt8 = 0x80

    @inline(__always)
    static func bitWidth(_ value: UInt32) -> Int { 32 - value.leadingZeroBitCount }

    /// Appends the coded list of `docs` (strictly decreasing, non-empty); `blockPositionOffsets`
    /// gives, per block, the offset of its first posting's positions.
    static func encode(_ docs: UnsafeBufferPointer<UInt32>, blockPositionOffsets: [UInt32], into out: inout [UInt8]) {
        let count = docs.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            Varint.append(UInt64(docs[0]), to: &out)
            encodeBlock(docs, from: 0, to: count, into: &out)
            return
        }
        let blocks = (count + blockSize - 1) / blockSize
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: blocks * directoryEntryBytes))
        for b in 0..<blocks {
            let from = b * blockSize
            let bodyOffset = UInt32(out.count - start)
            encodeBlock(docs, from: from, to: min(count, from + blockSize), into: &out)
            out.withUnsafeMutableBytes { raw in
                raw.storeLE(docs[from], at: start + b * directoryEntryBytes)
                raw.storeLE(bodyOffset, at: start + b * directoryEntryBytes + 4)
                raw.storeLE(blockPositionOffsets[b], at: start + b * directoryEntryBytes + 8)
            }
        }
    }

    /// Codes one list on its own (no positions), for tests and fuzzers of the codec.
    public static func encodeList(_ docs: [UInt32]) -> [UInt8] {
        let blocks = (docs.count + blockSize - 1) / blockSize
        var out: [UInt8] = []
        docs.withUnsafeBufferPointer { encode($0, blockPositionOffsets: [UInt32](repeating: 0, count: blocks), into: &out) }
        return out
    }

    /// Decodes a list of `count` documents coded by `encodeList` from `bytes` (which must end
    /// with at least `paddingBytes` bytes after the list, as in a segment). The bytes are trusted:
    /// segments reach the decoder only after their checksums check out.
    public static func decodeList(_ bytes: UnsafeRawBufferPointer, count: Int) -> [UInt32] {
        var docs = [UInt32](repeating: 0, count: count)
        guard count > 0, let base = bytes.baseAddress else { return [] }
        docs.withUnsafeMutableBufferPointer { out in
            if count <= blockSize {
                let (first, next) = Varint.read(from: bytes, at: 0)!
                _ = decodeBlock(base + next, first: UInt32(truncatingIfNeeded: first), size: count, into: out.baseAddress!)
                return
            }
            let blocks = (count + blockSize - 1) / blockSize
            for b in 0..<blocks {
                let first = bytes.loadLE(UInt32.self, at: b * directoryEntryBytes)
                let body = Int(bytes.loadLE(UInt32.self, at: b * directoryEntryBytes + 4))
                _ = decodeBlock(base + body, first: first, size: min(blockSize, count - b * blockSize),
                                into: out.baseAddress! + b * blockSize)
            }
        }
        return docs
    }

    /// Appends the body of the block `docs[from..<to]`: nothing for one document, else the
    /// smaller of bit-packed and Rice-coded gaps.
    private static func encodeBlock(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, into out: inout [UInt8]) {
        let gaps = to - from - 1
        guard gaps > 0 else { return }
        var maximum: UInt32 = 0
        var sum: UInt64 = 0
        var i = from + 1
        while i < to {
            precondition(docs[i] < docs[i - 1], "posting documents must strictly decrease")
            let gap = docs[i - 1] &- docs[i] &- 1
            maximum |= gap
            sum += UInt64(gap)
            i += 1
        }
        let width = bitWidth(maximum)
        let packedBits = gaps * width
        // The best Rice parameter is near log2 of the mean gap; try the neighbours.
        let guess = max(0, bitWidth(UInt32(truncatingIfNeeded: sum / UInt64(gaps))) - 1)
        var bestK = -1
        var bestBits = packedBits - packedBits / 20
        // The five candidates' sizes in one pass over the gaps (the same sums, and so the same
        // choice, as one pass per candidate).
        let k0 = max(0, guess - 2)
        let kCount = min(31, guess + 2) - k0 + 1
        var high: (Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0)
        let s0 = UInt32(k0)
        i = from + 1
        while i < to {
            let gap = docs[i - 1] &- docs[i] &- 1
            high.0 &+= Int(gap >> s0)
            high.1 &+= Int(gap >> min(31, s0 &+ 1))
            high.2 &+= Int(gap >> min(31, s0 &+ 2))
            high.3 &+= Int(gap >> min(31, s0 &+ 3))
            high.4 &+= Int(gap >> min(31, s0 &+ 4))
            i += 1
        }
        for j in 0..<kCount {
            let k = k0 + j
            let h: Int
            switch j {
            case 0: h = high.0
            case 1: h = high.1
            case 2: h = high.2
            case 3: h = high.3
            default: h = high.4
            }
            let bits = gaps * (k + 1) + h
            if bits < bestBits { bestBits = bits; bestK = k }
        }
        var writer = BitWriter()
        if bestK < 0 {
            out.append(UInt8(width))
            guard width > 0 else { return }
            i = from + 1
            while i < to {
                writer.put(UInt64(docs[i - 1] &- docs[i] &- 1), bits: width, into: &out)
                i += 1
            }
        } else {
            out.append(riceFlag | UInt8(bestK))
            let low = (UInt64(1) << UInt64(bestK)) &- 1
            if bestK > 0 {
                i = from + 1
                while i < to {
                    writer.put(UInt64(docs[i - 1] &- docs[i] &- 1) & low, bits: bestK, into: &out)
                    i += 1
                }
                writer.finish(into: &out)
            }
            i = from + 1
            while i < to {
                var quotient = Int(UInt64(docs[i - 1] &- docs[i] &- 1) >> UInt64(bestK))
                while quotient >= 32 {
                    writer.put(0, bits: 32, into: &out)
                    quotient -= 32
                }
                writer.put(UInt64(1) << UInt64(quotient), bits: quotient + 1, into: &out)
                i += 1
            }
        }
        writer.finish(into: &out)
    }

    /// Appends bits LSB first, whole bytes as they fill.
    private struct BitWriter {
        var accumulator: UInt64 = 0
        var bits = 0

        /// `count` <= 32 bits of `value` (higher bits zero).
        @inline(__always)
        mutating func put(_ value: UInt64, bits count: Int, into out: inout [UInt8]) {
            accumulator |= value << UInt64(bits)
            bits += count
            while bits >= 8 {
                out.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator >>= 8
                bits -= 8
            }
        }

        mutating func finish(into out: inout [UInt8]) {
            if bits > 0 { out.append(UInt8(truncatingIfNeeded: accumulator)) }
            accumulator = 0
            bits = 0
        }
    }

    /// Decodes one block body at `body` whose first document is `first`, `size` documents, into
    /// `docs`. Returns the bytes the body takes.
    @inlinable @inline(__always)
    static func decodeBlock(_ body: UnsafeRawPointer, first: UInt32, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        docs[0] = first
        guard size > 1 else { return 0 }
        let header = body.load(as: UInt8.self)
        if header & 0x80 != 0 { return decodeRice(body, k: Int(header & 0x1F), size: size, into: docs) }
        let width = Int(header)
        if width == 0 {
            var i = 1
            while i < size {
                docs[i] = docs[i - 1] &- 1
                i += 1
            }
            return 1
        }
        let packed = body + 1
        let mask = (UInt64(1) &<< UInt64(width)) &- 1
        // The previous document stays in a register; each gap is one unaligned load. Wrapping
        // operators: a block's bit offsets are far below any overflow, and the shift counts are
        // below 64, so the checks would only cost instructions in the hottest loop.
        var previous = first
        var bit = 0
        var i = 1
        while i < size {
            let word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self))
            let gap = UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask)
            previous = previous &- gap &- 1
            docs[i] = previous
            bit &+= width
            i &+= 1
        }
        return 1 + ((size - 1) * width + 7) >> 3
    }

    /// The Rice-coded body: the k low bits of every gap first (decoded like bit-packed gaps,
    /// into `docs` as scratch), then the high parts from the unary bitmap one set bit at a time,
    /// so no load waits on the length of the run before it.
    @inlinable
    static func decodeRice(_ body: UnsafeRawPointer, k: Int, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        // One pass: the i-th gap's low bits from the first run, its high part from the next set
        // bit of the unary run (which starts where the low bits end), the previous document in
        // a register. Wrapping operators as in `decodeBlock` (k <= 31, offsets within a block).
        let lowBits = body + 1
        let lowBytes = ((size - 1) * k + 7) >> 3
        let unary = lowBits + lowBytes
        let mask = (UInt64(1) &<< UInt64(k)) &- 1
        let shift = UInt32(truncatingIfNeeded: k)
        var bit = 0
        var wordStart = 0
        var word = UInt64(littleEndian: unary.loadUnaligned(as: UInt64.self))
        var previousBit = -1
        var previous = docs[0]
        var i = 1
        while i < size {
            let low = UInt32(truncatingIfNeeded: (UInt64(littleEndian: lowBits.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self)) &>> UInt64(bit & 7)) & mask)
            bit &+= k
            while word == 0 {
                wordStart &+= 64
                word = UInt64(littleEndian: unary.loadUnaligned(fromByteOffset: wordStart &>> 3, as: UInt64.self))
            }
            let position = wordStart &+ word.trailingZeroBitCount
            word &= word &- 1
            let quotient = UInt32(truncatingIfNeeded: position &- previousBit &- 1)
            previousBit = position
            previous = previous &- ((quotient &<< shift) | low) &- 1
            docs[i] = previous
            i &+= 1
        }
        return 1 + lowBytes + ((previousBit + 1 + 7) >> 3)
    }
}
