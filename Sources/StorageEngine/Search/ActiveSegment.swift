/// The active (writable) segment: the newest tweets, uncompressed, append-only.
///
/// Each term's postings are 64-bit entries `document << 32 | position`, appended in increasing
/// (document, position) order into chunks of growing capacity (2, 14, 126, then 2046 entries, as
/// Earlybird's slice pools grow) linked backwards, so a reader walks newest to oldest. A chunk is
/// `[previous chunk address, capacity, entries...]` and never moves once allocated.
///
/// Thread safety and invariants: one writer (the index, holding its write lock) appends; readers
/// take a `TermView` (head chunk and its fill count) and the document count under the index's
/// read lock, then read without any lock. Entries below a view's count and documents below the
/// snapshot count are never written again, and chunks are freed only in deinit, which runs
/// after the last reader has let go of the segment. So readers see a consistent prefix and the
/// writer never waits for them.
final class ActiveSegment: @unchecked Sendable {
    // @unchecked: mutable state is written only under the index's write lock (see above).
    // The mutable properties are `@exclusivity(unchecked)`: that lock already rules out
    // overlapping accesses, and the run-time check of each access (a class property read or
    // written in `append`, per tweet) added nothing but its cost.
    let capacity: Int
    let tweetIDs: UnsafeMutablePointer<UInt64>
    let times: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private(set) var documentCount = 0
    @exclusivity(unchecked) private(set) var postingCount = 0
    /// Terms are interned: each distinct term is a small integer (its index in `states`), its
    /// name's bytes in the `names` arena. A term's id is found through an open-addressing table
    /// over `termTableMask + 1` slots (a power of two, at most half full), each 0 when empty or
    /// the name's hash (`FrozenSegment.hashName`, computed by `PackedTerms` outside the lock) in
    /// the high 32 bits and the id + 1 in the low 32; only names whose hashes agree are compared.
    @exclusivity(unchecked) private var termTable: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var termTableMask: Int
    @exclusivity(unchecked) private var states: UnsafeMutablePointer<TermState>
    @exclusivity(unchecked) private var stateCapacity: Int
    @exclusivity(unchecked) private(set) var termCount = 0
    @exclusivity(unchecked) private var names: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var namesCapacity: Int
    @exclusivity(unchecked) private var namesCount = 0
    /// Chunks are carved from slabs of `slabWords` words (freed together in deinit), not
    /// allocated one by one.
    @exclusivity(unchecked) private var slabs: [UnsafeMutablePointer<UInt64>] = []
    @exclusivity(unchecked) private var slabNext: UnsafeMutablePointer<UInt64>?
    @exclusivity(unchecked) private var slabRemaining = 0
    static let slabWords = 1 << 15
    /// Where `append` leaves the sum of its cache-warming loads (so they are not optimized away).
    @exclusivity(unchecked) private var warmed: UInt64 = 0

    struct TermState {
        var head: UnsafeMutablePointer<UInt64>
        var hash: UInt64
        /// The name's first 8 bytes (zero-padded), so that most names compare without reading
        /// the arena (a cache miss per token on a large segment).
        var prefix: UInt64
        var nameOffset: UInt32
        var nameLength: UInt32
        var headCount: Int32
        /// The head chunk's capacity (kept here so an append does not read the chunk first).
        var headCapacity: Int32
        var lastDocument: Int32
        var documentCount: Int32
    }

    /// The first 8 bytes at `p` (of `count`), zero-padded.
    @inline(__always)
    static func prefixWord(_ p: UnsafeRawPointer, _ count: Int) -> UInt64 {
        if count >= 8 { return p.loadUnaligned(as: UInt64.self) }
        var word: UInt64 = 0
        var k = 0
        while k < count {
            word |= UInt64(p.load(fromByteOffset: k, as: UInt8.self)) &<< UInt64(k &* 8)
            k &+= 1
        }
        return word
    }

    /// The capacity of the chunk after one of `capacity` (the last size repeats).
    @inline(__always)
    static func nextCapacity(_ capacity: Int32) -> Int32 {
        capacity == 2 ? 14 : capacity == 14 ? 126 : 2046
    }

