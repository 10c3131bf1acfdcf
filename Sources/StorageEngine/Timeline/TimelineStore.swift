import CLibURing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Home timelines: one capped ring of `TimelineEntry`s per user, filled by fan-out on write,
/// with celebrities (authors above the follower threshold) merged at read time.
///
/// Data flow (see Docs/ARCHITECTURE.md, "Home timelines"):
/// - `fanOut(_:lsn:)` stores a post or retweet in its author's ring and every follower's ring,
///   unless the author has more followers than the threshold: then only the author's small
///   celebrity cache takes it, and readers merge it in. Events carry their log position; one at
///   or below `appliedLSN` is ignored, so replaying the log after a crash never duplicates.
/// - `follow` backfills the followee's newest items into the follower's ring; `unfollow` removes
///   the followee's entries from it; `delete` adds a tombstone that every read filters (the
///   tweet, and retweets of it), and `compact()` later removes the dead entries for good.
/// - `home(of:limit:before:into:)` walks the reader's ring newest first, merged with the streams
///   of the celebrities the reader follows and, past the ring's `floor`, with every followee's
///   own items from the source. So a page is the same whatever the threshold or the capacity.
///
/// Thread safety: any thread may call any member. Reads share a read lock and run in parallel;
/// events, rebuilds and checkpoints take the write lock. A read that finds the reader's ring
/// missing or its celebrity list stale prepares it under the write lock first.
public final class TimelineStore<Followers: FollowerSource, Tweets: AuthorTweetSource>: @unchecked Sendable {
    // @unchecked: all mutable state is behind `lock` (see above); the counters are atomics.
    public let options: TimelineOptions
    @usableFromInline let lock = StripedReadWriteLock()
    /// The state, at a fixed address: methods on it run without the dynamic exclusivity checks
    /// a class's stored `var`s would cost on every access. Freed in deinit.
    @usableFromInline let state: UnsafeMutablePointer<TimelineState<Followers, Tweets>>
    /// Merges at read, counted on `StripedCounter.stripes` cache lines picked by thread: one
    /// shared atomic here was written by every merged read, and it shared its line with
    /// `state` and `lock`, which every read loads.
    @usableFromInline let readMerges = StripedCounter()
    let checkpointBytesWritten = Atomic<Int>(0)
    /// Activity, for dropping the rings of inactive users (Twitter skipped users inactive for 30
    /// days): the caller's day number (`setActivityDay`), and per user the day of their last home
    /// read or post. Entries are created under the write lock (at the current day: a user first
    /// seen counts as just active) and stored into under the read lock, with relaxed atomics.
    @usableFromInline let activityDay = Atomic<UInt32>(0)
    /// The per-user days (see above), `activityCapacity` of them.
    ///
    /// `@exclusivity(unchecked)`: both are written only under the write lock and read under a
    /// lock, so no access can overlap a write; without it every home read paid two dynamic
    /// exclusivity checks (`swift_beginAccess`/`swift_endAccess`, each a thread-local lookup),
    /// about a tenth of the timeline suite's CPU samples.
    @usableFromInline @exclusivity(unchecked) var activity: UnsafeMutablePointer<Atomic<UInt32>>?
    @usableFromInline @exclusivity(unchecked) var activityCapacity = 0
    /// `activity`'s memory: from 2 MiB up a region of transparent huge pages (this), as the
    /// ring blocks are (`RingRecords`): a read loads its reader's entry at a random place, and
    /// with 4 KiB pages that was a TLB miss too. The table is dense, so whole huge pages cost no
    /// memory it would not use. (Until 2026-12-03 it shared the region with a table of hints,
    /// the address of each reader's newest ring entry, which the ring blocks made unneeded.)
    @exclusivity(unchecked) var activityRegion: HugePageRegion?
    let inactiveRingsDropped = Atomic<Int>(0)

    /// An empty store whose rings are complete: a push to a user without a ring creates one
    /// (nothing older can be missing). For a store that saw no events before.
    public init(options: TimelineOptions = TimelineOptions(), followers: Followers, tweets: Tweets) {
        self.options = options
        state = .allocate(capacity: 1)
        state.initialize(to: TimelineState(options: options, followers: followers, tweets: tweets))
    }

