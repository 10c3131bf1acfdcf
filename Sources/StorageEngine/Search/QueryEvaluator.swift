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

    struct Clause {
        var phrases: [Phrase]
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

    var cursors: [PostingCursor] = []
    var positive: [Clause] = []
    var negative: [Clause] = []
    let blockBuffers: UnsafeMutablePointer<UInt32>?
    /// Scratch for phrase checks, reused for every candidate.
    var positionsA: [UInt32] = []
    var positionsB: [UInt32] = []

    /// Builds the plan for a segment; nil when some positive clause cannot match in it.
    init?(query: SearchQuery, lookup: (String) -> PostingCursor?) {
        var cursors: [PostingCursor] = []
        var positive: [Clause] = []
        var negative: [Clause] = []
        for clause in query.clauses {
            var phrases: [Phrase] = []
            alternatives: for phrase in clause.alternatives {
                let start = cursors.count
                for term in phrase.terms {
                    guard let cursor = lookup(term) else {
                        cursors.removeSubrange(start...)
                        continue alternatives
                    }
                    cursors.append(cursor)
                }
                phrases.append(Phrase(cursors: start..<cursors.count))
            }
            if clause.negated {
                if !phrases.isEmpty { negative.append(Clause(phrases: phrases)) }
            } else {
                if phrases.isEmpty { return nil }
                positive.append(Clause(phrases: phrases))
            }
        }
        let frozenCount = cursors.reduce(0) { $0 + ($1.isActive ? 0 : 1) }
        blockBuffers = frozenCount > 0 ? .allocate(capacity: frozenCount * PostingCodec.blockSize) : nil
        var k = 0
        for i in cursors.indices where !cursors[i].isActive {
            cursors[i].buffer = blockBuffers! + k * PostingCodec.blockSize
            k += 1
        }
        self.cursors = cursors
        self.positive = positive
        self.negative = negative
    }

    func release() { blockBuffers?.deallocate() }

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
    private mutating func seekClause(_ c: Int, negated: Bool, _ t: Int32) -> Int32 {
        var best: Int32 = -1
        let clause = negated ? negative[c] : positive[c]
        for phrase in clause.phrases {
            let d = seekPhrase(phrase, t)
            if d > best { best = d }
        }
        return best
    }

    /// Whether some phrase of the clause, all of whose cursors sit on `d`, has its terms at
    /// consecutive positions.
    private mutating func clauseMatches(_ c: Int, negated: Bool, at d: Int32) -> Bool {
        let clause = negated ? negative[c] : positive[c]
        for phrase in clause.phrases {
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
                let d = seekClause(c, negated: false, candidate)
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
            for k in positive.indices where !clauseMatches(k, negated: false, at: candidate) {
                ok = false
                break
            }
            if ok {
                for k in negative.indices {
                    let d = seekClause(k, negated: true, candidate)
                    if d == candidate && clauseMatches(k, negated: true, at: candidate) {
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
