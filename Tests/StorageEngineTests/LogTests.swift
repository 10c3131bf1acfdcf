import Foundation
import StorageEngine
import Synchronization
import Testing
import TortureSupport

func readAll(_ log: Log, from lsn: UInt64 = 1) throws -> [LogRecord] {
    let reader = try log.reader(from: lsn)
    var records: [LogRecord] = []
    while let r = try reader.next() { records.append(r) }
    return records
}

func smallLogOptions(_ sync: LogSyncPolicy = .always) -> LogOptions {
    LogOptions(sync: sync, segmentSizeBytes: 64 << 10, writeBufferBytes: 4 << 10)
}

@Suite struct LogTests {
    @Test(arguments: Backends.all)
    func appendReadReopenAcrossSegments(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("log")
        let fs = try FileSystem(backend: choice)
        var expected: [LogRecord] = []
        do {
            let (log, report) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions())
            #expect(report.isClean)
            for i in 0..<1500 {
                let payload = torturePayload(tag: UInt64(i))
                let lsn = try log.append(type: UInt16(1 + i % 5), payload: payload)
                expected.append(LogRecord(lsn: lsn, type: UInt16(1 + i % 5), payload: payload))
            }
            #expect(expected.map(\.lsn) == Array(1...1500))
            #expect(log.statistics.segments > 3, "small segments rolled")
            #expect(try readAll(log) == expected)
            #expect(try readAll(log, from: 777) == Array(expected[776...]))
            try log.close()
            #expect(throws: LogError.closed) { try log.append(type: 1, payload: [1]) }
        }
        let (log, report) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions())
        defer { try? log.close() }
        #expect(report.isClean, "\(report)")
        #expect(report.lastLSN == 1500)
        #expect(try readAll(log) == expected)
        #expect(try log.append(type: 1, payload: [9]) == 1501)
    }

    @Test(arguments: [LogSyncPolicy.always, .interval(milliseconds: 5), .off])
    func everyPolicyKeepsRecordsAcrossClose(_ policy: LogSyncPolicy) throws {
        let dir = TemporaryDirectory("log")
        let fs = try FileSystem()
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(policy))
        let threads = (0..<4).map { t in
            BackgroundThread { for i in 0..<300 { _ = try! log.append(type: 2, payload: torturePayload(tag: UInt64(t) << 32 | UInt64(i))) } }
        }
        threads.forEach { $0.join() }
        try log.close()
        let (again, report) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(policy))
        defer { try? again.close() }
        #expect(report.isClean)
        let records = try readAll(again)
        #expect(records.map(\.lsn) == Array(1...1200))
        var tagOfPayload: [[UInt8]: UInt64] = [:]
        for t in 0..<4 { for i in 0..<300 { let tag = UInt64(t) << 32 | UInt64(i); tagOfPayload[torturePayload(tag: tag)] = tag } }
        #expect(tagOfPayload.count == 1200, "payloads tell their tags apart")
        var perThread = [[UInt64]](repeating: [], count: 4)
        for r in records {
            if let tag = tagOfPayload[r.payload] { perThread[Int(tag >> 32)].append(tag & 0xFFFF_FFFF) }
        }
        #expect(perThread.map(\.count) == [300, 300, 300, 300], "every payload intact")
        #expect(perThread.allSatisfy { $0 == $0.sorted() }, "each appender's records in its order")
    }

    @Test func badArgumentsChangeNothing() throws {
        let dir = TemporaryDirectory("log")
        let (log, _) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: smallLogOptions())
        defer { try? log.close() }
        #expect(throws: LogError.self) { try log.append(type: 0, payload: [1]) }
        #expect(throws: LogError.self) { try log.append(type: 1, payload: [UInt8](repeating: 0, count: 64 << 10)) }
        #expect(log.nextSequenceNumber == 1)
        #expect(throws: LogError.self) { try log.setCheckpoint(consumer: "x", lsn: 5) }
    }

    @Test func checkpointsRemoveSegmentsEveryConsumerPassed() throws {
        let dir = TemporaryDirectory("log")
        let fs = try FileSystem()
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(.off))
        for i in 0..<2000 { try log.append(type: 1, payload: torturePayload(tag: UInt64(i))) }
        let before = log.statistics.segments
        // Consumers register before they fall behind: a checkpoint only holds back what is
        // still there when it is first set.
        try log.setCheckpoint(consumer: "search", lsn: 600)
        try log.setCheckpoint(consumer: "lsm", lsn: 1500)
        let afterSlow = log.statistics.segments
        #expect(afterSlow < before)
        #expect(log.firstSequenceNumber <= 601, "the slow consumer can still read what it needs")
        try log.flush() // readers see what is written; `.off` buffers
        #expect(try readAll(log, from: 601).count == 1400)
        try log.setCheckpoint(consumer: "search", lsn: 1900)
        #expect(log.statistics.segments < afterSlow)
        #expect(log.firstSequenceNumber <= 1501)
        #expect(throws: LogError.self) { try log.reader(from: 1) }
        try log.close()
        let (again, report) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(.off))
        defer { try? again.close() }
        #expect(report.isClean, "\(report)")
        #expect(again.checkpoint(of: "lsm") == 1500)
        #expect(again.checkpoint(of: "search") == 1900)
        #expect(try readAll(again, from: 1501).count == 500)
    }
}