    deinit {
        freeActivityTables()
        state.pointee.arena.deallocateAll()
        state.pointee.rings.deallocate()
        state.pointee.deferredUsers.deallocate()
        state.pointee.deallocateCelebrityCaches()
        state.pointee.ringCelebrities.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    public var followers: Followers { state.pointee.followers }
    public var tweets: Tweets { state.pointee.tweets }

    // MARK: Events (each with its log position)

    /// Fans a post, reply, quote or retweet out to its author's and followers' rings. Returns
    /// false (and changes nothing) when `lsn` is at or below the applied position.
    @inlinable @discardableResult
    public func fanOut(_ item: TimelineItem, lsn: UInt64) -> Bool {
        lock.withWriteLock {
            guard state.pointee.accept(lsn: lsn) else { return false }
            TimelineState.fanOut(state, item)
            noteActiveLocked(item.author)
            return true
        }
    }

    /// `follower` now follows `followee`: the followee's newest items enter the follower's ring.
    @discardableResult
    public func follow(follower: UInt32, followee: UInt32, lsn: UInt64) -> Bool {
        lock.withWriteLock { state.pointee.apply(lsn: lsn) { $0.follow(follower: follower, followee: followee) } }
    }

    /// `follower` no longer follows `followee`: the followee's entries leave the follower's ring.
    @discardableResult
    public func unfollow(follower: UInt32, followee: UInt32, lsn: UInt64) -> Bool {
        lock.withWriteLock { state.pointee.apply(lsn: lsn) { $0.unfollow(follower: follower, followee: followee) } }
    }

    /// A tweet or retweet was deleted (or unretweeted): no page shows it, or retweets of it, again.
    @discardableResult
    public func delete(id: UInt64, lsn: UInt64) -> Bool {
        lock.withWriteLock { state.pointee.apply(lsn: lsn) { $0.tombstones.insert(id) } }
    }

    /// The log position of the last event applied.
    public var appliedLSN: UInt64 { lock.withReadLock { state.pointee.appliedLSN } }

    // MARK: Reads

    /// The home page of `reader`: up to `limit` items with id below `before`, newest first.
    @inlinable
    public func home(of reader: UInt32, limit: Int = 20, before: UInt64 = .max, into page: inout TimelinePage) {
        precondition(limit >= 1 && limit <= options.capacity, "a page lists 1...capacity (\(options.capacity)) items")
        page.reset()
        var merged = false
        let ready = lock.withReadLock { () -> Bool in
            // The reader's activity entry is stored into after the read: start loading it now,
            // so its miss overlaps the ring's (perf put 13% of a read's samples on it). And the
            // reader's whole ring block: its record and newest entries, all at addresses known
            // from the reader's number, so the read waits for one memory latency.
            #if !SOCIALDB_TSAN
            // Not in the TSan build: see `homes`.
            state.pointee.prefetchBlock(of: reader)
            #endif
            if Int(reader) < activityCapacity { socialdb_prefetch(activity! + Int(reader)) }
            #if SOCIALDB_TSAN
            let ready = state.pointee.readShared(reader, limit: limit, before: before, into: &page, merged: &merged)
            #else
            let ready = state.pointee.read(reader, limit: limit, before: before, into: &page, merged: &merged)
            #endif
            if ready && Int(reader) < activityCapacity { noteActive(reader) }
            return ready && Int(reader) < activityCapacity
        }
        if !ready {
            lock.withWriteLock {
                noteActiveLocked(reader)
                state.pointee.prepare(reader)
                page.reset()
                let done = state.pointee.read(reader, limit: limit, before: before, into: &page, merged: &merged)
                precondition(done, "a prepared ring must be readable")
            }
        }
        if merged { readMerges.increment() }
    }

    /// Readers a batch read serves per hold of the read lock (`homes(of:limit:into:)`).
    @inlinable public static var homesBatchMax: Int { 64 }

    /// The newest pages of several readers at once, as a server reads a connection's pipelined
    /// requests (and as the benchmark's Redis peer pipelines its LRANGEs): `pages[i]` is what
    /// `home(of: readers[i], limit: limit, into:)` gives, but the memory latencies of the
    /// readers' user table entries, ring records and ring lines overlap across the batch
    /// (two prefetch passes under one hold of the read lock, as fan-out does for a post's
    /// followers) instead of coming one reader after another. A reader that needs preparing
    /// (no ring yet, a stale celebrity list) is read alone afterwards, through `home`.
    @inlinable
    public func homes(of readers: UnsafeBufferPointer<UInt32>, limit: Int = 20, into pages: UnsafeMutableBufferPointer<TimelinePage>) {
        precondition(limit >= 1 && limit <= options.capacity, "a page lists 1...capacity (\(options.capacity)) items")
        precondition(pages.count >= readers.count, "a page for every reader")
        var start = 0
        while start < readers.count {
            let end = min(readers.count, start &+ Self.homesBatchMax)
            var merges = 0
            // Bit i: reader start + i must be prepared first.
            var notReady: UInt64 = 0
            lock.withReadLock {
                if let activity {
                    for i in start..<end where Int(readers[i]) < activityCapacity { socialdb_prefetch(activity + Int(readers[i])) }
                }
                #if !SOCIALDB_TSAN
                // Not in the TSan build: ThreadSanitizer counts the call of a `mutating` method
                // as a write of the whole state (see `read`), and prefetches change no result.
                state.pointee.prefetchHomes(readers, from: start, to: end, limit: limit)
                #endif
                for i in start..<end {
                    let reader = readers[i]
                    pages[i].reset()
                    var merged = false
                    #if SOCIALDB_TSAN
                    let read = state.pointee.readShared(reader, limit: limit, before: .max, into: &pages[i], merged: &merged)
                    #else
                    let read = state.pointee.read(reader, limit: limit, before: .max, into: &pages[i], merged: &merged)
                    #endif
                    if read && Int(reader) < activityCapacity {
                        noteActive(reader)
                        if merged { merges &+= 1 }
                    } else {
                        notReady |= 1 &<< UInt64(i &- start)
                    }
                }
            }
            while notReady != 0 {
                let i = start &+ notReady.trailingZeroBitCount
                notReady &= notReady &- 1
                home(of: readers[i], limit: limit, into: &pages[i])
            }
            if merges > 0 { readMerges.add(merges) }
            start = end
        }
    }

    /// The home page as an array (allocates; `home(of:limit:before:into:)` is the fast path).
    public func home(of reader: UInt32, limit: Int = 20, before: UInt64 = .max) -> [TimelineItem] {
        var page = TimelinePage()
        home(of: reader, limit: limit, before: before, into: &page)
        return Array(page.items)
    }

    // MARK: Maintenance

    /// Sets the day number activity is recorded with (the caller's clock: Social passes days
    /// since the Unix epoch). Users first seen from now on count as active on this day.
    @inline(__always)
    public func setActivityDay(_ day: UInt32) {
        // Called on every read by Social: store only when the day changed (no line bouncing).
        if activityDay.load(ordering: .relaxed) != day { activityDay.store(day, ordering: .relaxed) }
    }

    /// Drops the ring of every user whose last home read or post is more than `inactiveDays`
    /// days before the activity day: memory goes back to the arena, fan-out skips them, and
    /// their next read rebuilds the ring from the sources (the same pages). Activity is not
    /// checkpointed: after a reopen every user counts as active on the day of the open. Returns
    /// the rings dropped.
    @discardableResult
    public func dropInactiveRings(inactiveDays: UInt32) -> Int {
        lock.withWriteLock {
            let today = activityDay.load(ordering: .relaxed)
            guard today > inactiveDays, let activity else { return 0 }
            var dropped = 0
            let users = min(activityCapacity, state.pointee.userTable.count)
            for user in 0..<users {
                let value = state.pointee.userTable[user]
                guard value != 0 && value != TimelineState<Followers, Tweets>.dropped else { continue }
                if today - min(today, activity[user].load(ordering: .relaxed)) > inactiveDays {
                    state.pointee.dropRing(of: UInt32(user))
                    dropped += 1
                }
            }
            inactiveRingsDropped.add(dropped, ordering: .relaxed)
            return dropped
        }
    }

    /// Records `user` as active today. The read lock is enough: the store is atomic.
    @inlinable @inline(__always)
    func noteActive(_ user: UInt32) {
        let today = activityDay.load(ordering: .relaxed)
        let slot = activity! + Int(user)
        if slot.pointee.load(ordering: .relaxed) != today { slot.pointee.store(today, ordering: .relaxed) }
    }

    /// As `noteActive`, growing the table first when needed; the write lock is held.
    @usableFromInline
    func noteActiveLocked(_ user: UInt32) {
        if Int(user) >= activityCapacity {
            let capacity = max(1024, Int(user) + 1, activityCapacity * 2)
            let bytes = capacity * MemoryLayout<Atomic<UInt32>>.stride
            let region = bytes >= HugePageRegion.hugePageBytes ? HugePageRegion(byteCount: bytes) : nil
            let raw = region?.base ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            let days = raw.bindMemory(to: Atomic<UInt32>.self, capacity: capacity)
            let today = activityDay.load(ordering: .relaxed)
            for i in 0..<capacity {
                let day = i < activityCapacity ? activity![i].load(ordering: .relaxed) : today
                (days + i).initialize(to: Atomic(day))
            }
            freeActivityTables()
            activity = days
            activityRegion = region
            activityCapacity = capacity
        }
        noteActive(user)
    }

    /// Frees `activity`; the write lock is held, or the store is going.
    func freeActivityTables() {
        guard let activity else { return }
        activity.deinitialize(count: activityCapacity)
        if let activityRegion { activityRegion.deallocate() } else { UnsafeMutableRawPointer(activity).deallocate() }
        self.activity = nil
        activityRegion = nil
    }

    /// Frees `user`'s ring (an inactive user): pushes skip the user, and the next read rebuilds
    /// the ring from the sources.
    public func dropRing(of user: UInt32) {
        lock.withWriteLock { state.pointee.dropRing(of: user) }
    }

    /// Rebuilds `user`'s ring from the sources now (the next read would otherwise).
    public func rebuildRing(of user: UInt32) {
        lock.withWriteLock { _ = state.pointee.rebuild(user) }
    }

    /// Forgets every ring and declares the sources current up to `appliedLSN`: each ring is
    /// rebuilt from the sources when it is next read (or followed into), and pushes skip users
    /// without a ring. What to do when the checkpoint is lost or corrupt.
    public func resetFromSources(appliedLSN: UInt64) {
        lock.withWriteLock { state.pointee.reset(appliedLSN: appliedLSN, lazyRebuild: true) }
    }

    /// Removes deleted tweets (and retweets of them) from every ring and celebrity cache, and
    /// forgets retweets no ring refers to any more: the background cleanup; reads filter them
    /// by the tombstones meanwhile. Returns the entries removed.
    ///
    /// `forgettingTombstones`: also forget the tombstones themselves, so the read filter does not
    /// grow with every delete ever made. Only for a source that leaves out deleted items and
    /// retweets of deleted tweets from the moment their `delete` reached this store (the
    /// `AuthorTweetSource` contract allows returning them), and for callers that never push a
    /// deleted id, nor a retweet of one, again (log order gives both to Social, which runs this
    /// before each checkpoint).
    @discardableResult
    public func compact(forgettingTombstones: Bool = false) -> Int {
        lock.withWriteLock { state.pointee.compact(forgettingTombstones: forgettingTombstones) }
    }

    /// Deleted ids not yet compacted away (cheap, unlike `statistics`).
    public var pendingTombstones: Int {
        lock.withReadLock { state.pointee.tombstones.count }
    }

    /// Sizes the user table and the ring blocks' storage for `count` users up front (so first
    /// pushes do not grow them). The blocks are only reserved: a block's pages are first
    /// touched when its ring (or a ring above it) is created. Without it, fan-out into a new
    /// store grew the block table by doubling, copying the blocks so far into a new region each
    /// time: perf put 45% of a profile run's page clearing (itself 40% of fan-out's samples in
    /// this VM, where memory the process never touched costs a host fault per page) on that copy.
    public func reserveUsers(_ count: Int) {
        lock.withWriteLock {
            state.pointee.ensureUser(UInt32(max(0, count - 1)))
            state.pointee.rings.reserve(count)
        }
    }

    public var statistics: TimelineStatistics {
        lock.withReadLock {
            var s = state.pointee.statistics
            s.mergesAtRead = readMerges.total
            s.inactiveRingsDropped = inactiveRingsDropped.load(ordering: .relaxed)
            s.checkpointBytes = checkpointBytesWritten.load(ordering: .relaxed)
            return s
        }
    }
}

/// A counter many threads add to without sharing a cache line: one line per stripe, the stripe
/// picked from the thread's id; `total` sums them (exact once the adders are done).
@usableFromInline
final class StripedCounter: @unchecked Sendable {
    // @unchecked: the stripes are atomics, allocated once and freed in deinit.
    @usableFromInline static var stripes: Int { 16 }
    @usableFromInline static var intsPerLine: Int { 64 / MemoryLayout<Int>.stride }
    @usableFromInline let base: UnsafeMutablePointer<Atomic<Int>>

    init() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Self.stripes * 64, alignment: 64)
        base = raw.bindMemory(to: Atomic<Int>.self, capacity: Self.stripes * Self.intsPerLine)
        for i in 0..<(Self.stripes * Self.intsPerLine) { (base + i).initialize(to: Atomic(0)) }
    }

    deinit {
        base.deinitialize(count: Self.stripes * Self.intsPerLine)
        UnsafeMutableRawPointer(base).deallocate()
    }

    @inlinable @inline(__always)
    func increment() { add(1) }

    @inlinable @inline(__always)
    func add(_ n: Int) {
        // pthread_self is the thread's control block: a multiplicative hash spreads them.
        let id = UInt(pthread_self())
        let stripe = Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 60) & (Self.stripes - 1)
        base[stripe * Self.intsPerLine].wrappingAdd(n, ordering: .relaxed)
    }

    var total: Int {
        var sum = 0
        for i in 0..<Self.stripes { sum &+= base[i * Self.intsPerLine].load(ordering: .relaxed) }
        return sum
    }
}

/// A retweet's original, one row per retweet (not per ring it reaches).
@usableFromInline
struct RetweetOriginal {
    @usableFromInline var tweetId: UInt64
    @usableFromInline var tweetAuthor: UInt32

    @inlinable init(tweetId: UInt64, tweetAuthor: UInt32) {
        self.tweetId = tweetId
        self.tweetAuthor = tweetAuthor
    }
}

/// A celebrity's newest items, oldest first; `complete` when it holds every item the source has.
///
/// The items are in a buffer of fixed capacity the state owns (freed by `deallocate()` when the
/// cache leaves `celebrityCaches`), not an array: every reader that follows a celebrity reads its
/// cache, and copying an array out of the dictionary retained and released its storage, an
/// atomic write to one shared line from every reading core.
@usableFromInline
struct CelebrityCache {
    @usableFromInline let base: UnsafeMutablePointer<TimelineItem>
    @usableFromInline var count = 0
    @usableFromInline var complete = false
    let capacity: Int