    /// What a reader needs to iterate one term: valid until the segment is released.
    struct TermView {
        var head: UnsafePointer<UInt64>
        var headCount: Int
        var documentCount: Int
    }

    static let chunkCapacities = [2, 14, 126, 2046]

    init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max), "active segment capacity out of range")
        self.capacity = capacity
        tweetIDs = .allocate(capacity: capacity)
        times = .allocate(capacity: capacity)
        termTableMask = 1023
        termTable = .allocate(capacity: 1024)
        termTable.initialize(repeating: 0, count: 1024)
        stateCapacity = 512
        states = .allocate(capacity: stateCapacity)
        namesCapacity = 4096
        names = .allocate(capacity: namesCapacity)
    }

    deinit {
        for slab in slabs { slab.deallocate() }
        tweetIDs.deallocate()
        times.deallocate()
        termTable.deallocate()
        states.deallocate()
        names.deallocate()
    }

    /// Term `t`'s name.
    @inline(__always)
    func name(_ t: Int) -> UnsafeRawBufferPointer {
        let s = states[t]
        return UnsafeRawBufferPointer(start: names + Int(s.nameOffset), count: Int(s.nameLength))
    }

    /// Whether the `count` bytes at `a` and `b` are equal, eight at a time.
    @inline(__always)
    static func sameBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        var i = 0
        while i + 8 <= count {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i &+= 8
        }
        while i < count {
            if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
            i &+= 1
        }
        return true
    }

    /// The id of the term with these bytes and hash, or -1; with the table slot where it is or
    /// would go. Names compare by bytes, as the frozen segments compare them.
    @inline(__always)
    private func find(_ bytes: UnsafeRawPointer, _ count: Int, hash: UInt64) -> (id: Int, slot: Int) {
        Self.find(bytes, count, hash: hash, prefix: Self.prefixWord(bytes, count), Tables(self))
    }

    /// The interning tables' addresses, read from the segment once per `append` (every read of
    /// a class's stored property in a loop is a dynamic exclusivity check, which cost more than
    /// the probe itself); read again after `addTerm`, which may move them.
    struct Tables {
        var termTable: UnsafeMutablePointer<UInt64>
        var mask: Int
        var states: UnsafeMutablePointer<TermState>
        var names: UnsafeMutablePointer<UInt8>

        @inline(__always)
        init(_ segment: ActiveSegment) {
            termTable = segment.termTable
            mask = segment.termTableMask
            states = segment.states
            names = segment.names
        }
    }

    /// `find` over `tables`, with the name's first 8 bytes (`prefixWord`) given.
    @inline(__always)
    private static func find(_ bytes: UnsafeRawPointer, _ count: Int, hash: UInt64, prefix: UInt64, _ tables: Tables) -> (id: Int, slot: Int) {
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: hash) & tables.mask
        while true {
            let entry = tables.termTable[slot]
            if entry == 0 { return (-1, slot) }
            if entry & 0xFFFF_FFFF_0000_0000 == tag {
                let id = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) &- 1
                let s = tables.states + id
                if Int(s.pointee.nameLength) == count && s.pointee.prefix == prefix
                    && (count <= 8 || sameBytes(tables.names + Int(s.pointee.nameOffset) + 8, bytes + 8, count - 8)) {
                    return (id, slot)
                }
            }
            slot = (slot &+ 1) & tables.mask
        }
    }

    /// Doubles the table and places every term again (the writer, under the write lock).
    private func growTermTable() {
        let size = (termTableMask + 1) * 2
        termTable.deallocate()
        termTable = .allocate(capacity: size)
        termTable.initialize(repeating: 0, count: size)
        termTableMask = size - 1
        for id in 0..<termCount {
            let h = states[id].hash
            var slot = Int(truncatingIfNeeded: h) & termTableMask
            while termTable[slot] != 0 { slot = (slot + 1) & termTableMask }
            termTable[slot] = (h & 0xFFFF_FFFF_0000_0000) | UInt64(id + 1)
        }
    }

    /// A new term: its name into the arena, its state with a first chunk holding `entry`.
    /// `bytes` is a `PackedTerms` name, followed by 8 readable bytes (its zero padding), so the
    /// name is copied 8 bytes at a time (a `memcpy` call per short name cost more than the
    /// copy); the arena keeps 8 bytes of room after its names for the last word's overhang.
    private func addTerm(_ bytes: UnsafeRawPointer, _ count: Int, hash: UInt64, slot: Int, entry: UInt64, doc: Int32) {
        if namesCount + count + 8 > namesCapacity {
            var grown = namesCapacity * 2
            while namesCount + count + 8 > grown { grown *= 2 }
            let next = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
            next.update(from: names, count: namesCount)
            names.deallocate()
            names = next
            namesCapacity = grown
        }
        let target = UnsafeMutableRawPointer(names + namesCount)
        var copied = 0
        repeat {
            target.storeBytes(of: bytes.loadUnaligned(fromByteOffset: copied, as: UInt64.self), toByteOffset: copied, as: UInt64.self)
            copied &+= 8
        } while copied < count
        if termCount == stateCapacity { doubleBuffer(&states, count: termCount, capacity: &stateCapacity) }
        let chunk = allocateChunk(capacity: Self.chunkCapacities[0], previous: nil)
        chunk[2] = entry
        (states + termCount).initialize(to: TermState(head: chunk, hash: hash, prefix: Self.prefixWord(bytes, count), nameOffset: UInt32(namesCount),
                                                      nameLength: UInt32(count), headCount: 1, headCapacity: Int32(Self.chunkCapacities[0]),
                                                      lastDocument: doc, documentCount: 1))
        namesCount += count
        termCount += 1
        termTable[slot] = (hash & 0xFFFF_FFFF_0000_0000) | UInt64(termCount)
        if 2 * termCount > termTableMask + 1 { growTermTable() }
        postingCount += 1
    }

    var isFull: Bool { documentCount >= capacity }
    var lastTweetID: UInt64? { documentCount == 0 ? nil : tweetIDs[documentCount - 1] }

    /// Appends one document; the caller holds the index's write lock.
    func append(tweetID: UInt64, time: UInt64, terms: borrowing PackedTerms) {
        precondition(!isFull, "append to a full active segment")
        let doc = Int32(documentCount)
        let high = UInt64(UInt32(bitPattern: doc)) << 32
        let base = UnsafeRawPointer(terms.bytes)
        // Warm the cache first: every term's table slot, then the state it names, as loads that
        // do not depend on one another, so their misses overlap instead of stalling one after
        // the other in the probe loop below (on a full segment most of a token's cost).
        var tables = Tables(self)
        let count = terms.count
        let list = terms.terms
        var touched: UInt64 = 0
        for k in 0..<count { touched &+= tables.termTable[Int(truncatingIfNeeded: list[k].hash) & tables.mask] }
        for k in 0..<count {
            let entry = tables.termTable[Int(truncatingIfNeeded: list[k].hash) & tables.mask]
            if entry != 0 { touched &+= tables.states[Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) &- 1].prefix }
        }
        warmed = touched
        var postings = 0
        for k in 0..<count {
            let term = list[k]
            let start = base + Int(term.offset)
            let length = Int(term.length)
            let entry = high | UInt64(term.position)
            let (id, slot) = Self.find(start, length, hash: term.hash, prefix: term.prefix, tables)
            if id >= 0 {
                if appendEntry(entry, state: tables.states + id, doc: doc) { postings &+= 1 }
            } else {
                addTerm(start, length, hash: term.hash, slot: slot, entry: entry, doc: doc)
                tables = Tables(self)
            }
        }
        postingCount += postings
        tweetIDs[Int(doc)] = tweetID
        times[Int(doc)] = time
        documentCount = Int(doc) + 1
    }

    /// Appends `entry` to the term whose state is at `state`; true when it starts a document
    /// of the term (a new posting).
    @inline(__always)
    private func appendEntry(_ entry: UInt64, state: UnsafeMutablePointer<TermState>, doc: Int32) -> Bool {
        if state.pointee.headCount == state.pointee.headCapacity {
            let next = Self.nextCapacity(state.pointee.headCapacity)
            state.pointee.head = allocateChunk(capacity: Int(next), previous: state.pointee.head)
            state.pointee.headCapacity = next
            state.pointee.headCount = 0
        }
        state.pointee.head[2 + Int(state.pointee.headCount)] = entry
        state.pointee.headCount &+= 1
        if state.pointee.lastDocument != doc {
            state.pointee.lastDocument = doc
            state.pointee.documentCount &+= 1
            return true
        }
        return false
    }

    /// A chunk `[previous, capacity, entries...]` from the current slab (a new slab when it
    /// has no room).
    private func allocateChunk(capacity: Int, previous: UnsafeMutablePointer<UInt64>?) -> UnsafeMutablePointer<UInt64> {
        let words = 2 + capacity
        if slabRemaining < words {
            let slab = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.slabWords)
            slabs.append(slab)
            slabNext = slab
            slabRemaining = Self.slabWords
        }
        let chunk = slabNext.unsafelyUnwrapped
        slabNext = chunk + words
        slabRemaining -= words
        chunk[0] = UInt64(UInt(bitPattern: previous))
        chunk[1] = UInt64(capacity)
        return chunk
    }

    /// The reader's view of a term; the caller holds the index's read (or write) lock.
    func view(_ term: String) -> TermView? {
        var term = term
        let id = term.withUTF8 { utf8 -> Int in
            let key = UnsafeRawBufferPointer(utf8)
            let base = key.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!
            return find(base, key.count, hash: FrozenSegment.hashName(key.baseAddress, key.count)).id
        }
        guard id >= 0 else { return nil }
        let s = states[id]
        return TermView(head: UnsafePointer(s.head), headCount: Int(s.headCount), documentCount: Int(s.documentCount))
    }

    /// `view` of the term with these bytes (at least one), whose `FrozenSegment.hashName` is
    /// `hash`; the caller holds the index's read (or write) lock.
    func view(_ bytes: UnsafeRawPointer, _ count: Int, hash: UInt64) -> TermView? {
        let id = find(bytes, count, hash: hash).id
        guard id >= 0 else { return nil }
        let s = states[id]
        return TermView(head: UnsafePointer(s.head), headCount: Int(s.headCount), documentCount: Int(s.documentCount))
    }

    /// The number of documents with a tweet id below `id`, among the first `count`.
    func documents(below id: UInt64, count: Int) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) >> 1
            if tweetIDs[mid] < id { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func document(of id: UInt64) -> Int? {
        let d = documents(below: id, count: documentCount)
        return d < documentCount && tweetIDs[d] == id ? d : nil
    }

    /// Sorts by key: least significant byte first, eight stable counting passes (a pass whose
    /// byte is the same for every key is skipped). Far cheaper than a comparison sort for the
    /// tens of thousands of terms a segment has.
    static func radixSort(_ items: inout [(key: UInt64, term: Int32)]) {
        let n = items.count
        if n < 2 { return }
        var other = items
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 256)
        defer { counts.deallocate() }
        var inItems = true
        items.withUnsafeMutableBufferPointer { a in
            other.withUnsafeMutableBufferPointer { b in
                for pass in 0..<8 {
                    let shift = UInt64(pass * 8)
                    let source = inItems ? a : b
                    let target = inItems ? b : a
                    counts.initialize(repeating: 0, count: 256)
                    for item in source { counts[Int(truncatingIfNeeded: (item.key >> shift) & 0xFF)] += 1 }
                    if counts[Int(truncatingIfNeeded: (source[0].key >> shift) & 0xFF)] == n { continue }
                    var sum = 0
                    for k in 0..<256 {
                        let c = counts[k]
                        counts[k] = sum
                        sum += c
                    }
                    for item in source {
                        let k = Int(truncatingIfNeeded: (item.key >> shift) & 0xFF)
                        target[counts[k]] = item
                        counts[k] += 1
                    }
                    inItems.toggle()
                }
            }
        }
        if !inItems { items = other }
    }

    /// Compresses this (sealed, no longer written) segment into a frozen one, dropping `deleted`.
    func freeze(number: UInt64, deleted: Set<UInt64>) -> (FrozenSegment, purged: [UInt64]) {
        var builder = SegmentBuilder(number: number)
        builder.reserve(documents: documentCount, terms: termCount, nameBytes: namesCount, postings: postingCount)
        var newDocument = [Int32](repeating: -1, count: documentCount)
        var purged: [UInt64] = []
        var next: Int32 = 0
        for d in 0..<documentCount {
            if !deleted.isEmpty && deleted.contains(tweetIDs[d]) {
                purged.append(tweetIDs[d])
                continue
            }
            newDocument[d] = next
            next += 1
            builder.addDocument(tweetID: tweetIDs[d], time: times[d])
        }
        // Terms in byte order of their names: sorted by each name's first eight bytes as a
        // big-endian integer (zero-padded, which orders like the bytes), names compared in full
        // only when those agree.
        var keyed: [(key: UInt64, term: Int32)] = []
        keyed.reserveCapacity(termCount)
        // (The state keeps the first 8 bytes as a little-endian word: byte-swapped, it is that
        // big-endian integer.)
        let termStates = states
        for t in 0..<termCount { keyed.append((termStates[t].prefix.byteSwapped, Int32(t))) }
        Self.radixSort(&keyed)
        // Names that share their first eight bytes (`from:` handles share `from:u12`, say):
        // sorted by their next eight bytes the same way, names compared in full only when
        // those agree too.
        var runStart = 0
        var run: [(key: UInt64, term: Int32)] = []
        while runStart < keyed.count {
            var runEnd = runStart + 1
            while runEnd < keyed.count && keyed[runEnd].key == keyed[runStart].key { runEnd += 1 }
            if runEnd - runStart > 1 {
                run.removeAll(keepingCapacity: true)
                for i in runStart..<runEnd {
                    let n = name(Int(keyed[i].term))
                    var key: UInt64 = 0
                    if n.count >= 16 {
                        key = UInt64(bigEndian: n.baseAddress!.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                    } else {
                        var k = 8
                        while k < 16 {
                            key = key << 8 | (k < n.count ? UInt64(n[k]) : 0)
                            k += 1
                        }
                    }
                    run.append((key, keyed[i].term))
                }
                if run.count >= 256 { Self.radixSort(&run) } else { run.sort { $0.key < $1.key } }
                var i = 0
                while i < run.count {
                    var j = i + 1
                    while j < run.count && run[j].key == run[i].key { j += 1 }
                    if j - i > 1 { run[i..<j].sort { FrozenSegment.compareWords(name(Int($0.term)), name(Int($1.term))) < 0 } }
                    i = j
                }
                for i in 0..<run.count { keyed[runStart + i] = run[i] }
            }
            runStart = runEnd
        }
        // Each term's postings collected whole in scratch buffers, then handed to the builder
        // in one call: its documents and each one's start in the positions (a list has at most
        // `documentCount` documents), and all its positions (grown when a term has more).
        // Walking the chunks backwards gives documents newest first (list order) and each
        // document's positions decreasing. Without deletes every document keeps its number.
        let docs = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, documentCount))
        defer { docs.deallocate() }
        let starts = UnsafeMutablePointer<Int>.allocate(capacity: max(1, documentCount))
        defer { starts.deallocate() }
        var positions = UnsafeMutablePointer<UInt32>.allocate(capacity: 1024)
        var positionsCapacity = 1024
        defer { positions.deallocate() }
        let renumbered = !purged.isEmpty
        var touched: UInt64 = 0
        newDocument.withUnsafeBufferPointer { mapping in
            for (k, (_, t)) in keyed.enumerated() {
                // Every 16 terms, warm the cache for the next 16: their states (in name order,
                // so scattered), then each one's newest entry, as independent loads whose misses
                // overlap (walked one term at a time they were most of a freeze's time).
                if k & 15 == 0 {
                    let end = min(k + 16, keyed.count)
                    for j in k..<end { touched &+= UInt64(UInt(bitPattern: states[Int(keyed[j].term)].head)) }
                    // The newest entries, and the names the builder copies (in the arena in
                    // first-seen order, so scattered in name order too).
                    for j in k..<end {
                        let s = states[Int(keyed[j].term)]
                        touched &+= s.head[2 + Int(s.headCount) - 1]
                        touched &+= UInt64(names[Int(s.nameOffset)])
                    }
                }
                let term = Int(t)
                var n = 0
                var held = 0
                var current: Int32 = -1
                var chunk: UnsafePointer<UInt64>? = UnsafePointer(states[term].head)
                var count = Int(states[term].headCount)
                while let c = chunk {
                    var i = count &- 1
                    while i >= 0 {
                        let entry = c[2 &+ i]
                        i &-= 1
                        let d = Int32(truncatingIfNeeded: entry >> 32)
                        var mapped = d
                        if renumbered {
                            mapped = mapping[Int(d)]
                            if mapped < 0 { continue }
                        }
                        if d != current {
                            current = d
                            docs[n] = UInt32(bitPattern: mapped)
                            starts[n] = held
                            n &+= 1
                        }
                        if held == positionsCapacity { doubleBuffer(&positions, count: held, capacity: &positionsCapacity) }
                        positions[held] = UInt32(truncatingIfNeeded: entry)
                        held &+= 1
                    }
                    chunk = UnsafePointer(bitPattern: UInt(c[0]))
                    if let p = chunk { count = Int(p[1]) }
                }
                if n > 0 {
                    builder.addTerm(name(term), docs: UnsafeBufferPointer(start: docs, count: n), starts: UnsafeBufferPointer(start: starts, count: n),
                                    values: UnsafeBufferPointer(start: positions, count: held), descending: true, hash: states[term].hash)
                }
            }
        }
        warmed = touched
        return (builder.finish(), purged)
    }
}

