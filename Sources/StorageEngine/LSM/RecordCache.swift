import CLibURing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Recently read records (key → value) in front of the memtables and tables, sized in bytes:
/// RocksDB's row cache. Tweets, users and counters are read far more often than written, and a
/// home page asks for the same recent tweets again and again, so this is where a hydrated home
/// read spends its time when it misses.
///
/// Layout. 64 shards by the key's hash (its top 6 bits). Each shard has, in memory allocated
/// once:
/// - an open-addressing table of slots (linear probing from the tag's low bits, backward-shift
///   deletion, at most 3/4 full), one word a slot (0 = empty): the record's word offset in the
///   arena (bits 0-31), the key's tag (bits 32-62: the hash's low 31 bits, 1 where those are
///   0, so the tag also gives the slot's home) and bit 63, referenced since the clock hand last
///   passed it. A tag match is only a candidate: the record holds the whole hash and the key,
///   which readers compare, and writers find a key's slot by the record's whole hash;
/// - an arena of 64-bit words used as a circular log of records. A record is: the hash; a word
///   of key length (bits 0-15), value length (bits 16-47) and "absent" (bit 63: the key has no
///   value, cached because most counter lookups find none); the key, then the value, each
///   padded with zeros to whole words; the record padded to an even number of words. A record
///   that no slot points to is dead (removed or replaced). Where a record does not fit before
///   the arena's end, the rest is a padding record (hash 0, then its size in words) and the log
///   wraps to word 0.
/// Eviction is CLOCK over the log (FIFO with a second chance): to make room the writer looks at
/// the record at the log's head; a dead one or padding is dropped, a live one is dropped unless
/// it was referenced, in which case it is copied to the tail (up to 32 such moves per insert)
/// and its bit cleared. An insert leaves `moveSlackWords` free before the head, so there is
/// room for such a move (a full log without slack never moved anything: FIFO). A hit sets the referenced bit only when it is clear, so a hot entry
/// costs its readers no writes.
///
/// Readers take no lock and write nothing shared (but that bit, and per-thread striped hit
/// counters): every shard has a seqlock `version`, even when no writer is inside. A reader
/// notes it, reads the slot and the record (atomic relaxed loads only, every offset and length
/// bounds-checked, since a racing writer may have changed them), copies the value out, and keeps
/// what it read only if the version is the same afterwards; else it reads again (a few times,
/// then it counts a miss and reads the tree). Writers (inserts, removals, `clear`) hold the
/// shard's mutex and make the version odd while they change the slots and the arena. So a probe
/// is a hash, one or two cache lines of the table and the record's lines; a multi-get's probes
/// run in passes (all slots prefetched, then all records, then the copies) so a page's misses
/// overlap. The budget covers the table and the arena: nothing is allocated per entry.
///
/// Consistency with writes (the tree's batch `sequence`, one writer at a time: the tree's
/// insert lock):
/// - a write makes `sequence` odd, inserts its batch into the memtable, removes every key of
///   the batch from the cache, and makes `sequence` even again;
/// - a reader notes `sequence` (`begin`) before it looks anything up; it uses the cache only if
///   that was even, inserts what it read from the tree only if `sequence` is still the same
///   (checked under the shard mutex, so a write's removal, which takes the same mutex, comes
///   after any insert it raced with), and a multi-key read whose keys may straddle a write (the
///   sequence moved during it) is done again without the cache, so it sees a batch all or none.
/// Every write removes each key of its batch, puts and deletes alike. Compaction never changes
/// a key's value, so it needs nothing here.
final class RecordCache: @unchecked Sendable {
    // @unchecked: readers touch only atomics (shard versions, slots, arena words, the striped
    // counters) and immutable pointers; the rest of a shard is under its writer mutex.

    /// What a lookup found.
    enum Lookup<Result> {
        case miss
        case absent
        case value(Result)
    }

