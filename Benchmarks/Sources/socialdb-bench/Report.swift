// Rows, the printed table and the JSON file: the benchmark contract of Docs and the brief.
//
// Every suite returns `ResultRow`s; the table and the JSON file show the same rows. Foundation
// is used here only, after the measurements, for formatting and JSON.
import Foundation

/// One extra figure of a row (bytes per second, fdatasyncs, ...), in a fixed order.
struct Metric: Sendable {
    /// The key in the JSON file's `metrics` object (snake_case).
    var key: String
    /// The name in the table's extra-metrics column.
    var label: String
    var value: Double
    /// Decimals shown in the table; the JSON file has the full value.
    var decimals: Int = 0
}

/// One row of a suite's table.
struct ResultRow: Sendable {
    var suite: String
    var workload: String
    var system: String
    var operationsPerSecond: Double
    var p50Microseconds: Double?
    var p99Microseconds: Double?
    /// socialdb / peer for the figure the issue compares, nil where the row has no peer.
    var ratioVersusPeer: Double?
    var metrics: [Metric] = []
}

/// A target of an issue, checked against the measurements of the same run.
struct TargetCheck: Sendable {
    /// What is compared with what, in words.
    var description: String
    var measured: Double
    var threshold: Double
    /// How to print `measured` and `threshold`: a ratio (`0.62x`) or a rate (`2,100,000/s`).
    var isRatio: Bool
    /// The target is a ceiling (`measured <= threshold`), not a floor.
    var atMost: Bool = false

    var passed: Bool { atMost ? measured <= threshold : measured >= threshold }
}

/// What one suite produced: its rows, its target checks and notes to print below the table.
struct SuiteResult: Sendable {
    var rows: [ResultRow] = []
    var targets: [TargetCheck] = []
    var notes: [String] = []
}

enum Format {
    /// A number with thousands separators and `decimals` decimals: 2,345,678.9.
    static func grouped(_ value: Double, decimals: Int = 0) -> String {
        guard value.isFinite else { return "-" }
        let text = String(format: "%.\(decimals)f", abs(value))
        let parts = text.split(separator: ".", maxSplits: 1)
        let digits = Array(parts[0])
        var integer = ""
        for (i, digit) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { integer.append(",") }
            integer.append(digit)
        }
        let sign = value < 0 ? "-" : ""
        return parts.count > 1 ? "\(sign)\(integer).\(parts[1])" : "\(sign)\(integer)"
    }

    /// Rates: no decimals from 100 up, else two significant decimals.
    static func rate(_ value: Double) -> String {
        value >= 100 ? grouped(value) : grouped(value, decimals: 2)
    }

    /// Latencies in microseconds: one decimal.
    static func microseconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return grouped(value, decimals: value >= 1000 ? 0 : 1)
    }

    static func ratio(_ value: Double?) -> String {
        guard let value else { return "-" }
        return String(format: value >= 10 ? "%.1fx" : "%.2fx", value)
    }

    static func metrics(_ metrics: [Metric]) -> String {
        metrics.map { "\($0.label) \(grouped($0.value, decimals: $0.decimals))" }.joined(separator: ", ")
    }
}

enum Report {
    /// Prints rows as an aligned table: text columns left-aligned, numbers right-aligned.
    static func printTable(_ rows: [ResultRow]) {
        let header = ["suite", "workload", "system", "ops/s", "p50 us", "p99 us", "extra metrics", "ratio vs peer"]
        let rightAligned: Set<Int> = [3, 4, 5, 7]
        let cells = rows.map { row in
            [row.suite, row.workload, row.system, Format.rate(row.operationsPerSecond),
             Format.microseconds(row.p50Microseconds), Format.microseconds(row.p99Microseconds),
             Format.metrics(row.metrics), Format.ratio(row.ratioVersusPeer)]
        }
        var widths = header.map(\.count)
        for line in cells {
            for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ line: [String]) -> String {
            line.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: " | ")
        }
        print(render(header))
        print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "-|-"))
        for line in cells { print(render(line)) }
    }

    static func printTargets(_ targets: [TargetCheck]) {
        guard !targets.isEmpty else { return }
        print("targets (computed from the measurements above):")
        for target in targets {
            let measured = target.isRatio ? Format.ratio(target.measured) : Format.rate(target.measured) + "/s"
            let threshold = target.isRatio ? Format.ratio(target.threshold) : Format.rate(target.threshold) + "/s"
            print("  \(target.passed ? "PASS" : "MISS")  \(target.description): \(measured) (target \(target.atMost ? "<=" : ">=") \(threshold))")
        }
    }

    /// Writes the rows as a JSON array of objects with the keys of the benchmark contract.
    static func writeJSON(_ rows: [ResultRow], to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(rows.map(JSONRow.init))
        try data.write(to: URL(fileURLWithPath: path))
    }

    private struct JSONRow: Encodable {
        var row: ResultRow

        enum Key: String, CodingKey {
            case suite, workload, system, ops_per_sec, p50_us, p99_us, ratio_vs_peer, metrics
        }

        struct MetricKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(row.suite, forKey: .suite)
            try container.encode(row.workload, forKey: .workload)
            try container.encode(row.system, forKey: .system)
            try container.encode(finite(row.operationsPerSecond), forKey: .ops_per_sec)
            // Optionals are written as null, never left out: the contract lists every key.
            try container.encode(row.p50Microseconds.flatMap(finite), forKey: .p50_us)
            try container.encode(row.p99Microseconds.flatMap(finite), forKey: .p99_us)
            try container.encode(row.ratioVersusPeer.flatMap(finite), forKey: .ratio_vs_peer)
            var metrics = container.nestedContainer(keyedBy: MetricKey.self, forKey: .metrics)
            for metric in row.metrics {
                try metrics.encode(finite(metric.value), forKey: MetricKey(stringValue: metric.key))
            }
        }

        /// JSON has no infinity or NaN: such a value is written as null.
        private func finite(_ value: Double) -> Double? { value.isFinite ? value : nil }
    }
}
