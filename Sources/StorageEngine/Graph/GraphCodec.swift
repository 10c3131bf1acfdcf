/// The neighbour-list codec of the graph store: sorted, strictly increasing lists of dense user
/// numbers (UInt32) coded as gaps in blocks of 128, each block bit-packed or, when smaller, in
/// byte varints.
///
/// A list of `count` >= 1 values, as bytes (little-endian), position-independent so a list can be
/// copied verbatim from one base file to the next:
///
///     count <= 128 (one block, most lists):
///         varint   first value
///         body     the block's count-1 gaps (below)
///
///     count > 128 (B = ceil(count / 128) blocks):
///         B x 8    block directory: u32 first value of the block, u32 byte offset of the block's
///                  body from the start of the list
///         B bodies the block's (size-1) gaps each
///
///     body:  u8 mode w, then
///            w in 0...32: the gaps packed at w bits each, LSB first, ceil((size-1)*w / 8) bytes
///            w = 0x40+k, k in 0...31: the gaps Rice-coded with parameter k, in two parts of one
///                         bit stream (LSB first): the low k bits of every gap packed at k bits
///                         each, then every gap's quotient `gap >> k` in unary (that many zero
///                         bits, then a one); zero bits to the byte's end
///            w = 0x60+k0, k0 in 0...31: the gaps in adaptive Rice codes, one bit stream (LSB
///                         first): for each gap, its quotient `gap >> k` in unary, then its low
///                         k bits, where k follows the gaps before it (`AdaptiveRice`: the
///                         smallest k with count << k >= sum of the recent gaps, starting at
///                         k0); zero bits to the byte's end
///            w = 0xFF:    the gaps as LEB128 varints (7 bits a byte, low first)
///            The encoder takes the smallest of packed, Rice and varint (ties in that order):
///            packed is fastest and exact for gaps of one size; Rice costs about
///            log2(mean gap) + 1.5 bits a gap whatever the largest (near the entropy of a random
///            subset, the shape of a follower list); varint wins where a few far gaps sit among
///            small ones. Adaptive Rice replaces it when it saves at least one bit a gap: it
///            follows gaps that grow along the list (a following list: many popular, low user
///            numbers close together, then rarer ones ever further apart), but decodes a value
///            at a time through a dependent chain, so a follower list keeps the faster forms.
///            Rice keeps the quotients apart from the low bits so both decode without a
///            branch per value: the low bits with the packed loops, the quotients by walking
///            the one bits of 56-bit words (trailing-zero count, clear lowest bit).
///
/// A gap is `value[i] - value[i-1] - 1` (values are distinct), so consecutive users cost 0 bits
/// and the largest gap, 0 then 2^32-1, is 2^32-2 at width 32. Block b holds values
/// b*128 ..< min(count, (b+1)*128); its first value sits in the directory, so a membership test
/// binary-searches the directory and decodes one block.
///
/// Decoding loads 8 bytes at the bit position's byte (an unaligned 64-bit load), so whoever holds
/// coded lists keeps at least `paddingBytes` readable bytes after the last list.
///
/// These constants are part of the base file format and must not change.
public enum GraphCodec {
    public static let blockSize = 128
    public static let blockShift = 7
    public static let directoryEntryBytes = 8
    public static let paddingBytes = 8
    /// The mode byte of a block whose gaps are varints.
    public static let varintMode: UInt8 = 0xFF
    /// The mode byte of a Rice-coded block with parameter 0; parameter k is `riceMode + k`.
    public static let riceMode: UInt8 = 0x40
    /// The largest Rice parameter (a gap is below 2^32, so a larger one is never smaller than packed).
    public static let riceParameterMax = 31
    /// The mode byte of an adaptive Rice block starting at parameter 0; k0 is `adaptiveMode + k0`.
    public static let adaptiveMode: UInt8 = 0x60

    /// The state of adaptive Rice coding, the same in the encoder and every decoder: `sum`
    /// holds about `count` recent gaps (both halved when count reaches 4, so the estimate
    /// follows a list whose gaps grow or shrink), and the next gap's parameter is the smallest
    /// k with count << k >= sum (LOCO-I's rule, k = ceil(log2(mean))), at most 31.
    @usableFromInline
    struct AdaptiveRice {
        /// About `count` recent gaps added up (0 after a run of zero gaps).
        @usableFromInline var sum: UInt64
        /// 1, 2 or 3: it goes to 2 with the halving at 4.
        @usableFromInline var count: UInt64 = 1

        @inlinable init(initial k0: Int) { sum = 1 << UInt64(k0) }

        /// The parameter for the next gap: the smallest k with count << k >= sum, which is the
        /// bit width of (sum - 1) / count (0 when sum is 0), at most 31. Without a loop or a
        /// branch (the parameter moves up and down from gap to gap, which a loop mispredicts):
        /// count is 1, 2 or 3, so the division is a shift or a multiply by the inverse of 3.
        @inlinable @inline(__always)
        func parameter() -> Int {
            let below = sum &- 1
            let quotient = count == 3 ? below / 3 : below &>> (count &- 1)
            let width = 64 &- quotient.leadingZeroBitCount
            return sum == 0 ? 0 : min(width, 31)
        }

        @inlinable @inline(__always)
        mutating func update(_ gap: UInt64) {
            sum &+= gap
            count &+= 1
            if count == 4 {
                sum &>>= 1
                count = 2
            }
        }
    }

    /// A block body's form: what its mode byte says.
    enum BodyForm {
        case packed(width: Int)
        case rice(k: Int)
        case adaptive(k0: Int)
        case varint
    }

    /// Which body forms the encoder may take. `all` is the smallest of them (see the layout);
    /// `fast` only the packed and varint forms (what format 3 wrote): the base builder codes the
    /// follower lists of more than one block so, because the fan-out and the follower-list
    /// decode iterate them, and a packed block decodes about three times as fast as a Rice one
    /// (bench, top-100 follower lists), for about a bit a gap more.
    public enum Forms: Sendable {
        case all
        case fast
    }

    /// The form the encoder writes for `values[start..<end]` and its bytes after the mode byte.
    static func bodyForm(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, forms: Forms = .all) -> (form: BodyForm, bytes: Int) {
        let width = blockWidth(values, from: start, to: end)
        var best = (form: BodyForm.packed(width: width), bytes: ((end - start - 1) * width + 7) >> 3)
        guard case .all = forms else {
            let varints = varintBytes(values, from: start, to: end)
            return varints < best.bytes ? (.varint, varints) : best
        }
        let rice = riceParameter(values, from: start, to: end)
        if (rice.bits + 7) >> 3 < best.bytes { best = (.rice(k: rice.k), (rice.bits + 7) >> 3) }
        let varints = varintBytes(values, from: start, to: end)
        if varints < best.bytes { best = (.varint, varints) }
        let adaptive = adaptiveParameter(values, from: start, to: end)
        if (adaptive.bits + 7) >> 3 + (end - start - 1) >> 3 < best.bytes { best = (.adaptive(k0: adaptive.k), (adaptive.bits + 7) >> 3) }
        return best
    }

    // MARK: Sizes and encoding

    @inlinable
    static func bitWidth(_ value: UInt32) -> Int { 32 - value.leadingZeroBitCount }