/// A tweet's terms as the indexer takes them: every term's bytes in one buffer, and per term
/// its range there, its position and its name hash (computed here, before the index's write
/// lock is taken). No String per term: the byte tokenizer writes a term's folded bytes
/// straight into the buffer (`put`) and then `commit`s it.
struct PackedTerms: ~Copyable {
    struct Term {
        var offset: UInt32
        var length: UInt32
        var position: UInt32
        var hash: UInt64
        /// The name's first 8 bytes, zero-padded (`ActiveSegment.prefixWord`).
        var prefix: UInt64
    }

    private(set) var bytes: UnsafeMutablePointer<UInt8>
    private var byteCapacity: Int
    /// Committed bytes; a term being built follows them (`pendingLength` bytes).
    private(set) var byteCount = 0
    private(set) var pendingLength = 0
    private(set) var terms: UnsafeMutablePointer<Term>
    private var termCapacity: Int
    private(set) var count = 0

    /// Whether `bytes` / `terms` were allocated here (else they are the caller's, such as
    /// stack buffers, until they have to grow).
    private var ownsBytes: Bool
    private var ownsTerms: Bool

    init() {
        byteCapacity = 256
        bytes = .allocate(capacity: byteCapacity)
        termCapacity = 32
        terms = .allocate(capacity: termCapacity)
        ownsBytes = true
        ownsTerms = true
    }

