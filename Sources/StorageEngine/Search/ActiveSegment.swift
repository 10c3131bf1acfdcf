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
    let capacity: Int
    let tweetIDs: UnsafeMutablePointer<UInt64>
    let times: UnsafeMutablePointer<UInt64>
    private(set) var documentCount = 0
    private(set) var postingCount = 0
    /// Term name to its index in `termStates`: open addressing over `termTableMask + 1` slots
    /// (a power of two, at most half full), each 0 when empty or the name's hash
    /// (`FrozenSegment.hashName`) in the high 32 bits and the index + 1 in the low 32. A probe
    /// hashes the name's bytes once (no SipHash) and compares only names whose hashes agree.
    private var termTable: UnsafeMutablePointer<UInt64>
    private var termTableMask: Int
    /// Each term's full hash, for growing the table.
    private var termHashes: [UInt64] = []
    private(set) var termNames: [String] = []
    private var termStates: [TermState] = []

    struct TermState {
        var head: UnsafeMutablePointer<UInt64>
        var headCount: Int
        var lastDocument: Int32
        var documentCount: Int
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
        termTableMask = 63
        termTable = .allocate(capacity: 64)
        termTable.initialize(repeating: 0, count: 64)
    }

    deinit {
        for state in termStates {
            var chunk: UnsafeMutablePointer<UInt64>? = state.head
            while let c = chunk {
                chunk = UnsafeMutablePointer(bitPattern: UInt(c[0]))
                c.deallocate()
            }
        }
        tweetIDs.deallocate()
        times.deallocate()
        termTable.deallocate()
    }

    @inline(__always)
    static func hash(_ term: String) -> UInt64 {
        var term = term
        return term.withUTF8 { FrozenSegment.hashName($0.baseAddress, $0.count) }
    }

    @inline(__always)
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { pa in b.withUTF8 { pb in pa.count == pb.count && pa.elementsEqual(pb) } }
    }

    /// The index of `term` in `termStates`, or nil; with the table slot where it is or would go.
    @inline(__always)
    private func find(_ term: String, hash: UInt64) -> (index: Int?, slot: Int) {
        var slot = Int(truncatingIfNeeded: hash) & termTableMask
        while true {
            let entry = termTable[slot]
            if entry == 0 { return (nil, slot) }
            if entry & 0xFFFF_FFFF_0000_0000 == hash & 0xFFFF_FFFF_0000_0000 {
                let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
                // Bytes, as the frozen segments compare names (not canonical equivalence).
                if Self.sameBytes(termNames[index], term) { return (index, slot) }
            }
            slot = (slot + 1) & termTableMask
        }
    }

    /// Doubles the table and places every term again (the writer, under the write lock).
    private func growTermTable() {
        let size = (termTableMask + 1) * 2
        termTable.deallocate()
        termTable = .allocate(capacity: size)
        termTable.initialize(repeating: 0, count: size)
        termTableMask = size - 1
        for (index, h) in termHashes.enumerated() {
            var slot = Int(truncatingIfNeeded: h) & termTableMask
            while termTable[slot] != 0 { slot = (slot + 1) & termTableMask }
            termTable[slot] = (h & 0xFFFF_FFFF_0000_0000) | UInt64(index + 1)
        }
    }

    var isFull: Bool { documentCount >= capacity }
    var lastTweetID: UInt64? { documentCount == 0 ? nil : tweetIDs[documentCount - 1] }
    var termCount: Int { termStates.count }

    /// Appends one document; the caller holds the index's write lock.
    func append(tweetID: UInt64, time: UInt64, tokens: [SearchToken]) {
        precondition(!isFull, "append to a full active segment")
        let doc = Int32(documentCount)
        for token in tokens {
            let entry = UInt64(UInt32(bitPattern: doc)) << 32 | UInt64(token.position)
            let h = Self.hash(token.term)
            let (found, tableSlot) = find(token.term, hash: h)
            if let index = found {
                appendEntry(entry, slot: index, doc: doc)
            } else {
                let chunk = Self.allocateChunk(capacity: Self.chunkCapacities[0], previous: nil)
                chunk[2] = entry
                termTable[tableSlot] = (h & 0xFFFF_FFFF_0000_0000) | UInt64(termStates.count + 1)
                termHashes.append(h)
                if 2 * termHashes.count > termTableMask + 1 { growTermTable() }
                termNames.append(token.term)
                termStates.append(TermState(head: chunk, headCount: 1, lastDocument: doc, documentCount: 1))
                postingCount += 1
            }
        }
        tweetIDs[documentCount] = tweetID
        times[documentCount] = time
        documentCount += 1
    }

    @inline(__always)
    private func appendEntry(_ entry: UInt64, slot: Int, doc: Int32) {
        var state = termStates[slot]
        let capacity = Int(state.head[1])
        if state.headCount == capacity {
            let next = Self.chunkCapacities[min(Self.chunkCapacities.count - 1, (Self.chunkCapacities.firstIndex(of: capacity) ?? 3) + 1)]
            state.head = Self.allocateChunk(capacity: next, previous: state.head)
            state.headCount = 0
        }
        state.head[2 + state.headCount] = entry
        state.headCount += 1
        if state.lastDocument != doc {
            state.lastDocument = doc
            state.documentCount += 1
            postingCount += 1
        }
        termStates[slot] = state
    }

    private static func allocateChunk(capacity: Int, previous: UnsafeMutablePointer<UInt64>?) -> UnsafeMutablePointer<UInt64> {
        let chunk = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 + capacity)
        chunk[0] = UInt64(UInt(bitPattern: previous))
        chunk[1] = UInt64(capacity)
        return chunk
    }

    /// The reader's view of a term; the caller holds the index's read (or write) lock.
    func view(_ term: String) -> TermView? {
        guard let slot = find(term, hash: Self.hash(term)).index else { return nil }
        let s = termStates[slot]
        return TermView(head: UnsafePointer(s.head), headCount: s.headCount, documentCount: s.documentCount)
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

    /// Compresses this (sealed, no longer written) segment into a frozen one, dropping `deleted`.
    func freeze(number: UInt64, deleted: Set<UInt64>) -> (FrozenSegment, purged: [UInt64]) {
        var builder = SegmentBuilder(number: number)
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
        let order = termNames.indices.sorted { termNames[$0].utf8.lexicographicallyPrecedes(termNames[$1].utf8) }
        var docs: [UInt32] = []
        var starts: [Int] = []
        var values: [UInt32] = []
        var runStart = 0
        for slot in order {
            docs.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            // Newest first: walk the chunks backwards; a document's positions come out
            // decreasing and are reversed in place once its run ends.
            var chunk: UnsafePointer<UInt64>? = UnsafePointer(termStates[slot].head)
            var count = termStates[slot].headCount
            var current: Int32 = -1
            while let c = chunk {
                var i = count - 1
                while i >= 0 {
                    let entry = c[2 + i]
                    let d = Int32(truncatingIfNeeded: entry >> 32)
                    let mapped = newDocument[Int(d)]
                    if mapped >= 0 {
                        if d != current {
                            if current >= 0 { values[runStart...].reverse() }
                            current = d
                            docs.append(UInt32(mapped))
                            starts.append(values.count)
                            runStart = values.count
                        }
                        values.append(UInt32(truncatingIfNeeded: entry))
                    }
                    i -= 1
                }
                chunk = UnsafePointer(bitPattern: UInt(c[0]))
                if let p = chunk { count = Int(p[1]) }
            }
            if current >= 0 { values[runStart...].reverse() }
            if !docs.isEmpty { builder.addTerm(Array(termNames[slot].utf8), docs: docs, positionStarts: starts, positionValues: values) }
        }
        return (builder.finish(), purged)
    }
}