    /// The bytes `values` (sorted, strictly increasing, non-empty) take when coded.
    public static func encodedSize(_ values: UnsafeBufferPointer<UInt32>, forms: Forms = .all) -> Int {
        let count = values.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            return Varint.size(UInt64(values[0])) + 1 + packedBytes(values, from: 0, to: count, forms: forms)
        }
        var total = ((count + blockSize - 1) >> blockShift) * directoryEntryBytes
        var start = 0
        while start < count {
            let end = min(count, start + blockSize)
            total += 1 + packedBytes(values, from: start, to: end, forms: forms)
            start = end
        }
        return total
    }

    static func blockWidth(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int) -> Int {
        var maximum: UInt32 = 0
        var i = start + 1
        while i < end {
            precondition(values[i] > values[i - 1], "neighbour lists must be strictly increasing")
            maximum |= values[i] &- values[i - 1] &- 1
            i += 1
        }
        return bitWidth(maximum)
    }

    /// The bytes of a block's body after its mode byte, in the form the encoder takes.
    static func packedBytes(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, forms: Forms = .all) -> Int {
        bodyForm(values, from: start, to: end, forms: forms).bytes
    }

    /// The bits of the block's gaps in adaptive Rice codes starting at parameter `k0`.
    static func adaptiveBits(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, k0: Int) -> Int {
        var state = AdaptiveRice(initial: k0)
        var total = 0
        var i = start + 1
        while i < end {
            let gap = UInt64(values[i] &- values[i - 1] &- 1)
            let k = state.parameter()
            total += Int(gap >> UInt64(k)) + 1 + k
            state.update(gap)
            i += 1
        }
        return total
    }

    /// The starting parameter (among the four around the first gap's width, where it matters:
    /// the state forgets it within a few gaps) that takes the fewest bits, and those bits.
    static func adaptiveParameter(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int) -> (k: Int, bits: Int) {
        guard end - start > 1 else { return (0, 0) }
        let firstGap = values[start + 1] &- values[start] &- 1
        let center = max(0, 31 - firstGap.leadingZeroBitCount)
        var best = (k: 0, bits: Int.max)
        for k0 in max(0, center - 2)...min(riceParameterMax, center + 1) {
            let bits = adaptiveBits(values, from: start, to: end, k0: k0)
            if bits < best.bits { best = (k0, bits) }
        }
        return best
    }

    /// The bits of the block's gaps Rice-coded with parameter `k`.
    static func riceBits(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, k: Int) -> Int {
        var total = (end - start - 1) * (k + 1)
        var i = start + 1
        while i < end {
            total += Int((values[i] &- values[i - 1] &- 1) >> UInt32(k))
            i += 1
        }
        return total
    }

    /// The Rice parameter (0...riceParameterMax) that codes the block's gaps in the fewest bits,
    /// and those bits. The cost `n(k+1) + sum(gap >> k)` is convex in k (each step up adds n
    /// bits and saves sum(ceil((gap >> k) / 2)), which falls as k grows), so a walk from
    /// floor(log2(mean gap)) to the first step that does not pay finds the minimum; ties go to
    /// the smaller k.
    static func riceParameter(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int) -> (k: Int, bits: Int) {
        let n = end - start - 1
        guard n > 0 else { return (0, 0) }
        let gapSum = UInt64(values[end - 1]) - UInt64(values[start]) - UInt64(n)
        var k = min(riceParameterMax, max(0, 63 - (gapSum / UInt64(n)).leadingZeroBitCount))
        var bits = riceBits(values, from: start, to: end, k: k)
        while k > 0 {
            let lower = riceBits(values, from: start, to: end, k: k - 1)
            guard lower <= bits else { break }
            k -= 1
            bits = lower
        }
        while k < riceParameterMax {
            let higher = riceBits(values, from: start, to: end, k: k + 1)
            guard higher < bits else { break }
            k += 1
            bits = higher
        }
        return (k, bits)
    }

    static func varintBytes(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int) -> Int {
        var total = 0
        var i = start + 1
        while i < end {
            total += Varint.size(UInt64(values[i] &- values[i - 1] &- 1))
            i += 1
        }
        return total
    }

    /// Reads the varint at `at` (moved past it). Coded lists are verified, so it is well formed.
    @inlinable @inline(__always)
    static func readVarint(_ p: UnsafeRawPointer, _ at: inout Int) -> UInt32 {
        var byte = p.load(fromByteOffset: at, as: UInt8.self)
        at &+= 1
        if byte < 0x80 { return UInt32(byte) }
        var value = UInt32(byte & 0x7F)
        var shift: UInt32 = 7
        while true {
            byte = p.load(fromByteOffset: at, as: UInt8.self)
            at &+= 1
            value |= UInt32(byte & 0x7F) &<< shift
            if byte < 0x80 { return value }
            shift &+= 7
        }
    }

    /// Codes `values` (sorted, strictly increasing, non-empty) at `destination`, which must have
    /// room for `encodedSize(values)` bytes; returns the bytes written.
    @discardableResult
    public static func encode(_ values: UnsafeBufferPointer<UInt32>, into destination: UnsafeMutableRawPointer, forms: Forms = .all) -> Int {
        let count = values.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            var at = 0
            var v = UInt64(values[0])
            while v >= 0x80 {
                destination.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: at, as: UInt8.self)
                v >>= 7
                at += 1
            }
            destination.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: at, as: UInt8.self)
            at += 1
            return at + encodeBody(values, from: 0, to: count, into: destination + at, forms: forms)
        }
        let blocks = (count + blockSize - 1) >> blockShift
        var at = blocks * directoryEntryBytes
        for block in 0..<blocks {
            let start = block << blockShift
            let end = min(count, start + blockSize)
            destination.storeBytes(of: values[start].littleEndian, toByteOffset: block * 8, as: UInt32.self)
            destination.storeBytes(of: UInt32(at).littleEndian, toByteOffset: block * 8 + 4, as: UInt32.self)
            at += encodeBody(values, from: start, to: end, into: destination + at, forms: forms)
        }
        return at
    }

    /// Mode byte then the gaps of `values[start+1..<end]` in the form `bodyForm` picks.
    static func encodeBody(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int,
                           into destination: UnsafeMutableRawPointer, forms: Forms = .all) -> Int {
        let (form, formBytes) = bodyForm(values, from: start, to: end, forms: forms)
        let width: Int
        switch form {
        case .rice(let k): return encodeRice(values, from: start, to: end, k: k, bytes: formBytes, into: destination)
        case .adaptive(let k0): return encodeAdaptive(values, from: start, to: end, k0: k0, bytes: formBytes, into: destination)
        case .packed(let w): width = w
        case .varint: width = -1
        }
        let varints = formBytes
        let bytes = formBytes
        if width < 0 {
            destination.storeBytes(of: varintMode, as: UInt8.self)
            var at = 1
            var i = start + 1
            while i < end {
                var v = UInt64(values[i] &- values[i - 1] &- 1)
                while v >= 0x80 {
                    destination.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: at, as: UInt8.self)
                    v >>= 7
                    at += 1
                }
                destination.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: at, as: UInt8.self)
                at += 1
                i += 1
            }
            precondition(at == 1 + varints, "varint size mismatch")
            return at
        }
        destination.storeBytes(of: UInt8(width), as: UInt8.self)
        guard width > 0 else { return 1 }
        var accumulator: UInt64 = 0
        var bits = 0
        var out = destination + 1
        var i = start + 1
        while i < end {
            let gap = UInt64(values[i] &- values[i - 1] &- 1)
            accumulator |= gap << UInt64(bits)
            bits += width
            while bits >= 8 {
                out.storeBytes(of: UInt8(truncatingIfNeeded: accumulator), as: UInt8.self)
                out += 1
                accumulator >>= 8
                bits -= 8
            }
            i += 1
        }
        if bits > 0 {
            out.storeBytes(of: UInt8(truncatingIfNeeded: accumulator), as: UInt8.self)
            out += 1
        }
        precondition(out - (destination + 1) == bytes, "packed size mismatch")
        return 1 + bytes
    }

    /// Mode byte `riceMode + k`, then the low k bits of every gap, then every quotient in unary.
    static func encodeRice(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, k: Int, bytes: Int,
                           into destination: UnsafeMutableRawPointer) -> Int {
        destination.storeBytes(of: riceMode + UInt8(k), as: UInt8.self)
        var writer = BitWriter(destination + 1)
        let mask: UInt32 = k == 32 ? .max : (1 << UInt32(k)) &- 1
        var i = start + 1
        while i < end {
            writer.put(UInt64((values[i] &- values[i - 1] &- 1) & mask), bits: k)
            i += 1
        }
        i = start + 1
        while i < end {
            writer.zeros(Int((values[i] &- values[i - 1] &- 1) >> UInt32(k)))
            writer.put(1, bits: 1)
            i += 1
        }
        writer.finish()
        precondition(writer.written == bytes, "Rice size mismatch")
        return 1 + bytes
    }

    /// Mode byte `adaptiveMode + k0`, then each gap's quotient in unary and its low bits, at
    /// the parameter `AdaptiveRice` gives it.
    static func encodeAdaptive(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int, k0: Int, bytes: Int,
                               into destination: UnsafeMutableRawPointer) -> Int {
        destination.storeBytes(of: adaptiveMode + UInt8(k0), as: UInt8.self)
        var writer = BitWriter(destination + 1)
        var state = AdaptiveRice(initial: k0)
        var i = start + 1
        while i < end {
            let gap = UInt64(values[i] &- values[i - 1] &- 1)
            let k = state.parameter()
            writer.zeros(Int(gap >> UInt64(k)))
            writer.put(1, bits: 1)
            writer.put(gap & ((1 << UInt64(k)) - 1), bits: k)
            state.update(gap)
            i += 1
        }
        writer.finish()
        precondition(writer.written == bytes, "adaptive Rice size mismatch")
        return 1 + bytes
    }

    /// Writes bits LSB first, a byte at a time.
    struct BitWriter {
        let out: UnsafeMutableRawPointer
        var accumulator: UInt64 = 0
        var pending = 0
        var written = 0

        init(_ out: UnsafeMutableRawPointer) { self.out = out }

        /// The low `bits` (0...32) bits of `value`.
        mutating func put(_ value: UInt64, bits: Int) {
            accumulator |= value << UInt64(pending)
            pending += bits
            while pending >= 8 {
                out.storeBytes(of: UInt8(truncatingIfNeeded: accumulator), toByteOffset: written, as: UInt8.self)
                written += 1
                accumulator >>= 8
                pending -= 8
            }
        }

        mutating func zeros(_ count: Int) {
            var left = count
            while left > 0 {
                let take = min(left, 32)
                put(0, bits: take)
                left -= take
            }
        }

        mutating func finish() {
            if pending > 0 {
                out.storeBytes(of: UInt8(truncatingIfNeeded: accumulator), toByteOffset: written, as: UInt8.self)
                written += 1
                accumulator = 0
                pending = 0
            }
        }
    }

    // MARK: Decoding

    /// Where block `block` of a coded list of `count` values starts: its first value, the address
    /// of its width byte, and how many values it holds.
    @inlinable @inline(__always)
    static func block(_ list: UnsafeRawPointer, count: Int, _ block: Int) -> (first: UInt32, body: UnsafeRawPointer, size: Int) {
        if count <= blockSize {
            let (value, length) = firstValue(list)
            return (value, list + length, count)
        }
        let entry = list + block * directoryEntryBytes
        let first = UInt32(littleEndian: entry.loadUnaligned(as: UInt32.self))
        let offset = Int(UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        return (first, list + offset, min(blockSize, count - (block << blockShift)))
    }

    /// The varint at `list` (a one-block list's first value) and its bytes, without a branch:
    /// one 8-byte load (coded lists keep `paddingBytes` readable after them), the first byte
    /// with its high bit clear ends it (a UInt32 takes at most 5), and each byte's 7 bits are
    /// shifted into place together. Every list of a random user starts here, and a loop's exit
    /// after one, two or three bytes was a coin toss for the branch predictor.
    @inlinable @inline(__always)
    static func firstValue(_ list: UnsafeRawPointer) -> (value: UInt32, length: Int) {
        let word = UInt64(littleEndian: list.loadUnaligned(as: UInt64.self))
        let length = ((~word & 0x80_8080_8080).trailingZeroBitCount &>> 3) &+ 1
        let spread = (word & 0x7F) | (word &>> 1 & 0x3F80) | (word &>> 2 & 0x1F_C000) | (word &>> 3 & 0xFE0_0000)
            | (word &>> 4 & 0x7_F000_0000)
        return (UInt32(truncatingIfNeeded: spread & ((1 &<< UInt64(7 &* length)) &- 1)), length)
    }

    /// Decodes a whole block into `out` (room for `size` values); returns the number written.
    @inlinable
    static func decodeBlock(first: UInt32, body blockBody: UnsafeRawPointer, size: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        let mode = blockBody.load(as: UInt8.self)
        out[0] = first
        // Packed first: the follower lists' form (`Forms.fast`), which the fan-out and the
        // follower-list copies decode.
        if mode <= 32 {
            unpack(blockBody + 1, width: Int(mode), after: first, gaps: size &- 1, into: out + 1)
            return size
        }
        if mode == varintMode {
            var value = first
            var at = 1
            var i = 1
            while i < size {
                value = value &+ readVarint(blockBody, &at) &+ 1
                out[i] = value
                i &+= 1
            }
            return size
        }
        if mode >= adaptiveMode {
            adaptiveDecode(blockBody + 1, k0: Int(mode &- adaptiveMode), after: first, gaps: size &- 1, into: out + 1)
            return size
        }
        let k = Int(mode &- riceMode)
        quotients(blockBody + 1, k: k, gaps: size &- 1, into: out + 1)
        unpackRice(blockBody + 1, width: k, after: first, gaps: size &- 1, into: out + 1)
        return size
    }

    /// The 56 bits of `packed` from bit `position` on (one unaligned 8-byte load).
    @inlinable @inline(__always)
    static func bits(_ packed: UnsafeRawPointer, at position: Int) -> UInt64 {
        (UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: position &>> 3, as: UInt64.self)) &>> UInt64(position & 7))
            & ((1 << 56) &- 1)
    }

    /// The adaptive Rice gap at bit `position` (moved past it), at parameter `k`: the unary
    /// quotient (56 bits a load), then the low bits.
    @inlinable @inline(__always)
    static func adaptiveGap(_ packed: UnsafeRawPointer, _ position: inout Int, k: Int) -> UInt64 {
        let mask: UInt64 = (1 << UInt64(k)) &- 1
        var word = bits(packed, at: position)
        let zeros = word.trailingZeroBitCount
        // Most gaps: quotient, its one bit and the low bits all in this load.
        if zeros &+ 1 &+ k <= 56 {
            position &+= zeros &+ 1 &+ k
            return UInt64(truncatingIfNeeded: zeros) &<< UInt64(k) | (word &>> UInt64(zeros &+ 1)) & mask
        }
        var quotient = 0
        while word == 0 {
            quotient &+= 56
            position &+= 56
            word = bits(packed, at: position)
        }
        let rest = word.trailingZeroBitCount
        quotient &+= rest
        position &+= rest &+ 1
        let low = bits(packed, at: position) & mask
        position &+= k
        return UInt64(truncatingIfNeeded: quotient) &<< UInt64(k) | low
    }

    /// `AdaptiveRice.parameter()` at count 2 (sum and count as the state holds them between
    /// gaps): the bit width of (sum - 1) / 2, 0 when sum is 0, at most 31.
    @inlinable @inline(__always)
    static func adaptiveParameter2(_ sum: UInt64) -> Int {
        sum == 0 ? 0 : min(64 &- ((sum &- 1) &>> 1).leadingZeroBitCount, 31)
    }

    /// `AdaptiveRice.parameter()` at count 3: the bit width of (sum - 1) / 3.
    @inlinable @inline(__always)
    static func adaptiveParameter3(_ sum: UInt64) -> Int {
        sum == 0 ? 0 : min(64 &- ((sum &- 1) / 3).leadingZeroBitCount, 31)
    }

    /// Decodes an adaptive Rice body (`packed` = after the mode byte) of `gaps` gaps after `after`.
    /// The state's count runs 1, then 2, 3, 2, 3, ... (the halving at 4 takes it back to 2), so
    /// after the first gap (at parameter k0) the gaps go in pairs with the count folded into
    /// the code: no count kept, no branch on it (the same parameters as `AdaptiveRice`).
    @inlinable
    static func adaptiveDecode(_ packed: UnsafeRawPointer, k0: Int, after: UInt32, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        guard gaps > 0 else { return }
        var position = 0
        // The first gap: count 1, sum 2^k0, so the parameter is k0 (<= 31).
        var gap = adaptiveGap(packed, &position, k: k0)
        var value = after &+ UInt32(truncatingIfNeeded: gap) &+ 1
        out[0] = value
        var sum = (1 &<< UInt64(k0)) &+ gap
        var i = 1
        while i &+ 2 <= gaps {
            gap = adaptiveGap(packed, &position, k: adaptiveParameter2(sum))
            value = value &+ UInt32(truncatingIfNeeded: gap) &+ 1
            out[i] = value
            sum &+= gap
            gap = adaptiveGap(packed, &position, k: adaptiveParameter3(sum))
            value = value &+ UInt32(truncatingIfNeeded: gap) &+ 1
            out[i &+ 1] = value
            sum = (sum &+ gap) &>> 1
            i &+= 2
        }
        if i < gaps {
            gap = adaptiveGap(packed, &position, k: adaptiveParameter2(sum))
            out[i] = value &+ UInt32(truncatingIfNeeded: gap) &+ 1
        }
    }

    /// Whether `value` (> `after`) is among the values of an adaptive Rice body (pairs of
    /// gaps as in `adaptiveDecode`).
    @inlinable
    static func adaptiveSearch(_ packed: UnsafeRawPointer, k0: Int, after: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        guard gaps > 0 else { return false }
        var position = 0
        var gap = adaptiveGap(packed, &position, k: k0)
        var current = after &+ UInt32(truncatingIfNeeded: gap) &+ 1
        if current >= value { return current == value }
        var sum = (1 &<< UInt64(k0)) &+ gap
        var i = 1
        while i &+ 2 <= gaps {
            gap = adaptiveGap(packed, &position, k: adaptiveParameter2(sum))
            current = current &+ UInt32(truncatingIfNeeded: gap) &+ 1
            if current >= value { return current == value }
            sum &+= gap
            gap = adaptiveGap(packed, &position, k: adaptiveParameter3(sum))
            current = current &+ UInt32(truncatingIfNeeded: gap) &+ 1
            if current >= value { return current == value }
            sum = (sum &+ gap) &>> 1
            i &+= 2
        }
        if i < gaps {
            gap = adaptiveGap(packed, &position, k: adaptiveParameter2(sum))
            current = current &+ UInt32(truncatingIfNeeded: gap) &+ 1
            return current == value
        }
        return false
    }

    /// The unary quotients of a Rice body (`packed` = after the mode byte, `gaps` gaps at
    /// parameter `k`), each shifted left by k, to `out`. Walks the one bits of 56-bit words:
    /// a trailing-zero count and a clear-lowest-bit per gap, the zeros of a word without a one
    /// carried into the next quotient.
    @inlinable @inline(__always)
    static func quotients(_ packed: UnsafeRawPointer, k: Int, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        quotients(packed, k: k, gaps: gaps, from: gaps &* k, into: out)
    }

    /// `quotients` of `gaps` gaps whose unary codes start at bit `from` of `packed` (the first
    /// gaps of a body, or gaps from the middle of one).
    @inlinable @inline(__always)
    static func quotients(_ packed: UnsafeRawPointer, k: Int, gaps: Int, from: Int, into out: UnsafeMutablePointer<UInt32>) {
        // The bits of a word loaded at a bit position that are surely the body's: 64 less at
        // most 7 skipped.
        let wordBits = 56
        var position = from
        var carried = 0
        var i = 0
        while i < gaps {
            var word = (UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: position &>> 3, as: UInt64.self)) &>> UInt64(position & 7))
                & ((1 << UInt64(wordBits)) &- 1)
            var consumed = 0
            // The word's one bits that end a quotient of this block: a counted loop.
            let ones = min(word.nonzeroBitCount, gaps &- i)
            let end = i &+ ones
            while i < end {
                let zeros = word.trailingZeroBitCount
                out[i] = UInt32(truncatingIfNeeded: carried &+ zeros &- consumed) &<< UInt32(k)
                carried = 0
                consumed = zeros &+ 1
                word &= word &- 1
                i &+= 1
            }
            carried &+= wordBits &- consumed
            position &+= wordBits
        }
    }

    /// The second pass of a Rice block: `out` holds each gap's high part (from `quotients`);
    /// adds the low bits packed at `width` (0...31) and the prefix sum, with the packed loops
    /// (a copy per width, as `unpack`).
    @inlinable
    static func unpackRice(_ packed: UnsafeRawPointer, width: Int, after: UInt32, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        switch width {
        case 0:
            var value = after
            var i = 0
            while i < gaps {
                value = value &+ out[i] &+ 1
                out[i] = value
                i &+= 1
            }
        case 1: unpackFixed(packed, BitWidth<1>(), after: after, gaps: gaps, into: out, high: true)
        case 2: unpackFixed(packed, BitWidth<2>(), after: after, gaps: gaps, into: out, high: true)
        case 3: unpackFixed(packed, BitWidth<3>(), after: after, gaps: gaps, into: out, high: true)
        case 4: unpackFixed(packed, BitWidth<4>(), after: after, gaps: gaps, into: out, high: true)
        case 5: unpackFixed(packed, BitWidth<5>(), after: after, gaps: gaps, into: out, high: true)
        case 6: unpackFixed(packed, BitWidth<6>(), after: after, gaps: gaps, into: out, high: true)
        case 7: unpackFixed(packed, BitWidth<7>(), after: after, gaps: gaps, into: out, high: true)
        case 8: unpackFixed(packed, BitWidth<8>(), after: after, gaps: gaps, into: out, high: true)
        case 9: unpackFixed(packed, BitWidth<9>(), after: after, gaps: gaps, into: out, high: true)
        case 10: unpackFixed(packed, BitWidth<10>(), after: after, gaps: gaps, into: out, high: true)
        case 11: unpackFixed(packed, BitWidth<11>(), after: after, gaps: gaps, into: out, high: true)
        case 12: unpackFixed(packed, BitWidth<12>(), after: after, gaps: gaps, into: out, high: true)
        case 13: unpackFixed(packed, BitWidth<13>(), after: after, gaps: gaps, into: out, high: true)
        case 14: unpackFixed(packed, BitWidth<14>(), after: after, gaps: gaps, into: out, high: true)
        case 15: unpackFixed(packed, BitWidth<15>(), after: after, gaps: gaps, into: out, high: true)
        case 16: unpackFixed(packed, BitWidth<16>(), after: after, gaps: gaps, into: out, high: true)
        case 17: unpackFixed(packed, BitWidth<17>(), after: after, gaps: gaps, into: out, high: true)
        case 18: unpackFixed(packed, BitWidth<18>(), after: after, gaps: gaps, into: out, high: true)
        case 19: unpackFixed(packed, BitWidth<19>(), after: after, gaps: gaps, into: out, high: true)
        case 20: unpackFixed(packed, BitWidth<20>(), after: after, gaps: gaps, into: out, high: true)
        case 21: unpackFixed(packed, BitWidth<21>(), after: after, gaps: gaps, into: out, high: true)
        case 22: unpackFixed(packed, BitWidth<22>(), after: after, gaps: gaps, into: out, high: true)
        case 23: unpackFixed(packed, BitWidth<23>(), after: after, gaps: gaps, into: out, high: true)
        case 24: unpackFixed(packed, BitWidth<24>(), after: after, gaps: gaps, into: out, high: true)
        case 25: unpackFixed(packed, BitWidth<25>(), after: after, gaps: gaps, into: out, high: true)
        case 26: unpackFixed(packed, BitWidth<26>(), after: after, gaps: gaps, into: out, high: true)
        case 27: unpackFixed(packed, BitWidth<27>(), after: after, gaps: gaps, into: out, high: true)
        case 28: unpackFixed(packed, BitWidth<28>(), after: after, gaps: gaps, into: out, high: true)
        case 29: unpackFixed(packed, BitWidth<29>(), after: after, gaps: gaps, into: out, high: true)
        case 30: unpackFixed(packed, BitWidth<30>(), after: after, gaps: gaps, into: out, high: true)
        case 31: unpackFixed(packed, BitWidth<31>(), after: after, gaps: gaps, into: out, high: true)
        default: preconditionFailure("Rice parameter \(width) out of range (the list was verified)")
        }
    }

    /// Writes the `gaps` values coded as gaps packed at `width` bits (0...32) from `packed` on,
    /// the first after `after`, to `out`. Dispatches once per block to a copy of the loop made
    /// for each width, in which every shift and byte offset is a constant (see `unpackGroup`).
    @inlinable
    static func unpack(_ packed: UnsafeRawPointer, width: Int, after: UInt32, gaps: Int, into out: UnsafeMutablePointer<UInt32>) {
        switch width {
        case 0:
            var i = 0
            while i < gaps {
                out[i] = after &+ UInt32(truncatingIfNeeded: i) &+ 1
                i &+= 1
            }
        case 1: unpackFixed(packed, BitWidth<1>(), after: after, gaps: gaps, into: out, high: false)
        case 2: unpackFixed(packed, BitWidth<2>(), after: after, gaps: gaps, into: out, high: false)
        case 3: unpackFixed(packed, BitWidth<3>(), after: after, gaps: gaps, into: out, high: false)
        case 4: unpackFixed(packed, BitWidth<4>(), after: after, gaps: gaps, into: out, high: false)
        case 5: unpackFixed(packed, BitWidth<5>(), after: after, gaps: gaps, into: out, high: false)
        case 6: unpackFixed(packed, BitWidth<6>(), after: after, gaps: gaps, into: out, high: false)
        case 7: unpackFixed(packed, BitWidth<7>(), after: after, gaps: gaps, into: out, high: false)
        case 8: unpackFixed(packed, BitWidth<8>(), after: after, gaps: gaps, into: out, high: false)
        case 9: unpackFixed(packed, BitWidth<9>(), after: after, gaps: gaps, into: out, high: false)
        case 10: unpackFixed(packed, BitWidth<10>(), after: after, gaps: gaps, into: out, high: false)
        case 11: unpackFixed(packed, BitWidth<11>(), after: after, gaps: gaps, into: out, high: false)
        case 12: unpackFixed(packed, BitWidth<12>(), after: after, gaps: gaps, into: out, high: false)
        case 13: unpackFixed(packed, BitWidth<13>(), after: after, gaps: gaps, into: out, high: false)
        case 14: unpackFixed(packed, BitWidth<14>(), after: after, gaps: gaps, into: out, high: false)
        case 15: unpackFixed(packed, BitWidth<15>(), after: after, gaps: gaps, into: out, high: false)
        case 16: unpackFixed(packed, BitWidth<16>(), after: after, gaps: gaps, into: out, high: false)
        case 17: unpackFixed(packed, BitWidth<17>(), after: after, gaps: gaps, into: out, high: false)
        case 18: unpackFixed(packed, BitWidth<18>(), after: after, gaps: gaps, into: out, high: false)
        case 19: unpackFixed(packed, BitWidth<19>(), after: after, gaps: gaps, into: out, high: false)
        case 20: unpackFixed(packed, BitWidth<20>(), after: after, gaps: gaps, into: out, high: false)
        case 21: unpackFixed(packed, BitWidth<21>(), after: after, gaps: gaps, into: out, high: false)
        case 22: unpackFixed(packed, BitWidth<22>(), after: after, gaps: gaps, into: out, high: false)
        case 23: unpackFixed(packed, BitWidth<23>(), after: after, gaps: gaps, into: out, high: false)
        case 24: unpackFixed(packed, BitWidth<24>(), after: after, gaps: gaps, into: out, high: false)
        case 25: unpackFixed(packed, BitWidth<25>(), after: after, gaps: gaps, into: out, high: false)
        case 26: unpackFixed(packed, BitWidth<26>(), after: after, gaps: gaps, into: out, high: false)
        case 27: unpackFixed(packed, BitWidth<27>(), after: after, gaps: gaps, into: out, high: false)
        case 28: unpackFixed(packed, BitWidth<28>(), after: after, gaps: gaps, into: out, high: false)
        case 29: unpackFixed(packed, BitWidth<29>(), after: after, gaps: gaps, into: out, high: false)
        case 30: unpackFixed(packed, BitWidth<30>(), after: after, gaps: gaps, into: out, high: false)
        case 31: unpackFixed(packed, BitWidth<31>(), after: after, gaps: gaps, into: out, high: false)
        case 32: unpackFixed(packed, BitWidth<32>(), after: after, gaps: gaps, into: out, high: false)
        default: preconditionFailure("bit width \(width) out of range (the list was verified)")
        }
    }

    /// `unpack` for one width: groups of 8 gaps (8 * width bits = `width` whole bytes, so each
    /// group starts on a byte), then the last < 8 gaps one by one. With `high` (a literal at
    /// every call) the bits are a Rice gap's low part, added to the high part `quotients` left
    /// in `out`. The width is a type parameter (`BitWidth`), so every width is a specialization
    /// of its own with constant shifts and offsets (an Int argument left one out-of-line copy
    /// with variable ones: the optimizer did not inline the 32 calls of a switch).
    @inlinable
    static func unpackFixed<let width: Int>(_ packed: UnsafeRawPointer, _ bits: BitWidth<width>, after: UInt32, gaps: Int,
                                            into out: UnsafeMutablePointer<UInt32>, high: Bool) {
        let mask: UInt64 = (1 << UInt64(width)) &- 1
        var value = after
        var group = packed
        var i = 0
        while i &+ 8 <= gaps {
            var k = 0
            while k < 8 {
                let low = gap(group, bit: k &* width, mask: mask)
                value = value &+ (high ? out[i &+ k] | low : low) &+ 1
                out[i &+ k] = value
                k &+= 1
            }
            group += width
            i &+= 8
        }
        // The last < 8 gaps (all of a short list's): the group's code with its constant
        // offsets, leaving at the count (a variable shift per gap cost about half as much again).
        let left = gaps &- i
        var k = 0
        while k < 7 {
            if k == left { break }
            let low = gap(group, bit: k &* width, mask: mask)
            value = value &+ (high ? out[i &+ k] | low : low) &+ 1
            out[i &+ k] = value
            k &+= 1
        }
    }

    /// The gap packed at bit `bit` of `group` (`mask` = its width's low bits): one unaligned
    /// 8-byte load at the bit's byte (coded lists keep `paddingBytes` readable after them).
    @inlinable @inline(__always)
    static func gap(_ group: UnsafeRawPointer, bit: Int, mask: UInt64) -> UInt32 {
        let word = UInt64(littleEndian: group.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self))
        return UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask)
    }

    /// The sum of the 8 gaps of a group packed at `width` bits (the group's `width` bytes;
    /// `mask` = the width's low bits), added in place rather than extracted one by one. Up to
    /// width 8 one 8-byte load: pairs of fields, then pairs of pairs, then the two halves (each
    /// sum has room in its slot: w + 1 bits in 2w, w + 2 in 4w). Widths 9 to 16: the two
    /// halves of four fields, one load each, their pairs added in place and the two words
    /// added (4 fields in a slot of 2w bits: w + 2 bits), then folded. Wider: 8 extractions.
    @inlinable @inline(__always)
    static func groupSum<let width: Int>(_ group: UnsafeRawPointer, _ bits: BitWidth<width>, mask: UInt64) -> UInt32 {
        if width == 0 { return 0 }
        if width <= 8 {
            var word = UInt64(littleEndian: group.loadUnaligned(as: UInt64.self))
            if width < 8 { word &= (1 &<< UInt64(8 &* width)) &- 1 }
            let pairs = mask | mask &<< UInt64(2 &* width) | mask &<< UInt64(4 &* width) | mask &<< UInt64(6 &* width)
            let twos = (word & pairs) &+ ((word &>> UInt64(width)) & pairs)
            let two: UInt64 = (1 &<< UInt64(2 &* width)) &- 1
            let quads = two | two &<< UInt64(4 &* width)
            let fours = (twos & quads) &+ ((twos &>> UInt64(2 &* width)) & quads)
            return UInt32(truncatingIfNeeded: (fours & ((1 &<< UInt64(4 &* width)) &- 1)) &+ (fours &>> UInt64(4 &* width)))
        }
        if width <= 16 {
            let halfBits = 4 &* width
            let halfMask: UInt64 = halfBits >= 64 ? .max : (1 &<< UInt64(halfBits)) &- 1
            let low = UInt64(littleEndian: group.loadUnaligned(as: UInt64.self)) & halfMask
            let high = (UInt64(littleEndian: group.loadUnaligned(fromByteOffset: halfBits &>> 3, as: UInt64.self)) &>> UInt64(halfBits & 7)) & halfMask
            let pairs = mask | mask &<< UInt64(2 &* width)
            let both = (low & pairs) &+ ((low &>> UInt64(width)) & pairs) &+ (high & pairs) &+ ((high &>> UInt64(width)) & pairs)
            let two: UInt64 = (1 &<< UInt64(2 &* width)) &- 1
            return UInt32(truncatingIfNeeded: (both & two) &+ (both &>> UInt64(2 &* width)))
        }
        var sum: UInt32 = 0
        var j = 0
        while j < 8 {
            sum &+= gap(group, bit: j &* width, mask: mask)
            j &+= 1
        }
        return sum
    }

    /// The last block at or after `from` whose first value is <= `value` (`from` when none is).
    @inlinable
    static func lastBlock(_ list: UnsafeRawPointer, blocks: Int, atOrBelow value: UInt32, from: Int = 0) -> Int {
        // Without a branch on the comparison (a conditional move; the directory of a popular
        // user's list is searched on every membership test, and the outcome is a coin toss):
        // the answer stays in low ..< low + size, which halves each step.
        var low = from
        var size = blocks &- from
        while size > 1 {
            let half = size &>> 1
            let middle = low &+ half
            let head = UInt32(littleEndian: list.loadUnaligned(fromByteOffset: middle &* directoryEntryBytes, as: UInt32.self))
            low = head <= value ? middle : low
            size &-= half
        }
        return low
    }

    /// `lastBlock` from block 0 for a membership test, by counting instead of halving: the
    /// first values (increasing) at or below `value` among every 8th block, then among the 7
    /// blocks after the last of those, each comparison added as 0 or 1. No branch depends on a
    /// comparison (the halving's compiled to a compare and jump per step, a coin toss on a
    /// popular user's list); the one loop runs a number of times that depends on the list's
    /// length only. Blocks past the last are read as the last (whose first value then counts
    /// only when every block's does, and the count is capped at the last block).
    @inlinable @inline(__always)
    static func lastBlockCounted(_ list: UnsafeRawPointer, blocks: Int, atOrBelow value: UInt32) -> Int {
        func first(_ b: Int) -> UInt32 { UInt32(littleEndian: list.loadUnaligned(fromByteOffset: b &* directoryEntryBytes, as: UInt32.self)) }
        let last = blocks &- 1
        var base = 0
        var b = 8
        while b <= last {
            base &+= first(b) <= value ? 8 : 0
            b &+= 8
        }
        var fine = 0
        for t in 1..<8 { fine &+= first(min(base &+ t, last)) <= value ? 1 : 0 }
        return min(base &+ fine, last)
    }

    /// Whether the coded list of `count` values holds `value`, decoding at most one block.
    /// Inlined into the membership test (with `blockContains`; the search of the block body
    /// stays a call, one switch over the width).
    @inlinable @inline(__always)
    public static func contains(_ list: UnsafeRawPointer, count: Int, _ value: UInt32) -> Bool {
        let blocks = (count + blockSize - 1) >> blockShift
        let b = blocks > 1 ? lastBlockCounted(list, blocks: blocks, atOrBelow: value) : 0
        return blockContains(list, count: count, b, value)
    }

    /// Block positions between search marks (`SearchMarks`): a multiple of the 8-gap group, so a
    /// walk entered at a mark starts on a group's first byte.
    public static let markStride = 32

    /// `contains` for a list with search marks (`SearchMarks`: three a block, 16-bit or, when
    /// `wide`, 32-bit, the all-ones sentinel where the block has no value or is not packed): in
    /// a packed block the walk starts at the last mark at or below `value` and so covers at
    /// most `markStride` gaps. The marks are counted without a branch (they increase along the
    /// block, sentinels last) and `value` is capped below the sentinel.
    @inlinable @inline(__always)
    static func markedContains(_ list: UnsafeRawPointer, count: Int, _ value: UInt32, marks: UnsafeRawPointer, wide: Bool) -> Bool {
        let blocks = (count + blockSize - 1) >> blockShift
        let b = blocks > 1 ? lastBlockCounted(list, blocks: blocks, atOrBelow: value) : 0
        let (first, blockBody, size) = block(list, count: count, b)
        if value <= first { return value == first }
        let mode = blockBody.load(as: UInt8.self)
        if mode > 32 { return blockContains(list, count: count, b, value) }
        let step = wide ? 4 : 2
        let markMask: UInt32 = wide ? .max : 0xFFFF
        let at = marks + b &* (3 &* step)
        let relative = value &- first
        let capped = min(relative, markMask &- 1)
        func mark(_ j: Int) -> UInt32 { UInt32(littleEndian: at.loadUnaligned(fromByteOffset: j &* step, as: UInt32.self)) & markMask }
        let q = (mark(0) <= capped ? 1 : 0) &+ (mark(1) <= capped ? 1 : 0) &+ (mark(2) <= capped ? 1 : 0)
        if q == 0 { return search(blockBody + 1, width: Int(mode), after: first, gaps: size &- 1, value) }
        let start = mark(q &- 1)
        if start == relative { return true }
        let skipped = q &* markStride
        return search(blockBody + 1 + (skipped &>> 3) &* Int(mode), width: Int(mode), after: first &+ start, gaps: size &- 1 &- skipped, value)
    }

    /// Whether block `b` of the coded list of `count` values holds `value`, decoding it only up
    /// to `value`.
    @inlinable @inline(__always)
    public static func blockContains(_ list: UnsafeRawPointer, count: Int, _ b: Int, _ value: UInt32) -> Bool {
        let (first, blockBody, size) = block(list, count: count, b)
        if value <= first { return value == first }
        // Decodes only up to `value`: this is the hot path of every membership test.
        let mode = blockBody.load(as: UInt8.self)
        var current = first
        if mode == varintMode {
            var at = 1
            var i = 1
            // 8 one-byte gaps at a time (most gaps of a varint block: small steps among popular,
            // low user numbers): their sum from one 8-byte load with two masked adds and a
            // multiply, stepping in only when it reaches `value`. The 8 are real gaps of this
            // block (i + 8 <= size), so the load stays inside the body and the sum is a value.
            while i &+ 8 <= size {
                let word = UInt64(littleEndian: blockBody.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                if word & 0x8080_8080_8080_8080 != 0 {
                    // A longer varint among them: one gap the plain way, then a group again.
                    current = current &+ readVarint(blockBody, &at) &+ 1
                    if current >= value { return current == value }
                    i &+= 1
                    continue
                }
                // Byte pairs into 16-bit lanes (each <= 254), then the 4 lanes summed into the top one.
                let pairs = (word & 0x00FF_00FF_00FF_00FF) &+ ((word &>> 8) & 0x00FF_00FF_00FF_00FF)
                let last = current &+ UInt32(truncatingIfNeeded: (pairs &* 0x0001_0001_0001_0001) &>> 48) &+ 8
                if last >= value { break }
                current = last
                at &+= 8
                i &+= 8
            }
            while i < size {
                current = current &+ readVarint(blockBody, &at) &+ 1
                if current >= value { return current == value }
                i &+= 1
            }
            return false
        }
        if mode >= adaptiveMode { return adaptiveSearch(blockBody + 1, k0: Int(mode &- adaptiveMode), after: first, gaps: size &- 1, value) }
        if mode > 32 { return riceSearch(blockBody + 1, k: Int(mode &- riceMode), after: first, gaps: size &- 1, value) }
        return search(blockBody + 1, width: Int(mode), after: first, gaps: size &- 1, value)
    }

    /// Whether `value` (> `after`) is among the `gaps` values of a Rice body (`packed` = after
    /// the mode byte), the first after `after`: walks the quotients' one bits as `quotients`
    /// does, adding each gap's low bits, until a value reaches `value`.
    @inlinable
    static func riceSearch(_ packed: UnsafeRawPointer, k: Int, after: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        let mask: UInt64 = (1 << UInt64(k)) &- 1
        let wordBits = 56
        var current = after
        var position = gaps &* k
        var lowBit = 0
        var carried = 0
        var i = 0
        while i < gaps {
            var word = (UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: position &>> 3, as: UInt64.self)) &>> UInt64(position & 7))
                & ((1 << UInt64(wordBits)) &- 1)
            var consumed = 0
            while word != 0 {
                let zeros = word.trailingZeroBitCount
                let quotient = UInt32(truncatingIfNeeded: carried &+ zeros &- consumed)
                current = current &+ (quotient &<< UInt32(k) | gap(packed, bit: lowBit, mask: mask)) &+ 1
                if current >= value { return current == value }
                carried = 0
                consumed = zeros &+ 1
                word &= word &- 1
                lowBit &+= k
                i &+= 1
                if i == gaps { return false }
            }
            carried &+= wordBits &- consumed
            position &+= wordBits
        }
        return false
    }

    /// Whether `value` (> `after`) is among the `gaps` values coded as gaps packed at `width`
    /// bits from `packed` on, the first after `after`. One copy of the loop per width, as in
    /// `unpack`.
    @inlinable
    static func search(_ packed: UnsafeRawPointer, width: Int, after first: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        switch width {
        case 0: return value &- first <= UInt32(truncatingIfNeeded: gaps)
        case 1: return searchFixed(packed, BitWidth<1>(), after: first, gaps: gaps, value)
        case 2: return searchFixed(packed, BitWidth<2>(), after: first, gaps: gaps, value)
        case 3: return searchFixed(packed, BitWidth<3>(), after: first, gaps: gaps, value)
        case 4: return searchFixed(packed, BitWidth<4>(), after: first, gaps: gaps, value)
        case 5: return searchFixed(packed, BitWidth<5>(), after: first, gaps: gaps, value)
        case 6: return searchFixed(packed, BitWidth<6>(), after: first, gaps: gaps, value)
        case 7: return searchFixed(packed, BitWidth<7>(), after: first, gaps: gaps, value)
        case 8: return searchFixed(packed, BitWidth<8>(), after: first, gaps: gaps, value)
        case 9: return searchFixed(packed, BitWidth<9>(), after: first, gaps: gaps, value)
        case 10: return searchFixed(packed, BitWidth<10>(), after: first, gaps: gaps, value)
        case 11: return searchFixed(packed, BitWidth<11>(), after: first, gaps: gaps, value)
        case 12: return searchFixed(packed, BitWidth<12>(), after: first, gaps: gaps, value)
        case 13: return searchFixed(packed, BitWidth<13>(), after: first, gaps: gaps, value)
        case 14: return searchFixed(packed, BitWidth<14>(), after: first, gaps: gaps, value)
        case 15: return searchFixed(packed, BitWidth<15>(), after: first, gaps: gaps, value)
        case 16: return searchFixed(packed, BitWidth<16>(), after: first, gaps: gaps, value)
        case 17: return searchFixed(packed, BitWidth<17>(), after: first, gaps: gaps, value)
        case 18: return searchFixed(packed, BitWidth<18>(), after: first, gaps: gaps, value)
        case 19: return searchFixed(packed, BitWidth<19>(), after: first, gaps: gaps, value)
        case 20: return searchFixed(packed, BitWidth<20>(), after: first, gaps: gaps, value)
        case 21: return searchFixed(packed, BitWidth<21>(), after: first, gaps: gaps, value)
        case 22: return searchFixed(packed, BitWidth<22>(), after: first, gaps: gaps, value)
        case 23: return searchFixed(packed, BitWidth<23>(), after: first, gaps: gaps, value)
        case 24: return searchFixed(packed, BitWidth<24>(), after: first, gaps: gaps, value)
        case 25: return searchFixed(packed, BitWidth<25>(), after: first, gaps: gaps, value)
        case 26: return searchFixed(packed, BitWidth<26>(), after: first, gaps: gaps, value)
        case 27: return searchFixed(packed, BitWidth<27>(), after: first, gaps: gaps, value)
        case 28: return searchFixed(packed, BitWidth<28>(), after: first, gaps: gaps, value)
        case 29: return searchFixed(packed, BitWidth<29>(), after: first, gaps: gaps, value)
        case 30: return searchFixed(packed, BitWidth<30>(), after: first, gaps: gaps, value)
        case 31: return searchFixed(packed, BitWidth<31>(), after: first, gaps: gaps, value)
        case 32: return searchFixed(packed, BitWidth<32>(), after: first, gaps: gaps, value)
        default: preconditionFailure("bit width \(width) out of range (the list was verified)")
        }
    }

    /// `search` for one width: adds up the 8 gaps of a group in place (`groupSum`) and goes
    /// into the group only when its last value reaches `value`. Inlined into `search`'s switch
    /// (out of line, each width's copy was a call with its register saves on every test).
    @inlinable @inline(__always)
    static func searchFixed<let width: Int>(_ packed: UnsafeRawPointer, _ bits: BitWidth<width>, after: UInt32, gaps: Int, _ value: UInt32) -> Bool {
        let mask: UInt64 = (1 << UInt64(width)) &- 1
        var current = after
        var group = packed
        var i = 0
        // Values stay below 2^32 (the list is sorted UInt32s), so the sums never wrap within a list.
        while i &+ 8 <= gaps {
            let last = current &+ groupSum(group, BitWidth<width>(), mask: mask) &+ 8
            if last >= value {
                // `value` is one of this group's 8 values or in none: all 8 compared without a
                // branch (constant offsets and shifts). Where a walk stops within its group is
                // a coin toss, and a loop over the group's gaps mispredicted its exit.
                var hits: UInt32 = 0
                var v = current
                for j in 0..<8 {
                    v = v &+ gap(group, bit: j &* width, mask: mask) &+ 1
                    hits |= v == value ? 1 : 0
                }
                return hits != 0
            }
            current = last
            group += width
            i &+= 8
        }
        // The block's last gaps (fewer than 8): one at a time, reading no byte past the body.
        var bit = 0
        while i < gaps {
            current = current &+ gap(group, bit: bit, mask: mask) &+ 1
            if current >= value { return current == value }
            bit &+= width
            i &+= 1
        }
        return false
    }
}

