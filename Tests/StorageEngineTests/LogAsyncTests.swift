import Foundation
import StorageEngine
import Synchronization
import Testing
import TortureSupport

/// The asynchronous acknowledgement API (`Log.appendAsync`, `Log.awaitAcknowledgement`): tasks
/// are resumed only once their records are durable, in LSN order, get the log's failure as an
/// error, and are not ended by cancellation. Slow disks come from the fault injector's delays,
/// so no assertion depends on how fast the machine is.
@Suite struct LogAsyncTests {
    /// Each task checks, the moment its append returns, that its record and every earlier one
    /// is durable; the tasks share fdatasyncs; every record is there after reopening, with its
    /// task's bytes at its LSN.
    @Test(arguments: [64 << 20, 64 << 10])
    func asyncAppendersAreResumedOnlyWhenDurableAndShareFdatasyncs(segmentSizeBytes: Int) async throws {
        let dir = TemporaryDirectory("logasync")
        let (log, _) = try LogGroupCommitTests.slowLog(dir, delayMicroseconds: 2_000, segmentSizeBytes: segmentSizeBytes)
        let tasks = 64, each = 10
        let results = await withTaskGroup(of: (Int, [UInt64], [String]).self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var lsns: [UInt64] = []
                    var early: [String] = []
                    for i in 0..<each {
                        let lsn = try! await log.appendAsync(type: 1, payload: torturePayload(tag: UInt64(t) << 32 | UInt64(i)))
                        let acknowledged = log.acknowledgedSequenceNumber
                        let durable = log.durableSequenceNumber
                        if acknowledged < lsn || durable < lsn {
                            early.append("LSN \(lsn) returned with acknowledged \(acknowledged), durable \(durable)")
                        }
                        lsns.append(lsn)
                    }
                    return (t, lsns, early)
                }
            }
            var all: [(Int, [UInt64], [String])] = []
            for await result in group { all.append(result) }
            return all
        }
        let early = results.flatMap(\.2)
        #expect(early.isEmpty, "\(early.prefix(5))")
        let total = tasks * each
        #expect(results.flatMap(\.1).sorted() == Array(1...UInt64(total)), "every append got its own LSN")
        // No bound on the fdatasyncs here: how many tasks run at once depends on the concurrency
        // pool, which other tests running in parallel may hold (`waitsEndInLSNOrder` checks
        // that waiting tasks share one).
        try log.close()

        let (again, report) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: LogOptions())
        defer { try? again.close() }
        #expect(report.isClean, "\(report)")
        var byLSN: [UInt64: [UInt8]] = [:]
        for record in try readAll(again) { byLSN[record.lsn] = record.payload }
        #expect(byLSN.count == total)
        for (t, lsns, _) in results {
            #expect(zip(lsns, lsns.dropFirst()).allSatisfy { $0 < $1 }, "task \(t)'s LSNs increase")
            for (i, lsn) in lsns.enumerated() {
                #expect(byLSN[lsn] == torturePayload(tag: UInt64(t) << 32 | UInt64(i)), "task \(t) record \(i) at LSN \(lsn)")
            }
        }
    }

    /// A failed fdatasync while many tasks wait: each gets the error (or had its record durable
    /// before), nothing is acknowledged after it, later appends and waits are refused, and a
    /// wait for an LSN made durable before the failure still succeeds.
    @Test(arguments: Backends.all)
    func eioOnFdatasyncReachesEveryWaitingTaskAndNothingAfterIsAcknowledged(_ choice: FileSystem.BackendChoice) async throws {
        let dir = TemporaryDirectory("logasync")
        let faults = FaultInjector()
        faults.add(.init(operation: .fdatasync, nth: 7, action: .fail(errno: EIO)))
        faults.add(.init(operation: .fdatasync, sticky: true, action: .delay(microseconds: 1_000)))
        let fs = try FileSystem(backend: choice, faults: faults)
        let (log, _) = try Log.open(directory: dir.path, fileSystem: fs, options: LogOptions(sync: .always))
        let tasks = 24
        let outcomes = await withTaskGroup(of: ([UInt64], LogError?).self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var acknowledged: [UInt64] = []
                    for i in 0..<200 {
                        do throws(LogError) {
                            let lsn = try await log.appendAsync(type: 1, payload: torturePayload(tag: UInt64(t * 1000 + i)))
                            acknowledged.append(lsn)
                        } catch {
                            return (acknowledged, error)
                        }
                    }
                    return (acknowledged, nil)
                }
            }
            var all: [([UInt64], LogError?)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let durable = log.durableSequenceNumber
        #expect(log.writeFailure?.errno == EIO)
        #expect(outcomes.allSatisfy { $0.1 != nil }, "every task ends with the error")
        for (_, error) in outcomes {
            if case .io(let io)? = error {
                #expect(io.errno == EIO)
            } else {
                Issue.record("expected the EIO, got \(String(describing: error))")
            }
        }
        #expect(outcomes.allSatisfy { $0.0.allSatisfy { $0 <= durable } }, "nothing acknowledged past the durable LSN \(durable)")
        #expect(log.acknowledgedSequenceNumber == durable)
        // Refused from now on, even with the disk healthy again.
        faults.removeAll()
        await #expect(throws: LogError.self) { try await log.appendAsync(type: 1, payload: [1]) }
        await #expect(throws: LogError.self) { try await log.awaitAcknowledgement(through: durable + 1) }
        // What was durable before stays acknowledged.
        if durable > 0 { try await log.awaitAcknowledgement(through: durable) }
        try? log.close()
    }

    /// Waits for several LSNs, in and out of order, from one task and from several: a wait
    /// returns only when every record through its LSN is acknowledged (a later LSN never
    /// before an earlier one), and a wait for an LSN already acknowledged returns at once.
    @Test func waitsEndInLSNOrder() async throws {
        let dir = TemporaryDirectory("logasync")
        let (log, _) = try LogGroupCommitTests.slowLog(dir, delayMicroseconds: 3_000)
        // Ten records appended without waiting, then ten tasks each waiting for one of them,
        // started in reverse order.
        var lsns: [UInt64] = []
        let fdatasyncsBefore = log.statistics.fdatasyncs
        for i in 0..<10 { lsns.append(try log.append(type: 1, payload: torturePayload(tag: UInt64(i)), waitForAcknowledgement: false)) }
        let observed = await withTaskGroup(of: (UInt64, UInt64).self) { group in
            for lsn in lsns.reversed() {
                group.addTask {
                    try! await log.awaitAcknowledgement(through: lsn)
                    return (lsn, log.acknowledgedSequenceNumber)
                }
            }
            var all: [(UInt64, UInt64)] = []
            for await pair in group { all.append(pair) }
            return all
        }
        #expect(observed.count == 10)
        // The ten records were pending together: one write and fdatasync covers them all
        // (two at most, should the first start before the last record was appended).
        #expect(log.statistics.fdatasyncs - fdatasyncsBefore <= 2, "\(log.statistics.fdatasyncs - fdatasyncsBefore) fdatasyncs")
        #expect(observed.allSatisfy { $0.1 >= $0.0 }, "\(observed)")
        // Already acknowledged: returns without waiting, whatever the order.
        for lsn in lsns.reversed() { try await log.awaitAcknowledgement(through: lsn) }
        // An LSN not appended yet is refused rather than waited for forever.
        await #expect(throws: LogError.self) { try await log.awaitAcknowledgement(through: log.nextSequenceNumber) }
        try log.close()
    }

    /// Cancellation does not end the wait: the cancelled task still returns only once its
    /// record is durable, and returns normally (the record is in the log and was made durable).
    @Test func cancellationDoesNotEndTheWait() async throws {
        let dir = TemporaryDirectory("logasync")
        let (log, _) = try LogGroupCommitTests.slowLog(dir, delayMicroseconds: 50_000)
        let waiting = Task {
            let lsn = try await log.appendAsync(type: 1, payload: [1, 2, 3])
            return (lsn, log.durableSequenceNumber)
        }
        waiting.cancel()
        let (lsn, durable) = try await waiting.value
        #expect(durable >= lsn)
        // Cancelled before the call: the same.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            let lsn = try await log.appendAsync(type: 1, payload: [4])
            return (lsn, log.durableSequenceNumber)
        }
        let (lsn2, durable2) = try await early.value
        #expect(durable2 >= lsn2)
        try log.close()
        let (again, _) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: LogOptions())
        defer { try? again.close() }
        #expect(try readAll(again).map(\.payload) == [[1, 2, 3], [4]])
    }

    /// Tasks and plain threads appending durably at once share the batches; everything ends
    /// and is acknowledged; `close()` with tasks still waiting resumes them (it makes their
    /// records durable first), and waits after `close()` for unacknowledged LSNs are refused.
    @Test func tasksAndThreadsTogetherThenCloseWithWaitersLeft() async throws {
        let dir = TemporaryDirectory("logasync")
        let (log, _) = try LogGroupCommitTests.slowLog(dir, delayMicroseconds: 1_000)
        let threads = (0..<8).map { t in
            BackgroundThread {
                for i in 0..<20 { try! log.append(type: 1, payload: torturePayload(tag: UInt64(1 << 40 | t << 20 | i))) }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<16 {
                group.addTask {
                    for i in 0..<20 {
                        let lsn = try! await log.appendAsync(type: 1, payload: torturePayload(tag: UInt64(t << 20 | i)))
                        #expect(log.durableSequenceNumber >= lsn)
                    }
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(log.acknowledgedSequenceNumber == 8 * 20 + 16 * 20)

        // Waiters left when close() comes: appended without waiting, then awaited.
        var last: UInt64 = 0
        for i in 0..<50 { last = try log.append(type: 1, payload: torturePayload(tag: UInt64(i)), waitForAcknowledgement: false) }
        let finalLSN = last
        let waiters = (0..<8).map { _ in Task { try await log.awaitAcknowledgement(through: finalLSN) } }
        try log.close()
        for waiter in waiters { try await waiter.value }
        #expect(log.durableSequenceNumber == finalLSN)
        await #expect(throws: LogError.self) { try await log.awaitAcknowledgement(through: finalLSN + 1) }
        try await log.awaitAcknowledgement(through: finalLSN)
    }

    /// Under `interval` an async wait ends once the record is written (not fdatasynced); under
    /// `off` at once.
    @Test(arguments: [LogSyncPolicy.interval(milliseconds: 1000), .off])
    func otherPoliciesAcknowledgeAsTheySay(_ policy: LogSyncPolicy) async throws {
        let dir = TemporaryDirectory("logasync")
        let (log, _) = try Log.open(directory: dir.path, fileSystem: try FileSystem(), options: LogOptions(sync: policy))
        for i in 0..<20 {
            let lsn = try await log.appendAsync(type: 1, payload: torturePayload(tag: UInt64(i)))
            #expect(log.acknowledgedSequenceNumber >= lsn)
            if case .interval = policy { #expect(log.writtenSequenceNumber >= lsn) }
        }
        try log.close()
    }
}