    /// Starts in the caller's buffers (which must outlive the value), moving to the heap only
    /// when they are too small.
    init(bytes: UnsafeMutableBufferPointer<UInt8>, terms: UnsafeMutableBufferPointer<Term>) {
        self.bytes = bytes.baseAddress!
        byteCapacity = bytes.count
        self.terms = terms.baseAddress!
        termCapacity = terms.count
        ownsBytes = false
        ownsTerms = false
    }

    deinit {
        if ownsBytes { bytes.deallocate() }
        if ownsTerms { terms.deallocate() }
    }

    /// Makes room for `n` more bytes (committed or pending) without growing, and 8 more after
    /// them (a committed term is followed by 8 zero bytes while it is hashed).
    mutating func reserveBytes(_ n: Int) {
        let needed = byteCount + pendingLength + n + 8
        if needed <= byteCapacity { return }
        var grown = byteCapacity * 2
        while grown < needed { grown *= 2 }
        let next = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        next.update(from: bytes, count: byteCount + pendingLength)
        if ownsBytes { bytes.deallocate() }
        bytes = next
        byteCapacity = grown
        ownsBytes = true
    }

    /// Appends a byte to the term being built; `reserveBytes` must have made room.
    @inline(__always)
    mutating func put(_ b: UInt8) {
        bytes[byteCount &+ pendingLength] = b
        pendingLength &+= 1
    }

