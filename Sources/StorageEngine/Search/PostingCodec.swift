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
///   - 0x40 | l (l 0...31, format version 3 on): Elias-Fano, the block's offsets below its
///     first document, e_i = first - doc_i - 1 (strictly increasing), in two runs: the l low
///     bits of every e_i, LSB first, padded to a whole byte (absent when l is 0); then per
///     document i = 1, 2, ... a one bit at (e_i >> l) + (i - 1), zeros elsewhere, LSB first,
///     padded to a whole byte. The high part of e_i is the number of zeros before its one bit,
///     so a reader finds the first document at or below a target without decoding the block
///     (see `PostingCursor`); decoded in full, it takes the same two passes as Rice.
/// The encoder takes Rice only when it is at least 1/20 smaller than bit-packing (it decodes a
/// little slower), so blocks of evenly spread gaps stay bit-packed and blocks with a few large
/// gaps among small ones (rare terms, `from:` lists) shrink; and Rice with k = 0 (a bitmap of
/// the block, searched in place) whenever it is at most 5/4 of the best coding's bits. In lists
/// of more than one block (the long lists an intersection probes), a block that is not a bitmap
/// is Elias-Fano-coded when that is at most `eliasFanoTolerancePercent` larger than the best
/// coding, since an intersection then searches it in place instead of decoding it; but
/// bit-packed, before either, when that is at most `packedPreferencePercent` larger than the
/// best coding (such lists are decoded in full by conjunctions and phrases, and unpacking takes
/// about a third of the instructions of Rice's or Elias-Fano's two passes).
///
/// Positions are a separate stream per term: for each posting in list order, varint count
/// c >= 1, then c varints (the first position, then each later one minus the one before it
/// minus 1). From format version 4 on, each block's positions (of its `size` postings) start
/// with a checkpoint table of (size - 1) / 16 u32 entries: entry k (1-based) is the offset of
/// posting 16k's positions from the end of the table, so a reader reaches any posting's
/// positions from the nearest checkpoint (at most 15 postings walked). The directory's
/// positions offset of a block points at its table. From format version 5 on, a block's
/// positions are instead a flag bitmap ((size + 7) / 8 bytes, bit i set: posting i is
/// irregular), one byte per posting (a regular posting's one position, at most 255; an
/// irregular one's run offset from the block's first run, `farRunMark` from 255 on), then the
/// runs (as above) of the irregular postings only.
///
/// Decoding loads 8 bytes at a time (unaligned), so a postings section ends with
/// `paddingBytes` zero bytes. These constants are part of the segment format and must not change.
public enum PostingCodec {
    public static let blockSize = 128
    public static let directoryEntryBytes = 12
    public static let paddingBytes = 8
    /// The first byte of a Rice-coded body: this flag plus k.
    static let riceFlag: UInt8 = 0x80
    /// The first byte of an Elias-Fano body: this flag plus l (format version 3 on).
    static let eliasFanoFlag: UInt8 = 0x40
    /// How much larger than the best other coding an Elias-Fano block may be and still be chosen
    /// (not part of the format: readers take any coding).
    static let eliasFanoTolerancePercent = 10
    /// How much larger than the best coding a bit-packed block of a list of several blocks may
    /// be and still be chosen (not part of the format).
    static let packedPreferencePercent = 20
    /// Postings between two checkpoints of a block's positions (format version 4 on).
    public static let positionCheckpointInterval = 16
    /// Format version 5 on, a block's positions are a flag bitmap (bit i: posting i is
    /// irregular), one byte per posting and the runs of the irregular postings only (see
    /// `SearchFormat`): a regular posting has one position, at most this, in its byte.
    public static let regularPositionLimit: UInt32 = 255
    /// An irregular posting's byte (format 5 on) is its run's offset from the block's first
    /// run, or this when the offset is this or more (its run is found by walking from the
    /// nearest irregular posting before it whose byte is below this).
    public static let farRunMark: UInt8 = 255

    @inline(__always)
    static func bitWidth(_ value: UInt32) -> Int { 32 - value.leadingZeroBitCount }

