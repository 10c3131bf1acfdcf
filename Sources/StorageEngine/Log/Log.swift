import CLibURing
#if canImport(Glibc)
import Glibc
import Synchronization
#endif

/// The durable event log: the spine of the engine.
///
/// Every write command is appended here and acknowledged under the sync policy before any
/// structure applies it; every structure is a consumer that reads the log from its own
/// checkpoint. See `LogFormat` for the bytes on disk.
///
/// Group commit (policy `.always`): an appender encodes its record into the shared pending
/// buffer under the lock and then waits until the durable LSN reaches its own. If no write is in
/// flight, it becomes the leader: it takes the whole pending buffer (its record and every record
/// appended since the last write), releases the lock, writes the buffer and fdatasyncs it (one
/// linked io_uring submission), then publishes the new durable LSN and wakes the followers.
/// Appenders that arrive during a write buffer their records for the next leader. So N
/// concurrent appenders share about one fdatasync per round instead of N.
///
/// Wakeups are targeted, because with many appenders on few cores waking everyone at every
/// sync costs more than the sync: each lead writes one numbered *batch*, and an appender whose
/// record is in the batch in flight sleeps on that batch's futex word (two words, by the
/// batch's parity: at most one batch is in flight and one pending). The leader bumps the word
/// and wakes exactly those appenders; they see their LSN acknowledged in the lock-free atomic
/// and return without taking the lock. Of the appenders whose records are pending, one is the
/// *next leader* (waiting on the lock's third condition, signalled when the write in flight
/// ends, then gathering); the others sleep on the pending batch's word.
///
/// Thread safety and invariants (all fields below `lock` are read and written with it held):
/// - at most one write is in flight (`writing`), so file ranges are written in LSN order;
/// - `durableLSN <= writtenLSN <= nextLSN - 1`;
/// - the pending buffer holds exactly the records `pendingFirstLSN...nextLSN - 1` and starts at
///   file offset `pendingOffset` of the current segment;
/// - after an I/O error while writing, `failure` is set for good: nothing later is acknowledged
///   (a failed fdatasync may have lost dirty pages, so a retry could acknowledge lost data);
/// - a segment is rolled (sealed with an fdatasync, next one created and synced, directory
///   synced) with the lock held and no write in flight, so no record straddles two segments.
public final class Log: @unchecked Sendable {
    // @unchecked: mutable state is only touched with `lock` held, as documented above.
    // @exclusivity(unchecked) on the fields every append touches: the lock already makes
    // their accesses exclusive, and the runtime's checks cost as much as encoding a record.
    public let directory: String
    public let options: LogOptions
    public let fileSystem: FileSystem

    private let lock = ConditionLock()

    private struct SegmentInfo {
        var firstLSN: UInt64
        var path: String
    }

    private var segments: [SegmentInfo] = []
    @exclusivity(unchecked) private var current: File
    @exclusivity(unchecked) private var pendingOffset: UInt64
    /// Where the current segment's preallocated space ends: space is reserved ahead of the
    /// writes in chunks, so fdatasync rarely has a size change to persist and a small log does
    /// not hold a whole segment's worth of disk.
    private var preallocatedEnd: UInt64 = 0
    static let preallocationChunk: UInt64 = 4 << 20
    /// Under sync `always`, reserved space is also written with zeros (once, by the leader that
    /// reserves it), so the extents are already written when records land there: fallocate
    /// leaves them unwritten, and converting the blocks a batch fills is a metadata change
    /// every fdatasync then has to write too (measured: a 14 KiB write + fdatasync ran at
    /// about 3,200/s into fallocated space and 5,500-8,200/s into zero-filled space).
    private let zeroFillsReservedSpace: Bool
    @exclusivity(unchecked) private var pending: WriteBuffer
    @exclusivity(unchecked) private var spare: WriteBuffer
    @exclusivity(unchecked) private var nextLSN: UInt64
    @exclusivity(unchecked) private var writtenLSN: UInt64
    @exclusivity(unchecked) private var durableLSN: UInt64
    @exclusivity(unchecked) private var writing = false
    @exclusivity(unchecked) private var failure: IOError?
    @exclusivity(unchecked) private var isClosed = false
    private var checkpoints: [String: UInt64]
    private var syncThread: BackgroundThread?
    private var fdatasyncCount: UInt64 = 0
    private var writeCount: UInt64 = 0
    /// Group commit: how many records the next sync may expect (the last synced batch, whose
    /// appenders were just released, plus what was appended while it ran), a moving average of
    /// how long a write plus fdatasync takes, and whether a would-be leader is waiting.
    @exclusivity(unchecked) private var expectedBatchRecords: UInt64 = 0
    /// The longest a next leader waits for the appenders just released. Appenders that do real
    /// work between records (a post validates, writes the tree and fans out: 32 posters on two
    /// cores need about a millisecond to append again) miss a short window, and the batches
    /// then alternate between two halves of them, each waiting for two syncs. Bounded by a
    /// quarter of the average sync, so it costs a fast disk next to nothing. It was 300 µs: on
    /// this machine's disk (about 4 ms per fdatasync) the social suite's 32-poster burst row
    /// carried 16.4-16.9 records per fdatasync with it and 17.7-23.2 with 2 ms, side by side.
    static let gatherNanosecondsMax: UInt64 = 2_000_000
    private var syncNanosAverage: UInt64 = 0
    @exclusivity(unchecked) private var gathering = false
    /// Whether a waiter has taken the role of the next leader (waits for the write in flight,
    /// then gathers and leads the pending batch); at most one at a time.
    private var nextLeaderWaiting = false
    /// When the gathering next leader stops waiting for appenders and leads (0: not set).
    private var gatherDeadline: UInt64 = 0
    /// The number the pending buffer's batch gets when a leader takes it (then incremented), and
    /// the batch in flight and its last LSN (while `writing`).
    private var pendingBatch: UInt64 = 1
    private var inFlightBatch: UInt64 = 0
    private var inFlightLastLSN: UInt64 = 0
    /// Two futex words, bumped when a batch of that parity ends (written, synced or failed), so
    /// its waiters wake; a roll or a failure bumps both. Allocated once, freed in deinit.
    private let batchWords: UnsafeMutablePointer<UInt32>
    /// Histogram of records per fdatasync: buckets 1, 2-3, 4-7, ... 2^k..2^(k+1)-1.
    private var batchHistogram = [UInt64](repeating: 0, count: 16)
    /// Lock-free copies for readers that must not show unacknowledged records (see
    /// `acknowledgedSequenceNumber`): the last LSN appended, and the last acknowledged under
    /// the sync policy. Stored with the lock held, whenever the locked values change.
    private let appendedAtomic = Atomic<UInt64>(0)
    private let acknowledgedAtomic = Atomic<UInt64>(0)
    /// Asynchronous acknowledgement (`awaitAcknowledgement(through:)`): the suspended waiters,
    /// sorted by LSN, and the committer thread that leads their writes and resumes them (started
    /// by the first such wait; stopped by `close()`). The committer sleeps on the second
    /// condition when no waiter is left (`committerIdle`; under `always` and `interval` nobody
    /// else uses that condition: the background writer of `off` does, and `off` never waits).
    @exclusivity(unchecked) private var asyncWaiters: [AsyncWaiter] = []
    private var committer: BackgroundThread?
    @exclusivity(unchecked) private var committerIdle = false