    init(capacity: Int) {
        base = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    /// The items, oldest first.
    @inlinable var items: UnsafeBufferPointer<TimelineItem> { UnsafeBufferPointer(start: base, count: count) }

    mutating func insert(_ item: TimelineItem, at position: Int) {
        precondition(count < capacity && position <= count, "celebrity cache insert out of range")
        (base + position + 1).update(from: base + position, count: count - position)
        (base + position).initialize(to: item)
        count += 1
    }

    mutating func append(_ item: TimelineItem) { insert(item, at: count) }

    mutating func removeFirst() {
        precondition(count > 0, "removeFirst of an empty celebrity cache")
        base.update(from: base + 1, count: count - 1)
        count -= 1
    }

    /// Removes the items `shouldRemove` accepts, keeping the order; returns how many went.
    mutating func removeAll(where shouldRemove: (TimelineItem) -> Bool) -> Int {
        var kept = 0
        for i in 0..<count where !shouldRemove(base[i]) {
            base[kept] = base[i]
            kept += 1
        }
        defer { count = kept }
        return count - kept
    }

    func deallocate() { base.deallocate() }
}

/// Where a user's ring is and what it holds: the first 32 bytes of the ring's block in
/// `RingRecords` (the block's entries follow it; the owner and the arena slot, which only
/// writers need, are in `TimelineState.owners`). The field order is the layout: 8-byte fields
/// first, then 4, 2 and 1, no padding.
@usableFromInline
struct RingRecord {
    /// The arena slot of the ring's older entries (a dangling, never-read address when
    /// `sizeClass` is `noSlot`).
    @usableFromInline var base: UnsafeMutablePointer<TimelineEntry>
    @usableFromInline var floor: UInt64
    /// Entries in the arena slot.
    @usableFromInline var count: UInt32
    /// The `celebrityEpoch` the ring's celebrity list was computed at; 0 = never.
    @usableFromInline var celebrityEpoch: UInt32
    /// The arena slot's oldest entry; below its capacity, at most `TimelineOptions.capacityMax`.
    @usableFromInline var head: UInt16
    /// The arena slot's capacity minus one (0 when there is no slot).
    @usableFromInline var slotCapacityMinusOne: UInt16
    /// The arena size class of the slot, `noSlot` when the ring has none (all its entries fit
    /// its block).
    @usableFromInline var sizeClass: UInt8
    /// Whether the ring's celebrity list (in `ringCelebrities`) is not empty: a read of a ring
    /// without celebrities (most) skips loading the list's range, a cache miss of its own
    /// (perf put 8% of a read's samples on it).
    @usableFromInline var hasCelebrities = false
    /// Unused (the block's entry count is in `RingRecords.hotStates`, which fan-out reads
    /// without this record's line); keeps the record 32 bytes.
    @usableFromInline var reserved: UInt8 = 0
    /// What the user table says of the ring number's user, copied here so that fan-out reads
    /// the block alone (one line fewer per push): `absent` (no ring: the table's 0), `live` or
    /// `dropped`. Kept equal to the table by `createRing`, `markDropped` and the holes.
    @usableFromInline var presence: UInt8 = 0

    @inlinable static var noSlot: UInt8 { 0xFF }
    @inlinable static var absent: UInt8 { 0 }
    @inlinable static var live: UInt8 { 1 }
    @inlinable static var dropped: UInt8 { 2 }

    @inlinable
    init(base: UnsafeMutablePointer<TimelineEntry>, floor: UInt64, count: UInt32, slotCapacity: Int, celebrityEpoch: UInt32,
         head: UInt16, sizeClass: UInt8) {
        self.base = base
        self.floor = floor
        self.count = count
        self.celebrityEpoch = celebrityEpoch
        self.head = head
        self.slotCapacityMinusOne = UInt16(truncatingIfNeeded: max(0, slotCapacity - 1))
        self.sizeClass = sizeClass
    }

    /// The record of a ring without an arena slot, empty (and of a ring number with no ring:
    /// see `TimelineState.rings`; nothing reads a hole, its epoch 0 says it is not readable).
    static var empty: RingRecord {
        RingRecord(base: UnsafeMutablePointer(bitPattern: MemoryLayout<TimelineEntry>.alignment)!, floor: 0, count: 0,
                   slotCapacity: 0, celebrityEpoch: 0, head: 0, sizeClass: noSlot)
    }

    /// The arena slot's capacity: 0 without a slot.
    @inlinable var slotCapacity: Int {
        @inline(__always) get { sizeClass == Self.noSlot ? 0 : Int(slotCapacityMinusOne) &+ 1 }
    }

    /// The arena slot as a `Ring` (capacity 0 and empty without a slot).
    @inlinable
    var arenaRing: Ring {
        // The store keeps every record in range (`head < slotCapacity`, `count <= slotCapacity`).
        Ring(unchecked: base, slotCapacity: slotCapacity, head: Int(head), count: Int(count), floor: floor)
    }
}

/// Everything the store knows, guarded by its lock. Methods are the store's logic.
@usableFromInline
struct TimelineState<Followers: FollowerSource, Tweets: AuthorTweetSource> {
    @usableFromInline let options: TimelineOptions
    @usableFromInline let followers: Followers
    @usableFromInline let tweets: Tweets

    /// user -> 0 (no ring), `dropped`, or ring number + 1.
    @usableFromInline var userTable = ContiguousArray<UInt32>()
    @inlinable static var dropped: UInt32 { UInt32.max }
    /// Per ring number: the record pushes and reads use, and (cold) whose ring it is and where.
    ///
    /// A user's ring number is the user's own number, so the hot paths compute a ring record's
    /// address from the user alone and load it at the same time as the user table entry that
    /// says whether the ring exists (`ringNumber(of:)`), instead of one miss after the other.
    /// (Numbers were handed out in creation order before: a read and a push waited for the
    /// table entry, then for the record.) The price: the tables are as long as the largest
    /// user number with a ring, the numbers of users without one being holes of 48 bytes
    /// (record, owner, celebrity range) that nothing reads; a store whose users all read their
    /// homes (every ring built) has no holes.
    @usableFromInline var rings: RingRecords
    var owners = ContiguousArray<RingOwner>()
    /// Per ring number: the celebrities among the ring owner's followees and the owner itself.
    @usableFromInline var ringCelebrities = CelebrityLists()
    @usableFromInline var arena: RingArena
    /// The capacity and the split of every ring between its block and its arena slot.
    @usableFromInline let layout: RingLayout

    /// Authors currently treated as celebrities (not fanned out). Changes only when the author
    /// posts: marked when above the threshold, unmarked (after backfilling every follower) when
    /// no longer above it. Readers follow the marks, so crossing the threshold either way
    /// neither loses nor duplicates an item.
    @usableFromInline var celebrities = Set<UInt32>()
    /// Bumped whenever `celebrities` changes; rings recompute their celebrity lists lazily.
    @usableFromInline var celebrityEpoch: UInt32 = 1
    @usableFromInline var celebrityCaches: [UInt32: CelebrityCache] = [:]
    @usableFromInline var retweets: [UInt64: RetweetOriginal] = [:]
    @usableFromInline var tombstones = Set<UInt64>()
    /// Entries `compact` removed, in all.
    var compactedEntries = 0
    @usableFromInline var appliedLSN: UInt64 = 0
    /// When true, users without a ring get one only by a rebuild from the sources (after a lost
    /// checkpoint): pushes and follows skip them.
    @usableFromInline var lazyRebuild = false

    @usableFromInline var pushes = 0
    var celebrityPosts = 0
    var rebuilds = 0
    @usableFromInline var replayedEventsIgnored = 0

    /// Scratch for merges and rebuilds (write lock only), kept to avoid reallocating.
    var scratchItems = ContiguousArray<TimelineItem>()
    var scratchEntries = ContiguousArray<TimelineEntry>()
    var scratchUsers = ContiguousArray<UInt32>()
    var scratchCursors = ContiguousArray<AuthorCursor>()
    /// The arena supply's counts from before the last `reset` (for `statistics`).
    var prefaultTotalsBeforeReset = (cpuNanoseconds: 0, busyNanoseconds: 0, prefaulted: 0, inline: 0)
    /// The users `pushFresh` sets aside in a chunk (`freshChunk` of them), freed with the store.
    @usableFromInline let deferredUsers: UnsafeMutablePointer<UInt32>

    init(options: TimelineOptions, followers: Followers, tweets: Tweets) {
        self.options = options
        self.followers = followers
        self.tweets = tweets
        layout = RingLayout(capacity: options.capacity, hot: min(options.hotEntries, RingRecords.hotSlots))
        arena = Self.makeArena(options, layout)
        rings = RingRecords(layout: layout)
        deferredUsers = .allocate(capacity: Self.freshChunk)
    }

    static func makeArena(_ options: TimelineOptions, _ layout: RingLayout) -> RingArena {
        RingArena(capacity: options.capacity, unit: layout.hot - layout.keep, segmentsAhead: options.arenaSegmentsAhead,
                  prefaultAfterBytes: options.arenaPrefaultAfterBytes)
    }

    /// The celebrity marks changed: every ring's list must be computed again before a read.
    /// Never 0, the epoch of a record whose list was never computed (and of a hole or a
    /// dropped ring, which the read path tells from a ring by that alone).
    mutating func bumpCelebrityEpoch() {
        celebrityEpoch &+= 1
        if celebrityEpoch == 0 { celebrityEpoch = 1 }
    }

    // MARK: Events

    mutating func apply(lsn: UInt64, _ body: (inout Self) -> Void) -> Bool {
        guard accept(lsn: lsn) else { return false }
        body(&self)
        return true
    }

    /// Whether an event at `lsn` is new (then it becomes the applied position).
    @inlinable
    mutating func accept(lsn: UInt64) -> Bool {
        guard lsn > appliedLSN else {
            replayedEventsIgnored += 1
            return false
        }
        appliedLSN = lsn
        return true
    }

