#if canImport(Glibc)
import Glibc
#endif

/// Reads the records of one segment file in order, verifying each, for recovery and readers.
///
/// It reads the file in large chunks into a buffer it owns; a payload it returns points into
/// that buffer and is valid until the next call. Not thread-safe: one owner.
///
/// The buffer is sized to what is read (up to `chunkBytes` a read, more only for a larger
/// record) and never zeroed: only bytes a read filled are looked at. A scanner of a small file
/// (a fresh segment, a fuzz input, a check of a short log) costs a small allocation, not a
/// zeroed MiB (which were page faults and a memset per scanner, most of the time of the
/// log-segment fuzz target).
struct SegmentScanner {
    enum Step {
        case record(lsn: UInt64, type: UInt16, payload: UnsafeRawBufferPointer)
        /// Zeroed space or the end of the file where a record header would start: the clean end.
        case end
        /// A frame that is torn or corrupt, with what is wrong, at `offset`.
        case problem(String)
    }

    let file: File
    private(set) var fileSize: UInt64
    private(set) var offset: UInt64
    private(set) var expectedLSN: UInt64
    private var storage: ScanStorage
    private var bufferStart: UInt64 = 0
    private var bufferCount = 0

    static let chunkBytes = 1 << 20

    init(file: File, fileSize: UInt64, firstLSN: UInt64) {
        self.file = file
        self.fileSize = fileSize
        self.offset = UInt64(LogFormat.firstRecordOffset)
        self.expectedLSN = firstLSN
        self.storage = ScanStorage(count: 0)
    }

    /// Forgets what was read, so records written since are seen (a reader tailing the segment
    /// being written).
    mutating func refresh(fileSize: UInt64) {
        self.fileSize = fileSize
        bufferCount = 0
    }

