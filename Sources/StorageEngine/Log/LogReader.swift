/// Reads the log in LSN order from a starting LSN, for consumers and recovery replay.
///
/// A reader sees records up to what the log has written when `next()` is called, and returns nil
/// when it has caught up; call again later to tail the log. Every record is verified (checksum,
/// LSN order) and a damaged one is an error, never data.
///
/// Not thread-safe: one reader per consumer. Readers may run while appenders write.
public final class LogReader {
    private let log: Log
    private var nextLSN: UInt64
    private var scanner: SegmentScanner?
    private var scannerNextSegmentLSN: UInt64?
    /// The written LSN last asked of the log: records up to it exist, so the log's lock is taken
    /// only when the reader reaches it, not once per record.
    private var knownWrittenLSN: UInt64 = 0

    init(log: Log, from lsn: UInt64) {
        self.log = log
        self.nextLSN = lsn
    }

    /// The LSN of the record `next()` returns next.
    public var position: UInt64 { nextLSN }

    /// Calls `body` with the next record's LSN, type and payload (valid only during the call),
    /// and returns true; returns false when the reader has caught up with the written log.
    public func withNext(_ body: (UInt64, UInt16, UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        guard let (lsn, type, payload) = try advance() else { return false }
        try body(lsn, type, payload)
        return true
    }

    /// The next record, or nil when the reader has caught up with the written log.
    public func next() throws(LogError) -> LogRecord? {
        guard let (lsn, type, payload) = try advance() else { return nil }
        return LogRecord(lsn: lsn, type: type, payload: Array(payload))
    }

    private func advance() throws(LogError) -> (UInt64, UInt16, UnsafeRawBufferPointer)? {
        if nextLSN > knownWrittenLSN { knownWrittenLSN = log.writtenSequenceNumber }
        guard nextLSN <= knownWrittenLSN else { return nil }
        var refreshed = false
        while true {
            if scanner == nil || (scannerNextSegmentLSN.map { nextLSN >= $0 } ?? false) {
                try openSegment()
            }
            let step: SegmentScanner.Step
            do throws(IOError) { step = try scanner!.next() } catch { throw .io(error) }
            switch step {
            case .record(let lsn, let type, let payload):
                if lsn < nextLSN { continue } // skipping to the start position
                precondition(lsn == nextLSN, "scanner skipped an LSN")
                nextLSN += 1
                return (lsn, type, payload)
            case .end:
                // Records up to writtenLSN exist, so they are in the next segment, or in this one
                // past what the scanner had buffered when it read (a reader tailing the log).
                if let following = scannerNextSegmentLSN, following == nextLSN {
                    try openSegment()
                    continue
                }
                if let location = log.segmentLocation(for: nextLSN), location.firstLSN == nextLSN {
                    try openSegment()
                    continue
                }
                if refreshed {
                    throw .corrupt("log ends at LSN \(nextLSN - 1) in a segment, but LSN \(nextLSN) was written")
                }
                refreshed = true
                do throws(IOError) { scanner!.refresh(fileSize: try scanner!.file.size()) } catch { throw .io(error) }
            case .problem(let what):
                throw .corrupt(what)
            }
        }
    }

    private func openSegment() throws(LogError) {
        guard let location = log.segmentLocation(for: nextLSN) else {
            throw .invalidArgument("LSN \(nextLSN) is no longer in the log")
        }
        do throws(IOError) {
            let file = try log.fileSystem.open(location.path, .readOnlyAccess)
            scanner = SegmentScanner(file: file, fileSize: try file.size(), firstLSN: location.firstLSN)
            scannerNextSegmentLSN = location.nextFirstLSN
        } catch {
            throw .io(error)
        }
    }
}