    /// Fan-out. Static over the state's pointer so the per-follower closure captures a pointer:
    /// a closure capturing `inout self` would make Swift copy the state in and out, and every
    /// push would then copy the user table and ring records (copy-on-write).
    @inlinable
    static func fanOut(_ state: UnsafeMutablePointer<Self>, _ item: TimelineItem) {
        precondition(item.id != 0, "id 0 is reserved (no tweet has it)")
        if item.isRetweet {
            state.pointee.retweets[item.id] = RetweetOriginal(tweetId: item.tweetId, tweetAuthor: item.tweetAuthor)
        }
        let author = item.author
        let followers = state.pointee.followers
        if followers.followerCount(of: author) > state.pointee.options.celebrityThreshold {
            state.pointee.markCelebrityPost(item)
            return
        }
        if state.pointee.celebrities.contains(author) { state.pointee.demote(author) }
        let entry = TimelineEntry(id: item.id, user: author, flags: item.flags)
        // The author's ring last: its record's lines load while the followers' pushes run.
        state.pointee.prefetchRecord(of: author)
        state.pointee.prefetchTableValue(of: author)
        // A post newer than everything in every ring (nearly always: ids grow) is pushed
        // without comparing ids (`pushFresh`); the followers are each a different ring, and
        // the author's own push below compares, so nothing is stored twice.
        let fresh = entry.id > state.pointee.rings.newestId
        state.pointee.rings.noteStored(entry.id)
        if fresh {
            followers.forEachFollowerBatch(of: author) { batch in state.pointee.pushFresh(entry, toEach: batch) }
        } else {
            followers.forEachFollowerBatch(of: author) { batch in state.pointee.push(entry, toEach: batch) }
        }
        state.pointee.push(entry, to: author)
    }

    /// Starts loading `user`'s ring record (one line). `mutating` only to borrow the state in
    /// place (see `read`); it writes nothing.
    @inlinable @inline(__always)
    mutating func prefetchRecord(of user: UInt32) {
        if Int(user) < rings.count { socialdb_prefetch(UnsafeRawPointer(rings.block(Int(user)))) }
    }

    /// Starts loading `user`'s user table entry (a post's author: `push(_:to:)` reads it after
    /// the followers' pushes). `mutating` only to borrow the state in place; writes nothing.
    @inlinable @inline(__always)
    mutating func prefetchTableValue(of user: UInt32) {
        userTable.withUnsafeBufferPointer { table in
            if Int(user) < table.count { socialdb_prefetch(table.baseAddress! + Int(user)) }
        }
    }

    /// Starts loading `user`'s whole ring block (see `prefetchBlock(_:)`) and its entry of
    /// `RingRecords.hotStates` (the block's count). `mutating` only to borrow the state in
    /// place (see `read`); it writes nothing.
    @inlinable @inline(__always)
    mutating func prefetchBlock(of user: UInt32) {
        if Int(user) < rings.count {
            Self.prefetchBlock(rings.block(Int(user)))
            socialdb_prefetch(rings.hotStates + Int(user))
        }
    }

    /// Starts loading a whole ring block: its record and its newest entries, eight lines of
    /// one huge page.
    @inlinable @inline(__always)
    static func prefetchBlock(_ block: UnsafeRawPointer) {
        var offset = 0
        while offset < RingRecords.blockBytes {
            socialdb_prefetch(block + offset)
            offset &+= 64
        }
    }

    /// The ring number of `user` given its table value: the user's own number when the value
    /// says there is a ring (`rings`), so the record's address does not wait for the value.
    @inlinable @inline(__always)
    static func ringNumber(of user: UInt32, value: UInt32) -> Int {
        assert(value == user &+ 1, "a ring's number is its user's")
        return Int(user)
    }

    /// The prefetch pass of a batch of home reads (`TimelineStore.homes`) over
    /// `readers[first..<end]`: each readable reader's whole block (record and newest entries),
    /// so the reads that follow find them loaded. The user table is not touched: the reads do
    /// not need it (see `readShared`). `mutating` only to borrow the state in place (see
    /// `read`); it writes nothing. Prefetches never fault; a stale one costs a wasted load.
    @inlinable
    mutating func prefetchHomes(_ readers: UnsafeBufferPointer<UInt32>, from first: Int, to end: Int, limit: Int) {
        let recordCount = UInt32(truncatingIfNeeded: rings.count)
        for j in first..<end where readers[j] < recordCount {
            Self.prefetchBlock(rings.block(Int(readers[j])))
            socialdb_prefetch(rings.hotStates + Int(readers[j]))
        }
    }

    @usableFromInline
    mutating func markCelebrityPost(_ item: TimelineItem) {
        let author = item.author
        // The author's ring must exist even though it takes nothing now: a user without a
        // ring is one with no item in any ring (the invariant pushes rely on), and after a
        // demotion the author's own items are backfilled into it.
        if tableValue(author) == 0 && !lazyRebuild { _ = createRing(for: author, entries: 1) }
        if celebrities.insert(author).inserted { bumpCelebrityEpoch() }
        insertIntoCelebrityCache(item)
        celebrityPosts += 1
    }

    mutating func follow(follower: UInt32, followee: UInt32) {
        let value = tableValue(follower)
        if value == 0 {
            if !lazyRebuild { _ = rebuild(follower, alsoFollowing: followee) }
            return
        }
        if value == Self.dropped { return }
        let number = Int(value - 1)
        rings[number].celebrityEpoch = 0
        if !celebrities.contains(followee) { backfill(ring: number, from: followee) }
    }

    mutating func unfollow(follower: UInt32, followee: UInt32) {
        let value = tableValue(follower)
        guard value != 0 && value != Self.dropped else { return }
        let number = Int(value - 1)
        var ring = rings.ring(number, layout: layout)
        _ = ring.removeAll { $0.user == followee }
        rings.update(number, from: ring)
        rings[number].celebrityEpoch = 0
    }

    // MARK: Rings

    @inlinable @inline(__always)
    func tableValue(_ user: UInt32) -> UInt32 {
        Int(user) < userTable.count ? userTable[Int(user)] : 0
    }

    mutating func ensureUser(_ user: UInt32) {
        if Int(user) >= userTable.count {
            userTable.append(contentsOf: repeatElement(0, count: Int(user) + 1 - userTable.count))
        }
    }

    /// One push outside the passes of `push(_:toEach:)` and `pushFresh`: creates the ring when
    /// needed, grows its arena slot when the push spills into it, then the general push.
    @inlinable @inline(__always)
    mutating func push(_ entry: TimelineEntry, to user: UInt32) {
        var value = tableValue(user)
        if value == 0 {
            if lazyRebuild { return }
            value = UInt32(createRing(for: user, entries: 1) + 1)
        } else if value == Self.dropped {
            return
        }
        let number = Self.ringNumber(of: user, value: value)
        rings.noteStored(entry.id)
        if Self.pushInBlock(entry, rings.block(number), hotState: rings.hotStates + number, layout: layout) {
            pushes &+= 1
        } else {
            pushGeneral(entry, number)
        }
    }

    /// The common push, entirely in the ring's block (`block`, see `RingRecords`; `hotState`
    /// its entry of `RingRecords.hotStates`): the block is not full, the ring is not at
    /// capacity and `entry` is newer than the newest. Returns false, changing nothing, when
    /// the push is not that (`pushGeneral` does it). The caller keeps `RingRecords.newestId`
    /// at or above `entry.id`. Static over the addresses: the passes call it inside a closure
    /// over the user table.
    @inlinable @inline(__always)
    static func pushInBlock(_ entry: TimelineEntry, _ block: UnsafeMutableRawPointer, hotState: UnsafeMutablePointer<UInt16>,
                            layout: RingLayout) -> Bool {
        let r = block.assumingMemoryBound(to: RingRecord.self)
        let hotCount = Int(hotState.pointee & 0xFF)
        let arenaCount = Int(r.pointee.count)
        guard hotCount < layout.hot && arenaCount &+ hotCount < layout.capacity else { return false }
        let hot = (block + RingRecords.recordBytes).assumingMemoryBound(to: TimelineEntry.self)
        if hotCount > 0 {
            guard entry.id > hot[hotCount &- 1].id else { return false }
        } else {
            // An empty block with entries in the arena (after removals): the general push.
            guard arenaCount == 0 && entry.id > r.pointee.floor else { return false }
        }
        hot[hotCount] = entry
        // The fast-push bit stays what it was: a push into the block changes none of its
        // conditions but the block's count, which the refusal above keeps above 0.
        hotState.pointee &+= 1
        return true
    }

    /// Any push: a spill to the arena slot (grown first when it has no room), an eviction, an
    /// insertion in id order, a duplicate, an entry below the floor.
    @usableFromInline
    mutating func pushGeneral(_ entry: TimelineEntry, _ number: Int) {
        makeRoomToPush(number)
        var ring = rings.ring(number, layout: layout)
        if ring.push(entry) == .stored { pushes &+= 1 }
        rings.update(number, from: ring)
    }

    /// Grows ring `number`'s arena slot when its block is full and the slot cannot take the
    /// spill a push would make (`SplitRing.spillFits`).
    @usableFromInline
    mutating func makeRoomToPush(_ number: Int) {
        let record = rings[number]
        guard rings.hotCount(number) == layout.hot else { return }
        let spilled = Int(record.count) + layout.hot - layout.keep
        if spilled > record.slotCapacity { growSlot(ring: number, toHold: spilled) }
    }

    /// Users per stage of `push(_:toEach:)`: a post's followers (35 on average) are one chunk.
    @inlinable static var pushChunk: Int { 64 }

    /// Users per chunk of `pushFresh`: at most this many pushes of a chunk go the general
    /// way together (`pushDeferred`), so their memory latencies overlap.
    @inlinable static var freshChunk: Int { 256 }

    /// How many users ahead of its push `pushFresh` starts loading the block line a push
    /// stores into.
    @inlinable static var freshDistance: Int { 24 }

