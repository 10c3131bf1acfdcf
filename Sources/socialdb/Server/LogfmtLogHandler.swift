import Logging

#if canImport(Glibc)
import Glibc
#endif

/// swift-log's backend for `socialdb serve`: one logfmt line per event on standard error,
/// `ts=2026-12-02T09:30:00.000Z level=info logger=socialdb.serve msg="listening" address=...`,
/// which people read and log shippers parse.
struct LogfmtLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let milliseconds = UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
        var line = "ts=\(TimeFormat.iso8601(milliseconds)) level=\(event.level) logger=\(label) msg="
        JSONValue.quote(event.message.description, into: &line)
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() {
            line += " \(key)="
            let value = "\(all[key]!)"
            if value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || value.isEmpty {
                JSONValue.quote(value, into: &line)
            } else {
                line += value
            }
        }
        writeAll(2, line + "\n")
    }
}
