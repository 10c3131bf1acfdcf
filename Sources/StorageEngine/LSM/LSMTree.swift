#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The live tables, by level: an immutable snapshot that readers take and keep for one
/// operation. Level 0 holds flushed tables, oldest first, which may overlap; each deeper level is
/// a sorted run of non-overlapping tables.
final class Version: Sendable {
    let levels: [[Table]]
    /// Every table is mapped: a batch multi-get can walk its blocks in place, all keys at once
    /// (`LSMTree.pipelinedGet`).
    let allMapped: Bool
    init(levels: [[Table]]) {
        self.levels = levels
        allMapped = levels.allSatisfy { $0.allSatisfy(\.isMapped) }
    }
}

/// Tables opened unmapped because mmap lacked a resource (`Table.mapFallback`): how many since
/// the tree opened, and the last reason (STATS shows both). Any thread may record.
final class MapFallbacks: Sendable {
    private let state = Mutex<(count: Int, last: IOError?)>((0, nil))

    func record(_ table: Table) {
        guard let error = table.mapFallback else { return }
        state.withLock { $0 = ($0.count + 1, error) }
    }

    var snapshot: (count: Int, last: IOError?) { state.withLock { $0 } }
}

/// The LSM tree: the store for tweets and the engine's other keyed records.
///
/// Writes go to the durable log first (the tree's write-ahead log: one record per batch, its LSN
/// the batch's sequence number), then into the active memtable. A full memtable is frozen with
/// the LSN boundary it covers and flushed by the background thread into level-0 tables, split at
/// key-space boundaries; the manifest then records the tables and the covered LSN, and the log's
/// `lsm` checkpoint moves so old segments can go. Compaction moves tables that overlap nothing
/// below (increasing snowflake keys are never rewritten) and merges the rest, dropping shadowed
/// versions always and tombstones at the bottom.
///
/// Reads see every acknowledged write: memtables newest first, then level 0 newest first, then
/// each level's one candidate table (bloom filter first, then the block through the cache).
public final class LSMTree: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `state` (see each property); memtables guard
    // themselves; tables are immutable.
    public let directory: String
    public let options: LSMOptions
    let fileSystem: FileSystem
    let log: Log
    let cache: BlockCache
    /// Recently read records (a no-op when `options.recordCacheBytes` is 0), and the batch
    /// sequence (a seqlock) that keeps multi-gets whole with respect to write batches.
    let records: RecordCache
    let mapFallbacks: MapFallbacks
    static let consumerName = "lsm"

    /// Opens table `meta` for reading (mapped when `options.mmapReads`), counting a fallback to
    /// unmapped reads.
    private static func openTable(_ meta: TableMeta, directory: String, fileSystem: FileSystem, cache: BlockCache,
                                  options: LSMOptions, fallbacks: MapFallbacks) throws(LSMError) -> Table {
        let table = try Table(meta: meta, directory: directory, fileSystem: fileSystem, cache: cache, mapped: options.mmapReads)
        fallbacks.record(table)
        return table
    }

    private struct Frozen {
        let memtable: Memtable
        /// The first LSN not in this memtable: it holds exactly the batches below it not yet
        /// in older memtables or tables.
        let boundary: UInt64
        let epoch: Int
    }

    private let state = ConditionLock()
    // Guarded by `state`:
    private var active = Memtable()
    private var activeEpoch = 0
    private var frozen: [Frozen] = []
    private var inflight: [Int: Int] = [:]
    private var version: Version
    private var manifest: ManifestState
    private var userBytes: UInt64 = 0
    private var failure: LSMError?
    private var closed = false
    private var stopBackground = false
    private var backgroundBusy = false
    private var compactPointer: [[UInt8]]
    private var counters = Counters()
    private var background: BackgroundThread?
    /// Serialises inserts: the memtable has one writer at a time.
    private let insertLock = Mutex(())
    /// Serialises structural work (flushes, compactions): one manifest edit at a time, whether
    /// the background thread or a caller of `compactAll` runs it.
    private let workLock = ConditionLock()

    struct Counters {
        var flushes = 0
        var compactions = 0
        var trivialMoves = 0
        var writeStalls = 0
        /// Data blocks written by flushes and compactions since the tree opened.
        var blocksWritten = BlockStats()
    }

    // MARK: opening

    /// Opens (or creates) the tree in `directory`, replaying the log from the LSN its tables
    /// cover. `log` is shared: the tree writes records of `options.logRecordType` and skips others.
    public static func open(directory: String, fileSystem: FileSystem, log: Log, options: LSMOptions = LSMOptions()) throws(LSMError) -> LSMTree {
        do throws(IOError) { try fileSystem.makeDirectory(directory) } catch { throw .io(error) }
        var m: ManifestState
        if let existing = try Manifest.read(directory: directory, fileSystem: fileSystem) {
            m = existing
            if m.levels.count < options.levels {
                m.levels += Array(repeating: [], count: options.levels - m.levels.count)
            }
        } else {
            m = ManifestState(levels: options.levels)
            try Manifest.write(m, directory: directory, fileSystem: fileSystem)
        }
        // Delete what no manifest names: tables of a flush or compaction cut short, a temp manifest.
        var live = Set<UInt64>()
        for level in m.levels { for t in level { live.insert(t.number) } }
        let names: [String]
        do throws(IOError) { names = try fileSystem.listDirectory(directory) } catch { throw .io(error) }
        var removed = false
        for name in names {
            if let n = TableFormat.parseFileName(name), !live.contains(n) || n >= m.nextFileNumber {
                do throws(IOError) { try fileSystem.remove(directory + "/" + name) } catch { throw .io(error) }
                removed = true
            } else if name == Manifest.fileName + ".tmp" {
                do throws(IOError) { try fileSystem.remove(directory + "/" + name) } catch { throw .io(error) }
                removed = true
            }
        }
        if removed {
            do throws(IOError) { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        }
        let cache = BlockCache(capacityBytes: options.blockCacheBytes)
        let fallbacks = MapFallbacks()
        var levels: [[Table]] = []
        for level in m.levels {
            var tables: [Table] = []
            for meta in level {
                tables.append(try openTable(meta, directory: directory, fileSystem: fileSystem, cache: cache, options: options, fallbacks: fallbacks))
            }
            levels.append(tables)
        }
        let tree = LSMTree(directory: directory, options: options, fileSystem: fileSystem, log: log, cache: cache,
                           mapFallbacks: fallbacks, manifest: m, version: Version(levels: levels))
        try tree.replay()
        if options.backgroundWork {
            tree.background = BackgroundThread { [tree] in tree.backgroundLoop() }
        }
        return tree
    }

    private init(directory: String, options: LSMOptions, fileSystem: FileSystem, log: Log, cache: BlockCache,
                 mapFallbacks: MapFallbacks, manifest: ManifestState, version: Version) {
        self.mapFallbacks = mapFallbacks
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.log = log
        self.cache = cache
        self.records = RecordCache(capacityBytes: options.recordCacheBytes)
        self.manifest = manifest
        self.version = version
        self.userBytes = manifest.userBytes
        self.compactPointer = Array(repeating: [], count: manifest.levels.count)
    }

    /// Re-applies the log's batches above the covered LSN to the memtable.
    private func replay() throws(LSMError) {
        let covered = manifest.coveredLSN
        if log.checkpoint(of: Self.consumerName) == nil || log.checkpoint(of: Self.consumerName)! < covered {
            if covered > 0 && covered < log.nextSequenceNumber {
                do throws(LogError) { try log.setCheckpoint(consumer: Self.consumerName, lsn: covered) } catch { throw .log(error) }
            }
        }
        let start = max(covered + 1, log.firstSequenceNumber)
        guard start < log.nextSequenceNumber else { return }
        let reader: LogReader
        do throws(LogError) { reader = try log.reader(from: start) } catch { throw .log(error) }
        let type = options.logRecordType
        var replayError: LSMError?
        while true {
            var lastLSN: UInt64 = 0
            let more: Bool
            do {
                more = try reader.withNext { lsn, recordType, payload in
                    guard recordType == type else { return }
                    lastLSN = lsn
                    do throws(LSMError) {
                        try WriteBatch.forEach(payload) { index, kind, key, value in
                            active.insert(key: key, sequence: WriteBatch.sequence(lsn: lsn, index: index), kind: kind, value: value)
                        }
                    } catch {
                        replayError = error
                    }
                }
            } catch let e as LogError {
                throw .log(e)
            } catch {
                throw .failed("log replay: \(error)")
            }
            if let replayError { throw replayError }
            if !more { break }
            if lastLSN > 0 && active.approximateBytes >= options.memtableBytes {
                freezeLocked(boundary: lastLSN + 1)
            }
        }
        if !options.backgroundWork { try runPendingWork() }
    }

    // MARK: writing

    /// Applies `batch` atomically and durably (under the log's sync policy): appended to the log,
    /// then inserted into the memtable. Returns the batch's LSN.
    ///
    /// `waitForAcknowledgement: false` inserts the batch as soon as it is appended, without
    /// waiting for the log to acknowledge it: the caller must then call
    /// `log.waitForAcknowledgement(through:)` before it acknowledges the write, and must not let
    /// a reader answer with what it read before the log acknowledged every record appended so
    /// far (`Log.acknowledgedSequenceNumber`). Flushes never cover an unacknowledged record.
    @discardableResult
    public func write(_ batch: WriteBatch, waitForAcknowledgement: Bool = true) throws(LSMError) -> UInt64 {
        guard !batch.isEmpty else { return log.nextSequenceNumber - 1 }
        // Register as in flight in the current epoch (waiting if flushes are behind).
        state.lock()
        while failure == nil && !closed && options.backgroundWork &&
              (frozen.count >= 2 || version.levels[0].count >= options.level0StopWrites) {
            counters.writeStalls += 1
            state.wait()
        }
        if let failure { state.unlock(); throw failure }
        if closed { state.unlock(); throw .closed }
        let epoch = activeEpoch
        inflight[epoch, default: 0] += 1
        state.unlock()

        let lsn: UInt64
        let appended: Result<UInt64, LogError> = batch.encoded.withUnsafeBytes { p in
            do throws(LogError) {
                return .success(try log.append(type: options.logRecordType, payload: p, waitForAcknowledgement: waitForAcknowledgement))
            } catch { return .failure(error) }
        }
        do throws(LogError) {
            lsn = try appended.get()
        } catch {
            finishInflight(epoch)
            throw .log(error)
        }
        // Pick the memtable that owns this LSN: the oldest frozen one whose boundary is above it.
        state.lock()
        var target = active
        for f in frozen where lsn < f.boundary {
            target = f.memtable
            break
        }
        state.unlock()
        insertLock.withLock { _ in
            batch.encoded.withUnsafeBytes { payload in
                records.beginWrite()
                // One hold of the memtable's write lock per batch: readers see all of it or none.
                target.insertBatch { insert in
                    try? WriteBatch.forEach(payload) { index, kind, key, value in
                        insert(key, WriteBatch.sequence(lsn: lsn, index: index), kind, value)
                    }
                }
                // The memtable has the new versions: the cached old ones go (see RecordCache).
                if records.enabled { try? WriteBatch.forEach(payload) { _, _, key, _ in records.remove(key) } }
                records.endWrite()
            }
        }
        state.lock()
        userBytes += UInt64(batch.payloadBytes)
        inflight[epoch]! -= 1
        if inflight[epoch] == 0 { inflight[epoch] = nil }
        var inline = false
        if active.approximateBytes >= options.memtableBytes {
            freezeLocked(boundary: log.nextSequenceNumber)  // wakes the background thread
            inline = !options.backgroundWork
        }
        // A flush waits for the writers of its frozen epoch to finish (`flushOldest`): wake it
        // when the last of an older epoch is done. Nothing waits on a write of the active epoch
        // (stalled writers and `flush()` wait for the background thread), so most writes wake
        // no one: a broadcast per write woke the background thread to find nothing to do, a
        // context switch and a compaction pick per write.
        if epoch != activeEpoch && inflight[epoch] == nil { state.broadcast() }
        state.unlock()
        if inline { try runPendingWork() }
        return lsn
    }

    private func finishInflight(_ epoch: Int) {
        state.withLock {
            inflight[epoch]! -= 1
            if inflight[epoch] == 0 { inflight[epoch] = nil }
            state.broadcast()
        }
    }

    /// Convenience: one put.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8]) throws(LSMError) -> UInt64 {
        var b = WriteBatch(reservingCapacity: key.count + value.count + 16)
        b.put(key, value)
        return try write(b)
    }

    /// Convenience: one delete.
    @discardableResult
    public func delete(_ key: [UInt8]) throws(LSMError) -> UInt64 {
        var b = WriteBatch(reservingCapacity: key.count + 16)
        b.delete(key)
        return try write(b)
    }

    /// Freezes the active memtable; the state lock is held.
    private func freezeLocked(boundary: UInt64) {
        guard active.entries > 0 else { return }
        frozen.append(Frozen(memtable: active, boundary: boundary, epoch: activeEpoch))
        active = Memtable()
        activeEpoch += 1
        invalidateSnapshotLocked()
        state.broadcast()
    }

    /// Freezes the memtable and waits until every frozen memtable is in tables.
    public func flush() throws(LSMError) {
        state.lock()
        if let failure { state.unlock(); throw failure }
        if closed { state.unlock(); throw .closed }
        freezeLocked(boundary: log.nextSequenceNumber)
        state.unlock()
        if !options.backgroundWork { try runPendingWork(); return }
        state.lock()
        defer { state.unlock() }
        while failure == nil && !frozen.isEmpty { state.wait() }
        if let failure { throw failure }
    }

    /// Waits until no flush or compaction is due (runs them inline without background work).
    public func waitForIdle() throws(LSMError) {
        if !options.backgroundWork { try runPendingWork(); return }
        state.lock()
        defer { state.unlock() }
        while failure == nil && (!frozen.isEmpty || backgroundBusy || pickCompactionLocked() != nil) {
            state.broadcast()
            state.wait()
        }
        if let failure { throw failure }
    }

    /// Compacts until every level is within its budget and level 0 is empty: everything ends in
    /// sorted runs (used by tests and by the benchmark's space figure).
    public func compactAll() throws(LSMError) {
        try flush()
        try waitForIdle()
        var forced = true
        while forced {
            forced = false
            workLock.lock()
            defer { workLock.unlock() }
            let job: Compaction? = state.withLock {
                for level in 0..<(manifest.levels.count - 1) where !manifest.levels[level].isEmpty {
                    // Is there anything below? If not, nothing to merge into: move on only if
                    // level is not the deepest non-empty one.
                    let deeper = manifest.levels[(level + 1)...].contains { !$0.isEmpty }
                    if level == 0 || deeper {
                        return makeCompactionLocked(level: level, all: true)
                    }
                }
                return nil
            }
            if let job {
                forced = true
                try runCompaction(job)
            }
        }
    }

    // MARK: background work

    private func backgroundLoop() {
        while true {
            state.lock()
            while !stopBackground && failure == nil && frozen.isEmpty && pickCompactionLocked() == nil {
                state.wait()
            }
            if stopBackground || failure != nil {
                state.unlock()
                return
            }
            backgroundBusy = true
            state.unlock()
            do throws(LSMError) {
                try doOneUnitOfWork()
            } catch {
                state.withLock {
                    if failure == nil { failure = .failed("background work: \(error)") }
                }
            }
            state.withLock {
                backgroundBusy = false
                state.broadcast()
            }
        }
    }

    /// Flushes one frozen memtable or runs one compaction; returns false when there was nothing.
    @discardableResult
    private func doOneUnitOfWork() throws(LSMError) -> Bool {
        workLock.lock()
        defer { workLock.unlock() }
        let hasFrozen = state.withLock { !frozen.isEmpty }
        if hasFrozen {
            try flushOldest()
            return true
        }
        let job = state.withLock { pickCompactionLocked() }
        guard let job else { return false }
        try runCompaction(job)
        return true
    }

    private func runPendingWork() throws(LSMError) {
        while try doOneUnitOfWork() {}
    }

    private func allocateFileNumber() -> UInt64 {
        state.withLock {
            let n = manifest.nextFileNumber
            manifest.nextFileNumber += 1
            return n
        }
    }

    /// Writes entries from `next` into tables cut at key-space changes (the first key byte) and
    /// at the table size. `next` returns false when done.
    private func writeTables(_ produce: (inout TableSink) throws(LSMError) -> Void) throws(LSMError) -> [TableMeta] {
        var sink = TableSink(tree: self)
        do throws(LSMError) {
            try produce(&sink)
            try sink.finish()
        } catch {
            sink.abandon()
            throw error
        }
        do throws(IOError) { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        return sink.outputs
    }

    struct TableSink {
        let tree: LSMTree
        var builder: TableBuilder?
        var outputs: [TableMeta] = []
        var lastSpace: UInt8 = 0

        init(tree: LSMTree) { self.tree = tree }

        mutating func add(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(LSMError) {
            let space = key[0]
            if let b = builder, space != lastSpace || b.estimatedFileBytes >= UInt64(tree.options.tableBytes) {
                try finish()
            }
            if builder == nil {
                builder = try TableBuilder(fileSystem: tree.fileSystem, directory: tree.directory,
                                           number: tree.allocateFileNumber(), options: tree.options)
            }
            lastSpace = space
            try builder!.add(key: key, value: value)
        }

        mutating func finish() throws(LSMError) {
            guard var b = builder else { return }
            builder = nil
            outputs.append(try b.finish())
            let stats = b.blockStats
            tree.state.withLock { tree.counters.blocksWritten.add(stats) }
        }

        mutating func abandon() {
            builder?.abandon(fileSystem: tree.fileSystem)
            builder = nil
            for t in outputs { try? tree.fileSystem.remove(tree.directory + "/" + TableFormat.fileName(t.number)) }
            outputs = []
        }
    }

    private func flushOldest() throws(LSMError) {
        state.lock()
        let f = frozen[0]
        while (inflight[f.epoch] ?? 0) > 0 || inflight.keys.contains(where: { $0 < f.epoch }) { state.wait() }
        state.unlock()
        let memtable = f.memtable
        // A memtable may hold batches whose log records are not durable yet (writers that
        // insert before the log acknowledges, `write(_:waitForAcknowledgement: false)`): the
        // tables may hold only durable data, so the log is synced through the boundary first,
        // and when that fails (the log failed) nothing is flushed. The next open replays the
        // log from the manifest's covered LSN, so whatever reached the disk comes back there.
        if log.durableSequenceNumber < f.boundary - 1 {
            do throws(LogError) { try log.sync() } catch {
                if log.durableSequenceNumber < f.boundary - 1 { throw .log(error) }
            }
        }
        let outputs = try writeTables { (sink) throws(LSMError) in
            var n = memtable.first()
            let key = KeyBuffer()
            var previousUser = KeyBuffer()
            var havePrevious = false
            while let node = n {
                let user = Memtable.userKey(node)
                // Only the newest version of a key leaves the memtable.
                if !(havePrevious && InternalKey.compareUser(previousUser.bytes, user) == 0) {
                    key.set(user)
                    var t = Memtable.trailer(node).littleEndian
                    withUnsafeBytes(of: &t) { key.append($0) }
                    try sink.add(key: key.bytes, value: Memtable.value(node))
                    previousUser.set(user)
                    havePrevious = true
                }
                n = Memtable.next(node, 0)
            }
            _ = previousUser
            previousUser = KeyBuffer()
        }
        var tables: [Table] = []
        for meta in outputs {
            tables.append(try Self.openTable(meta, directory: directory, fileSystem: fileSystem, cache: cache, options: options, fallbacks: mapFallbacks))
        }
        // The manifest may claim only what the log has made durable. The boundary is the log's
        // next LSN at the freeze, and a batch whose append failed (the log failed under it) has
        // an LSN below it but is not in the memtable; its record may still be in the log file,
        // and the next open replays it into every other structure. Claiming it here would leave
        // the tree alone without it (found by the I/O-error torture: a delete answered `io`
        // that search and timelines applied at reopen and the tree did not).
        let covered = min(f.boundary - 1, log.durableSequenceNumber)
        var m = state.withLock { manifest }
        m.levels[0] += outputs
        m.coveredLSN = max(m.coveredLSN, covered)
        m.flushBytes += outputs.reduce(0) { $0 + $1.fileBytes }
        m.userBytes = state.withLock { userBytes }
        m.nextFileNumber = state.withLock { manifest.nextFileNumber }
        try Manifest.write(m, directory: directory, fileSystem: fileSystem)
        state.withLock {
            manifest = m
            var levels = version.levels
            levels[0] += tables
            version = Version(levels: levels)
            frozen.removeFirst()
            invalidateSnapshotLocked()
            counters.flushes += 1
            state.broadcast()
        }
        if m.coveredLSN > 0 {
            do throws(LogError) { try log.setCheckpoint(consumer: Self.consumerName, lsn: m.coveredLSN) } catch { throw .log(error) }
        }
    }

    // MARK: compaction

    struct Compaction {
        var level: Int
        var inputs: [TableMeta]
        var below: [TableMeta]
        var moves: [TableMeta]
    }

    private func levelTarget(_ level: Int) -> Double {
        var t = Double(options.level1Bytes)
        if level > 1 { for _ in 1..<level { t *= Double(options.levelSizeMultiplier) } }
        return t
    }

    @inline(__always)
    private static func overlaps(_ a: TableMeta, _ lo: ArraySlice<UInt8>, _ hi: ArraySlice<UInt8>) -> Bool {
        !(a.largestUser.lexicographicallyPrecedes(lo) || hi.lexicographicallyPrecedes(a.smallestUser))
    }

    /// The next compaction due, or nil. State lock held.
    private func pickCompactionLocked() -> Compaction? {
        let levels = manifest.levels
        if levels[0].count >= options.level0CompactionTrigger {
            return makeCompactionLocked(level: 0, all: false)
        }
        var best = -1
        var bestScore = 1.0
        for level in 1..<(levels.count - 1) {
            let bytes = Double(levels[level].reduce(0) { $0 + $1.fileBytes })
            let score = bytes / levelTarget(level)
            if score > bestScore { bestScore = score; best = level }
        }
        return best >= 0 ? makeCompactionLocked(level: best, all: false) : nil
    }

    private func makeCompactionLocked(level: Int, all: Bool) -> Compaction? {
        let levels = manifest.levels
        let next = levels[level + 1]
        if level == 0 {
            let l0 = levels[0]
            guard !l0.isEmpty else { return nil }
            // Tables that overlap no other level-0 table and nothing in level 1 move down as they are.
            var moves: [TableMeta] = []
            for (i, t) in l0.enumerated() {
                let alone = !l0.enumerated().contains { j, u in j != i && Self.overlaps(u, t.smallestUser, t.largestUser) }
                    && !next.contains { Self.overlaps($0, t.smallestUser, t.largestUser) }
                if alone { moves.append(t) }
            }
            if !moves.isEmpty { return Compaction(level: 0, inputs: [], below: [], moves: moves) }
            // Otherwise merge the oldest table's overlap component with what it covers in level 1.
            var component = [l0[0]]
            var lo = l0[0].smallestUser
            var hi = l0[0].largestUser
            var grew = true
            while grew {
                grew = false
                for t in l0 where !component.contains(where: { $0.number == t.number }) && Self.overlaps(t, lo, hi) {
                    component.append(t)
                    if t.smallestUser.lexicographicallyPrecedes(lo) { lo = t.smallestUser }
                    if hi.lexicographicallyPrecedes(t.largestUser) { hi = t.largestUser }
                    grew = true
                }
            }
            let below = next.filter { Self.overlaps($0, lo, hi) }
            return Compaction(level: 0, inputs: component, below: below, moves: [])
        }
        let tables = levels[level]
        guard !tables.isEmpty else { return nil }
        if all {
            let lo = tables.first!.smallestUser
            let hi = tables.last!.largestUser
            let below = next.filter { Self.overlaps($0, lo, hi) }
            if below.isEmpty { return Compaction(level: level, inputs: [], below: [], moves: tables) }
            return Compaction(level: level, inputs: tables, below: below, moves: [])
        }
        // Round-robin through the level: the first table after the last one compacted.
        let pointer = compactPointer[level]
        let pick = tables.first { pointer.isEmpty || pointer.lexicographicallyPrecedes($0.smallestUser) } ?? tables[0]
        compactPointer[level] = Array(pick.largestUser)
        let below = next.filter { Self.overlaps($0, pick.smallestUser, pick.largestUser) }
        if below.isEmpty { return Compaction(level: level, inputs: [], below: [], moves: [pick]) }
        return Compaction(level: level, inputs: [pick], below: below, moves: [])
    }

    private func runCompaction(_ job: Compaction) throws(LSMError) {
        let out = job.level + 1
        if !job.moves.isEmpty && job.inputs.isEmpty {
            var m = state.withLock { manifest }
            let moved = Set(job.moves.map(\.number))
            m.levels[job.level].removeAll { moved.contains($0.number) }
            m.levels[out] += job.moves
            m.levels[out].sort { x, y in x.smallest.withUnsafeBytes { a in y.smallest.withUnsafeBytes { b in InternalKey.compare(a, b) < 0 } } }
            m.userBytes = state.withLock { userBytes }
            try Manifest.write(m, directory: directory, fileSystem: fileSystem)
            state.withLock {
                manifest = m
                var levels = version.levels
                let tables = levels[job.level].filter { moved.contains($0.meta.number) }
                levels[job.level].removeAll { moved.contains($0.meta.number) }
                levels[out] += tables
                levels[out].sort { x, y in x.meta.smallest.withUnsafeBytes { a in y.meta.smallest.withUnsafeBytes { b in InternalKey.compare(a, b) < 0 } } }
                version = Version(levels: levels)
                invalidateSnapshotLocked()
                counters.trivialMoves += job.moves.count
                state.broadcast()
            }
            return
        }
        // Merge inputs and the overlapped tables below into new tables of level `out`.
        let current = state.withLock { version }
        let inputNumbers = Set((job.inputs + job.below).map(\.number))
        var sources: [SourceCursor] = []
        for (level, tables) in current.levels.enumerated() where level == job.level || level == out {
            let chosen = tables.filter { inputNumbers.contains($0.meta.number) }
            if level == 0 {
                for t in chosen { sources.append(.table(TableCursor(t, fillCache: false))) }
            } else if !chosen.isEmpty {
                sources.append(.level(LevelCursor(chosen, fillCache: false)))
            }
        }
        var lo = (job.inputs + job.below).map(\.smallestUser).min { $0.lexicographicallyPrecedes($1) }!
        var hi = (job.inputs + job.below).map(\.largestUser).max { $0.lexicographicallyPrecedes($1) }!
        lo = ArraySlice(lo)
        hi = ArraySlice(hi)
        // Tombstones can go when nothing deeper than the output level overlaps the range.
        let bottommost = !current.levels.enumerated().contains { level, tables in
            level > out && tables.contains { Self.overlaps($0.meta, lo, hi) }
        }
        for i in sources.indices { sources[i].seekToFirst() }
        let outputs = try writeTables { (sink) throws(LSMError) in
            let previous = KeyBuffer()
            var havePrevious = false
            while true {
                let best = try Self.pick(sources, largest: false)
                if best < 0 { break }
                let key = sources[best].key
                let user = UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)])
                let isNewest = !(havePrevious && InternalKey.compareUser(previous.bytes, user) == 0)
                if isNewest {
                    previous.set(user)
                    havePrevious = true
                    let kind = key[key.count - 8]
                    if !(bottommost && kind == ValueKind.deletion.rawValue) {
                        try sink.add(key: key, value: sources[best].value)
                    }
                }
                sources[best].next()
            }
        }
        var tables: [Table] = []
        for meta in outputs {
            tables.append(try Self.openTable(meta, directory: directory, fileSystem: fileSystem, cache: cache, options: options, fallbacks: mapFallbacks))
        }
        var m = state.withLock { manifest }
        m.levels[job.level].removeAll { inputNumbers.contains($0.number) }
        m.levels[out].removeAll { inputNumbers.contains($0.number) }
        m.levels[out] += outputs
        m.levels[out].sort { x, y in x.smallest.withUnsafeBytes { a in y.smallest.withUnsafeBytes { b in InternalKey.compare(a, b) < 0 } } }
        m.compactionBytes += outputs.reduce(0) { $0 + $1.fileBytes }
        m.userBytes = state.withLock { userBytes }
        m.nextFileNumber = state.withLock { manifest.nextFileNumber }
        try Manifest.write(m, directory: directory, fileSystem: fileSystem)
        state.withLock {
            manifest = m
            var levels = version.levels
            levels[job.level].removeAll { inputNumbers.contains($0.meta.number) }
            levels[out].removeAll { inputNumbers.contains($0.meta.number) }
            levels[out] += tables
            levels[out].sort { x, y in x.meta.smallest.withUnsafeBytes { a in y.meta.smallest.withUnsafeBytes { b in InternalKey.compare(a, b) < 0 } } }
            version = Version(levels: levels)
            invalidateSnapshotLocked()
            counters.compactions += 1
            state.broadcast()
        }
        // The inputs are no longer named by the manifest; readers holding an older version keep
        // their open file descriptors, so the files can go now.
        for n in inputNumbers {
            cache.evict(file: n)
            try? fileSystem.remove(directory + "/" + TableFormat.fileName(n))
        }
    }

    /// The source whose current entry is the smallest (or largest) internal key, or -1 when
    /// every source is exhausted; a source's read error is thrown. One step of every merge.
    @inline(__always)
    private static func pick(_ sources: [SourceCursor], largest: Bool) throws(LSMError) -> Int {
        var best = -1
        for i in sources.indices {
            if let e = sources[i].error { throw e }
            guard sources[i].isValid else { continue }
            if best < 0 { best = i; continue }
            let c = InternalKey.compare(sources[i].key, sources[best].key)
            if largest ? c > 0 : c < 0 { best = i }
        }
        return best
    }

    // MARK: reading

    /// What a reader needs: the memtables newest first and the version. Rebuilt (under the
    /// state lock) whenever either changes, so a read takes a reference, not an allocation.
    final class Snapshot: Sendable {
        let memtables: [Memtable]
        let version: Version
        init(memtables: [Memtable], version: Version) {
            self.memtables = memtables
            self.version = version
        }
    }

    private var currentSnapshot: Snapshot?

    /// Call with the state lock held after changing `active`, `frozen` or `version`.
    private func invalidateSnapshotLocked() { currentSnapshot = nil }

    func snapshot() throws(LSMError) -> Snapshot {
        state.lock()
        defer { state.unlock() }
        if closed { throw .closed }
        if let s = currentSnapshot { return s }
        var m = [active]
        for f in frozen.reversed() { m.append(f.memtable) }
        let s = Snapshot(memtables: m, version: version)
        currentSnapshot = s
        return s
    }

    /// Calls `body` with the value of `key` and returns its result, or nil when the key is absent
    /// or deleted. The bytes are valid only during the call.
    public func withValue<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) throws(LSMError) -> R? {
        guard records.enabled else { return try withValueUncached(key, body) }
        let token = records.begin()
        let hash = BloomFilter.hash(key)
        if token & 1 == 0 {
            switch records.lookup(key, hash: hash, body) {
            case .value(let result): return result
            case .absent: return nil
            case .miss: break
            }
        }
        var present = false
        let result: R? = try withValueUncached(key) { value -> R in
            present = true
            records.insert(key, hash: hash, value: value, token: token)
            return body(value)
        }
        if !present { records.insertAbsent(key, hash: hash, token: token) }
        return result
    }

    private func withValueUncached<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) throws(LSMError) -> R? {
        let snap = try snapshot()
        for m in snap.memtables {
            if let n = m.find(key) {
                return Memtable.kind(n) == .value ? body(Memtable.value(n)) : nil
            }
        }
        guard let l = try locateInTables(snap.version, key) else { return nil }
        // The block's owner lives until the body is done. (Not `withExtendedLifetime(_:_:)`
        // returning `R?`: in this generic function that looked `Optional<R>`'s metadata up at
        // run time on every read.)
        defer { withExtendedLifetime(l) {} }
        return UInt8(truncatingIfNeeded: l.found.trailer) == ValueKind.value.rawValue ? body(l.view.value(l.found)) : nil
    }

    /// Where a point lookup found its key: the block (a view, plus, for a block that is not a
    /// view of a mapping, the object owning its bytes: keep it alive while reading the view).
    struct Located {
        var view: BlockView
        var owner: Block?
        var found: Block.Found
    }

    /// The newest version of `key` in the tables: its block and place. Not generic, and no
    /// `Result` of a tuple (its metadata was looked up at run time on every call), so the whole
    /// point-lookup path is compiled specialized.
    private func locateInTables(_ version: Version, _ key: UnsafeRawBufferPointer) throws(LSMError) -> Located? {
        let hash = BloomFilter.hash(key)
        var failure: LSMError?
        let located: Located? = withUnsafeTemporaryAllocation(byteCount: key.count + 8, alignment: 8) { buffer in
            if key.count > 0 { buffer.baseAddress!.copyMemory(from: key.baseAddress!, byteCount: key.count) }
            buffer.storeLE(UInt64.max, at: key.count)
            let target = UnsafeRawBufferPointer(buffer)
            var location = SearchLocation()
            while let (table, block) = nextCandidate(version, user: key, target: target, hash: hash, &location) {
                do throws(LSMError) {
                    let (view, owner) = try table.pointBlock(block)
                    if let f = try view.locate(target: target, user: key, file: table.path) {
                        return Located(view: view, owner: owner, found: f)
                    }
                } catch {
                    failure = error
                    return nil
                }
            }
            return nil
        }
        if let failure { throw failure }
        return located
    }

    /// The value of `key`, or nil.
    public func get(_ key: [UInt8]) throws(LSMError) -> [UInt8]? {
        let r: Result<[UInt8]?, LSMError> = key.withUnsafeBytes { k in
            do throws(LSMError) { return .success(try withValue(k) { makeArray($0) }) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Where a point lookup is in its walk over the tables: level, and index within level 0.
    struct SearchLocation {
        var level = 0
        var index = -1
    }

    /// The next table and block that may hold `user`, in newest-first order, or nil.
    private func nextCandidate(_ v: Version, user: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                               hash: UInt64, _ loc: inout SearchLocation) -> (Table, Int)? {
        while let t = nextTable(v, user: user, &loc) {
            if t.mayContain(hash: hash) {
                let b = t.blockIndex(for: target)
                if b < t.blockCount { return (t, b) }
            }
        }
        return nil
    }

    /// The next table whose key range holds `user`, in newest-first order (level 0 newest
    /// first, then one table a level), or nil; its filter is not consulted.
    func nextTable(_ v: Version, user: UnsafeRawBufferPointer, _ loc: inout SearchLocation) -> Table? {
        while loc.level < v.levels.count {
            let tables = v.levels[loc.level]
            if loc.level == 0 {
                if loc.index < 0 { loc.index = tables.count }
                while loc.index > 0 {
                    loc.index -= 1
                    let t = tables[loc.index]
                    if inRange(t.meta, user) { return t }
                }
                loc.level = 1
                loc.index = -1
                continue
            }
            loc.level += 1
            // The one table whose range may hold the key.
            var lo = 0
            var hi = tables.count
            while lo < hi {
                let mid = (lo + hi) / 2
                let c = tables[mid].meta.largest.withUnsafeBytes { InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: $0[..<($0.count - 8)]), user) }
                if c < 0 { lo = mid + 1 } else { hi = mid }
            }
            if lo < tables.count, inRange(tables[lo].meta, user) { return tables[lo] }
        }
        return nil
    }

    @inline(__always)
    private func inRange(_ meta: TableMeta, _ user: UnsafeRawBufferPointer) -> Bool {
        meta.smallest.withUnsafeBytes { s in
            meta.largest.withUnsafeBytes { l in
                InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: s[..<(s.count - 8)]), user) <= 0 &&
                InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: l[..<(l.count - 8)]), user) >= 0
            }
        }
    }

    /// Looks up several keys at once. Blocks not in the cache are fetched with one batched
    /// submission per round (one round unless a bloom filter lied), so a page of 20 tweets costs
    /// one `io_uring_submit`, not 20 reads in a row. Results are in the order of `keys`.
    ///
    /// A batch is seen whole: a multi-get that a write batch landed in the middle of (the batch
    /// sequence moved while it read) reads again; after a few tries it reads holding the insert
    /// lock, so a stream of writes cannot starve it.
    public func multiGet(_ keys: [[UInt8]]) throws(LSMError) -> [[UInt8]?] {
        for _ in 0..<8 {
            let token = records.begin()
            if token & 1 != 0 {
                sched_yield() // a batch is going into the memtable right now: microseconds
                continue
            }
            let results = try multiGet(keys, cache: records.enabled ? (records, token) : nil)
            if records.unchanged(since: token) { return results }
        }
        let locked: Result<[[UInt8]?], LSMError> = insertLock.withLock { _ in
            do throws(LSMError) { return .success(try multiGet(keys, cache: nil)) } catch { return .failure(error) }
        }
        return try locked.get()
    }

    /// Reads the value of every key of `batch` into it (`batch.value(at:)`), as `multiGet` of
    /// arrays does, and as consistently: a write batch is seen whole or not at all. The record
    /// cache answers first, the page's probes in passes so their cache misses overlap, values
    /// copied into the batch's buffer; the keys it does not know go to the tree together. Once
    /// the batch is warm, a page the cache answers allocates nothing.
    public func multiGet(_ batch: RecordBatch) throws(LSMError) {
        for _ in 0..<8 {
            let token = records.begin()
            if token & 1 != 0 {
                sched_yield() // a batch is going into the memtable right now: microseconds
                continue
            }
            try multiGet(batch, cache: records.enabled ? (records, token) : nil)
            if records.unchanged(since: token) { return }
        }
        let locked: Result<Void, LSMError> = insertLock.withLock { _ in
            do throws(LSMError) { return .success(try multiGet(batch, cache: nil)) } catch { return .failure(error) }
        }
        try locked.get()
    }

    private func multiGet(_ batch: RecordBatch, cache: (records: RecordCache, token: UInt64)?) throws(LSMError) {
        batch.resetResults()
        if let cache {
            cache.records.lookup(batch)
        } else {
            for i in 0..<batch.count { batch.missing.append(i) }
        }
        guard !batch.missing.isEmpty else { return }
        let snap = try snapshot()
        if snap.version.allMapped {
            // The memtables first, key by key; the rest from the tables, all keys at once.
            var kept = 0
            for j in 0..<batch.missing.count {
                let index = batch.missing[j]
                let inMemory: Bool = batch.withKey(index) { key in
                    for m in snap.memtables {
                        guard let node = m.find(key) else { continue }
                        let hash = BloomFilter.hash(key)
                        if Memtable.kind(node) == .value {
                            let value = Memtable.value(node)
                            batch.setValue(index, value)
                            if let cache { cache.records.insert(key, hash: hash, value: value, token: cache.token) }
                        } else if let cache, batch.keepsAbsent {
                            cache.records.insertAbsent(key, hash: hash, token: cache.token)
                        }
                        return true
                    }
                    return false
                }
                if !inMemory {
                    batch.missing[kept] = index
                    kept += 1
                }
            }
            batch.missing.removeLast(batch.missing.count - kept)
            try pipelinedGet(batch, snap.version, cache: cache, hashesKnown: cache?.records.enabled == true)
            return
        }
        let keys = batch.missing.map { [UInt8](batch.key(at: $0)) }
        let values = try multiGet(keys, cache: cache, probeCache: false, keepsAbsent: batch.keepsAbsent)
        for (index, value) in zip(batch.missing, values) {
            if let value { value.withUnsafeBytes { batch.setValue(index, $0) } }
        }
    }

    /// Keys an array multi-get must still look up in the tables before it reads them through
    /// the thread's spare `RecordBatch` (`pipelinedGet`).
    static let pipelinedArrayKeys = 4

    /// `probeCache` false: the record cache was probed already (a batch's misses); what the
    /// tree returns still goes into it.
    private func multiGet(_ keys: [[UInt8]], cache: (records: RecordCache, token: UInt64)?,
                          probeCache: Bool = true, keepsAbsent: Bool = true) throws(LSMError) -> [[UInt8]?] {
        var results = [[UInt8]?](repeating: nil, count: keys.count)
        // Taken at the first key the record cache does not have: a page that hits throughout
        // never touches the tree's state lock.
        var taken: Snapshot?
        struct Pending {
            var key: Int
            var hash: UInt64
            var location: SearchLocation
            var table: Table?
            var block: Int
        }
        var pending: [Pending] = []
        outer: for (i, key) in keys.enumerated() {
            let hash = key.withUnsafeBytes { BloomFilter.hash($0) }
            if let cache, probeCache {
                switch key.withUnsafeBytes({ cache.records.lookup($0, hash: hash) { makeArray($0) } }) {
                case .value(let value):
                    results[i] = value
                    continue outer
                case .absent:
                    continue outer
                case .miss:
                    break
                }
            }
            if taken == nil {
                taken = try snapshot()
                pending.reserveCapacity(keys.count - i)
            }
            for m in taken!.memtables {
                let hit: Memtable.Node? = key.withUnsafeBytes { m.find($0) }
                if let n = hit {
                    if Memtable.kind(n) == .value {
                        let value = makeArray(Memtable.value(n))
                        results[i] = value
                        if let cache { key.withUnsafeBytes { cache.records.insert($0, hash: hash, value: value, token: cache.token) } }
                    } else if let cache, keepsAbsent {
                        key.withUnsafeBytes { cache.records.insertAbsent($0, hash: hash, token: cache.token) }
                    }
                    continue outer
                }
            }
            pending.append(Pending(key: i, hash: hash, location: SearchLocation(), table: nil, block: 0))
        }
        guard let snap = taken else { return results }
        if snap.version.allMapped && pending.count >= Self.pipelinedArrayKeys {
            // Enough keys left for the pipelined lookups: through this thread's spare batch.
            try RecordBatch.withThreadBatch { (batch) throws(LSMError) in
                batch.keepsAbsent = keepsAbsent
                for p in pending { batch.append(key: keys[p.key]) }
                batch.resetResults()
                for j in pending.indices { batch.missing.append(j) }
                try pipelinedGet(batch, snap.version, cache: cache)
                for (j, p) in pending.enumerated() {
                    if let value = batch.value(at: j) { results[p.key] = makeArray(value) }
                }
            }
            return results
        }
        while !pending.isEmpty {
            // Advance each key to its next candidate block.
            var next: [Pending] = []
            next.reserveCapacity(pending.count)
            for var p in pending {
                let c: (Table, Int)? = keys[p.key].withUnsafeBytes { user in
                    withTargetNoThrow(user) { target in nextCandidate(snap.version, user: user, target: target, hash: p.hash, &p.location) }
                }
                guard let (t, b) = c else {
                    // Absent.
                    if let cache, keepsAbsent { keys[p.key].withUnsafeBytes { cache.records.insertAbsent($0, hash: p.hash, token: cache.token) } }
                    continue
                }
                p.table = t
                p.block = b
                next.append(p)
            }
            pending = next
            if pending.isEmpty { break }
            // Fetch the uncached blocks in one batch.
            var requests: [FileSystem.ReadRequest] = []
            var requestOwners: [(Table, Int)] = []
            var seen = Set<BlockCache.Key>()
            for p in pending {
                let t = p.table!
                if t.isMapped {
                    // Mapped tables: ask the kernel to start reading every block's pages now,
                    // so the page faults of the searches below overlap instead of queueing.
                    if pending.count > 1 { t.prefetch(p.block) }
                    continue
                }
                if t.cachedBlock(p.block) != nil { continue }
                let k = BlockCache.Key(file: t.meta.number, offset: t.blockOffsets[p.block])
                guard seen.insert(k).inserted else { continue }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(t.blockSizes[p.block]) + 8, alignment: 8)
                requests.append(FileSystem.ReadRequest(file: t.file, offset: t.blockOffsets[p.block], buffer: buffer))
                requestOwners.append((t, p.block))
            }
            var fetched: [BlockCache.Key: Block] = [:]
            if !requests.isEmpty {
                do throws(IOError) {
                    try fileSystem.read(batch: &requests)
                } catch {
                    for r in requests { r.buffer.deallocate() }
                    throw .io(error)
                }
                var firstError: LSMError?
                for (r, (t, b)) in zip(requests, requestOwners) {
                    if r.bytesRead != r.buffer.count {
                        r.buffer.deallocate()
                        if firstError == nil { firstError = .corrupt(file: t.path, detail: "short read of block at \(t.blockOffsets[b])") }
                        continue
                    }
                    if firstError != nil { r.buffer.deallocate(); continue }
                    do throws(LSMError) {
                        fetched[BlockCache.Key(file: t.meta.number, offset: t.blockOffsets[b])] = try t.adopt(r.buffer, block: b)
                    } catch { firstError = error }
                }
                if let firstError { throw firstError }
            }
            // Search each block; keys not found there go round again.
            var again: [Pending] = []
            for p in pending {
                let t = p.table!
                let block: BlockView
                let owner: Block?
                if !fetched.isEmpty, let b = fetched[BlockCache.Key(file: t.meta.number, offset: t.blockOffsets[p.block])] {
                    (block, owner) = (b.view, b)
                } else {
                    (block, owner) = try t.pointBlock(p.block)
                }
                defer { withExtendedLifetime(owner) {} }
                let found: Result<Bool?, LSMError> = keys[p.key].withUnsafeBytes { user in
                    withTargetNoThrow(user) { target in
                        do throws(LSMError) {
                            guard let f = try block.locate(target: target, user: user, file: t.path) else { return .success(nil) }
                            if UInt8(truncatingIfNeeded: f.trailer) == ValueKind.value.rawValue {
                                let value = makeArray(block.value(f))
                                results[p.key] = value
                                if let cache { cache.records.insert(user, hash: p.hash, value: value, token: cache.token) }
                            } else if let cache, keepsAbsent {
                                cache.records.insertAbsent(user, hash: p.hash, token: cache.token)
                            }
                            return .success(true)
                        } catch { return .failure(error) }
                    }
                }
                if try found.get() == nil { again.append(p) }
            }
            pending = again
        }
        return results
    }

    @inline(__always)
    private func withTargetNoThrow<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: key.count + 8, alignment: 8) { buffer in
            if key.count > 0 { buffer.baseAddress!.copyMemory(from: key.baseAddress!, byteCount: key.count) }
            buffer.storeLE(UInt64.max, at: key.count)
            return body(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Calls `body` with each live key and value in `[lower, upper)` (upper nil: no bound), in
    /// ascending order, or descending with `reverse`, until `body` returns false or `limit`
    /// entries were given. Returns the number given. The bytes are valid only during the call.
    @discardableResult
    public func scan(from lower: [UInt8], to upper: [UInt8]?, reverse: Bool = false, limit: Int = Int.max,
                     _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Bool) throws(LSMError) -> Int {
        guard limit > 0 else { return 0 }
        let snap = try snapshot()
        var sources: [SourceCursor] = []
        for m in snap.memtables where m.entries > 0 { sources.append(.memtable(MemtableCursor(m))) }
        for t in snap.version.levels[0].reversed() {
            // Only tables whose range meets [lower, upper).
            let below = upper.map { !t.meta.smallestUser.lexicographicallyPrecedes($0[...]) } ?? false
            let above = t.meta.largestUser.lexicographicallyPrecedes(lower[...])
            if !below && !above { sources.append(.table(TableCursor(t))) }
        }
        for level in snap.version.levels.dropFirst() where !level.isEmpty {
            // The tables meeting [lower, upper) are a contiguous run of the sorted level.
            var lo = 0
            var hi = level.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if level[mid].meta.largestUser.lexicographicallyPrecedes(lower[...]) { lo = mid + 1 } else { hi = mid }
            }
            var end = lo
            if let upper {
                var h = level.count
                while end < h {
                    let mid = (end + h) / 2
                    if level[mid].meta.smallestUser.lexicographicallyPrecedes(upper[...]) { end = mid + 1 } else { h = mid }
                }
            } else {
                end = level.count
            }
            if lo < end { sources.append(.level(LevelCursor(level, range: lo..<end))) }
        }
        var given = 0
        let previous = KeyBuffer()
        if !reverse {
            lower.withUnsafeBytes { l in
                withTargetNoThrow(l) { target in for i in sources.indices { sources[i].seek(target) } }
            }
            var havePrevious = false
            while true {
                let best = try Self.pick(sources, largest: false)
                if best < 0 { break }
                let key = sources[best].key
                let user = UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)])
                if let upper, upper.withUnsafeBytes({ InternalKey.compareUser(user, $0) >= 0 }) { break }
                if !(havePrevious && InternalKey.compareUser(previous.bytes, user) == 0) {
                    previous.set(user)
                    havePrevious = true
                    if key[key.count - 8] == ValueKind.value.rawValue {
                        given += 1
                        if !body(user, sources[best].value) || given >= limit { break }
                    }
                }
                sources[best].next()
            }
            return given
        }
        // Reverse: start at the last entry below `upper`; the versions of a key come oldest
        // first, so the newest is the last one met before the key changes.
        if let upper {
            upper.withUnsafeBytes { u in
                withTargetNoThrow(u) { target in for i in sources.indices { sources[i].seekBefore(target) } }
            }
        } else {
            for i in sources.indices { sources[i].seekToLast() }
        }
        // Sources with nothing in range (positioned before `lower`, or exhausted) take no part.
        // One left (a settled tree; an author whose recent keys are all in one place): no
        // merge, no versions across sources, and the cursor walked through its concrete type.
        for i in sources.indices { if let e = sources[i].error { throw e } }
        sources.removeAll { source in
            guard source.isValid else { return true }
            let key = source.key
            return lower.withUnsafeBytes { InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)]), $0) < 0 }
        }
        if sources.isEmpty { return 0 }
        if sources.count == 1 {
            switch sources[0] {
            case .memtable(let c): return try Self.reverseSingle(c, lower: lower, limit: limit, body)
            case .table(let c): return try Self.reverseSingle(c, lower: lower, limit: limit, body)
            case .level(let c): return try Self.reverseSingle(c, lower: lower, limit: limit, body)
            }
        }
        let value = KeyBuffer()
        while true {
            let best = try Self.pick(sources, largest: true)
            if best < 0 { break }
            let key = sources[best].key
            let user = UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)])
            if lower.withUnsafeBytes({ InternalKey.compareUser(user, $0) < 0 }) { break }
            previous.set(user)
            // Every source positioned on this user key holds its versions contiguously, oldest
            // first when walking backwards: walk each past them, keeping the newest version.
            var bestTrailer: UInt64 = 0
            var haveValue = false
            for i in sources.indices {
                while sources[i].isValid {
                    let k = sources[i].key
                    guard InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: k[..<(k.count - 8)]), previous.bytes) == 0 else { break }
                    let trailer = k.loadLE(UInt64.self, at: k.count - 8)
                    if !haveValue || trailer > bestTrailer {
                        bestTrailer = trailer
                        haveValue = true
                        value.set(sources[i].value)
                    }
                    sources[i].previous()
                }
                if let e = sources[i].error { throw e }
            }
            if UInt8(truncatingIfNeeded: bestTrailer) == ValueKind.value.rawValue {
                given += 1
                if !body(previous.bytes, value.bytes) || given >= limit { break }
            }
        }
        return given
    }

    /// The reverse scan of one source positioned at its last entry below the upper bound: each
    /// user key's versions are adjacent, met oldest first, so the newest is the last one met.
    private static func reverseSingle<C: ScanSource>(_ c: C, lower: [UInt8], limit: Int,
                                                     _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Bool) throws(LSMError) -> Int {
        var given = 0
        let user = KeyBuffer()
        let value = KeyBuffer()
        var failure: LSMError?
        lower.withUnsafeBytes { lower in
            while c.isValid {
                var key = c.key
                guard InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)]), lower) >= 0 else { break }
                user.set(UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)]))
                var trailer = key.loadLE(UInt64.self, at: key.count - 8)
                value.set(c.value)
                c.previous()
                while c.isValid {
                    key = c.key
                    guard InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)]), user.bytes) == 0 else { break }
                    trailer = key.loadLE(UInt64.self, at: key.count - 8)
                    value.set(c.value)
                    c.previous()
                }
                if c.error != nil { break }
                if UInt8(truncatingIfNeeded: trailer) == ValueKind.value.rawValue {
                    given += 1
                    if !body(user.bytes, value.bytes) || given >= limit { break }
                }
            }
            failure = c.error
        }
        if let failure { throw failure }
        return given
    }

    // MARK: statistics and closing

    public struct Statistics: Sendable {
        public var tablesPerLevel: [Int]
        public var bytesPerLevel: [UInt64]
        public var memtableBytes: Int
        public var frozenMemtables: Int
        public var userBytes: UInt64
        public var flushBytes: UInt64
        public var compactionBytes: UInt64
        public var flushes: Int
        public var compactions: Int
        public var trivialMoves: Int
        public var writeStalls: Int
        public var coveredLSN: UInt64
        public var cacheBytes: Int
        public var cacheHits: UInt64
        public var cacheMisses: UInt64
        /// The record cache (`recordCacheBytes`; zeros when it is off).
        public var recordCacheBytes: Int = 0
        public var recordCacheEntries: Int = 0
        public var recordCacheHits: UInt64 = 0
        public var recordCacheMisses: UInt64 = 0
        /// Tables opened since the tree opened whose mapping failed for want of a resource
        /// (ENOMEM, EAGAIN, ENODEV) and that read through the file layer and the block cache
        /// instead, and the last such failure. 0 and nil when every table is mapped (or
        /// `mmapReads` is off). Other mmap failures are errors, never fallbacks.
        public var mmapFallbacks: Int = 0
        public var lastMmapFallback: IOError? = nil
        /// Data blocks written by flushes and compactions since the tree opened: how many were
        /// stored compressed, and their bytes as built and as stored.
        public var blocksWritten = BlockStats()
        /// Stored over built bytes of the data blocks written since open (1 without compression).
        public var compressionRatio: Double {
            blocksWritten.rawBytes == 0 ? 1 : Double(blocksWritten.storedBytes) / Double(blocksWritten.rawBytes)
        }

        public var tableBytes: UInt64 { bytesPerLevel.reduce(0, +) }
        /// Bytes written to tables (flushes and compactions) per byte of keys and values written.
        public var writeAmplification: Double {
            userBytes == 0 ? 0 : Double(flushBytes + compactionBytes) / Double(userBytes)
        }
        /// All table bytes over the bytes of the deepest non-empty level (RocksDB's definition:
        /// 1.0 when everything sits in one sorted run).
        public var spaceAmplification: Double {
            guard let last = bytesPerLevel.last(where: { $0 > 0 }) else { return 1 }
            return Double(tableBytes) / Double(last)
        }
        public var cacheHitRate: Double {
            cacheHits + cacheMisses == 0 ? 0 : Double(cacheHits) / Double(cacheHits + cacheMisses)
        }
    }

    public var statistics: Statistics {
        let c = cache.statistics
        let r = records.statistics
        var s = state.withLock {
            Statistics(
                tablesPerLevel: manifest.levels.map(\.count),
                bytesPerLevel: manifest.levels.map { $0.reduce(0) { $0 + $1.fileBytes } },
                memtableBytes: active.approximateBytes + frozen.reduce(0) { $0 + $1.memtable.approximateBytes },
                frozenMemtables: frozen.count,
                userBytes: userBytes, flushBytes: manifest.flushBytes, compactionBytes: manifest.compactionBytes,
                flushes: counters.flushes, compactions: counters.compactions, trivialMoves: counters.trivialMoves,
                writeStalls: counters.writeStalls, coveredLSN: manifest.coveredLSN,
                cacheBytes: c.bytes, cacheHits: c.hits, cacheMisses: c.misses, blocksWritten: counters.blocksWritten)
        }
        s.recordCacheBytes = r.bytes
        s.recordCacheEntries = r.entries
        s.recordCacheHits = r.hits
        s.recordCacheMisses = r.misses
        (s.mmapFallbacks, s.lastMmapFallback) = mapFallbacks.snapshot
        return s
    }

    /// Drops every cached block and asks the kernel to drop the tables' pages (cold reads).
    public func dropCaches() {
        cache.clear()
        records.clear()
        let v = state.withLock { version }
        for level in v.levels { for t in level { t.dropPages() } }
    }

    /// The first error of background work, if any.
    public var backgroundFailure: LSMError? { state.withLock { failure } }

    /// Flushes the memtable (so reopening replays nothing; with `flush: false` the next open
    /// replays it from the log instead), stops background work and closes. The log belongs to
    /// the caller and stays open.
    public func close(flush: Bool = true) throws(LSMError) {
        var result: LSMError?
        let alreadyClosed = state.withLock { closed }
        if alreadyClosed { return }
        if flush && backgroundFailure == nil {
            do throws(LSMError) { try self.flush() } catch { result = error }
        }
        state.withLock {
            closed = true
            stopBackground = true
            state.broadcast()
        }
        // Lookups after close must fail as closed, not answer from the cache.
        records.clear()
        background?.join()
        background = nil
        if let result { throw result }
        if let f = backgroundFailure { throw f }
    }
}
