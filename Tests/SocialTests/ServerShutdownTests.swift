import Foundation
import Social
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `socialdb serve` binary, stopped with SIGTERM while clients write: it must exit 0,
/// and every write a client saw acknowledged must be in the directory afterwards.
@Suite struct ServerShutdownTests {
    /// Starts `socialdb serve` on a free port; returns the process and the port.
    static func startServer(directory: String, extra: [String] = []) throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: socialdbBinary())
        process.arguments = ["serve", "--data", directory, "--listen", "127.0.0.1:0", "--admin-password", "admin-password",
                             "--log-level", "warning", "--password-cost", "10"] + extra
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        while line.last != 10 {
            var byte: UInt8 = 0
            guard read(output.fileHandleForReading.fileDescriptor, &byte, 1) == 1 else { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening "), let port = text.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            process.terminate()
            throw ServerStartFailure(line: text)
        }
        return (process, port)
    }

    struct ServerStartFailure: Error { let line: String }

    @Test func sigtermUnderLoadLosesNoAcknowledgedWrite() throws {
        signal(SIGPIPE, SIG_IGN)
        let directory = TemporaryDirectory("serve-shutdown")
        let (process, port) = try Self.startServer(directory: directory.path, extra: ["--rate-writes", "0"])
        let writers = 8
        let setup = try TestClient(port: port)
        #expect(isOK(setup.command("AUTH admin admin-password")))
        for i in 0..<writers { #expect(isOK(setup.command("USER ADD w\(i)"))) }
        let acknowledged = Mutex<[UInt64]>([])
        let threads = (0..<writers).map { i in
            TestThread {
                guard let c = try? TestClient(port: port), isOK(c.command("AUTH admin admin-password")) else { return }
                var k = 0
                while true {
                    // Pipelined pairs, so commands are in flight when the signal comes.
                    c.send("POST w\(i) \"note \(k)\"\nPOST w\(i) \"note \(k + 1)\"\n")
                    k += 2
                    for _ in 0..<2 {
                        guard let answer = c.readLine() else { return }
                        guard isOK(answer), let range = answer.range(of: "\"id\":\"") else { return }
                        let id = UInt64(answer[range.upperBound...].prefix { $0 != "\"" })!
                        acknowledged.withLock { $0.append(id) }
                    }
                }
            }
        }
        while acknowledged.withLock({ $0.count }) < 400 { usleep(5_000) }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        threads.forEach { $0.join() }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)

        let ids = acknowledged.withLock { $0 }
        var options = SocialOptions()
        options.engine.ioBackend = .posix
        let db = try SocialDB.open(at: directory.path, options: options)
        defer { try? db.close() }
        var missing = 0
        for id in ids where (try? db.tweet(id: id)) == nil { missing += 1 }
        #expect(missing == 0, "\(missing) of \(ids.count) acknowledged posts are missing after SIGTERM")
        var total = 0
        for i in 0..<writers { total += try db.user(handle: "w\(i)").tweetCount }
        #expect(total >= ids.count)
        // A clean close: the next open replays nothing the checkpoint did not have.
        #expect(db.engine.logRecovery.isClean)
    }
}