    /// Pushes `entry`, newer than everything in every ring (`RingRecords.newestId`), to every
    /// user of `batch` (each a different user). Such a push needs no id compare: it stores
    /// into the block's next slot when the block has room and the ring's fast-push bit is set
    /// (`RingRecords.sync`), both read from the user's `hotStates` entry (a small table, mostly
    /// in cache), so it touches one line of the ring's block, the one it stores into, which
    /// was prefetched `freshDistance` users before. The others (a full block that spills into
    /// the arena slot, a user without a ring, a ring near its capacity) are set aside and
    /// pushed the general way after each chunk of `freshChunk` users, with their lines
    /// prefetched together (`pushDeferred`). Same result as `push(_:toEach:)` (the model tests
    /// run both).
    @inlinable
    mutating func pushFresh(_ entry: TimelineEntry, toEach batch: UnsafeBufferPointer<UInt32>) {
        let n = batch.count
        let hot = UInt16(truncatingIfNeeded: layout.hot)
        let deferred = deferredUsers
        var i = 0
        var ahead = 0
        while i < n {
            // Taken again after every general push, which may move the tables.
            let blocks = rings.blocks
            let states = rings.hotStates
            let limit = UInt32(truncatingIfNeeded: rings.count)
            let end = min(n, i &+ Self.freshChunk)
            let warm = min(n, i &+ Self.freshDistance)
            while ahead < warm {
                Self.prefetchFreshPush(batch[ahead], blocks: blocks, states: states, limit: limit, hot: hot)
                ahead &+= 1
            }
            var deferredCount = 0
            var stored = 0
            while i < end {
                if ahead < n {
                    Self.prefetchFreshPush(batch[ahead], blocks: blocks, states: states, limit: limit, hot: hot)
                    ahead &+= 1
                }
                let u = batch[i]
                i &+= 1
                if u < limit {
                    let state = states[Int(u)]
                    if state < hot {
                        assert(freshPushAllowed(entry, Int(u)), "a fast push the general way would not make")
                        let slots = (blocks + (Int(u) &* RingRecords.blockBytes &+ RingRecords.recordBytes)).assumingMemoryBound(to: TimelineEntry.self)
                        slots[Int(state)] = entry
                        states[Int(u)] = state &+ 1
                        stored &+= 1
                        continue
                    }
                }
                deferred[deferredCount] = u
                deferredCount &+= 1
            }
            pushes &+= stored
            if deferredCount > 0 { pushDeferred(entry, UnsafeBufferPointer(start: deferred, count: deferredCount)) }
        }
    }

    /// `pushFresh`'s look-ahead for `user`: the block line its push stores into, or, for a push
    /// that goes the general way, its ring record.
    @inlinable @inline(__always)
    static func prefetchFreshPush(_ user: UInt32, blocks: UnsafeMutableRawPointer, states: UnsafeMutablePointer<UInt16>,
                                  limit: UInt32, hot: UInt16) {
        guard user < limit else { return }
        let block = blocks + Int(user) &* RingRecords.blockBytes
        let state = states[Int(user)]
        if state < hot {
            socialdb_prefetch_write(block + (RingRecords.recordBytes &+ Int(state) &* MemoryLayout<TimelineEntry>.stride))
        } else {
            socialdb_prefetch(block)
        }
    }

    /// Whether ring `number` takes `entry` in its block's next slot with no other check, as
    /// `pushFresh` stores it: what the general push would do (for assertions).
    @usableFromInline
    func freshPushAllowed(_ entry: TimelineEntry, _ number: Int) -> Bool {
        let ring = rings.ring(number, layout: layout)
        let record = rings[number]
        let newest = ring.count > 0 ? ring[ring.count - 1].id : 0
        return record.presence == RingRecord.live && tableValue(UInt32(number)) == UInt32(number + 1)
            && ring.hotCount < layout.hot && ring.count < layout.capacity && entry.id > ring.floor && entry.id > newest
            && (ring.arena.count == 0 || ring.hotCount > 0) && entry.id <= rings.newestId
    }

    /// The pushes `pushFresh` set aside, the general way, in three passes as `push(_:toEach:)`
    /// makes its own: the users' table entries and whole blocks (a spill reads the block's
    /// oldest entries and moves the rest down) prefetched, then for a block about to spill
    /// the arena slot's lines it spills to, then the pushes.
    @usableFromInline
    mutating func pushDeferred(_ entry: TimelineEntry, _ users: UnsafeBufferPointer<UInt32>) {
        let limit = rings.count
        userTable.withUnsafeBufferPointer { table in
            for u in users where Int(u) < table.count { socialdb_prefetch(table.baseAddress! + Int(u)) }
        }
        for u in users where Int(u) < limit { Self.prefetchBlock(rings.block(Int(u))) }
        let spilled = layout.hot &- layout.keep
        for u in users where Int(u) < limit && rings.hotCount(Int(u)) == layout.hot {
            let r = rings.record(Int(u))
            let capacity = r.pointee.slotCapacity
            guard Int(r.pointee.count) &+ spilled <= capacity else { continue }
            var next = Int(r.pointee.head) &+ Int(r.pointee.count)
            if next >= capacity { next &-= capacity }
            var k = 0
            while k < spilled {
                socialdb_prefetch_write(r.pointee.base + min(capacity &- 1, next &+ k))
                k &+= 4
            }
        }
        for u in users { push(entry, to: u) }
    }

    /// Pushes `entry` to every user of `batch` (any entry: `pushFresh` is the way for a fresh
    /// one), in chunks of `pushChunk` users, each in three
    /// passes: the first prefetches each user's ring record (a ring's number is its user's),
    /// the second loads the records and the blocks' counts and prefetches the block line a
    /// push stores into (and, for a block about to spill, the arena slot's line it spills to),
    /// the third pushes. So a chunk's misses overlap each other instead of coming one after
    /// another. The records and blocks are in huge pages (no TLB miss), and nine pushes in ten
    /// touch the block alone.
    /// Prefetches never fault; a stale one (a ring created or grown meanwhile) only costs a
    /// wasted load.
    ///
    /// The passes run on the tables' raw buffers, taken once per pass (no uniqueness or bounds
    /// check per push); a push that must create a ring or go the general way (which may move
    /// the tables) leaves it for `push(_:to:)`, and the pass resumes after it with the buffers
    /// taken again.
    @inlinable
    mutating func push(_ entry: TimelineEntry, toEach batch: UnsafeBufferPointer<UInt32>) {
        let n = batch.count
        var i = 0
        while i < n {
            let end = min(n, i &+ Self.pushChunk)
            prefetchRings(of: batch, from: i, to: end)
            var j = i
            while j < end {
                j = pushInPlace(entry, toEach: batch, from: j, to: end)
                guard j < end else { break }
                push(entry, to: batch[j])
                j &+= 1
            }
            i = end
        }
    }

    /// The first two passes of `push(_:toEach:)` over `batch[first..<end]`. `mutating` only to
    /// borrow the state in place (see `read`); it writes nothing.
    @inlinable
    mutating func prefetchRings(of batch: UnsafeBufferPointer<UInt32>, from first: Int, to end: Int) {
        let recordCount = UInt32(truncatingIfNeeded: rings.count)
        let blocks = UnsafeRawPointer(rings.blocks)
        for j in first..<end {
            let u = batch[j]
            if u < recordCount {
                socialdb_prefetch(blocks + Int(u) &* RingRecords.blockBytes)
                socialdb_prefetch(rings.hotStates + Int(u))
            }
        }
        let hotSlots = layout.hot
        for j in first..<end {
            let u = batch[j]
            guard u < recordCount else { continue }
            let r = rings.record(Int(u))
            guard r.pointee.presence == RingRecord.live else { continue }
            let hotCount = rings.hotCount(Int(u))
            if hotCount < hotSlots {
                // The next slot of the block (stored) and the newest entry (compared: the
                // same line or the one before; perf put nearly a third of the pushes' samples
                // on that compare when only the next slot was prefetched).
                let next = rings.hot(Int(u)) + hotCount
                socialdb_prefetch_write(next)
                socialdb_prefetch_write(next - 1)
            } else {
                // A spill: the arena slot's next entries.
                let capacity = r.pointee.slotCapacity
                var next = Int(r.pointee.head) &+ Int(r.pointee.count)
                if next >= capacity { next &-= capacity }
                if next < capacity { socialdb_prefetch_write(r.pointee.base + next) }
            }
        }
    }

    /// The third pass of `push(_:toEach:)`, from `batch[first]` until `end` or the first user
    /// whose push is not `pushInBlock`'s (or who has no block); returns that user's index (`end`
    /// when done). It reads each user's block alone: the block's `presence` says what the user
    /// table would.
    @inlinable
    mutating func pushInPlace(_ entry: TimelineEntry, toEach batch: UnsafeBufferPointer<UInt32>, from first: Int, to end: Int) -> Int {
        let createMissing = !lazyRebuild
        let layout = layout
        let blocks = rings.blocks
        let states = rings.hotStates
        let recordCount = UInt32(truncatingIfNeeded: rings.count)
        var stored = 0
        var i = first
        while i < end {
            let u = batch[i]
            guard u < recordCount else { break }
            let block = blocks + Int(u) &* RingRecords.blockBytes
            let presence = block.assumingMemoryBound(to: RingRecord.self).pointee.presence
            assert(presence == (tableValue(u) == 0 ? RingRecord.absent : tableValue(u) == Self.dropped ? RingRecord.dropped : RingRecord.live),
                   "a block's presence differs from the user table")
            if presence != RingRecord.live {
                if presence == RingRecord.absent && createMissing { break }
                i &+= 1
                continue
            }
            assert(entry.id <= rings.newestId, "fan-out raises newestId before its pushes")
            guard Self.pushInBlock(entry, block, hotState: states + Int(u), layout: layout) else { break }
            stored &+= 1
            i &+= 1
        }
        pushes &+= stored
        return i
    }

    /// A new, empty ring for `user` (its entries in its block; an arena slot only when
    /// `entries` do not fit the block). Its number is the user's own (see `rings`): the tables
    /// grow to it, the numbers skipped becoming holes.
    @usableFromInline
    mutating func createRing(for user: UInt32, entries: Int) -> Int {
        ensureUser(user)
        let number = Int(user)
        precondition(number < Int(UInt32.max) - 1, "ring numbers exhausted")
        if rings.count <= number {
            rings.reserve(number + 1)
            while rings.count <= number {
                // A hole: no ring (its user's table value is 0 or `dropped`); never read but
                // for its `presence`.
                var hole = RingRecord.empty
                if tableValue(UInt32(rings.count)) == Self.dropped { hole.presence = RingRecord.dropped }
                // (`append` computes the hole's fast-push bit: blocked, as it has no live ring.)
                owners.append(RingOwner(user: UInt32(rings.count), slot: 0))
                rings.append(hole)
                ringCelebrities.appendEmpty()
            }
        }
        rings[number] = RingRecord.empty
        rings[number].presence = RingRecord.live
        rings.setHotCount(number, 0)
        owners[number] = RingOwner(user: user, slot: 0)
        if entries > layout.hot { growSlot(ring: number, toHold: entries) }
        ringCelebrities.set(number, to: EmptyCollection())
        userTable[number] = UInt32(number + 1)
        return number
    }

