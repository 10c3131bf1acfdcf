// socialdb-torture: the child process of the crash tests.
//
// It writes to a database as fast as it can and records each acknowledged write in an ack file
// (one `write(2)` per line, O_APPEND, after the acknowledgement), so that a parent can kill it
// with SIGKILL at any moment and check that everything in the ack file survived recovery.
//
//   socialdb-torture log --dir DIR --acks FILE [--sync always|interval:MS|off]
//                        [--threads N] [--count N] [--segment-bytes N]
//   socialdb-torture lsm --dir DIR --acks FILE [--sync ...] [--threads N] [--count N] [--base N]
//
// `lsm` writes puts and deletes to an LSM tree with tiny memtables and tables, so that flushes,
// compactions and manifest switches happen all the time; an ack line is `P tag` or `D tag`, and
// `d tag` is written before a delete is issued (so an unacknowledged delete is known).
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
guard let mode = arguments.first, mode == "log" || mode == "lsm" else {
    fail("usage: socialdb-torture log|lsm --dir DIR --acks FILE [options]")
}
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
    (log, _) = try Log.open(directory: mode == "lsm" ? dir + "/log" : dir, fileSystem: fileSystem, options: logOptions)
} catch {
    fail("open: \(error)")
}

@Sendable func ack(_ line: String) {
    _ = line.withCString { write(acks, $0, strlen($0)) }
}

if mode == "lsm" {
    var lsmOptions = LSMOptions()
    lsmOptions.memtableBytes = 32 << 10
    lsmOptions.blockBytes = 1024
    lsmOptions.tableBytes = 64 << 10
    lsmOptions.level0CompactionTrigger = 2
    lsmOptions.level1Bytes = 256 << 10
    lsmOptions.levelSizeMultiplier = 4
    lsmOptions.levels = 4
    let base = UInt64(options["--base"] ?? "0") ?? 0
    let tree: LSMTree
    do {
        tree = try LSMTree.open(directory: dir + "/lsm", fileSystem: fileSystem, log: log, options: lsmOptions)
    } catch {
        fail("open tree: \(error)")
    }
    let workers = (0..<threads).map { thread in
        BackgroundThread {
            for counter in 0..<count {
                let tag = base + (UInt64(thread) << 24 | UInt64(counter))
                do {
                    if counter % 5 == 4 {
                        let victim = tag - 3
                        // Intent first: a delete in flight when the kill comes may or may not apply.
                        ack("d \(victim)\n")
                        try tree.delete(Keys.one(.likes, victim))
                        ack("D \(victim)\n")
                    } else {
                        try tree.put(Keys.one(.likes, tag), torturePayload(tag: tag))
                        ack("P \(tag)\n")
                    }
                } catch {
                    fail("write: \(error)")
                }
            }
        }
    }
    for worker in workers { worker.join() }
    do { try tree.close(); try log.close() } catch { fail("close: \(error)") }
    exit(0)
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
            ack("\(lsn) \(tag)\n")
        }
    }
}
for worker in workers { worker.join() }
do { try log.close() } catch { fail("close: \(error)") }
