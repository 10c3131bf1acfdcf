// `socialdb-bench log`: the durable event log against the disk it writes to (issue 2).
//
// Rows, all on the same disk in one run, each in a fresh directory deleted afterwards:
// - `append off, 200 B` and `append off, 4 KiB`: sync policy `off`, one thread; the final
//   `close()` (which writes the buffer and fdatasyncs) is inside the timing, so the figure is
//   for data that reached the device.
// - `durable, N appender(s)` for N = 1, 8, 64: sync policy `always`, 200-byte records, N plain
//   threads appending as fast as acknowledgements come back; each append's latency is timed.
// - `durable, N async appender(s)` for N = 1, 64: the same with N Swift tasks awaiting each
//   acknowledgement (`Log.appendAsync`): no OS thread blocks per appender.
// - the disk's limits (`DiskLimits`): sequential write bandwidth and 4 KiB write+fdatasync rate.
//
// Ratios: `off 4 KiB` MB/s against the sequential write MB/s; `durable, 1 appender` against the
// fdatasync rate; 8 and 64 appenders against 1 appender; the async rows against the 1 thread
// appender too (and, in a note, 64 async appenders against 1 async appender).
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct LogSuite {
    static let name = "log"
    static let recordType: UInt16 = 1
    static let durablePayloadBytes = 200

    /// How much each row does. `small` keeps each row to a few seconds on this machine.
    struct Sizes {
        var offSmallRecords: Int
        var offLargeBytes: Int
        var sequentialBytes: Int
        var fdatasyncs: Int
        var durableOneAppenderRecords: Int
        var durableEightRecordsPerAppender: Int
        var durableSixtyFourRecordsPerAppender: Int
        /// A durable row stops early once it has run this long (a bound, should group commit
        /// degrade to one fdatasync per record).
        var durableSecondsMax: Double

        init(_ scale: Scale) {
            let factor: Int
            switch scale {
            case .small: factor = 1
            case .medium: factor = 4
            case .large: factor = 16
            }
            offSmallRecords = 2_000_000 * factor
            offLargeBytes = (256 << 20) * factor
            sequentialBytes = offLargeBytes
            fdatasyncs = 2_000 * factor
            durableOneAppenderRecords = 2_000 * factor
            durableEightRecordsPerAppender = 1_000 * factor
            durableSixtyFourRecordsPerAppender = 500 * factor
            durableSecondsMax = 10 * Double(factor)
        }
    }

    let fileSystem: FileSystem
    let scratch: ScratchSpace
    let sizes: Sizes

    func run() throws -> SuiteResult {
        if getenv("SOCIALDB_BENCH_LOG_DURABLE_ONLY") != nil { return try runDurableOnly() }
        // The disk's limits first: every log row below is compared with them.
        let sequential = try DiskLimits.sequentialWrite(suite: Self.name, fileSystem: fileSystem, scratch: scratch,
                                                        totalBytes: sizes.sequentialBytes)
        let offSmall = try appendOff(workload: "append off, 200 B", payloadBytes: 200, records: sizes.offSmallRecords)
        var offLarge = try appendOff(workload: "append off, 4 KiB", payloadBytes: 4096,
                                     records: max(1, sizes.offLargeBytes / 4096))
        let fdatasync = try DiskLimits.syncedAppends(suite: Self.name, fileSystem: fileSystem, scratch: scratch,
                                                     count: sizes.fdatasyncs)
        var durableOne = try appendDurable(appenders: 1, recordsPerAppender: sizes.durableOneAppenderRecords)
        var durableEight = try appendDurable(appenders: 8, recordsPerAppender: sizes.durableEightRecordsPerAppender)
        var durableSixtyFour = try appendDurable(appenders: 64, recordsPerAppender: sizes.durableSixtyFourRecordsPerAppender)
        var asyncOne = try appendDurableAsync(tasks: 1, recordsPerTask: sizes.durableOneAppenderRecords)
        var asyncSixtyFour = try appendDurableAsync(tasks: 64, recordsPerTask: sizes.durableSixtyFourRecordsPerAppender)

        let sequentialMegabytesPerSecond = metric("mb_per_sec", of: sequential)
        offLarge.ratioVersusPeer = metric("mb_per_sec", of: offLarge) / sequentialMegabytesPerSecond
        durableOne.ratioVersusPeer = durableOne.operationsPerSecond / fdatasync.operationsPerSecond
        durableEight.ratioVersusPeer = durableEight.operationsPerSecond / durableOne.operationsPerSecond
        durableSixtyFour.ratioVersusPeer = durableSixtyFour.operationsPerSecond / durableOne.operationsPerSecond
        asyncOne.ratioVersusPeer = asyncOne.operationsPerSecond / durableOne.operationsPerSecond
        asyncSixtyFour.ratioVersusPeer = asyncSixtyFour.operationsPerSecond / durableOne.operationsPerSecond

        var result = SuiteResult()
        result.rows = [offSmall, offLarge, sequential, durableOne, durableEight, durableSixtyFour, asyncOne, asyncSixtyFour, fdatasync]
        result.notes = [
            "ratio vs peer: `append off, 4 KiB` = its payload MB/s / the disk's sequential write MB/s;",
            "  `durable, 1 appender` = its records/s / the disk's 4 KiB write+fdatasync rate;",
            "  `durable, 8 appenders` and `durable, 64 appenders` = their records/s / `durable, 1 appender` records/s;",
            "  `durable, 1 async appender` and `durable, 64 async appenders` = their records/s / `durable, 1 appender` (threads) records/s.",
            Self.asyncRatioNote(asyncSixtyFour: asyncSixtyFour, asyncOne: asyncOne),
            "issue 2 targets: off 4 KiB >= 0.5 of sequential bandwidth; off 200 B >= 2,000,000 records/s;",
            "  1 durable appender >= 0.9 of the fdatasync rate; 64 appenders >= 40x one appender.",
        ]
        result.targets = [
            TargetCheck(description: "append off, 4 KiB MB/s vs disk sequential write MB/s",
                        measured: offLarge.ratioVersusPeer ?? 0, threshold: 0.5, isRatio: true),
            TargetCheck(description: "append off, 200 B records/s",
                        measured: offSmall.operationsPerSecond, threshold: 2_000_000, isRatio: false),
            TargetCheck(description: "durable, 1 appender records/s vs disk 4 KiB write+fdatasync/s",
                        measured: durableOne.ratioVersusPeer ?? 0, threshold: 0.9, isRatio: true),
            TargetCheck(description: "durable, 64 appenders records/s vs durable, 1 appender",
                        measured: durableSixtyFour.ratioVersusPeer ?? 0, threshold: 40, isRatio: true),
            TargetCheck(description: "durable, 64 async appenders records/s vs durable, 1 appender",
                        measured: asyncSixtyFour.ratioVersusPeer ?? 0, threshold: 40, isRatio: true),
        ]
        return result
    }

    /// With SOCIALDB_BENCH_LOG_DURABLE_ONLY set: only the fdatasync rate and the durable rows,
    /// for quick before/after comparisons of group commit.
    private func runDurableOnly() throws -> SuiteResult {
        let fdatasync = try DiskLimits.syncedAppends(suite: Self.name, fileSystem: fileSystem, scratch: scratch,
                                                     count: sizes.fdatasyncs)
        var durableOne = try appendDurable(appenders: 1, recordsPerAppender: sizes.durableOneAppenderRecords)
        var durableEight = try appendDurable(appenders: 8, recordsPerAppender: sizes.durableEightRecordsPerAppender)
        var durableSixtyFour = try appendDurable(appenders: 64, recordsPerAppender: sizes.durableSixtyFourRecordsPerAppender)
        var asyncOne = try appendDurableAsync(tasks: 1, recordsPerTask: sizes.durableOneAppenderRecords)
        var asyncSixtyFour = try appendDurableAsync(tasks: 64, recordsPerTask: sizes.durableSixtyFourRecordsPerAppender)
        durableOne.ratioVersusPeer = durableOne.operationsPerSecond / fdatasync.operationsPerSecond
        durableEight.ratioVersusPeer = durableEight.operationsPerSecond / durableOne.operationsPerSecond
        durableSixtyFour.ratioVersusPeer = durableSixtyFour.operationsPerSecond / durableOne.operationsPerSecond
        asyncOne.ratioVersusPeer = asyncOne.operationsPerSecond / durableOne.operationsPerSecond
        asyncSixtyFour.ratioVersusPeer = asyncSixtyFour.operationsPerSecond / durableOne.operationsPerSecond
        var result = SuiteResult()
        result.rows = [durableOne, durableEight, durableSixtyFour, asyncOne, asyncSixtyFour, fdatasync]
        result.notes = ["durable rows only (SOCIALDB_BENCH_LOG_DURABLE_ONLY); ratios as in the full suite.",
                        Self.asyncRatioNote(asyncSixtyFour: asyncSixtyFour, asyncOne: asyncOne)]
        return result
    }

    private static func asyncRatioNote(asyncSixtyFour: ResultRow, asyncOne: ResultRow) -> String {
        let ratio = asyncSixtyFour.operationsPerSecond / asyncOne.operationsPerSecond
        let text = (ratio * 10).rounded() / 10
        return "  `durable, 64 async appenders` / `durable, 1 async appender` records/s = \(text)x."
    }

    private func metric(_ key: String, of row: ResultRow) -> Double {
        row.metrics.first { $0.key == key }?.value ?? .nan
    }

    // MARK: Sync off

    /// One thread appends `records` records of `payloadBytes` under sync `off`, then closes the
    /// log (write the buffer, fdatasync): all of it timed.
    private func appendOff(workload: String, payloadBytes: Int, records: Int) throws -> ResultRow {
        let directory = try scratch.freshDirectory("log-off-\(payloadBytes)")
        let (log, _) = try Log.open(directory: directory, fileSystem: fileSystem, options: LogOptions(sync: .off))
        let payloadBuffer = AlignedBuffer(count: payloadBytes)
        fillPseudoRandom(payloadBuffer.bytes, seed: UInt64(payloadBytes))
        let payload = UnsafeRawBufferPointer(start: payloadBuffer.baseAddress, count: payloadBytes)
        let progress = ProgressBar(workload, total: records)

        let start = monotonicNanoseconds()
        for i in 0..<records {
            try log.append(type: Self.recordType, payload: payload)
            if i & 0x3FFF == 0 { progress.update(done: i) }
        }
        let closing = monotonicNanoseconds()
        try log.close()
        let end = monotonicNanoseconds()
        let elapsed = seconds(from: start, to: end)

        progress.finish()
        let statistics = log.statistics
        try scratch.discard(directory)
        let payloadTotal = Double(records) * Double(payloadBytes)
        let framedTotal = Double(records) * Double(payloadBytes + LogFormat.recordHeaderBytes)
        return ResultRow(
            suite: Self.name, workload: workload, system: "socialdb",
            operationsPerSecond: Double(records) / elapsed, p50Microseconds: nil, p99Microseconds: nil,
            ratioVersusPeer: nil,
            metrics: [
                Metric(key: "mb_per_sec", label: "MB/s", value: payloadTotal / elapsed / 1e6, decimals: 1),
                Metric(key: "framed_mb_per_sec", label: "framed MB/s", value: framedTotal / elapsed / 1e6, decimals: 1),
                Metric(key: "writes", label: "writes", value: Double(statistics.writes)),
                Metric(key: "fdatasyncs", label: "fdatasyncs", value: Double(statistics.fdatasyncs)),
                Metric(key: "segments", label: "segments", value: Double(statistics.segments)),
                Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
                // How much of the time the final close (write the rest, fdatasync) took.
                Metric(key: "close_seconds", label: "close s", value: seconds(from: closing, to: end), decimals: 2),
            ])
    }

    // MARK: Sync always

    /// `appenders` threads each append up to `recordsPerAppender` 200-byte records under sync
    /// `always`, timing each acknowledgement; the row stops early at `durableSecondsMax`.
    private func appendDurable(appenders: Int, recordsPerAppender: Int) throws -> ResultRow {
        let workload = "durable, \(appenders) appender\(appenders == 1 ? "" : "s")"
        let directory = try scratch.freshDirectory("log-durable-\(appenders)")
        let (log, _) = try Log.open(directory: directory, fileSystem: fileSystem, options: LogOptions(sync: .always))
        let payloadBuffer = AlignedBuffer(count: Self.durablePayloadBytes)
        fillPseudoRandom(payloadBuffer.bytes, seed: 200)
        let samples = (0..<appenders).map { _ in LatencySamples(capacity: recordsPerAppender) }
        let gate = StartGate()
        let failure = FirstFailure()
        let progress = ProgressBar(workload, total: recordsPerAppender)
        let deadlineBox = DeadlineBox()

        let threads = (0..<appenders).map { index in
            BackgroundThread {
                let payload = UnsafeRawBufferPointer(start: payloadBuffer.baseAddress, count: Self.durablePayloadBytes)
                let mine = samples[index]
                gate.arriveAndWait()
                let stopAt = deadlineBox.nanoseconds
                for i in 0..<recordsPerAppender {
                    let before = monotonicNanoseconds()
                    do {
                        try log.append(type: Self.recordType, payload: payload)
                    } catch {
                        failure.record("append: \(error)")
                        return
                    }
                    let after = monotonicNanoseconds()
                    mine.record(nanoseconds: after - before)
                    if index == 0 && i & 63 == 0 { progress.update(done: i) }
                    if after >= stopAt { return }
                }
            }
        }
        gate.waitForArrivals(appenders)
        let usageBefore = ProcessUsage.now()
        let start = monotonicNanoseconds()
        deadlineBox.set(start + UInt64(sizes.durableSecondsMax * 1e9))
        gate.open()
        for thread in threads { thread.join() }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let usage = ProcessUsage.now().minus(usageBefore)

        progress.finish()
        let statistics = log.statistics
        try log.close()
        try scratch.discard(directory)
        if let message = failure.text { throw BenchmarkFailure(description: "\(workload): \(message)") }

        return durableRow(workload: workload, samples: samples, statistics: statistics, usage: usage,
                          elapsed: elapsed, expected: appenders * recordsPerAppender)
    }

    /// A durable row from its appenders' latency samples, the log's statistics and the
    /// process's usage over the timed part (threads and tasks alike).
    fileprivate func durableRow(workload: String, samples: [LatencySamples], statistics: Log.Statistics,
                                usage: ProcessUsage, elapsed: Double, expected: Int) -> ResultRow {
        let acknowledged = samples.reduce(0) { $0 + $1.count }
        let latency = percentiles(of: samples)
        var metrics = [
            Metric(key: "fdatasyncs", label: "fdatasyncs", value: Double(statistics.fdatasyncs)),
            Metric(key: "records_per_fdatasync", label: "records/fdatasync",
                   value: Double(acknowledged) / Double(max(1, statistics.fdatasyncs)), decimals: 2),
            Metric(key: "max_us", label: "max us", value: latency?.maxMicroseconds ?? 0),
            // What each record cost the process, whatever else the machine runs: CPU time
            // (user + system, every thread) and context switches (voluntary + involuntary).
            Metric(key: "cpu_us_per_record", label: "cpu us/record",
                   value: usage.cpuMicroseconds / Double(max(1, acknowledged)), decimals: 1),
            Metric(key: "switches_per_record", label: "switches/record",
                   value: usage.contextSwitches / Double(max(1, acknowledged)), decimals: 2),
            Metric(key: "records", label: "records", value: Double(acknowledged)),
            Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
        ]
        if acknowledged < expected {
            metrics.append(Metric(key: "stopped_at_time_limit", label: "stopped at time limit", value: 1))
        }
        return ResultRow(
            suite: Self.name, workload: workload, system: "socialdb",
            operationsPerSecond: Double(acknowledged) / elapsed,
            p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
            ratioVersusPeer: nil, metrics: metrics)
    }
}