    /// Moves ring `number`'s arena entries to a slot of the smallest class holding `entries`
    /// (oldest entry first at 0), when its slot (if any) is smaller.
    @usableFromInline
    mutating func growSlot(ring number: Int, toHold entries: Int) {
        let old = rings[number]
        let current = old.sizeClass == RingRecord.noSlot ? -1 : Int(old.sizeClass)
        guard current < 0 || entries > old.slotCapacity else { return }
        let sizeClass = arena.sizeClass(for: entries, above: current)
        let (slot, base) = arena.allocate(sizeClass: sizeClass)
        old.arenaRing.copyOldestFirst(to: base)
        if old.sizeClass != RingRecord.noSlot { arena.free(sizeClass: Int(old.sizeClass), slot: owners[number].slot) }
        let capacity = arena.slotCapacity(ofClass: sizeClass)
        rings[number].base = base
        owners[number].slot = slot
        rings[number].sizeClass = UInt8(sizeClass)
        rings[number].slotCapacityMinusOne = UInt16(truncatingIfNeeded: capacity - 1)
        rings[number].head = 0
    }

    /// Replaces ring `number`'s entries with `entries` (sorted by id, at most the capacity)
    /// and its floor: the newest `keep` in the block (all of them when they fit it), the rest
    /// in the arena slot, grown as needed.
    mutating func setContents(ofRing number: Int, _ entries: UnsafeBufferPointer<TimelineEntry>, floor: UInt64) {
        let total = entries.count
        precondition(total <= layout.capacity, "more entries than a ring holds")
        let inBlock = total <= layout.hot ? total : layout.keep
        let inArena = total - inBlock
        rings[number].count = 0
        rings[number].head = 0
        if inArena > 0 {
            growSlot(ring: number, toHold: inArena)
            rings[number].base.update(from: entries.baseAddress!, count: inArena)
        }
        if inBlock > 0 { rings.hot(number).update(from: entries.baseAddress! + inArena, count: inBlock) }
        rings[number].count = UInt32(inArena)
        rings[number].floor = floor
        rings.setHotCount(number, inBlock)
        if total > 0 { rings.noteStored(entries[total - 1].id) }
        rings.noteStored(floor)
    }

    mutating func dropRing(of user: UInt32) {
        let value = tableValue(user)
        if value != 0 && value != Self.dropped {
            let number = Int(value - 1)
            if rings[number].sizeClass != RingRecord.noSlot {
                arena.free(sizeClass: Int(rings[number].sizeClass), slot: owners[number].slot)
            }
            rings[number] = RingRecord.empty
            rings.setHotCount(number, 0)
            // Not readable: the read path checks the epoch, not the user table (see `readShared`).
            ringCelebrities.set(number, to: EmptyCollection())
        }
        markDropped(user)
    }

    /// Sets `user`'s table value to `dropped`, and the presence of its block, if it has one.
    mutating func markDropped(_ user: UInt32) {
        ensureUser(user)
        userTable[Int(user)] = Self.dropped
        if Int(user) < rings.count {
            rings[Int(user)].presence = RingRecord.dropped
            rings.sync(Int(user))
        }
    }

    /// Merges `scratchItems` (newest first, one author's or many) into ring `number`: ids kept
    /// once, the newest `keep` (default `capacity`) kept. `truncatedBelow` is the id of the
    /// first item a source did not return (its batch was full), 0 if the sources returned
    /// everything: the floor rises to it, since older items of that author are not in the ring.
    mutating func mergeScratchItems(intoRing number: Int, truncatedBelow: UInt64, keep: Int? = nil) {
        let keep = keep ?? options.capacity
        let existing = rings.ring(number, layout: layout)
        var floor = max(existing.floor, truncatedBelow)
        scratchEntries.removeAll(keepingCapacity: true)
        scratchEntries.reserveCapacity(existing.count + scratchItems.count)
        // Both sequences ascending: the ring oldest first, the items reversed.
        var i = 0
        var j = scratchItems.count - 1
        while i < existing.count || j >= 0 {
            let fromRing: TimelineEntry? = i < existing.count ? existing[i] : nil
            let fromItems: TimelineItem? = j >= 0 ? scratchItems[j] : nil
            var next: TimelineEntry
            if let a = fromRing, let b = fromItems {
                if a.id < b.id {
                    next = a; i += 1
                } else if b.id < a.id {
                    next = TimelineEntry(id: b.id, user: b.author, flags: b.flags); j -= 1
                } else {
                    next = a; i += 1; j -= 1
                }
            } else if let a = fromRing {
                next = a; i += 1
            } else {
                let b = fromItems!
                next = TimelineEntry(id: b.id, user: b.author, flags: b.flags); j -= 1
            }
            if let last = scratchEntries.last, last.id == next.id { continue }
            scratchEntries.append(next)
        }
        for item in scratchItems where item.isRetweet {
            retweets[item.id] = RetweetOriginal(tweetId: item.tweetId, tweetAuthor: item.tweetAuthor)
        }
        // Keep the newest `keep` above the floor.
        var start = 0
        while start < scratchEntries.count && scratchEntries[start].id <= floor { start += 1 }
        let kept = scratchEntries.count - start
        if kept > keep {
            let cut = kept - keep
            floor = max(floor, scratchEntries[start + cut - 1].id)
            start += cut
        }
        let entries = scratchEntries
        entries.withUnsafeBufferPointer { buffer in
            setContents(ofRing: number, UnsafeBufferPointer(rebasing: buffer[start...]), floor: floor)
        }
    }

    /// Fetches `author`'s newest `capacity` items into `scratchItems` (appending); returns the
    /// id of the first item left out when there were more, else 0.
    mutating func fetchNewest(of author: UInt32) -> UInt64 {
        let before = scratchItems.count
        tweets.newestItems(of: author, before: .max, limit: options.capacity + 1, into: &scratchItems)
        if scratchItems.count - before > options.capacity {
            return scratchItems.removeLast().id
        }
        return 0
    }

    mutating func backfill(ring number: Int, from author: UInt32) {
        scratchItems.removeAll(keepingCapacity: true)
        let truncatedBelow = fetchNewest(of: author)
        mergeScratchItems(intoRing: number, truncatedBelow: truncatedBelow)
    }

    /// Fetches into `scratchItems` (newest first) the newest `capacity` (the `target`: a
    /// rebuild asks for `rebuildEntries`) items of `authors`
    /// (celebrities skipped) and returns the floor: the largest id a source holds that was not
    /// fetched (0 when every source was read to its end). Every item above the floor is fetched.
    ///
    /// The result (ring contents and floor after `mergeScratchItems`) is that of fetching
    /// `capacity + 1` items of every author, without reading them: authors are read in growing
    /// batches, starting at about 4 x `capacity / authors` (at least 16, at most `capacity`;
    /// fewer, larger reads: each costs an index scan), and an author is read further only while
    /// its next unread item could be among the newest `capacity` fetched so far. On the social
    /// benchmark's graph (35 followees, prolific accounts followed most) that is a quarter fewer
    /// records for about as many index scans; with many prolific followees, far fewer.
    mutating func fetchNewestMerged(of authors: ContiguousArray<UInt32>, target capacity: Int) -> UInt64 {
        scratchCursors.removeAll(keepingCapacity: true)
        for author in authors where !celebrities.contains(author) {
            scratchCursors.append(AuthorCursor(author: author, next: .max, batch: 0))
        }
        guard !scratchCursors.isEmpty else { return 0 }
        let first = min(capacity, max(16, 4 * capacity / scratchCursors.count + 1))
        // The capacity-th newest id fetched so far: an author whose next unread item is at or
        // below it cannot add to the newest `capacity`.
        var threshold: UInt64 = 0
        while true {
            var fetched = false
            for i in scratchCursors.indices {
                let cursor = scratchCursors[i]
                guard cursor.next != 0 && cursor.next > threshold else { continue }
                let batch = cursor.batch == 0 ? first : min(capacity, cursor.batch * 2)
                let before = scratchItems.count
                // `next` is the first unread item (read one too many last time): include it.
                let from = cursor.next == .max ? UInt64.max : cursor.next + 1
                tweets.newestItems(of: cursor.author, before: from, limit: batch + 1, into: &scratchItems)
                var next: UInt64 = 0
                if scratchItems.count - before > batch { next = scratchItems.removeLast().id }
                scratchCursors[i].next = next
                scratchCursors[i].batch = batch
                fetched = true
            }
            guard fetched else { break }
            // Newest first, as `mergeScratchItems` expects; ids are unique across authors.
            scratchItems.sort { $0.id > $1.id }
            threshold = scratchItems.count >= capacity ? scratchItems[capacity - 1].id : 0
        }
        var floor: UInt64 = 0
        for cursor in scratchCursors { floor = max(floor, cursor.next) }
        return floor
    }

    /// Builds `user`'s ring from the sources: the newest `capacity` items of the user and every
    /// followee that is not a celebrity. Replaces any ring the user had.
    mutating func rebuild(_ user: UInt32, alsoFollowing extra: UInt32? = nil) -> Int {
        let value = tableValue(user)
        let number: Int
        if value == 0 || value == Self.dropped {
            number = createRing(for: user, entries: 1)
        } else {
            number = Int(value - 1)
            rings[number].count = 0
            rings[number].head = 0
            rings[number].floor = 0
            rings.setHotCount(number, 0)
        }
        rings[number].celebrityEpoch = 0
        collectAuthors(of: user, into: &scratchUsers)
        if let extra, !scratchUsers.contains(extra) { scratchUsers.append(extra) }
        scratchItems.removeAll(keepingCapacity: true)
        let target = min(options.capacity, options.rebuildEntries)
        let truncatedBelow = fetchNewestMerged(of: scratchUsers, target: target)
        mergeScratchItems(intoRing: number, truncatedBelow: truncatedBelow, keep: target)
        rebuilds += 1
        return number
    }

