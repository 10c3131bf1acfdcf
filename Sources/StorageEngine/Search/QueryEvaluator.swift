/// Runs one `SearchQuery` over one segment, newest first, with early termination.
///
/// The plan holds one cursor per term occurrence (cursors are never shared, since a cursor
/// only moves forward and two phrases may ask it different targets). Positive clauses are
/// intersected by leapfrogging: each clause answers "the largest document at or below t where
/// one of my phrases has all its terms", and the candidate drops until all clauses agree. A
/// candidate is then checked for phrase positions, negated clauses, the time range, the
/// `before` bound and tombstones. Nothing is allocated per posting.
struct QueryEvaluator {
    struct Phrase {
        var cursors: Range<Int>
    }

    /// Where a segment's tweet ids and times live (frozen: interleaved, stride 16; active:
    /// two arrays, stride 8).
    struct DocumentTable {
        var ids: UnsafeRawPointer
        var times: UnsafeRawPointer
        var stride: Int
        @inline(__always) func id(_ d: Int32) -> UInt64 { ids.load(fromByteOffset: Int(d) * stride, as: UInt64.self) }
        @inline(__always) func time(_ d: Int32) -> UInt64 { times.load(fromByteOffset: Int(d) * stride, as: UInt64.self) }
    }

    /// The query's distinct terms (each looked up once per segment).
    let terms: [String]
    /// The distinct term of each cursor.
    let termOfCursor: [Int]
    /// One allocation holds the cursors, the drivers, the block buffers and `phraseLive` (a
    /// query's fixed cost is mostly allocations, so they are made once, not four times).
    let storage: UnsafeMutableRawPointer
    /// One cursor per term occurrence; pointers (not an array) so that moving a cursor in the
    /// inner loops costs no uniqueness or bounds check.
    let cursors: UnsafeMutablePointer<PostingCursor>
    let cursorCount: Int
    /// All phrases, flat; a clause is a range of them.
    let phrases: [Phrase]
    let positive: [Range<Int>]
    let negative: [Range<Int>]
    /// Per phrase: whether all its terms occur in the current segment.
    let phraseLive: UnsafeMutablePointer<Bool>
    let blockBuffers: UnsafeMutablePointer<UInt32>
    /// Whether every positive clause is a single phrase (no OR): then a document matches the
    /// positive clauses' terms exactly when every cursor of those phrases is on it, and the
    /// search moves the cursors directly (`seekAll`), shortest list first.
    let isConjunction: Bool
    /// The cursors of the positive phrases in the order `seekAll` moves them (shortest list in
    /// the current segment first; set by `prepare`).
    let drivers: UnsafeMutablePointer<Int>
    let driverCount: Int
    /// The positive phrases of more than one term (their positions are checked per candidate).
    let positivePhrases: [Int]
    /// Scratch for phrase checks, reused for every candidate; allocated by the first phrase
    /// check and grown when a document has more positions of a term than they hold.
    var positionsA: UnsafeMutablePointer<UInt32>?
    var positionsB: UnsafeMutablePointer<UInt32>?
    var positionsCapacity = 0

    /// How many times longer than the shortest list a confirming list must be for its
    /// Elias-Fano blocks to be searched in place rather than decoded.
    static let inPlaceLengthRatio = 64

