import CLibURing
import Synchronization

/// The follow graph: who follows whom, in both directions, compressed.
///
/// Users are dense numbers (UInt32) the caller assigns; the store maps nothing. The state is an
/// immutable compressed base (`GraphBase`, one file, see `GraphFormat`) plus a mutable overlay of
/// the changes since (`DeltaList` per user and direction). `merge()` folds the overlay into a new
/// base; `bulkLoad` sorts an edge list into one.
///
/// Durability: with a log, `follow` and `unfollow` append a `GraphRecord` and apply it only once
/// the log has acknowledged it (group commit: concurrent callers share an fdatasync), so a change
/// that returned is durable under the log's policy and visible to every read at once. A base
/// records the LSN it covers; `open` replays the graph's records after it. The store keeps the
/// log's checkpoint for consumer "graph" at the older of the two bases it keeps, so the log still
/// covers the fallback should the newest base be found corrupt. Without a log (tests, benchmarks
/// of the structure alone) changes are durable only once merged.
///
/// Thread safety and invariants (every field below `lock` is read and written with it held):
/// - a mutation checks, then appends to the log without the lock, then applies with it; a
///   mutation in that window is counted in `inflight`;
/// - `merge` and `bulkLoad` take their snapshot with `draining` set and `inflight == 0`, so every
///   graph record up to the snapshot's LSN is in it and every later one is not; they build the
///   new base without the lock while mutations go on, then switch under the lock and drop the
///   overlay entries the new base includes (LSN <= the snapshot's);
/// - one merge or bulk load at a time (`merging`);
/// - scans copy what they need (a base reference, a user's overlay list) under the lock and
///   decode without it, so a scan's closure may call back into the store;
/// - point reads (`follows`, counts) and list copies of a user without overlay entries take no
///   lock: they read the base inside a `ReadSections` section through `published`, whose
///   per-user dirty bits are set under the lock before a change returns; a base switch publishes
///   the new view, then waits (`ReadSections.synchronize`) before the old base is freed.
public final class GraphStore: @unchecked Sendable {
    // @unchecked: mutable state is only touched with `lock` held, as documented above.
    public static let consumerName = "graph"

    public let directory: String
    public let fileSystem: FileSystem
    public let log: Log?
    /// What `open` found and did.
    public let openReport: GraphOpenReport
    /// How merges and bulk loads code new bases.
    public let buildOptions: GraphBuildOptions
    /// Whether membership tests search the follower list whatever the degrees (see
    /// `Adjacency.edge`): when the options code following lists in the dense forms and follower
    /// lists in the fast ones only. A base coded otherwise answers the same, a little slower.
    @usableFromInline let followersFirst: Bool

    @usableFromInline let lock = ConditionLock()
    /// What lock-free readers use (see `PublishedView`); replaced under `lock` with a
    /// sequentially consistent store, the old one freed after `ReadSections.synchronize()`.
    @usableFromInline let published: Atomic<UnsafeMutablePointer<PublishedView>>
    @usableFromInline var base: GraphBase {
        didSet { following = base.following; followers = base.followers }
    }
    /// The current base's two directions, kept beside it so point queries under the lock do not
    /// retain and release the base (it lives as long as `base` holds it).
    @usableFromInline var following: Adjacency
    @usableFromInline var followers: Adjacency
    @usableFromInline var followingDelta: [UInt32: DeltaList] = [:]
    @usableFromInline var followersDelta: [UInt32: DeltaList] = [:]
    /// The covered LSN of the older base kept on disk (the fallback), or of the current one.
    private var fallbackCoveredLSN: UInt64
    private var edgeChange = 0
    private var deltaUserLimit = 0
    private var inflight = 0
    private var draining = false
    private var merging = false
    private var isClosed = false
    /// Orders changes when there is no log (stands in for the LSN).
    private var localSequence: UInt64 = 0

    private init(directory: String, fileSystem: FileSystem, log: Log?, base: GraphBase, fallbackCoveredLSN: UInt64, report: GraphOpenReport,
                 buildOptions: GraphBuildOptions) {
        self.directory = directory
        self.buildOptions = buildOptions
        followersFirst = buildOptions.denseFollowingMax > 0 && buildOptions.denseFollowersMax == 0
        self.fileSystem = fileSystem
        self.log = log
        self.base = base
        following = base.following
        followers = base.followers
        self.fallbackCoveredLSN = fallbackCoveredLSN
        self.openReport = report
        localSequence = base.coveredLSN
        published = Atomic(PublishedView.make(base))
    }

    deinit {
        // No reader can be inside a section of this store: each holds a reference to it.
        PublishedView.free(published.load(ordering: .acquiring))
    }

    // MARK: Opening