    /// The user and every user they follow.
    @inlinable
    func collectAuthors(of user: UInt32, into authors: inout ContiguousArray<UInt32>) {
        authors.removeAll(keepingCapacity: true)
        authors.append(user)
        followers.forEachFolloweeBatch(of: user) { batch in
            for followee in batch where followee != user { authors.append(followee) }
        }
    }

    /// `author` is no longer above the threshold: give every follower (and the author) the items
    /// that were merged at read while it was a celebrity, then stop treating it as one.
    @usableFromInline
    mutating func demote(_ author: UInt32) {
        // Into a local array: a closure capturing `self` would copy the whole state.
        var users = ContiguousArray<UInt32>()
        users.append(author)
        followers.forEachFollowerBatch(of: author) { batch in users.append(contentsOf: batch) }
        scratchItems.removeAll(keepingCapacity: true)
        let truncatedBelow = fetchNewest(of: author)
        let items = scratchItems
        for user in users {
            var value = tableValue(user)
            // A follower without a ring (in a complete store) gets one now: it is about to
            // hold items, and pushes only ever create empty rings.
            if value == 0 && !lazyRebuild { value = UInt32(createRing(for: user, entries: 1) + 1) }
            guard value != 0 && value != Self.dropped else { continue }
            scratchItems = items
            mergeScratchItems(intoRing: Int(value - 1), truncatedBelow: truncatedBelow)
        }
        celebrities.remove(author)
        celebrityCaches.removeValue(forKey: author)?.deallocate()
        bumpCelebrityEpoch()
    }

    mutating func insertIntoCelebrityCache(_ item: TimelineItem) {
        guard var cache = celebrityCaches[item.author] else { return }
        let position = cache.items.partitioningIndex { $0.id >= item.id }
        if position == cache.count || cache.items[position].id != item.id {
            cache.insert(item, at: position)
            if cache.count > options.celebrityCacheItems {
                cache.removeFirst()
                cache.complete = false
            }
        }
        celebrityCaches[item.author] = cache
    }

    mutating func fillCelebrityCache(_ author: UInt32) {
        scratchItems.removeAll(keepingCapacity: true)
        let limit = options.celebrityCacheItems
        tweets.newestItems(of: author, before: .max, limit: limit + 1, into: &scratchItems)
        // One slot more than kept: an insert comes before the removal of the oldest.
        var cache = CelebrityCache(capacity: limit + 1)
        cache.complete = scratchItems.count <= limit
        if !cache.complete { scratchItems.removeLast() }
        for item in scratchItems.reversed() { cache.append(item) }
        celebrityCaches.updateValue(cache, forKey: author)?.deallocate()
    }

    /// Frees every celebrity cache's buffer and forgets the caches.
    mutating func deallocateCelebrityCaches() {
        for cache in celebrityCaches.values { cache.deallocate() }
        celebrityCaches = [:]
    }

    /// Makes `reader` readable without the write lock: a ring, a current celebrity list, and a
    /// cache for each celebrity on it.
    @usableFromInline
    mutating func prepare(_ reader: UInt32) {
        var value = tableValue(reader)
        if value == 0 || value == Self.dropped {
            value = UInt32(rebuild(reader) + 1)
        }
        let number = Int(value - 1)
        if rings[number].celebrityEpoch != celebrityEpoch {
            var list = ContiguousArray<UInt32>()
            if !celebrities.isEmpty {
                collectAuthors(of: reader, into: &scratchUsers)
                for author in scratchUsers where celebrities.contains(author) { list.append(author) }
            }
            ringCelebrities.set(number, to: list)
            rings[number].hasCelebrities = !list.isEmpty
            rings[number].celebrityEpoch = celebrityEpoch
        }
        for celebrity in ringCelebrities.list(of: number) where celebrityCaches[celebrity] == nil {
            fillCelebrityCache(celebrity)
        }
    }

    mutating func reset(appliedLSN: UInt64, lazyRebuild: Bool) {
        if let supply = arena.supply {
            supply.stop()
            prefaultTotalsBeforeReset.cpuNanoseconds += supply.cpuNanoseconds.load(ordering: .relaxed)
            prefaultTotalsBeforeReset.busyNanoseconds += supply.busyNanoseconds.load(ordering: .relaxed)
            prefaultTotalsBeforeReset.prefaulted += supply.regionsPrefaulted.load(ordering: .relaxed)
            prefaultTotalsBeforeReset.inline += supply.regionsMadeInline.load(ordering: .relaxed)
        }
        arena.deallocateAll()
        arena = Self.makeArena(options, layout)
        userTable = []
        rings.removeAll()
        owners = []
        ringCelebrities.removeAll()
        celebrities = []
        bumpCelebrityEpoch()
        deallocateCelebrityCaches()
        retweets = [:]
        self.appliedLSN = appliedLSN
        self.lazyRebuild = lazyRebuild
    }

    mutating func compact(forgettingTombstones: Bool) -> Int {
        guard !tombstones.isEmpty else { return 0 }
        var referenced = Set<UInt64>()
        var removed = 0
        let tombstones = self.tombstones
        let retweets = self.retweets
        func dead(_ entry: TimelineEntry) -> Bool {
            if tombstones.contains(entry.id) { return true }
            if entry.flags.contains(.retweet), let original = retweets[entry.id], tombstones.contains(original.tweetId) { return true }
            return false
        }
        for number in rings.indices {
            let value = tableValue(owners[number].user)
            guard value == UInt32(number + 1) else { continue }
            var ring = rings.ring(number, layout: layout)
            removed += ring.removeAll(where: dead)
            rings.update(number, from: ring)
            for i in 0..<ring.count where ring[i].flags.contains(.retweet) { referenced.insert(ring[i].id) }
        }
        for author in Array(celebrityCaches.keys) {
            guard var cache = celebrityCaches[author] else { continue }
            // Still the newest of the source: what left was never in it any more.
            removed += cache.removeAll { tombstones.contains($0.id) || ($0.flags.contains(.retweet) && tombstones.contains($0.tweetId)) }
            celebrityCaches[author] = cache
        }
        self.retweets = self.retweets.filter { referenced.contains($0.key) }
        if forgettingTombstones { self.tombstones.removeAll() }
        compactedEntries += removed
        return removed
    }

    var statistics: TimelineStatistics {
        var s = TimelineStatistics()
        for number in rings.indices where tableValue(owners[number].user) == UInt32(number + 1) {
            s.rings += 1
            s.entries += rings.entries(number)
        }
        s.ringBytes = arena.allocatedBytes + rings.count * RingRecords.blockBytes
        if let supply = arena.supply {
            s.arenaPrefaultCPUNanoseconds = supply.cpuNanoseconds.load(ordering: .relaxed)
            s.arenaPrefaultBusyNanoseconds = supply.busyNanoseconds.load(ordering: .relaxed)
            s.arenaSegmentsPrefaulted = supply.regionsPrefaulted.load(ordering: .relaxed)
            s.arenaSegmentsMadeInline = supply.regionsMadeInline.load(ordering: .relaxed)
        }
        s.arenaPrefaultCPUNanoseconds += prefaultTotalsBeforeReset.cpuNanoseconds
        s.arenaPrefaultBusyNanoseconds += prefaultTotalsBeforeReset.busyNanoseconds
        s.arenaSegmentsPrefaulted += prefaultTotalsBeforeReset.prefaulted
        s.arenaSegmentsMadeInline += prefaultTotalsBeforeReset.inline
        s.pushes = pushes
        s.celebrityPosts = celebrityPosts
        s.rebuilds = rebuilds
        s.replayedEventsIgnored = replayedEventsIgnored
        s.retweets = retweets.count
        s.tombstones = tombstones.count
        s.compactedEntries = compactedEntries
        s.appliedLSN = appliedLSN
        return s
    }

    // MARK: Reads

    /// Fills `page` for `reader`; false when the reader must be prepared under the write lock
    /// first (no ring, a stale celebrity list, or a celebrity without a cache). Never mutates
    /// the state: many readers run it at once.
    ///
    /// `mutating` only so that the call borrows the state in place: called on `pointee` as a
    /// non-mutating method it is copied, which retains every collection in it, reference
    /// counts that two reading cores would then bounce between them. It writes nothing: the
    /// body is the non-mutating `readShared`, inlined (the same machine code, no retains).
    @inlinable
    mutating func read(_ reader: UInt32, limit: Int, before: UInt64, into page: inout TimelinePage, merged: inout Bool) -> Bool {
        readShared(reader, limit: limit, before: before, into: &page, merged: &merged)
    }