extension GraphCodec {
    /// The whole groups of 8 gaps at the start of a packed body (`width` 0...32, from `packed`
    /// on, the first value after `after`) whose last value is at most `cursor`: how many gaps
    /// they hold and the value they end at (`after` when none). A page walks these by their
    /// sums (`groupSum`) and decodes only from the group its cursor falls in.
    @inlinable
    static func skipGroups(_ packed: UnsafeRawPointer, width: Int, after: UInt32, gaps: Int, through cursor: UInt32) -> (gaps: Int, value: UInt32) {
        switch width {
        case 0:
            // Values after + 1, after + 2, ...: the groups ending at or below the cursor.
            let below = cursor &- after
            let whole = min(gaps, Int(below)) & ~7
            return (whole, after &+ UInt32(truncatingIfNeeded: whole))
        case 1: return skipFixed(packed, BitWidth<1>(), after: after, gaps: gaps, through: cursor)
        case 2: return skipFixed(packed, BitWidth<2>(), after: after, gaps: gaps, through: cursor)
        case 3: return skipFixed(packed, BitWidth<3>(), after: after, gaps: gaps, through: cursor)
        case 4: return skipFixed(packed, BitWidth<4>(), after: after, gaps: gaps, through: cursor)
        case 5: return skipFixed(packed, BitWidth<5>(), after: after, gaps: gaps, through: cursor)
        case 6: return skipFixed(packed, BitWidth<6>(), after: after, gaps: gaps, through: cursor)
        case 7: return skipFixed(packed, BitWidth<7>(), after: after, gaps: gaps, through: cursor)
        case 8: return skipFixed(packed, BitWidth<8>(), after: after, gaps: gaps, through: cursor)
        case 9: return skipFixed(packed, BitWidth<9>(), after: after, gaps: gaps, through: cursor)
        case 10: return skipFixed(packed, BitWidth<10>(), after: after, gaps: gaps, through: cursor)
        case 11: return skipFixed(packed, BitWidth<11>(), after: after, gaps: gaps, through: cursor)
        case 12: return skipFixed(packed, BitWidth<12>(), after: after, gaps: gaps, through: cursor)
        case 13: return skipFixed(packed, BitWidth<13>(), after: after, gaps: gaps, through: cursor)
        case 14: return skipFixed(packed, BitWidth<14>(), after: after, gaps: gaps, through: cursor)
        case 15: return skipFixed(packed, BitWidth<15>(), after: after, gaps: gaps, through: cursor)
        case 16: return skipFixed(packed, BitWidth<16>(), after: after, gaps: gaps, through: cursor)
        case 17: return skipFixed(packed, BitWidth<17>(), after: after, gaps: gaps, through: cursor)
        case 18: return skipFixed(packed, BitWidth<18>(), after: after, gaps: gaps, through: cursor)
        case 19: return skipFixed(packed, BitWidth<19>(), after: after, gaps: gaps, through: cursor)
        case 20: return skipFixed(packed, BitWidth<20>(), after: after, gaps: gaps, through: cursor)
        case 21: return skipFixed(packed, BitWidth<21>(), after: after, gaps: gaps, through: cursor)
        case 22: return skipFixed(packed, BitWidth<22>(), after: after, gaps: gaps, through: cursor)
        case 23: return skipFixed(packed, BitWidth<23>(), after: after, gaps: gaps, through: cursor)
        case 24: return skipFixed(packed, BitWidth<24>(), after: after, gaps: gaps, through: cursor)
        case 25: return skipFixed(packed, BitWidth<25>(), after: after, gaps: gaps, through: cursor)
        case 26: return skipFixed(packed, BitWidth<26>(), after: after, gaps: gaps, through: cursor)
        case 27: return skipFixed(packed, BitWidth<27>(), after: after, gaps: gaps, through: cursor)
        case 28: return skipFixed(packed, BitWidth<28>(), after: after, gaps: gaps, through: cursor)
        case 29: return skipFixed(packed, BitWidth<29>(), after: after, gaps: gaps, through: cursor)
        case 30: return skipFixed(packed, BitWidth<30>(), after: after, gaps: gaps, through: cursor)
        case 31: return skipFixed(packed, BitWidth<31>(), after: after, gaps: gaps, through: cursor)
        case 32: return skipFixed(packed, BitWidth<32>(), after: after, gaps: gaps, through: cursor)
        default: preconditionFailure("bit width \(width) out of range (the list was verified)")
        }
    }

