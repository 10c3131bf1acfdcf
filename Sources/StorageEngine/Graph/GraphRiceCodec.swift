/// Rice lists: how a format 6 base codes its follower lists (`GraphFormat`), sorted, strictly
/// increasing lists of dense user numbers (UInt32) with one Rice parameter for the whole list.
///
/// Why: a follower list is close to a random subset of the users, whose gaps are about
/// geometric; a Rice code at the best parameter costs within a few hundredths of a bit a gap of
/// that entropy, where `GraphCodec`'s packed blocks pay about a bit a gap for their widest gap.
/// A list this uniform needs no parameter per block, no mode byte per block, and its first
/// value is just one more gap (from -1), so a short list carries one byte of header where a
/// `GraphCodec` list carries a mode byte and a varint; a long list's block directory is
/// bit-packed at the widths its values and offsets need instead of 8 bytes a block.
///
/// A list of `count` >= 1 values, as bytes (position-independent, copied verbatim between
/// format 6 bases):
///
///     count <= 128 (one block, most lists):
///         u8      k, the Rice parameter (0...31)
///         body    count gaps: the first value itself, then value[i] - value[i-1] - 1
///
///     count > 128 (B = ceil(count / 128) blocks; block b holds values b*128 ..< min(count, (b+1)*128)):
///         u8      k
///         u8      wv, the bit width of the directory's values (1...32)
///         u8      wo, the bit width of the directory's offsets (0...32)
///         B x (wv + wo) bits, LSB first, zero bits to the byte's end: the directory, per block
///                 its first value (wv bits), then the byte offset of its body from the end of
///                 the directory (wo bits; block 0's is 0)
///         B bodies, each the block's (size - 1) gaps after its first value
///
///     body:  the gaps Rice-coded at k in one bit stream, LSB first: the low k bits of every
///            gap packed at k bits each, then every quotient `gap >> k` in unary (that many zero
///            bits, then a one bit), zero bits to the byte's end (a `GraphCodec` Rice body
///            without its mode byte, so the same two-pass decoder reads it).
///
/// The encoder takes the k with the fewest bits over all the list's coded gaps. Decoders load
/// 8 bytes at a bit position's byte, so the holder of coded lists keeps `GraphCodec.paddingBytes`
/// readable bytes after the last one.
///
/// These constants are part of the base file format and must not change.
public enum GraphRiceCodec {
    public static let blockSize = GraphCodec.blockSize
    public static let blockShift = GraphCodec.blockShift
    /// Header bytes of a list of more than one block (k, wv, wo); one block has 1 (k).
    public static let longHeaderBytes = 3
    public static let parameterMax = 31

    // MARK: Sizes and encoding

    /// Calls `body` with every gap the list codes, in order: for one block, the first value (a
    /// gap from -1) and the gaps after it; for more, the gaps inside each block (a block's first
    /// value sits in the directory).
    static func forEachCodedGap(_ values: UnsafeBufferPointer<UInt32>, _ body: (UInt64) -> Void) {
        let count = values.count
        if count <= blockSize { body(UInt64(values[0])) }
        var i = 1
        while i < count {
            precondition(values[i] > values[i - 1], "neighbour lists must be strictly increasing")
            if count <= blockSize || i & (blockSize - 1) != 0 { body(UInt64(values[i] &- values[i - 1] &- 1)) }
            i += 1
        }
    }

    /// The bits of the list's coded gaps at parameter `k` (headers, directory and padding apart).
    static func gapBits(_ values: UnsafeBufferPointer<UInt32>, k: Int) -> Int {
        var total = 0
        forEachCodedGap(values) { total += Int($0 >> UInt64(k)) + 1 + k }
        return total
    }

    /// The parameter with the fewest gap bits (ties to the smaller): the cost is convex in k, so
    /// a walk from floor(log2(mean gap)) to the first step that does not pay finds it.
    static func parameter(_ values: UnsafeBufferPointer<UInt32>) -> Int {
        var n: UInt64 = 0, sum: UInt64 = 0
        forEachCodedGap(values) { n += 1; sum += $0 }
        guard n > 0 else { return 0 }
        var k = min(parameterMax, max(0, 63 - (sum / n).leadingZeroBitCount))
        var bits = gapBits(values, k: k)
        while k > 0 {
            let lower = gapBits(values, k: k - 1)
            guard lower <= bits else { break }
            k -= 1
            bits = lower
        }
        while k < parameterMax {
            let higher = gapBits(values, k: k + 1)
            guard higher < bits else { break }
            k += 1
            bits = higher
        }
        return k
    }

