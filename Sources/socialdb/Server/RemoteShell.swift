#if canImport(Glibc)
import Glibc
#endif

/// `socialdb --connect HOST:PORT`: the shell as a client of `socialdb serve`. Commands come
/// from the same `CommandSource`s as in the embedded shell (the line editor on a terminal, else
/// lines of a file or pipe); each is sent as one line and its response printed. `\timing` stays
/// local. The connection asks for `FORMAT text` unless `--json` is given.
///
/// Framing it relies on (Docs/SHELL.md, "socialdb serve"): in JSON a response is one line; in
/// text it is lines ended by a line `.`, where a line of the response that starts with `.` has
/// one more `.` in front.
final class RemoteShell {
    private let fd: Int32
    private let json: Bool
    private var received: [UInt8] = []
    private var receivedStart = 0

    enum Failure: Error, CustomStringConvertible {
        case resolve(String)
        case connect(String)
        case closed

        var description: String {
            switch self {
            case .resolve(let m), .connect(let m): m
            case .closed: "the server closed the connection"
            }
        }
    }

    init(host: String, port: Int, json: Bool) throws(Failure) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else { throw .resolve("cannot resolve \(host): \(String(cString: gai_strerror(status)))") }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        var connected: Int32 = -1
        while let info = entry {
            let s = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if s >= 0 {
                if connect(s, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    connected = s
                    break
                }
                lastError = String(cString: strerror(errno))
                close(s)
            }
            entry = info.pointee.ai_next
        }
        guard connected >= 0 else { throw .connect("cannot connect to \(host):\(port): \(lastError)") }
        var one: Int32 = 1
        setsockopt(connected, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        fd = connected
        self.json = json
    }

    deinit { close(fd) }

    /// Sends one command line and returns its response as the shell would print it.
    func send(_ command: String) throws(Failure) -> String {
        try write(command + "\n")
        if json { return try readLine() }
        var lines: [String] = []
        while true {
            let line = try readLine()
            if line == "." { break }
            lines.append(line.hasPrefix(".") ? String(line.dropFirst()) : line)
        }
        return lines.joined(separator: "\n")
    }

    private func write(_ text: String) throws(Failure) {
        var text = text
        let ok = text.withUTF8 { bytes -> Bool in
            var done = 0
            while done < bytes.count {
                let n = Glibc.send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        if !ok { throw .closed }
    }

    private func readLine() throws(Failure) -> String {
        var scanned = receivedStart
        while true {
            if let newline = received[scanned...].firstIndex(of: 10) {
                var end = newline
                if end > receivedStart && received[end - 1] == 13 { end -= 1 }
                let line = String(decoding: received[receivedStart..<end], as: UTF8.self)
                receivedStart = newline + 1
                if receivedStart == received.count { received.removeAll(keepingCapacity: true); receivedStart = 0 }
                return line
            }
            scanned = received.count
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw .closed }
            received.append(contentsOf: chunk[0..<n])
        }
    }

    /// The client's loop: the `socialdb` shell's, with the database across the network.
    static func run(address: String, json: Bool, bail: Bool, timing: Bool, file: String?) -> Int32 {
        guard let (host, port) = ServeCommand.parseHostPort(address) else {
            printError("socialdb: --connect must be HOST:PORT, not '\(address)'")
            return 2
        }
        let client: RemoteShell
        do { client = try RemoteShell(host: host, port: port, json: json) } catch {
            printError("socialdb: \(error)")
            return 2
        }
        var input: UnsafeMutablePointer<FILE>? = fdopen(0, "r")
        if let file {
            guard let opened = fopen(file, "r") else {
                printError("socialdb: cannot read \(file): \(String(cString: strerror(errno)))")
                return 2
            }
            input = opened
        }
        guard let input else { return 2 }
        defer { if file != nil { fclose(input) } }
        let interactive = file == nil && isatty(0) != 0
        let terminal = interactive ? TerminalCommandSource(historyPath: History.defaultPath(), prompt: "\(address)> ") : nil
        let source: CommandSource = terminal ?? StreamCommandSource(stream: input, prompt: interactive ? "\(address)> " : nil)
        var timingOn = timing
        do {
            _ = try client.send(json ? "FORMAT json" : "FORMAT text")
        } catch {
            printError("socialdb: \(address): \(error)")
            return 2
        }
        if interactive && !json {
            writeOut("socialdb 0.1.0, connected to \(address). HELP lists the commands, QUIT leaves.\n")
        }
        if terminal != nil { signal(SIGINT, SIG_IGN) }
        var failures = 0
        while let line = source.nextCommand() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("--") { continue }
            if trimmed.hasPrefix("\\") {
                // \timing is the client's own; the local shell's parser answers it.
                let words = trimmed.lowercased().split(separator: " ").map(String.init)
                if words.first == "\\timing" && words.count <= 2 {
                    switch words.dropFirst().first {
                    case nil: timingOn.toggle()
                    case "on": timingOn = true
                    case "off": timingOn = false
                    default: break
                    }
                    let response = Response.ok(fields: [("timing", .bool(timingOn))], human: timingOn ? "Timing is on." : "Timing is off.")
                    writeOut(response.render(json: json) + "\n")
                    continue
                }
            }
            // A quoted string continued over lines holds newlines; on the wire it is one line.
            let wire = line.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
            let started = monotonicNanoseconds()
            let text: String
            do { text = try client.send(wire) } catch {
                printError("socialdb: \(address): \(error)")
                return 2
            }
            var printed = text
            if timingOn {
                let microseconds = (monotonicNanoseconds() - started + 500) / 1000
                let fraction = String(microseconds % 1000)
                let milliseconds = "\(microseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
                if json, printed.hasSuffix("}") { printed.removeLast(); printed += ",\"time_ms\":\(milliseconds)}" } else { printed += "\nTime: \(milliseconds) ms" }
            }
            writeOut(printed + "\n")
            let failed = json ? text.hasPrefix("{\"ok\":false") : text.hasPrefix("error (")
            if failed {
                failures += 1
                if bail && !interactive { break }
            }
            if let verb = trimmed.split(separator: " ").first?.uppercased(), verb == "QUIT" || verb == "EXIT", !failed { break }
        }
        return failures > 0 && !interactive ? 1 : 0
    }
}