    /// Builds the plan once per query; `prepare` points it at each segment in turn.
    init(query: SearchQuery) {
        var terms: [String] = []
        var termOfCursor: [Int] = []
        var phrases: [Phrase] = []
        var positive: [Range<Int>] = []
        var negative: [Range<Int>] = []
        for clause in query.clauses {
            let first = phrases.count
            for phrase in clause.alternatives {
                let start = termOfCursor.count
                for term in phrase.terms {
                    if let t = terms.firstIndex(of: term) {
                        termOfCursor.append(t)
                    } else {
                        termOfCursor.append(terms.count)
                        terms.append(term)
                    }
                }
                phrases.append(Phrase(cursors: start..<termOfCursor.count))
            }
            if clause.negated { negative.append(first..<phrases.count) } else { positive.append(first..<phrases.count) }
        }
        self.terms = terms
        self.termOfCursor = termOfCursor
        cursorCount = termOfCursor.count
        self.phrases = phrases
        self.positive = positive
        self.negative = negative
        let conjunction = positive.allSatisfy { $0.count == 1 }
        isConjunction = conjunction
        var driving = 0
        var multiTerm: [Int] = []
        if conjunction {
            for clause in positive {
                driving += phrases[clause.lowerBound].cursors.count
                if phrases[clause.lowerBound].cursors.count > 1 { multiTerm.append(clause.lowerBound) }
            }
        }
        driverCount = driving
        positivePhrases = multiTerm
        // Layout: cursors, drivers (Int), block buffers (UInt32), phraseLive (Bool); each part
        // at a multiple of its alignment (the parts before end on multiples of 8).
        let cursorSlots = max(1, cursorCount)
        let cursorBytes = cursorSlots * MemoryLayout<PostingCursor>.stride
        let driverBytes = max(1, driving) * MemoryLayout<Int>.stride
        let bufferBytes = cursorSlots * PostingCodec.blockSize * MemoryLayout<UInt32>.stride
        let liveBytes = max(1, phrases.count)
        storage = .allocate(byteCount: cursorBytes + driverBytes + bufferBytes + liveBytes,
                            alignment: max(MemoryLayout<PostingCursor>.alignment, MemoryLayout<Int>.alignment))
        cursors = storage.bindMemory(to: PostingCursor.self, capacity: cursorSlots)
        cursors.initialize(repeating: PostingCursor(), count: cursorSlots)
        drivers = (storage + cursorBytes).bindMemory(to: Int.self, capacity: max(1, driving))
        drivers.initialize(repeating: 0, count: max(1, driving))
        blockBuffers = (storage + cursorBytes + driverBytes).bindMemory(to: UInt32.self, capacity: cursorSlots * PostingCodec.blockSize)
        phraseLive = (storage + cursorBytes + driverBytes + bufferBytes).bindMemory(to: Bool.self, capacity: liveBytes)
        phraseLive.initialize(repeating: false, count: liveBytes)
        if conjunction {
            var i = 0
            for clause in positive {
                for c in phrases[clause.lowerBound].cursors {
                    drivers[i] = c
                    i += 1
                }
            }
        }
    }

    func release() {
        cursors.deinitialize(count: max(1, cursorCount))
        storage.deallocate()
        positionsA?.deallocate()
        positionsB?.deallocate()
    }

    /// Points the cursors at a segment (`lookup` maps a distinct term to its cursor there);
    /// false when some positive clause cannot match in it.
    mutating func prepare(_ lookup: (Int) -> PostingCursor?) -> Bool {
        for i in 0..<cursorCount {
            if var cursor = lookup(termOfCursor[i]) {
                if !cursor.isActive { cursor.buffer = blockBuffers + i * PostingCodec.blockSize }
                cursors[i] = cursor
            } else {
                cursors[i] = PostingCursor()
            }
        }
        for p in phrases.indices {
            var live = true
            for i in phrases[p].cursors where cursors[i].doc < 0 { live = false }
            phraseLive[p] = live
        }
        for clause in positive {
            var any = false
            for p in clause where phraseLive[p] { any = true }
            if !any { return false }
        }
        if isConjunction { Self.orderDrivers(cursors, drivers, driverCount) }
        return true
    }

    /// Conjunction: the largest document <= t on which every driving cursor sits, or -1.
    @inline(__always)
    private mutating func seekAll(_ t: Int32) -> Int32 { Self.seekAll(cursors, drivers, driverCount, t) }

    /// Orders `drivers` (indices into `cursors`) shortest list first and marks the confirming
    /// cursors whose lists are `inPlaceLengthRatio` times the shortest or longer to search
    /// their Elias-Fano blocks in place.
    static func orderDrivers(_ cursors: UnsafeMutablePointer<PostingCursor>, _ drivers: UnsafeMutablePointer<Int>, _ count: Int) {
        // Shortest list first (insertion sort: a query has a handful of terms).
        var i = 1
        while i < count {
            let c = drivers[i]
            var j = i
            while j > 0 && cursors[drivers[j - 1]].length > cursors[c].length {
                drivers[j] = drivers[j - 1]
                j -= 1
            }
            drivers[j] = c
            i += 1
        }
        // The shortest list proposes and is read in full; the others only confirm its
        // documents. One much longer steps over most of its documents, so its Elias-Fano
        // blocks are searched in place instead of decoded (for lists of similar lengths,
        // decoding and scanning the block costs less).
        let shortest = cursors[drivers[0]].length
        var k = 1
        while k < count {
            if cursors[drivers[k]].length >= inPlaceLengthRatio * shortest { cursors[drivers[k]].inPlace = true }
            k += 1
        }
    }