    @inlinable
    static func skipFixed<let width: Int>(_ packed: UnsafeRawPointer, _ bits: BitWidth<width>, after: UInt32, gaps: Int, through cursor: UInt32) -> (gaps: Int, value: UInt32) {
        let mask: UInt64 = (1 << UInt64(width)) &- 1
        var current = after
        var group = packed
        var i = 0
        while i &+ 8 <= gaps {
            let last = current &+ groupSum(group, BitWidth<width>(), mask: mask) &+ 8
            if last > cursor { break }
            current = last
            group += width
            i &+= 8
        }
        return (i, current)
    }
}

extension GraphCodec: AdjacencyBlockCodec {
    @inlinable @inline(__always)
    public static func blockFirst(_ list: UnsafeRawPointer, count: Int, _ b: Int) -> UInt32 {
        UInt32(littleEndian: list.loadUnaligned(fromByteOffset: b &* directoryEntryBytes, as: UInt32.self))
    }

    @inlinable
    public static func lastBlock(_ list: UnsafeRawPointer, count: Int, atOrBelow value: UInt32, from: Int) -> Int {
        let blocks = (count &+ blockSize &- 1) &>> blockShift
        return blocks > 1 ? lastBlock(list, blocks: blocks, atOrBelow: value, from: from) : 0
    }