    /// Where the term being built continues (room made by `reserveBytes`).
    @inline(__always) var pendingEnd: UnsafeMutablePointer<UInt8> { bytes + byteCount + pendingLength }

    /// Counts `k` bytes written at `pendingEnd` into the term being built.
    @inline(__always) mutating func extendPending(_ k: Int) { pendingLength &+= k }

    @inline(__always)
    private mutating func appendTerm(offset: Int, length: Int, position: UInt32) {
        if count == termCapacity {
            let next = UnsafeMutablePointer<Term>.allocate(capacity: termCapacity * 2)
            next.moveInitialize(from: terms, count: count)
            if ownsTerms { terms.deallocate() }
            terms = next
            termCapacity *= 2
            ownsTerms = true
        }
        // Eight zero bytes after the name (room kept by `reserveBytes`; the next term, if any,
        // overwrites them), so the hash reads its tail and prefix as whole words.
        let end = UnsafeMutableRawPointer(bytes + offset + length)
        end.storeBytes(of: UInt64(0), as: UInt64.self)
        let (hash, prefix) = FrozenSegment.hashNameAndPrefix(zeroPadded: UnsafeRawPointer(bytes + offset), length)
        (terms + count).initialize(to: Term(offset: UInt32(offset), length: UInt32(length), position: position, hash: hash, prefix: prefix))
        count &+= 1
    }

