// socialdb-torture: the child process of the crash tests.
//
// It writes to a database as fast as it can and records each acknowledged write in an ack file
// (one `write(2)` per line, O_APPEND, after the acknowledgement), so that a parent can kill it
// with SIGKILL at any moment and check that everything in the ack file survived recovery.
//
//   socialdb-torture log --dir DIR --acks FILE [--sync always|interval:MS|off]
//                        [--threads N] [--count N] [--segment-bytes N]
//
// Payloads are a pure function of a tag (thread << 32 | counter), so the parent can rebuild and
// compare them (`torturePayload` in TortureSupport).
import StorageEngine
import TortureSupport

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    let line = "socialdb-torture: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.first == "log" else { fail("usage: socialdb-torture log --dir DIR --acks FILE [options]") }
arguments.removeFirst()
var options: [String: String] = [:]
while arguments.count >= 2 {
    options[arguments[0]] = arguments[1]
    arguments.removeFirst(2)
}
guard let dir = options["--dir"], let acksPath = options["--acks"] else { fail("--dir and --acks are required") }
let threads = Int(options["--threads"] ?? "1") ?? 1
let count = Int(options["--count"] ?? "1000000") ?? 1_000_000
guard let sync = LogSyncPolicy(parsing: options["--sync"] ?? "always") else { fail("bad --sync") }
var logOptions = LogOptions(sync: sync)
logOptions.segmentSizeBytes = Int(options["--segment-bytes"] ?? "") ?? logOptions.segmentSizeBytes

let acks = open(acksPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
if acks < 0 { fail("cannot open \(acksPath)") }

let fileSystem: FileSystem
let log: Log
do {
    fileSystem = try FileSystem()
    (log, _) = try Log.open(directory: dir, fileSystem: fileSystem, options: logOptions)
} catch {
    fail("open: \(error)")
}

let workers = (0..<threads).map { thread in
    BackgroundThread {
        for counter in 0..<count {
            let tag = UInt64(thread) << 32 | UInt64(counter)
            let lsn: UInt64
            do {
                lsn = try log.append(type: 7, payload: torturePayload(tag: tag))
            } catch {
                fail("append: \(error)")
            }
            // Only now is the record acknowledged: say so.
            let line = "\(lsn) \(tag)\n"
            _ = line.withCString { write(acks, $0, strlen($0)) }
        }
    }
}
for worker in workers { worker.join() }
do { try log.close() } catch { fail("close: \(error)") }