    @inlinable
    public static func decodeBlock(_ list: UnsafeRawPointer, count: Int, _ b: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        let (first, body, size) = block(list, count: count, b)
        return decodeBlock(first: first, body: body, size: size, into: out)
    }

    /// A page (see the protocol): packed blocks are decoded only where the page is. In the
    /// cursor's block the whole groups at or below the cursor are passed by their sums
    /// (`skipGroups`), and every block decodes only the gaps the page can still take (plus the
    /// at most 8 values of the cursor's group that are not past it); other bodies are decoded
    /// whole as the protocol's walker does. A page of 50 from a random cursor in a popular
    /// user's list decoded 128 values, often twice (its block and the next).
    @inlinable
    public static func copy(_ list: UnsafeRawPointer, count: Int, after: UInt32?, limit: Int,
                            into out: UnsafeMutablePointer<UInt32>) -> Int {
        let blocks = blockCount(count)
        var b = 0
        if let after { b = lastBlock(list, count: count, atOrBelow: after, from: 0) }
        var cursor = after
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
            let decoded = buffer.baseAddress!
            var written = 0
            while b < blocks && written < limit {
                let (first, body, size) = block(list, count: count, b)
                let mode = body.load(as: UInt8.self)
                let want = limit &- written
                if mode <= 32 {
                    let width = Int(mode)
                    if let c = cursor, first <= c {
                        let (skipped, value) = skipGroups(body + 1, width: width, after: first, gaps: size &- 1, through: c)
                        // At most 8 of these are at or below the cursor (the rest of its group).
                        let n = min(size &- 1 &- skipped, min(want, blockSize) &+ 8)
                        unpack(body + 1 + (skipped &>> 3) &* width, width: width, after: value, gaps: n, into: decoded)
                        var start = 0
                        while start < n && decoded[start] <= c { start &+= 1 }
                        let take = min(n &- start, want)
                        (out + written).update(from: decoded + start, count: take)
                        written &+= take
                    } else {
                        out[written] = first
                        let n = min(size &- 1, want &- 1)
                        unpack(body + 1, width: width, after: first, gaps: n, into: out + (written &+ 1))
                        written &+= n &+ 1
                    }
                } else {
                    let n = decodeBlock(first: first, body: body, size: size, into: decoded)
                    var start = 0
                    if let c = cursor, decoded[0] <= c {
                        // The first decoded value greater than the cursor.
                        var low = 0, high = n
                        while low < high {
                            let middle = (low &+ high) >> 1
                            if decoded[middle] <= c { low = middle &+ 1 } else { high = middle }
                        }
                        start = low
                    }
                    let take = min(n &- start, want)
                    (out + written).update(from: decoded + start, count: take)
                    written &+= take
                }
                // The blocks after the cursor's start past it.
                cursor = nil
                b &+= 1
            }
            return written
        }
    }
}