    /// Ends the term being built (at least one byte) at `position`.
    @inline(__always)
    mutating func commit(position: UInt32) {
        appendTerm(offset: byteCount, length: pendingLength, position: position)
        byteCount &+= pendingLength
        pendingLength = 0
    }

    /// Adds the last term without its first byte (`#tag` then `tag`), sharing its bytes.
    mutating func repeatLastWithoutFirstByte() {
        let last = terms[count - 1]
        appendTerm(offset: Int(last.offset) + 1, length: Int(last.length) - 1, position: last.position)
    }

    /// Appends `text` as one term.
    mutating func append(_ text: String, position: UInt32) {
        var text = text
        text.withUTF8 { utf8 in
            reserveBytes(utf8.count)
            for b in utf8 { put(b) }
        }
        commit(position: position)
    }

    @inline(__always) func position(_ i: Int) -> UInt32 { terms[i].position }

    /// Term `i`'s bytes (valid until the value changes).
    @inline(__always)
    func name(_ i: Int) -> UnsafeRawBufferPointer {
        let t = terms[i]
        return UnsafeRawBufferPointer(start: bytes + Int(t.offset), count: Int(t.length))
    }

    /// Whether some term has exactly these bytes.
    func contains(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { key in
            for i in 0..<count where name(i).elementsEqual(UnsafeRawBufferPointer(key)) { return true }
            return false
        }
    }