    /// The bits of one body: the gaps of `values[start+1..<end]`, from -1 for `values[start]`
    /// too when `fromMinusOne`.
    static func bodyBits(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, fromMinusOne: Bool, k: Int) -> Int {
        var total = 0
        var i = fromMinusOne ? start : start + 1
        while i < end {
            let gap = i == start ? UInt64(values[i]) : UInt64(values[i] &- values[i - 1] &- 1)
            total += Int(gap >> UInt64(k)) + 1 + k
            i += 1
        }
        return total
    }

    /// A list of more than one block: its directory's widths and bytes, and the whole size.
    static func layout(_ values: UnsafeBufferPointer<UInt32>, k: Int) -> (valueWidth: Int, offsetWidth: Int, directoryBytes: Int, bytes: Int) {
        let count = values.count
        let blocks = (count + blockSize - 1) >> blockShift
        var offset = 0, last = 0
        for b in 0..<blocks {
            last = offset
            offset += (bodyBits(values, from: b << blockShift, to: min(count, (b + 1) << blockShift), fromMinusOne: false, k: k) + 7) >> 3
        }
        precondition(last <= Int(UInt32.max), "a follower list of over 4 GiB")
        let valueWidth = max(1, GraphCodec.bitWidth(values[(blocks - 1) << blockShift]))
        let offsetWidth = GraphCodec.bitWidth(UInt32(last))
        let directoryBytes = (blocks * (valueWidth + offsetWidth) + 7) >> 3
        return (valueWidth, offsetWidth, directoryBytes, longHeaderBytes + directoryBytes + offset)
    }

    /// The bytes `values` (sorted, strictly increasing, non-empty) take when coded.
    public static func encodedSize(_ values: UnsafeBufferPointer<UInt32>) -> Int {
        precondition(values.count > 0, "an empty list is not coded")
        let k = parameter(values)
        if values.count <= blockSize { return 1 + (gapBits(values, k: k) + 7) >> 3 }
        return layout(values, k: k).bytes
    }

    /// Codes `values` (sorted, strictly increasing, non-empty) at `destination`, which must have
    /// room for `encodedSize(values)` bytes; returns the bytes written.
    @discardableResult
    public static func encode(_ values: UnsafeBufferPointer<UInt32>, into destination: UnsafeMutableRawPointer) -> Int {
        let count = values.count
        precondition(count > 0, "an empty list is not coded")
        let k = parameter(values)
        destination.storeBytes(of: UInt8(k), as: UInt8.self)
        if count <= blockSize {
            let written = writeBody(values, from: 0, to: count, fromMinusOne: true, k: k, into: destination + 1)
            return 1 + written
        }
        let (valueWidth, offsetWidth, directoryBytes, bytes) = layout(values, k: k)
        destination.storeBytes(of: UInt8(valueWidth), toByteOffset: 1, as: UInt8.self)
        destination.storeBytes(of: UInt8(offsetWidth), toByteOffset: 2, as: UInt8.self)
        let bodies = destination + longHeaderBytes + directoryBytes
        var directory = GraphCodec.BitWriter(destination + longHeaderBytes)
        var offset = 0
        var start = 0
        while start < count {
            let end = min(count, start + blockSize)
            directory.put(UInt64(values[start]), bits: valueWidth)
            directory.put(UInt64(offset), bits: offsetWidth)
            offset += writeBody(values, from: start, to: end, fromMinusOne: false, k: k, into: bodies + offset)
            start = end
        }
        directory.finish()
        precondition(directory.written == directoryBytes && longHeaderBytes + directoryBytes + offset == bytes, "Rice list size mismatch")
        return bytes
    }

    /// Writes one body (see `bodyBits`); returns its bytes.
    static func writeBody(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, fromMinusOne: Bool, k: Int,
                          into destination: UnsafeMutableRawPointer) -> Int {
        func gap(_ i: Int) -> UInt64 { i == start ? UInt64(values[i]) : UInt64(values[i] &- values[i - 1] &- 1) }
        let first = fromMinusOne ? start : start + 1
        var writer = GraphCodec.BitWriter(destination)
        let mask: UInt64 = (1 << UInt64(k)) - 1
        var i = first
        while i < end {
            writer.put(gap(i) & mask, bits: k)
            i += 1
        }
        i = first
        while i < end {
            writer.zeros(Int(gap(i) >> UInt64(k)))
            writer.put(1, bits: 1)
            i += 1
        }
        writer.finish()
        precondition(writer.written == (bodyBits(values, from: start, to: end, fromMinusOne: fromMinusOne, k: k) + 7) >> 3, "Rice body size mismatch")
        return writer.written
    }

