// The disk's own limits, measured in the same run and through the same file layer as the
// structures, so that every durable figure has a peer: what the disk gives at best.
//
// - Sequential write: 1 MiB writes at increasing offsets of a fresh file, then one fdatasync,
//   all of it timed (the data must reach the device, not just the page cache); best of 3 runs.
// - Single 4 KiB append + fdatasync (like fio's `fdatasync=1`): a preallocated file, each
//   4 KiB written at the next offset and made durable before the next one starts, by
//   `File.writeAndSync` as the log does (a linked chain: direct syscalls on either backend, see
//   `FileSystem.perform`).
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

enum DiskLimits {
    static let sequentialWriteBytes = 1 << 20
    static let syncWriteBytes = 4096

    /// The system name of the disk rows: both issue lone writes and write+fdatasync chains,
    /// which the file layer runs as direct syscalls on either backend (`FileSystem.perform`).
    static let systemName = "disk (pwrite)"

    /// Writes `totalBytes` in 1 MiB writes to a fresh file, then fdatasyncs it, `runs` times;
    /// returns the row of the fastest run (a limit: buffered writeback on this disk varies by
    /// tens of percent from one run to the next), with 1 MiB writes per second as ops/s and
    /// MB/s (10^6 bytes) among the metrics, the slowest run's MB/s beside it.
    static func sequentialWrite(suite: String, fileSystem: FileSystem, scratch: ScratchSpace, totalBytes: Int, runs: Int = 3) throws -> ResultRow {
        let buffer = AlignedBuffer(count: sequentialWriteBytes)
        fillPseudoRandom(buffer.bytes, seed: 0x5E0)
        let bytes = UnsafeRawBufferPointer(buffer.bytes)
        let writes = max(1, totalBytes / sequentialWriteBytes)
        let progress = ProgressBar("disk sequential write", total: writes * runs)
        var elapsedPerRun: [Double] = []

        for run in 0..<runs {
            let directory = try scratch.freshDirectory("disk-sequential")
            let file = try fileSystem.open(directory + "/sequential.dat", FileSystem.OpenOptions(create: true, truncate: true))
            let start = monotonicNanoseconds()
            for i in 0..<writes {
                try file.write(bytes, at: UInt64(i) * UInt64(sequentialWriteBytes))
                if i & 63 == 0 { progress.update(done: run * writes + i) }
            }
            try file.dataSync()
            elapsedPerRun.append(seconds(from: start, to: monotonicNanoseconds()))
            file.close()
            try scratch.discard(directory)
        }

        progress.finish()
        let written = Double(writes * sequentialWriteBytes)
        let best = elapsedPerRun.min()!
        let worst = elapsedPerRun.max()!
        return ResultRow(
            suite: suite, workload: "seq write 1 MiB + fdatasync", system: systemName,
            operationsPerSecond: Double(writes) / best, p50Microseconds: nil, p99Microseconds: nil,
            ratioVersusPeer: nil,
            metrics: [
                Metric(key: "mb_per_sec", label: "MB/s", value: written / best / 1e6, decimals: 1),
                Metric(key: "slowest_run_mb_per_sec", label: "slowest run MB/s", value: written / worst / 1e6, decimals: 1),
                Metric(key: "runs", label: "runs", value: Double(runs)),
                Metric(key: "mib_written_per_run", label: "MiB/run", value: written / 1_048_576),
                Metric(key: "seconds", label: "s", value: best, decimals: 2),
            ])
    }

    /// `count` times: write 4 KiB at the next offset of a preallocated file and fdatasync it.
    /// Returns fdatasyncs per second with p50/p99 of each write+fdatasync.
    static func syncedAppends(suite: String, fileSystem: FileSystem, scratch: ScratchSpace, count: Int) throws -> ResultRow {
        let directory = try scratch.freshDirectory("disk-fdatasync")
        let page = AlignedBuffer(count: syncWriteBytes)
        fillPseudoRandom(page.bytes, seed: 0xFD5)
        let bytes = UnsafeRawBufferPointer(page.bytes)
        let file = try fileSystem.open(directory + "/fdatasync.dat", FileSystem.OpenOptions(create: true, truncate: true))
        // Reserve the blocks first and make that durable, as the log does for each segment, so
        // the timed fdatasyncs carry only the data and the extent conversion of each write.
        try file.preallocate(at: 0, count: UInt64(count) * UInt64(syncWriteBytes))
        try file.sync()
        try fileSystem.syncDirectory(directory)
        let samples = LatencySamples(capacity: count)
        let progress = ProgressBar("disk 4 KiB write + fdatasync", total: count)

        let start = monotonicNanoseconds()
        for i in 0..<count {
            let before = monotonicNanoseconds()
            try file.writeAndSync(bytes, at: UInt64(i) * UInt64(syncWriteBytes))
            samples.record(nanoseconds: monotonicNanoseconds() - before)
            if i & 127 == 0 { progress.update(done: i) }
        }
        let elapsed = seconds(from: start, to: monotonicNanoseconds())

        progress.finish()
        file.close()
        try scratch.discard(directory)
        let latency = percentiles(of: [samples])
        return ResultRow(
            suite: suite, workload: "4 KiB write + fdatasync", system: systemName,
            operationsPerSecond: Double(count) / elapsed,
            p50Microseconds: latency?.p50Microseconds, p99Microseconds: latency?.p99Microseconds,
            ratioVersusPeer: nil,
            metrics: [
                Metric(key: "fdatasyncs", label: "fdatasyncs", value: Double(count)),
                Metric(key: "max_us", label: "max us", value: latency?.maxMicroseconds ?? 0),
                Metric(key: "seconds", label: "s", value: elapsed, decimals: 2),
            ])
    }
}