    /// Opens (creating if needed) the graph store in `directory`: loads the newest valid base,
    /// removes leftover temporary files, and replays the graph's log records after the base.
    ///
    /// When the newest base is corrupt, it is renamed `*.corrupt` and the older base is used if
    /// the log still covers every record since it (the report says so); otherwise `open` throws
    /// `.corrupt` naming the file, and nothing is returned from it.
    /// `buildOptions` says how merges and bulk loads code the bases they write (any readable
    /// base is opened whatever it says).
    public static func open(directory: String, fileSystem: FileSystem, log: Log?,
                            buildOptions: GraphBuildOptions = GraphBuildOptions()) throws(GraphError) -> GraphStore {
        var report = GraphOpenReport()
        var names: [String]
        do {
            try fileSystem.makeDirectory(directory)
            names = try fileSystem.listDirectory(directory)
        } catch { throw .io(error) }
        var removedTemporary = false
        for name in names where name.hasSuffix(GraphFormat.temporarySuffix) {
            do { try fileSystem.remove(directory + "/" + name) } catch { throw .io(error) }
            report.removedTemporaryFiles.append(name)
            removedTemporary = true
        }
        if removedTemporary {
            do { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        }
        let generations = names.compactMap(GraphFormat.generation(ofFileNamed:)).sorted(by: >)
        var base: GraphBase?
        var fallbackCovered: UInt64 = 0
        var firstProblem: GraphError?
        var corruptPaths: [(String, String)] = []
        for generation in generations {
            let path = directory + "/" + GraphFormat.fileName(generation: generation)
            do throws(GraphError) {
                base = try readBase(path: path, fileSystem: fileSystem)
                break
            } catch {
                guard case .corrupt = error else { throw error }
                if firstProblem == nil { firstProblem = error }
                corruptPaths.append((path, error.description))
            }
        }
        if let firstProblem {
            // An older base stands in only if the log still holds every record after it; until
            // that is certain nothing is renamed, so a failed open leaves the files as they were.
            guard let candidate = base, let log, candidate.coveredLSN + 1 >= log.firstSequenceNumber else { throw firstProblem }
            for (path, reason) in corruptPaths {
                let aside = path + ".corrupt"
                do { try fileSystem.rename(path, to: aside) } catch { throw .io(error) }
                report.corruptBasesSetAside.append((aside, reason))
            }
            do { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        }
        let loaded: GraphBase
        if let base {
            loaded = base
            report.baseGeneration = loaded.generation
            // The next older base on disk is the fallback: the log must keep covering it.
            fallbackCovered = loaded.coveredLSN
            if report.corruptBasesSetAside.isEmpty, let older = generations.first(where: { $0 < loaded.generation }) {
                let path = directory + "/" + GraphFormat.fileName(generation: older)
                if let header = try? readBaseHeader(path: path, fileSystem: fileSystem) { fallbackCovered = min(fallbackCovered, header) }
            }
        } else {
            // A new store: generation 0, empty, covering nothing, written so the fallback chain
            // always has a start.
            loaded = GraphBase.empty(generation: 0, coveredLSN: 0, options: buildOptions)
            try writeBase(loaded, directory: directory, fileSystem: fileSystem)
            report.created = true
        }
        let store = GraphStore(directory: directory, fileSystem: fileSystem, log: log, base: loaded,
                               fallbackCoveredLSN: fallbackCovered, report: report, buildOptions: buildOptions)
        if let log {
            try store.replay(log: log)
            do { try log.setCheckpoint(consumer: consumerName, lsn: fallbackCovered) } catch { throw .log(error) }
        }
        return store
    }

    static func readBase(path: String, fileSystem: FileSystem) throws(GraphError) -> GraphBase {
        let exact: UnsafeMutableRawBufferPointer
        do { exact = try fileSystem.readWholeFile(path) } catch { throw .io(error) }
        if let problem = GraphBase.verify(UnsafeRawBufferPointer(exact)) {
            exact.deallocate()
            throw .corrupt(path: path, reason: problem)
        }
        return GraphBase(image: exact)
    }

    /// The covered LSN of a base file, read from its verified header only.
    static func readBaseHeader(path: String, fileSystem: FileSystem) throws -> UInt64 {
        let file = try fileSystem.open(path, .readOnlyAccess)
        defer { file.close() }
        var header = [UInt8](repeating: 0, count: GraphFormat.headerBytes)
        try header.withUnsafeMutableBytes { raw in try file.readExactly(into: raw, at: 0) }
        return try header.withUnsafeBytes { raw in
            guard GraphFormat.magic.elementsEqual(raw[0..<8]),
                  Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<56]), seed: GraphFormat.headerSeed) == raw.loadLE(UInt64.self, at: 56)
            else { throw GraphError.corrupt(path: path, reason: "bad header") }
            return raw.loadLE(UInt64.self, at: 24)
        }
    }

    /// Writes a base atomically: temporary name, fdatasync, rename, directory fsync.
    static func writeBase(_ base: GraphBase, directory: String, fileSystem: FileSystem) throws(GraphError) {
        let path = directory + "/" + GraphFormat.fileName(generation: base.generation)
        let temporary = path + GraphFormat.temporarySuffix
        do throws(IOError) {
            try fileSystem.replaceAtomically(path, with: UnsafeRawBufferPointer(base.image), temporary: temporary, directory: directory)
        } catch {
            throw .io(error)
        }
    }

    private func replay(log: Log) throws(GraphError) {
        let start = base.coveredLSN + 1
        let first = log.firstSequenceNumber
        let next = log.nextSequenceNumber
        guard start <= next else {
            throw .logGap("the base covers LSN \(start - 1) but the log ends at \(next - 1)")
        }
        guard start >= first || start == next else {
            throw .logGap("the base covers LSN \(start - 1) but the log starts at \(first)")
        }
        guard start < next else { return }
        let reader: LogReader
        do { reader = try log.reader(from: start) } catch { throw .log(error) }
        var replayed = 0
        lock.lock()
        defer { lock.unlock() }
        while true {
            var problem: GraphError?
            let more: Bool
            do {
                more = try reader.withNext { lsn, type, payload in
                    do throws(GraphError) {
                        guard let record = try GraphRecord.decode(type: type, payload: payload) else { return }
                        switch record {
                        case .follow(let a, let b): _ = applyLocked(a, b, present: true, lsn: lsn)
                        case .unfollow(let a, let b): _ = applyLocked(a, b, present: false, lsn: lsn)
                        }
                        replayed += 1
                    } catch { problem = error }
                }
            } catch let error as LogError {
                throw .log(error)
            } catch {
                preconditionFailure("unexpected error \(error)")
            }
            if let problem { throw problem }
            if !more { break }
        }
        localSequence = max(localSequence, next - 1)
        replayedCount = replayed
    }

    /// How many graph records `open` replayed from the log.
    public var replayedRecords: Int { lock.withLock { replayedCount } }
    private var replayedCount = 0

    // MARK: Mutations

    /// Makes `follower` follow `followee`. Returns whether anything changed (false when it
    /// already did). Durable under the log's policy and visible to every read when it returns.
    @discardableResult
    public func follow(_ follower: UInt32, _ followee: UInt32) throws(GraphError) -> Bool {
        try mutate(follower, followee, present: true)
    }

    /// Makes `follower` stop following `followee`. Returns whether anything changed.
    @discardableResult
    public func unfollow(_ follower: UInt32, _ followee: UInt32) throws(GraphError) -> Bool {
        try mutate(follower, followee, present: false)
    }

    /// Makes the edge `follower -> followee` present or absent, like `follow`/`unfollow`, and
    /// returns the LSN of the graph record written, or nil when nothing changed (no record). For
    /// a caller that feeds the change to a log consumer (the home timelines) in log order.
    ///
    /// `waitForAcknowledgement: false` applies the change as soon as its record is appended,
    /// with the contract of `LSMTree.write(_:waitForAcknowledgement:)`; merges never cover an
    /// unacknowledged record.
    public func setEdge(_ follower: UInt32, _ followee: UInt32, present: Bool, waitForAcknowledgement: Bool = true) throws(GraphError) -> UInt64? {
        var lsn: UInt64 = 0
        return try mutate(follower, followee, present: present, lsn: &lsn, wait: waitForAcknowledgement) ? lsn : nil
    }

    private func mutate(_ a: UInt32, _ b: UInt32, present: Bool) throws(GraphError) -> Bool {
        var lsn: UInt64 = 0
        return try mutate(a, b, present: present, lsn: &lsn, wait: true)
    }

    private func mutate(_ a: UInt32, _ b: UInt32, present: Bool, lsn written: inout UInt64, wait: Bool) throws(GraphError) -> Bool {
        guard a != b else { throw .invalidArgument("user \(a) cannot follow themselves") }
        lock.lock()
        while draining { lock.wait() }
        guard !isClosed else { lock.unlock(); throw .closed }
        if followsLocked(a, b) == present {
            lock.unlock()
            return false
        }
        guard let log else {
            localSequence += 1
            written = localSequence
            let changed = applyLocked(a, b, present: present, lsn: localSequence) ?? false
            lock.unlock()
            return changed
        }
        inflight += 1
        lock.unlock()
        var payload = (present ? GraphRecord.follow(follower: a, followee: b) : .unfollow(follower: a, followee: b)).payload.littleEndian
        let type = present ? GraphRecord.followType : GraphRecord.unfollowType
        let lsn: UInt64
        do {
            lsn = try withUnsafeBytes(of: &payload) { (raw) throws(LogError) in
                try log.append(type: type, payload: raw, waitForAcknowledgement: wait)
            }
        } catch {
            lock.lock()
            inflight -= 1
            lock.broadcast()
            lock.unlock()
            throw .log(error)
        }
        written = lsn
        lock.lock()
        let changed = applyLocked(a, b, present: present, lsn: lsn) ?? false
        inflight -= 1
        if inflight == 0 && draining { lock.broadcast() }
        lock.unlock()
        return changed
    }

    /// Applies one change to both directions' overlays. Nil when a newer change of the edge is
    /// already applied (see `DeltaList`).
    @discardableResult
    private func applyLocked(_ a: UInt32, _ b: UInt32, present: Bool, lsn: UInt64) -> Bool? {
        let inBase = Adjacency.edge(a, b, following: base.following, followers: base.followers)
        guard let changed = followingDelta[a, default: DeltaList()].apply(b, present: present, lsn: lsn, inBase: inBase) else {
            return nil
        }
        _ = followersDelta[b, default: DeltaList()].apply(a, present: present, lsn: lsn, inBase: inBase)
        // Lock-free readers of a and b must take the lock from now on (before this returns).
        let view = published.load(ordering: .relaxed)
        view.pointee.markDirty(following: a)
        view.pointee.markDirty(followers: b)
        if changed { edgeChange += present ? 1 : -1 }
        deltaUserLimit = max(deltaUserLimit, Int(max(a, b)) + 1)
        return changed
    }

    // MARK: Point queries

    @usableFromInline
    func followsLocked(_ a: UInt32, _ b: UInt32) -> Bool {
        if !followingDelta.isEmpty, let list = followingDelta[a], let state = list.state(of: b) { return state }
        return Adjacency.edge(a, b, following: following, followers: followers, followersFirst: followersFirst)
    }

    /// Whether `a` follows `b`: decodes at most one block of the shorter of a's following list
    /// and b's follower list. Takes no lock unless `a` has overlay entries.
    public func follows(_ a: UInt32, _ b: UInt32) -> Bool {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(following: a) {
            // a has no overlay entries, so the base decides (b's overlay holds a's changes too).
            // With `followersFirst` only the followers view is read, in place (passing both
            // views to `Adjacency.edge` copied them to the stack on every test).
            let answer = followersFirst ? view.pointee.followers.contains(b, a)
                : Adjacency.edge(a, b, following: view.pointee.following, followers: view.pointee.followers)
            slot.exit()
            return answer
        }
        slot.exit()
        lock.lock()
        defer { lock.unlock() }
        return followsLocked(a, b)
    }

    /// Membership for many pairs at once (`follower << 32 | followee` each): `results[i]` is
    /// whether pair i is an edge. Same answers as `follows` one by one, but pairs whose follower
    /// has no overlay entries go through a software pipeline: the index entries of pair i+16 and
    /// the list head of pair i+8 are prefetched while pair i is decided, so the cache misses of
    /// different pairs overlap instead of following one another.
    public func follows(_ pairs: UnsafeBufferPointer<UInt64>, into results: UnsafeMutableBufferPointer<Bool>) {
        precondition(results.count >= pairs.count, "results must have room for every pair")
        let n = pairs.count
        guard n > 0 else { return }
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        let following = view.pointee.following, followers = view.pointee.followers
        let users = view.pointee.userCount
        var pending: [Int] = []
        func entryAddress(_ adjacency: Adjacency, _ u: UInt32) -> UnsafeRawPointer? {
            Int(u) < users ? adjacency.entryAddress(Int(u)) : nil
        }
        func listHead(_ a: UInt32, _ b: UInt32) -> UnsafeRawPointer? {
            let da = following.cappedDegree(a), db = followers.cappedDegree(b)
            return da <= db && !followersFirst ? following.list(a).0 : followers.list(b).0
        }
        for i in 0..<n {
            if i + 16 < n {
                let p = pairs[i + 16]
                if let e = entryAddress(following, UInt32(p >> 32)) { socialdb_prefetch(e) }
                if let e = entryAddress(followers, UInt32(truncatingIfNeeded: p)) { socialdb_prefetch(e) }
            }
            if i + 8 < n {
                let p = pairs[i + 8]
                if let head = listHead(UInt32(p >> 32), UInt32(truncatingIfNeeded: p)) { socialdb_prefetch(head) }
            }
            let a = UInt32(pairs[i] >> 32), b = UInt32(truncatingIfNeeded: pairs[i])
            if view.pointee.isClean(following: a) {
                results[i] = Adjacency.edge(a, b, following: following, followers: followers, followersFirst: followersFirst)
            } else {
                pending.append(i)
            }
        }
        slot.exit()
        for i in pending { results[i] = follows(UInt32(pairs[i] >> 32), UInt32(truncatingIfNeeded: pairs[i])) }
    }

    /// How many users `user` follows, in O(1).
    public func followingCount(_ user: UInt32) -> Int {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(following: user) {
            let degree = view.pointee.following.degree(user)
            slot.exit()
            return degree
        }
        slot.exit()
        lock.lock()
        defer { lock.unlock() }
        return following.degree(user) + (followingDelta.isEmpty ? 0 : followingDelta[user]?.degreeChange ?? 0)
    }

    /// How many users follow `user`, in O(1).
    public func followerCount(_ user: UInt32) -> Int {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(followers: user) {
            let degree = view.pointee.followers.degree(user)
            slot.exit()
            return degree
        }
        slot.exit()
        lock.lock()
        defer { lock.unlock() }
        return followers.degree(user) + (followersDelta.isEmpty ? 0 : followersDelta[user]?.degreeChange ?? 0)
    }

    // MARK: Scans

    /// A base and one user's overlay list in one direction, taken under the lock: what a scan
    /// needs to run without it.
    @usableFromInline
    struct ListView {
        @usableFromInline let base: GraphBase
        @usableFromInline let adjacency: Adjacency
        @usableFromInline let user: UInt32
        @usableFromInline let delta: DeltaList?

        @usableFromInline
        init(base: GraphBase, adjacency: Adjacency, user: UInt32, delta: DeltaList?) {
            self.base = base
            self.adjacency = adjacency
            self.user = user
            self.delta = delta
        }

        @inlinable
        var count: Int { adjacency.degree(user) + (delta?.degreeChange ?? 0) }

        /// Whether `neighbour` is in the list.
        @inlinable
        func contains(_ neighbour: UInt32) -> Bool {
            if let delta, let state = delta.state(of: neighbour) { return state }
            return withExtendedLifetime(base) { adjacency.contains(user, neighbour) }
        }

        /// Calls `body` with every neighbour greater than `after`, in order, until it returns
        /// false: the base list merged with the overlay, no allocation.
        @inlinable
        func scan(after: UInt32?, _ body: (UInt32) throws -> Bool) rethrows {
            try withExtendedLifetime(base) {
                let (list, count) = adjacency.list(user)
                guard let delta, !delta.entries.isEmpty else {
                    if let list { try adjacency.scan(list, count: count, after: after, body) }
                    return
                }
                try delta.entries.withUnsafeBufferPointer { entries in
                    var j = after.map { delta.search($0 &+ 1).index } ?? 0
                    if let after, after == UInt32.max { return }
                    var stopped = false
                    if let list {
                        try adjacency.scan(list, count: count, after: after) { value in
                            while j < entries.count && entries[j].neighbour < value {
                                if entries[j].present { if try !body(entries[j].neighbour) { stopped = true; return false } }
                                j += 1
                            }
                            if j < entries.count && entries[j].neighbour == value {
                                let present = entries[j].present
                                j += 1
                                if !present { return true }
                            }
                            if try !body(value) { stopped = true; return false }
                            return true
                        }
                    }
                    if stopped { return }
                    while j < entries.count {
                        if entries[j].present { if try !body(entries[j].neighbour) { return } }
                        j += 1
                    }
                }
            }
        }
    }

    @usableFromInline
    func followersView(_ user: UInt32) -> ListView {
        lock.lock()
        defer { lock.unlock() }
        return ListView(base: base, adjacency: base.followers, user: user,
                        delta: followersDelta.isEmpty ? nil : Self.detached(followersDelta[user]))
    }

    /// The overlay a view reads after the lock is released. Ordinarily the copy shares the
    /// entries' buffer (copy on write: a writer that finds it shared copies it before changing
    /// it, and one that finds it unique again runs after the view let it go). ThreadSanitizer
    /// cannot see that: the buffer's reference count is changed by atomics in the uninstrumented
    /// Swift runtime, so a writer changing the buffer in place after a reader released it read as
    /// a race with the reader's reads (ConcurrentStressTests, follows against follower pages).
    /// The TSan build (`-DSOCIALDB_TSAN`) therefore gives the view its own copy of the entries,
    /// made under the lock, and TSan checks every other access as it is.
    @inline(__always)
    private static func detached(_ delta: DeltaList?) -> DeltaList? {
        #if SOCIALDB_TSAN
        guard var copy = delta else { return nil }
        var entries = ContiguousArray<DeltaEntry>()
        entries.reserveCapacity(copy.entries.count)
        entries.append(contentsOf: copy.entries)
        copy.entries = entries
        return copy
        #else
        return delta
        #endif
    }

    @usableFromInline
    func followingView(_ user: UInt32) -> ListView {
        lock.lock()
        defer { lock.unlock() }
        return ListView(base: base, adjacency: base.following, user: user,
                        delta: followingDelta.isEmpty ? nil : Self.detached(followingDelta[user]))
    }

    /// Calls `body` with every follower of `user` in increasing order, without allocating (the
    /// fan-out's loop). Sees the graph as of the call; `body` may call back into the store.
    /// A user without overlay entries goes through `GraphCodec.forEach`, which calls `body`
    /// directly (inlined into the caller's loop where the caller is specialized).
    /// A list of at most 128 (most users) is decoded whole inside one read section, without the
    /// lock, into a stack buffer; `body` runs after the section (it may call back in).
    @inlinable
    public func forEachFollower(of user: UInt32, _ body: (UInt32) throws -> Void) rethrows {
        try forEach(followers: true, of: user, body)
    }

    /// Calls `body` with every user `user` follows, in increasing order, without allocating.
    @inlinable
    public func forEachFollowing(of user: UInt32, _ body: (UInt32) throws -> Void) rethrows {
        try forEach(followers: false, of: user, body)
    }

    /// Both `forEach` directions: a short list with no pending changes decoded into a stack
    /// block in one read section, else the locked view.
    /// Always inlined, down to the block loops, so the caller's closure is the loop body (not
    /// an indirect call per value).
    @inlinable @inline(__always)
    func forEach(followers: Bool, of user: UInt32, _ body: (UInt32) throws -> Void) rethrows {
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { buffer in
            let n = smallBaseList(followers: followers, user, into: buffer.baseAddress!)
            if n >= 0 {
                var i = 0
                while i < n {
                    try body(buffer[i])
                    i &+= 1
                }
                return
            }
            try Self.forEach(followers ? followersView(user) : followingView(user), body)
        }
    }

    /// When `user` has no overlay entries in the direction and at most `GraphCodec.blockSize`
    /// values in its base list, decodes the list into `out` (room for a block) inside one read
    /// section and returns its length (so the whole list is one state of the graph, as the
    /// locked path's snapshot is); otherwise returns -1 and the caller takes the locked path.
    @usableFromInline
    func smallBaseList(followers direction: Bool, _ user: UInt32, into out: UnsafeMutablePointer<UInt32>) -> Int {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        var length = -1
        if direction ? view.pointee.isClean(followers: user) : view.pointee.isClean(following: user) {
            let adjacency = direction ? view.pointee.followers : view.pointee.following
            let (list, count) = adjacency.list(user)
            if let list {
                if count <= GraphCodec.blockSize {
                    adjacency.decode(list, count: count, into: out)
                    length = count
                }
            } else {
                length = 0
            }
        }
        slot.exit()
        return length
    }

    @inlinable @inline(__always)
    static func forEach(_ view: ListView, _ body: (UInt32) throws -> Void) rethrows {
        if let delta = view.delta, !delta.entries.isEmpty {
            try view.scan(after: nil) { try body($0); return true }
            return
        }
        try withExtendedLifetime(view.base) {
            let (list, count) = view.adjacency.list(view.user)
            if let list { try view.adjacency.forEach(list, count: count, body) }
        }
    }

    /// Up to `limit` followers of `user` greater than `after` (the cursor: the last one of the
    /// previous page), in increasing order.
    /// Takes no lock unless `user` has overlay entries.
    public func followers(of user: UInt32, after: UInt32? = nil, limit: Int) -> [UInt32] {
        page(followers: true, of: user, after: after, limit: limit)
    }

    /// Up to `limit` users `user` follows greater than `after`, in increasing order.
    /// Takes no lock unless `user` has overlay entries.
    public func following(of user: UInt32, after: UInt32? = nil, limit: Int) -> [UInt32] {
        page(followers: false, of: user, after: after, limit: limit)
    }

    /// Both page directions: the base list inside one read section when `user` has no pending
    /// change in that direction, else the locked view.
    private func page(followers: Bool, of user: UInt32, after: UInt32?, limit: Int) -> [UInt32] {
        guard limit > 0 else { return [] }
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if followers ? view.pointee.isClean(followers: user) : view.pointee.isClean(following: user) {
            let result = Self.basePage(followers ? view.pointee.followers : view.pointee.following, user, after: after, limit: limit)
            slot.exit()
            return result
        }
        slot.exit()
        return page(followers ? followersView(user) : followingView(user), after: after, limit: limit)
    }

    /// A page of a base list (the caller keeps the base alive): one array of the page's size,
    /// filled by `GraphCodec.copy` (no closure per value).
    private static func basePage(_ adjacency: Adjacency, _ user: UInt32, after: UInt32?, limit: Int) -> [UInt32] {
        let (list, count) = adjacency.list(user)
        guard let list, count > 0, limit > 0 else { return [] }
        // Copied into a stack buffer, then appended to an array reserved to its size: those two
        // calls are specialized for UInt32, where `init(unsafeUninitializedCapacity:)` allocated
        // through the runtime's generic path (a metadata lookup under a lock, about 450
        // instructions a page in callgrind, a fifth of the page).
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: min(limit, count)) { buffer in
            let taken = adjacency.copy(list, count: count, after: after, limit: buffer.count, into: buffer.baseAddress!)
            // Never capacity 0: that stores into the runtime's shared empty-array storage (see `makeArray`).
            guard taken > 0 else { return [] }
            var result: [UInt32] = []
            result.reserveCapacity(taken)
            result.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<taken]))
            return result
        }
    }

    private func page(_ view: ListView, after: UInt32?, limit: Int) -> [UInt32] {
        guard limit > 0 else { return [] }
        var result: [UInt32] = []
        result.reserveCapacity(min(limit, max(0, view.count)))
        view.scan(after: after) { value in
            result.append(value)
            return result.count < limit
        }
        return result
    }

    /// Replaces `buffer`'s contents with all followers of `user` (reusing its storage, so a
    /// caller that keeps one buffer decodes without allocating). Decodes whole blocks.
    /// Takes no lock unless `user` has overlay entries.
    public func copyFollowers(of user: UInt32, into buffer: inout ContiguousArray<UInt32>) {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(followers: user) {
            Self.decode(view.pointee.followers, user, into: &buffer)
            slot.exit()
            return
        }
        slot.exit()
        copy(followersView(user), into: &buffer)
    }

    /// Takes no lock unless `user` has overlay entries.
    public func copyFollowing(of user: UInt32, into buffer: inout ContiguousArray<UInt32>) {
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(following: user) {
            Self.decode(view.pointee.following, user, into: &buffer)
            slot.exit()
            return
        }
        slot.exit()
        copy(followingView(user), into: &buffer)
    }

    /// Replaces `buffer`'s contents with the base list of `user` (the caller keeps the base alive).
    private static func decode(_ adjacency: Adjacency, _ user: UInt32, into buffer: inout ContiguousArray<UInt32>) {
        let (list, count) = adjacency.list(user)
        if let list, count <= GraphCodec.blockSize {
            // One block (most lists): decoded on the stack, then one call replaces the buffer's
            // contents (resizing and filling it took four calls into the standard library).
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: GraphCodec.blockSize) { block in
                adjacency.decode(list, count: count, into: block.baseAddress!)
                buffer.replaceSubrange(0..<buffer.count, with: UnsafeBufferPointer(rebasing: block[0..<count]))
            }
            return
        }
        // Size the buffer to `count` without zeroing what it holds (overwritten below):
        // shrinking a buffer of integers is O(1), and it grows only to a new largest list.
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else if buffer.count < count {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        guard let list else { return }
        buffer.withUnsafeMutableBufferPointer { adjacency.decode(list, count: count, into: $0.baseAddress!) }
    }

    private func copy(_ view: ListView, into buffer: inout ContiguousArray<UInt32>) {
        if view.delta == nil || view.delta!.entries.isEmpty {
            withExtendedLifetime(view.base) { Self.decode(view.adjacency, view.user, into: &buffer) }
        } else {
            buffer.removeAll(keepingCapacity: true)
            view.scan(after: nil) { buffer.append($0); return true }
        }
    }

    // MARK: Set queries

    /// Users that `user` follows who follow `target` ("people you follow who follow X"), in
    /// increasing order, up to `limit`. Walks the shorter list and probes the longer when their
    /// sizes differ a lot; merges both otherwise.
    public func followingWhoFollow(_ user: UInt32, _ target: UInt32, limit: Int = Int.max) -> [UInt32] {
        guard limit > 0 else { return [] }
        let slot = ReadSections.current()
        slot.enter()
        let view = published.load(ordering: .acquiring)
        if view.pointee.isClean(following: user) && view.pointee.isClean(followers: target) {
            let result = Self.intersectBase(view.pointee.following, user, view.pointee.followers, target, limit: limit)
            slot.exit()
            return result
        }
        slot.exit()
        let mine = followingView(user)
        let theirs = followersView(target)
        var result: [UInt32] = []
        guard limit > 0 else { return result }
        let a = mine.count, b = theirs.count
        if a == 0 || b == 0 { return result }
        if a * 32 < b || b * 32 < a {
            let (short, long) = a <= b ? (mine, theirs) : (theirs, mine)
            short.scan(after: nil) { value in
                if long.contains(value) { result.append(value) }
                return result.count < limit
            }
            return result
        }
        var left = ContiguousArray<UInt32>(), right = ContiguousArray<UInt32>()
        copy(mine, into: &left)
        copy(theirs, into: &right)
        var i = 0, j = 0
        while i < left.count && j < right.count && result.count < limit {
            let x = left[i], y = right[j]
            if x < y { i += 1 } else if y < x { j += 1 } else { result.append(x); i += 1; j += 1 }
        }
        return result
    }

    /// Base-only intersection of a's following list and x's follower list: the shorter decoded,
    /// the longer walked block by block (each block decoded at most once, others skipped).
    private static func intersectBase(_ following: Adjacency, _ user: UInt32, _ followers: Adjacency, _ target: UInt32,
                                      limit: Int) -> [UInt32] {
        let (mineList, mineCount) = following.list(user)
        let (theirList, theirCount) = followers.list(target)
        guard let mineList, let theirList else { return [] }
        let (short, shortCount, shortSide, long, longCount, longSide) = mineCount <= theirCount
            ? (mineList, mineCount, following, theirList, theirCount, followers) : (theirList, theirCount, followers, mineList, mineCount, following)
        var result: [UInt32] = []
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: shortCount) { probes in
            shortSide.decode(short, count: shortCount, into: probes.baseAddress!)
            longSide.intersect(UnsafeBufferPointer(probes), long, count: longCount) { value in
                result.append(value)
                return result.count < limit
            }
        }
        return result
    }

    /// "Who to follow" for `user`: accounts followed by many of the people `user` follows, that
    /// `user` does not follow yet, most shared first (ties: smaller user number first).
    /// Bounded in work: reads at most `edgesScannedMax` edges of second-hop lists in total
    /// (followees are visited in order, so a bounded run sees the first of them).
    /// Counts in an open-addressing table sized to the edges it can see (not to the user count),
    /// so a query costs memory in proportion to its work.
    public func suggestions(for user: UInt32, limit: Int = 10, edgesScannedMax: Int = 100_000) -> [GraphSuggestion] {
        guard limit > 0, edgesScannedMax > 0 else { return [] }
        var mine = ContiguousArray<UInt32>()
        copyFollowing(of: user, into: &mine)
        var reachable = 0
        for followee in mine { reachable += max(0, followingCount(followee)) }
        let slots = CountTable.slotCount(expected: min(reachable, edgesScannedMax))
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: CountTable.words(slotCount: slots)) { memory in
            let table = CountTable(memory, slotCount: slots)
            var theirs = ContiguousArray<UInt32>()
            // Never more edges than the table has room for keys: a list may have grown since
            // `reachable` was summed (a concurrent follow).
            var budget = min(edgesScannedMax, slots / 2)
            for followee in mine where budget > 0 {
                copyFollowing(of: followee, into: &theirs)
                let take = min(theirs.count, budget)
                budget -= take
                theirs.withUnsafeBufferPointer { values in
                    for i in 0..<take where values[i] != user { table.add(values[i]) }
                }
            }
            for followee in mine { table.remove(followee) }
            return table.top(limit)
        }
    }

    // MARK: Statistics

    public func statistics() -> GraphStatistics {
        lock.lock()
        defer { lock.unlock() }
        var s = GraphStatistics()
        s.users = max(base.userCount, deltaUserLimit)
        s.edges = base.edgeCount + edgeChange
        s.baseEdges = base.edgeCount
        s.baseGeneration = base.generation
        s.baseCoveredLSN = base.coveredLSN
        s.baseFileBytes = base.fileBytes
        s.following = GraphStatistics.Direction(indexBytes: base.followingIndexBytes, listsBytes: base.followingListsBytes - GraphCodec.paddingBytes, edges: base.edgeCount)
        s.followers = GraphStatistics.Direction(indexBytes: base.followersIndexBytes, listsBytes: base.followersListsBytes - GraphCodec.paddingBytes, edges: base.edgeCount,
                                                searchMarkBytes: base.followerMarkBytes)
        s.overlayUsers = followingDelta.count
        s.overlayEntries = followingDelta.values.reduce(0) { $0 + $1.entries.count }
        s.overlayBytes = (followingDelta.count + followersDelta.count) * 48 + s.overlayEntries * 2 * MemoryLayout<DeltaEntry>.stride
        return s
    }

    // MARK: Merging

    /// Folds the overlay into a new base file (switched atomically) and moves the log's
    /// checkpoint on. Mutations and reads go on while it builds; call it from a background thread
    /// to keep it off the request path. With an empty overlay but a log that has moved past the
    /// base or the fallback, the new base is the same lists under a new header (covered LSN moved
    /// on), so the log can be trimmed behind the graph even when no graph record came (two such
    /// merges move the checkpoint, which stays at the fallback, to the end of the log). Returns
    /// nil when there was nothing to do (no overlay, the fallback covers the whole log).
    @discardableResult
    public func merge() throws(GraphError) -> GraphMergeReport? {
        let snapshot = try beginRebuild()
        if snapshot.following.isEmpty && snapshot.followers.isEmpty {
            guard snapshot.coveredLSN > snapshot.fallbackCoveredLSN else {
                finishRebuild()
                return nil
            }
            let relabeled = snapshot.base.relabeled(generation: snapshot.base.generation + 1, coveredLSN: snapshot.coveredLSN)
            return try install(relabeled, snapshot: snapshot, dropOlderBases: false)
        }
        let newBase = buildMerged(snapshot)
        return try install(newBase, snapshot: snapshot, dropOlderBases: false)
    }

    struct Snapshot {
        var base: GraphBase
        var following: [UInt32: DeltaList]
        var followers: [UInt32: DeltaList]
        var coveredLSN: UInt64
        var userCount: Int
        var fallbackCoveredLSN: UInt64
    }

    private func beginRebuild() throws(GraphError) -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        while merging || draining { lock.wait() }
        guard !isClosed else { throw .closed }
        draining = true
        while inflight > 0 { lock.wait() }
        let covered = log.map { $0.nextSequenceNumber - 1 } ?? localSequence
        // The base may cover only what the log has made durable: records of other writers (LSM
        // batches) below `covered` may still be on their way to the disk, and if their write
        // fails the log ends before them, so a base claiming them would not open again ("the
        // base covers LSN n but the log ends at n - 1"). Sync up to `covered` (no graph change
        // can start meanwhile: `draining` holds them), or give up the merge if the log failed.
        if let log, log.durableSequenceNumber < covered {
            lock.unlock()
            var failure: LogError?
            do { try log.sync() } catch { failure = error }
            lock.lock()
            if let failure {
                draining = false
                lock.broadcast()
                throw .log(failure)
            }
        }
        draining = false
        merging = true
        lock.broadcast()
        return Snapshot(base: base, following: followingDelta, followers: followersDelta, coveredLSN: covered,
                        userCount: max(base.userCount, deltaUserLimit), fallbackCoveredLSN: fallbackCoveredLSN)
    }

    private func finishRebuild() {
        lock.lock()
        defer { lock.unlock() }
        merging = false
        lock.broadcast()
    }

    private func buildMerged(_ snapshot: Snapshot) -> GraphBase {
        var builder = GraphBaseBuilder(userCount: snapshot.userCount, generation: snapshot.base.generation + 1,
                                       coveredLSN: snapshot.coveredLSN, expectedBytes: snapshot.base.fileBytes + 4096, options: buildOptions)
        var scratch = ContiguousArray<UInt32>()
        for (direction, (adjacency, delta)) in [(snapshot.base.following, snapshot.following), (snapshot.base.followers, snapshot.followers)].enumerated() {
            let changed = delta.keys.sorted()
            // Entries copy verbatim when both bases code the direction alike; otherwise (a
            // format 5 base merged into 6, or back) every list is decoded and coded again.
            let recode = adjacency.rice != builder.riceLists(direction: direction)
            var next = 0
            for u in 0..<snapshot.userCount {
                let user = UInt32(u)
                if recode {
                    let view = ListView(base: snapshot.base, adjacency: adjacency, user: user, delta: delta[user])
                    copy(view, into: &scratch)
                    scratch.withUnsafeBufferPointer { builder.append(user: u, $0) }
                } else if next < changed.count && changed[next] == user {
                    next += 1
                    let view = ListView(base: snapshot.base, adjacency: adjacency, user: user, delta: delta[user])
                    copy(view, into: &scratch)
                    scratch.withUnsafeBufferPointer { builder.append(user: u, $0) }
                } else {
                    // A format 7 base's follower filters copy with their entries (the rule is the same).
                    let filter = adjacency.filtered && u < adjacency.userCount ? adjacency.filter(u) : nil
                    builder.appendCoded(user: u, adjacency.rawEntry(user), degree: adjacency.degree(user), filter: filter)
                }
            }
            builder.finishDirection()
        }
        return builder.finish()
    }

    private func install(_ newBase: GraphBase, snapshot: Snapshot, dropOlderBases: Bool) throws(GraphError) -> GraphMergeReport {
        do throws(GraphError) {
            try Self.writeBase(newBase, directory: directory, fileSystem: fileSystem)
        } catch {
            finishRebuild()
            throw error
        }
        let fallback = dropOlderBases ? newBase.coveredLSN : snapshot.base.coveredLSN
        lock.lock()
        let oldBase = base
        let oldView = published.load(ordering: .relaxed)
        base = newBase
        fallbackCoveredLSN = fallback
        // Drop what the new base includes; re-derive degree changes of the rest against it.
        for direction in 0..<2 {
            let delta = direction == 0 ? followingDelta : followersDelta
            if direction == 0 { followingDelta = [:] } else { followersDelta = [:] }
            let adjacency = direction == 0 ? newBase.following : newBase.followers
            var kept: [UInt32: DeltaList] = [:]
            for (user, list) in delta {
                var fresh = DeltaList()
                for entry in list.entries where entry.lsn > snapshot.coveredLSN {
                    fresh.entries.append(entry)
                    fresh.degreeChange += (entry.present ? 1 : 0) - (adjacency.contains(user, entry.neighbour) ? 1 : 0)
                }
                if !fresh.entries.isEmpty { kept[user] = fresh }
            }
            if direction == 0 { followingDelta = kept } else { followersDelta = kept }
        }
        edgeChange = followingDelta.values.reduce(0) { $0 + $1.degreeChange }
        let newView = PublishedView.make(newBase)
        for user in followingDelta.keys { newView.pointee.markDirty(following: user) }
        for user in followersDelta.keys { newView.pointee.markDirty(followers: user) }
        published.store(newView, ordering: .sequentiallyConsistent)
        merging = false
        lock.broadcast()
        lock.unlock()
        // Lock-free readers may still be in the old base: wait for them before it is freed.
        ReadSections.synchronize()
        PublishedView.free(oldView)
        withExtendedLifetime(oldBase) {}

        var report = GraphMergeReport(generation: newBase.generation, coveredLSN: newBase.coveredLSN, edges: newBase.edgeCount,
                                      fileBytes: newBase.fileBytes)
        if let log {
            do { try log.setCheckpoint(consumer: Self.consumerName, lsn: fallback) } catch { throw .log(error) }
        }
        // Keep the new base and (after a merge) the one before it; remove the rest.
        do {
            var removed = false
            for name in try fileSystem.listDirectory(directory) {
                guard let generation = GraphFormat.generation(ofFileNamed: name) else { continue }
                let keepFrom = dropOlderBases ? newBase.generation : snapshot.base.generation
                if generation < keepFrom {
                    try fileSystem.remove(directory + "/" + name)
                    report.removedBases += 1
                    removed = true
                }
            }
            if removed { try fileSystem.syncDirectory(directory) }
        } catch { throw .io(error) }
        return report
    }

    // MARK: Bulk load

    /// Adds the edges of `edges` (packed `follower << 32 | followee`, any order, duplicates and
    /// self-follows allowed and dropped) to the graph through a sort, building a new base directly
    /// rather than applying them one at a time. The edges are not written to the log: the new
    /// base is their durable copy, and older bases (which lack them) are removed.
    /// `edges` is used as sort space and left in an unspecified order.
    @discardableResult
    public func bulkLoad(_ edges: inout ContiguousArray<UInt64>, progress: ((GraphLoadProgress) -> Void)? = nil) throws(GraphError) -> GraphMergeReport {
        let snapshot = try beginRebuild()
        // The current graph joins the load: the new base replaces it.
        var userCount = snapshot.userCount
        let current = snapshot.base.edgeCount + snapshot.following.values.reduce(0) { $0 + $1.degreeChange }
        edges.reserveCapacity(edges.count + current)
        var buffer = ContiguousArray<UInt32>()
        for u in 0..<snapshot.userCount {
            let user = UInt32(u)
            copy(ListView(base: snapshot.base, adjacency: snapshot.base.following, user: user, delta: snapshot.following[user]), into: &buffer)
            for v in buffer { edges.append(UInt64(user) << 32 | UInt64(v)) }
        }
        var maximum: UInt64 = 0
        for e in edges { maximum |= (e >> 32) | (e & 0xFFFF_FFFF) }
        if !edges.isEmpty {
            var highest: UInt32 = 0
            for e in edges { highest = max(highest, UInt32(truncatingIfNeeded: e >> 32), UInt32(truncatingIfNeeded: e)) }
            userCount = max(userCount, Int(highest) + 1)
        }
        let bits = 64 - UInt64(maximum).leadingZeroBitCount
        var builder = GraphBaseBuilder(userCount: userCount, generation: snapshot.base.generation + 1, coveredLSN: snapshot.coveredLSN,
                                       expectedBytes: edges.count * 4 + userCount * 16 + 4096, options: buildOptions)
        progress?(GraphLoadProgress(phase: .sorting, done: 0, total: edges.count))
        for direction in 0..<2 {
            // Key: source << bits | target, so the sort only spends passes on bits in use.
            edges.withUnsafeMutableBufferPointer { keys in
                for i in 0..<keys.count {
                    let e = keys[i]
                    let (source, target) = direction == 0 ? (e >> 32, e & 0xFFFF_FFFF) : (e & 0xFFFF_FFFF, e >> 32)
                    keys[i] = source << UInt64(bits) | target
                }
                RadixSort.sort(keys, keyBits: 2 * bits)
            }
            progress?(GraphLoadProgress(phase: direction == 0 ? .buildingFollowing : .buildingFollowers, done: 0, total: edges.count))
            let mask: UInt64 = (1 << UInt64(bits)) &- 1
            var list = ContiguousArray<UInt32>()
            var lists = 0
            edges.withUnsafeBufferPointer { keys in
                var i = 0
                while i < keys.count {
                    let source = keys[i] >> UInt64(bits)
                    list.removeAll(keepingCapacity: true)
                    while i < keys.count && keys[i] >> UInt64(bits) == source {
                        let target = UInt32(truncatingIfNeeded: keys[i] & mask)
                        if UInt64(target) != source && (list.isEmpty || list[list.count - 1] != target) { list.append(target) }
                        i += 1
                    }
                    list.withUnsafeBufferPointer { builder.append(user: Int(source), $0) }
                    lists += 1
                    if lists & 0xFFFF == 0 {
                        progress?(GraphLoadProgress(phase: direction == 0 ? .buildingFollowing : .buildingFollowers, done: i, total: keys.count))
                    }
                }
            }
            // Back to the packed form for the other direction.
            edges.withUnsafeMutableBufferPointer { keys in
                for i in 0..<keys.count {
                    let source = keys[i] >> UInt64(bits), target = keys[i] & mask
                    keys[i] = direction == 0 ? (source << 32 | target) : (target << 32 | source)
                }
            }
            builder.finishDirection()
        }
        let newBase = builder.finish()
        progress?(GraphLoadProgress(phase: .writing, done: 0, total: newBase.fileBytes))
        let report = try install(newBase, snapshot: snapshot, dropOlderBases: true)
        progress?(GraphLoadProgress(phase: .done, done: newBase.edgeCount, total: newBase.edgeCount))
        return report
    }

    // MARK: Closing

    /// Stops the store: later mutations throw `.closed`. The overlay is not merged (the log has
    /// it); the caller closes the log.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        while merging || inflight > 0 { lock.wait() }
        isClosed = true
    }
}

