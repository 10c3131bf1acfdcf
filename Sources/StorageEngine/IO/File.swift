import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An open file of the engine, on the `FileSystem` that opened it.
///
/// Positional reads and writes (`read(into:at:)`, `write(_:at:)`) may run from many threads at
/// once. `append` keeps an end offset of its own (starting at the size at open) and reserves
/// ranges atomically, so concurrent appenders never overlap.
///
/// Lifetime: `close()` closes the descriptor once; any later operation is a programmer error
/// and traps. A file not closed by its owner is closed in deinit.
public final class File: Sendable {
    let fd: Int32
    public let path: String
    public let fileSystem: FileSystem
    private let appendOffset = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)

    init(fd: Int32, path: String, fileSystem: FileSystem) {
        self.fd = fd
        self.path = path
        self.fileSystem = fileSystem
    }

    deinit {
        if !closed.load(ordering: .relaxed) { Glibc.close(fd) }
    }

    public func close() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) {
            Glibc.close(fd)
        }
    }

    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    @inline(__always)
    private func checkOpen() {
        precondition(!closed.load(ordering: .relaxed), "use of a closed file: \(path)")
    }

    func setAppendOffset(_ offset: UInt64) { appendOffset.store(offset, ordering: .releasing) }

    /// Where the next `append` writes.
    public var endOffset: UInt64 { appendOffset.load(ordering: .acquiring) }

    // MARK: Data

    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    @discardableResult
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(IOError) -> Int {
        checkOpen()
        var op = IOOp(kind: .read, fd: fd, address: buffer.baseAddress, length: buffer.count, offset: offset)
        try run(&op)
        return Int(op.result)
    }

    /// Reads exactly `buffer.count` bytes at `offset`; end of file first is an error (EIO-like
    /// `ENODATA`), since callers use it for ranges they know exist.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(IOError) {
        let n = try read(into: buffer, at: offset)
        if n != buffer.count { throw IOError(errno: ENODATA, operation: .read, path: path) }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(IOError) {
        checkOpen()
        var op = IOOp(kind: .write, fd: fd, address: UnsafeMutableRawPointer(mutating: bytes.baseAddress), length: bytes.count, offset: offset)
        try run(&op)
        // Keep `append` after anything written past the end by hand.
        let end = offset + UInt64(bytes.count)
        var current = appendOffset.load(ordering: .relaxed)
        while current < end {
            let (exchanged, original) = appendOffset.compareExchange(expected: current, desired: end, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws(IOError) {
        var failure: IOError?
        bytes.withUnsafeBytes { raw in
            do throws(IOError) { try write(raw, at: offset) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes `bytes` at the end offset and returns where they went.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) throws(IOError) -> UInt64 {
        let offset = appendOffset.wrappingAdd(UInt64(bytes.count), ordering: .acquiringAndReleasing).oldValue
        try write(bytes, at: offset)
        return offset
    }

    /// Writes `bytes` at `offset` and then makes them durable (fdatasync, or fsync when
    /// `dataOnly` is false), the sync only after the whole write (a linked chain: direct
    /// syscalls on both backends, see `FileSystem.perform`).
    public func writeAndSync(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, dataOnly: Bool = true) throws(IOError) {
        checkOpen()
        var ops = (
            IOOp(kind: .write, fd: fd, address: UnsafeMutableRawPointer(mutating: bytes.baseAddress), length: bytes.count, offset: offset, linkedToNext: true),
            IOOp(kind: dataOnly ? .fdatasync : .fsync, fd: fd, address: nil, length: 0, offset: 0)
        )
        let path = self.path
        try withUnsafeMutableBytes(of: &ops) { (raw) throws(IOError) in
            let buffer = raw.bindMemory(to: IOOp.self)
            fileSystem.perform(buffer) { _ in path }
            if buffer[0].result < 0 { throw IOError(errno: -buffer[0].result, operation: .write, path: path) }
            if buffer[1].result < 0 {
                throw IOError(errno: -buffer[1].result, operation: dataOnly ? .fdatasync : .fsync, path: path)
            }
        }
    }

    /// fdatasync: the data and the metadata needed to read it back are durable.
    public func dataSync() throws(IOError) {
        checkOpen()
        var op = IOOp(kind: .fdatasync, fd: fd, address: nil, length: 0, offset: 0)
        try run(&op)
    }

    /// fsync: data and all metadata are durable.
    public func sync() throws(IOError) {
        checkOpen()
        var op = IOOp(kind: .fsync, fd: fd, address: nil, length: 0, offset: 0)
        try run(&op)
    }

    private func run(_ op: inout IOOp) throws(IOError) {
        precondition(op.length <= Int(Int32.max), "one I/O must be under 2 GiB")
        let path = self.path
        withUnsafeMutablePointer(to: &op) { p in
            fileSystem.perform(UnsafeMutableBufferPointer(start: p, count: 1)) { _ in path }
        }
        if op.result < 0 { throw IOError(errno: -op.result, operation: FileSystem.operation(op.kind), path: path) }
    }

    // MARK: Size

    /// Reserves disk blocks for `[offset, offset + count)` so later writes there cannot fail for
    /// space and do not grow the file's metadata on every fdatasync. Extends the file size.
    public func preallocate(at offset: UInt64, count: UInt64) throws(IOError) {
        checkOpen()
        try fileSystem.inject(.fallocate, path)
        // Growth only: undone by cutting back to the size before.
        fileSystem.faults?.crash?.willChange(fd: fd, path: path, offset: offset + count, length: 0)
        var rc: Int32
        repeat { rc = posix_fallocate(fd, off_t(offset), off_t(count)) } while rc == EINTR
        if rc != 0 { throw IOError(errno: rc, operation: .fallocate, path: path) }
    }

    /// Sets the file size; `append` continues at the new end.
    public func truncate(to size: UInt64) throws(IOError) {
        checkOpen()
        try fileSystem.inject(.truncate, path)
        fileSystem.faults?.crash?.willChange(fd: fd, path: path, offset: 0, length: 0, newSize: size)
        var rc: Int32
        repeat { rc = ftruncate(fd, off_t(size)) } while rc != 0 && errno == EINTR
        if rc != 0 { throw IOError(errno: errno, operation: .truncate, path: path) }
        appendOffset.store(size, ordering: .releasing)
    }

    public func size() throws(IOError) -> UInt64 {
        checkOpen()
        var st = stat()
        if fstat(fd, &st) != 0 { throw IOError(errno: errno, operation: .stat, path: path) }
        return UInt64(st.st_size)
    }

    /// Advises the kernel to drop this file's cached pages (for cold-cache measurements).
    public func dropCache() {
        checkOpen()
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }
}
