import CoreMetrics
import Metrics
import Social
import Synchronization

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

    /// `factory`: the backend (the server's `PrometheusExporter`); passed rather than taken
    /// from `MetricsSystem`, which a process can bootstrap only once.
    init(factory: MetricsFactory) {
        func make(_ verb: String) -> PerVerb {
            PerVerb(commands: Counter(label: "socialdb_commands_total", dimensions: [("verb", verb)], factory: factory),
                    failures: Counter(label: "socialdb_command_errors_total", dimensions: [("verb", verb)], factory: factory),
                    latency: Timer(label: "socialdb_command_duration_seconds", dimensions: [("verb", verb)], factory: factory))
        }
        var verbs: [String: PerVerb] = [:]
        for verb in Self.knownVerbs { verbs[verb] = make(verb) }
        self.verbs = verbs
        other = make("OTHER")
        connectionsOpen = Meter(label: "socialdb_connections_open", factory: factory)
        connectionsAccepted = Counter(label: "socialdb_connections_accepted_total", factory: factory)
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

/// Gauges read from the database at each scrape: the log position, the block cache, the
/// graph and the users.
final class DatabaseGauges: Sendable {
    let db: SocialDB
    let nextLSN, durableLSN, logSegments, fdatasyncs: Gauge
    let cacheHits, cacheMisses, cacheHitRatio, cacheBytes, tableBytes, mmapFallbacks, graphEdges, users: Gauge

    init(db: SocialDB, factory: MetricsFactory) {
        self.db = db
        func gauge(_ label: String) -> Gauge { Gauge(label: label, factory: factory) }
        nextLSN = gauge("socialdb_log_next_lsn")
        durableLSN = gauge("socialdb_log_durable_lsn")
        logSegments = gauge("socialdb_log_segments")
        fdatasyncs = gauge("socialdb_log_fdatasyncs")
        cacheHits = gauge("socialdb_cache_hits")
        cacheMisses = gauge("socialdb_cache_misses")
        cacheHitRatio = gauge("socialdb_cache_hit_ratio")
        cacheBytes = gauge("socialdb_cache_bytes")
        tableBytes = gauge("socialdb_lsm_table_bytes")
        mmapFallbacks = gauge("socialdb_lsm_mmap_fallbacks")
        graphEdges = gauge("socialdb_graph_edges")
        users = gauge("socialdb_users")
    }

    func update() {
        let log = db.engine.log.statistics
        nextLSN.record(Int64(clamping: log.nextLSN))
        durableLSN.record(Int64(clamping: log.durableLSN))
        logSegments.record(log.segments)
        fdatasyncs.record(Int64(clamping: log.fdatasyncs))
        let tree = db.engine.tree.statistics
        cacheHits.record(Int64(clamping: tree.cacheHits))
        cacheMisses.record(Int64(clamping: tree.cacheMisses))
        cacheHitRatio.record(tree.cacheHitRate)
        cacheBytes.record(tree.cacheBytes)
        tableBytes.record(Int64(clamping: tree.tableBytes))
        mmapFallbacks.record(tree.mmapFallbacks)
        graphEdges.record(db.engine.graph.statistics().edges)
        users.record((try? db.userCount()) ?? 0)
    }
}

extension PrometheusExporter {
    /// The exporter of `socialdb serve`: the database's gauges refreshed before each scrape.
    static func forServer(db: SocialDB) -> PrometheusExporter {
        let gauges = Mutex<DatabaseGauges?>(nil)
        let exporter = PrometheusExporter(beforeRender: { gauges.withLock { $0 }?.update() })
        gauges.withLock { $0 = DatabaseGauges(db: db, factory: exporter) }
        return exporter
    }
}
