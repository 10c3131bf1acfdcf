// Redis as a peer: a redis-server started by the benchmark on 127.0.0.1 at a free port with no
// persistence, and a minimal RESP client over a plain TCP socket (commands are encoded into one
// buffer per pipeline and the replies parsed without allocating per reply).
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server child process; `stop()` shuts it down and reaps it.
final class RedisServer {
    let port: UInt16
    let pid: pid_t

    /// Starts `redis-server` (found on PATH) and waits until it accepts connections.
    init() throws {
        port = try Self.freePort()
        let arguments = ["redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--protected-mode", "no", "--loglevel", "warning", "--daemonize", "no"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let rc = posix_spawnp(&child, "redis-server", &actions, nil, argv, environ)
        guard rc == 0 else { throw BenchmarkFailure(description: "cannot start redis-server: errno \(rc)") }
        pid = child
        for _ in 0..<200 {
            if let connection = try? RedisConnection(port: port) {
                connection.close()
                return
            }
            usleep(25_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        throw BenchmarkFailure(description: "redis-server did not accept connections on port \(port)")
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// A port the kernel hands out for a bind to port 0 (free at that moment).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchmarkFailure(description: "socket: errno \(errno)") }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BenchmarkFailure(description: "bind: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }
}

/// One RESP connection. Not thread-safe: one thread owns it.
/// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY: the connected socket. The socket is
/// closed here on failure; callers assign it to their `fd` only once connected, so a throwing
/// init never leaves a set `fd` for deinit to close a second time (a descriptor number another
/// thread may have reused by then).
func connectLoopback(port: UInt16, peer: String) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchmarkFailure(description: "socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else {
        let error = errno
        Glibc.close(fd)
        throw BenchmarkFailure(description: "connect to \(peer): errno \(error)")
    }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

final class RedisConnection {
    let fd: Int32
    private var output: [UInt8] = []
    private var input: [UInt8] = []
    private var inputStart = 0
    private var inputEnd = 0

    init(port: UInt16) throws {
        fd = try connectLoopback(port: port, peer: "redis")
        output.reserveCapacity(1 << 20)
        input = [UInt8](repeating: 0, count: 1 << 20)
    }

    func close() { Glibc.close(fd) }

    // MARK: Encoding commands into the pipeline buffer

    private func appendDecimal(_ value: UInt64) {
        if value >= 10 { appendDecimal(value / 10) }
        output.append(UInt8(48 + value % 10))
    }

    private func appendBulk(_ text: StaticString) {
        output.append(UInt8(ascii: "$"))
        appendDecimal(UInt64(text.utf8CodeUnitCount))
        output.append(13); output.append(10)
        text.withUTF8Buffer { output.append(contentsOf: $0) }
        output.append(13); output.append(10)
    }

    private func appendBulk(prefix: UInt8, _ value: UInt64) {
        // "t:<user>" style keys and decimal values.
        var digits = 1
        var rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        output.append(UInt8(ascii: "$"))
        appendDecimal(UInt64(digits + (prefix == 0 ? 0 : 2)))
        output.append(13); output.append(10)
        if prefix != 0 { output.append(prefix); output.append(UInt8(ascii: ":")) }
        appendDecimal(value)
        output.append(13); output.append(10)
    }

    private func appendHeader(_ count: Int) {
        output.append(UInt8(ascii: "*"))
        appendDecimal(UInt64(count))
        output.append(13); output.append(10)
    }

    /// LPUSH t:<user> <id> and LTRIM t:<user> 0 <capacity-1>.
    func queuePushAndTrim(user: UInt32, id: UInt64, capacity: Int) {
        appendHeader(3); appendBulk("LPUSH"); appendBulk(prefix: UInt8(ascii: "t"), UInt64(user)); appendBulk(prefix: 0, id)
        appendHeader(4); appendBulk("LTRIM"); appendBulk(prefix: UInt8(ascii: "t"), UInt64(user)); appendBulk(prefix: 0, 0)
        appendBulk(prefix: 0, UInt64(capacity - 1))
    }

    /// LRANGE t:<user> 0 <count-1>.
    func queueRange(user: UInt32, count: Int) {
        appendHeader(4); appendBulk("LRANGE"); appendBulk(prefix: UInt8(ascii: "t"), UInt64(user)); appendBulk(prefix: 0, 0)
        appendBulk(prefix: 0, UInt64(count - 1))
    }

    func queueFlushAll() { appendHeader(1); appendBulk("FLUSHALL") }

    /// Sends the pipeline and reads `replies` replies; returns the number of bulk strings
    /// received inside array replies (the ids an LRANGE returned).
    @discardableResult
    func send(expectingReplies replies: Int) throws -> Int {
        var sent = 0
        while sent < output.count {
            let n = output.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 { if errno == EINTR { continue }; throw BenchmarkFailure(description: "redis write: errno \(errno)") }
            sent += n
        }
        output.removeAll(keepingCapacity: true)
        var elements = 0
        for _ in 0..<replies { elements += try readReply() }
        return elements
    }

    private func byte() throws -> UInt8 {
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
            while inputEnd == 0 {
                let n = input.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 { if errno == EINTR { continue }; throw BenchmarkFailure(description: "redis read: errno \(errno)") }
                if n == 0 { throw BenchmarkFailure(description: "redis closed the connection") }
                inputEnd = n
            }
        }
        defer { inputStart += 1 }
        return input[inputStart]
    }

    /// The integer up to CRLF.
    private func line() throws -> Int {
        var value = 0
        var negative = false
        while true {
            let b = try byte()
            if b == 13 { _ = try byte(); return negative ? -value : value }
            if b == UInt8(ascii: "-") { negative = true } else if b >= 48 && b <= 57 { value = value * 10 + Int(b - 48) }
        }
    }

    private func skip(_ count: Int) throws {
        var left = count
        while left > 0 {
            if inputStart == inputEnd { _ = try byte(); left -= 1; continue }
            let take = min(left, inputEnd - inputStart)
            inputStart += take
            left -= take
        }
    }

    private func readReply() throws -> Int {
        let kind = try byte()
        switch kind {
        case UInt8(ascii: "+"), UInt8(ascii: ":"):
            _ = try line()
            return 0
        case UInt8(ascii: "-"):
            var message: [UInt8] = []
            while true { let b = try byte(); if b == 13 { _ = try byte(); break }; message.append(b) }
            throw BenchmarkFailure(description: "redis error: \(String(decoding: message, as: UTF8.self))")
        case UInt8(ascii: "$"):
            let length = try line()
            if length >= 0 { try skip(length + 2) }
            return 1
        case UInt8(ascii: "*"):
            let count = try line()
            var total = 0
            for _ in 0..<max(0, count) { total += try readReply() }
            return total
        default:
            throw BenchmarkFailure(description: "unexpected RESP byte \(kind)")
        }
    }
}