/// What lock-free readers of a `GraphStore` use: the base's two directions and, per direction,
/// one bit per base user, set (under the store's lock, before the change returns) once the user
/// has overlay entries in that direction. A reader inside a `ReadSections` section whose user's
/// bit is clear answers from the base alone; otherwise it takes the lock. Users at or past the
/// base's user count always take the lock.
@usableFromInline
struct PublishedView {
    @usableFromInline let following: Adjacency
    @usableFromInline let followers: Adjacency
    @usableFromInline let userCount: Int
    @usableFromInline let followingDirty: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let followersDirty: UnsafeMutablePointer<Atomic<UInt64>>

    static func make(_ base: GraphBase) -> UnsafeMutablePointer<PublishedView> {
        let words = max(1, (base.userCount + 63) >> 6)
        func bitmap() -> UnsafeMutablePointer<Atomic<UInt64>> {
            let p = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: words)
            for i in 0..<words { (p + i).initialize(to: Atomic(0)) }
            return p
        }
        let view = UnsafeMutablePointer<PublishedView>.allocate(capacity: 1)
        view.initialize(to: PublishedView(following: base.following, followers: base.followers, userCount: base.userCount,
                                          followingDirty: bitmap(), followersDirty: bitmap()))
        return view
    }

    static func free(_ view: UnsafeMutablePointer<PublishedView>) {
        let words = max(1, (view.pointee.userCount + 63) >> 6)
        view.pointee.followingDirty.deinitialize(count: words).deallocate()
        view.pointee.followersDirty.deinitialize(count: words).deallocate()
        view.deinitialize(count: 1).deallocate()
    }

    @inlinable @inline(__always)
    static func isClear(_ bits: UnsafeMutablePointer<Atomic<UInt64>>, _ userCount: Int, _ user: UInt32) -> Bool {
        Int(user) < userCount && bits[Int(user >> 6)].load(ordering: .acquiring) & (1 &<< UInt64(user & 63)) == 0
    }

    @inlinable @inline(__always)
    func isClean(following user: UInt32) -> Bool { Self.isClear(followingDirty, userCount, user) }

    @inlinable @inline(__always)
    func isClean(followers user: UInt32) -> Bool { Self.isClear(followersDirty, userCount, user) }

    func markDirty(following user: UInt32) {
        guard Int(user) < userCount else { return }
        followingDirty[Int(user >> 6)].bitwiseOr(1 &<< UInt64(user & 63), ordering: .sequentiallyConsistent)
    }

    func markDirty(followers user: UInt32) {
        guard Int(user) < userCount else { return }
        followersDirty[Int(user >> 6)].bitwiseOr(1 &<< UInt64(user & 63), ordering: .sequentiallyConsistent)
    }
}