/// A codec of sorted neighbour lists in blocks of at most 128 values (`GraphCodec`, the
/// following lists and the follower lists of bases before format 6; `GraphRiceCodec`, the
/// follower lists of format 6), each block entered through a directory of first values. The
/// list walkers below (whole decode, scan, copy, forEach, intersection) are written once over
/// these, and specialized for each codec (static calls on a concrete type, inlined).
public protocol AdjacencyBlockCodec {
    /// The last block at or after `from` whose first value is <= `value` (`from` when none is;
    /// 0 for a list of one block).
    static func lastBlock(_ list: UnsafeRawPointer, count: Int, atOrBelow value: UInt32, from: Int) -> Int
    /// Decodes block `b` of the coded list of `count` values into `out` (room for 128 values);
    /// returns how many it holds (its first value in out[0]).
    static func decodeBlock(_ list: UnsafeRawPointer, count: Int, _ b: Int, into out: UnsafeMutablePointer<UInt32>) -> Int
    /// Whether the coded list of `count` values holds `value`, decoding at most one block.
    static func contains(_ list: UnsafeRawPointer, count: Int, _ value: UInt32) -> Bool
    /// Whether block `b` of the coded list of `count` values holds `value`, decoding only as
    /// much of the block as it needs (`contains` after its directory search).
    static func blockContains(_ list: UnsafeRawPointer, count: Int, _ b: Int, _ value: UInt32) -> Bool
    /// The first value of block `b` (> 0) of a coded list of more than one block.
    static func blockFirst(_ list: UnsafeRawPointer, count: Int, _ b: Int) -> UInt32
    /// Copies up to `limit` values greater than `after` (all when nil), in order, to `out`
    /// (room for `limit`); returns how many. (A page; the extension's walker unless the codec
    /// has a faster way in.)
    static func copy(_ list: UnsafeRawPointer, count: Int, after: UInt32?, limit: Int, into out: UnsafeMutablePointer<UInt32>) -> Int
    /// Decodes the coded list that is exactly `list` with every byte checked (the deep check's
    /// decoder); the first problem (code, offset within `list`, what), or nil.
    static func checkedDecode(_ list: UnsafeRawBufferPointer, count: Int, into out: inout [UInt32]) -> (CheckCode, Int, String)?
}

