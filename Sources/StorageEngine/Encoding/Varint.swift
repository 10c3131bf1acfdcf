/// LEB128 variable-length unsigned integers: seven bits a byte, low groups first, the high bit
/// set on every byte but the last. A UInt64 takes 1 to 10 bytes. Used by every block codec.
public enum Varint {
    public static let maxBytesUInt64 = 10

    /// The number of bytes `value` takes.
    @inlinable
    public static func size(_ value: UInt64) -> Int {
        // (bit length + 6) / 7, with 0 taking one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Writes `value` at `offset` and returns the offset after it. The buffer must have room for
    /// `size(value)` bytes.
    @inlinable
    @discardableResult
    public static func write(_ value: UInt64, to buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        precondition(offset >= 0 && offset + size(value) <= buffer.count, "varint does not fit")
        var v = value
        var i = offset
        while v >= 0x80 {
            buffer[i] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            i += 1
        }
        buffer[i] = UInt8(truncatingIfNeeded: v)
        return i + 1
    }

    @inlinable
    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    /// Reads a varint at `offset`. Returns nil when the bytes end first or the encoding is longer
    /// than ten bytes or overflows 64 bits: a corrupt input is reported, never trapped on.
    @inlinable
    public static func read(from buffer: UnsafeRawBufferPointer, at offset: Int) -> (value: UInt64, next: Int)? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = offset
        while i < buffer.count {
            let byte = buffer[i]
            i += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return (result, i) }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }
}