    static let shardCount = 64
    /// Read attempts of one key before a reader gives up on the cache (a writer kept changing
    /// the shard) and reads the tree.
    static let readAttempts = 16
    /// Referenced records a single insert may move to the tail before it evicts regardless
    /// (a move copies a record, about 200 bytes for a tweet; a miss it saves reads a table).
    static let movesPerInsert = 32
    /// Free words an insert leaves before the log's head (see `allocate`): room to move a
    /// referenced record of up to 2 KiB to the tail.
    static let moveSlackWords = 256
    /// In a slot: referenced since the clock hand last passed.
    static let referencedBit: UInt64 = 1 << 63
    /// In a slot: the tag (bits 32-62).
    static let tagMask: UInt64 = 0x7FFF_FFFF
    /// In a record's length word: the key has no value.
    static let absentBit: UInt64 = 1 << 63
    static let offsetMask: UInt64 = (1 << 32) - 1
    /// Budgets from this size up keep their slots and arenas in one region of transparent huge
    /// pages (`HugePageRegion`): a probe reads a slot and a record at random places of the whole
    /// budget, and with 4 KiB pages each was a TLB miss (a 64 MiB cache spans 16,384 pages, the
    /// TLB reaches a few thousand; in a virtual machine a miss walks two sets of page tables),
    /// where 32 huge pages stay in the TLB. A cache fills up, so the whole pages cost no memory
    /// it would not use anyway; below this size the few pages are not worth a whole huge one.
    static let hugePagesMinimumBytes = 16 << 20

    let capacityBytes: Int
    /// False with a zero budget: nothing is cached, only the sequence is kept.
    let enabled: Bool
    let shardCapacity: Int
    /// One `ShardHeader` per shard, each on a cache line of its own (readers load only these
    /// and the memory they point to; no reference counting per probe).
    let headers: UnsafeMutablePointer<ShardHeader>
    /// The writers' state per shard (each box its own allocation).
    let writers: [WriterBox]
    /// The slots and arenas of every shard, when the budget is at least `hugePagesMinimumBytes`.
    let region: HugePageRegion?
    let sequence = Atomic<UInt64>(0)
    let hitCounter = StripedCounter()
    let missCounter = StripedCounter()

    /// What readers of a shard need: its version and where its table and arena are.
    struct ShardHeader: ~Copyable {
        /// Even when no writer is inside (see the type's comment).
        let version = Atomic<UInt64>(0)
        /// `slotMask + 1` words.
        let slots: UnsafeMutablePointer<Atomic<UInt64>>
        let slotMask: Int
        /// `wordCount` words (even).
        let words: UnsafeMutablePointer<Atomic<UInt64>>
        let wordCount: Int
        /// At most this many entries (3/4 of the slots).
        let entriesMax: Int
        /// To a whole cache line: a reader of one shard never shares a line with a writer of another.
        let padding: (Int, Int) = (0, 0)

        /// Over zeroed memory: zero words are valid atomics holding 0 (`Atomic<UInt64>` is a
        /// plain 64-bit word).
        init(slots: UnsafeMutableRawPointer, slotCount: Int, words: UnsafeMutableRawPointer, wordCount: Int) {
            self.slots = slots.bindMemory(to: Atomic<UInt64>.self, capacity: slotCount)
            self.words = words.bindMemory(to: Atomic<UInt64>.self, capacity: wordCount)
            slotMask = slotCount - 1
            self.wordCount = wordCount
            entriesMax = max(1, slotCount * 3 / 4)
        }
    }

    struct WriterState {
        /// The oldest record's word offset, and where the next one goes.
        var head = 0
        var tail = 0
        /// Words between head and tail (records, dead ones and padding included).
        var used = 0
        var entries = 0
        /// Words of live records.
        var liveWords = 0
    }