    // MARK: Opening and recovery

    /// Opens (creating if needed) the log in `directory` and recovers it: every segment is
    /// scanned and verified; at the first torn or corrupt record the log is cut there, later
    /// segments are set aside, and the report says what was dropped. A corrupted record is never
    /// handed out.
    public static func open(directory: String, fileSystem: FileSystem, options: LogOptions = LogOptions()) throws(LogError) -> (Log, LogRecoveryReport) {
        do throws(IOError) {
            try fileSystem.makeDirectory(directory)
        } catch {
            throw .io(error)
        }
        let checkpoints = try CheckpointFile.load(directory: directory, fileSystem: fileSystem)
        var report = LogRecoveryReport()
        let recovered: Recovered
        do throws(IOError) {
            recovered = try recover(directory: directory, fileSystem: fileSystem, options: options, report: &report)
        } catch {
            throw .io(error)
        }
        report.lastLSN = recovered.nextLSN - 1
        report.firstLSN = recovered.segments.first?.firstLSN ?? recovered.nextLSN
        for (name, lsn) in checkpoints where lsn > report.lastLSN { report.checkpointsAhead.append(name) }
        let log = Log(directory: directory, fileSystem: fileSystem, options: options, recovered: recovered, checkpoints: checkpoints)
        return (log, report)
    }

    private struct Recovered {
        var segments: [SegmentInfo]
        var current: File
        var endOffset: UInt64
        var nextLSN: UInt64
        /// How far space is reserved (and, under `always`, zero-filled) past the end: known for a
        /// segment just created; 0 for a recovered one (the first write reserves again).
        var reservedEnd: UInt64
    }

