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
///            w = 0xFF:    the gaps as LEB128 varints (7 bits a byte, low first)
///            The encoder takes the varint form when it is strictly smaller: a block with a few
///            large gaps among small ones (the skew of a following list: many popular, low
///            user numbers, then a few far apart) costs the width of its largest gap when packed.
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

    // MARK: Sizes and encoding

    @inlinable
    static func bitWidth(_ value: UInt32) -> Int { 32 - value.leadingZeroBitCount }

    /// The bytes `values` (sorted, strictly increasing, non-empty) take when coded.
    public static func encodedSize(_ values: UnsafeBufferPointer<UInt32>) -> Int {
        let count = values.count
        precondition(count > 0, "an empty list is not coded")
        if count <= blockSize {
            return Varint.size(UInt64(values[0])) + 1 + packedBytes(values, from: 0, to: count)
        }
        var total = ((count + blockSize - 1) >> blockShift) * directoryEntryBytes
        var start = 0
        while start < count {
            let end = min(count, start + blockSize)
            total += 1 + packedBytes(values, from: start, to: end)
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

    static func packedBytes(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int) -> Int {
        let packed = ((end - start - 1) * blockWidth(values, from: start, to: end) + 7) >> 3
        return min(packed, varintBytes(values, from: start, to: end))
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
    public static func encode(_ values: UnsafeBufferPointer<UInt32>, into destination: UnsafeMutableRawPointer) -> Int {
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
            return at + encodeBody(values, from: 0, to: count, into: destination + at)
        }
        let blocks = (count + blockSize - 1) >> blockShift
        var at = blocks * directoryEntryBytes
        for block in 0..<blocks {
            let start = block << blockShift
            let end = min(count, start + blockSize)
            destination.storeBytes(of: values[start].littleEndian, toByteOffset: block * 8, as: UInt32.self)
            destination.storeBytes(of: UInt32(at).littleEndian, toByteOffset: block * 8 + 4, as: UInt32.self)
            at += encodeBody(values, from: start, to: end, into: destination + at)
        }
        return at
    }

    /// Mode byte then the gaps of `values[start+1..<end]`, packed or as varints (the smaller).
    static func encodeBody(_ values: UnsafeBufferPointer<UInt32>, from start: Int, to end: Int,
                           into destination: UnsafeMutableRawPointer) -> Int {
        let width = blockWidth(values, from: start, to: end)
        let bytes = ((end - start - 1) * width + 7) >> 3
        let varints = varintBytes(values, from: start, to: end)
        if varints < bytes {
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

    // MARK: Decoding

    /// Where block `block` of a coded list of `count` values starts: its first value, the address
    /// of its width byte, and how many values it holds.
    @inlinable @inline(__always)
    static func block(_ list: UnsafeRawPointer, count: Int, _ block: Int) -> (first: UInt32, body: UnsafeRawPointer, size: Int) {
        if count <= blockSize {
            var value: UInt32 = 0
            var shift: UInt32 = 0
            var at = 0
            while true {
                let byte = list.load(fromByteOffset: at, as: UInt8.self)
                at += 1
                value |= UInt32(byte & 0x7F) &<< shift
                if byte < 0x80 { break }
                shift &+= 7
            }
            return (value, list + at, count)
        }
        let entry = list + block * directoryEntryBytes
        let first = UInt32(littleEndian: entry.loadUnaligned(as: UInt32.self))
        let offset = Int(UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        return (first, list + offset, min(blockSize, count - (block << blockShift)))
    }

    /// Decodes a whole block into `out` (room for 128 values); returns the number written.
    @inlinable
    static func decodeBlock(first: UInt32, body blockBody: UnsafeRawPointer, size: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
        let mode = blockBody.load(as: UInt8.self)
        var value = first
        out[0] = value
        if mode == varintMode {
            var at = 1
            var i = 1
            while i < size {
                value = value &+ readVarint(blockBody, &at) &+ 1
                out[i] = value
                i &+= 1
            }
            return size
        }
        let width = Int(mode)
        let packed = blockBody + 1
        let mask: UInt64 = (1 << UInt64(width)) &- 1
        var bit = 0
        var i = 1
        while i < size {
            let word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self))
            value = value &+ UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask) &+ 1
            out[i] = value
            bit &+= width
            i &+= 1
        }
        return size
    }

    /// Decodes a whole coded list of `count` values into `out` (room for `count` values).
    @inlinable
    public static func decode(_ list: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        let blocks = (count + blockSize - 1) >> blockShift
        var written = 0
        for b in 0..<blocks {
            let (first, body, size) = block(list, count: count, b)
            written += decodeBlock(first: first, body: body, size: size, into: out + written)
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
        let blocks = (count + blockSize - 1) >> blockShift
        var b = 0
        if let after, blocks > 1 {
            b = lastBlock(list, blocks: blocks, atOrBelow: after)
        }
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
            let out = buffer.baseAddress!
            while b < blocks {
                let (first, blockBody, size) = block(list, count: count, b)
                let n = decodeBlock(first: first, body: blockBody, size: size, into: out)
                var i = 0
                if let after, first <= after {
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

    /// Calls `body` with each value of `probes` (sorted, strictly increasing) that the coded list
    /// of `count` values holds, in order, until it returns false. Walks the list once: each block
    /// is decoded at most once (into a 128-value buffer on the stack), blocks no probe falls in
    /// are skipped through the directory.
    @inlinable
    public static func intersect(_ probes: UnsafeBufferPointer<UInt32>, _ list: UnsafeRawPointer, count: Int,
                                 _ body: (UInt32) -> Bool) {
        let blocks = (count + blockSize - 1) >> blockShift
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
            let out = buffer.baseAddress!
            var current = -1
            var size = 0
            var j = 0
            for p in probes {
                let b = blocks > 1 ? lastBlock(list, blocks: blocks, atOrBelow: p, from: max(current, 0)) : 0
                if b != current {
                    let (first, blockBody, values) = block(list, count: count, b)
                    size = decodeBlock(first: first, body: blockBody, size: values, into: out)
                    current = b
                    j = 0
                }
                while j < size && out[j] < p { j &+= 1 }
                if j < size && out[j] == p { if !body(p) { return } }
            }
        }
    }

    /// The last block at or after `from` whose first value is <= `value` (`from` when none is).
    @inlinable
    static func lastBlock(_ list: UnsafeRawPointer, blocks: Int, atOrBelow value: UInt32, from: Int = 0) -> Int {
        var low = from
        var high = blocks - 1
        while low < high {
            let middle = (low + high + 1) >> 1
            let head = UInt32(littleEndian: list.loadUnaligned(fromByteOffset: middle * directoryEntryBytes, as: UInt32.self))
            if head <= value { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// Whether the coded list of `count` values holds `value`, decoding at most one block.
    @inlinable
    public static func contains(_ list: UnsafeRawPointer, count: Int, _ value: UInt32) -> Bool {
        let blocks = (count + blockSize - 1) >> blockShift
        let b = blocks > 1 ? lastBlock(list, blocks: blocks, atOrBelow: value) : 0
        let (first, blockBody, size) = block(list, count: count, b)
        if value <= first { return value == first }
        // Decodes only up to `value`: this is the hot path of every membership test.
        let mode = blockBody.load(as: UInt8.self)
        var current = first
        if mode == varintMode {
            var at = 1
            var i = 1
            while i < size {
                current = current &+ readVarint(blockBody, &at) &+ 1
                if current >= value { return current == value }
                i &+= 1
            }
            return false
        }
        let width = Int(mode)
        let packed = blockBody + 1
        let mask: UInt64 = (1 << UInt64(width)) &- 1
        var bit = 0
        var i = 1
        while i < size {
            let word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self))
            current = current &+ UInt32(truncatingIfNeeded: (word &>> UInt64(bit & 7)) & mask) &+ 1
            if current >= value { return current == value }
            bit &+= width
            i &+= 1
        }
        return false
    }
}
