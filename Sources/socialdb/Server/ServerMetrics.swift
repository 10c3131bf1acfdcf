import CoreMetrics
import Metrics

/// The server's metrics, made once through the swift-metrics API (whatever backend
/// `MetricsSystem` was bootstrapped with; `socialdb serve --metrics-listen` installs
/// `PrometheusExporter`). Per verb: commands, failed commands, and a latency timer.
final class ServerMetrics: Sendable {
    private struct PerVerb: Sendable {
        let commands: Counter
        let failures: Counter
        let latency: Timer
    }

    private let verbs: [String: PerVerb]
    private let other: PerVerb
    private let connectionsOpen: Meter
    private let connectionsAccepted: Counter

    /// The verbs that get their own series; anything else counts as `OTHER`.
    static let knownVerbs: [String] = commandTable.map(\.verb) + ["EXIT", "FORMAT", "PASSWORD"]

    init() {
        func make(_ verb: String) -> PerVerb {
            PerVerb(commands: Counter(label: "socialdb_commands_total", dimensions: [("verb", verb)]),
                    failures: Counter(label: "socialdb_command_errors_total", dimensions: [("verb", verb)]),
                    latency: Timer(label: "socialdb_command_duration_seconds", dimensions: [("verb", verb)]))
        }
        var verbs: [String: PerVerb] = [:]
        for verb in Self.knownVerbs { verbs[verb] = make(verb) }
        self.verbs = verbs
        other = make("OTHER")
        connectionsOpen = Meter(label: "socialdb_connections_open")
        connectionsAccepted = Counter(label: "socialdb_connections_accepted_total")
    }

    func count(verb: String, nanoseconds: UInt64, failed: Bool) {
        let series = verbs[verb] ?? other
        series.commands.increment()
        if failed { series.failures.increment() }
        series.latency.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func connectionOpened() {
        connectionsOpen.increment()
        connectionsAccepted.increment()
    }

    func connectionClosed() { connectionsOpen.decrement() }
}
