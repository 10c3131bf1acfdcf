import Foundation
import Logging
import Social
import StorageEngine
import Synchronization
import Testing
@testable import socialdb

#if canImport(Glibc)
import Glibc
#endif

/// A client of `socialdb serve` for tests: a blocking TCP socket on 127.0.0.1 that sends raw
/// bytes and reads response lines.
/// `@unchecked Sendable`: one thread may send while another reads (the socket allows it;
/// `received` is the reader's alone).
final class TestClient: @unchecked Sendable {
    let fd: Int32
    private var received: [UInt8] = []

    init(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // Closed here, before `self.fd` is set: a class whose stored properties are all set
        // runs deinit when its init throws, and a second close could close another test's
        // file that reused the number (seen as EBADF in a log write of a test running alongside).
        guard status == 0 else {
            let error = errno
            close(fd)
            throw TestClientError.connect(error)
        }
        self.fd = fd
    }

    enum TestClientError: Error { case connect(Int32), closed }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// The next line, or nil when the server closed the connection first.
    func readLine() -> String? {
        while true {
            if let newline = received.firstIndex(of: 10) {
                let line = String(decoding: received[..<newline], as: UTF8.self)
                received.removeFirst(newline + 1)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            received.append(contentsOf: chunk[..<n])
        }
    }

    func lines(_ count: Int) -> [String] {
        var out: [String] = []
        for _ in 0..<count {
            guard let line = readLine() else { break }
            out.append(line)
        }
        return out
    }

    /// One command, one JSON response.
    func command(_ line: String) -> String {
        send(line + "\n")
        return readLine() ?? "<closed>"
    }

    /// Reads until the server closes; returns the lines it sent before.
    func readToEnd() -> [String] {
        var out: [String] = []
        while let line = readLine() { out.append(line) }
        return out
    }
}

/// A server on a free port of 127.0.0.1 over a fresh database, shut down at the end.
/// `@unchecked Sendable`: threads of a test share it read-only (its fields never change).
final class TestServer: @unchecked Sendable {
    let database: TestDatabase
    let server: Server
    let port: Int
    /// The admin port's, when made `withMetrics`.
    private(set) var metricsPort: Int?

    init(options: SocialOptions = ServerAuthTests.options(), withMetrics: Bool = false,
         configure: (inout Server.Configuration) -> Void = { _ in }) throws {
        database = try TestDatabase(options: options)
        try database.db.ensureAdmin(password: Self.adminPassword)
        var configuration = Server.Configuration()
        configuration.port = 0
        configuration.eventLoopThreads = 2
        configuration.workerThreads = 3
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let exporter = withMetrics ? PrometheusExporter.forServer(db: database.db) : nil
        server = Server(db: database.db, configuration: configuration, logger: logger, metrics: exporter.map { ServerMetrics(factory: $0) })
        port = try server.start().port!
        if let exporter { metricsPort = try server.startMetrics(host: "127.0.0.1", port: 0, exporter: exporter).port! }
    }

    var db: SocialDB { database.db }

    static let adminPassword = "admin-password"

    /// A connection logged in as the admin (who may write as anyone).
    func client() throws -> TestClient {
        let client = try TestClient(port: port)
        let login = client.command("AUTH admin \(Self.adminPassword)")
        precondition(isOK(login), login)
        return client
    }

    /// A connection that has not logged in.
    func anonymousClient() throws -> TestClient { try TestClient(port: port) }

    deinit { server.shutdown() }
}

func isOK(_ line: String) -> Bool { line.hasPrefix("{\"ok\":true") }
func errorCode(_ line: String) -> String? {
    guard let range = line.range(of: "\"code\":\"") else { return nil }
    return String(line[range.upperBound...].prefix { $0 != "\"" })
}

/// `socialdb serve` over real sockets on 127.0.0.1. No test measures time: waits are for
/// answers or for the server to close a connection.
@Suite struct ServerTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func pipelinedCommandsAreAnsweredInOrder() throws {
        let t = try TestServer()
        let c = try t.client()
        var script = ""
        for i in 0..<300 { script += "USER ADD u\(i)\n" }
        for i in 0..<300 { script += "USER SHOW u\(i)\n" }
        c.send(script)
        let answers = c.lines(600)
        #expect(answers.count == 600)
        for (i, line) in answers.enumerated() {
            #expect(isOK(line), "\(line)")
            #expect(line.contains("\"handle\":\"u\(i % 300)\""), "answer \(i) out of order: \(line)")
        }
    }

