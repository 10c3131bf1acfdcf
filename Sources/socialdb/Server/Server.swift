import Logging
import NIOCore
import NIOPosix
import Social
import Synchronization

/// `socialdb serve`: the shell's language over TCP. Each connection is a session of its own
/// (format, account); every command runs on a worker pool, never on an event loop, because
/// the engine blocks (fdatasync, reads that miss the cache).
///
/// Life cycle: `start` binds and accepts; `shutdown` stops accepting, lets every connection
/// answer the batch it is running and close, stops the workers, and leaves the database open
/// for the caller to close (which checkpoints). Thread safety: every method may be called from
/// any thread; `connections` is behind a mutex.
final class Server: Sendable {
    struct Configuration: Sendable {
        var host = "127.0.0.1"
        var port = 7420
        var connectionsMax = 1024
        var limits = ConnectionLimits()
        var eventLoopThreads = System.coreCount
        /// Threads that run commands: reads run side by side, writes wait for the writer lock
        /// and the log's fdatasync, so a few more than cores keep reads going while writes wait.
        var workerThreads = max(4, 2 * System.coreCount)
        /// Reads (`Session.runsOnEventLoop`) run on the connection's event loop instead of the
        /// worker pool: no hop between threads, and a pipelined batch of reads answered with one
        /// write. Only while the log's sync policy is not `always`: under `always` a read answers
        /// only after the fdatasync of writes in flight, which must not stall an event loop.
        /// A read that misses the caches reads the disk on the event loop.
        var readsOnEventLoop = true
        /// With `readsOnEventLoop`, the writes of one tweet, like, retweet or follow run there
        /// too (`Session.runsOnEventLoop`), under the same condition: they then wait for the
        /// writer lock and their own apply, never an fdatasync. One hop to the pool and back
        /// per batch holding a post cost more than the post (context switches on 2 cores).
        /// The price: a write stalled behind the writer lock (a checkpoint, an import's batch)
        /// holds up the reads of its event loop meanwhile.
        var writesOnEventLoop = true
        /// Failed logins per client address per window before its AUTHs are refused (0: no limit).
        var loginFailuresPerAddress = 30
        var loginWindowSeconds = 60
    }

    let db: SocialDB
    let configuration: Configuration
    let logger: Logger
    let metrics: ServerMetrics?
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let state = Mutex(State())
    private let loginGuard: LoginGuard

    private struct State {
        var listener: Channel?
        var metricsListener: Channel?
        var connections: [ObjectIdentifier: Channel] = [:]
        var accepted = 0
        var refused = 0
        var shuttingDown = false
    }

    init(db: SocialDB, configuration: Configuration, logger: Logger, metrics: ServerMetrics?) {
        self.db = db
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        pool = NIOThreadPool(numberOfThreads: max(1, configuration.workerThreads))
        loginGuard = LoginGuard(failuresMax: configuration.loginFailuresPerAddress, windowSeconds: configuration.loginWindowSeconds)
    }

    /// Binds the listening socket and starts accepting; returns the bound address (port 0 in
    /// the configuration picks a free port, which tests use).
    func start() throws -> SocketAddress {
        pool.start()
        let limits = configuration.limits
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // A client that shuts down its sending side still gets every answer (`nc -N`).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 256 * 1024))
            .childChannelInitializer { [self] channel in
                self.initialize(channel, limits: limits)
            }
        let listener: Channel
        do {
            listener = try bootstrap.bind(host: configuration.host, port: configuration.port).wait()
        } catch {
            try? pool.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw error
        }
        state.withLock { $0.listener = listener }
        let address = listener.localAddress!
        logger.info("listening", metadata: ["address": "\(address.ipAddress ?? configuration.host):\(address.port ?? configuration.port)", "connections_max": "\(configuration.connectionsMax)",
                                            "workers": "\(configuration.workerThreads)"])
        return address
    }

    private func initialize(_ channel: Channel, limits: ConnectionLimits) -> EventLoopFuture<Void> {
        let admitted = state.withLock { state -> Bool in
            guard !state.shuttingDown, state.connections.count < configuration.connectionsMax else {
                state.refused += 1
                return false
            }
            state.connections[ObjectIdentifier(channel)] = channel
            state.accepted += 1
            return true
        }
        guard admitted else {
            logger.warning("connection refused", metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                                                           "reason": "at --max-connections or shutting down"])
            let line = Response.error(.rateLimited, "the server is at its connection limit (\(configuration.connectionsMax)) or shutting down")
                .render(json: true) + "\n"
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RefusingHandler(line: line))
            }
        }
        metrics?.connectionOpened()
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
            metrics?.connectionClosed()
        }
        let session = Session(db: db, metrics: metrics, peer: channel.remoteAddress?.ipAddress ?? "?", loginGuard: loginGuard)
        let pool = self.pool
        let readsOnEventLoop = configuration.readsOnEventLoop && db.options.sync != .always
        let writesOnEventLoop = configuration.writesOnEventLoop
        return channel.eventLoop.makeCompletedFuture {
            let handlers = channel.pipeline.syncOperations
            if limits.idleSeconds > 0 {
                try handlers.addHandler(IdleStateHandler(readTimeout: .seconds(limits.idleSeconds)))
            }
            try handlers.addHandler(ConnectionHandler(session: session, pool: pool, limits: limits, readsOnEventLoop: readsOnEventLoop,
                                                         writesOnEventLoop: writesOnEventLoop))
        }
    }

    /// Serves `exporter`'s text on `GET /metrics` at host:port (the admin port), on the same
    /// event loops; closed by `shutdown`.
    func startMetrics(host: String, port: Int, exporter: PrometheusExporter) throws -> SocketAddress {
        let listener = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(exporter: exporter))
                }
            }
            .bind(host: host, port: port).wait()
        state.withLock { $0.metricsListener = listener }
        let address = listener.localAddress!
        logger.info("metrics listening", metadata: ["address": "\(address.ipAddress ?? host):\(address.port ?? port)", "path": "/metrics"])
        return address
    }

    /// Connections open now.
    var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Stops accepting, lets each connection finish the commands it is running (their answers
    /// are written) and close, then stops the workers and the event loops. Commands a client
    /// sent that had not started get no answer: they did not happen.
    func shutdown() {
        let (listener, metricsListener, connections) = state.withLock { state -> (Channel?, Channel?, [Channel]) in
            state.shuttingDown = true
            let listener = state.listener
            let metricsListener = state.metricsListener
            state.listener = nil
            state.metricsListener = nil
            return (listener, metricsListener, Array(state.connections.values))
        }
        try? metricsListener?.close().wait()
        guard let listener else { return }
        logger.info("shutting down", metadata: ["connections": "\(connections.count)"])
        try? listener.close().wait()
        for channel in connections {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
        for channel in connections {
            try? channel.closeFuture.wait()
        }
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        logger.info("stopped accepting; every connection answered and closed")
    }
}

/// The one handler of a connection over `--max-connections`: once the connection is up it
/// writes why it is refused and closes it.
final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let line: String

    init(line: String) { self.line = line }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: line))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