extension AdjacencyBlockCodec {
    @inlinable @inline(__always)
    static func blockCount(_ count: Int) -> Int { (count &+ GraphCodec.blockSize &- 1) &>> GraphCodec.blockShift }

    /// Decodes a whole coded list of `count` values into `out` (room for `count` values).
    @inlinable
    public static func decode(_ list: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        let blocks = blockCount(count)
        var written = 0
        var b = 0
        while b < blocks {
            written &+= decodeBlock(list, count: count, b, into: out + written)
            b &+= 1
        }
    }

    /// Calls `body` with every value greater than `after` (all values when nil), in order, until
    /// it returns false. Enters the list at the block holding `after` (binary search), and
    /// decodes a block at a time into a 128-value buffer on the stack with `decodeBlock`'s tight
    /// loop, then hands the values out one by one: the per-value cost is the caller's closure,
    /// not the decoder's state machine (the fan-out's loop goes through here).
    @inlinable
    public static func scan(_ list: UnsafeRawPointer, count: Int, after: UInt32?,
                            _ body: (UInt32) throws -> Bool) rethrows {
        let blocks = blockCount(count)
        var b = 0
        if let after { b = lastBlock(list, count: count, atOrBelow: after, from: 0) }
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { buffer in
            let out = buffer.baseAddress!
            while b < blocks {
                let n = decodeBlock(list, count: count, b, into: out)
                var i = 0
                if let after, out[0] <= after {
                    while i < n && out[i] <= after { i &+= 1 }
                }
                while i < n {
                    if try !body(out[i]) { return }
                    i &+= 1
                }
                b &+= 1
            }
        }
    }