    /// Term `i` as a String.
    func string(_ i: Int) -> String { String(decoding: name(i), as: UTF8.self) }
}

extension PackedTerms {
    /// Appends `SearchQuery.fromTerm(handle)` (`from:` and the folded handle) as one term,
    /// without building the String when the handle is ASCII.
    mutating func appendFrom(_ handle: String, position: UInt32) {
        var handle = handle
        let done = handle.withUTF8 { utf8 -> Bool in
            guard SearchTokenizer.isASCII(utf8) else { return false }
            reserveBytes(5 + utf8.count)
            // "from:" (five puts: an array literal here may be an allocation per tweet).
            put(0x66)
            put(0x72)
            put(0x6F)
            put(0x6D)
            put(0x3A)
            for b in utf8 { put(SearchTokenizer.lowerByte(b)) }
            return true
        }
        if done {
            commit(position: position)
        } else {
            append(SearchQuery.fromTerm(handle), position: position)
        }
    }
}

/// Doubles an owned buffer's capacity, moving its first `count` elements into the new one.
@inline(__always)
private func doubleBuffer<T>(_ base: inout UnsafeMutablePointer<T>, count: Int, capacity: inout Int) {
    let grown = UnsafeMutablePointer<T>.allocate(capacity: capacity * 2)
    grown.moveInitialize(from: base, count: count)
    base.deallocate()
    base = grown
    capacity *= 2
}