    private init(directory: String, fileSystem: FileSystem, options: LogOptions, recovered: Recovered, checkpoints: [String: UInt64]) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.options = options
        self.segments = recovered.segments
        self.current = recovered.current
        self.pendingOffset = recovered.endOffset
        self.preallocatedEnd = recovered.reservedEnd
        self.nextLSN = recovered.nextLSN
        self.writtenLSN = recovered.nextLSN - 1
        self.durableLSN = recovered.nextLSN - 1
        appendedAtomic.store(recovered.nextLSN - 1, ordering: .relaxed)
        acknowledgedAtomic.store(recovered.nextLSN - 1, ordering: .relaxed)
        self.checkpoints = checkpoints
        self.zeroFillsReservedSpace = Self.zeroFills(options)
        batchWords = .allocate(capacity: 2)
        batchWords.initialize(repeating: 0, count: 2)
        let capacity = max(options.writeBufferBytes * 2, 64 << 10)
        self.pending = WriteBuffer(capacity: capacity)
        self.spare = WriteBuffer(capacity: capacity)
        if case .interval(let ms) = options.sync {
            // The thread holds the log until `close()` stops it: closing is required.
            syncThread = BackgroundThread { [self] in
                self.runIntervalSync(nanoseconds: UInt64(ms) * 1_000_000)
            }
        } else if options.sync == .off {
            // Writes full buffers to the kernel so appenders only encode (closing is required).
            syncThread = BackgroundThread { [self] in self.runBackgroundWriter() }
        }
    }

    deinit {
        pending.free()
        spare.free()
        batchWords.deallocate()
    }

    private static func recover(directory: String, fileSystem: FileSystem, options: LogOptions, report: inout LogRecoveryReport) throws(IOError) -> Recovered {
        let names = try fileSystem.listDirectory(directory)
        let found = names.compactMap { name in LogFormat.firstLSN(ofSegmentNamed: name).map { SegmentInfo(firstLSN: $0, path: directory + "/" + name) } }
            .sorted { $0.firstLSN < $1.firstLSN }
        var valid: [SegmentInfo] = []
        var expected = found.first?.firstLSN ?? 1
        var last: (file: File, end: UInt64, dirty: Bool)? = nil
        var index = 0
        scan: while index < found.count {
            let segment = found[index]
            if segment.firstLSN != expected {
                report.problem = "segment \(segment.path) starts at LSN \(segment.firstLSN), expected \(expected)"
                break
            }
            let file = try fileSystem.open(segment.path)
            let size = try file.size()
            report.segmentsScanned += 1
            var header = [UInt8](repeating: 0, count: LogFormat.segmentHeaderBytes)
            let got = try readHeader(file, into: &header)
            let headerProblem = got < LogFormat.segmentHeaderBytes ? .badChecksum
                : header.withUnsafeBytes { LogFormat.checkSegmentHeader($0, expectedFirstLSN: segment.firstLSN) }
            if let headerProblem {
                if case .unknownVersion(let v) = headerProblem {
                    file.close()
                    // Not damage: a newer socialdb wrote it. Refuse rather than cut.
                    throw IOError(errno: EPROTO, operation: .read, path: segment.path + " (log format version \(v) unknown)")
                }
                report.problem = "segment \(segment.path) has a bad header (\(headerProblem))"
                file.close()
                break
            }
            var scanner = SegmentScanner(file: file, fileSize: size, firstLSN: segment.firstLSN)
            while true {
                switch try scanner.next() {
                case .record:
                    report.recordsScanned += 1
                case .end:
                    let extent = try scanner.nonZeroExtent(from: scanner.offset)
                    if extent > 0 && index + 1 < found.count {
                        report.problem = "non-zero bytes after the end of records in \(segment.path) at offset \(scanner.offset)"
                    }
                    report.droppedBytes += extent
                    valid.append(segment)
                    last?.file.close()
                    last = (file, scanner.offset, extent > 0)
                    expected = scanner.expectedLSN
                    if report.problem != nil { index += 1; break scan }
                    index += 1
                    continue scan
                case .problem(let what):
                    report.problem = "\(segment.path): \(what)"
                    report.droppedBytes += try scanner.nonZeroExtent(from: scanner.offset)
                    valid.append(segment)
                    last?.file.close()
                    last = (file, scanner.offset, true)
                    expected = scanner.expectedLSN
                    index += 1
                    break scan
                }
            }
        }
        // Everything from `index` on follows the problem: set it aside, never delete it.
        while index < found.count {
            let path = found[index].path
            var n = 1
            while fileSystem.exists("\(path).corrupt-\(n)") { n += 1 }
            try fileSystem.rename(path, to: "\(path).corrupt-\(n)")
            report.quarantinedSegments.append("\(path).corrupt-\(n)")
            index += 1
        }
        if !report.quarantinedSegments.isEmpty { try fileSystem.syncDirectory(directory) }

        guard let last else {
            let (file, info) = try createSegment(directory: directory, firstLSN: expected, fileSystem: fileSystem, options: options)
            return Recovered(segments: [info], current: file, endOffset: UInt64(LogFormat.firstRecordOffset), nextLSN: expected,
                             reservedEnd: options.preallocate ? min(preallocationChunk, UInt64(options.segmentSizeBytes)) : 0)
        }
        if last.dirty {
            // Cut the torn or corrupt tail, zero the space again, and make the cut durable before
            // anything new is written after it.
            try last.file.truncate(to: last.end)
            if options.preallocate, last.end < UInt64(options.segmentSizeBytes) {
                try last.file.preallocate(at: last.end, count: min(preallocationChunk, UInt64(options.segmentSizeBytes) - last.end))
            }
            try last.file.sync()
        }
        return Recovered(segments: valid, current: last.file, endOffset: last.end, nextLSN: expected, reservedEnd: 0)
    }

    private static func readHeader(_ file: File, into header: inout [UInt8]) throws(IOError) -> Int {
        var failure: IOError?
        var got = 0
        header.withUnsafeMutableBytes { raw in
            do throws(IOError) { got = try file.read(into: raw, at: 0) } catch { failure = error }
        }
        if let failure { throw failure }
        return got
    }

    static func zeroFills(_ options: LogOptions) -> Bool {
        return options.preallocate && options.sync == .always
    }

    /// Writes zeros over `[from, to)` (reserved space past every record), in 1 MiB writes.
    static func writeZeros(_ file: File, from: UInt64, to: UInt64) throws(IOError) {
        guard to > from else { return }
        let zeros = AlignedBuffer(count: Int(min(to - from, 1 << 20)))
        var offset = from
        while offset < to {
            let count = Int(min(UInt64(zeros.count), to - offset))
            try file.write(UnsafeRawBufferPointer(start: zeros.baseAddress, count: count), at: offset)
            offset += UInt64(count)
        }
    }

    private static func createSegment(directory: String, firstLSN: UInt64, fileSystem: FileSystem, options: LogOptions) throws(IOError) -> (File, SegmentInfo) {
        let path = directory + "/" + LogFormat.segmentName(firstLSN: firstLSN)
        if fileSystem.exists(path) {
            // Left by a crash during a previous creation, before any record went in.
            try fileSystem.remove(path)
        }
        let file = try fileSystem.open(path, FileSystem.OpenOptions(create: true, exclusive: true))
        do {
            let reserved = min(preallocationChunk, UInt64(options.segmentSizeBytes))
            if options.preallocate { try file.preallocate(at: 0, count: reserved) }
            if zeroFills(options) { try writeZeros(file, from: UInt64(LogFormat.firstRecordOffset), to: reserved) }
            let page = AlignedBuffer(count: LogFormat.firstRecordOffset)
            LogFormat.encodeSegmentHeader(firstLSN: firstLSN, into: page.bytes)
            try file.write(UnsafeRawBufferPointer(page.bytes), at: 0)
            try file.sync()
            try fileSystem.syncDirectory(directory)
        } catch {
            file.close()
            throw error
        }
        return (file, SegmentInfo(firstLSN: firstLSN, path: path))
    }

    // MARK: Appending

    /// Appends one record and returns its LSN once it is acknowledged under the sync policy.
    /// Blocks the calling thread while waiting (for `.always`, about one fdatasync).
    ///
    /// With `waitForAcknowledgement: false` it returns the LSN as soon as the record is in the
    /// log's buffer, and the caller waits later with `waitForAcknowledgement(through:)`: a
    /// writer that serializes its appends under a lock of its own releases that lock first, so
    /// the appends of many writers share one fdatasync (group commit).
    @discardableResult
    public func append(type: UInt16, payload: UnsafeRawBufferPointer, waitForAcknowledgement: Bool = true) throws(LogError) -> UInt64 {
        guard type != 0 else { throw .invalidArgument("record type 0 is reserved") }
        guard payload.count <= options.maxPayloadBytes else {
            throw .invalidArgument("payload of \(payload.count) bytes exceeds \(options.maxPayloadBytes)")
        }
        lock.lock()
        do {
            try checkUsableLocked()
        } catch {
            lock.unlock()
            throw error
        }
        let size = LogFormat.recordHeaderBytes + payload.count
        // Roll when the record does not fit. Re-check after every wait: another appender may
        // have rolled already. maxPayloadBytes guarantees a record fits an empty segment.
        while pendingOffset + UInt64(pending.count + size) > UInt64(options.segmentSizeBytes) {
            do {
                if writing {
                    lock.wait()
                    try checkUsableLocked()
                } else {
                    try rollLocked()
                }
            } catch {
                lock.unlock()
                throw error
            }
        }
        pending.reserve(size)
        let lsn = nextLSN
        nextLSN += 1
        pending.count += LogFormat.encodeRecord(lsn: lsn, type: type, payload: payload, into: pending.end)
        appendedAtomic.store(lsn, ordering: .releasing)
        // Wake the gathering leader once, when the batch it waits for is complete.
        if gathering && lsn - writtenLSN >= expectedBatchRecords { lock.signalThird() }
        switch options.sync {
        case .always:
            if waitForAcknowledgement { try waitUnlocking(for: lsn, durable: true) } else { lock.unlock() }
        case .interval:
            if waitForAcknowledgement { try waitUnlocking(for: lsn, durable: false) } else { lock.unlock() }
        case .off:
            defer { lock.unlock() }
            acknowledgedAtomic.store(lsn, ordering: .releasing)
            // A full buffer goes to the background writer; an appender writes only when the
            // writer has fallen a whole buffer behind (back-pressure). The buffer never grows
            // past its capacity for that: it waits for the write in flight instead (growing
            // it meant copying it and faulting in fresh pages, as costly as the encoding).
            if pending.count >= options.writeBufferBytes {
                if pending.count >= 2 * options.writeBufferBytes {
                    while writing && failure == nil { lock.wait() }
                    try checkUsableLocked()
                    if pending.count >= options.writeBufferBytes { try leadLocked(sync: false) }
                } else if !writing {
                    lock.signalSecond()
                }
            }
        }
        return lsn
    }

    /// Waits until every record through `lsn` is acknowledged under the sync policy (durable
    /// for `.always`, written to the operating system for `.interval`, appended for `.off`),
    /// leading the write and fdatasync when none is in flight. Throws the error that stopped the
    /// log when a record through `lsn` can no longer be acknowledged.
    public func waitForAcknowledgement(through lsn: UInt64) throws(LogError) {
        if acknowledgedAtomic.load(ordering: .acquiring) >= lsn { return }
        lock.lock()
        switch options.sync {
        case .always: try waitUnlocking(for: lsn, durable: true)
        case .interval: try waitUnlocking(for: lsn, durable: false)
        case .off: lock.unlock()
        }
    }

    // MARK: Asynchronous acknowledgement

    /// Resumed with nil (acknowledged) or the error that means it never will be.
    private typealias AcknowledgementContinuation = UnsafeContinuation<LogError?, Never>

    private struct AsyncWaiter {
        var lsn: UInt64
        var continuation: AcknowledgementContinuation
    }

    /// Suspends the calling task until every record through `lsn` is acknowledged under the
    /// sync policy (durable for `.always`, written for `.interval`, appended for `.off`), or
    /// throws the error that means it never will be: the log's I/O failure (a failed write or
    /// fdatasync, after which nothing is acknowledged), or `.closed` for a record appended while
    /// `close()` finished. No OS thread blocks per waiter: a committer thread (one per log,
    /// started by the first call, stopped by `close()`, which is then required) leads the
    /// write and fdatasync of pending records like a waiting appender thread would, and after
    /// each batch resumes every task whose LSN it made durable, in LSN order, with no lock held:
    /// resuming a task enqueues it on its executor, so 64 waiters cost a few pool-thread
    /// wakeups per batch instead of 64 thread wakeups. A lone waiter (no write in flight, no
    /// other waiter, the last batch one record) leads the write and fdatasync itself on its
    /// own thread instead, without suspending, as an appender thread would.
    ///
    /// Cancellation does not end the wait: the record is in the log already and will become
    /// durable or fail with the log; the task learns which. (Cancel-and-return would leave the
    /// caller unable to tell an acknowledged write from a lost one.)
    public func awaitAcknowledgement(through lsn: UInt64) async throws(LogError) {
        if acknowledgedAtomic.load(ordering: .acquiring) >= lsn { return }
        let error: LogError? = await withUnsafeContinuation { (continuation: AcknowledgementContinuation) in
            self.registerAsyncWaiter(lsn: lsn, continuation)
        }
        if let error { throw error }
    }

    /// Appends one record without blocking the thread and returns its LSN once it is
    /// acknowledged (`append(..., waitForAcknowledgement: false)`, then
    /// `awaitAcknowledgement(through:)`). The payload is copied before the task suspends.
    @discardableResult
    public func appendAsync(type: UInt16, payload: UnsafeRawBufferPointer) async throws(LogError) -> UInt64 {
        let lsn = try append(type: type, payload: payload, waitForAcknowledgement: false)
        try await awaitAcknowledgement(through: lsn)
        return lsn
    }

    @discardableResult
    public func appendAsync(type: UInt16, payload: [UInt8]) async throws(LogError) -> UInt64 {
        let lsn = try append(type: type, payload: payload, waitForAcknowledgement: false)
        try await awaitAcknowledgement(through: lsn)
        return lsn
    }

    /// The LSN through which records are acknowledged under the policy (lock held).
    private var acknowledgedLocked: UInt64 {
        switch options.sync {
        case .always: return durableLSN
        case .interval: return writtenLSN
        case .off: return nextLSN - 1
        }
    }

    private func registerAsyncWaiter(lsn: UInt64, _ continuation: AcknowledgementContinuation) {
        lock.lock()
        if acknowledgedLocked >= lsn {
            lock.unlock()
            continuation.resume(returning: nil)
            return
        }
        let refusal: LogError? = failure.map { .io($0) } ?? (isClosed ? .closed
            : lsn >= nextLSN ? .invalidArgument("LSN \(lsn) has not been appended (next is \(nextLSN))") : nil)
        if let refusal {
            lock.unlock()
            continuation.resume(returning: refusal)
            return
        }
        if options.sync == .always && !writing && !nextLeaderWaiting && asyncWaiters.isEmpty && expectedBatchRecords <= 1 {
            // A lone appender (the last batch held one record and nothing else waits): it leads
            // the write and fdatasync on its own thread, as an appender thread would, instead
            // of a hop to the committer and back (two thread wakeups per record: it halved a
            // lone task's rate). The thread is busy for one fdatasync. Under load (the last
            // batch held more) tasks always suspend.
            do {
                try waitUnlocking(for: lsn, durable: true)
            } catch {
                continuation.resume(returning: error)
                return
            }
            continuation.resume(returning: nil)
            return
        }
        // Sorted by LSN; waits come nearly in LSN order, so the scan from the end is short.
        var index = asyncWaiters.count
        while index > 0 && asyncWaiters[index - 1].lsn > lsn { index -= 1 }
        asyncWaiters.insert(AsyncWaiter(lsn: lsn, continuation: continuation), at: index)
        if committer == nil {
            committer = BackgroundThread { [self] in self.runCommitter() }
        } else if committerIdle {
            lock.signalSecond()
        }
        lock.unlock()
    }

    /// The committer thread: resumes the waiters whose records are acknowledged (after every
    /// batch, before anything else, so they append again while the next batch gathers), and
    /// otherwise waits for the lowest waiting LSN as an appender thread would (leading the write
    /// and fdatasync when no write is in flight, gathering, sleeping on the batch in flight).
    /// The lowest LSN, not the highest: waiting for a pending record while one in flight ends
    /// would hold its waiters a whole sync longer. After a failure or `close()`, every waiter
    /// left is resumed with the error.
    private func runCommitter() {
        var ready: [AsyncWaiter] = []
        lock.lock()
        while true {
            let acknowledged = acknowledgedLocked
            var count = 0
            while count < asyncWaiters.count && asyncWaiters[count].lsn <= acknowledged { count += 1 }
            let stopped: LogError? = failure.map { .io($0) } ?? (isClosed ? .closed : nil)
            if stopped != nil || count > 0 {
                // Acknowledged ones first (they are durable), then, once stopped, all the rest.
                let taken = stopped == nil ? count : asyncWaiters.count
                if taken > 0 {
                    ready.append(contentsOf: asyncWaiters[0..<taken])
                    asyncWaiters.removeFirst(taken)
                    lock.unlock()
                    for index in ready.indices {
                        ready[index].continuation.resume(returning: index < count ? nil : stopped)
                    }
                    ready.removeAll(keepingCapacity: true)
                    lock.lock()
                    continue
                }
                if isClosed { break }
            }
            if asyncWaiters.isEmpty || failure != nil {
                // A waiter that arrives after a failure is refused at once, without this thread.
                committerIdle = true
                lock.waitSecond(nanoseconds: 100_000_000)
                committerIdle = false
                continue
            }
            // A failure is seen at the top of the loop; `.closed` the same way.
            _ = try? waitStepLocked(for: asyncWaiters[0].lsn, durable: options.sync == .always)
        }
        lock.unlock()
    }

    /// The last LSN appended (acknowledged or not). Lock-free.
    public var appendedSequenceNumber: UInt64 { appendedAtomic.load(ordering: .acquiring) }

    /// The last LSN acknowledged under the sync policy: durable (`.always`), written to the
    /// operating system (`.interval`) or appended (`.off`). Lock-free. A reader that may see
    /// the effects of records appended without waiting checks that this has reached
    /// `appendedSequenceNumber` before it answers.
    public var acknowledgedSequenceNumber: UInt64 { acknowledgedAtomic.load(ordering: .acquiring) }

    /// Publishes the acknowledged LSN after `writtenLSN` or `durableLSN` moved (lock held).
    private func publishAcknowledgedLocked() {
        switch options.sync {
        case .always: acknowledgedAtomic.store(durableLSN, ordering: .releasing)
        case .interval: acknowledgedAtomic.store(writtenLSN, ordering: .releasing)
        case .off: break
        }
    }

    @discardableResult
    public func append(type: UInt16, payload: [UInt8], waitForAcknowledgement: Bool = true) throws(LogError) -> UInt64 {
        var result: Result<UInt64, LogError> = .failure(.closed)
        payload.withUnsafeBytes { raw in
            result = Result { () throws(LogError) -> UInt64 in
                try append(type: type, payload: raw, waitForAcknowledgement: waitForAcknowledgement)
            }
        }
        return try result.get()
    }

    /// Writes every buffered record to the operating system (no fdatasync).
    public func flush() throws(LogError) {
        lock.lock()
        defer { lock.unlock() }
        try checkUsableLocked()
        try waitLocked(for: nextLSN - 1, durable: false)
    }

    /// Makes every record appended so far durable.
    public func sync() throws(LogError) {
        lock.lock()
        defer { lock.unlock() }
        try checkUsableLocked()
        try waitLocked(for: nextLSN - 1, durable: true)
    }

    private func checkUsableLocked() throws(LogError) {
        if isClosed { throw .closed }
        if let failure { throw .io(failure) }
    }

    /// Waits (leading a write when none is in flight) until `lsn` is written, or durable.
    /// Called and returns with the lock held.
    private func waitLocked(for lsn: UInt64, durable: Bool) throws(LogError) {
        while true {
            if try waitStepLocked(for: lsn, durable: durable) == .reached { return }
        }
    }

    /// The same, but returns (or throws) with the lock released: a waiter woken because its
    /// batch ended checks the lock-free acknowledged LSN and leaves without taking the lock
    /// again (with many appenders, taking it again is where their time went).
    private func waitUnlocking(for lsn: UInt64, durable: Bool) throws(LogError) {
        // The acknowledged atomic says "durable" under `.always` and "written" under `.interval`.
        let acknowledgedMeansReached = durable == (options.sync == .always)
        while true {
            let step: WaitStep
            do {
                step = try waitStepLocked(for: lsn, durable: durable, unlockingWhenSleeping: true)
            } catch {
                lock.unlock()
                throw error
            }
            switch step {
            case .reached:
                lock.unlock()
                return
            case .again:
                continue
            case .sleptUnlocked:
                if acknowledgedMeansReached && acknowledgedAtomic.load(ordering: .acquiring) >= lsn { return }
                lock.lock()
            }
        }
    }

    private enum WaitStep { case reached, again, sleptUnlocked }

    /// One step of waiting for `lsn` (lock held): returns `.reached` when it is written (or
    /// durable), else leads, or sleeps until something changed and returns `.again` (lock held)
    /// or, with `unlockingWhenSleeping`, `.sleptUnlocked` after a futex sleep (lock released).
    ///
    /// Group commit: a record in the batch in flight sleeps on that batch's word. A record
    /// still pending has one waiter as the next leader: it waits for the write in flight to
    /// end, then, when fewer records are pending than the last sync released plus what arrived
    /// while it ran, the released appenders are probably about to append again, so it waits for
    /// them (the append that completes the batch wakes it) up to a quarter of the average sync
    /// time (at most `gatherNanosecondsMax`) before it leads. One appender alone never waits. Other waiters of
    /// pending records sleep on the pending batch's word.
    private func waitStepLocked(for lsn: UInt64, durable: Bool, unlockingWhenSleeping: Bool = false) throws(LogError) -> WaitStep {
        if (durable ? durableLSN : writtenLSN) >= lsn { return .reached }
        if let failure { throw .io(failure) }
        // Appended while `close()` waited for the rest: never written now.
        if isClosed { throw .closed }
        if writing && lsn <= inFlightLastLSN {
            sleepOnBatchLocked(inFlightBatch, unlocking: unlockingWhenSleeping)
            return unlockingWhenSleeping ? .sleptUnlocked : .again
        }
        if nextLeaderWaiting {
            sleepOnBatchLocked(pendingBatch, unlocking: unlockingWhenSleeping)
            return unlockingWhenSleeping ? .sleptUnlocked : .again
        }
        if writing {
            nextLeaderWaiting = true
            lock.waitThird()
            nextLeaderWaiting = false
            return .again
        }
        if durable && options.sync == .always && syncNanosAverage > 0 && nextLSN - 1 - writtenLSN < expectedBatchRecords {
            let now = Self.monotonicNanos()
            if gatherDeadline == 0 { gatherDeadline = now + min(syncNanosAverage / 4, Self.gatherNanosecondsMax) }
            if now < gatherDeadline {
                nextLeaderWaiting = true
                gathering = true
                lock.waitThird(nanoseconds: gatherDeadline - now)
                gathering = false
                nextLeaderWaiting = false
                return .again
            }
        }
        gatherDeadline = 0
        if unlockingWhenSleeping {
            // Wakes its batch after releasing the lock, so the woken appenders do not find it held.
            try leadLocked(sync: durable, unlockingAtEnd: true)
            return .sleptUnlocked
        }
        try leadLocked(sync: durable)
        return .again
    }

    /// Sleeps until batch `batch` ends (or a roll or failure wakes everyone). Lock held on
    /// entry; released during the sleep, and held again on return unless `unlocking`.
    private func sleepOnBatchLocked(_ batch: UInt64, unlocking: Bool) {
        let word = batchWords + Int(batch & 1)
        // Read under the lock: the word can only move (with the lock held) after this read,
        // so the futex sleeps only if the batch has not ended yet.
        let seen = socialdb_load_u32(word)
        lock.unlock()
        socialdb_futex_wait(word, seen)
        if !unlocking { lock.lock() }
    }

    /// Ends batch `batch` for its sleepers (lock held), or every batch (a roll, a failure).
    private func wakeBatchLocked(_ batch: UInt64?) {
        wakeWords(endBatchLocked(batch))
    }

    /// Marks batch `batch` (or every batch) ended and signals the next leader and the other
    /// waiters of the lock (lock held); returns the words whose sleepers `wakeWords` must wake,
    /// which may be done after releasing the lock.
    private func endBatchLocked(_ batch: UInt64?) -> ClosedRange<Int> {
        let words = batch.map { Int($0 & 1)...Int($0 & 1) } ?? 0...1
        for parity in words { socialdb_increment_u32(batchWords + parity) }
        if nextLeaderWaiting { lock.signalThird() }
        lock.broadcast()
        return words
    }

    private func wakeWords(_ words: ClosedRange<Int>) {
        for parity in words { socialdb_futex_wake_all(batchWords + parity) }
    }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Writes the pending buffer (and fdatasyncs, with `sync`) with the lock released during
    /// the I/O. Called with the lock held and no write in flight; returns with the lock held.
    /// With `unlockingAtEnd`, it returns with the lock released instead (it throws with it held).
    private func leadLocked(sync: Bool, unlockingAtEnd: Bool = false) throws(LogError) {
        precondition(!writing, "two writers at once")
        writing = true
        gatherDeadline = 0
        let batchNumber = pendingBatch
        pendingBatch += 1
        inFlightBatch = batchNumber
        inFlightLastLSN = nextLSN - 1
        swap(&pending, &spare)
        let batch = spare
        let offset = pendingOffset
        let lastInBatch = nextLSN - 1
        let writtenBefore = writtenLSN
        pendingOffset += UInt64(batch.count)
        let file = current
        // Reserve the next chunk when this write goes past the reserved space.
        var extendTo: UInt64 = 0
        var zeroFrom: UInt64 = 0
        if options.preallocate && offset + UInt64(batch.count) > preallocatedEnd {
            let chunk = Self.preallocationChunk
            extendTo = min(UInt64(options.segmentSizeBytes), (offset + UInt64(batch.count) + chunk - 1) / chunk * chunk + chunk)
            // Past every byte written so far (this batch included): zeros never cover a record.
            zeroFrom = max(preallocatedEnd, offset + UInt64(batch.count))
            preallocatedEnd = extendTo
        }
        let extendFrom = offset
        lock.unlock()
        let started = sync ? Self.monotonicNanos() : 0
        var error: IOError?
        do throws(IOError) {
            if extendTo > extendFrom {
                try file.preallocate(at: extendFrom, count: extendTo - extendFrom)
                if zeroFillsReservedSpace { try Self.writeZeros(file, from: zeroFrom, to: extendTo) }
            }
            if batch.count > 0 {
                let bytes = UnsafeRawBufferPointer(start: batch.base, count: batch.count)
                if sync { try file.writeAndSync(bytes, at: offset) } else { try file.write(bytes, at: offset) }
            } else if sync {
                try file.dataSync()
            }
        } catch let e {
            error = e
        }
        let elapsed = sync ? Self.monotonicNanos() - started : 0
        lock.lock()
        writing = false
        spare.count = 0
        if batch.count > 0 { writeCount += 1 }
        if sync { fdatasyncCount += 1 }
        if sync && batch.count > 0 && error == nil {
            let records = lastInBatch - writtenBefore
            expectedBatchRecords = records + (nextLSN - 1 - lastInBatch)
            syncNanosAverage = syncNanosAverage == 0 ? elapsed : (syncNanosAverage * 7 + elapsed) / 8
            let bucket = min(15, 63 - Int(records.leadingZeroBitCount))
            batchHistogram[bucket] += 1
        }
        if let error {
            failure = error
            wakeBatchLocked(nil)
            throw .io(error)
        }
        if batch.count > 0 { writtenLSN = lastInBatch }
        if sync { durableLSN = max(durableLSN, batch.count > 0 ? lastInBatch : writtenBefore) }
        publishAcknowledgedLocked()
        let words = endBatchLocked(batchNumber)
        if unlockingAtEnd { lock.unlock() }
        wakeWords(words)
    }

    /// Seals the current segment and starts the next. Lock held throughout (rare: once per
    /// segment) and no write in flight.
    private func rollLocked() throws(LogError) {
        precondition(!writing, "roll during a write")
        gatherDeadline = 0
        let firstLSN = nextLSN
        do throws(IOError) {
            if pending.count > 0 {
                try current.writeAndSync(UnsafeRawBufferPointer(start: pending.base, count: pending.count), at: pendingOffset)
                writeCount += 1
            } else {
                try current.dataSync()
            }
            fdatasyncCount += 1
            writtenLSN = nextLSN - 1
            durableLSN = nextLSN - 1
            publishAcknowledgedLocked()
            pending.count = 0
            let (file, info) = try Self.createSegment(directory: directory, firstLSN: firstLSN, fileSystem: fileSystem, options: options)
            current.close()
            current = file
            segments.append(info)
            pendingOffset = UInt64(LogFormat.firstRecordOffset)
            preallocatedEnd = options.preallocate ? min(Self.preallocationChunk, UInt64(options.segmentSizeBytes)) : 0
        } catch {
            failure = error
            wakeBatchLocked(nil)
            throw .io(error)
        }
        wakeBatchLocked(nil)
    }

    /// Sync `off`: writes the pending buffer whenever it is full (appenders signal the second
    /// condition), swapping buffers so appenders keep encoding into the other one.
    private func runBackgroundWriter() {
        lock.lock()
        defer { lock.unlock() }
        while !isClosed && failure == nil {
            if !writing && pending.count >= options.writeBufferBytes {
                try? leadLocked(sync: false)
                continue
            }
            lock.waitSecond(nanoseconds: 50_000_000)
        }
    }

    private func runIntervalSync(nanoseconds: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        while !isClosed {
            lock.wait(nanoseconds: nanoseconds)
            if isClosed || failure != nil { break }
            if !writing && durableLSN < nextLSN - 1 {
                try? leadLocked(sync: true)
            }
        }
    }

    // MARK: State

    /// The LSN the next record will get.
    public var nextSequenceNumber: UInt64 { lock.withLock { nextLSN } }
    /// The last LSN written to the operating system (what readers can see).
    public var writtenSequenceNumber: UInt64 { lock.withLock { writtenLSN } }
    /// The last LSN made durable by fdatasync.
    public var durableSequenceNumber: UInt64 { lock.withLock { durableLSN } }
    /// The first LSN still on disk.
    public var firstSequenceNumber: UInt64 { lock.withLock { segments.first?.firstLSN ?? nextLSN } }
    /// The error that stopped writing, if one did.
    public var writeFailure: IOError? { lock.withLock { failure } }

    public struct Statistics: Sendable {
        public var segments: Int
        public var nextLSN: UInt64
        public var durableLSN: UInt64
        public var writes: UInt64
        public var fdatasyncs: UInt64
        /// Synced batches by size: index k counts batches of 2^k to 2^(k+1)-1 records.
        public var batchSizeHistogram: [UInt64]
        public var syncPolicy: LogSyncPolicy
    }

    public var statistics: Statistics {
        lock.withLock {
            Statistics(segments: segments.count, nextLSN: nextLSN, durableLSN: durableLSN, writes: writeCount,
                       fdatasyncs: fdatasyncCount, batchSizeHistogram: batchHistogram, syncPolicy: options.sync)
        }
    }

    // MARK: Consumers and checkpoints

    /// The checkpoint of a consumer: the last LSN it has made durable in its own files.
    public func checkpoint(of consumer: String) -> UInt64? { lock.withLock { checkpoints[consumer] } }

    public var consumerCheckpoints: [String: UInt64] { lock.withLock { checkpoints } }

    /// Records that `consumer` has made every record up to `lsn` durable in its own files, then
    /// removes the segments that every consumer has passed. `lsn` must be durable in the log.
    public func setCheckpoint(consumer: String, lsn: UInt64) throws(LogError) {
        guard !consumer.isEmpty, consumer.utf8.count <= 255 else { throw .invalidArgument("consumer name must be 1 to 255 bytes") }
        lock.lock()
        defer { lock.unlock() }
        try checkUsableLocked()
        guard lsn < nextLSN else { throw .invalidArgument("checkpoint \(lsn) is past the last LSN \(nextLSN - 1)") }
        try waitLocked(for: lsn, durable: true)
        var updated = checkpoints
        updated[consumer] = lsn
        do throws(IOError) {
            try CheckpointFile.store(updated, directory: directory, fileSystem: fileSystem)
        } catch {
            throw .io(error)
        }
        checkpoints = updated
        try removeObsoleteSegmentsLocked()
        // When every consumer has passed every record and the current segment has grown past a
        // preallocation chunk, start a new segment so the old one can go: a log whose consumers
        // keep up then holds a few MiB on disk, not a whole segment of applied records.
        if let floor = checkpoints.values.min(), floor >= nextLSN - 1, !writing,
           pendingOffset + UInt64(pending.count) >= Self.preallocationChunk {
            try rollLocked()
            try removeObsoleteSegmentsLocked()
        }
    }

    /// Forgets a consumer, so its checkpoint no longer holds segments back.
    public func removeConsumer(_ consumer: String) throws(LogError) {
        lock.lock()
        defer { lock.unlock() }
        try checkUsableLocked()
        var updated = checkpoints
        guard updated.removeValue(forKey: consumer) != nil else { return }
        do throws(IOError) {
            try CheckpointFile.store(updated, directory: directory, fileSystem: fileSystem)
        } catch {
            throw .io(error)
        }
        checkpoints = updated
        try removeObsoleteSegmentsLocked()
    }

    private func removeObsoleteSegmentsLocked() throws(LogError) {
        guard let floor = checkpoints.values.min() else { return }
        var removed = false
        // A segment goes when the next one starts at or below floor + 1: all its records are at
        // or below every checkpoint. The current segment always stays.
        while segments.count > 1 && segments[1].firstLSN <= floor + 1 {
            do throws(IOError) {
                try fileSystem.remove(segments[0].path)
            } catch {
                throw .io(error)
            }
            segments.removeFirst()
            removed = true
        }
        if removed {
            do throws(IOError) { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        }
    }

    // MARK: Reading

    /// A reader of the records from `lsn` on, up to what has been written when it reads.
    public func reader(from lsn: UInt64) throws(LogError) -> LogReader {
        let first = firstSequenceNumber
        guard lsn >= first else { throw .invalidArgument("LSN \(lsn) is no longer in the log (first is \(first))") }
        return LogReader(log: self, from: lsn)
    }

    /// Where the segment holding `lsn` is, for readers: its path and first LSN.
    func segmentLocation(for lsn: UInt64) -> (path: String, firstLSN: UInt64, nextFirstLSN: UInt64?)? {
        lock.withLock {
            guard let i = segments.lastIndex(where: { $0.firstLSN <= lsn }) else { return nil }
            return (segments[i].path, segments[i].firstLSN, i + 1 < segments.count ? segments[i + 1].firstLSN : nil)
        }
    }

    // MARK: Closing

    /// Writes and fdatasyncs whatever is buffered (under every policy), stops the background
    /// thread and closes the files. Later calls throw `.closed`.
    public func close() throws(LogError) {
        lock.lock()
        if isClosed { lock.unlock(); return }
        var result: LogError?
        if failure == nil {
            do throws(LogError) { try waitLocked(for: nextLSN - 1, durable: true) } catch { result = error }
        }
        while writing { lock.wait() }
        isClosed = true
        wakeBatchLocked(nil)
        lock.signalSecond()
        let thread = syncThread
        syncThread = nil
        let asyncCommitter = committer
        committer = nil
        lock.unlock()
        thread?.join()
        // It resumes every waiter left (acknowledged, or with the error) and stops.
        asyncCommitter?.join()
        current.close()
        if let result { throw result }
    }
}

/// A growable byte buffer the log encodes records into. Owned by the log; freed explicitly.
struct WriteBuffer {
    var base: UnsafeMutableRawPointer
    var capacity: Int
    var count = 0

    init(capacity: Int) {
        base = .allocate(byteCount: capacity, alignment: 4096)
        self.capacity = capacity
    }

    var end: UnsafeMutableRawPointer { base + count }

    mutating func reserve(_ extra: Int) {
        if count + extra <= capacity { return }
        let newCapacity = max(capacity * 2, count + extra)
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 4096)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    func free() { base.deallocate() }
}
