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

    /// The query's distinct terms (each looked up once per segment), and their UTF-8 bytes.
    let terms: [String]
    let termBytes: [[UInt8]]
    /// The distinct term of each cursor.
    let termOfCursor: [Int]
    var cursors: [PostingCursor]
    /// All phrases, flat; a clause is a range of them.
    let phrases: [Phrase]
    let positive: [Range<Int>]
    let negative: [Range<Int>]
    /// Per phrase: whether all its terms occur in the current segment.
    var phraseLive: [Bool]
    let blockBuffers: UnsafeMutablePointer<UInt32>
    /// Scratch for phrase checks, reused for every candidate.
    var positionsA: [UInt32] = []
    var positionsB: [UInt32] = []

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
        termBytes = terms.map { Array($0.utf8) }
        self.termOfCursor = termOfCursor
        cursors = [PostingCursor](repeating: PostingCursor(), count: termOfCursor.count)
        self.phrases = phrases
        self.positive = positive
        self.negative = negative
        phraseLive = [Bool](repeating: false, count: phrases.count)
        blockBuffers = .allocate(capacity: max(1, termOfCursor.count) * PostingCodec.blockSize)
    }

    func release() { blockBuffers.deallocate() }

    /// Points the cursors at a segment (`lookup` maps a distinct term to its cursor there);
    /// false when some positive clause cannot match in it.
    mutating func prepare(_ lookup: (Int) -> PostingCursor?) -> Bool {
        for i in cursors.indices {
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
        return true
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
        positionsA.removeAll(keepingCapacity: true)
        cursors[phrase.cursors.lowerBound].positions(into: &positionsA)
        var j: UInt32 = 1
        for k in (phrase.cursors.lowerBound + 1)..<phrase.cursors.upperBound {
            positionsB.removeAll(keepingCapacity: true)
            cursors[k].positions(into: &positionsB)
            // Keep the starts p with p + j among the k-th term's positions.
            var kept = 0
            for p in positionsA where positionsB.contains(p + j) {
                positionsA[kept] = p
                kept += 1
            }
            positionsA.removeSubrange(kept...)
            if kept == 0 { return false }
            j += 1
        }
        return true
    }

    /// Appends to `results` the tweet ids of matching documents below `upper` (exclusive),
    /// newest first, at most `limit`, stopping at tweet ids at or below `floorID` (results
    /// other segments already hold enough of).
    mutating func run(upper: Int32, documents: DocumentTable, query: SearchQuery, tombstones: Set<UInt64>,
                      floorID: UInt64?, limit: Int, into results: inout [UInt64]) {
        var t = upper - 1
        var found = 0
        let since = query.sinceMilliseconds
        let until = query.untilMilliseconds
        outer: while t >= 0 && found < limit {
            // Leapfrog the positive clauses to a common document.
            var candidate = t
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
            let id = documents.id(candidate)
            if let floorID, id <= floorID { break }
            var ok = true
            for k in positive.indices where !clauseMatches(positive[k], at: candidate) {
                ok = false
                break
            }
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
            if ok, !tombstones.isEmpty, tombstones.contains(id) { ok = false }
            if ok {
                results.append(id)
                found += 1
            }
        }
    }
}