/// Counts per user for `GraphStore.suggestions`: linear probing over a power-of-two table of
/// `key << 32 | count` words (key + 1 stored, so 0 marks an empty slot), in memory the caller
/// owns (one temporary allocation of `words(expected:)`, zeroed here), so a query allocates one
/// block and checks no array uniqueness per count. The slots taken are listed in order of
/// first use, so `top` visits the distinct keys rather than the whole (mostly empty) table.
struct CountTable {
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: Int
    /// The indices of the slots taken, `usedCount` of them (at most the table size / 2).
    private let used: UnsafeMutablePointer<UInt32>
    private let usedCount: UnsafeMutablePointer<Int>

    /// The table size for `expected` keys at most: a power of two, at least twice it.
    static func slotCount(expected: Int) -> Int {
        var size = 16
        while size < expected * 2 { size <<= 1 }
        return size
    }

    /// The words of memory a table of `slotCount` slots takes (slots, used list, its count).
    static func words(slotCount: Int) -> Int { slotCount + slotCount / 4 + 1 }

    /// Takes `memory` (`words(slotCount:)` words for a power-of-two `slotCount`) as the table.
    /// At most `slotCount / 2` distinct keys may be added.
    init(_ memory: UnsafeMutableBufferPointer<UInt64>, slotCount: Int) {
        precondition(slotCount > 0 && slotCount & (slotCount - 1) == 0 && memory.count >= Self.words(slotCount: slotCount),
                     "the table size must be a power of two and the memory hold it")
        let base = memory.baseAddress!
        base.initialize(repeating: 0, count: slotCount)
        slots = base
        mask = slotCount - 1
        // slotCount / 2 indices of 4 bytes in slotCount / 4 words.
        used = UnsafeMutableRawPointer(base + slotCount).bindMemory(to: UInt32.self, capacity: slotCount / 2)
        usedCount = UnsafeMutableRawPointer(base + slotCount + slotCount / 4).bindMemory(to: Int.self, capacity: 1)
        usedCount.initialize(to: 0)
    }