    // MARK: Decoding

    /// `width` (0...32) bits at bit `bit` of `p`: one unaligned 8-byte load.
    @inlinable @inline(__always)
    static func field(_ p: UnsafeRawPointer, bit: Int, width: Int) -> UInt32 {
        let word = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self)) &>> UInt64(bit & 7)
        return UInt32(truncatingIfNeeded: word & ((1 &<< UInt64(width)) &- 1))
    }

    /// Directory entry `b` of a list of more than one block: the block's first value and the
    /// address of its body.
    @inlinable @inline(__always)
    static func entry(_ list: UnsafeRawPointer, blocks: Int, _ b: Int) -> (first: UInt32, body: UnsafeRawPointer) {
        let valueWidth = Int(list.load(fromByteOffset: 1, as: UInt8.self))
        let offsetWidth = Int(list.load(fromByteOffset: 2, as: UInt8.self))
        let directory = list + longHeaderBytes
        let bit = b &* (valueWidth &+ offsetWidth)
        let first = field(directory, bit: bit, width: valueWidth)
        let offset = Int(field(directory, bit: bit &+ valueWidth, width: offsetWidth))
        let bodies = directory + ((blocks &* (valueWidth &+ offsetWidth) &+ 7) &>> 3)
        return (first, bodies + offset)
    }

    /// Whether the coded list of `count` values holds `value`, decoding at most one block (and
    /// only up to `value`).
    @inlinable
    public static func contains(_ list: UnsafeRawPointer, count: Int, _ value: UInt32) -> Bool {
        let k = Int(list.load(as: UInt8.self))
        if count <= blockSize { return search(list + 1, k: k, after: .max, gaps: count, value) }
        return blockContains(list, count: count, lastBlock(list, count: count, atOrBelow: value, from: 0), value)
    }

    /// Whether block `b` of the coded list of `count` values holds `value` (decoded only up to it).
    @inlinable
    public static func blockContains(_ list: UnsafeRawPointer, count: Int, _ b: Int, _ value: UInt32) -> Bool {
        let k = Int(list.load(as: UInt8.self))
        if count <= blockSize { return search(list + 1, k: k, after: .max, gaps: count, value) }
        let blocks = (count &+ blockSize &- 1) &>> blockShift
        let (first, body) = entry(list, blocks: blocks, b)
        if value <= first { return value == first }
        return search(body, k: k, after: first, gaps: min(blockSize, count &- (b &<< blockShift)) &- 1, value)
    }

    /// Whether `value` is among the `gaps` values of a body after `after` (-1 as UInt32.max: the
    /// arithmetic wraps to the true values). One copy of the loop per parameter, as
    /// `GraphCodec.unpack`, so the low bits' offsets and shifts are constants.
    @inlinable
    static func search(_ body: UnsafeRawPointer, k: Int, after: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        switch k {
        case 0: return searchFixed(body, BitWidth<0>(), after: after, gaps: gaps, value)
        case 1: return searchFixed(body, BitWidth<1>(), after: after, gaps: gaps, value)
        case 2: return searchFixed(body, BitWidth<2>(), after: after, gaps: gaps, value)
        case 3: return searchFixed(body, BitWidth<3>(), after: after, gaps: gaps, value)
        case 4: return searchFixed(body, BitWidth<4>(), after: after, gaps: gaps, value)
        case 5: return searchFixed(body, BitWidth<5>(), after: after, gaps: gaps, value)
        case 6: return searchFixed(body, BitWidth<6>(), after: after, gaps: gaps, value)
        case 7: return searchFixed(body, BitWidth<7>(), after: after, gaps: gaps, value)
        case 8: return searchFixed(body, BitWidth<8>(), after: after, gaps: gaps, value)
        case 9: return searchFixed(body, BitWidth<9>(), after: after, gaps: gaps, value)
        case 10: return searchFixed(body, BitWidth<10>(), after: after, gaps: gaps, value)
        case 11: return searchFixed(body, BitWidth<11>(), after: after, gaps: gaps, value)
        case 12: return searchFixed(body, BitWidth<12>(), after: after, gaps: gaps, value)
        case 13: return searchFixed(body, BitWidth<13>(), after: after, gaps: gaps, value)
        case 14: return searchFixed(body, BitWidth<14>(), after: after, gaps: gaps, value)
        case 15: return searchFixed(body, BitWidth<15>(), after: after, gaps: gaps, value)
        case 16: return searchFixed(body, BitWidth<16>(), after: after, gaps: gaps, value)
        case 17: return searchFixed(body, BitWidth<17>(), after: after, gaps: gaps, value)
        case 18: return searchFixed(body, BitWidth<18>(), after: after, gaps: gaps, value)
        case 19: return searchFixed(body, BitWidth<19>(), after: after, gaps: gaps, value)
        case 20: return searchFixed(body, BitWidth<20>(), after: after, gaps: gaps, value)
        case 21: return searchFixed(body, BitWidth<21>(), after: after, gaps: gaps, value)
        case 22: return searchFixed(body, BitWidth<22>(), after: after, gaps: gaps, value)
        case 23: return searchFixed(body, BitWidth<23>(), after: after, gaps: gaps, value)
        case 24: return searchFixed(body, BitWidth<24>(), after: after, gaps: gaps, value)
        case 25: return searchFixed(body, BitWidth<25>(), after: after, gaps: gaps, value)
        case 26: return searchFixed(body, BitWidth<26>(), after: after, gaps: gaps, value)
        case 27: return searchFixed(body, BitWidth<27>(), after: after, gaps: gaps, value)
        case 28: return searchFixed(body, BitWidth<28>(), after: after, gaps: gaps, value)
        case 29: return searchFixed(body, BitWidth<29>(), after: after, gaps: gaps, value)
        case 30: return searchFixed(body, BitWidth<30>(), after: after, gaps: gaps, value)
        case 31: return searchFixed(body, BitWidth<31>(), after: after, gaps: gaps, value)
        default: preconditionFailure("Rice parameter \(k) out of range (the list was verified)")
        }
    }

    /// `search` for one parameter: `skip` to the group of eight holding the first value at
    /// least `value`, then one gap at a time (at most 8).
    @inlinable
    static func searchFixed<let k: Int>(_ body: UnsafeRawPointer, _ parameter: BitWidth<k>, after: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        var (i, current, unary) = skipFixed(body, parameter, after: after, gaps: gaps, value)
        let mask: UInt64 = (1 &<< UInt64(k)) &- 1
        let group = body + (i &>> 3) &* k
        var lowBit = 0
        while i < gaps {
            var word = GraphCodec.bits(body, at: unary)
            var quotient = 0
            while word == 0 {
                quotient &+= 56
                unary &+= 56
                word = GraphCodec.bits(body, at: unary)
            }
            let zeros = word.trailingZeroBitCount
            quotient &+= zeros
            unary &+= zeros &+ 1
            current = current &+ (UInt32(truncatingIfNeeded: quotient) &<< UInt32(k) | GraphCodec.gap(group, bit: lowBit, mask: mask)) &+ 1
            if current >= value { return current == value }
            lowBit &+= k
            i &+= 1
        }
        return false
    }

    /// Skips the groups of eight gaps of a body (`gaps` after `after`) whose last value is below
    /// `value`: returns how many gaps it skipped (a multiple of 8; fewer than 8 values below
    /// `value` follow), the value before the next gap (`after` when none) and the bit where
    /// that gap's quotient starts. A group's values are never written out: its eight quotients
    /// add up to the position of its eighth one bit less 7 (found by clearing the seven one
    /// bits below it, when within 56 bits of the stream; else one at a time), its low bits are
    /// the k bytes of the group.
    @inlinable
    static func skip(_ body: UnsafeRawPointer, k: Int, after: UInt32, gaps: Int, _ value: UInt32) -> (gaps: Int, current: UInt32, unary: Int) {
        switch k {
        case 0: return skipFixed(body, BitWidth<0>(), after: after, gaps: gaps, value)
        case 1: return skipFixed(body, BitWidth<1>(), after: after, gaps: gaps, value)
        case 2: return skipFixed(body, BitWidth<2>(), after: after, gaps: gaps, value)
        case 3: return skipFixed(body, BitWidth<3>(), after: after, gaps: gaps, value)
        case 4: return skipFixed(body, BitWidth<4>(), after: after, gaps: gaps, value)
        case 5: return skipFixed(body, BitWidth<5>(), after: after, gaps: gaps, value)
        case 6: return skipFixed(body, BitWidth<6>(), after: after, gaps: gaps, value)
        case 7: return skipFixed(body, BitWidth<7>(), after: after, gaps: gaps, value)
        case 8: return skipFixed(body, BitWidth<8>(), after: after, gaps: gaps, value)
        case 9: return skipFixed(body, BitWidth<9>(), after: after, gaps: gaps, value)
        case 10: return skipFixed(body, BitWidth<10>(), after: after, gaps: gaps, value)
        case 11: return skipFixed(body, BitWidth<11>(), after: after, gaps: gaps, value)
        case 12: return skipFixed(body, BitWidth<12>(), after: after, gaps: gaps, value)
        case 13: return skipFixed(body, BitWidth<13>(), after: after, gaps: gaps, value)
        case 14: return skipFixed(body, BitWidth<14>(), after: after, gaps: gaps, value)
        case 15: return skipFixed(body, BitWidth<15>(), after: after, gaps: gaps, value)
        case 16: return skipFixed(body, BitWidth<16>(), after: after, gaps: gaps, value)
        case 17: return skipFixed(body, BitWidth<17>(), after: after, gaps: gaps, value)
        case 18: return skipFixed(body, BitWidth<18>(), after: after, gaps: gaps, value)
        case 19: return skipFixed(body, BitWidth<19>(), after: after, gaps: gaps, value)
        case 20: return skipFixed(body, BitWidth<20>(), after: after, gaps: gaps, value)
        case 21: return skipFixed(body, BitWidth<21>(), after: after, gaps: gaps, value)
        case 22: return skipFixed(body, BitWidth<22>(), after: after, gaps: gaps, value)
        case 23: return skipFixed(body, BitWidth<23>(), after: after, gaps: gaps, value)
        case 24: return skipFixed(body, BitWidth<24>(), after: after, gaps: gaps, value)
        case 25: return skipFixed(body, BitWidth<25>(), after: after, gaps: gaps, value)
        case 26: return skipFixed(body, BitWidth<26>(), after: after, gaps: gaps, value)
        case 27: return skipFixed(body, BitWidth<27>(), after: after, gaps: gaps, value)
        case 28: return skipFixed(body, BitWidth<28>(), after: after, gaps: gaps, value)
        case 29: return skipFixed(body, BitWidth<29>(), after: after, gaps: gaps, value)
        case 30: return skipFixed(body, BitWidth<30>(), after: after, gaps: gaps, value)
        case 31: return skipFixed(body, BitWidth<31>(), after: after, gaps: gaps, value)
        default: preconditionFailure("Rice parameter \(k) out of range (the list was verified)")
        }
    }

    @inlinable
    static func skipFixed<let k: Int>(_ body: UnsafeRawPointer, _ parameter: BitWidth<k>, after: UInt32, gaps: Int, _ value: UInt32)
        -> (gaps: Int, current: UInt32, unary: Int) {
        let mask: UInt64 = (1 &<< UInt64(k)) &- 1
        var current = after
        var i = 0
        var unary = gaps &* k
        var group = body
        while i &+ 8 <= gaps {
            var ones = GraphCodec.bits(body, at: unary)
            ones &= ones &- 1
            ones &= ones &- 1
            ones &= ones &- 1
            ones &= ones &- 1
            ones &= ones &- 1
            ones &= ones &- 1
            ones &= ones &- 1
            var quotients: Int, next: Int
            if ones != 0 {
                let eighth = ones.trailingZeroBitCount
                quotients = eighth &- 7
                next = unary &+ eighth &+ 1
            } else {
                // A long quotient among the eight (over 48 zero bits): one one bit at a time.
                quotients = 0
                next = unary
                var j = 0
                while j < 8 {
                    var word = GraphCodec.bits(body, at: next)
                    while word == 0 {
                        quotients &+= 56
                        next &+= 56
                        word = GraphCodec.bits(body, at: next)
                    }
                    let zeros = word.trailingZeroBitCount
                    quotients &+= zeros
                    next &+= zeros &+ 1
                    j &+= 1
                }
            }
            let lows = lowSum(group, BitWidth<k>(), mask: mask)
            // The eight gaps add up to below 2^32 (the values are UInt32s; from -1 it wraps).
            let last = current &+ (UInt32(truncatingIfNeeded: quotients) &<< UInt32(k)) &+ lows &+ 8
            if last >= value { break }
            current = last
            unary = next
            group += k
            i &+= 8
        }
        return (i, current, unary)
    }

    /// Decodes `gaps` gaps of a body after `after` (-1 as UInt32.max) to `out`: their quotients
    /// from bit `unary` of `body` on, their low bits from `lows` on (a group's first byte).
    @inlinable
    static func decode(_ body: UnsafeRawPointer, k: Int, after: UInt32, gaps: Int, unary: Int, lows: UnsafeRawPointer,
                       into out: UnsafeMutablePointer<UInt32>) {
        switch k {
        case 0: decodeFixed(body, BitWidth<0>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 1: decodeFixed(body, BitWidth<1>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 2: decodeFixed(body, BitWidth<2>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 3: decodeFixed(body, BitWidth<3>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 4: decodeFixed(body, BitWidth<4>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 5: decodeFixed(body, BitWidth<5>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 6: decodeFixed(body, BitWidth<6>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 7: decodeFixed(body, BitWidth<7>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 8: decodeFixed(body, BitWidth<8>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 9: decodeFixed(body, BitWidth<9>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 10: decodeFixed(body, BitWidth<10>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 11: decodeFixed(body, BitWidth<11>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 12: decodeFixed(body, BitWidth<12>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 13: decodeFixed(body, BitWidth<13>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 14: decodeFixed(body, BitWidth<14>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 15: decodeFixed(body, BitWidth<15>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 16: decodeFixed(body, BitWidth<16>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 17: decodeFixed(body, BitWidth<17>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 18: decodeFixed(body, BitWidth<18>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 19: decodeFixed(body, BitWidth<19>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 20: decodeFixed(body, BitWidth<20>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 21: decodeFixed(body, BitWidth<21>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 22: decodeFixed(body, BitWidth<22>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 23: decodeFixed(body, BitWidth<23>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 24: decodeFixed(body, BitWidth<24>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 25: decodeFixed(body, BitWidth<25>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 26: decodeFixed(body, BitWidth<26>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 27: decodeFixed(body, BitWidth<27>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 28: decodeFixed(body, BitWidth<28>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 29: decodeFixed(body, BitWidth<29>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 30: decodeFixed(body, BitWidth<30>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        case 31: decodeFixed(body, BitWidth<31>(), after: after, gaps: gaps, unary: unary, lows: lows, into: out)
        default: preconditionFailure("Rice parameter \(k) out of range (the list was verified)")
        }
    }

    /// `decode` for one parameter: eight gaps at a time in one pass while their one bits lie
    /// within 56 bits of the stream (a gap's quotient is the trailing zeros of what is left of
    /// the word less where the one bit before it ended; its low bits are at a constant offset
    /// in the group), the rest (a long quotient, the last < 8 gaps) in the two passes of a
    /// `GraphCodec` Rice block.
    @inlinable
    static func decodeFixed<let k: Int>(_ body: UnsafeRawPointer, _ parameter: BitWidth<k>, after: UInt32, gaps: Int, unary start: Int,
                                        lows: UnsafeRawPointer, into out: UnsafeMutablePointer<UInt32>) {
        let mask: UInt64 = (1 &<< UInt64(k)) &- 1
        var value = after
        var i = 0
        var unary = start
        var group = lows
        groups: while i &+ 8 <= gaps {
            var word = GraphCodec.bits(body, at: unary)
            var end = 0
            var current = value
            var j = 0
            while j < 8 {
                if word == 0 { break groups }
                let zeros = word.trailingZeroBitCount
                let quotient = UInt32(truncatingIfNeeded: zeros &- end)
                end = zeros &+ 1
                word &= word &- 1
                current = current &+ (quotient &<< UInt32(k) | GraphCodec.gap(group, bit: j &* k, mask: mask)) &+ 1
                out[i &+ j] = current
                j &+= 1
            }
            value = current
            unary &+= end
            group += k
            i &+= 8
        }
        guard i < gaps else { return }
        GraphCodec.quotients(body, k: k, gaps: gaps &- i, from: unary, into: out + i)
        GraphCodec.unpackRice(group, width: k, after: value, gaps: gaps &- i, into: out + i)
    }

    /// The sum of the eight k-bit low parts of a group (its k bytes): `GraphCodec.groupSum`
    /// (added in place up to k = 16).
    @inlinable @inline(__always)
    static func lowSum<let k: Int>(_ group: UnsafeRawPointer, _ parameter: BitWidth<k>, mask: UInt64) -> UInt32 {
        GraphCodec.groupSum(group, parameter, mask: mask)
    }

    /// A page: up to `limit` values greater than `after` (all when nil), in order, to `out`;
    /// returns how many. Enters the block holding `after` through the directory, skips its
    /// groups of eight below the cursor (`skip`) and decodes only the gaps the page takes.
    @inlinable
    public static func copy(_ list: UnsafeRawPointer, count: Int, after: UInt32?, limit: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        if let after, after == .max { return 0 }
        let k = Int(list.load(as: UInt8.self))
        let blocks = (count &+ blockSize &- 1) &>> blockShift
        var b = 0
        if let after { b = lastBlock(list, count: count, atOrBelow: after, from: 0) }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
            let decoded = buffer.baseAddress!
            var written = 0
            while b < blocks && written < limit {
                // The block's body, the value before its first coded gap, and how many gaps.
                var body = list + 1, before = UInt32.max, gaps = count
                var n = 0
                if blocks > 1 {
                    let (first, start) = entry(list, blocks: blocks, b)
                    body = start
                    before = first
                    gaps = min(blockSize, count &- (b &<< blockShift)) &- 1
                    if after.map({ first > $0 }) ?? true {
                        decoded[0] = first
                        n = 1
                    }
                }
                var skipped = 0, unary = gaps &* k
                if let after, n == 0 {
                    (skipped, before, unary) = skip(body, k: k, after: before, gaps: gaps, after &+ 1)
                }
                // The gaps to decode: what the page still takes, and up to 8 at or below the cursor.
                let take = min(gaps &- skipped, limit &- written &- n &+ (n == 0 && after != nil ? 8 : 0))
                decode(body, k: k, after: before, gaps: take, unary: unary, lows: body + (skipped &>> 3) &* k, into: decoded + n)
                var start = 0
                if let after, n == 0 {
                    while start < take && decoded[start] <= after { start &+= 1 }
                }
                let copied = min(n &+ take &- start, limit &- written)
                (out + written).update(from: decoded + start, count: copied)
                written &+= copied
                b &+= 1
            }
            return written
        }
    }
}

extension GraphRiceCodec: AdjacencyBlockCodec {
    @inlinable @inline(__always)
    public static func blockFirst(_ list: UnsafeRawPointer, count: Int, _ b: Int) -> UInt32 {
        entry(list, blocks: (count &+ blockSize &- 1) &>> blockShift, b).first
    }

    @inlinable
    public static func lastBlock(_ list: UnsafeRawPointer, count: Int, atOrBelow value: UInt32, from: Int) -> Int {
        let blocks = (count &+ blockSize &- 1) &>> blockShift
        guard blocks > 1 else { return 0 }
        let valueWidth = Int(list.load(fromByteOffset: 1, as: UInt8.self))
        let stride = valueWidth &+ Int(list.load(fromByteOffset: 2, as: UInt8.self))
        let directory = list + longHeaderBytes
        // Branch-free halving, as `GraphCodec.lastBlock`.
        var low = from
        var size = blocks &- from
        while size > 1 {
            let half = size &>> 1
            let middle = low &+ half
            low = field(directory, bit: middle &* stride, width: valueWidth) <= value ? middle : low
            size &-= half
        }
        return low
    }

    @inlinable
    public static func decodeBlock(_ list: UnsafeRawPointer, count: Int, _ b: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        let k = Int(list.load(as: UInt8.self))
        if count <= blockSize {
            decode(list + 1, k: k, after: .max, gaps: count, unary: count &* k, lows: list + 1, into: out)
            return count
        }
        let (first, body) = entry(list, blocks: (count &+ blockSize &- 1) &>> blockShift, b)
        let size = min(blockSize, count &- (b &<< blockShift))
        out[0] = first
        decode(body, k: k, after: first, gaps: size &- 1, unary: (size &- 1) &* k, lows: body, into: out + 1)
        return size
    }
}

extension GraphRiceCodec {
    /// Decodes the Rice list that is exactly `list` (`count` >= 1 values), appending them to
    /// `out`, checking every byte: a known parameter and widths, the directory inside the list,
    /// block 0 right after it and every body ending exactly where the next begins (the last at
    /// the list's end) with zero padding bits, values strictly increasing and at most UInt32.max.
    /// Returns the first problem (code, offset within `list`, what), or nil.
    public static func checkedDecode(_ list: UnsafeRawBufferPointer, count: Int, into out: inout [UInt32]) -> (CheckCode, Int, String)? {
        guard count > 0 else { return list.isEmpty ? nil : (.graphListLength, 0, "\(list.count) bytes for an empty list") }
        guard list.count >= 1 else { return (.graphListLength, 0, "a Rice list without its parameter byte") }
        let k = Int(list[0])
        guard k <= parameterMax else { return (.graphListMalformed, 0, "Rice parameter \(k) is over \(parameterMax)") }
        var previous: Int64 = -1
        if count <= blockSize {
            return checkedBody(list, from: 1, to: list.count, k: k, first: nil, gaps: count, previous: &previous, into: &out)
        }
        guard list.count >= longHeaderBytes else { return (.graphListLength, 0, "a Rice list of \(count) values without its widths") }
        let valueWidth = Int(list[1]), offsetWidth = Int(list[2])
        guard valueWidth >= 1 && valueWidth <= 32 && offsetWidth <= 32 else {
            return (.graphListMalformed, 1, "directory widths \(valueWidth) and \(offsetWidth) (values 1...32, offsets 0...32)")
        }
        let blocks = (count + blockSize - 1) >> blockShift
        let directoryBytes = (blocks * (valueWidth + offsetWidth) + 7) >> 3
        guard longHeaderBytes + directoryBytes <= list.count else {
            return (.graphListMalformed, 1, "a directory of \(blocks) blocks is longer than the list (\(list.count) bytes)")
        }
        var directory = CheckedBits(UnsafeRawBufferPointer(rebasing: list[longHeaderBytes..<(longHeaderBytes + directoryBytes)]))
        var entries: [(first: UInt64, offset: Int)] = []
        for _ in 0..<blocks {
            // The directory's size was checked above, so both fields are there.
            let first = directory.take(valueWidth) ?? 0, offset = directory.take(offsetWidth) ?? 0
            entries.append((first, Int(offset)))
        }
        if !directory.finishByte() { return (.graphListLength, longHeaderBytes + directoryBytes - 1, "non-zero padding bits after the directory") }
        let bodies = longHeaderBytes + directoryBytes
        guard entries[0].offset == 0 else { return (.graphListMalformed, longHeaderBytes, "the first body starts at \(entries[0].offset), not right after the directory") }
        for b in 0..<blocks {
            let start = bodies + entries[b].offset
            let end = b + 1 < blocks ? bodies + entries[b + 1].offset : list.count
            guard start <= end, end <= list.count else {
                return (.graphListMalformed, longHeaderBytes, "block \(b)'s body (\(start)..<\(end)) is not inside the list (\(list.count) bytes)")
            }
            let size = min(blockSize, count - (b << blockShift))
            if let problem = checkedBody(list, from: start, to: end, k: k, first: entries[b].first, gaps: size - 1, previous: &previous, into: &out) {
                return problem
            }
        }
        return nil
    }

    /// One body in `list[from..<to]`: `gaps` gaps after `first` (from -1 when nil).
    static func checkedBody(_ list: UnsafeRawBufferPointer, from: Int, to: Int, k: Int, first: UInt64?, gaps: Int,
                            previous: inout Int64, into out: inout [UInt32]) -> (CheckCode, Int, String)? {
        var value = Int64(-1)
        if let first {
            guard Int64(first) > previous else { return (.graphListOrder, from, "a block starts at \(first), not above the value before (\(previous))") }
            out.append(UInt32(first))
            value = Int64(first)
        }
        var bits = CheckedBits(UnsafeRawBufferPointer(rebasing: list[from..<to]))
        var lows: [UInt64] = []
        lows.reserveCapacity(gaps)
        for _ in 0..<gaps {
            guard let low = bits.take(k) else { return (.graphListLength, from, "Rice low bits run past the body") }
            lows.append(low)
        }
        for low in lows {
            guard let quotient = bits.unary() else { return (.graphListLength, from, "a Rice quotient runs past the body") }
            guard quotient < (1 << 32) else { return (.graphListRange, from, "a Rice quotient of \(quotient) passes UInt32") }
            let gap = Int64(quotient) << Int64(k) | Int64(low)
            guard value + gap + 1 <= Int64(UInt32.max) else { return (.graphListRange, from, "gap \(gap) after \(value) passes UInt32") }
            value += gap + 1
            out.append(UInt32(value))
        }
        if !bits.finishByte() { return (.graphListLength, max(from, to - 1), "non-zero padding bits after the last quotient") }
        if bits.byteOffset != to - from { return (.graphListLength, from + bits.byteOffset, "\(to - from - bits.byteOffset) bytes after the block's last quotient") }
        previous = value
        return nil
    }
}
