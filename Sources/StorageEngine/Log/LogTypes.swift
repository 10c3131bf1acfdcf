/// When an appended record counts as acknowledged.
public enum LogSyncPolicy: Sendable, Equatable, CustomStringConvertible {
    /// After fdatasync covers it: survives power loss. Concurrent appenders share one fdatasync.
    case always
    /// After it is written to the operating system (survives kill -9); a background thread
    /// fdatasyncs every `milliseconds`, so power loss loses at most that much.
    case interval(milliseconds: Int)
    /// After it is in the log's memory buffer; written when the buffer fills, on `flush()`,
    /// `sync()` and `close()`. kill -9 may lose the unwritten buffer. For bulk loads.
    case off

    /// Parses `always`, `off`, `interval` (100 ms) or `interval:<ms>`.
    public init?(parsing text: String) {
        let lower = text.lowercased()
        switch lower {
        case "always": self = .always
        case "off": self = .off
        case "interval": self = .interval(milliseconds: 100)
        default:
            let parts = lower.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0] == "interval", let ms = Int(parts[1]), ms > 0, ms <= 60_000 else { return nil }
            self = .interval(milliseconds: ms)
        }
    }

    public var description: String {
        switch self {
        case .always: "always"
        case .off: "off"
        case .interval(let ms): "interval:\(ms)"
        }
    }
}

public struct LogOptions: Sendable {
    public var sync: LogSyncPolicy = .always
    /// A segment rolls when the next record would not fit. Part of no format: may change freely.
    public var segmentSizeBytes: Int = 64 << 20
    /// With `.off`, the buffer is written when it holds this many bytes.
    public var writeBufferBytes: Int = 1 << 20
    /// Reserve each new segment's blocks up front (fewer metadata updates per fdatasync).
    public var preallocate: Bool = true

    public init(sync: LogSyncPolicy = .always, segmentSizeBytes: Int = 64 << 20, writeBufferBytes: Int = 1 << 20, preallocate: Bool = true) {
        precondition(segmentSizeBytes >= 2 * LogFormat.firstRecordOffset, "segments must hold at least one page of records")
        self.sync = sync
        self.segmentSizeBytes = segmentSizeBytes
        self.writeBufferBytes = writeBufferBytes
        self.preallocate = preallocate
    }

    /// The largest payload one record may carry with these options.
    public var maxPayloadBytes: Int {
        min(LogFormat.maxPayloadBytes, segmentSizeBytes - LogFormat.firstRecordOffset - LogFormat.recordHeaderBytes)
    }
}

public enum LogError: Error, Equatable, CustomStringConvertible {
    /// An I/O error. After one while writing, the log is failed: it acknowledges nothing more
    /// until it is closed and reopened (recovery then decides what survived).
    case io(IOError)
    /// Damage that recovery cannot repair by dropping a torn tail (an unknown format version, a
    /// corrupt checkpoint file), or a corrupt record met by a reader.
    case corrupt(String)
    /// A bad argument: record type 0, a payload over the limit, an LSN that does not exist.
    case invalidArgument(String)
    case closed

    public var description: String {
        switch self {
        case .io(let e): "log I/O error: \(e)"
        case .corrupt(let m): "log corrupt: \(m)"
        case .invalidArgument(let m): "invalid log argument: \(m)"
        case .closed: "log is closed"
        }
    }
}

/// What recovery found and did when a log was opened.
public struct LogRecoveryReport: Sendable, CustomStringConvertible {
    public var segmentsScanned = 0
    public var recordsScanned = 0
    /// The first and last LSN present after recovery (last is firstLSN - 1 when empty).
    public var firstLSN: UInt64 = 1
    public var lastLSN: UInt64 = 0
    /// The first problem met, if any: what it was and where.
    public var problem: String?
    /// Bytes of non-zero data past the valid end that were cut off (a torn tail, or records
    /// after a corrupt one).
    public var droppedBytes: UInt64 = 0
    /// Segments set aside, renamed with a `.corrupt-N` suffix, because they follow the problem.
    public var quarantinedSegments: [String] = []
    /// Consumers whose checkpoint is past the recovered end: they applied records that are now
    /// gone (only possible when durable data was damaged).
    public var checkpointsAhead: [String] = []

    public var isClean: Bool { problem == nil && droppedBytes == 0 && quarantinedSegments.isEmpty }

    public var description: String {
        var s = "log recovered: \(segmentsScanned) segments, \(recordsScanned) records, LSN \(firstLSN)...\(lastLSN)"
        if let problem { s += "; problem: \(problem)" }
        if droppedBytes > 0 { s += "; dropped \(droppedBytes) bytes" }
        if !quarantinedSegments.isEmpty { s += "; quarantined \(quarantinedSegments.joined(separator: ", "))" }
        if !checkpointsAhead.isEmpty { s += "; checkpoints past the end: \(checkpointsAhead.joined(separator: ", "))" }
        return s
    }
}

/// A record read back from the log.
public struct LogRecord: Sendable, Equatable {
    public var lsn: UInt64
    public var type: UInt16
    public var payload: [UInt8]

    public init(lsn: UInt64, type: UInt16, payload: [UInt8]) {
        self.lsn = lsn
        self.type = type
        self.payload = payload
    }
}