    /// Conjunction over `cursors[drivers[0 ..< n]]` (ordered by `orderDrivers`): the largest
    /// document <= t on which every one sits, or -1. The shortest list proposes, the others
    /// confirm or propose a smaller document, which the shortest list then answers again.
    @inline(__always)
    static func seekAll(_ cursors: UnsafeMutablePointer<PostingCursor>, _ drivers: UnsafeMutablePointer<Int>, _ n: Int, _ t: Int32) -> Int32 {
        var candidate = t
        var i = 0
        if n == 2 {
            // Two terms (the usual AND and phrase): the same steps, without the index juggling.
            let a = cursors + drivers[0]
            let b = cursors + drivers[1]
            while true {
                let d = a.pointee.seek(atOrBelow: candidate)
                if d < 0 { return -1 }
                let e = b.pointee.seek(atOrBelow: d)
                if e == d { return d }
                if e < 0 { return -1 }
                // While both sit in decoded blocks, merge the two blocks in place (no seek
                // calls); back to the seeks when either block runs out.
                let (found, next) = PostingCursor.intersectDecoded(a, b, e)
                if found { return next }
                candidate = next
            }
        }
        while i < n {
            let d = cursors[drivers[i]].seek(atOrBelow: candidate)
            if d < 0 { return -1 }
            if d == candidate {
                i += 1
            } else {
                candidate = d
                i = i == 0 ? 1 : 0
            }
        }
        return candidate
    }

    // MARK: Matching

    /// The largest document <= t where all of the phrase's terms occur, or -1.
    @inline(__always)
    private mutating func seekPhrase(_ phrase: Phrase, _ t: Int32) -> Int32 {
        var x = t
        var agreed = 0
        var i = phrase.cursors.lowerBound
        let n = phrase.cursors.count
        while agreed < n {
            let y = cursors[i].seek(atOrBelow: x)
            if y < 0 { return -1 }
            if y == x {
                agreed += 1
            } else {
                x = y
                agreed = 1
            }
            i += 1
            if i == phrase.cursors.upperBound { i = phrase.cursors.lowerBound }
        }
        return x
    }

    @inline(__always)
    private mutating func seekClause(_ clause: Range<Int>, _ t: Int32) -> Int32 {
        var best: Int32 = -1
        for p in clause where phraseLive[p] {
            let d = seekPhrase(phrases[p], t)
            if d > best { best = d }
        }
        return best
    }

    /// Whether some phrase of the clause, all of whose cursors sit on `d`, has its terms at
    /// consecutive positions.
    private mutating func clauseMatches(_ clause: Range<Int>, at d: Int32) -> Bool {
        for p in clause where phraseLive[p] {
            let phrase = phrases[p]
            if seekPhrase(phrase, d) != d { continue }
            if phrase.cursors.count == 1 || phraseMatches(phrase) { return true }
        }
        return false
    }

    private mutating func phraseMatches(_ phrase: Phrase) -> Bool {
        var count = positions(of: phrase.cursors.lowerBound, into: true)
        var j: UInt32 = 1
        for k in (phrase.cursors.lowerBound + 1)..<phrase.cursors.upperBound {
            let nextCount = positions(of: k, into: false)
            // Keep the starts p with p + j among the k-th term's positions.
            var kept = 0
            var x = 0
            while x < count {
                let p = positionsA.unsafelyUnwrapped[x]
                var y = 0
                while y < nextCount && positionsB.unsafelyUnwrapped[y] != p &+ j { y &+= 1 }
                if y < nextCount {
                    positionsA.unsafelyUnwrapped[kept] = p
                    kept &+= 1
                }
                x &+= 1
            }
            if kept == 0 { return false }
            count = kept
            j += 1
        }
        return true
    }

