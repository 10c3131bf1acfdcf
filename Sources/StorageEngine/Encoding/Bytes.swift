/// Little-endian fixed-width loads and stores on raw memory.
///
/// All on-disk integers of socialdb are little-endian. These helpers do unaligned access, so a
/// format never needs padding just to make a field readable.
extension UnsafeRawBufferPointer {
    @inlinable
    public func loadLE<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "read past the end of a buffer")
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable
    public func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "write past the end of a buffer")
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    @inlinable
    public func loadLE<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T {
        UnsafeRawBufferPointer(self).loadLE(T.self, at: offset)
    }
}

extension Array where Element == UInt8 {
    /// Appends `value` in little-endian byte order.
    @inlinable
    public mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    /// These bytes as a String if they are valid UTF-8 (strict: invalid bytes are corruption,
    /// not replacement characters), else nil. All-ASCII text, the common case, takes a fast
    /// path: one pass to check the bytes, then a copy without validation.
    @inlinable
    public func strictUTF8String() -> String? {
        let bytes = bindMemory(to: UInt8.self)
        var any: UInt8 = 0
        for b in bytes { any |= b }
        if any < 0x80 { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}
