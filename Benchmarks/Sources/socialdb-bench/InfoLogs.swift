// Bytes written to tables by RocksDB and LevelDB, read from their info logs (`LOG`, `LOG.old*`)
// after the measurement: both log every table file they create with its exact size, which their
// C APIs give no counter for (RocksDB's `rocksdb.stats` rounds to 0.1 GB, and its statistics
// object, which has exact counters, also times every operation and would slow the reads).
// Foundation is used here only, outside the timed loops.
import Foundation

enum InfoLogs {
    private static func infoLogLines(_ directory: String) -> [Substring] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var lines: [Substring] = []
        for name in names where name == "LOG" || name.hasPrefix("LOG.old") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            lines += String(decoding: data, as: UTF8.self).split(separator: "\n")
        }
        return lines
    }

    /// The integer that follows `marker` in `line`.
    private static func number(after marker: String, in line: Substring) -> UInt64? {
        guard let range = line.range(of: marker) else { return nil }
        let digits = line[range.upperBound...].prefix { $0.isNumber }
        return UInt64(digits)
    }

    /// RocksDB: `EVENT_LOG_v1 {... "event": "table_file_creation", ..., "file_size": N, ...}`.
    static func rocksDBTableBytes(directory: String) -> UInt64? {
        var total: UInt64 = 0
        var seen = false
        for line in infoLogLines(directory) where line.contains("\"event\": \"table_file_creation\"") {
            if let n = number(after: "\"file_size\": ", in: line) {
                total += n
                seen = true
            }
        }
        return seen ? total : nil
    }

    /// LevelDB: `Level-0 table #N: B bytes OK` (memtable flushes) and
    /// `Generated table #N@L: K keys, B bytes` (compaction outputs).
    static func levelDBTableBytes(directory: String) -> UInt64? {
        var total: UInt64 = 0
        var seen = false
        for line in infoLogLines(directory) {
            if line.contains("Level-0 table #"), line.hasSuffix("bytes OK"), let colon = line.range(of: ": ") {
                if let n = UInt64(line[colon.upperBound...].prefix { $0.isNumber }) { total += n; seen = true }
            } else if line.contains("Generated table #"), let keys = line.range(of: " keys, ") {
                if let n = UInt64(line[keys.upperBound...].prefix { $0.isNumber }) { total += n; seen = true }
            }
        }
        return seen ? total : nil
    }
}