    final class WriterBox: Sendable {
        let state = Mutex(WriterState())
    }

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        enabled = capacityBytes > 0
        shardCapacity = max(1, capacityBytes / Self.shardCount)
        // A slot per 64 bytes of budget (a typical tweet record is about 200 bytes, a counter's
        // 32), a power of two, 8 bytes each (an eighth of the budget; slots of two words, the
        // hash and the offset, took a quarter, and the arena held a sixth fewer tweets); the
        // arena has the rest.
        var slotCount = 16
        while slotCount * 64 < shardCapacity { slotCount *= 2 }
        precondition(slotCount <= Int(Self.tagMask) + 1, "record cache shard too large for its tags")
        let wordCount = max(64, (shardCapacity - slotCount * 8) / 8) & ~1
        precondition(wordCount <= Int(Self.offsetMask), "record cache shard too large for its offsets")
        let shards = enabled ? Self.shardCount : 0
        precondition(MemoryLayout<ShardHeader>.stride == 64, "a shard header is one cache line")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, shards) * 64, alignment: 64)
        headers = raw.bindMemory(to: ShardHeader.self, capacity: max(1, shards))
        // Every shard's slots, then every shard's arena, in one region of huge pages when the
        // budget is large (see `hugePagesMinimumBytes`); else each in a calloc'ed block of its
        // own (large blocks come as untouched zero pages, so a big cache costs memory only as
        // it fills).
        let slotBytes = slotCount * 8
        let wordBytes = wordCount * 8
        region = shards > 0 && capacityBytes >= Self.hugePagesMinimumBytes
            ? HugePageRegion(byteCount: shards * (slotBytes + wordBytes)) : nil
        for i in 0..<shards {
            let slots: UnsafeMutableRawPointer
            let words: UnsafeMutableRawPointer
            if let region {
                slots = region.base + i * slotBytes
                words = region.base + shards * slotBytes + i * wordBytes
            } else {
                slots = calloc(slotCount, 8)!
                words = calloc(wordCount, 8)!
            }
            (headers + i).initialize(to: ShardHeader(slots: slots, slotCount: slotCount, words: words, wordCount: wordCount))
        }
        writers = (0..<shards).map { _ in WriterBox() }
    }

    deinit {
        for i in 0..<(enabled ? Self.shardCount : 0) {
            let h = header(i)
            if region == nil {
                free(UnsafeMutableRawPointer(h.pointee.slots))
                free(UnsafeMutableRawPointer(h.pointee.words))
            }
            h.deinitialize(count: 1)
        }
        region?.deallocate()
        UnsafeMutableRawPointer(headers).deallocate()
    }

    @inline(__always)
    func header(_ shard: Int) -> UnsafeMutablePointer<ShardHeader> { headers + shard }

    @inline(__always)
    static func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> 58) & (shardCount - 1) }

    @inline(__always)
    static func stored(_ hash: UInt64) -> UInt64 { hash == 0 ? 1 : hash }

    /// The tag of a key with this (stored) hash, never 0; its low bits are the slot's home.
    @inline(__always)
    static func tag(_ stored: UInt64) -> UInt64 {
        let t = stored & tagMask
        return t == 0 ? 1 : t
    }

    /// The tag in a slot word.
    @inline(__always)
    static func tag(ofSlot word: UInt64) -> UInt64 { (word >> 32) & tagMask }

    /// Whether a slot word is empty. A reader's `markReferenced` may land just after a writer
    /// emptied the slot, leaving the referenced bit alone in it: that is still an empty slot
    /// (no tag is 0), which the next insert there overwrites.
    @inline(__always)
    static func isEmpty(_ word: UInt64) -> Bool { word & ~referencedBit == 0 }

    /// Words of a record with a key and value of these lengths.
    @inline(__always)
    static func recordWords(keyLength: Int, valueLength: Int) -> Int {
        (2 &+ (keyLength &+ 7) >> 3 &+ (valueLength &+ 7) >> 3 &+ 1) & ~1
    }

    // MARK: Readers

    /// The sequence to pass to `lookup`/`insert`/`unchanged`; odd means a write is in progress.
    @inline(__always)
    func begin() -> UInt64 { sequence.load(ordering: .acquiring) }

    /// True when no write started or finished since `begin` returned `token`.
    @inline(__always)
    func unchanged(since token: UInt64) -> Bool { sequence.load(ordering: .acquiring) == token }

    /// Where `key`'s record is, read speculatively (the caller checks the version after).
    struct Located {
        var slot: Int
        var record: Int
        var valueLength: Int
        var absent: Bool
    }

    /// The first slot with the tag of `stored`, or -1: a candidate, for readers (`locate` then
    /// compares the record's hash and key). Bounded even on a table a writer is changing.
    @inline(__always)
    static func findSlot(_ h: UnsafeMutablePointer<ShardHeader>, _ stored: UInt64) -> Int {
        let slots = h.pointee.slots
        let mask = h.pointee.slotMask
        let tag = Self.tag(stored)
        var i = Int(truncatingIfNeeded: tag) & mask
        var probes = 0
        while probes <= mask {
            let s = slots[i].load(ordering: .relaxed)
            if Self.tag(ofSlot: s) == tag { return i }
            if Self.isEmpty(s) { return -1 }
            i = (i &+ 1) & mask
            probes &+= 1
        }
        return -1
    }

    /// The slot whose record has the hash `stored` (and, when `offset` is not nil, is at
    /// that word offset), or -1. Writers only: the table and the arena are stable.
    static func findSlotExactly(_ h: UnsafeMutablePointer<ShardHeader>, _ stored: UInt64, offset: Int? = nil) -> Int {
        let slots = h.pointee.slots
        let words = h.pointee.words
        let mask = h.pointee.slotMask
        let tag = Self.tag(stored)
        var i = Int(truncatingIfNeeded: tag) & mask
        while true {
            let s = slots[i].load(ordering: .relaxed)
            if Self.isEmpty(s) { return -1 }
            if Self.tag(ofSlot: s) == tag {
                let record = Int(truncatingIfNeeded: s & offsetMask)
                if let offset {
                    if record == offset { return i }
                } else if words[record].load(ordering: .relaxed) == stored {
                    return i
                }
            }
            i = (i &+ 1) & mask
        }
    }

    /// `key`'s record in shard `h` if the slot found points to a record of that key, checked
    /// against the arena's bounds. Speculative: validate the version before trusting it.
    @inline(__always)
    static func locate(_ h: UnsafeMutablePointer<ShardHeader>, slot: Int, stored: UInt64, key: UnsafeRawBufferPointer) -> Located? {
        let words = h.pointee.words
        let wordCount = h.pointee.wordCount
        let record = Int(truncatingIfNeeded: h.pointee.slots[slot].load(ordering: .relaxed) & offsetMask)
        guard record <= wordCount &- 2, words[record].load(ordering: .relaxed) == stored else { return nil }
        let lengths = words[record &+ 1].load(ordering: .relaxed)
        let keyLength = Int(truncatingIfNeeded: lengths & 0xFFFF)
        let valueLength = Int(truncatingIfNeeded: (lengths >> 16) & 0xFFFF_FFFF)
        guard keyLength == key.count else { return nil }
        let keyWords = (keyLength &+ 7) >> 3
        guard valueLength <= wordCount &* 8, record &+ 2 &+ keyWords &+ (valueLength &+ 7) >> 3 <= wordCount else { return nil }
        var k = 0
        while k < keyWords {
            if words[record &+ 2 &+ k].load(ordering: .relaxed) != keyWord(key, k) { return nil }
            k &+= 1
        }
        return Located(slot: slot, record: record, valueLength: valueLength, absent: lengths & absentBit != 0)
    }

    /// Word `k` of `key` as the arena stores it (little-endian, zero-padded).
    @inline(__always)
    static func keyWord(_ key: UnsafeRawBufferPointer, _ k: Int) -> UInt64 {
        let start = k &<< 3
        let n = key.count &- start
        if n >= 8 { return key.loadUnaligned(fromByteOffset: start, as: UInt64.self) }
        var w: UInt64 = 0
        var b = 0
        while b < n {
            w |= UInt64(key[start &+ b]) &<< (UInt64(b) &<< 3)
            b &+= 1
        }
        return w
    }

    /// Copies the value of the record at `record` (key of `keyLength` bytes) to `destination`,
    /// which has room for the value rounded up to whole words.
    @inline(__always)
    static func copyValue(_ h: UnsafeMutablePointer<ShardHeader>, record: Int, keyLength: Int, valueLength: Int,
                          to destination: UnsafeMutableRawPointer) {
        let words = h.pointee.words
        let first = record &+ 2 &+ (keyLength &+ 7) >> 3
        let count = (valueLength &+ 7) >> 3
        var k = 0
        while k < count {
            destination.storeBytes(of: words[first &+ k].load(ordering: .relaxed), toByteOffset: k &<< 3, as: UInt64.self)
            k &+= 1
        }
    }

    /// Whether nothing changed in shard `h` since its version was `version` (even).
    @inline(__always)
    static func validate(_ h: UnsafeMutablePointer<ShardHeader>, _ version: UInt64) -> Bool {
        atomicMemoryFence(ordering: .acquiring)
        return h.pointee.version.load(ordering: .relaxed) == version
    }

    /// Marks a hit's slot referenced (only when it is not: a hot entry costs no writes). The
    /// slot may have moved meanwhile; the bit is a hint, so a wrong one costs nothing.
    @inline(__always)
    static func markReferenced(_ h: UnsafeMutablePointer<ShardHeader>, slot: Int) {
        let word = h.pointee.slots + slot
        if word.pointee.load(ordering: .relaxed) & referencedBit == 0 {
            _ = word.pointee.bitwiseOr(referencedBit, ordering: .relaxed)
        }
    }

    /// What the cache knows of `key`: `.value(body(bytes))` with a copy of its value (valid
    /// during the call), `.absent` when it knows the key has none, `.miss` otherwise.
    func lookup<R>(_ key: UnsafeRawBufferPointer, hash: UInt64, _ body: (UnsafeRawBufferPointer) -> R) -> Lookup<R> {
        guard enabled else { return .miss }
        let outcome = lookupUncounted(key, hash: hash, body)
        if case .miss = outcome { missCounter.increment() } else { hitCounter.increment() }
        return outcome
    }

    private func lookupUncounted<R>(_ key: UnsafeRawBufferPointer, hash: UInt64, _ body: (UnsafeRawBufferPointer) -> R) -> Lookup<R> {
        let h = header(Self.shardIndex(hash))
        let stored = Self.stored(hash)
        for attempt in 0..<Self.readAttempts {
            let version = h.pointee.version.load(ordering: .acquiring)
            if version & 1 != 0 {
                // A writer is inside (an insert takes about a microsecond): spin, then yield.
                if attempt >= 4 { sched_yield() }
                continue
            }
            let slot = Self.findSlot(h, stored)
            guard slot >= 0, let found = Self.locate(h, slot: slot, stored: stored, key: key) else {
                if Self.validate(h, version) { return .miss }
                continue
            }
            if found.absent {
                guard Self.validate(h, version) else { continue }
                Self.markReferenced(h, slot: slot)
                return .absent
            }
            let result: R? = withUnsafeTemporaryAllocation(byteCount: ((found.valueLength &+ 7) & ~7) &+ 8, alignment: 8) { buffer in
                Self.copyValue(h, record: found.record, keyLength: key.count, valueLength: found.valueLength, to: buffer.baseAddress!)
                guard Self.validate(h, version) else { return nil }
                return body(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: found.valueLength))
            }
            if let result {
                Self.markReferenced(h, slot: slot)
                return .value(result)
            }
        }
        return .miss
    }

    /// Looks up every key of `batch` in passes, so the cache misses of a page overlap: hashes
    /// and slot lines first, then the records' lines, then the copies. Sets each found value
    /// (or absence) in the batch and lists the keys the cache does not know in
    /// `batch.missing`. Each key is as consistent as a single lookup; the caller checks the
    /// tree's `sequence` around the whole batch.
    func lookup(_ batch: RecordBatch) {
        let n = batch.count
        guard enabled else {
            for i in 0..<n { batch.missing.append(i) }
            return
        }
        // Pass 1: hashes; start loading each key's home slot.
        for i in 0..<n {
            let hash = batch.withKey(i) { BloomFilter.hash($0) }
            batch.hashes[i] = hash
            let h = header(Self.shardIndex(hash))
            socialdb_prefetch(UnsafeRawPointer(h.pointee.slots + (Int(truncatingIfNeeded: Self.tag(Self.stored(hash))) & h.pointee.slotMask)))
        }
        // Pass 2: the slots (their lines arriving together); start loading each record.
        for i in 0..<n {
            let hash = batch.hashes[i]
            let h = header(Self.shardIndex(hash))
            let version = h.pointee.version.load(ordering: .acquiring)
            batch.versions[i] = version
            batch.slots[i] = -1
            guard version & 1 == 0 else { continue }
            let slot = Self.findSlot(h, Self.stored(hash))
            batch.slots[i] = slot
            guard slot >= 0 else { continue }
            let record = Int(truncatingIfNeeded: h.pointee.slots[slot].load(ordering: .relaxed) & Self.offsetMask)
            if record < h.pointee.wordCount {
                let base = UnsafeRawPointer(h.pointee.words + record)
                socialdb_prefetch(base)
                socialdb_prefetch(base + 64)
                socialdb_prefetch(base + 128)
                socialdb_prefetch(base + 192)
            }
        }
        // Pass 3: the records; a key whose shard changed meanwhile is looked up alone.
        var hits = 0
        var misses = 0
        for i in 0..<n {
            let hash = batch.hashes[i]
            let h = header(Self.shardIndex(hash))
            let version = batch.versions[i]
            let slot = batch.slots[i]
            let stored = Self.stored(hash)
            if version & 1 == 0 {
                let done: Bool = batch.withKey(i) { key in
                    guard slot >= 0, let found = Self.locate(h, slot: slot, stored: stored, key: key) else {
                        guard Self.validate(h, version) else { return false }
                        batch.missing.append(i)
                        misses &+= 1
                        return true
                    }
                    if found.absent {
                        guard Self.validate(h, version) else { return false }
                        batch.setAbsent(i)
                    } else {
                        let destination = batch.reserveValue(found.valueLength)
                        Self.copyValue(h, record: found.record, keyLength: key.count, valueLength: found.valueLength, to: destination)
                        guard Self.validate(h, version) else { return false }
                        batch.commitValue(i, length: found.valueLength)
                    }
                    Self.markReferenced(h, slot: slot)
                    hits &+= 1
                    return true
                }
                if done { continue }
            }
            let outcome: Lookup<Void> = batch.withKey(i) { key in
                lookupUncounted(key, hash: hash) { bytes in batch.setValue(i, bytes) }
            }
            switch outcome {
            case .miss:
                batch.missing.append(i)
                misses &+= 1
            case .absent:
                batch.setAbsent(i)
                hits &+= 1
            case .value:
                hits &+= 1
            }
        }
        if hits > 0 { hitCounter.add(hits) }
        if misses > 0 { missCounter.add(misses) }
    }

    // MARK: Writers (each under its shard's mutex)

    /// Caches `value` for `key` if no write happened since `token` (which must be even).
    func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: UnsafeRawBufferPointer, token: UInt64) {
        insert(key, hash: hash, value: value, absent: false, token: token)
    }

    /// Caches `value` for `key` if no write happened since `token` (which must be even).
    func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: [UInt8], token: UInt64) {
        value.withUnsafeBytes { insert(key, hash: hash, value: $0, absent: false, token: token) }
    }

    /// Caches that `key` has no value, if no write happened since `token`.
    func insertAbsent(_ key: UnsafeRawBufferPointer, hash: UInt64, token: UInt64) {
        insert(key, hash: hash, value: UnsafeRawBufferPointer(start: nil, count: 0), absent: true, token: token)
    }

    private func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, value: UnsafeRawBufferPointer, absent: Bool, token: UInt64) {
        guard enabled, token & 1 == 0, key.count <= 0xFFFF else { return }
        let size = Self.recordWords(keyLength: key.count, valueLength: value.count)
        let shard = Self.shardIndex(hash)
        let h = header(shard)
        guard size &* 8 &+ 16 <= shardCapacity / 8, size <= h.pointee.wordCount / 2 else { return }
        let stored = Self.stored(hash)
        writers[shard].state.withLock { w in
            guard sequence.load(ordering: .acquiring) == token else { return }
            Self.beginWrite(h)
            defer { Self.endWrite(h) }
            let existing = Self.findSlotExactly(h, stored)
            if existing >= 0 { Self.removeSlot(h, existing, &w) }
            while w.entries >= h.pointee.entriesMax && w.used > 0 { Self.evictHead(h, &w, mayMove: false) }
            let record = Self.allocate(h, words: size, &w)
            let words = h.pointee.words
            words[record].store(stored, ordering: .relaxed)
            words[record &+ 1].store(UInt64(key.count) | UInt64(value.count) << 16 | (absent ? Self.absentBit : 0), ordering: .relaxed)
            var at = record &+ 2
            for k in 0..<((key.count + 7) >> 3) {
                words[at].store(Self.keyWord(key, k), ordering: .relaxed)
                at &+= 1
            }
            for k in 0..<((value.count + 7) >> 3) {
                words[at].store(Self.keyWord(value, k), ordering: .relaxed)
                at &+= 1
            }
            Self.insertSlot(h, stored: stored, record: record)
            w.entries += 1
            w.liveWords += size
        }
    }

    /// Removes `key` (inside `beginWrite`/`endWrite`, after the memtable has the new version).
    /// Whatever entry has the key's hash goes (another key with the same hash too: harmless).
    func remove(_ key: UnsafeRawBufferPointer) {
        guard enabled else { return }
        let hash = BloomFilter.hash(key)
        let shard = Self.shardIndex(hash)
        let h = header(shard)
        let stored = Self.stored(hash)
        writers[shard].state.withLock { w in
            let slot = Self.findSlotExactly(h, stored)
            guard slot >= 0 else { return }
            Self.beginWrite(h)
            Self.removeSlot(h, slot, &w)
            Self.endWrite(h)
        }
    }

    /// Makes shard `h`'s version odd; every store after this is ordered after it.
    @inline(__always)
    static func beginWrite(_ h: UnsafeMutablePointer<ShardHeader>) {
        let version = h.pointee.version.load(ordering: .relaxed)
        h.pointee.version.store(version &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
    }

    @inline(__always)
    static func endWrite(_ h: UnsafeMutablePointer<ShardHeader>) {
        let version = h.pointee.version.load(ordering: .relaxed)
        h.pointee.version.store(version &+ 1, ordering: .releasing)
    }

    /// The size in words of the record or padding at `offset`.
    static func sizeAt(_ h: UnsafeMutablePointer<ShardHeader>, _ offset: Int) -> Int {
        let words = h.pointee.words
        let lengths = words[offset &+ 1].load(ordering: .relaxed)
        if words[offset].load(ordering: .relaxed) == 0 { return Int(truncatingIfNeeded: lengths) }
        return recordWords(keyLength: Int(truncatingIfNeeded: lengths & 0xFFFF),
                           valueLength: Int(truncatingIfNeeded: (lengths >> 16) & 0xFFFF_FFFF))
    }

    /// `size` words at the log's tail, evicting from its head as needed (inside a write).
    static func allocate(_ h: UnsafeMutablePointer<ShardHeader>, words size: Int, _ w: inout WriterState) -> Int {
        let count = h.pointee.wordCount
        let slack = min(moveSlackWords, count / 8)
        var moves = 0
        while true {
            if w.used == 0 {
                w.head = 0
                w.tail = 0
            }
            if w.tail > w.head || w.used == 0 {
                // Free: [tail, end) and [0, head).
                if count - w.tail >= size { break }
                let padding = count - w.tail
                h.pointee.words[w.tail].store(0, ordering: .relaxed)
                h.pointee.words[w.tail + 1].store(UInt64(padding), ordering: .relaxed)
                w.used += padding
                w.tail = 0
                continue
            }
            // Free: [tail, head) (none when tail == head: the log is full). Kept `slack` words
            // above what this record needs, so a referenced record at the head can be moved
            // to the tail (a move needs its size free): in a full log without slack, nothing
            // ever moved and eviction was plain FIFO.
            if w.head - w.tail >= size + slack { break }
            if evictHead(h, &w, mayMove: moves < movesPerInsert) { moves += 1 }
        }
        let record = w.tail
        w.tail += size
        w.used += size
        if w.tail == count { w.tail = 0 }
        return record
    }

    /// Drops the record at the log's head, or, when it is live, referenced and `mayMove` and
    /// there is room, moves it to the tail with its bit cleared. Returns whether it moved.
    @discardableResult
    static func evictHead(_ h: UnsafeMutablePointer<ShardHeader>, _ w: inout WriterState, mayMove: Bool) -> Bool {
        let words = h.pointee.words
        let offset = w.head
        let size = sizeAt(h, offset)
        let stored = words[offset].load(ordering: .relaxed)
        var moved = false
        if stored != 0 {
            // Live when a slot of its tag points here.
            let slot = findSlotExactly(h, stored, offset: offset)
            if slot >= 0 {
                let pointer = h.pointee.slots[slot].load(ordering: .relaxed)
                if mayMove && pointer & referencedBit != 0 && w.tail < w.head && w.head - w.tail >= size {
                    for k in 0..<size { words[w.tail + k].store(words[offset + k].load(ordering: .relaxed), ordering: .relaxed) }
                    h.pointee.slots[slot].store(Self.tag(stored) << 32 | UInt64(w.tail), ordering: .relaxed)
                    w.tail += size
                    w.used += size
                    moved = true
                } else {
                    removeSlot(h, slot, &w)
                }
            }
        }
        w.head += size
        w.used -= size
        if w.head == h.pointee.wordCount { w.head = 0 }
        prefetchAhead(h, w)
        return moved
    }

    /// Starts loading what the next evictions read: the slots of the records at the log's
    /// head and the two after it, and the log's next kilobyte. An eviction reads the head
    /// record's first line, its slot (a line at a random place of the table) and, to move it,
    /// the rest of the record: cold memory each, the log's head having been written a whole lap
    /// of the log ago. Evictions come in runs (an insert moves up to `movesPerInsert`
    /// referenced records), and perf put three quarters of an eviction's time on the slot's
    /// load: with this, each eviction's slot has been loading for two evictions before it. The
    /// headers the walk reads are in lines earlier calls started loading (a tweet record is
    /// about four lines); the lines stay loaded until the shard's next insert. Inside a write;
    /// reads only; a walk that meets the tail, or a size that makes no sense (the free space
    /// after the tail holds old words), stops.
    @inline(__always)
    static func prefetchAhead(_ h: UnsafeMutablePointer<ShardHeader>, _ w: WriterState) {
        let words = h.pointee.words
        let wordCount = h.pointee.wordCount
        let base = UnsafeRawPointer(words + w.head)
        let end = UnsafeRawPointer(words + wordCount)
        var line = 64
        while line < 1024 && base + line < end {
            socialdb_prefetch(base + line)
            line &+= 64
        }
        var at = w.head
        var left = w.used
        var records = 0
        while records < 3 && left > 0 {
            let stored = words[at].load(ordering: .relaxed)
            let size = sizeAt(h, at)
            guard size >= 2 && size <= left && at &+ size <= wordCount else { return }
            if stored != 0 {
                socialdb_prefetch(UnsafeRawPointer(h.pointee.slots + (Int(truncatingIfNeeded: tag(stored)) & h.pointee.slotMask)))
            }
            at &+= size
            left &-= size
            if at == wordCount { at = 0 }
            records &+= 1
        }
    }

    /// Puts `stored` → `record` in the first free slot from its home (the table is never full:
    /// entries stay at most 3/4 of the slots).
    static func insertSlot(_ h: UnsafeMutablePointer<ShardHeader>, stored: UInt64, record: Int) {
        let slots = h.pointee.slots
        let mask = h.pointee.slotMask
        let tag = Self.tag(stored)
        var i = Int(truncatingIfNeeded: tag) & mask
        while !Self.isEmpty(slots[i].load(ordering: .relaxed)) { i = (i &+ 1) & mask }
        slots[i].store(tag << 32 | UInt64(record), ordering: .relaxed)
    }

    /// Empties slot `i` (its record becomes dead), shifting later entries of the probe run
    /// back so no lookup stops early.
    static func removeSlot(_ h: UnsafeMutablePointer<ShardHeader>, _ removed: Int, _ w: inout WriterState) {
        let slots = h.pointee.slots
        let mask = h.pointee.slotMask
        let record = Int(truncatingIfNeeded: slots[removed].load(ordering: .relaxed) & offsetMask)
        w.entries -= 1
        w.liveWords -= sizeAt(h, record)
        var i = removed
        var j = removed
        while true {
            j = (j &+ 1) & mask
            let s = slots[j].load(ordering: .relaxed)
            if Self.isEmpty(s) { break }
            let home = Int(truncatingIfNeeded: Self.tag(ofSlot: s)) & mask
            // The entry at j stays when its home lies cyclically in (i, j].
            let stays = i <= j ? (i < home && home <= j) : (i < home || home <= j)
            if stays { continue }
            slots[i].store(s, ordering: .relaxed)
            i = j
        }
        slots[i].store(0, ordering: .relaxed)
    }

    func beginWrite() { sequence.add(1, ordering: .sequentiallyConsistent) }

    func endWrite() { sequence.add(1, ordering: .sequentiallyConsistent) }

    /// Empties the cache (for cold-read measurements). Concurrent readers' inserts that started
    /// before may land; they hold current values.
    func clear() {
        for shard in 0..<(enabled ? Self.shardCount : 0) {
            let h = header(shard)
            writers[shard].state.withLock { w in
                Self.beginWrite(h)
                for i in 0...(h.pointee.slotMask) { h.pointee.slots[i].store(0, ordering: .relaxed) }
                w = WriterState()
                Self.endWrite(h)
            }
        }
    }

    struct Statistics {
        var bytes = 0
        var entries = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    var statistics: Statistics {
        var total = Statistics()
        for box in writers {
            box.state.withLock { w in
                total.bytes += w.liveWords * 8
                total.entries += w.entries
            }
        }
        total.hits = UInt64(hitCounter.total)
        total.misses = UInt64(missCounter.total)
        return total
    }
}
