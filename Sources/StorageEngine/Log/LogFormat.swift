/// The on-disk format of the durable event log. The prose here and in Docs/FORMATS.md is the spec.
///
/// A log is a directory of segment files named by the LSN of their first record, in 20 decimal
/// digits: `00000000000000000001.log`. LSNs (log sequence numbers) start at 1 and increase by one
/// per record with no gaps, across segments.
///
/// Segment file:
///
///     offset 0     segment header, 32 bytes, then zeros up to 4096
///     offset 4096  record, record, ... then zeros (space is preallocated ahead in 4 MiB chunks)
///
/// Segment header (little-endian):
///
///     0   8  magic "SDBLOG\r\n"
///     8   4  format version (1)
///     12  4  flags (0)
///     16  8  first LSN of the segment (equal to the file name)
///     24  8  XXH3-64 of bytes 0..<24, seed `Checksum.Seed.logSegmentHeader`
///
/// Records start on the page after the header so that rewriting the first page of records can
/// never tear the header.
///
/// Record (little-endian), 24-byte frame then the payload, unpadded:
///
///     0   8  XXH3-64 of bytes 8..<(24 + length), seed `Checksum.Seed.logRecord`
///     8   4  payload length in bytes
///     12  2  record type, 1...65535 (0 is never written: zeroed space reads as the end)
///     14  2  flags (0)
///     16  8  LSN
///     24  length bytes of payload
///
/// The checksum covers the length, type, flags and LSN as well as the payload, so a torn or
/// stale frame cannot pass. A reader accepts a record only if its checksum matches, its type is
/// not 0, its length fits the segment, and its LSN is the next one expected.
///
/// These constants are part of the format and must not change; a reader rejects versions it
/// does not know.
public enum LogFormat {
    public static let formatVersion: UInt32 = 1
    public static let magic: [UInt8] = Array("SDBLOG\r\n".utf8)
    public static let segmentHeaderBytes = 32
    public static let firstRecordOffset = 4096
    public static let recordHeaderBytes = 24
    public static let segmentSuffix = ".log"
    /// The most a single payload may hold, whatever the segment size.
    public static let maxPayloadBytes = 16 << 20

    public static func segmentName(firstLSN: UInt64) -> String {
        let digits = String(firstLSN)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + segmentSuffix
    }

    /// The first LSN named by a segment file name, or nil if the name is not a segment's.
    public static func firstLSN(ofSegmentNamed name: String) -> UInt64? {
        guard name.hasSuffix(segmentSuffix), name.utf8.count == 20 + segmentSuffix.utf8.count else { return nil }
        let digits = name.dropLast(segmentSuffix.count)
        guard digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return UInt64(digits)
    }

    static func encodeSegmentHeader(firstLSN: UInt64, into page: UnsafeMutableRawBufferPointer) {
        precondition(page.count >= segmentHeaderBytes)
        for (i, byte) in magic.enumerated() { page[i] = byte }
        page.storeLE(formatVersion, at: 8)
        page.storeLE(UInt32(0), at: 12)
        page.storeLE(firstLSN, at: 16)
        let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: page[0..<24]), seed: .logSegmentHeader)
        page.storeLE(sum, at: 24)
    }

    enum HeaderProblem: Error, Equatable {
        case badMagic, badChecksum, unknownVersion(UInt32), lsnMismatch(UInt64)
    }

    static func checkSegmentHeader(_ page: UnsafeRawBufferPointer, expectedFirstLSN: UInt64) -> HeaderProblem? {
        guard page.count >= segmentHeaderBytes else { return .badChecksum }
        for (i, byte) in magic.enumerated() where page[i] != byte { return .badMagic }
        let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: page[0..<24]), seed: .logSegmentHeader)
        if sum != page.loadLE(UInt64.self, at: 24) { return .badChecksum }
        let version = page.loadLE(UInt32.self, at: 8)
        if version != formatVersion { return .unknownVersion(version) }
        let lsn = page.loadLE(UInt64.self, at: 16)
        if lsn != expectedFirstLSN { return .lsnMismatch(lsn) }
        return nil
    }

    /// Writes one record frame and payload at `offset` of `buffer`; returns the bytes written.
    static func encodeRecord(lsn: UInt64, type: UInt16, payload: UnsafeRawBufferPointer,
                             into buffer: UnsafeMutableRawPointer) -> Int {
        let frame = UnsafeMutableRawBufferPointer(start: buffer, count: recordHeaderBytes + payload.count)
        frame.storeLE(UInt32(payload.count), at: 8)
        frame.storeLE(type, at: 12)
        frame.storeLE(UInt16(0), at: 14)
        frame.storeLE(lsn, at: 16)
        if payload.count > 0 {
            (buffer + recordHeaderBytes).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        }
        let sum = Checksum.xxh3(UnsafeRawBufferPointer(start: buffer + 8, count: 16 + payload.count), seed: .logRecord)
        frame.storeLE(sum, at: 0)
        return frame.count
    }
}
