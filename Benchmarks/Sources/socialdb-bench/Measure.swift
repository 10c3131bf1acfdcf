// The measuring tools every suite shares: a monotonic clock, per-thread latency samples with
// percentiles, a start gate for threads, a scratch directory and a progress bar.
//
// Nothing here uses Foundation: these run inside the timed loops.
import StorageEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on CLOCK_MONOTONIC (a vDSO call, no syscall, no allocation).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID): what a loop costs on
/// one core even when other processes share the machine and stretch the wall clock.
@inline(__always)
func threadCPUNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// CPU time of the whole process (every thread) in nanoseconds (CLOCK_PROCESS_CPUTIME_ID).
func processCPUNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// Seconds between two `monotonicNanoseconds()` readings.
func seconds(from start: UInt64, to end: UInt64) -> Double {
    Double(end - start) / 1e9
}

/// Latencies recorded by one thread, in nanoseconds, into memory allocated (and touched) before
/// the timed loop starts, so recording costs one store.
///
/// Ownership: exactly one thread records into an instance while a measurement runs; it is read
/// only after that thread has been joined.
final class LatencySamples: @unchecked Sendable {
    // @unchecked: one writer thread at a time, read after join(), as documented above.
    let capacity: Int
    private let base: UnsafeMutablePointer<UInt64>
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0, "latency samples need room for at least one value")
        self.capacity = capacity
        base = .allocate(capacity: capacity)
        base.initialize(repeating: 0, count: capacity)
    }

    deinit { base.deallocate() }

    @inline(__always)
    func record(nanoseconds: UInt64) {
        precondition(count < capacity, "more latency samples than reserved")
        base[count] = nanoseconds
        count += 1
    }

    var values: UnsafeBufferPointer<UInt64> { UnsafeBufferPointer(start: base, count: count) }
}

/// p50 and p99 in microseconds.
struct LatencyPercentiles {
    var p50Microseconds: Double
    var p99Microseconds: Double
    var maxMicroseconds: Double
}

/// Merges the samples of every thread, sorts them and takes nearest-rank percentiles.
func percentiles(of samples: [LatencySamples]) -> LatencyPercentiles? {
    var all: [UInt64] = []
    all.reserveCapacity(samples.reduce(0) { $0 + $1.count })
    for sample in samples { all.append(contentsOf: sample.values) }
    guard !all.isEmpty else { return nil }
    all.sort()
    func rank(_ fraction: Double) -> Double {
        let index = min(all.count - 1, max(0, Int((fraction * Double(all.count)).rounded(.up)) - 1))
        return Double(all[index]) / 1000
    }
    return LatencyPercentiles(p50Microseconds: rank(0.50), p99Microseconds: rank(0.99),
                              maxMicroseconds: Double(all[all.count - 1]) / 1000)
}

/// Holds threads back until every one of them has started, so a measurement times only the
/// work, not thread creation. Waiting threads sleep in short naps: the gate opens once per row.
final class StartGate: Sendable {
    private let arrived = Atomic<Int>(0)
    private let isOpen = Atomic<Bool>(false)

    /// Called by each worker thread; returns once the gate opens.
    func arriveAndWait() {
        arrived.wrappingAdd(1, ordering: .acquiringAndReleasing)
        while !isOpen.load(ordering: .acquiring) { usleep(50) }
    }

    /// Called by the measuring thread: waits until `threads` workers are at the gate.
    func waitForArrivals(_ threads: Int) {
        while arrived.load(ordering: .acquiring) < threads { usleep(100) }
    }

    func open() { isOpen.store(true, ordering: .releasing) }
}

/// The first error a worker thread met, kept for the measuring thread to report after join().
final class FirstFailure: Sendable {
    private let message = Mutex<String?>(nil)

    func record(_ text: String) {
        message.withLock { if $0 == nil { $0 = text } }
    }

    var text: String? { message.withLock { $0 } }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    var description: String
}

/// A fresh directory per measurement under one run directory, removed between rows so that
/// no row reads or overwrites another's files, and removed as a whole at the end.
struct ScratchSpace {
    let fileSystem: FileSystem
    let runDirectory: String

    init(fileSystem: FileSystem, base: String) throws {
        self.fileSystem = fileSystem
        runDirectory = base + "/run-\(getpid())"
        try fileSystem.removeTree(runDirectory)
        try fileSystem.makeDirectory(runDirectory)
    }

    /// An empty directory for one measurement.
    func freshDirectory(_ name: String) throws -> String {
        let path = runDirectory + "/" + name
        try fileSystem.removeTree(path)
        try fileSystem.makeDirectory(path)
        return path
    }

    /// Deletes a measurement's files and flushes the file system, so the next row starts with
    /// no dirty pages or pending discards of this one.
    func discard(_ path: String) throws {
        try fileSystem.removeTree(path)
        Glibc.sync()
    }

    func removeAll() throws {
        try fileSystem.removeTree(runDirectory)
    }
}

/// A one-line progress bar on standard error, drawn only when standard error is a terminal.
/// `update` is cheap when the whole percent has not changed; callers also call it only every
/// few thousand operations.
final class ProgressBar: Sendable {
    let label: String
    let total: Int
    let isEnabled: Bool
    private let shownPercent = Atomic<Int>(-1)

    init(_ label: String, total: Int) {
        self.label = label
        self.total = max(1, total)
        isEnabled = isatty(STDERR_FILENO) != 0
        update(done: 0)
    }

    func update(done: Int) {
        guard isEnabled else { return }
        let percent = min(100, done * 100 / total)
        guard shownPercent.exchange(percent, ordering: .relaxed) != percent else { return }
        let width = 30
        let filled = percent * width / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let line = "\r  \(label) [\(bar)] \(percent)%"
        writeStandardError(line)
    }

    func finish() {
        guard isEnabled else { return }
        writeStandardError("\r\u{1B}[2K")
    }
}

/// Fills `bytes` with a fixed pseudo-random pattern (xorshift), so payloads are not all zeros.
func fillPseudoRandom(_ bytes: UnsafeMutableRawBufferPointer, seed: UInt64) {
    var state = seed | 1
    for i in 0..<bytes.count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
}

/// Writes text to standard error with one write(2) (the C `stderr` global is not usable from
/// Swift 6 code: it is shared mutable state).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let n = write(STDERR_FILENO, bytes.baseAddress! + done, bytes.count - done)
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            done += n
        }
    }
}