    @inline(__always)
    private static func home(_ key: UInt32, _ mask: Int) -> Int { Int(truncatingIfNeeded: (UInt64(key) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask }

    func add(_ key: UInt32) {
        let tag = UInt64(key) &+ 1
        var i = Self.home(key, mask)
        while true {
            let word = slots[i]
            if word >> 32 == tag { slots[i] = word &+ 1; return }
            if word == 0 {
                slots[i] = tag << 32 | 1
                precondition(usedCount.pointee < (mask + 1) / 2, "more distinct keys than the table was sized for")
                used[usedCount.pointee] = UInt32(truncatingIfNeeded: i)
                usedCount.pointee &+= 1
                return
            }
            i = (i &+ 1) & mask
        }
    }

    /// Zeroes the count of `key` if present (the slot stays taken, so probing is unchanged).
    func remove(_ key: UInt32) {
        let tag = UInt64(key) &+ 1
        var i = Self.home(key, mask)
        while true {
            let word = slots[i]
            if word == 0 { return }
            if word >> 32 == tag { slots[i] = tag << 32; return }
            i = (i &+ 1) & mask
        }
    }

    /// The `limit` largest counts (ties: smaller key first), counts of zero left out.
    /// One pass over the slots taken keeping a sorted window of the best `limit` rank keys: most
    /// candidates (counts of one or two) fail the comparison with the window's last entry.
    func top(_ limit: Int) -> [GraphSuggestion] {
        // Rank key: count high, then the complement of the user, so larger is better.
        var best: [UInt64] = []
        best.reserveCapacity(min(limit, usedCount.pointee) + 1)
        for u in 0..<usedCount.pointee {
            let word = slots[Int(used[u])]
            guard word & 0xFFFF_FFFF != 0 else { continue }
            let user = UInt32(truncatingIfNeeded: (word >> 32) &- 1)
            let rank = UInt64(word & 0xFFFF_FFFF) << 32 | UInt64(~user)
            if limit > 64 {
                best.append(rank)
                continue
            }
            if best.count == limit && rank <= best[best.count - 1] { continue }
            var at = best.count
            while at > 0 && best[at - 1] < rank { at -= 1 }
            best.insert(rank, at: at)
            if best.count > limit { best.removeLast() }
        }
        if limit > 64 {
            // A large window: collected unsorted above (no early rejection), sorted once here.
            best.sort(by: >)
        }
        var result: [GraphSuggestion] = []
        result.reserveCapacity(min(limit, best.count))
        for r in best.prefix(limit) {
            result.append(GraphSuggestion(user: ~UInt32(truncatingIfNeeded: r), followedBy: Int(r >> 32)))
        }
        return result
    }
}

/// One suggestion of `GraphStore.suggestions`.
public struct GraphSuggestion: Equatable, Sendable {
    public var user: UInt32
    /// How many of the people the asking user follows follow this user (among those scanned).
    public var followedBy: Int
}

public struct GraphOpenReport: Sendable, CustomStringConvertible {
    public var created = false
    public var baseGeneration: UInt64 = 0
    public var removedTemporaryFiles: [String] = []
    /// Bases found corrupt and renamed aside, with the reason; the store then used an older base
    /// and replayed the log from it.
    public var corruptBasesSetAside: [(path: String, reason: String)] = []

    public var description: String {
        var s = created ? "graph created" : "graph opened at base generation \(baseGeneration)"
        if !removedTemporaryFiles.isEmpty { s += "; removed \(removedTemporaryFiles.joined(separator: ", "))" }
        for (path, reason) in corruptBasesSetAside { s += "; set aside \(path) (\(reason)), rebuilt from the log" }
        return s
    }
}

public struct GraphMergeReport: Sendable {
    public var generation: UInt64
    public var coveredLSN: UInt64
    public var edges: Int
    public var fileBytes: Int
    public var removedBases = 0
}

public struct GraphLoadProgress: Sendable {
    public enum Phase: Sendable { case parsing, sorting, buildingFollowing, buildingFollowers, writing, done }
    public var phase: Phase
    public var done: Int
    public var total: Int
}

/// Sizes and counts for `STATS`.
public struct GraphStatistics: Sendable {
    public struct Direction: Sendable {
        public var indexBytes = 0
        public var listsBytes = 0
        public var edges = 0
        /// In-memory search marks of the long lists (`SearchMarks`, followers of a format 5
        /// base), not on disk.
        public var searchMarkBytes = 0
        /// Bits per edge of the coded lists alone (what WebGraph quotes).
        public var listBitsPerEdge: Double { edges == 0 ? 0 : Double(listsBytes * 8) / Double(edges) }
        /// Bits per edge with the index (degree and offset per user) and the in-memory search
        /// marks included.
        public var bitsPerEdge: Double { edges == 0 ? 0 : Double((listsBytes + indexBytes + searchMarkBytes) * 8) / Double(edges) }
        /// Bits per edge of the search marks alone.
        public var searchMarkBitsPerEdge: Double { edges == 0 ? 0 : Double(searchMarkBytes * 8) / Double(edges) }
    }

    public var users = 0
    public var edges = 0
    public var baseEdges = 0
    public var baseGeneration: UInt64 = 0
    public var baseCoveredLSN: UInt64 = 0
    public var baseFileBytes = 0
    public var following = Direction()
    public var followers = Direction()
    public var overlayUsers = 0
    public var overlayEntries = 0
    public var overlayBytes = 0
}