@Suite struct LogCorruptionTests {
    /// Writes `count` records and returns them with the segment's path.
    func writeLog(_ dir: String, count: Int) throws -> ([LogRecord], String) {
        let (log, _) = try Log.open(directory: dir, fileSystem: try FileSystem(), options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
        var records: [LogRecord] = []
        for i in 0..<count {
            let payload = torturePayload(tag: UInt64(i * 7))
            records.append(LogRecord(lsn: try log.append(type: 3, payload: payload), type: 3, payload: payload))
        }
        try log.close()
        return (records, dir + "/" + LogFormat.segmentName(firstLSN: 1))
    }

    @Test func truncationAtEveryOffsetOfTheLastRecords() throws {
        let dir = TemporaryDirectory("corrupt")
        let (records, segment) = try writeLog(dir.path, count: 40)
        let original = readWholeFile(segment)
        // Record end offsets, to know which records a cut keeps.
        var ends: [Int] = []
        var at = LogFormat.firstRecordOffset
        for r in records { at += LogFormat.recordHeaderBytes + r.payload.count; ends.append(at) }
        let start = ends[ends.count - 4]
        for cut in start...ends.last! {
            let work = TemporaryDirectory("cut")
            writeWholeFile(work.path + "/" + LogFormat.segmentName(firstLSN: 1), Array(original[0..<cut]))
            let (log, report) = try Log.open(directory: work.path, fileSystem: try FileSystem(), options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
            let kept = ends.filter { $0 <= cut }.count
            let back = try readAll(log)
            #expect(back == Array(records[0..<kept]), "cut at \(cut)")
            let torn = !ends.contains(cut)
            #expect((report.problem != nil) == torn, "cut at \(cut): \(report)")
            // The log goes on after the cut, and the next open is clean.
            #expect(try log.append(type: 1, payload: [42]) == UInt64(kept + 1))
            try log.close()
            let (again, second) = try Log.open(directory: work.path, fileSystem: try FileSystem(), options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
            #expect(second.isClean, "cut at \(cut): \(second)")
            #expect(try readAll(again).count == kept + 1)
            try again.close()
        }
    }

    /// A segment cut inside its header page (found by the corruption torture: recovery trapped
    /// on an arithmetic overflow) opens as a segment without records, and the log goes on.
    @Test func segmentCutInsideItsHeaderPageOpens() throws {
        let dir = TemporaryDirectory("corrupt")
        let (_, segment) = try writeLog(dir.path, count: 5)
        let original = readWholeFile(segment)
        for cut in [LogFormat.segmentHeaderBytes, 100, LogFormat.firstRecordOffset - 1] {
            let work = TemporaryDirectory("cut")
            writeWholeFile(work.path + "/" + LogFormat.segmentName(firstLSN: 1), Array(original[0..<cut]))
            let (log, _) = try Log.open(directory: work.path, fileSystem: try FileSystem(), options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
            #expect(try readAll(log).isEmpty, "cut at \(cut)")
            #expect(try log.append(type: 1, payload: [42]) == 1)
            try log.close()
        }
    }

    @Test func bitFlipsAreDetectedAndNeverReturned() throws {
        let seed = testSeed()
        print("LogCorruptionTests.bitFlips seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        let dir = TemporaryDirectory("corrupt")
        let (records, segment) = try writeLog(dir.path, count: 300)
        let original = readWholeFile(segment)
        let end = LogFormat.firstRecordOffset + records.reduce(0) { $0 + LogFormat.recordHeaderBytes + $1.payload.count }
        for round in 0..<environmentInt("SOCIALDB_FLIP_ROUNDS", default: 60) {
            var damaged = original
            let byte = Int.random(in: LogFormat.firstRecordOffset..<end, using: &random)
            damaged[byte] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            let work = TemporaryDirectory("flip")
            writeWholeFile(work.path + "/" + LogFormat.segmentName(firstLSN: 1), damaged)
            let (log, report) = try Log.open(directory: work.path, fileSystem: try FileSystem(), options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
            let back = try readAll(log)
            try log.close()
            #expect(report.problem != nil, "round \(round): flip at \(byte) not reported")
            #expect(report.droppedBytes > 0)
            #expect(back.count < records.count)
            #expect(back == Array(records[0..<back.count]), "round \(round): only an intact prefix comes back")
        }
    }

    @Test func laterSegmentsAreQuarantinedNotDeleted() throws {
        let dir = TemporaryDirectory("corrupt")
        let fs = try FileSystem()
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(.off))
        for i in 0..<1000 { try log.append(type: 1, payload: torturePayload(tag: UInt64(i))) }
        try log.close()
        let first = dir.path + "/" + LogFormat.segmentName(firstLSN: 1)
        var bytes = readWholeFile(first)
        bytes[LogFormat.firstRecordOffset + 5000] ^= 0x10
        writeWholeFile(first, bytes)
        let (again, report) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(.off))
        defer { try? again.close() }
        #expect(report.problem != nil)
        #expect(!report.quarantinedSegments.isEmpty)
        #expect(report.quarantinedSegments.allSatisfy { fs.exists($0) })
        let back = try readAll(again)
        #expect(back.count == Int(report.lastLSN))
        #expect(back.allSatisfy { torturePayload(tag: $0.lsn - 1) == $0.payload })
    }
}

@Suite struct LogFaultTests {
    @Test(arguments: Backends.all)
    func eioOnFdatasyncIsFatalAndNothingIsAcknowledged(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("logfault")
        let faults = FaultInjector()
        let fs = try FileSystem(backend: choice, faults: faults)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions())
        for i in 0..<10 { try log.append(type: 1, payload: torturePayload(tag: UInt64(i))) }
        faults.add(.init(operation: .fdatasync, nth: 1, action: .fail(errno: EIO)))
        #expect(throws: LogError.self) { try log.append(type: 1, payload: [1]) }
        faults.removeAll()
        // Sticky: even with the disk healthy again, nothing more is acknowledged.
        #expect(throws: LogError.self) { try log.append(type: 1, payload: [2]) }
        #expect(log.durableSequenceNumber == 10)
        #expect(log.writeFailure?.errno == EIO)
        try? log.close()
        let (again, _) = try Log.open(directory: dir.path, fileSystem: try FileSystem(backend: choice), options: smallLogOptions())
        defer { try? again.close() }
        let back = try readAll(again)
        #expect(Array(back.prefix(10)).map(\.payload) == (0..<10).map { torturePayload(tag: UInt64($0)) })
    }

    @Test(arguments: Backends.all)
    func enospcOnWriteReachesTheAppender(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("logfault")
        let faults = FaultInjector()
        let fs = try FileSystem(backend: choice, faults: faults)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: smallLogOptions(.interval(milliseconds: 1000)))
        for i in 0..<5 { try log.append(type: 1, payload: torturePayload(tag: UInt64(i))) }
        faults.add(.init(operation: .write, nth: 1, sticky: true, action: .fail(errno: ENOSPC)))
        let error = #expect(throws: LogError.self) { try log.append(type: 1, payload: [1]) }
        if case .io(let io)? = error { #expect(io.isNoSpace) } else { Issue.record("expected an I/O error, got \(String(describing: error))") }
        #expect(log.writtenSequenceNumber == 5)
        try? log.close()
    }
}

@Suite struct LogCrashTests {
    static func tortureBinary() -> String {
        let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = URL(fileURLWithPath: selfPath).deletingLastPathComponent()
        // The test bundle may sit inside a .xctest directory.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("socialdb-torture").path) && dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("socialdb-torture").path
    }

    @Test func acknowledgedRecordsSurviveKillNine() throws {
        let binary = Self.tortureBinary()
        #expect(FileManager.default.isExecutableFile(atPath: binary), "socialdb-torture not found beside the tests")
        let rounds = environmentInt("SOCIALDB_CRASH_ROUNDS", default: 20)
        let seed = testSeed()
        print("LogCrashTests seed \(seed), \(rounds) rounds")
        var random = SeededRandom(seed: seed)
        let dir = TemporaryDirectory("crash")
        let acks = dir.path + "/acks"
        var acknowledged: [UInt64: UInt64] = [:] // lsn -> tag
        for round in 0..<rounds {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            let sync = round % 3 == 2 ? "interval:20" : "always"
            process.arguments = ["log", "--dir", dir.path + "/log", "--acks", acks, "--sync", sync,
                                 "--threads", String(1 + round % 4), "--segment-bytes", String(256 << 10)]
            let before = fileSize(acks)
            try process.run()
            // One round in four is killed at a moment counted from its start (often during
            // recovery); the others once it has acknowledged a record of its own.
            if round % 4 == 3 {
                usleep(UInt32.random(in: 20_000...150_000, using: &random))
            } else {
                waitForGrowth(of: acks, beyond: before, alive: { process.isRunning })
                usleep(UInt32.random(in: 0...130_000, using: &random))
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the child died early")
            // Every line fully written to the ack file is an acknowledged record.
            let text = (try? String(contentsOfFile: acks, encoding: .utf8)) ?? ""
            var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            if !text.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() } // cut mid-write: not acked
            for line in lines {
                let parts = line.split(separator: " ")
                if parts.count == 2, let lsn = UInt64(parts[0]), let tag = UInt64(parts[1]) {
                    if let earlier = acknowledged[lsn] { #expect(earlier == tag, "LSN \(lsn) acknowledged twice") }
                    acknowledged[lsn] = tag
                }
            }
            let (log, report) = try Log.open(directory: dir.path + "/log", fileSystem: try FileSystem(), options: LogOptions())
            let records = try readAll(log, from: log.firstSequenceNumber)
            try log.close()
            let byLSN = Dictionary(uniqueKeysWithValues: records.map { ($0.lsn, $0) })
            #expect(records.map(\.lsn) == Array(records.indices.map { UInt64($0) + records.first!.lsn }), "LSNs in order without gaps")
            for (lsn, tag) in acknowledged {
                guard let r = byLSN[lsn] else {
                    Issue.record("round \(round): acknowledged LSN \(lsn) lost (\(report))")
                    continue
                }
                #expect(r.payload == torturePayload(tag: tag), "round \(round): LSN \(lsn) damaged")
            }
        }
        #expect(acknowledged.count > rounds, "the child acknowledged records")
    }
}

/// Group commit with many appenders on a slow disk: every fdatasync is delayed by the fault
/// injector, so the appenders pile up behind each one on any machine and batches must grow.
/// No assertion depends on how fast the machine is.
@Suite struct LogGroupCommitTests {
    static func slowLog(_ dir: TemporaryDirectory, delayMicroseconds: UInt32, sync: LogSyncPolicy = .always,
                        segmentSizeBytes: Int = 64 << 20) throws -> (Log, FaultInjector) {
        let faults = FaultInjector()
        faults.add(.init(operation: .fdatasync, sticky: true, action: .delay(microseconds: delayMicroseconds)))
        let fs = try FileSystem(faults: faults)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs,
                                    options: LogOptions(sync: sync, segmentSizeBytes: segmentSizeBytes))
        return (log, faults)
    }

    /// Each appender checks, the moment its append returns, that its record is durable (never
    /// released early), and every record is there after reopening.
    @Test(arguments: [64 << 20, 64 << 10])
    func manyAppendersShareSlowFdatasyncsAndAreReleasedOnlyWhenDurable(segmentSizeBytes: Int) throws {
        let dir = TemporaryDirectory("loggc")
        let (log, _) = try Self.slowLog(dir, delayMicroseconds: 2_000, segmentSizeBytes: segmentSizeBytes)
        let appenders = 32, each = 25
        let early = Mutex<[String]>([])
        let lsns = Mutex<[UInt64]>([])
        let threads = (0..<appenders).map { t in
            BackgroundThread {
                for i in 0..<each {
                    let lsn = try! log.append(type: 1, payload: torturePayload(tag: UInt64(t) << 32 | UInt64(i)))
                    let acknowledged = log.acknowledgedSequenceNumber
                    let durable = log.durableSequenceNumber
                    if acknowledged < lsn || durable < lsn {
                        early.withLock { $0.append("LSN \(lsn) returned with acknowledged \(acknowledged), durable \(durable)") }
                    }
                    lsns.withLock { $0.append(lsn) }
                }
            }
        }
        threads.forEach { $0.join() }
        let total = appenders * each
        #expect(early.withLock { $0 }.isEmpty, "\(early.withLock { $0.prefix(5) })")
        #expect(lsns.withLock { $0.sorted() } == Array(1...UInt64(total)), "every append got its own LSN")
        let statistics = log.statistics
        // One fdatasync per record would be `total`; shared ones are far fewer, and some batch
        // holds at least 8 records (the histogram's bucket 3 counts batches of 8 to 15).
        #expect(statistics.fdatasyncs < UInt64(total / 4), "\(statistics.fdatasyncs) fdatasyncs for \(total) records")
        #expect(statistics.batchSizeHistogram[3...].reduce(0, +) > 0, "batch sizes \(statistics.batchSizeHistogram)")
        #expect(log.acknowledgedSequenceNumber == UInt64(total))
        try log.close()
        let (again, report) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: LogOptions())
        defer { try? again.close() }
        #expect(report.isClean, "\(report)")
        #expect(try readAll(again).count == total)
    }

    /// Many threads append durably at once on the real disk (no delay), each waiting for its
    /// own record: every thread finishes (no waiter is lost: a lost wakeup fails here instead
    /// of hanging), each thread's LSNs increase, and after reopening every acknowledged record
    /// is at its LSN with exactly the bytes its thread wrote, and nothing else is there.
    @Test(arguments: [64 << 20, 64 << 10])
    func manyConcurrentDurableAppendersAllFinishAndSurviveReopenInOrder(segmentSizeBytes: Int) throws {
        let dir = TemporaryDirectory("loggc")
        let options = LogOptions(sync: .always, segmentSizeBytes: segmentSizeBytes)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: options)
        let appenders = 64, each = 40
        let acknowledged = Mutex<[[UInt64]]>(Array(repeating: [], count: appenders))
        let finished = Atomic<Int>(0)
        let threads = (0..<appenders).map { t in
            BackgroundThread {
                for i in 0..<each {
                    let lsn = try! log.append(type: 1, payload: torturePayload(tag: UInt64(t) << 32 | UInt64(i)))
                    acknowledged.withLock { $0[t].append(lsn) }
                }
                finished.add(1, ordering: .releasing)
            }
        }
        // Generous: the whole run takes well under a second of fdatasyncs on any disk.
        var waited = 0
        while finished.load(ordering: .acquiring) < appenders && waited < 120_000 {
            usleep(10_000)
            waited += 10
        }
        try #require(finished.load(ordering: .acquiring) == appenders, "an appender never returned: a lost wakeup")
        threads.forEach { $0.join() }
        let total = UInt64(appenders * each)
        #expect(log.durableSequenceNumber == total)
        try log.close()

        let (again, report) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: options)
        defer { try? again.close() }
        #expect(report.isClean, "\(report)")
        let records = try readAll(again)
        #expect(records.count == Int(total), "exactly the acknowledged records")
        var byLSN: [UInt64: LogRecord] = [:]
        for record in records { byLSN[record.lsn] = record }
        for t in 0..<appenders {
            let lsns = acknowledged.withLock { $0[t] }
            #expect(lsns.count == each)
            #expect(zip(lsns, lsns.dropFirst()).allSatisfy { $0 < $1 }, "thread \(t)'s LSNs increase")
            for (i, lsn) in lsns.enumerated() {
                #expect(byLSN[lsn]?.payload == torturePayload(tag: UInt64(t) << 32 | UInt64(i)),
                        "thread \(t) record \(i) at LSN \(lsn)")
            }
        }
    }

    /// Appends without waiting, then waits: what the Social layer does under its writer lock.
    @Test func appendWithoutWaitingThenWaitingIsDurableOnReturn() throws {
        let dir = TemporaryDirectory("loggc")
        let (log, _) = try Self.slowLog(dir, delayMicroseconds: 1_000)
        defer { try? log.close() }
        let early = Mutex<[String]>([])
        let threads = (0..<16).map { t in
            BackgroundThread {
                for i in 0..<20 {
                    var last: UInt64 = 0
                    for j in 0..<3 {
                        last = try! log.append(type: 1, payload: torturePayload(tag: UInt64(t * 100 + i * 3 + j)),
                                               waitForAcknowledgement: false)
                        if log.appendedSequenceNumber < last {
                            early.withLock { $0.append("appended \(log.appendedSequenceNumber) < \(last)") }
                        }
                    }
                    try! log.waitForAcknowledgement(through: last)
                    if log.durableSequenceNumber < last || log.acknowledgedSequenceNumber < last {
                        early.withLock { $0.append("waited through \(last), durable \(log.durableSequenceNumber)") }
                    }
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(early.withLock { $0 }.isEmpty, "\(early.withLock { $0.prefix(5) })")
        #expect(log.acknowledgedSequenceNumber == 16 * 20 * 3)
    }

    /// A failed fdatasync while many appenders sleep: each of them is woken and gets the error
    /// or had its record durable before; none is acknowledged after the failure; none hangs.
    @Test(arguments: Backends.all)
    func failedFdatasyncWakesEverySleeperAndAcknowledgesNothingAfter(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("loggc")
        let faults = FaultInjector()
        // The 7th batch's fdatasync fails (the first matching rule acts, so this one comes
        // first); every other one is slow.
        faults.add(.init(operation: .fdatasync, nth: 7, action: .fail(errno: EIO)))
        faults.add(.init(operation: .fdatasync, sticky: true, action: .delay(microseconds: 1_000)))
        let fs = try FileSystem(backend: choice, faults: faults)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: LogOptions(sync: .always))
        let acknowledged = Mutex<[UInt64]>([])
        let failures = Atomic<Int>(0)
        let threads = (0..<24).map { t in
            BackgroundThread {
                for i in 0..<40 {
                    do {
                        let lsn = try log.append(type: 1, payload: torturePayload(tag: UInt64(t * 1000 + i)))
                        acknowledged.withLock { $0.append(lsn) }
                    } catch {
                        failures.add(1, ordering: .relaxed)
                        return
                    }
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(failures.load(ordering: .relaxed) == 24, "every appender ends with the error")
        let durable = log.durableSequenceNumber
        #expect(log.writeFailure?.errno == EIO)
        #expect(acknowledged.withLock { $0.allSatisfy { $0 <= durable } }, "nothing acknowledged past the durable LSN \(durable)")
        #expect(log.acknowledgedSequenceNumber == durable)
        try? log.close()
    }
}