extension LogSuite {
    /// `tasks` Swift tasks each append up to `recordsPerTask` 200-byte records under sync
    /// `always` with `Log.appendAsync` (each awaits its acknowledgement, no thread blocks),
    /// timing each; the row stops early at `durableSecondsMax`. The measuring thread blocks
    /// until the task group ends; the tasks run on the concurrency pool (one thread per core).
    fileprivate func appendDurableAsync(tasks: Int, recordsPerTask: Int) throws -> ResultRow {
        let workload = "durable, \(tasks) async appender\(tasks == 1 ? "" : "s")"
        let directory = try scratch.freshDirectory("log-durable-async-\(tasks)")
        let (log, _) = try Log.open(directory: directory, fileSystem: fileSystem, options: LogOptions(sync: .always))
        let payloadBuffer = AlignedBuffer(count: Self.durablePayloadBytes)
        fillPseudoRandom(payloadBuffer.bytes, seed: 200)
        let samples = (0..<tasks).map { _ in LatencySamples(capacity: recordsPerTask) }
        let failure = FirstFailure()
        let progress = ProgressBar(workload, total: recordsPerTask)
        let finished = FinishSignal()

        let usageBefore = ProcessUsage.now()
        let start = monotonicNanoseconds()
        let stopAt = start + UInt64(sizes.durableSecondsMax * 1e9)
        Task.detached {
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<tasks {
                    group.addTask {
                        let mine = samples[index]
                        for i in 0..<recordsPerTask {
                            let payload = UnsafeRawBufferPointer(start: payloadBuffer.baseAddress, count: Self.durablePayloadBytes)
                            let before = monotonicNanoseconds()
                            do {
                                try await log.appendAsync(type: Self.recordType, payload: payload)
                            } catch {
                                failure.record("append: \(error)")
                                return
                            }
                            let after = monotonicNanoseconds()
                            mine.record(nanoseconds: after - before)
                            if index == 0 && i & 63 == 0 { progress.update(done: i) }
                            if after >= stopAt { return }
                        }
                    }
                }
            }
            finished.signal()
        }
        finished.wait()
        let elapsed = seconds(from: start, to: monotonicNanoseconds())
        let usage = ProcessUsage.now().minus(usageBefore)