    /// Reads and small writes run on the event loop (`--sync off` or `interval`), the rest on
    /// the workers: a pipeline that mixes them, in both formats, is answered in order, each read
    /// seeing the writes sent before it, with the same bytes as when every command runs on the
    /// workers (`--sync always`, or `readsOnEventLoop` off) and as when only reads run on the
    /// event loop (`writesOnEventLoop` off).
    @Test func pipelinedReadsAndWritesAreAnsweredTheSameWhereverTheyRun() throws {
        var transcripts: [[String]] = []
        for (sync, reads, writes) in [(LogSyncPolicy.always, true, true), (.off, true, true), (.interval(milliseconds: 5), true, true),
                                      (.off, true, false), (.off, false, false)] {
            var options = ServerAuthTests.options()
            options.sync = sync
            let t = try TestServer(options: options) {
                $0.readsOnEventLoop = reads
                $0.writesOnEventLoop = writes
            }
            let c = try t.client()
            var script = "USER ADD a\nUSER ADD b\nFOLLOW b a\n"
            for i in 0..<40 {
                script += "POST a \"post \(i) #p\"\nHOME b LIMIT 1\nTWEETS a LIMIT 2\nLIKE b \(i)\nFORMAT text\nHOME b LIMIT 1\nFORMAT json\n"
            }
            script += "HOME b LIMIT 50\nSEARCH #p LIMIT 3\n"
            c.send(script)
            var lines: [String] = []
            for _ in 0..<3 { lines.append(c.readLine() ?? "<closed>") }
            for i in 0..<40 {
                for _ in 0..<4 { lines.append(c.readLine() ?? "<closed>") }
                #expect(lines[lines.count - 3].contains("\"text\":\"post \(i) #p\""), "\(sync): HOME after post \(i): \(lines[lines.count - 3])")
                // FORMAT text, the text page, FORMAT json: each a text answer ended by a line ".".
                for _ in 0..<2 {
                    while let line = c.readLine(), line != "." { lines.append(line) }
                    lines.append(".")
                }
                lines.append(c.readLine() ?? "<closed>")
                #expect(lines.contains { $0.contains("  post \(i) #p") }, "\(sync): text HOME after post \(i)")
            }
            for _ in 0..<2 { lines.append(c.readLine() ?? "<closed>") }
            #expect(lines.last?.hasPrefix("{\"ok\":true,\"query\"") == true, "\(lines.last ?? "")")
            transcripts.append(lines)
        }
        for other in transcripts.dropFirst() { #expect(other == transcripts[0]) }
    }

    @Test func manyClientsAtOnce() throws {
        let t = try TestServer()
        let setup = try t.client()
        #expect(isOK(setup.command("USER ADD star")))
        let clients = 24
        let failures = Mutex<[String]>([])
        let threads = (0..<clients).map { i in
            TestThread {
                do {
                    let c = try t.client()
                    guard isOK(c.command("USER ADD fan\(i)")), isOK(c.command("FOLLOW fan\(i) star")) else {
                        failures.withLock { $0.append("setup of fan\(i)") }
                        return
                    }
                    for k in 0..<10 {
                        let post = c.command("POST fan\(i) \"note \(k) of fan\(i)\"")
                        let home = c.command("TWEETS fan\(i) LIMIT 1")
                        if !isOK(post) || !home.contains("note \(k) of fan\(i)") { failures.withLock { $0.append("fan\(i) \(k): \(post) / \(home)") } }
                    }
                } catch {
                    failures.withLock { $0.append("fan\(i): \(error)") }
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(failures.withLock { $0 } == [])
        #expect(setup.command("USER SHOW star").contains("\"followers\":\(clients)"))
    }

    /// Many connections pipelining writes and reads at once: the jobs their writes start in one
    /// round of an event loop share one work item of the pool (`PoolJobs`), and still each
    /// connection's answers come in its commands' order, each read seeing that connection's
    /// writes before it; a connection that quits in the middle of a shared round leaves the
    /// others' answers whole.
    @Test func pipelinedWritesOfManyConnectionsAreAnsweredInEachOnesOrder() throws {
        let t = try TestServer()
        let setup = try t.client()
        let clients = 16, rounds = 30
        for i in 0..<clients { #expect(isOK(setup.command("USER ADD pipe\(i)"))) }
        let connections = try (0..<clients).map { _ in try t.client() }
        // Everything is sent before anything is read, so the writes of many connections wait
        // in the event loops at the same time.
        for (i, c) in connections.enumerated() {
            var script = ""
            for k in 0..<rounds {
                script += "POST pipe\(i) \"note \(k) of pipe\(i)\"\nTWEETS pipe\(i) LIMIT 1\nHOME pipe\(i) LIMIT 1\n"
                if i == 3 && k == rounds / 2 { script += "QUIT\n" }
            }
            c.send(script)
        }
        for (i, c) in connections.enumerated() {
            let answered = i == 3 ? rounds / 2 + 1 : rounds
            for k in 0..<answered {
                let post = c.readLine() ?? "<closed>", tweets = c.readLine() ?? "<closed>", home = c.readLine() ?? "<closed>"
                #expect(isOK(post) && post.contains("note \(k) of pipe\(i)"), "pipe\(i) \(k): \(post)")
                #expect(tweets.contains("note \(k) of pipe\(i)"), "pipe\(i) \(k): \(tweets)")
                #expect(home.contains("note \(k) of pipe\(i)"), "pipe\(i) \(k): \(home)")
            }
            if i == 3 {
                #expect(c.readLine()?.contains("\"ok\":true") == true) // QUIT's answer
                #expect(c.readLine() == nil)
            }
        }
        #expect(setup.command("USER SHOW pipe0").contains("\"tweets\":\(rounds)"))
    }

    @Test func aCommandSplitOverManySegmentsIsOneCommand() throws {
        let t = try TestServer()
        let c = try t.client()
        for byte in Array("USER ADD slow\r\n".utf8) { c.send([byte]) }
        let answer = c.readLine() ?? ""
        #expect(isOK(answer) && answer.contains("\"handle\":\"slow\""), "\(answer)")
        c.send("USER SH")
        c.send("OW sl")
        c.send("ow\nUSER SHOW slow\n")
        #expect(c.lines(2).allSatisfy { $0.contains("\"handle\":\"slow\"") })
    }

    @Test func anOversizedLineIsTooLongAndTheConnectionGoesOn() throws {
        let t = try TestServer { $0.limits.lineBytesMax = 1024 }
        let c = try t.client()
        let before = t.database.nextLSN
        c.send("POST x " + String(repeating: "a", count: 5000) + "\n")
        c.send(String(repeating: "b", count: 3000))
        c.send(String(repeating: "b", count: 3000) + "\nUSER ADD after\n")
        let answers = c.lines(3)
        #expect(errorCode(answers[0]) == "too_long")
        #expect(errorCode(answers[1]) == "too_long")
        #expect(t.database.nextLSN == before + 1)
        #expect(isOK(answers[2]))
    }

    @Test func binaryGarbageGetsErrorsAndChangesNothing() throws {
        let t = try TestServer()
        let c = try t.client()
        #expect(isOK(c.command("USER ADD keep")))
        let before = t.database.nextLSN
        var random = TestRandom(seed: 11)
        var garbage: [UInt8] = []
        var lines = 0
        for _ in 0..<2000 {
            let byte = UInt8(truncatingIfNeeded: random.next())
            // Keep the garbage free of words that would be valid commands: no letters.
            if (65...90).contains(byte) || (97...122).contains(byte) { continue }
            garbage.append(byte)
        }
        garbage.append(10)
        // Lines that are blank or start with -- get no answer; count the others.
        var start = 0
        for (i, byte) in garbage.enumerated() where byte == 10 {
            var line = Array(garbage[start..<i])
            if line.last == 13 { line.removeLast() }
            let trimmed = line.drop { $0 == 32 || $0 == 9 }
            if !trimmed.isEmpty && !trimmed.starts(with: [45, 45]) { lines += 1 }
            start = i + 1
        }
        c.send(garbage)
        let answers = c.lines(lines)
        #expect(answers.count == lines)
        #expect(answers.allSatisfy { errorCode($0) != nil }, "\(answers.filter { errorCode($0) == nil })")
        #expect(t.database.nextLSN == before)
        #expect(c.command("USER SHOW keep").contains("\"handle\":\"keep\""))
    }

    @Test func abruptDisconnectsLeaveTheServerServing() throws {
        let t = try TestServer()
        for i in 0..<20 {
            let c = try t.client()
            var script = "USER ADD gone\(i)\n"
            for _ in 0..<100 { script += "SEARCH USERS gone LIMIT 5\n" }
            c.send(script)
            if i % 2 == 0 {
                // A reset instead of a close: SO_LINGER with a zero timeout.
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            }
        }
        let c = try t.client()
        #expect(isOK(c.command("USER ADD survivor")))
        // Every earlier connection is closed by now or closes; none holds the server up.
        while t.server.connectionCount > 1 { usleep(10_000) }
        #expect(t.server.connectionCount == 1)
    }

    @Test func formatTextEndsEachResponseWithADotLine() throws {
        let t = try TestServer()
        let c = try t.client()
        c.send("FORMAT text\nUSER ADD dot\nPOST dot \".starts with a dot\"\nUSER SHOW nobody\nFORMAT json\nUSER SHOW dot\n")
        #expect(c.readLine() == "format is text")
        #expect(c.readLine() == ".")
        #expect(c.readLine()?.hasPrefix("created @dot") == true)
        #expect(c.readLine() == ".")
        var post: [String] = []
        while let line = c.readLine(), line != "." { post.append(line) }
        #expect(post.contains("  .starts with a dot"))
        #expect(c.readLine() == "error (not_found): no user @nobody")
        #expect(c.readLine() == ".")
        #expect(c.readLine() == "{\"ok\":true,\"format\":\"json\"}")
        #expect(isOK(c.readLine() ?? ""))
        #expect(errorCode(c.command("FORMAT yaml")) == "syntax")
    }

    @Test func aClientThatDoesNotReadIsHeldByBackpressure() throws {
        let t = try TestServer { $0.limits.pendingLinesMax = 4; $0.limits.batchLinesMax = 2 }
        let c = try t.client()
        #expect(isOK(c.command("USER ADD reader")))
        // Far more than the socket buffers hold, sent by a thread while nobody reads.
        let count = 20_000
        let writer = TestThread { c.send(String(repeating: "USER SHOW reader\n", count: count)) }
        let answers = c.lines(count)
        writer.join()
        #expect(answers.count == count)
        #expect(answers.allSatisfy { $0.contains("\"handle\":\"reader\"") })
    }

    @Test func connectionsOverTheLimitAreRefused() throws {
        let t = try TestServer { $0.connectionsMax = 2 }
        let a = try t.client(), b = try t.client()
        #expect(isOK(a.command("USER ADD one")) && isOK(b.command("USER SHOW one")))
        let c = try t.anonymousClient()
        let refused = c.readToEnd()
        #expect(refused.count == 1 && errorCode(refused[0]) == "rate_limited")
        #expect(isOK(a.command("USER SHOW one")))
    }

    @Test func anIdleConnectionIsClosed() throws {
        let t = try TestServer { $0.limits.idleSeconds = 1 }
        let c = try t.client()
        #expect(isOK(c.command("USER ADD idle")))
        let rest = c.readToEnd()
        #expect(rest.count == 1 && rest[0].contains("idle"))
    }

    @Test func metricsAreServedInPrometheusTextFormat() throws {
        let t = try TestServer(withMetrics: true)
        let c = try t.client()
        c.send("USER ADD m\nPOST m one\nPOST m two\nHOME m\nFROB\n")
        #expect(c.lines(5).count == 5)
        let scrape = try TestClient(port: t.metricsPort!)
        scrape.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = scrape.readToEnd()
        #expect(response.first == "HTTP/1.1 200 OK\r")
        #expect(response.contains("socialdb_commands_total{verb=\"POST\"} 2"))
        #expect(response.contains("socialdb_command_errors_total{verb=\"OTHER\"} 1"))
        #expect(response.contains("socialdb_command_duration_seconds_count{verb=\"HOME\"} 1"))
        #expect(response.contains("socialdb_command_duration_seconds_bucket{verb=\"POST\",le=\"+Inf\"} 2"))
        #expect(response.contains("# TYPE socialdb_command_duration_seconds histogram"))
        #expect(response.contains("socialdb_log_next_lsn \(t.db.engine.log.statistics.nextLSN)"))
        #expect(response.contains { $0.hasPrefix("socialdb_cache_hit_ratio ") })
        #expect(response.contains("socialdb_connections_open 2") || response.contains("socialdb_connections_open 1"))
        let other = try TestClient(port: t.metricsPort!)
        other.send("GET /secret HTTP/1.1\r\n\r\n")
        #expect(other.readToEnd().first == "HTTP/1.1 404 Not Found\r")
    }

    @Test func theConnectClientRunsAScript() throws {
        let directory = TemporaryDirectory("connect")
        let (server, port) = try ServerShutdownTests.startServer(directory: directory.path)
        defer { kill(server.processIdentifier, SIGTERM); server.waitUntilExit() }
        let script = directory.path + "/script.txt"
        try "AUTH admin admin-password\n-- a comment\n\nUSER ADD carol \"Carol C.\"\nPOST carol \"line one\\nline two\"\nUSER SHOW nobody\nQUIT\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        for json in [false, true] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: socialdbBinary())
            process.arguments = ["--connect", "127.0.0.1:\(port)", script] + (json ? ["--json"] : [])
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            // One command failed (USER SHOW nobody): exit status 1, as the embedded shell.
            #expect(process.terminationStatus == 1)
            if json {
                let lines = text.split(separator: "\n")
                // The second run: carol exists already.
                #expect(lines.count == 5)
                #expect(lines.count == 5 && errorCode(String(lines[1])) == "exists" && errorCode(String(lines[3])) == "not_found")
            } else {
                #expect(text.contains("logged in as @admin (admin)\n"))
                #expect(text.contains("created @carol"))
                #expect(text.contains("  line one\n  line two\n"))
                #expect(text.contains("error (not_found): no user @nobody\nbye\n"))
            }
        }
    }

    @Test func aClientThatShutsDownItsSideGetsEveryAnswer() throws {
        let t = try TestServer()
        let c = try t.client()
        var script = ""
        for i in 0..<200 { script += "USER ADD h\(i)\n" }
        script += "USER SHOW h199" // the last line without its newline
        c.send(script)
        shutdown(c.fd, Int32(SHUT_WR))
        let answers = c.readToEnd()
        #expect(answers.count == 201)
        #expect(answers.allSatisfy(isOK))
        #expect(answers.last?.contains("\"handle\":\"h199\"") == true)
    }

    @Test func quitAnswersByeAndCloses() throws {
        let t = try TestServer()
        let c = try t.client()
        c.send("QUIT\nUSER ADD never\n")
        let rest = c.readToEnd()
        #expect(rest.count == 1 && isOK(rest[0]))
        #expect(errorCode(try t.client().command("USER SHOW never")) == "not_found")
    }
}

/// A thread running `body`, joined with `join()` (Foundation's Thread has no join).
final class TestThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        pthread_create(&handle, nil, { raw in
            let thread = Unmanaged<TestThread>.fromOpaque(raw!).takeRetainedValue()
            thread.body()
            return nil
        }, box.toOpaque())
    }

    func join() { pthread_join(handle, nil) }
}