    /// The body of `read`. ThreadSanitizer counts the call of a `mutating` method as a write of
    /// the whole state, so two readers under the read lock were reported as a "Swift access
    /// race" though neither writes; the TSan build (`-DSOCIALDB_TSAN`) calls this directly
    /// (retaining the state's collections, as a copy does), and TSan still checks every byte
    /// the read touches.
    @inlinable @inline(__always)
    func readShared(_ reader: UInt32, limit: Int, before: UInt64, into page: inout TimelinePage, merged: inout Bool) -> Bool {
        // The ring record alone says whether the reader's ring is readable, without the user
        // table: a ring's number is its user's (see `rings`), and a record whose celebrity
        // epoch is current belongs to a live ring (a hole, a dropped ring and a ring whose list
        // was never computed all have epoch 0, which `celebrityEpoch` never is). So a read
        // loads one table entry fewer (perf put 13% of a read's samples on that miss).
        let number = Int(reader)
        guard number < rings.count else { return false }
        let record = rings[number]
        guard record.celebrityEpoch == celebrityEpoch else { return false }
        assert(tableValue(reader) == reader &+ 1, "a readable ring record without its user table entry")
        let ring = rings.ring(number, layout: layout)
        // A page that reaches past the block into the arena slot: start loading those lines
        // now, together, rather than one miss after another as the walk reaches them (the
        // block's own lines were prefetched with the record, see `TimelineStore.home`).
        let arenaCount = ring.arena.count
        if before == .max && ring.count &- limit < arenaCount {
            let stop = max(0, ring.count &- limit)
            var k = arenaCount &- 1
            while k > stop {
                socialdb_prefetch(ring.arena.base + ring.arena.physical(k))
                k &-= 4
            }
            socialdb_prefetch(ring.arena.base + ring.arena.physical(stop))
        }
        // Valid for the whole read: lists move only under the write lock.
        let celebrityList = record.hasCelebrities ? ringCelebrities.list(of: number) : UnsafeBufferPointer(start: nil, count: 0)
        for celebrity in celebrityList {
            // One probe per celebrity: the stream reads the cache in place from here on.
            guard let cache = celebrityCaches[celebrity] else { return false }
            page.addStream(author: celebrity, before: before, cache: cache.items, complete: cache.complete)
        }
        merged = !celebrityList.isEmpty
        let checkTombstones = !tombstones.isEmpty
        let floorBound = ring.floor == UInt64.max ? UInt64.max : ring.floor &+ 1

        // The ring's newest entry below the cursor.
        var ringIndex = (before == .max ? ring.count : ring.firstIndex(atLeast: before)) - 1
        var belowFloorStarted = false
        let batch = limit + 1

        // The common case, no celebrity to merge: the ring's entries alone, newest first, until
        // the page is full or the ring runs out (then the loop below goes on under the floor).
        if celebrityList.isEmpty {
            page.itemStorage.reserveCapacity(limit)
            // First in one append: the run of newest entries that need no filter (no tombstones
            // to check; not retweets, so no original shown twice), one uniqueness check and
            // capacity check for the run instead of one per item (`RingRun`).
            if !checkTombstones && page.seenOriginals.isEmpty {
                Self.appendPlainRun(of: ring, from: &ringIndex, to: &page.itemStorage, limit: limit)
            }
            while ringIndex >= 0 && page.itemStorage.count < limit {
                let entry = ring[ringIndex]
                ringIndex &-= 1
                appendIfShown(item(of: entry), to: &page, checkTombstones: checkTombstones)
            }
        }

        while page.itemStorage.count < limit {
            if ringIndex < 0 && !belowFloorStarted && ring.floor > 0 {
                // Past the ring's oldest entry: every non-celebrity author's older items come
                // from the source, below the floor (and the cursor).
                belowFloorStarted = true
                merged = true
                collectAuthors(of: reader, into: &page.authors)
                let start = min(before, floorBound)
                for author in page.authors where !celebrityList.contains(author) {
                    page.addStream(author: author, before: start)
                }
            }
            var streamKey: UInt64 = 0
            var bestStream = -1
            for s in 0..<page.streamCount {
                if page.streams[s].needsRefill {
                    Self.refill(&page.streams[s], batch: batch, from: tweets)
                }
                let key = page.streams[s].currentId
                if key > streamKey {
                    streamKey = key
                    bestStream = s
                }
            }
            let ringKey = ringIndex >= 0 ? ring[ringIndex].id : 0
            if ringKey == 0 && streamKey == 0 { break }

            var item: TimelineItem
            if ringKey >= streamKey {
                // The ring's entries above every stream's next item come next, in one run
                // when no filter applies (as in the common case above), celebrities' own
                // entries left out: one append per run, not per item.
                if !checkTombstones && page.seenOriginals.isEmpty {
                    let start = ringIndex
                    Self.appendPlainRun(of: ring, from: &ringIndex, to: &page.itemStorage, limit: limit,
                                        above: streamKey, skipping: celebrityList)
                    if ringIndex != start { continue }
                }
                let entry = ring[ringIndex]
                ringIndex -= 1
                if !celebrityList.isEmpty && celebrityList.contains(entry.user) { continue }
                item = self.item(of: entry)
            } else {
                item = page.streams[bestStream].take()
            }
            appendIfShown(item, to: &page, checkTombstones: checkTombstones)
        }
        return true
    }

    /// Items a plain run is built in before it is appended: 24 items are 960 bytes, which
    /// `withUnsafeTemporaryAllocation` keeps on the stack.
    @inlinable static var plainRunChunk: Int { 24 }

    /// Appends to `items` the ring's entries from logical index `index` down, until `limit`
    /// items, the ring's oldest entry, an entry at or below `bound` or the first retweet (whose
    /// original the walk after this looks up and shows once), moving `index` past the entries
    /// taken; entries by a user in `skipping` (celebrities, merged from their streams) are
    /// passed over. For a page with no tombstone to check and no retweet shown yet, where every
    /// such entry is shown: the items are built in a stack buffer and appended a chunk at a
    /// time, one uniqueness and capacity check per chunk instead of one per item (callgrind:
    /// about half the instructions of appending each item).
    @inlinable
    static func appendPlainRun(of ring: SplitRing, from index: inout Int, to items: inout ContiguousArray<TimelineItem>, limit: Int,
                               above bound: UInt64 = 0,
                               skipping: UnsafeBufferPointer<UInt32> = UnsafeBufferPointer(start: nil, count: 0)) {
        var stopped = false
        while !stopped && index >= 0 && items.count < limit {
            let wanted = Swift.min(limit &- items.count, plainRunChunk)
            withUnsafeTemporaryAllocation(of: TimelineItem.self, capacity: plainRunChunk) { buffer in
                let base = buffer.baseAddress!
                var k = 0
                // The entries in the ring's block first (a page of 20 nearly always ends there):
                // contiguous, newest at `hot + index - arena.count`, walked by a pointer with
                // none of the subscript's split and wrap checks per entry (callgrind: 29
                // instructions an item before, or 42 while skipping celebrities' entries).
                let inBlock = index &- ring.arena.count
                if inBlock >= 0 {
                    var entry = ring.hot + inBlock
                    let last = ring.hot
                    let end = base + wanted
                    var out = base
                    while out < end {
                        let e = entry.pointee
                        if e.id <= bound || e.flags.contains(.retweet) {
                            stopped = true
                            break
                        }
                        if skipping.isEmpty || !skipping.contains(e.user) {
                            out.initialize(to: TimelineItem(id: e.id, author: e.user, flags: e.flags, tweetId: e.id, tweetAuthor: e.user))
                            out += 1
                        }
                        if entry == last {
                            entry = last - 1
                            break
                        }
                        entry -= 1
                    }
                    index = ring.arena.count &+ (entry - last)
                    k = out - base
                }
                while !stopped && k < wanted {
                    guard index >= 0 else {
                        stopped = true
                        break
                    }
                    let entry = ring[index]
                    if entry.id <= bound || entry.flags.contains(.retweet) {
                        stopped = true
                        break
                    }
                    index &-= 1
                    if !skipping.isEmpty && skipping.contains(entry.user) { continue }
                    (base + k).initialize(to: TimelineItem(id: entry.id, author: entry.user, flags: entry.flags,
                                                           tweetId: entry.id, tweetAuthor: entry.user))
                    k &+= 1
                }
                items.append(contentsOf: UnsafeBufferPointer(start: base, count: k))
            }
        }
    }

    /// The page item of a ring entry: a retweet's original comes from the retweet table.
    @inlinable @inline(__always)
    func item(of entry: TimelineEntry) -> TimelineItem {
        if entry.flags.contains(.retweet) {
            let original = retweets[entry.id]
            assert(original != nil, "a retweet entry without its original")
            return TimelineItem(id: entry.id, author: entry.user, flags: entry.flags,
                                tweetId: original?.tweetId ?? entry.id, tweetAuthor: original?.tweetAuthor ?? entry.user)
        }
        return TimelineItem(id: entry.id, author: entry.user, flags: entry.flags, tweetId: entry.id, tweetAuthor: entry.user)
    }

    /// Appends `item` to the page unless it is deleted (a tombstone on it, or on a retweet's
    /// original) or its original is already on the page.
    @inlinable @inline(__always)
    func appendIfShown(_ item: TimelineItem, to page: inout TimelinePage, checkTombstones: Bool) {
        if checkTombstones && (tombstones.contains(item.id) || (item.isRetweet && tombstones.contains(item.tweetId))) {
            return
        }
        if item.isRetweet {
            if page.seenOriginals.contains(item.tweetId) { return }
            page.seenOriginals.append(item.tweetId)
        } else if !page.seenOriginals.isEmpty && page.seenOriginals.contains(item.id) {
            return
        }
        page.itemStorage.append(item)
    }

    /// Refills a stream, whose cache part (if any) is done, with up to `batch` items from the
    /// source below its `nextBefore`. Static, taking the source alone: as a method of the
    /// state, each pass of the merge loop copied the whole state (264 bytes, a `memcpy`) to
    /// call it, 440 instructions a read in callgrind.
    @inlinable
    static func refill(_ stream: inout SourceStream, batch: Int, from tweets: Tweets) {
        stream.items.removeAll(keepingCapacity: true)
        stream.position = 0
        tweets.newestItems(of: stream.author, before: stream.nextBefore, limit: batch, into: &stream.items)
        if stream.items.count < batch { stream.finished = true }
        if let last = stream.items.last { stream.nextBefore = last.id }
    }
}

extension Collection {
    /// The first index where `belongsInSecondPartition` is true, for a collection partitioned
    /// by it (all false, then all true): binary search.
    @inlinable
    func partitioningIndex(where belongsInSecondPartition: (Element) -> Bool) -> Index {
        var low = startIndex
        var length = count
        while length > 0 {
            let half = length / 2
            let middle = index(low, offsetBy: half)
            if belongsInSecondPartition(self[middle]) {
                length = half
            } else {
                low = index(after: middle)
                length -= half + 1
            }
        }
        return low
    }
}

/// Where a ring rebuild is in one author's items: `next` is the id of the first item not read
/// yet (`.max` before the first read, 0 once the source has no more), `batch` the last batch.
struct AuthorCursor {
    var author: UInt32
    var next: UInt64
    var batch: Int
}