    /// Appends the coded list of `docs` (strictly decreasing, non-empty); `blockPositionOffsets`
    /// gives, per block, the offset of its first posting's positions.
    /// Elias-Fano blocks are written only when `eliasFano` (segments of format version 3 on).
    static func encode(_ docs: UnsafeBufferPointer<UInt32>, blockPositionOffsets: [UInt32], eliasFano: Bool = true, into out: inout ByteSink) {
        let count = docs.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            out.appendVarint(UInt64(docs[0]))
            encodeBlock(docs, from: 0, to: count, eliasFano: false, into: &out)
            return
        }
        let blocks = (count + blockSize - 1) / blockSize
        let start = out.count
        out.appendZeros(blocks * directoryEntryBytes)
        for b in 0..<blocks {
            let from = b * blockSize
            let bodyOffset = UInt32(out.count - start)
            encodeBlock(docs, from: from, to: min(count, from + blockSize), eliasFano: eliasFano, into: &out)
            let raw = out.mutableBytes
            raw.storeLE(docs[from], at: start + b * directoryEntryBytes)
            raw.storeLE(bodyOffset, at: start + b * directoryEntryBytes + 4)
            raw.storeLE(blockPositionOffsets[b], at: start + b * directoryEntryBytes + 8)
        }
    }

    /// Codes one list on its own (no positions), for tests and fuzzers of the codec.
    public static func encodeList(_ docs: [UInt32], eliasFano: Bool = true) -> [UInt8] {
        let blocks = (docs.count + blockSize - 1) / blockSize
        var out = ByteSink()
        docs.withUnsafeBufferPointer { encode($0, blockPositionOffsets: [UInt32](repeating: 0, count: blocks), eliasFano: eliasFano, into: &out) }
        return Array(out.bytes)
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
    /// smaller of bit-packed and Rice-coded gaps (or Elias-Fano, when `eliasFano` and it is
    /// nearly as small).
    private static func encodeBlock(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, eliasFano: Bool, into out: inout ByteSink) {
        let gaps = to - from - 1
        guard gaps > 0 else { return }
        var maximum: UInt32 = 0
        var sum: UInt64 = 0
        var i = from + 1
        while i < to {
            precondition(docs[i] < docs[i - 1], "posting documents must strictly decrease")
            let gap = docs[i - 1] &- docs[i] &- 1
            maximum |= gap
            sum &+= UInt64(gap)
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
        // Rice with k = 0 is the block's bitmap, which a cursor searches in place without
        // decoding (see `PostingCursor`): taken when it is at most a quarter larger than the
        // best coding (dense lists, the ones intersections and phrases probe most).
        let bitmapBits = gaps + Int(sum)
        if bestK != 0, width > 0, bitmapBits <= (bestK < 0 ? packedBits : bestBits) * 5 / 4 { bestK = 0 }
        // Elias-Fano over e_i = first - doc_i - 1: (size-1) * l low bits, then one bit per
        // document and one per bucket of 2^l below the last: l near log2 of the mean gap.
        let first = docs[from]
        var bestL = -1
        var bestEliasFano = Int.max
        var useEliasFano = false
        if eliasFano, bestK != 0, width > 0 {
            let chosenBits = bestK < 0 ? packedBits : bestBits
            let span = Int(first &- docs[to - 1] &- 1)
            let mean = max(1, span / gaps)
            let center = bitWidth(UInt32(truncatingIfNeeded: mean)) - 1
            for l in max(0, center - 1)...min(31, center + 1) {
                let bits = gaps * l + (span >> l) + gaps
                if bits < bestEliasFano { bestEliasFano = bits; bestL = l }
            }
            useEliasFano = bestEliasFano * 100 <= chosenBits * (100 + eliasFanoTolerancePercent)
            // In lists of several blocks (the ones conjunctions decode in full), bit-packing
            // decodes in about a third of the instructions of Rice or Elias-Fano: taken when
            // it is at most `packedPreferencePercent` larger than the best coding.
            let best = min(chosenBits, bestEliasFano)
            if packedBits * 100 <= best * (100 + packedPreferencePercent) {
                useEliasFano = false
                bestK = -1
            }
        }
        // The body is written straight into the sink, 8 bytes at a time (an array append per
        // byte cost most of a freeze's coding). No body exceeds 1 + 127 * 32 bits (bit-packed)
        // by more than a quarter (a bitmap is taken at most 5/4 of the best coding,
        // Elias-Fano at most 11/10), plus padding and the writer's 8-byte stores: 1 KiB of
        // room holds it.
        out.reserve(1024)
        var writer = BitWriter(base: out.base + out.count)
        if useEliasFano {
            writeEliasFano(docs, from: from, to: to, l: bestL, into: &writer)
        } else if bestK < 0 {
            writePacked(docs, from: from, to: to, width: width, into: &writer)
        } else {
            writeRice(docs, from: from, to: to, k: bestK, into: &writer)
        }
        precondition(writer.offset <= 1024 - 8, "a block body outgrew its room")
        out.extend(by: writer.offset)
    }

    // The three body writers take everything they need as arguments (as one local function
    // capturing the encoder's variables, each `put` went through memory, and inlining it
    // boxed the captured variables on the heap).

    /// An Elias-Fano body of the block `docs[from..<to]` with `l` low bits.
    @inline(__always)
    private static func writeEliasFano(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, l: Int, into writer: inout BitWriter) {
        let first = docs[from]
        writer.byte(eliasFanoFlag | UInt8(l))
        if l > 0 {
            let low = (UInt64(1) << UInt64(l)) &- 1
            var i = from &+ 1
            while i < to {
                writer.put(UInt64(first &- docs[i] &- 1) & low, bits: l)
                i &+= 1
            }
            writer.finish()
        }
        var previousHigh = 0
        var i = from &+ 1
        while i < to {
            let high = Int((first &- docs[i] &- 1) >> UInt32(l))
            putUnary(high &- previousHigh, into: &writer)
            previousHigh = high
            i &+= 1
        }
        writer.finish()
    }

    /// `n` in unary: `n` zero bits, then a one (the Elias-Fano high parts and Rice quotients).
    @inline(__always)
    private static func putUnary(_ n: Int, into writer: inout BitWriter) {
        var zeros = n
        while zeros >= 32 {
            writer.put(0, bits: 32)
            zeros &-= 32
        }
        writer.put(UInt64(1) << UInt64(zeros), bits: zeros &+ 1)
    }

    /// A bit-packed body of the block `docs[from..<to]`, `width` bits a gap.
    @inline(__always)
    private static func writePacked(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, width: Int, into writer: inout BitWriter) {
        writer.byte(UInt8(width))
        guard width > 0 else { return }
        var i = from &+ 1
        while i < to {
            writer.put(UInt64(docs[i &- 1] &- docs[i] &- 1), bits: width)
            i &+= 1
        }
        writer.finish()
    }

    /// A Rice body of the block `docs[from..<to]` with parameter `k`.
    @inline(__always)
    private static func writeRice(_ docs: UnsafeBufferPointer<UInt32>, from: Int, to: Int, k: Int, into writer: inout BitWriter) {
        writer.byte(riceFlag | UInt8(k))
        let low = (UInt64(1) << UInt64(k)) &- 1
        if k > 0 {
            var i = from &+ 1
            while i < to {
                writer.put(UInt64(docs[i &- 1] &- docs[i] &- 1) & low, bits: k)
                i &+= 1
            }
            writer.finish()
        }
        var i = from &+ 1
        while i < to {
            putUnary(Int(UInt64(docs[i &- 1] &- docs[i] &- 1) >> UInt64(k)), into: &writer)
            i &+= 1
        }
        writer.finish()
    }

    /// Writes bits LSB first into a buffer, 8 bytes at a time (the buffer has room for 8 bytes
    /// past the last whole byte written).
    private struct BitWriter {
        let base: UnsafeMutableRawPointer
        /// Bytes written whole.
        var offset = 0
        var accumulator: UInt64 = 0
        /// Bits held in `accumulator` (below 64).
        var bits = 0

        init(base: UnsafeMutableRawPointer) { self.base = base }

        /// A byte; only at a byte boundary (after `finish`, or first).
        @inline(__always)
        mutating func byte(_ value: UInt8) {
            base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
            offset &+= 1
        }

        /// `count` <= 32 bits of `value` (higher bits zero).
        @inline(__always)
        mutating func put(_ value: UInt64, bits count: Int) {
            accumulator |= value &<< UInt64(bits)
            let total = bits &+ count
            if total >= 64 {
                base.storeBytes(of: accumulator.littleEndian, toByteOffset: offset, as: UInt64.self)
                offset &+= 8
                // The bits of `value` that did not fit (bits >= 32 here, so the shift is < 64).
                accumulator = value &>> UInt64(64 &- bits)
                bits = total &- 64
            } else {
                bits = total
            }
        }

        /// Pads to a whole byte.
        @inline(__always)
        mutating func finish() {
            base.storeBytes(of: accumulator.littleEndian, toByteOffset: offset, as: UInt64.self)
            offset &+= (bits &+ 7) &>> 3
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
        if header & 0x40 != 0 { return decodeEliasFano(body, l: Int(header & 0x1F), size: size, into: docs) }
        let width = Int(header)
        if width == 0 {
            var i = 1
            while i < size {
                docs[i] = docs[i - 1] &- 1
                i += 1
            }
            return 1
        }
        unpack(body + 1, width: width, first: first, gaps: size &- 1, into: docs + 1)
        return 1 + ((size - 1) * width + 7) >> 3
    }

    /// Writes the `gaps` documents coded as gaps packed at `width` bits (1...32) from `packed`
    /// on, the first below `first`, to `out`. Dispatches once per block to a copy of the loop
    /// made for each width, in which every shift and byte offset is a constant (as
    /// `GraphCodec.unpack` does for increasing lists).
    @inlinable
    static func unpack(_ packed: UnsafeRawPointer, width: Int, first: UInt32, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        switch width {
        case 1: unpackFixed(packed, width: 1, first: first, gaps: gaps, into: out)
        case 2: unpackFixed(packed, width: 2, first: first, gaps: gaps, into: out)
        case 3: unpackFixed(packed, width: 3, first: first, gaps: gaps, into: out)
        case 4: unpackFixed(packed, width: 4, first: first, gaps: gaps, into: out)
        case 5: unpackFixed(packed, width: 5, first: first, gaps: gaps, into: out)
        case 6: unpackFixed(packed, width: 6, first: first, gaps: gaps, into: out)
        case 7: unpackFixed(packed, width: 7, first: first, gaps: gaps, into: out)
        case 8: unpackFixed(packed, width: 8, first: first, gaps: gaps, into: out)
        case 9: unpackFixed(packed, width: 9, first: first, gaps: gaps, into: out)
        case 10: unpackFixed(packed, width: 10, first: first, gaps: gaps, into: out)
        case 11: unpackFixed(packed, width: 11, first: first, gaps: gaps, into: out)
        case 12: unpackFixed(packed, width: 12, first: first, gaps: gaps, into: out)
        case 13: unpackFixed(packed, width: 13, first: first, gaps: gaps, into: out)
        case 14: unpackFixed(packed, width: 14, first: first, gaps: gaps, into: out)
        case 15: unpackFixed(packed, width: 15, first: first, gaps: gaps, into: out)
        case 16: unpackFixed(packed, width: 16, first: first, gaps: gaps, into: out)
        case 17: unpackFixed(packed, width: 17, first: first, gaps: gaps, into: out)
        case 18: unpackFixed(packed, width: 18, first: first, gaps: gaps, into: out)
        case 19: unpackFixed(packed, width: 19, first: first, gaps: gaps, into: out)
        case 20: unpackFixed(packed, width: 20, first: first, gaps: gaps, into: out)
        case 21: unpackFixed(packed, width: 21, first: first, gaps: gaps, into: out)
        case 22: unpackFixed(packed, width: 22, first: first, gaps: gaps, into: out)
        case 23: unpackFixed(packed, width: 23, first: first, gaps: gaps, into: out)
        case 24: unpackFixed(packed, width: 24, first: first, gaps: gaps, into: out)
        case 25: unpackFixed(packed, width: 25, first: first, gaps: gaps, into: out)
        case 26: unpackFixed(packed, width: 26, first: first, gaps: gaps, into: out)
        case 27: unpackFixed(packed, width: 27, first: first, gaps: gaps, into: out)
        case 28: unpackFixed(packed, width: 28, first: first, gaps: gaps, into: out)
        case 29: unpackFixed(packed, width: 29, first: first, gaps: gaps, into: out)
        case 30: unpackFixed(packed, width: 30, first: first, gaps: gaps, into: out)
        case 31: unpackFixed(packed, width: 31, first: first, gaps: gaps, into: out)
        case 32: unpackFixed(packed, width: 32, first: first, gaps: gaps, into: out)
        default: preconditionFailure("bit width \(width) out of range (the segment was verified)")
        }
    }

    /// `unpack` for one width: groups of 8 gaps (8 * width bits = `width` whole bytes, so each
    /// group starts on a byte and every load offset and shift in it is a constant), then the
    /// last < 8 gaps one by one. Loads stay inside the gaps' bytes plus 7 (the padding after a
    /// list covers the last body). Wrapping operators: offsets are far below any overflow and
    /// shift counts below 64.
    @inlinable @inline(__always)
    static func unpackFixed(_ packed: UnsafeRawPointer, width: Int, first: UInt32, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        let mask: UInt64 = (1 &<< UInt64(width)) &- 1
        var previous = first
        var group = packed
        var i = 0
        while i &+ 8 <= gaps {
            var k = 0
            while k < 8 {
                previous = previous &- gap(group, bit: k &* width, mask: mask) &- 1
                out[i &+ k] = previous
                k &+= 1
            }
            group += width
            i &+= 8
        }
        var bit = 0
        while i < gaps {
            previous = previous &- gap(group, bit: bit, mask: mask) &- 1
            out[i] = previous
            bit &+= width
            i &+= 1
        }
    }

    /// Writes `base` minus each of the `count` values packed at `width` bits (1...31) from
    /// `packed` on to `out`: the low bits of an Elias-Fano block (no running sum, unlike
    /// `unpack`). A copy of the loop per width, as in `unpack`.
    @inlinable
    static func unpackOffsets(_ packed: UnsafeRawPointer, width: Int, base: UInt32, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        switch width {
        case 1: unpackOffsetsFixed(packed, width: 1, base: base, count: count, into: out)
        case 2: unpackOffsetsFixed(packed, width: 2, base: base, count: count, into: out)
        case 3: unpackOffsetsFixed(packed, width: 3, base: base, count: count, into: out)
        case 4: unpackOffsetsFixed(packed, width: 4, base: base, count: count, into: out)
        case 5: unpackOffsetsFixed(packed, width: 5, base: base, count: count, into: out)
        case 6: unpackOffsetsFixed(packed, width: 6, base: base, count: count, into: out)
        case 7: unpackOffsetsFixed(packed, width: 7, base: base, count: count, into: out)
        case 8: unpackOffsetsFixed(packed, width: 8, base: base, count: count, into: out)
        case 9: unpackOffsetsFixed(packed, width: 9, base: base, count: count, into: out)
        case 10: unpackOffsetsFixed(packed, width: 10, base: base, count: count, into: out)
        case 11: unpackOffsetsFixed(packed, width: 11, base: base, count: count, into: out)
        case 12: unpackOffsetsFixed(packed, width: 12, base: base, count: count, into: out)
        case 13: unpackOffsetsFixed(packed, width: 13, base: base, count: count, into: out)
        case 14: unpackOffsetsFixed(packed, width: 14, base: base, count: count, into: out)
        case 15: unpackOffsetsFixed(packed, width: 15, base: base, count: count, into: out)
        case 16: unpackOffsetsFixed(packed, width: 16, base: base, count: count, into: out)
        case 17: unpackOffsetsFixed(packed, width: 17, base: base, count: count, into: out)
        case 18: unpackOffsetsFixed(packed, width: 18, base: base, count: count, into: out)
        case 19: unpackOffsetsFixed(packed, width: 19, base: base, count: count, into: out)
        case 20: unpackOffsetsFixed(packed, width: 20, base: base, count: count, into: out)
        case 21: unpackOffsetsFixed(packed, width: 21, base: base, count: count, into: out)
        case 22: unpackOffsetsFixed(packed, width: 22, base: base, count: count, into: out)
        case 23: unpackOffsetsFixed(packed, width: 23, base: base, count: count, into: out)
        case 24: unpackOffsetsFixed(packed, width: 24, base: base, count: count, into: out)
        case 25: unpackOffsetsFixed(packed, width: 25, base: base, count: count, into: out)
        case 26: unpackOffsetsFixed(packed, width: 26, base: base, count: count, into: out)
        case 27: unpackOffsetsFixed(packed, width: 27, base: base, count: count, into: out)
        case 28: unpackOffsetsFixed(packed, width: 28, base: base, count: count, into: out)
        case 29: unpackOffsetsFixed(packed, width: 29, base: base, count: count, into: out)
        case 30: unpackOffsetsFixed(packed, width: 30, base: base, count: count, into: out)
        case 31: unpackOffsetsFixed(packed, width: 31, base: base, count: count, into: out)
        default: preconditionFailure("Elias-Fano low bits \(width) out of range (the segment was verified)")
        }
    }

    /// `unpackOffsets` for one width: groups of 8 values (`width` whole bytes), then the rest.
    @inlinable @inline(__always)
    static func unpackOffsetsFixed(_ packed: UnsafeRawPointer, width: Int, base: UInt32, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        let mask: UInt64 = (1 &<< UInt64(width)) &- 1
        var group = packed
        var i = 0
        while i &+ 8 <= count {
            var k = 0
            while k < 8 {
                out[i &+ k] = base &- gap(group, bit: k &* width, mask: mask)
                k &+= 1
            }
            group += width
            i &+= 8
        }
        var bit = 0
        while i < count {
            out[i] = base &- gap(group, bit: bit, mask: mask)
            bit &+= width
            i &+= 1
        }
    }

    /// The gap packed at bit `bit` of `group` (`mask` = its width's low bits): one unaligned
    /// 8-byte load at the bit's byte.
    @inlinable @inline(__always)
    static func gap(_ group: UnsafeRawPointer, bit: Int, mask: UInt64) -> UInt32 {
        let word = UInt64(littleEndian: group.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self))
        return UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask)
    }

    /// The bit after the `ones`-th set bit (`ones` >= 1) of the bitmap at `bits`: for the unary
    /// run of a Rice block with k = 0 (bit `first - doc - 1` set per later document, `ones` of
    /// them), one past the last document's bit. Words before the one holding that bit hold only
    /// the run's bits, so whatever follows the run is never counted.
    @inlinable
    static func bitmapSpan(_ bits: UnsafeRawPointer, ones: Int) -> Int {
        var remaining = ones
        var w = 0
        while true {
            var word = UInt64(littleEndian: bits.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self))
            let c = word.nonzeroBitCount
            if c >= remaining {
                while remaining > 1 {
                    word &= word &- 1
                    remaining &-= 1
                }
                return (w &<< 6) &+ word.trailingZeroBitCount &+ 1
            }
            remaining &-= c
            w &+= 1
        }
    }

    /// `bitmapSpan` of a bitmap (Rice, k = 0) body whose bits take `bytes` bytes, the last of
    /// them `last`: a body ends with the byte of its last one bit, zero bits after it (as the
    /// encoder writes it and the deep check verifies), so the span is that bit's position + 1,
    /// without counting the bits before it.
    @inlinable @inline(__always)
    static func bitmapSpan(bytes: Int, last: UInt8) -> Int {
        (bytes &- 1) &* 8 &+ 8 &- last.leadingZeroBitCount
    }

    /// The Rice-coded body, in two passes: the k low bits of every gap with the bit-packed
    /// decoder (so `docs[i]` = first - the sum of (low + 1) up to i), then the high parts from
    /// the unary run: the i-th set bit at p has p - (i - 1) zero bits before it, the sum of the
    /// quotients up to i, which is subtracted shifted left by k.
    @inlinable
    static func decodeRice(_ body: UnsafeRawPointer, k: Int, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        // Wrapping operators as in `decodeBlock`: k <= 31, offsets within a block, and the
        // documents of a verified list never go below 0.
        let gaps = size &- 1
        let lowBytes = (gaps &* k &+ 7) &>> 3
        let first = docs[0]
        if k == 0 { return 1 + ((decodeBitmap(body + 1, first: first, size: size, into: docs) + 1 + 7) >> 3) }
        unpack(body + 1, width: k, first: first, gaps: gaps, into: docs + 1)
        let position = subtractHighParts(body + 1 + lowBytes, shift: k, size: size, into: docs)
        return 1 + lowBytes + ((position + 1 + 7) >> 3)
    }

    /// A Rice body with k = 0 (a bitmap of the block: document i at the i-th set bit p is
    /// first - p - 1) decoded in one pass, each set bit stored as its document. Returns the
    /// last set bit's position.
    @inlinable @inline(__always)
    static func decodeBitmap(_ bits: UnsafeRawPointer, first: UInt32, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        let base = first &- 1
        var wordStart = 0
        var position = 0
        var i = 1
        while i < size {
            // As in `subtractHighParts`: a word's set bits are documents i, i + 1, ... (only the
            // first size - i of the run's last word).
            var word = UInt64(littleEndian: bits.loadUnaligned(fromByteOffset: wordStart &>> 3, as: UInt64.self))
            let end = i &+ min(word.nonzeroBitCount, size &- i)
            while i < end {
                position = wordStart &+ word.trailingZeroBitCount
                word &= word &- 1
                docs[i] = base &- UInt32(truncatingIfNeeded: position)
                i &+= 1
            }
            wordStart &+= 64
        }
        return position
    }

    /// The second pass of Rice and Elias-Fano bodies: the one bit of document i (1 ..< size) at
    /// p has p - (i - 1) zeros before it (Rice: the sum of the quotients up to i; Elias-Fano:
    /// e_i's high part), which is subtracted from `docs[i]` shifted left by `shift`. Returns
    /// the last one bit's position.
    @inlinable @inline(__always)
    static func subtractHighParts(_ unary: UnsafeRawPointer, shift k: Int, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        let shift = UInt32(truncatingIfNeeded: k)
        var wordStart = 0
        var position = 0
        var i = 1
        while i < size {
            // A word's set bits are documents i, i + 1, ... (all of them but in the run's last
            // word, where bits after the run may follow: only the first size - i count), so
            // the inner loop checks no word for zero and no count per bit.
            var word = UInt64(littleEndian: unary.loadUnaligned(fromByteOffset: wordStart &>> 3, as: UInt64.self))
            let end = i &+ min(word.nonzeroBitCount, size &- i)
            while i < end {
                position = wordStart &+ word.trailingZeroBitCount
                word &= word &- 1
                docs[i] = docs[i] &- (UInt32(truncatingIfNeeded: position &- i &+ 1) &<< shift)
                i &+= 1
            }
            wordStart &+= 64
        }
        return position
    }

    /// An Elias-Fano body decoded in full (a cursor that only confirms documents searches it
    /// in place instead): `docs[i]` = first - 1 - the low bits of e_i, then the high parts as
    /// in `decodeRice`.
    @inlinable
    static func decodeEliasFano(_ body: UnsafeRawPointer, l: Int, size: Int, into docs: UnsafeMutablePointer<UInt32>) -> Int {
        let gaps = size &- 1
        let lowBytes = (gaps &* l &+ 7) &>> 3
        let base = docs[0] &- 1
        if l == 0 {
            var i = 1
            while i < size {
                docs[i] = base
                i &+= 1
            }
        } else {
            unpackOffsets(body + 1, width: l, base: base, count: gaps, into: docs + 1)
        }
        let position = subtractHighParts(body + 1 + lowBytes, shift: l, size: size, into: docs)
        return 1 + lowBytes + ((position + 1 + 7) >> 3)
    }
}