    /// Copies up to `limit` values greater than `after` (all when nil), in order, to `out` (room
    /// for `limit`); returns how many. Enters at the block holding `after` (binary search over
    /// the directory, then over the decoded block) and copies whole runs of a block at once.
    @inlinable
    public static func copy(_ list: UnsafeRawPointer, count: Int, after: UInt32?, limit: Int,
                            into out: UnsafeMutablePointer<UInt32>) -> Int {
        let blocks = blockCount(count)
        var b = 0
        if let after { b = lastBlock(list, count: count, atOrBelow: after, from: 0) }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { buffer in
            let decoded = buffer.baseAddress!
            var written = 0
            while b < blocks && written < limit {
                let n = decodeBlock(list, count: count, b, into: decoded)
                var start = 0
                if let after, decoded[0] <= after {
                    // The first decoded value greater than `after`.
                    var low = 0, high = n
                    while low < high {
                        let middle = (low &+ high) >> 1
                        if decoded[middle] <= after { low = middle &+ 1 } else { high = middle }
                    }
                    start = low
                }
                let take = min(n &- start, limit &- written)
                (out + written).update(from: decoded + start, count: take)
                written &+= take
                b &+= 1
            }
            return written
        }
    }

    /// Calls `body` with every value of the coded list of `count` values, in order: a block at a
    /// time decoded into a 128-value stack buffer, then a plain loop over it (no stop test, so
    /// the caller's closure is the loop body once this is inlined).
    @inlinable @inline(__always)
    public static func forEach(_ list: UnsafeRawPointer, count: Int, _ body: (UInt32) throws -> Void) rethrows {
        let blocks = blockCount(count)
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { buffer in
            let out = buffer.baseAddress!
            var b = 0
            while b < blocks {
                let n = decodeBlock(list, count: count, b, into: out)
                var i = 0
                while i < n {
                    try body(out[i])
                    i &+= 1
                }
                b &+= 1
            }
        }
    }

    /// Calls `body` with each value of `probes` (sorted, strictly increasing) that the coded list
    /// of `count` values holds, in order, until it returns false. Walks the list once, a block at
    /// a time, entering blocks through the directory. The probes a block holds (those below the
    /// next block's first value) decide how: one or two are each searched in the block as a
    /// membership test does (groups of eight added up, no value written); three or more, and
    /// the block is decoded once into a 128-value buffer on the stack and merged with them.
    /// (A following list's popular followees often all fall in the first block of a long
    /// follower list, where decoding once beats searching each; elsewhere they fall a block
    /// or more apart, where searching beats decoding.)
    @inlinable
    public static func intersect(_ probes: UnsafeBufferPointer<UInt32>, _ list: UnsafeRawPointer, count: Int,
                                 _ body: (UInt32) -> Bool) {
        let blocks = blockCount(count)
        let n = probes.count
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { buffer in
            let out = buffer.baseAddress!
            var i = 0
            var b = 0
            while i < n {
                b = lastBlock(list, count: count, atOrBelow: probes[i], from: b)
                let last = b &+ 1 >= blocks
                let next = last ? 0 : blockFirst(list, count: count, b &+ 1)
                var end = i &+ 1
                while end < n && end &- i < 3 && (last || probes[end] < next) { end &+= 1 }
                if end &- i < 3 {
                    while i < end {
                        if blockContains(list, count: count, b, probes[i]) && !body(probes[i]) { return }
                        i &+= 1
                    }
                    continue
                }
                let size = decodeBlock(list, count: count, b, into: out)
                var j = 0
                while i < n && (last || probes[i] < next) {
                    let p = probes[i]
                    while j < size && out[j] < p { j &+= 1 }
                    if j < size && out[j] == p && !body(p) { return }
                    i &+= 1
                }
            }
        }
    }
}

/// A bit width (or Rice parameter) as a type: the loops made once per width take one, so each
/// width's copy is a generic specialization with its shifts and offsets constant.
@frozen
public struct BitWidth<let bits: Int> {
    @inlinable public init() {}
}