    /// The positions of cursor `c` on its document into `positionsA` (`first`) or
    /// `positionsB`, allocating or growing both when they are too small; returns the count.
    private mutating func positions(of c: Int, into first: Bool) -> Int {
        if positionsCapacity == 0 {
            positionsCapacity = 64
            positionsA = .allocate(capacity: positionsCapacity)
            positionsB = .allocate(capacity: positionsCapacity)
        }
        let n = cursors[c].positions(into: first ? positionsA : positionsB, capacity: positionsCapacity)
        if n <= positionsCapacity { return n }
        var capacity = positionsCapacity
        while capacity < n { capacity *= 2 }
        let a = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        let b = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        // Keep the kept starts (A holds them while B is refilled).
        a.update(from: positionsA.unsafelyUnwrapped, count: positionsCapacity)
        positionsA?.deallocate()
        positionsB?.deallocate()
        positionsA = a
        positionsB = b
        positionsCapacity = capacity
        return cursors[c].positions(into: first ? positionsA : positionsB, capacity: positionsCapacity)
    }

    /// `run` for a query of one term: appends the ids of the cursor's documents below `upper`
    /// that are not tombstoned, newest first, at most `limit`, stopping at ids at or below
    /// `floorID`.
    static func runTerm(_ cursor: inout PostingCursor, upper: Int32, documents: DocumentTable, tombstones: Set<UInt64>?,
                        floorID: UInt64?, limit: Int, into results: inout [UInt64]) {
        var t = upper - 1
        var found = 0
        while t >= 0 && found < limit {
            let d = cursor.seek(atOrBelow: t)
            if d < 0 { break }
            t = d - 1
            guard take(d, documents: documents, floorID: floorID, tombstones: tombstones, into: &results, found: &found) else { break }
        }
    }

    /// A newest-first match loop's step for matching document `d`: false (stop) when its
    /// tweet id is at or below `floorID`; else appends the id and counts it, unless tombstoned.
    @inline(__always)
    static func take(_ d: Int32, documents: DocumentTable, floorID: UInt64?, tombstones: Set<UInt64>?,
                     into results: inout [UInt64], found: inout Int) -> Bool {
        let id = documents.id(d)
        if let floorID, id <= floorID { return false }
        if let tombstones, tombstones.contains(id) { return true }
        results.append(id)
        found += 1
        return true
    }

    /// Appends to `results` the tweet ids of matching documents below `upper` (exclusive),
    /// newest first, at most `limit`, stopping at tweet ids at or below `floorID` (results
    /// other segments already hold enough of).
    mutating func run(upper: Int32, documents: DocumentTable, query: SearchQuery, tombstones: Set<UInt64>?,
                      floorID: UInt64?, limit: Int, into results: inout [UInt64]) {
        var t = upper - 1
        var found = 0
        let since = query.sinceMilliseconds
        let until = query.untilMilliseconds
        outer: while t >= 0 && found < limit {
            var candidate = t
            var ok = true
            if isConjunction {
                candidate = seekAll(t)
                if candidate < 0 { break }
                t = candidate - 1
                if let floorID, documents.id(candidate) <= floorID { break }
                for p in positivePhrases where !phraseMatches(phrases[p]) {
                    ok = false
                    break
                }
            } else {
                // Leapfrog the positive clauses to a common document.
                var agreed = 0
                var c = 0
                while agreed < positive.count {
                    let d = seekClause(positive[c], candidate)
                    if d < 0 { break outer }
                    if d == candidate {
                        agreed += 1
                    } else {
                        candidate = d
                        agreed = 1
                    }
                    c += 1
                    if c == positive.count { c = 0 }
                }
                t = candidate - 1
                if let floorID, documents.id(candidate) <= floorID { break }
                for k in positive.indices where !clauseMatches(positive[k], at: candidate) {
                    ok = false
                    break
                }
            }
            let id = documents.id(candidate)
            if ok {
                for k in negative.indices {
                    let d = seekClause(negative[k], candidate)
                    if d == candidate && clauseMatches(negative[k], at: candidate) {
                        ok = false
                        break
                    }
                }
            }
            if ok, since != nil || until != nil {
                let time = documents.time(candidate)
                if let since, time < since { ok = false }
                if let until, time >= until { ok = false }
            }
            if ok, let tombstones, tombstones.contains(id) { ok = false }
            if ok {
                results.append(id)
                found += 1
            }
        }
    }
}
