#if canImport(Glibc)
import Glibc
#endif

/// A heap buffer whose address and size are multiples of an alignment (4096 by default), as
/// O_DIRECT reads and writes require.
///
/// Ownership: the buffer owns its memory and frees it in deinit. The pointers it hands out are
/// valid only while the buffer is alive; callers keep it alive across any I/O that uses them.
/// Not thread-safe for writes to its bytes: one owner at a time.
public final class AlignedBuffer: @unchecked Sendable {
    // @unchecked: the class only owns a pointer; the caller owns access to the bytes, as documented.
    public let alignment: Int
    public let count: Int
    public let baseAddress: UnsafeMutableRawPointer

    /// - Parameter count: rounded up to a multiple of `alignment`.
    public init(count requested: Int, alignment: Int = 4096) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        precondition(requested >= 0, "negative buffer size")
        let rounded = max(alignment, (requested + alignment - 1) & ~(alignment - 1))
        var pointer: UnsafeMutableRawPointer?
        let rc = posix_memalign(&pointer, alignment, rounded)
        guard rc == 0, let pointer else { fatalError("posix_memalign(\(rounded)) failed: \(rc)") }
        memset(pointer, 0, rounded)
        self.alignment = alignment
        self.count = rounded
        self.baseAddress = pointer
    }

    deinit { free(baseAddress) }

    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: count)
    }

    public func bytes(from offset: Int, count: Int) -> UnsafeMutableRawBufferPointer {
        precondition(offset >= 0 && count >= 0 && offset + count <= self.count, "slice out of range")
        return UnsafeMutableRawBufferPointer(start: baseAddress + offset, count: count)
    }
}
