/// A growable byte buffer for building a segment's sections: appends store straight into owned
/// memory (an `[UInt8]` append checks uniqueness and capacity per call, and its generic
/// `append(contentsOf:)` copied a term's name a byte at a time; those were a good part of a
/// freeze).
///
/// Single owner (noncopyable); the memory is freed with the value. `bytes` and `mutableBytes`
/// are valid until the next append.
struct ByteSink: ~Copyable {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = max(16, capacity)
        base = .allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }

    /// Makes room for `n` more bytes.
    @inline(__always)
    mutating func reserve(_ n: Int) {
        if count &+ n > capacity { grow(count + n) }
    }

    @inline(never)
    private mutating func grow(_ needed: Int) {
        var grown = capacity * 2
        while grown < needed { grown *= 2 }
        let next = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 8)
        next.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = next
        capacity = grown
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count &+= 1
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0 else { return }
        reserve(n)
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: n)
        count &+= n
    }

    /// `value` in little-endian byte order.
    @inline(__always)
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        base.storeBytes(of: value.littleEndian, toByteOffset: count, as: T.self)
        count &+= MemoryLayout<T>.size
    }

    /// A LEB128 varint (`Varint`).
    @inline(__always)
    mutating func appendVarint(_ value: UInt64) {
        reserve(Varint.maxBytesUInt64)
        var v = value
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: count, as: UInt8.self)
            count &+= 1
            v &>>= 7
        }
        base.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: count, as: UInt8.self)
        count &+= 1
    }

    /// Counts `n` bytes written at `base + count` (room made by `reserve`) as appended.
    @inline(__always)
    mutating func extend(by n: Int) {
        count &+= n
    }

    mutating func appendZeros(_ n: Int) {
        guard n > 0 else { return }
        reserve(n)
        (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: n)
        count &+= n
    }

    mutating func removeLast(_ n: Int) {
        precondition(n >= 0 && n <= count, "removeLast beyond the start")
        count -= n
    }
}
