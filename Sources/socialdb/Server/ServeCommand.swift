import ArgumentParser
import Logging
import Social

#if canImport(Glibc)
import Glibc
#endif

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the shell's language over TCP to many clients (one response line per command line).",
        discussion: """
        Each connection sends command lines and gets one response per command, in order; pipelining is \
        allowed. Responses are the shell's --json lines until the connection sends FORMAT text. \
        SIGTERM or SIGINT: stop accepting, answer the commands running, checkpoint, close. \
        Prints `listening HOST:PORT` on standard output once it accepts (port 0 picks a free one).
        """
    )

    /// The hydration caches' budget when `--tweet-cache-size` is not given: a server answers
    /// pages to many clients, whose working set of recent tweets is larger than one app's
    /// (each of the two caches; `SocialOptions.tweetCacheBytes` is 64 MiB embedded).
    static let tweetCacheBytesDefault = 256 << 20

    @OptionGroup var database: DatabaseOptions

    @Option(name: .long, help: "HOST:PORT to listen on.")
    var listen = "127.0.0.1:7420"

    @Option(name: .customLong("max-connections"), help: "Connections open at once; more are refused with rate_limited.")
    var maxConnections = 1024

    @Option(name: .customLong("max-line-bytes"), help: "Longest command line; longer ones are answered too_long and dropped.")
    var maxLineBytes = 64 * 1024

    @Option(name: .customLong("max-pending"), help: "Command lines of one connection waiting for their answer before the server stops reading it.")
    var maxPending = 256

    @Option(name: .customLong("idle-seconds"), help: "Close a connection that sends nothing for this long (0: never).")
    var idleSeconds = 300

    @Option(name: .customLong("worker-threads"), help: "Threads that run commands (default: twice the cores, at least 4).")
    var workerThreads: Int?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(name: .customLong("metrics-listen"), help: "HOST:PORT of the admin port that serves Prometheus metrics on GET /metrics (off unless given).")
    var metricsListen: String?

    @Option(name: .customLong("admin-password"), help: "At the first start: make the admin account (user admin) with this password. $SOCIALDB_ADMIN_PASSWORD does the same without showing it in the process list.")
    var adminPassword: String?

    @Option(name: .customLong("password-cost"), help: "log2 of scrypt's N for new password hashes (default 15: 32 MiB and tens of milliseconds a hash; tests use less).")
    var passwordCost = PasswordHashing().log2N

    @Option(name: .customLong("login-failures-per-address"), help: "Failed logins per client address per minute before its AUTHs are refused without hashing (0: no limit).")
    var loginFailuresPerAddress = 30

    @Option(name: .customLong("rate-window-seconds"), help: "The fixed window of the per-user rate limits.")
    var rateWindowSeconds = RateLimits.server.windowSeconds

    @Option(name: .customLong("rate-writes"), help: "Writes per user per window (0: no limit).")
    var rateWrites = RateLimits.server.writesPerWindow

    @Option(name: .customLong("rate-auth-failures"), help: "Failed logins per handle per window (0: no limit).")
    var rateAuthFailures = RateLimits.server.authFailuresPerWindow

    func validate() throws {
        guard Self.parseHostPort(listen) != nil else { throw ValidationError("--listen must be HOST:PORT, not '\(listen)'") }
        if let metricsListen, Self.parseHostPort(metricsListen) == nil {
            throw ValidationError("--metrics-listen must be HOST:PORT, not '\(metricsListen)'")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard maxLineBytes >= 64 else { throw ValidationError("--max-line-bytes must be at least 64") }
        guard maxPending >= 1 else { throw ValidationError("--max-pending must be at least 1") }
        guard idleSeconds >= 0 else { throw ValidationError("--idle-seconds must not be negative") }
        if let workerThreads, workerThreads < 1 { throw ValidationError("--worker-threads must be at least 1") }
        guard loginFailuresPerAddress >= 0 else { throw ValidationError("--login-failures-per-address must not be negative") }
        guard passwordCost >= 10 && passwordCost <= 20 else { throw ValidationError("--password-cost must be 10 to 20") }
        guard rateWindowSeconds >= 1 else { throw ValidationError("--rate-window-seconds must be at least 1") }
        guard rateWrites >= 0 && rateAuthFailures >= 0 else { throw ValidationError("rate limits must not be negative") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
    }

    static func parseHostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), port >= 0, port <= 65535 else { return nil }
        return (host, port)
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = LogfmtLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "socialdb.serve")
        // Signals go to the thread that waits for them below: block them before any thread
        // starts, so every thread inherits the mask and none is interrupted by them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let limits = RateLimits(windowSeconds: rateWindowSeconds, writesPerWindow: rateWrites, authFailuresPerWindow: rateAuthFailures,
                                postsPerDay: RateLimits.server.postsPerDay, followsPerDay: RateLimits.server.followsPerDay,
                                likesPerDay: RateLimits.server.likesPerDay)
        let cost = passwordCost
        let tweetCacheBytes = database.tweetCacheSize ?? Self.tweetCacheBytesDefault
        let db = try database.open {
            $0.rateLimits = limits
            $0.tweetCacheBytes = tweetCacheBytes
            $0.passwordHashing = PasswordHashing(log2N: cost)
        }
        let password = adminPassword ?? getenv("SOCIALDB_ADMIN_PASSWORD").map { String(cString: $0) }
        do {
            if let password {
                if try db.ensureAdmin(password: password) {
                    logger.notice("made the admin account", metadata: ["user": "\(SocialDB.adminHandle)"])
                } else {
                    logger.info("the admin account exists; the admin password given is not used", metadata: ["user": "\(SocialDB.adminHandle)"])
                }
            } else if try !db.hasAdmin() {
                logger.warning("no admin account: give --admin-password (or $SOCIALDB_ADMIN_PASSWORD) once to make one")
            }
        } catch {
            printError("socialdb serve: cannot make the admin account: \(error)")
            try? db.close()
            throw ExitCode(2)
        }
        logger.info("opened", metadata: ["data": "\(database.directory)", "sync": "\(database.sync)",
                                         "io": "\(db.engine.fileSystem.backend.rawValue)"])
        let (host, port) = Self.parseHostPort(listen)!
        var configuration = Server.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.connectionsMax = maxConnections
        configuration.limits.lineBytesMax = maxLineBytes
        configuration.limits.pendingLinesMax = maxPending
        configuration.limits.idleSeconds = Int64(idleSeconds)
        if let workerThreads { configuration.workerThreads = workerThreads }
        configuration.loginFailuresPerAddress = loginFailuresPerAddress
        var exporter: PrometheusExporter?
        if metricsListen != nil {
            exporter = PrometheusExporter.forServer(db: db)
        }
        let server = Server(db: db, configuration: configuration, logger: logger, metrics: exporter.map { ServerMetrics(factory: $0) })
        let address: String
        do {
            let bound = try server.start()
            address = "\(bound.ipAddress ?? host):\(bound.port ?? port)"
        } catch {
            printError("socialdb serve: cannot listen on \(listen): \(error)")
            try? db.close()
            throw ExitCode(2)
        }
        if let exporter, let metricsListen, let (metricsHost, metricsPort) = Self.parseHostPort(metricsListen) {
            do {
                _ = try server.startMetrics(host: metricsHost, port: metricsPort, exporter: exporter)
            } catch {
                printError("socialdb serve: cannot listen on \(metricsListen) for metrics: \(error)")
                server.shutdown()
                try? db.close()
                throw ExitCode(2)
            }
        }
        writeOut("listening \(address)\n")

        var received: Int32 = 0
        sigwait(&signals, &received)
        logger.info("signal received", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
        server.shutdown()
        do {
            try db.close()
        } catch {
            logger.error("closing the database failed", metadata: ["error": "\(error)"])
            throw ExitCode(2)
        }
        logger.info("closed", metadata: ["data": "\(database.directory)"])
    }
}