        progress.finish()
        let statistics = log.statistics
        try log.close()
        try scratch.discard(directory)
        if let message = failure.text { throw BenchmarkFailure(description: "\(workload): \(message)") }

        return durableRow(workload: workload, samples: samples, statistics: statistics, usage: usage,
                          elapsed: elapsed, expected: tasks * recordsPerTask)
    }
}

/// Lets the measuring thread block until a detached task says it is done.
final class FinishSignal: Sendable {
    private let lock = ConditionLock()
    private let done = Atomic<Bool>(false)

    func signal() {
        lock.withLock {
            done.store(true, ordering: .releasing)
            lock.broadcast()
        }
    }

    func wait() {
        lock.withLock {
            while !done.load(ordering: .acquiring) { lock.wait() }
        }
    }
}

/// The moment durable appenders stop early, set by the measuring thread before the gate opens
/// (so every worker reads it after `StartGate.arriveAndWait()` returns).
final class DeadlineBox: Sendable {
    private let value = Atomic<UInt64>(UInt64.max)

    func set(_ nanoseconds: UInt64) { value.store(nanoseconds, ordering: .releasing) }

    var nanoseconds: UInt64 { value.load(ordering: .acquiring) }
}

/// The process's CPU time and context switches so far (getrusage), for per-row differences.
struct ProcessUsage {
    var cpuMicroseconds: Double
    var contextSwitches: Double

    static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        let user = Double(usage.ru_utime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec)
        let system = Double(usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_stime.tv_usec)
        return ProcessUsage(cpuMicroseconds: user + system, contextSwitches: Double(usage.ru_nvcsw + usage.ru_nivcsw))
    }

    func minus(_ earlier: ProcessUsage) -> ProcessUsage {
        ProcessUsage(cpuMicroseconds: cpuMicroseconds - earlier.cpuMicroseconds,
                     contextSwitches: contextSwitches - earlier.contextSwitches)
    }
}