    /// Makes `[at, at + count)` available in the buffer, reading from the file as needed;
    /// returns false when the file ends first.
    private mutating func ensure(_ at: UInt64, _ count: Int) throws(IOError) -> Bool {
        if at >= bufferStart && at + UInt64(count) <= bufferStart + UInt64(bufferCount) { return true }
        if at + UInt64(count) > fileSize { return false }
        // What is read: the chunk, cut at the end of the file, but always the `count` asked for
        // (at + count <= fileSize here).
        let toRead = Int(min(UInt64(max(count, Self.chunkBytes)), fileSize - at))
        if storage.bytes.count < toRead {
            // Grown at least twofold (up to the chunk), so a reader tailing a growing segment
            // does not reallocate on every refresh.
            storage = ScanStorage(count: max(toRead, min(Self.chunkBytes, 2 * storage.bytes.count)))
        }
        let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: storage.bytes[0..<toRead]), at: at)
        bufferStart = at
        bufferCount = n
        return n >= count
    }

    /// The next record, the clean end, or a problem. After `.end` or `.problem`, `offset` is
    /// where the valid records of this segment end.
    mutating func next() throws(IOError) -> Step {
        let headerBytes = LogFormat.recordHeaderBytes
        guard try ensure(offset, headerBytes) else {
            // Fewer bytes than a frame header remain: the end if they are all zero.
            // A segment cut inside its header page ends before the first record's offset.
            let rest = fileSize > offset ? Int(fileSize - offset) : 0
            if rest == 0 { return .end }
            guard try ensure(offset, rest) else { return .problem("short read at offset \(offset)") }
            let start = Int(offset - bufferStart)
            let zero = storage.bytes[start..<(start + rest)].allSatisfy { $0 == 0 }
            return zero ? .end : .problem("torn record header at offset \(offset) (\(rest) bytes before end of file)")
        }
        let start = Int(offset - bufferStart)
        let frame = UnsafeRawBufferPointer(rebasing: storage.bytes[start..<(start + headerBytes)])
        let length = frame.loadLE(UInt32.self, at: 8)
        let type = frame.loadLE(UInt16.self, at: 12)
        let flags = frame.loadLE(UInt16.self, at: 14)
        let lsn = frame.loadLE(UInt64.self, at: 16)
        let sum = frame.loadLE(UInt64.self, at: 0)
        if length == 0 && type == 0 && flags == 0 && lsn == 0 && sum == 0 { return .end }
        if type == 0 { return .problem("record with type 0 at offset \(offset)") }
        if length > UInt32(LogFormat.maxPayloadBytes) {
            return .problem("record length \(length) out of range at offset \(offset)")
        }
        let total = headerBytes + Int(length)
        guard try ensure(offset, total) else {
            return .problem("torn record at offset \(offset): \(total) bytes framed, \(fileSize - offset) in the file")
        }
        let begin = Int(offset - bufferStart)
        let body = UnsafeRawBufferPointer(rebasing: storage.bytes[(begin + 8)..<(begin + total)])
        if Checksum.xxh3(body, seed: .logRecord) != sum { return .problem("checksum mismatch in record at offset \(offset) (length \(length))") }
        if lsn != expectedLSN {
            return .problem("record at offset \(offset) has LSN \(lsn), expected \(expectedLSN)")
        }
        offset += UInt64(total)
        expectedLSN += 1
        // Valid until the next call refills or replaces the storage: the documented lifetime.
        let payload = UnsafeRawBufferPointer(rebasing: storage.bytes[(begin + headerBytes)..<(begin + total)])
        return .record(lsn: lsn, type: type, payload: payload)
    }

    /// The index of the last non-zero byte among the first `count`, or nil. A preallocated tail is
    /// megabytes of zeros: whole chunks are compared with `memcmp` against zeros, and a chunk
    /// with data is walked back eight bytes at a time, not byte by byte through a closure.
    static func lastNonZeroByte(_ chunk: [UInt8], count: Int) -> Int? {
        chunk.withUnsafeBytes { raw -> Int? in
            let base = raw.baseAddress!
            if zeroChunk.withUnsafeBytes({ memcmp(base, $0.baseAddress!, min(count, $0.count)) }) == 0 && count <= zeroChunk.count {
                return nil
            }
            var i = count
            while i >= 8 && raw.loadUnaligned(fromByteOffset: i - 8, as: UInt64.self) == 0 { i -= 8 }
            while i > 0 && raw[i - 1] == 0 { i -= 1 }
            return i > 0 ? i - 1 : nil
        }
    }

    private static let zeroChunk = [UInt8](repeating: 0, count: chunkBytes)

    /// The index of the first non-zero byte of `bytes` at or after `start`, or nil: one `memcmp`
    /// against zeros when there is none (the usual case, a header page's padding), else eight
    /// bytes at a time (a byte-by-byte closure was most of the log-segment fuzz target's time
    /// under coverage instrumentation).
    static func firstNonZeroByte(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        let count = bytes.count - start
        if count <= zeroChunk.count,
           zeroChunk.withUnsafeBytes({ memcmp(bytes.baseAddress! + start, $0.baseAddress!, count) }) == 0 {
            return nil
        }
        var i = start
        while i + 8 <= bytes.count && bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) == 0 { i += 8 }
        while i < bytes.count && bytes[i] == 0 { i += 1 }
        return i < bytes.count ? i : nil
    }

    /// Counts the non-zero bytes from `offset` to the end of the file: what lies past the valid
    /// end (a torn tail, or records after a corrupt one).
    func nonZeroExtent(from start: UInt64) throws(IOError) -> UInt64 {
        var lastNonZero: UInt64? = nil
        var at = start
        // Sized to what there is to read, up to a chunk (a fuzz input or a short tail is small).
        var chunk = [UInt8](repeating: 0, count: start < fileSize ? Int(min(UInt64(Self.chunkBytes), fileSize - start)) : 0)
        while at < fileSize {
            let n = Int(min(UInt64(chunk.count), fileSize - at))
            var failure: IOError?
            var got = 0
            chunk.withUnsafeMutableBytes { raw in
                do throws(IOError) { got = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<n]), at: at) } catch { failure = error }
            }
            if let failure { throw failure }
            if got == 0 { break }
            if let i = Self.lastNonZeroByte(chunk, count: got) { lastNonZero = at + UInt64(i) }
            at += UInt64(got)
        }
        guard let lastNonZero else { return 0 }
        return lastNonZero + 1 - start
    }
}

/// The scanner's read buffer. Owns its memory; the scanner hands out pointers into it that live
/// until the scanner's next read (the scanner keeps the storage alive while it is in use).
final class ScanStorage {
    let bytes: UnsafeMutableRawBufferPointer

    /// Not zeroed: the scanner reads only bytes a file read has filled.
    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 64)
    }

    deinit { bytes.deallocate() }
}
