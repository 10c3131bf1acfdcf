import CoreMetrics
import NIOCore
import NIOPosix
import Synchronization

/// A swift-metrics backend that keeps every metric in memory and renders them in Prometheus'
/// text exposition format (version 0.0.4), for `socialdb serve --metrics-listen`.
///
/// Counters are counters; meters and non-aggregating recorders are gauges; timers and
/// aggregating recorders are histograms (timers in seconds, with buckets from 50 µs to 10 s).
/// `beforeRender` runs first on each scrape, so gauges read from the database (log position,
/// cache hit rate) are current. Thread safety: handlers are updated from any thread, each
/// behind its own mutex (an uncontended lock is tens of nanoseconds, below a command's cost);
/// the registry has a mutex of its own.
final class PrometheusExporter: MetricsFactory, Sendable {
    private let registry = Mutex<[String: Family]>([:])
    let beforeRender: @Sendable () -> Void

    init(beforeRender: @escaping @Sendable () -> Void = {}) {
        self.beforeRender = beforeRender
    }

    private struct Family {
        var kind: String
        var help: String?
        var series: [(labels: String, handler: any AnyObject & Sendable)] = []
    }

    /// Upper bounds of the latency histograms, in seconds.
    static let secondsBuckets: [Double] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let valueBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]

    private func register<H: AnyObject & Sendable>(_ label: String, _ dimensions: [(String, String)], kind: String, _ make: () -> H) -> H {
        let name = Self.metricName(label)
        let labels = Self.labels(dimensions)
        return registry.withLock { registry in
            var family = registry[name] ?? Family(kind: kind)
            if let existing = family.series.first(where: { $0.labels == labels })?.handler as? H { return existing }
            let handler = make()
            family.series.append((labels, handler))
            registry[name] = family
            return handler
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler {
        register(label, dimensions, kind: "counter") { PrometheusCounter() }
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> MeterHandler {
        register(label, dimensions, kind: "gauge") { PrometheusGauge() }
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler {
        if aggregate {
            return register(label, dimensions, kind: "histogram") { PrometheusHistogram(buckets: Self.valueBuckets, scale: 1) }
        }
        return register(label, dimensions, kind: "gauge") { PrometheusGauge() }
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler {
        register(label, dimensions, kind: "histogram") { PrometheusHistogram(buckets: Self.secondsBuckets, scale: 1e-9) }
    }

    func destroyCounter(_ handler: CounterHandler) { remove(handler) }
    func destroyMeter(_ handler: MeterHandler) { remove(handler) }
    func destroyRecorder(_ handler: RecorderHandler) { remove(handler) }
    func destroyTimer(_ handler: TimerHandler) { remove(handler) }

    private func remove(_ handler: any AnyObject & Sendable) {
        registry.withLock { registry in
            for (name, var family) in registry {
                family.series.removeAll { $0.handler === handler }
                registry[name] = family.series.isEmpty ? nil : family
            }
        }
    }

    /// The text a scrape gets.
    func render() -> String {
        beforeRender()
        let families = registry.withLock { $0 }
        var out = ""
        for name in families.keys.sorted() {
            let family = families[name]!
            out += "# TYPE \(name) \(family.kind)\n"
            for (labels, handler) in family.series {
                switch handler {
                case let counter as PrometheusCounter:
                    out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(counter.value)\n"
                case let gauge as PrometheusGauge:
                    out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(Self.number(gauge.value))\n"
                case let histogram as PrometheusHistogram:
                    histogram.render(name: name, labels: labels, into: &out)
                default:
                    break
                }
            }
        }
        return out
    }

    /// Prometheus names: `[a-zA-Z_:][a-zA-Z0-9_:]*`; anything else becomes `_`.
    static func metricName(_ label: String) -> String {
        var out = ""
        for (i, c) in label.unicodeScalars.enumerated() {
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" || (i > 0 && c >= "0" && c <= "9")
            out.unicodeScalars.append(ok ? c : "_")
        }
        return out.isEmpty ? "_" : out
    }

    static func labels(_ dimensions: [(String, String)]) -> String {
        dimensions.map { key, value in
            var escaped = ""
            for c in value.unicodeScalars {
                switch c {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.unicodeScalars.append(c)
                }
            }
            return "\(metricName(key))=\"\(escaped)\""
        }.joined(separator: ",")
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

final class PrometheusCounter: CounterHandler, Sendable {
    private let count = Atomic<Int64>(0)
    func increment(by amount: Int64) { count.add(amount, ordering: .relaxed) }
    func reset() { count.store(0, ordering: .relaxed) }
    var value: Int64 { count.load(ordering: .relaxed) }
}

final class PrometheusGauge: MeterHandler, RecorderHandler, Sendable {
    private let bits = Mutex<Double>(0)
    func set(_ value: Int64) { bits.withLock { $0 = Double(value) } }
    func set(_ value: Double) { bits.withLock { $0 = value } }
    func increment(by amount: Double) { bits.withLock { $0 += amount } }
    func decrement(by amount: Double) { bits.withLock { $0 -= amount } }
    func record(_ value: Int64) { set(value) }
    func record(_ value: Double) { set(value) }
    var value: Double { bits.withLock { $0 } }
}

/// Cumulative buckets as Prometheus wants them are made at render time; updates touch one bucket.
final class PrometheusHistogram: TimerHandler, RecorderHandler, Sendable {
    private struct State {
        var counts: [Int64]
        var sum: Double = 0
        var count: Int64 = 0
    }

    let buckets: [Double]
    /// Multiplies recorded values into the unit of the buckets (nanoseconds to seconds: 1e-9).
    let scale: Double
    private let state: Mutex<State>

    init(buckets: [Double], scale: Double) {
        self.buckets = buckets
        self.scale = scale
        state = Mutex(State(counts: [Int64](repeating: 0, count: buckets.count + 1)))
    }

    func recordNanoseconds(_ duration: Int64) { observe(Double(duration) * scale) }
    func record(_ value: Int64) { observe(Double(value) * scale) }
    func record(_ value: Double) { observe(value * scale) }

    private func observe(_ value: Double) {
        var index = buckets.count
        for (i, bound) in buckets.enumerated() where value <= bound {
            index = i
            break
        }
        state.withLock { state in
            state.counts[index] += 1
            state.sum += value
            state.count += 1
        }
    }

    func render(name: String, labels: String, into out: inout String) {
        let snapshot = state.withLock { $0 }
        let prefix = labels.isEmpty ? "" : labels + ","
        var cumulative: Int64 = 0
        for (i, bound) in buckets.enumerated() {
            cumulative += snapshot.counts[i]
            out += "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(snapshot.count)\n"
        out += "\(name)_sum\(labels.isEmpty ? "" : "{\(labels)}") \(snapshot.sum)\n"
        out += "\(name)_count\(labels.isEmpty ? "" : "{\(labels)}") \(snapshot.count)\n"
    }
}

/// The admin port: answers `GET /metrics` (and `GET /`) with the exporter's text over HTTP/1.1,
/// one request per connection. A request head over 8 KiB, or anything else, is answered 400/404
/// and closed.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let exporter: PrometheusExporter
    private var head: [UInt8] = []
    private var answered = false

    init(exporter: PrometheusExporter) { self.exporter = exporter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        let bytes = unwrapInboundIn(data)
        head.append(contentsOf: bytes.readableBytesView)
        guard let end = Self.endOfHead(head) else {
            if head.count > 8192 { respond(context, status: "400 Bad Request", body: "request head too large\n") }
            return
        }
        let requestLine = String(decoding: head[..<(head.firstIndex(of: 13) ?? end)], as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        if parts.count >= 2 && parts[0] == "GET" && (parts[1] == "/metrics" || parts[1] == "/") {
            respond(context, status: "200 OK", body: exporter.render())
        } else {
            respond(context, status: "404 Not Found", body: "GET /metrics\n")
        }
    }

    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func respond(_ context: ChannelHandlerContext, status: String, body: String) {
        answered = true
        let text = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
