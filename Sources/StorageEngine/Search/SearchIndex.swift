import CLibURing
import Synchronization

/// The search index: tweets by term, newest first; users by prefix; hashtag trends.
///
/// Shape (Earlybird's): one active in-memory segment takes new tweets (`ActiveSegment`,
/// append-only); a full one is sealed and frozen by a background thread into a compressed
/// immutable segment (`FrozenSegment`, see `SearchFormat` and `PostingCodec`); frozen segments
/// are merged in the background when there are more than `maximumSegments`. Documents are
/// segment-local numbers in increasing tweet id order, so "newest first" is "largest document
/// first" inside a segment, and segments are combined by tweet id. A tweet that arrives with an
/// id below the active segment's newest seals the active segment first, so the order holds.
///
/// Deletes are tombstones (a set of tweet ids) applied at query time and purged when a freeze
/// or merge drops the document.
///
/// Durability: the index is a consumer of the durable log. Every `add`/`delete` carries the
/// record's LSN, and `appliedLSN` is the largest applied. `checkpoint()` freezes what is in
/// memory, writes new segments (temporary name, fdatasync, rename, directory fsync) and then
/// the state file naming them with the LSN they include. `open` loads that; the caller replays
/// the log after `checkpointLSN` (an `add` or `delete` at or below `appliedLSN` is ignored, so
/// replaying too much is harmless). A corrupt file makes `open` throw `.corrupt`; the caller
/// then removes the files and rebuilds from the tweet store.
///
/// Thread safety and invariants:
/// - `lock` (a reader-writer lock) guards the segment lists, the active segment's mutable
///   state, tombstones and LSNs. Writers hold it for one tweet's postings; readers hold it
///   only to take a snapshot (segment references, the active segment's document count and the
///   query terms' chunk heads) and then evaluate without any lock, so a query never waits for
///   freezing, merging or I/O, and an add never waits for a query to finish.
/// - Freezes run outside `maintenance`: a thread claims the oldest sealed segment nobody is
///   freezing (under `lock`), freezes it, and parks the result in its `Sealed` entry; results
///   are published (moved to `frozen`, their tombstones purged, `frozenLSN` advanced) strictly
///   in sealing order, so a checkpoint can freeze the newest sealed segment on its own thread
///   while the background thread still freezes an older one, and `frozenLSN` never covers a
///   segment that is not frozen. `published` wakes whoever waits for a segment to be published.
/// - `maintenance` serializes merges and checkpoints' file writes (one at a time); they build
///   outside `lock` and switch lists under it.
/// - users and trends each sit behind their own mutex.
public final class SearchIndex: @unchecked Sendable {
    // @unchecked: mutable state is guarded as documented above.

    public struct Options: Sendable {
        /// Documents per active segment before it is sealed and frozen.
        public var activeSegmentDocuments = 1 << 16
        /// More frozen segments than this triggers a merge of the smallest `mergeWidth`.
        public var maximumSegments = 8
        public var mergeWidth = 4
        /// Freeze and merge on a background thread (tests turn it off to step by hand).
        public var backgroundMaintenance = true

        public init() {}
    }

    public let directory: String
    public let fileSystem: FileSystem
    public let options: Options

    private let lock = ReadWriteLock()
    // What every add and query reads or writes under `lock` is `@exclusivity(unchecked)`: the
    // lock rules out overlapping accesses, so the run-time check per access was only a cost.
    @exclusivity(unchecked) private var active: ActiveSegment
    @exclusivity(unchecked) private var sealed: [Sealed] = []
    private var frozen: [FrozenSegment] = [] {
        didSet { frozenNewestFirst = Self.newestFirst(frozen) }
    }
    /// `frozen` ordered by newest tweet id, kept for queries (which would otherwise sort).
    @exclusivity(unchecked) private var frozenNewestFirst: [FrozenSegment] = []
    @exclusivity(unchecked) private var tombstones = Set<UInt64>()
    @exclusivity(unchecked) private var applied: UInt64
    private var frozenLSN: UInt64
    private var checkpointed: UInt64
    private var nextSegmentNumber: UInt64
    private var persisted = Set<UInt64>()

    private let maintenance = ConditionLock()
    /// Broadcast after frozen segments are published (see `freezeSealed`).
    private let published = ConditionLock()
    private let signal = ConditionLock()
    private var workPending = false
    private var stopping = false
    private var worker: BackgroundThread?

    private let users = Mutex(UserDirectory())
    private let trendCounter = Mutex(TrendCounter())
    /// A zeroed byte map for `intersectFiltered` kept between queries (its address, 0 when a
    /// query holds it or none was made): a two-word query takes it and puts it back zeroed, so
    /// most queries neither allocate nor clear 8 KiB; concurrent ones make their own.
    private let spareFilterMap = Atomic<UInt>(0)

    private init(directory: String, fileSystem: FileSystem, options: Options, frozen: [FrozenSegment], tombstones: Set<UInt64>,
                 lsn: UInt64, nextSegmentNumber: UInt64, users: [SearchUser]) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.options = options
        self.active = ActiveSegment(capacity: options.activeSegmentDocuments)
        self.frozen = frozen
        frozenNewestFirst = Self.newestFirst(frozen)
        self.tombstones = tombstones
        applied = lsn
        frozenLSN = lsn
        checkpointed = lsn
        self.nextSegmentNumber = nextSegmentNumber
        persisted = Set(frozen.map(\.number))
        self.users.withLock { directory in for user in users { directory.upsert(user) } }
    }

    deinit {
        stopWorker()
        UnsafeMutablePointer<UInt8>(bitPattern: spareFilterMap.load(ordering: .acquiring))?.deallocate()
    }

    /// A sealed active segment: searched in memory until its frozen form is published.
    private struct Sealed {
        let segment: ActiveSegment
        /// The LSN applied when it was sealed: what the frozen segments include once it and
        /// every older sealed segment are published.
        let lsn: UInt64
        /// Whether some thread is freezing it (no other thread then does).
        var claimed = false
        /// Its frozen form and the tombstones the freeze dropped, parked until every older
        /// sealed segment is published (a tombstone is purged only when no in-memory segment
        /// still holds its tweet).
        var frozen: FrozenSegment?
        var purged: [UInt64] = []
    }

    private static func newestFirst(_ segments: [FrozenSegment]) -> [FrozenSegment] {
        segments.sorted { $0.maxTweetID > $1.maxTweetID }
    }

    // MARK: Opening

    /// Opens (creating if needed) the index in `directory`. Leftover temporary files and
    /// segments the state file does not name are removed.
    public static func open(directory: String, fileSystem: FileSystem, options: Options = Options()) throws(SearchError) -> SearchIndex {
        var names: [String]
        do {
            try fileSystem.makeDirectory(directory)
            names = try fileSystem.listDirectory(directory)
        } catch { throw .io(error) }
        var segments: [FrozenSegment] = []
        var tombstones = Set<UInt64>()
        var lsn: UInt64 = 0
        var next: UInt64 = 1
        var users: [SearchUser] = []
        if names.contains(SearchFormat.stateFileName) {
            let path = directory + "/" + SearchFormat.stateFileName
            let image = try readWholeFile(path, fileSystem: fileSystem)
            defer { image.deallocate() }
            guard let state = decodeState(UnsafeRawBufferPointer(image)) else { throw .corrupt(path: path, reason: "state file fails its checks") }
            lsn = state.lsn
            next = state.next
            tombstones = Set(state.tombstones)
            users = state.users
            for number in state.segments {
                let segmentPath = directory + "/" + SearchFormat.segmentFileName(number)
                let raw = try readWholeFile(segmentPath, fileSystem: fileSystem)
                if let problem = FrozenSegment.verify(UnsafeRawBufferPointer(raw)) {
                    raw.deallocate()
                    throw .corrupt(path: segmentPath, reason: problem)
                }
                let segment = FrozenSegment(image: raw)
                guard segment.number == number else { throw .corrupt(path: segmentPath, reason: "segment number \(segment.number) in file") }
                segments.append(segment)
            }
        }
        let live = Set(segments.map { SearchFormat.segmentFileName($0.number) })
        var removed = false
        for name in names where name.hasSuffix(SearchFormat.temporarySuffix) || (SearchFormat.segmentNumber(ofFileNamed: name) != nil && !live.contains(name)) {
            do { try fileSystem.remove(directory + "/" + name) } catch { throw .io(error) }
            removed = true
        }
        if removed {
            do { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
        }
        let index = SearchIndex(directory: directory, fileSystem: fileSystem, options: options, frozen: segments, tombstones: tombstones,
                                lsn: lsn, nextSegmentNumber: next, users: users)
        if options.backgroundMaintenance { index.startWorker() }
        return index
    }

    /// Removes every file of the index (to rebuild it after `.corrupt`).
    public static func removeFiles(directory: String, fileSystem: FileSystem) throws(SearchError) {
        do { try fileSystem.removeTree(directory) } catch { throw .io(error) }
    }

    static func readWholeFile(_ path: String, fileSystem: FileSystem) throws(SearchError) -> UnsafeMutableRawBufferPointer {
        do { return try fileSystem.readWholeFile(path) } catch { throw .io(error) }
    }

    // MARK: Writing

    /// The largest LSN applied (in memory).
    public var appliedLSN: UInt64 { lock.withReadLock { applied } }
    /// Declares every operation up to `lsn` applied, so later `add`/`delete` calls at or below it
    /// are ignored: for a caller that has just rebuilt the index from the tweet store (adding
    /// with LSN 0) as of that log position.
    public func advanceAppliedLSN(to lsn: UInt64) {
        lock.withWriteLock { applied = max(applied, lsn) }
    }

    /// The LSN the files on disk include: replay the log after it.
    public var checkpointLSN: UInt64 { lock.withReadLock { checkpointed } }

    /// The terms a tweet is indexed under: its text's, then `from:`, `is:` and any hashtags or
    /// URL hosts of the record that the text does not show.
    public static func terms(of tweet: TweetRecord, authorHandle: String?) -> [SearchToken] {
        let packed = packedTerms(of: tweet, authorHandle: authorHandle)
        return (0..<packed.count).map { SearchToken(term: packed.string($0), position: packed.position($0)) }
    }

    /// `terms(of:authorHandle:)` as the indexer takes them (bytes, no String per term).
    static func packedTerms(of tweet: TweetRecord, authorHandle: String?) -> PackedTerms {
        var terms = PackedTerms()
        packTerms(of: tweet, authorHandle: authorHandle, into: &terms)
        return terms
    }

    static func packTerms(of tweet: TweetRecord, authorHandle: String?, into terms: inout PackedTerms) {
        SearchTokenizer.tokenize(tweet.text, into: &terms, forQuery: false)
        var position = terms.count == 0 ? 0 : terms.position(terms.count - 1) + 1
        if let authorHandle {
            terms.appendFrom(authorHandle, position: position)
            position += 1
        }
        if tweet.replyTo != nil {
            terms.append(SearchQuery.replyTerm, position: position)
            position += 1
        }
        if tweet.retweetOf != nil {
            terms.append(SearchQuery.retweetTerm, position: position)
            position += 1
        }
        if tweet.quoteOf != nil {
            terms.append(SearchQuery.quoteTerm, position: position)
            position += 1
        }
        for tag in tweet.hashtags {
            var body = Substring(tag)
            while body.hasPrefix("#") { body = body.dropFirst() }
            let folded = SearchTokenizer.foldWord(body)
            if folded.isEmpty { continue }
            let tag = "#" + folded
            if terms.contains(tag) { continue }
            terms.append(tag, position: position)
            terms.append(folded, position: position)
            position += 1
        }
        for url in tweet.urls {
            var found: [SearchToken] = []
            SearchTokenizer.tokenize(url, into: &found, forQuery: true)
            for token in found where token.term.hasPrefix("url:") && !terms.contains(token.term) {
                terms.append(token.term, position: position)
                position += 1
            }
        }
    }

    /// Indexes a tweet; searchable by the next query. Returns false when ignored (LSN already
    /// applied, or the id already indexed or deleted).
    @discardableResult
    public func add(tweet: TweetRecord, authorHandle: String?, lsn: UInt64) -> Bool {
        // The terms in stack buffers (a tweet's fit; a larger one moves them to the heap). At
        // most 1 KiB each: a larger temporary allocation costs a stack-bounds query per call.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { bytes in
            withUnsafeTemporaryAllocation(of: PackedTerms.Term.self, capacity: 1024 / MemoryLayout<PackedTerms.Term>.stride) { list in
                var terms = PackedTerms(bytes: bytes, terms: list)
                Self.packTerms(of: tweet, authorHandle: authorHandle, into: &terms)
                return add(tweet: tweet, terms: terms, lsn: lsn)
            }
        }
    }

    private func add(tweet: TweetRecord, terms: borrowing PackedTerms, lsn: UInt64) -> Bool {
        let (added, sealedOne) = lock.withWriteLock { () -> (Bool, Bool) in
            if lsn != 0 && lsn <= applied { return (false, false) }
            applied = max(applied, lsn)
            if tombstones.contains(tweet.id) { return (false, false) }
            var sealedOne = false
            if let last = active.lastTweetID, tweet.id <= last {
                if active.document(of: tweet.id) != nil { return (false, false) }
                sealLocked()
                sealedOne = true
            }
            if active.isFull {
                sealLocked()
                sealedOne = true
            }
            active.append(tweetID: tweet.id, time: tweet.time, terms: terms)
            return (true, sealedOne)
        }
        if sealedOne { afterSeal() }
        return added
    }

    /// Hides a tweet from every later search. Returns false when the LSN was already applied.
    @discardableResult
    public func delete(tweetID: UInt64, lsn: UInt64) -> Bool {
        lock.withWriteLock {
            if lsn != 0 && lsn <= applied { return false }
            applied = max(applied, lsn)
            tombstones.insert(tweetID)
            return true
        }
    }

    private func sealLocked() {
        guard active.documentCount > 0 else { return }
        sealed.append(Sealed(segment: active, lsn: applied))
        active = ActiveSegment(capacity: options.activeSegmentDocuments)
    }

    private func afterSeal() {
        if options.backgroundMaintenance {
            signal.withLock {
                workPending = true
                signal.broadcast()
            }
        } else {
            freezeSealed()
        }
    }

    // MARK: Searching

    /// Parses `text` (Twitter search syntax) and searches; see `search(_:before:limit:)`.
    public func search(_ text: String, before: UInt64? = nil, limit: Int = 20) throws(SearchQueryError) -> [UInt64] {
        // The commonest search, one plain word, #tag or @mention, skips building a SearchQuery
        // (its arrays cost more than such a query's postings); the answer is the same.
        if let results = Self.withSingleWordTerm(text, { name, hash in limit > 0 ? searchTerm(name, hash: hash, before: before, limit: limit) : [] }) {
            return results
        }
        // Plain words, all ANDed or all ORed (the next commonest), likewise.
        if let results = searchPlainWords(text, before: before, limit: limit) { return results }
        return search(try SearchQuery.parse(text), before: before, limit: limit)
    }

    /// The most words `searchPlainWords` takes (more go through `SearchQuery`).
    static let plainWordsMaximum = 8

    /// `search(text)` when `text` is 2 to `plainWordsMaximum` plain ASCII words (each as
    /// `singleWordTerm` takes one: no quote, colon or leading `-`, exactly one term) separated
    /// by spaces, or such words joined by `OR` (`a OR b OR c`): the same answer as the parsed
    /// query's, found without a `SearchQuery` or `QueryEvaluator` (their arrays cost more than
    /// such a query's postings), the terms as bytes. Else nil (anything else, including what
    /// the parser rejects, goes through the parser).
    func searchPlainWords(_ text: String, before: UInt64?, limit: Int) -> [UInt64]? {
        var text = text
        return text.withUTF8 { bytes -> [UInt64]? in
            let n = bytes.count
            guard n >= 3, n <= 400 else { return nil }
            // A quoted phrase of plain ASCII text ("a b", the whole query): its terms are the
            // inner text's tokens, as the parser makes them.
            let quoted = bytes[0] == 0x22 && bytes[n - 1] == 0x22
            for b in bytes where b >= 0x80 || b == 0x3A { return nil }
            let inner = quoted ? UnsafeBufferPointer(rebasing: bytes[1..<(n - 1)]) : UnsafeBufferPointer(rebasing: bytes[0..<n])
            for b in inner where b == 0x22 { return nil }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer in
                withUnsafeTemporaryAllocation(of: PackedTerms.Term.self, capacity: Self.plainWordsMaximum) { list in
                    var terms = PackedTerms(bytes: buffer, terms: list)
                    if quoted {
                        SearchTokenizer.tokenizeASCII(inner, into: &terms, forQuery: true)
                        guard terms.count >= 2, terms.count <= Self.plainWordsMaximum else { return nil }
                        return limit > 0 ? searchPlain(terms, anyOf: false, phrase: true, before: before, limit: limit) : []
                    }
                    // Words alternate with OR (a disjunction) or none is OR (a conjunction).
                    var ors = 0
                    var words = 0
                    var i = 0
                    while i < n {
                        if SearchTokenizer.isSpaceByte(bytes[i]) {
                            i += 1
                            continue
                        }
                        var j = i
                        while j < n && !SearchTokenizer.isSpaceByte(bytes[j]) { j += 1 }
                        if j - i == 2 && bytes[i] == 0x4F && bytes[i + 1] == 0x52 {
                            // OR must follow a word and come before each word after the first.
                            if ors != words - 1 || words == 0 { return nil }
                            ors += 1
                        } else {
                            if bytes[i] == 0x2D || words == Self.plainWordsMaximum { return nil }
                            if ors > 0 && ors != words { return nil }
                            let before = terms.count
                            SearchTokenizer.tokenizeASCII(UnsafeBufferPointer(rebasing: bytes[i..<j]), into: &terms, forQuery: true)
                            if terms.count != before + 1 { return nil }
                            words += 1
                        }
                        i = j
                    }
                    guard words >= 2, ors == 0 || ors == words - 1 else { return nil }
                    return limit > 0 ? searchPlain(terms, anyOf: ors > 0, phrase: false, before: before, limit: limit) : []
                }
            }
        }
    }

    /// The conjunction (or, `anyOf`, the disjunction) of `terms` (at most
    /// `plainWordsMaximum`): the segments and early stops of `search(_:before:limit:)`, with the
    /// cursors and block buffers on the stack.
    ///
    /// With `phrase` (a conjunction), a document must also have the terms at consecutive
    /// positions in their order (as `QueryEvaluator.phraseMatches` checks them).
    private func searchPlain(_ terms: borrowing PackedTerms, anyOf: Bool, phrase: Bool, before: UInt64?, limit: Int) -> [UInt64] {
        let k = terms.count
        return withUnsafeTemporaryAllocation(of: ActiveSegment.TermView?.self, capacity: Self.plainWordsMaximum) { viewBuffer in
            let views = viewBuffer.baseAddress!
            let snapshot = lock.withReadLock {
                for i in 0..<k {
                    let name = terms.name(i)
                    (views + i).initialize(to: active.view(name.baseAddress!, name.count, hash: terms.terms[i].hash))
                }
                return takeSnapshot()
            }
            let activeSegment = snapshot.active
            let activeCount = snapshot.activeCount
            let frozenSegments = snapshot.frozen
            let deleted = snapshot.tombstones
            defer { views.deinitialize(count: k) }
            var results: [UInt64] = []
            results.reserveCapacity(limit * 2)
            var segmentsWithHits = 0
            // `intersectFiltered`'s byte map: the spare one for a two-word conjunction, else
            // made when a segment first needs it; kept as the spare afterwards if none is.
            var filterMap: UnsafeMutablePointer<UInt8>? = !anyOf && k == 2
                ? UnsafeMutablePointer(bitPattern: spareFilterMap.exchange(0, ordering: .acquiring)) : nil
            defer {
                if let map = filterMap,
                   !spareFilterMap.compareExchange(expected: 0, desired: UInt(bitPattern: map), ordering: .releasing).exchanged {
                    map.deallocate()
                }
            }
            withUnsafeTemporaryAllocation(of: PostingCursor.self, capacity: Self.plainWordsMaximum) { cursorBuffer in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: Self.plainWordsMaximum) { driverBuffer in
                    withUnsafeTemporaryAllocation(of: UInt32.self, capacity: k * PostingCodec.blockSize) { blockBuffer in
                        let cursors = cursorBuffer.baseAddress!
                        let drivers = driverBuffer.baseAddress!
                        cursors.initialize(repeating: PostingCursor(), count: k)
                        defer { cursors.deinitialize(count: k) }
                        /// Points the cursors at a segment; false when it cannot match.
                        func prepare(_ cursor: (Int) -> PostingCursor?) -> Bool {
                            var live = 0
                            for i in 0..<k {
                                if var c = cursor(i) {
                                    if !c.isActive { c.buffer = blockBuffer.baseAddress! + i * PostingCodec.blockSize }
                                    cursors[i] = c
                                    live += 1
                                } else {
                                    cursors[i] = PostingCursor()
                                }
                                drivers[i] = i
                            }
                            if anyOf { return live > 0 }
                            if live < k { return false }
                            QueryEvaluator.orderDrivers(cursors, drivers, k)
                            return true
                        }
                        // (`results`, the count and the byte map are passed inout, not captured: a
                        // captured var that the function changes is checked for exclusive access
                        // at run time.)
                        func run(upper: Int, documents: QueryEvaluator.DocumentTable, floorID: UInt64?,
                                 into results: inout [UInt64], segmentsWithHits: inout Int, filterMap: inout UnsafeMutablePointer<UInt8>?) {
                            let start = results.count
                            if !anyOf && k == 2 && !cursors[0].isActive && !cursors[1].isActive
                                && cursors[drivers[1]].length <= Self.filteredLengthRatio * cursors[drivers[0]].length {
                                Self.intersectFiltered(cursors, shorter: drivers[0], longer: drivers[1], phrase: phrase, upper: upper,
                                                       documents: documents, floorID: floorID, tombstones: deleted, limit: limit,
                                                       map: Self.filterMap(&filterMap), into: &results)
                                Self.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
                                return
                            }
                            var t = Int32(upper) - 1
                            var found = 0
                            while t >= 0 && found < limit {
                                var d: Int32 = -1
                                if anyOf {
                                    for i in 0..<k {
                                        let e = cursors[i].seek(atOrBelow: t)
                                        if e > d { d = e }
                                    }
                                } else {
                                    d = QueryEvaluator.seekAll(cursors, drivers, k, t)
                                }
                                if d < 0 { break }
                                t = d - 1
                                if phrase {
                                    // Below the floor, stop (as `take` would) before reading positions.
                                    if let floorID, documents.id(d) <= floorID { break }
                                    if !(k == 2 ? Self.phrasePairMatches(cursors) : Self.phraseMatches(cursors, k)) { continue }
                                }
                                guard QueryEvaluator.take(d, documents: documents, floorID: floorID, tombstones: deleted,
                                                          into: &results, found: &found) else { break }
                            }
                            Self.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
                        }
                        withExtendedLifetime(activeSegment) {
                            if activeCount > 0, prepare({ views[$0].map(PostingCursor.init(active:)) }) {
                                let upper = before.map { activeSegment.documents(below: $0, count: activeCount) } ?? activeCount
                                run(upper: upper, documents: QueryEvaluator.DocumentTable(ids: UnsafeRawPointer(activeSegment.tweetIDs),
                                                                                          times: UnsafeRawPointer(activeSegment.times), stride: 8),
                                    floorID: nil, into: &results, segmentsWithHits: &segmentsWithHits, filterMap: &filterMap)
                            }
                        }
                        for j in stride(from: snapshot.sealedCount - 1, through: 0, by: -1) {
            let segment = snapshot.sealed.unsafelyUnwrapped[j]
                            guard let count = Optional(segment.documentCount), count > 0,
                                  let f = Self.floor(results, limit: limit, maxID: segment.tweetIDs[count - 1]) else { continue }
                            guard prepare({ i in
                                let name = terms.name(i)
                                return segment.view(name.baseAddress!, name.count, hash: terms.terms[i].hash).map(PostingCursor.init(active:))
                            }) else { continue }
                            let upper = before.map { segment.documents(below: $0, count: count) } ?? count
                            run(upper: upper, documents: QueryEvaluator.DocumentTable(ids: UnsafeRawPointer(segment.tweetIDs),
                                                                                      times: UnsafeRawPointer(segment.times), stride: 8),
                                floorID: f, into: &results, segmentsWithHits: &segmentsWithHits, filterMap: &filterMap)
                        }
                        // Every term looked up in every frozen segment before any list is read (as
                        // in `searchTerm`: the lookups' cache misses overlap).
                        let segmentCount = frozenSegments.count
                        withUnsafeTemporaryAllocation(of: FrozenSegment.TermInfo?.self, capacity: max(1, segmentCount * k)) { infoBuffer in
                            let infos = infoBuffer.baseAddress!
                            for s in 0..<segmentCount {
                                let segment = frozenSegments[s]
                                for i in 0..<k {
                                    (infos + s * k + i).initialize(to: segment.lookup(terms.name(i), hash: terms.terms[i].hash).map { segment.termInfo($0) })
                                }
                            }
                            for s in 0..<segmentCount {
                                let segment = frozenSegments[s]
                                guard segment.documentCount > 0, let f = Self.floor(results, limit: limit, maxID: segment.maxTweetID) else { continue }
                                if let before, segment.minTweetID >= before { continue }
                                guard prepare({ i in infos[s * k + i].map(PostingCursor.init(frozen:)) }) else { continue }
                                let upper = before.map { segment.documents(below: $0) } ?? segment.documentCount
                                run(upper: upper, documents: QueryEvaluator.DocumentTable(ids: segment.documents, times: segment.documents + 8, stride: 16),
                                    floorID: f, into: &results, segmentsWithHits: &segmentsWithHits, filterMap: &filterMap)
                            }
                        }
                    }
                }
            }
            return results
        }
    }

    /// How many times longer than the shorter list the longer one of a two-term conjunction in
    /// a frozen segment may be for `intersectFiltered` to answer it (beyond, testing every
    /// document of the longer list costs more than the cursors' leapfrog, which steps over
    /// most of them).
    static let filteredLengthRatio = 16

    /// Documents per window of `intersectFiltered`'s byte map (8 KiB, on the heap: a stack
    /// allocation over 1 KiB costs a stack-bounds query per call).
    static let filterWindow = 8192

    /// A zeroed byte map for `intersectFiltered` (left zeroed by it): `map`, else a new one
    /// (when the query found no spare).
    @inline(__always)
    private static func filterMap(_ map: inout UnsafeMutablePointer<UInt8>?) -> UnsafeMutablePointer<UInt8> {
        if let map { return map }
        let made = UnsafeMutablePointer<UInt8>.allocate(capacity: filterWindow)
        made.initialize(repeating: 0, count: filterWindow)
        map = made
        return made
    }

    /// The first index in `i ..< end` whose document's byte in `map` (indexed by the document
    /// modulo the window) is set, else `end`: the scan of `intersectFiltered`, eight documents
    /// a branch (a hit is rare). Out of line, so that its few registers are its own (inlined
    /// into the caller's loop, two of them spilled at every step).
    @inline(never)
    private static func firstMarked(_ docs: UnsafePointer<UInt32>, from start: Int, to end: Int, map: UnsafePointer<UInt8>) -> Int {
        let mask = UInt32(filterWindow &- 1)
        var i = start
        while i &+ 8 <= end {
            let p = docs + i
            let any = map[Int(p[0] & mask)] | map[Int(p[1] & mask)] | map[Int(p[2] & mask)] | map[Int(p[3] & mask)]
                | map[Int(p[4] & mask)] | map[Int(p[5] & mask)] | map[Int(p[6] & mask)] | map[Int(p[7] & mask)]
            if any != 0 { break }
            i &+= 8
        }
        while i < end && map[Int(docs[i] & mask)] == 0 { i &+= 1 }
        return i
    }

    /// A two-term conjunction (with `phrase`, a two-term phrase) in one frozen segment, as
    /// `searchPlain`'s `run` answers it, without a leapfrog: the shorter list's documents, a
    /// block (or the part of it spanning fewer than `filterWindow` documents) at a time, are
    /// marked in a byte map indexed by the document modulo the window, and every document of
    /// the longer list in that span is tested against it, newest first (`firstMarked`). A
    /// merge of two lists of similar lengths takes a branch per step that goes either way
    /// (most of its time natively was mispredictions); a test is a load and an OR, with a
    /// branch per eight documents that is almost never taken. Both cursors decode every block
    /// (`decodeBitmaps`); on a common document both sit on it, so a phrase reads their
    /// positions as `phraseMatches` does; a conjunction's common documents are taken in
    /// batches (`hitBatch`) whose tweet ids are prefetched together. Appends what `run` would
    /// (the same documents, checks and early stops). `map` is `filterWindow` zero bytes, left
    /// zeroed.
    private static func intersectFiltered(_ cursors: UnsafeMutablePointer<PostingCursor>, shorter: Int, longer: Int, phrase: Bool,
                                          upper: Int, documents: QueryEvaluator.DocumentTable, floorID: UInt64?,
                                          tombstones: Set<UInt64>?, limit: Int, map: UnsafeMutablePointer<UInt8>,
                                          into results: inout [UInt64]) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: hitBatch) { pendingBuffer in
            intersectFiltered(cursors, shorter: shorter, longer: longer, phrase: phrase, upper: upper, documents: documents,
                              floorID: floorID, tombstones: tombstones, limit: limit, map: map, pending: pendingBuffer.baseAddress!,
                              into: &results)
        }
    }

    /// Common documents of a conjunction (not a phrase) that `intersectFiltered` holds before
    /// taking them: their tweet ids are prefetched together, so the ids' cache misses (one a
    /// hit, from a segment's 16-byte-a-document table) overlap instead of coming one after
    /// another.
    static let hitBatch = 32

    /// Takes the `count` pending documents in order as `QueryEvaluator.take` would one by one:
    /// false (stop) at the first at or below `floorID` or when `found` reaches `limit`.
    private static func takePending(_ pending: UnsafeMutablePointer<Int32>, _ count: Int, documents: QueryEvaluator.DocumentTable,
                                    floorID: UInt64?, tombstones: Set<UInt64>?, limit: Int,
                                    into results: inout [UInt64], found: inout Int) -> Bool {
        var x = 0
        while x < count {
            guard QueryEvaluator.take(pending[x], documents: documents, floorID: floorID, tombstones: tombstones,
                                      into: &results, found: &found), found < limit else { return false }
            x &+= 1
        }
        return true
    }

    private static func intersectFiltered(_ cursors: UnsafeMutablePointer<PostingCursor>, shorter: Int, longer: Int, phrase: Bool,
                                          upper: Int, documents: QueryEvaluator.DocumentTable, floorID: UInt64?,
                                          tombstones: Set<UInt64>?, limit: Int, map: UnsafeMutablePointer<UInt8>,
                                          pending: UnsafeMutablePointer<Int32>, into results: inout [UInt64]) {
        let a = cursors + shorter
        let b = cursors + longer
        a.pointee.decodeBitmaps = true
        b.pointee.decodeBitmaps = true
        let mask = UInt32(filterWindow &- 1)
        let window = Int32(filterWindow)
        var t = Int32(upper) - 1
        var found = 0
        // A conjunction's common documents wait in `pending` (at most what could still be
        // taken, and `hitBatch`) and are taken together; the order, checks and stops are
        // `take`'s one by one. Documents scanned after the last one taken are not used.
        var waiting = 0
        defer {
            if waiting > 0 {
                _ = takePending(pending, waiting, documents: documents, floorID: floorID, tombstones: tombstones, limit: limit,
                                into: &results, found: &found)
            }
        }
        while t >= 0 && found < limit {
            let hi = a.pointee.seek(atOrBelow: t)
            if hi < 0 { return }
            // The chunk: a's decoded documents from here on, within its block and the window
            // (the whole rest of the block unless it spans the window or more).
            let docsA = a.pointee.buffer.unsafelyUnwrapped
            let na = a.pointee.blockLength
            let first = a.pointee.inBlock
            var j = na
            if hi &- Int32(bitPattern: docsA[na &- 1]) >= window {
                var low = first &+ 1
                var high = na &- 1
                while low < high {
                    let middle = (low &+ high) &>> 1
                    if hi &- Int32(bitPattern: docsA[middle]) < window { low = middle &+ 1 } else { high = middle }
                }
                j = low
            }
            var c = first
            while c < j {
                map[Int(docsA[c] & mask)] = 1
                c &+= 1
            }
            let lo = Int32(bitPattern: docsA[j &- 1])
            // b's documents in [lo, hi], tested.
            var p = first
            var stop = false
            var y = b.pointee.seek(atOrBelow: hi)
            scan: while y >= lo {
                let docsB = b.pointee.buffer.unsafelyUnwrapped
                let nb = b.pointee.blockLength
                var i = b.pointee.inBlock
                // The end: the first document below lo, or the block's end.
                var end = nb
                if Int32(bitPattern: docsB[nb &- 1]) < lo {
                    var low = i &+ 1
                    var high = nb &- 1
                    while low < high {
                        let middle = (low &+ high) &>> 1
                        if Int32(bitPattern: docsB[middle]) >= lo { low = middle &+ 1 } else { high = middle }
                    }
                    end = low
                }
                while true {
                    i = firstMarked(docsB, from: i, to: end, map: map)
                    if i == end { break }
                    let e = Int32(bitPattern: docsB[i])
                    if !phrase {
                        socialdb_prefetch(documents.ids + Int(e) &* documents.stride)
                        pending[waiting] = e
                        waiting &+= 1
                        if waiting == min(limit &- found, hitBatch) {
                            let more = takePending(pending, waiting, documents: documents, floorID: floorID, tombstones: tombstones,
                                                   limit: limit, into: &results, found: &found)
                            waiting = 0
                            if !more {
                                stop = true
                                break scan
                            }
                        }
                        i &+= 1
                        continue
                    }
                    // A phrase: below the floor, stop (as `take` would) before reading positions.
                    b.pointee.inBlock = i
                    b.pointee.doc = e
                    if let floorID, documents.id(e) <= floorID {
                        stop = true
                        break scan
                    }
                    while Int32(bitPattern: docsA[p]) != e { p &+= 1 }
                    a.pointee.inBlock = p
                    a.pointee.doc = e
                    if !phrasePairMatches(cursors) {
                        i &+= 1
                        continue
                    }
                    guard QueryEvaluator.take(e, documents: documents, floorID: floorID, tombstones: tombstones,
                                              into: &results, found: &found), found < limit else {
                        stop = true
                        break scan
                    }
                    i &+= 1
                }
                if end < nb {
                    // b sits on its first document below the chunk.
                    b.pointee.inBlock = end
                    b.pointee.doc = Int32(bitPattern: docsB[end])
                    break
                }
                let last = Int32(bitPattern: docsB[nb &- 1])
                b.pointee.inBlock = nb &- 1
                b.pointee.doc = last
                y = b.pointee.seek(atOrBelow: last &- 1)
            }
            c = first
            while c < j {
                map[Int(docsA[c] & mask)] = 0
                c &+= 1
            }
            if stop { return }
            a.pointee.inBlock = j &- 1
            a.pointee.doc = lo
            t = lo &- 1
        }
    }

    /// `phraseMatches` for two cursors: when both postings are regular (format 5: one
    /// position each, read from the block's byte for the posting, no walk), one compare. Out
    /// of line: inlined into `intersectFiltered`'s scan it cost that loop registers (spills,
    /// 36 -> 47 instructions a step of four documents).
    @inline(never)
    private static func phrasePairMatches(_ cursors: UnsafeMutablePointer<PostingCursor>) -> Bool {
        let p = cursors[0].singlePosition()
        if p >= 0 {
            let q = cursors[1].singlePosition()
            if q >= 0 { return q == p &+ 1 }
        }
        return phraseMatches(cursors, 2)
    }

    /// Positions of one term in one document that `searchPlain`'s phrase check holds on the
    /// stack (a tweet has fewer; a document with more reads them into the heap).
    static let phrasePositions = 128

    /// Whether the `k` cursors, all on one document, have their terms at consecutive
    /// positions in cursor order (`QueryEvaluator.phraseMatches`). The positions go in a stack
    /// buffer of its own (1 KiB: more in `searchPlain`'s would make every plain-words query
    /// pay a stack-bounds check).
    private static func phraseMatches(_ cursors: UnsafeMutablePointer<PostingCursor>, _ k: Int) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * phrasePositions) { scratch in
            phraseMatches(cursors, k, scratch: scratch.baseAddress!)
        }
    }

    private static func phraseMatches(_ cursors: UnsafeMutablePointer<PostingCursor>, _ k: Int, scratch: UnsafeMutablePointer<UInt32>) -> Bool {
        let capacity = phrasePositions
        var starts = scratch
        var next = scratch + capacity
        var heap: UnsafeMutablePointer<UInt32>?
        defer { heap?.deallocate() }
        var count = cursors[0].positions(into: starts, capacity: capacity)
        if count > capacity {
            // A document with more positions of the term than the stack holds: both buffers
            // on the heap, large enough for any term of this document.
            let documentCount = count
            heap = .allocate(capacity: 2 * documentCount)
            starts = heap.unsafelyUnwrapped
            count = cursors[0].positions(into: starts, capacity: documentCount)
            next = starts + documentCount
        }
        var room = heap == nil ? capacity : count
        for i in 1..<k {
            var n = cursors[i].positions(into: next, capacity: room)
            if n > room {
                // More positions of this term than room for them: move the starts to the heap
                // with room for both.
                let grown = UnsafeMutablePointer<UInt32>.allocate(capacity: count + n)
                grown.update(from: starts, count: count)
                heap?.deallocate()
                heap = grown
                starts = grown
                next = grown + count
                room = n
                n = cursors[i].positions(into: next, capacity: room)
            }
            // Keep the starts p with p + i among the i-th term's positions.
            var kept = 0
            var x = 0
            let offset = UInt32(truncatingIfNeeded: i)
            while x < count {
                let p = starts[x]
                var y = 0
                while y < n && next[y] != p &+ offset { y &+= 1 }
                if y < n {
                    starts[kept] = p
                    kept &+= 1
                }
                x &+= 1
            }
            if kept == 0 { return false }
            count = kept
        }
        return true
    }

    /// The term when `text` is one ASCII word that `SearchQuery.parse` would make a query of
    /// that single term (no space, quote, colon, leading `-`, not `OR`; it tokenizes to exactly
    /// one term), else nil.
    static func singleWordTerm(_ text: String) -> String? {
        withSingleWordTerm(text) { name, _ in String(decoding: name, as: UTF8.self) }
    }

    /// `body` of the term's bytes and `FrozenSegment.hashName` when `text` is one word as
    /// `singleWordTerm` takes one, else nil (the search path: no String, one hash).
    static func withSingleWordTerm<R>(_ text: String, _ body: (UnsafeRawBufferPointer, UInt64) -> R) -> R? {
        var text = text
        return text.withUTF8 { bytes -> R? in
            let n = bytes.count
            guard n > 0, n <= 200, bytes[0] != 0x2D else { return nil }
            for b in bytes where b >= 0x80 || b == 0x3A || b == 0x22 || SearchTokenizer.isSpaceByte(b) { return nil }
            if n == 2 && bytes[0] == 0x4F && bytes[1] == 0x52 { return nil }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buffer in
                withUnsafeTemporaryAllocation(of: PackedTerms.Term.self, capacity: 8) { list in
                    var terms = PackedTerms(bytes: buffer, terms: list)
                    SearchTokenizer.tokenizeASCII(bytes, into: &terms, forQuery: true)
                    return terms.count == 1 ? body(terms.name(0), terms.terms[0].hash) : nil
                }
            }
        }
    }

    /// Tweet ids matching `query`, newest first, below `before` when given, at most `limit`.
    public func search(_ query: SearchQuery, before: UInt64? = nil, limit: Int = 20) -> [UInt64] {
        guard limit > 0 else { return [] }
        if var term = query.singleTerm {
            return term.withUTF8 { utf8 in
                let name = UnsafeRawBufferPointer(utf8)
                return searchTerm(name, hash: FrozenSegment.hashName(name.baseAddress, name.count), before: before, limit: limit)
            }
        }
        // The plan (distinct terms, cursors, block buffers) is built once and re-pointed at
        // each segment, so a query's fixed cost does not grow with the number of segments.
        var evaluator = QueryEvaluator(query: query)
        defer { evaluator.release() }
        let terms = evaluator.terms
        // The snapshot: everything a reader needs, taken under the read lock.
        let (snapshot, views) = lock.withReadLock {
            var views: [ActiveSegment.TermView?] = []
            views.reserveCapacity(terms.count)
            for term in terms { views.append(active.view(term)) }
            return (takeSnapshot(), views)
        }
        let activeSegment = snapshot.active
        let activeCount = snapshot.activeCount
        let frozenSegments = snapshot.frozen
        let deleted = snapshot.tombstones
        var results: [UInt64] = []
        results.reserveCapacity(limit * 2)
        var segmentsWithHits = 0
        // The active segment (newest), then sealed ones newest first, then frozen by newest id.
        withExtendedLifetime(activeSegment) {
            if activeCount > 0, evaluator.prepare({ views[$0].map(PostingCursor.init(active:)) }) {
                let upper = before.map { activeSegment.documents(below: $0, count: activeCount) } ?? activeCount
                let table = QueryEvaluator.DocumentTable(ids: UnsafeRawPointer(activeSegment.tweetIDs), times: UnsafeRawPointer(activeSegment.times), stride: 8)
                let start = results.count
                evaluator.run(upper: Int32(upper), documents: table, query: query, tombstones: deleted, floorID: nil, limit: limit, into: &results)
                Self.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
            }
        }
        for j in stride(from: snapshot.sealedCount - 1, through: 0, by: -1) {
            let segment = snapshot.sealed.unsafelyUnwrapped[j]
            guard let count = Optional(segment.documentCount), count > 0, let f = Self.floor(results, limit: limit, maxID: segment.tweetIDs[count - 1]) else { continue }
            guard evaluator.prepare({ segment.view(terms[$0]).map(PostingCursor.init(active:)) }) else { continue }
            let upper = before.map { segment.documents(below: $0, count: count) } ?? count
            let table = QueryEvaluator.DocumentTable(ids: UnsafeRawPointer(segment.tweetIDs), times: UnsafeRawPointer(segment.times), stride: 8)
            let start = results.count
            evaluator.run(upper: Int32(upper), documents: table, query: query, tombstones: deleted, floorID: f, limit: limit, into: &results)
            Self.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
        }
        // Every distinct term looked up in every frozen segment before any list is read (as in
        // `searchTerm`: the lookups' cache misses overlap), each term hashed once.
        let segmentCount = frozenSegments.count
        let termCount = terms.count
        withUnsafeTemporaryAllocation(of: FrozenSegment.TermInfo?.self, capacity: max(1, segmentCount * termCount)) { infoBuffer in
            let infos = infoBuffer.baseAddress!
            for t in 0..<termCount {
                var name = terms[t]
                name.withUTF8 { utf8 in
                    let key = UnsafeRawBufferPointer(utf8)
                    let hash = FrozenSegment.hashName(key.baseAddress, key.count)
                    for s in 0..<segmentCount {
                        let segment = frozenSegments[s]
                        (infos + s * termCount + t).initialize(to: segment.lookup(key, hash: hash).map { segment.termInfo($0) })
                    }
                }
            }
            for s in 0..<segmentCount {
                let segment = frozenSegments[s]
                guard segment.documentCount > 0, let f = Self.floor(results, limit: limit, maxID: segment.maxTweetID) else { continue }
                if let before, segment.minTweetID >= before { continue }
                guard evaluator.prepare({ infos[s * termCount + $0].map(PostingCursor.init(frozen:)) }) else { continue }
                let upper = before.map { segment.documents(below: $0) } ?? segment.documentCount
                let table = QueryEvaluator.DocumentTable(ids: segment.documents, times: segment.documents + 8, stride: 16)
                let start = results.count
                evaluator.run(upper: Int32(upper), documents: table, query: query, tombstones: deleted, floorID: f, limit: limit, into: &results)
                Self.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
            }
        }
        return results
    }

    /// `search` for a query of one term and nothing else (the commonest search): the same
    /// segments in the same order as the general path, one cursor walked down each, without
    /// building an evaluator (whose arrays and buffers cost more than such a query's postings).
    /// The term is given as its bytes (at least one) and their `FrozenSegment.hashName`, hashed
    /// once for every segment.
    ///
    /// Its fixed cost is most of a rare term's query, so: one temporary allocation holds the
    /// block buffer and the frozen segments' term entries, the hits live in a variable of the
    /// closure that returns them and the steps are static functions taking them inout (a
    /// variable captured by a closure or local function and changed there is checked for
    /// exclusive access at run time, ~100 instructions a check), and the snapshot holds no
    /// empty array or set (see `Snapshot`).
    private func searchTerm(_ term: UnsafeRawBufferPointer, hash: UInt64, before: UInt64?, limit: Int) -> [UInt64] {
        guard let termBase = term.baseAddress, term.count > 0 else { return [] }
        let (snapshot, view) = lock.withReadLock { (takeSnapshot(), active.view(termBase, term.count, hash: hash)) }
        let segmentCount = snapshot.frozen.count
        let blockBytes = PostingCodec.blockSize * MemoryLayout<UInt32>.stride
        let infoBytes = max(1, segmentCount) * MemoryLayout<FrozenSegment.TermInfo?>.stride
        let results = withUnsafeTemporaryAllocation(byteCount: blockBytes + infoBytes, alignment: 16) { raw -> [UInt64] in
            let buffer = raw.baseAddress!.bindMemory(to: UInt32.self, capacity: PostingCodec.blockSize)
            let infos = (raw.baseAddress! + blockBytes).bindMemory(to: FrozenSegment.TermInfo?.self, capacity: max(1, segmentCount))
            var hits = Hits(limit: limit)
            if snapshot.activeCount > 0, let view {
                Self.runTerm(in: snapshot.active, view, count: snapshot.activeCount, floorID: nil, before: before, tombstones: snapshot.tombstones, into: &hits)
            }
            if let sealed = snapshot.sealed {
                for segment in sealed.reversed() {
                    guard let count = Optional(segment.documentCount), count > 0, let f = hits.floor(maxID: segment.tweetIDs[count - 1]),
                          let view = segment.view(termBase, term.count, hash: hash) else { continue }
                    Self.runTerm(in: segment, view, count: count, floorID: f, before: before, tombstones: snapshot.tombstones, into: &hits)
                }
            }
            // The term's entry in every frozen segment, looked up for all of them before any list
            // is read: one segment's lookup loads (a table slot, a term entry, a name: in a large
            // index each a cache miss) do not depend on another's, so in a loop of their own
            // their misses overlap instead of each waiting for the previous segment's list.
            let frozen = snapshot.frozen
            for k in 0..<segmentCount {
                let segment = frozen[k]
                (infos + k).initialize(to: segment.lookup(term, hash: hash).map { segment.termInfo($0) })
                // The list's first bytes too: read after the segments before it are walked, so
                // without the prefetch their miss would come after those segments' work.
                if let info = infos[k] { socialdb_prefetch(info.postings) }
            }
            for k in 0..<segmentCount {
                guard let info = infos[k] else { continue }
                let segment = frozen[k]
                guard segment.documentCount > 0, let f = hits.floor(maxID: segment.maxTweetID) else { continue }
                if let before, segment.minTweetID >= before { continue }
                var cursor = PostingCursor(frozen: info)
                cursor.buffer = buffer
                let upper = before.map { segment.documents(below: $0) } ?? segment.documentCount
                let table = QueryEvaluator.DocumentTable(ids: segment.documents, times: segment.documents + 8, stride: 16)
                let start = hits.results.count
                QueryEvaluator.runTerm(&cursor, upper: Int32(upper), documents: table, tombstones: snapshot.tombstones, floorID: f, limit: limit,
                                       into: &hits.results)
                hits.keepNewest(from: start)
            }
            return hits.results
        }
        // The segments (whose memory the cursors read) live until here.
        withExtendedLifetime(snapshot) {}
        return results
    }

    /// The term's postings in an in-memory segment (the active one, or one sealed and not yet
    /// frozen), `count` of its documents, into `hits` (`searchTerm`'s step).
    private static func runTerm(in segment: ActiveSegment, _ view: ActiveSegment.TermView, count: Int, floorID: UInt64?, before: UInt64?,
                                tombstones: Set<UInt64>?, into hits: inout Hits) {
        var cursor = PostingCursor(active: view)
        let upper = before.map { segment.documents(below: $0, count: count) } ?? count
        let table = QueryEvaluator.DocumentTable(ids: UnsafeRawPointer(segment.tweetIDs), times: UnsafeRawPointer(segment.times), stride: 8)
        let start = hits.results.count
        QueryEvaluator.runTerm(&cursor, upper: Int32(upper), documents: table, tombstones: tombstones, floorID: floorID, limit: hits.limit,
                               into: &hits.results)
        hits.keepNewest(from: start)
    }

    /// What a query reads of the index, taken under the read lock: the segments (referenced, so
    /// they outlive the query), the active segment's document count, the tombstones. No empty
    /// array or set: an empty one is the runtime's shared immortal instance, whose every retain
    /// and release take the runtime's slow path (~50-90 instructions each, several a query).
    struct Snapshot {
        let active: ActiveSegment
        let activeCount: Int
        /// Sealed segments not yet frozen, oldest first; nil when there are none (the usual case).
        let sealed: [ActiveSegment]?
        let frozen: [FrozenSegment]
        /// nil when nothing is deleted.
        let tombstones: Set<UInt64>?

        var sealedCount: Int { sealed?.count ?? 0 }
    }

    /// The snapshot; the caller holds the read (or write) lock.
    @inline(__always)
    private func takeSnapshot() -> Snapshot {
        Snapshot(active: active, activeCount: active.documentCount, sealed: sealed.isEmpty ? nil : sealed.map(\.segment),
                 frozen: frozenNewestFirst, tombstones: tombstones.isEmpty ? nil : tombstones)
    }

    /// A query's results so far, over the segments visited (newest first).
    struct Hits {
        var results: [UInt64]
        /// How many segments have added hits (the first needs no merge).
        var segmentsWithHits = 0
        let limit: Int

        init(limit: Int) {
            self.limit = limit
            results = []
            results.reserveCapacity(limit * 2)
        }

        /// Keeps the newest `limit` after a segment appended its hits from `start`.
        @inline(__always)
        mutating func keepNewest(from start: Int) {
            SearchIndex.keepNewest(&results, from: start, segmentsWithHits: &segmentsWithHits, limit: limit)
        }

        /// For a segment whose newest id is `maxID`: nil to skip it, else the floor id to stop at.
        @inline(__always)
        func floor(maxID: UInt64) -> UInt64?? { SearchIndex.floor(results, limit: limit, maxID: maxID) }
    }

    /// Keeps the newest `limit` after a segment appended its hits from `start` (already newest
    /// first, so the first segment with hits needs no sort).
    @inline(__always)
    private static func keepNewest(_ results: inout [UInt64], from start: Int, segmentsWithHits: inout Int, limit: Int) {
        if results.count == start { return }
        segmentsWithHits += 1
        if segmentsWithHits == 1 { return }
        // Each segment's run is newest first and the results before it are sorted, so when the
        // run starts below them (segments whose ids do not overlap, visited newest first: the
        // usual case) the whole is sorted already; only overlapping segments need the sort.
        if results[start - 1] <= results[start] { results.sort(by: >) }
        if results.count > limit { results.removeSubrange(limit...) }
    }

    /// For a segment whose newest id is `maxID`: nil to skip it (it cannot beat the k-th best
    /// so far), else the floor id to stop at (none while fewer than `limit` results).
    @inline(__always)
    private static func floor(_ results: [UInt64], limit: Int, maxID: UInt64) -> UInt64?? {
        guard results.count >= limit else { return .some(nil) }
        let kth = results[limit - 1]
        return maxID <= kth ? .none : .some(kth)
    }

    // MARK: Users and trends

    /// Adds or updates a user for user search.
    public func addUser(id: UInt64, handle: String, displayName: String, followers: UInt64) {
        users.withLock { $0.upsert(SearchUser(id: id, handle: handle, displayName: displayName, followers: followers)) }
    }

    /// Users whose handle or a display-name word starts with `prefix` (folded; a leading `@` is
    /// ignored), most followers first, ties by handle.
    public func searchUsers(prefix: String, limit: Int = 20) -> [SearchUser] {
        users.withLock { $0.search(prefix: prefix, limit: limit) }
    }

    /// Counts hashtags (with or without `#`, folded) in the minute of `timeMilliseconds`.
    public func recordHashtags(_ tags: [String], timeMilliseconds: UInt64) {
        trendCounter.withLock { $0.record(tags, atMilliseconds: timeMilliseconds) }
    }

    /// Takes back what `recordHashtags` counted for a tweet that has been deleted.
    public func forgetHashtags(_ tags: [String], timeMilliseconds: UInt64) {
        trendCounter.withLock { $0.forget(tags, atMilliseconds: timeMilliseconds) }
    }

    /// The top hashtags (as `#tag`) over the minute buckets in (now - window, now], by count,
    /// ties by tag. Trends live in memory: the caller feeds them the window's tweets at open.
    public func trends(nowMilliseconds: UInt64, windowMilliseconds: UInt64 = 3_600_000, limit: Int = 10) -> [(tag: String, count: Int)] {
        trendCounter.withLock { $0.top(nowMilliseconds: nowMilliseconds, windowMilliseconds: windowMilliseconds, limit: limit) }
    }

    // MARK: Maintenance

    /// Seals the active segment and freezes everything sealed, synchronously.
    public func freeze() {
        lock.withWriteLock { sealLocked() }
        freezeSealed()
    }

    /// Merges all frozen segments into one, synchronously (purging tombstoned documents).
    public func mergeAll() {
        maintenance.withLock {
            let inputs = lock.withReadLock { frozen }
            if inputs.count > 1 || (inputs.count == 1 && !tombstones.isEmpty) { mergeLocked(inputs) }
        }
    }

    /// Runs the pending background work (freezes, merges) now, synchronously.
    public func runMaintenance() {
        freezeSealed()
        maintenance.withLock { mergeIfNeededLocked() }
    }

    /// Freezes every sealed segment no other thread has claimed, oldest first, and returns when
    /// every segment sealed before the call is frozen and published (frozen by this thread or
    /// by another one that had claimed it: then this one waits for it).
    private func freezeSealed() {
        guard let newest = lock.withReadLock({ sealed.last?.segment }) else { return }
        while true {
            freezeUnclaimed()
            let done = published.withLock { () -> Bool in
                while true {
                    let (isPublished, unclaimed) = lock.withReadLock {
                        (!sealed.contains { $0.segment === newest }, sealed.contains { !$0.claimed })
                    }
                    // Published in sealing order: when the newest is, so is everything before it.
                    if isPublished { return true }
                    if unclaimed { return false }
                    published.wait()
                }
            }
            if done { return }
        }
    }

    /// Claims and freezes sealed segments, oldest unclaimed first, until none is unclaimed;
    /// publishes whatever prefix of `sealed` is then frozen (see the type's notes).
    private func freezeUnclaimed() {
        while true {
            guard let (next, number, deleted) = lock.withWriteLock({ () -> (ActiveSegment, UInt64, Set<UInt64>)? in
                guard let i = sealed.firstIndex(where: { !$0.claimed }) else { return nil }
                sealed[i].claimed = true
                nextSegmentNumber += 1
                return (sealed[i].segment, nextSegmentNumber - 1, tombstones)
            }) else { return }
            let (segment, purged) = next.freeze(number: number, deleted: deleted)
            lock.withWriteLock {
                guard let i = sealed.firstIndex(where: { $0.segment === next }) else {
                    preconditionFailure("a claimed sealed segment left the list before it was frozen")
                }
                sealed[i].frozen = segment
                sealed[i].purged = purged
                while let first = sealed.first, let done = first.frozen {
                    sealed.removeFirst()
                    if done.documentCount > 0 { frozen.append(done) }
                    frozenLSN = first.lsn
                    for id in first.purged { tombstones.remove(id) }
                }
            }
            published.withLock { published.broadcast() }
        }
    }

    private func mergeIfNeededLocked() {
        while true {
            let inputs = lock.withReadLock { () -> [FrozenSegment] in
                guard frozen.count > options.maximumSegments else { return [] }
                return Array(frozen.sorted { $0.documentCount < $1.documentCount }.prefix(max(2, options.mergeWidth)))
            }
            if inputs.isEmpty { return }
            mergeLocked(inputs)
        }
    }

    /// Merges `inputs` into one segment: documents re-numbered in tweet id order, tombstoned
    /// ones dropped (and their tombstones purged).
    private func mergeLocked(_ inputs: [FrozenSegment]) {
        let (number, deleted) = lock.withWriteLock { () -> (UInt64, Set<UInt64>) in
            nextSegmentNumber += 1
            return (nextSegmentNumber - 1, tombstones)
        }
        let (merged, purged) = Self.merge(inputs, number: number, deleted: deleted)
        lock.withWriteLock {
            let numbers = Set(inputs.map(\.number))
            frozen.removeAll { numbers.contains($0.number) }
            if merged.documentCount > 0 { frozen.append(merged) }
            for id in purged { tombstones.remove(id) }
        }
    }

    static func merge(_ inputs: [FrozenSegment], number: UInt64, deleted: Set<UInt64>) -> (FrozenSegment, purged: [UInt64]) {
        // New document numbers: all live documents in tweet id order.
        var all: [(id: UInt64, segment: Int, doc: Int)] = []
        var purged: [UInt64] = []
        for (s, segment) in inputs.enumerated() {
            for d in 0..<segment.documentCount {
                let id = segment.tweetID(d)
                if !deleted.isEmpty && deleted.contains(id) { purged.append(id) } else { all.append((id, s, d)) }
            }
        }
        all.sort { $0.id < $1.id }
        var mapping = inputs.map { [Int32](repeating: -1, count: $0.documentCount) }
        var builder = SegmentBuilder(number: number)
        for (n, entry) in all.enumerated() {
            mapping[entry.segment][entry.doc] = Int32(n)
            builder.addDocument(tweetID: entry.id, time: inputs[entry.segment].time(entry.doc))
        }
        // Terms: a k-way merge of the sorted term tables.
        var next = [Int](repeating: 0, count: inputs.count)
        var docs: [UInt32] = []
        var starts: [Int] = []
        var values: [UInt32] = []
        var partDocs: [UInt32] = []
        var partStarts: [Int] = []
        var partValues: [UInt32] = []
        var holders: [Int] = []
        while true {
            var smallest: UnsafeRawBufferPointer?
            holders.removeAll(keepingCapacity: true)
            for s in inputs.indices where next[s] < inputs[s].termCount {
                let name = inputs[s].termName(next[s])
                if let current = smallest {
                    let c = FrozenSegment.compare(name, current)
                    if c < 0 {
                        smallest = name
                        holders.removeAll(keepingCapacity: true)
                        holders.append(s)
                    } else if c == 0 {
                        holders.append(s)
                    }
                } else {
                    smallest = name
                    holders.append(s)
                }
            }
            guard let name = smallest else { break }
            let nameBytes = Array(name)
            docs.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            var entries: [(doc: UInt32, start: Int, end: Int)] = []
            for s in holders {
                partDocs.removeAll(keepingCapacity: true)
                partStarts.removeAll(keepingCapacity: true)
                partValues.removeAll(keepingCapacity: true)
                inputs[s].decodeAll(next[s], docs: &partDocs, positionStarts: &partStarts, positionValues: &partValues)
                for i in partDocs.indices {
                    let mapped = mapping[s][Int(partDocs[i])]
                    if mapped < 0 { continue }
                    let start = values.count
                    let end = i + 1 < partDocs.count ? partStarts[i + 1] : partValues.count
                    values.append(contentsOf: partValues[partStarts[i]..<end])
                    entries.append((UInt32(mapped), start, values.count))
                }
                next[s] += 1
            }
            if entries.isEmpty { continue }
            if holders.count > 1 { entries.sort { $0.doc > $1.doc } }
            var ordered: [UInt32] = []
            ordered.reserveCapacity(values.count)
            for e in entries {
                docs.append(e.doc)
                starts.append(ordered.count)
                ordered.append(contentsOf: values[e.start..<e.end])
            }
            builder.addTerm(nameBytes, docs: docs, positionStarts: starts, positionValues: ordered)
        }
        return (builder.finish(), purged)
    }

    // MARK: Checkpoint

    /// Freezes what is in memory and makes it durable with the LSN it includes; returns that
    /// LSN. The caller may then move the log's checkpoint for this consumer to it.
    @discardableResult
    public func checkpoint() throws(SearchError) -> UInt64 {
        // Freeze first, outside `maintenance`: alongside a background freeze of an older
        // segment when there is one (each on its own core).
        lock.withWriteLock { sealLocked() }
        freezeSealed()
        return try maintenance.withLock { () throws(SearchError) -> UInt64 in
            let (segments, deleted, lsn, next, alreadyOnDisk) = lock.withReadLock { (frozen, tombstones, frozenLSN, nextSegmentNumber, persisted) }
            for segment in segments where !alreadyOnDisk.contains(segment.number) {
                try writeAtomically(name: SearchFormat.segmentFileName(segment.number), UnsafeRawBufferPointer(segment.image))
            }
            let userList = users.withLock { Array($0.users.values) }
            let state = Self.encodeState(lsn: lsn, next: next, segments: segments.map(\.number), tombstones: Array(deleted), users: userList)
            var failure: SearchError?
            state.withUnsafeBytes { raw in
                do throws(SearchError) { try writeAtomically(name: SearchFormat.stateFileName, raw) } catch { failure = error }
            }
            if let failure { throw failure }
            let live = Set(segments.map(\.number))
            for number in alreadyOnDisk where !live.contains(number) {
                do throws(IOError) { try fileSystem.remove(directory + "/" + SearchFormat.segmentFileName(number)) } catch { throw .io(error) }
            }
            do throws(IOError) { try fileSystem.syncDirectory(directory) } catch { throw .io(error) }
            lock.withWriteLock {
                persisted = live
                checkpointed = lsn
            }
            return lsn
        }
    }

    private func writeAtomically(name: String, _ bytes: UnsafeRawBufferPointer) throws(SearchError) {
        let path = directory + "/" + name
        let temporary = path + SearchFormat.temporarySuffix
        do throws(IOError) {
            try fileSystem.replaceAtomically(path, with: bytes, temporary: temporary, directory: directory)
        } catch {
            throw .io(error)
        }
    }

    static func encodeState(lsn: UInt64, next: UInt64, segments: [UInt64], tombstones: [UInt64], users: [SearchUser]) -> [UInt8] {
        var out = SearchFormat.stateMagic
        out.appendLE(SearchFormat.stateFormatVersion)
        out.appendLE(UInt32(0))
        out.appendLE(lsn)
        out.appendLE(next)
        out.appendLE(UInt64(segments.count))
        out.appendLE(UInt64(tombstones.count))
        out.appendLE(UInt64(users.count))
        out.appendLE(UInt64(0))
        for s in segments { out.appendLE(s) }
        for t in tombstones.sorted() { out.appendLE(t) }
        for user in users.sorted(by: { $0.id < $1.id }) {
            out.appendLE(user.id)
            out.appendLE(user.followers)
            for text in [user.handle, user.displayName] {
                Varint.append(UInt64(text.utf8.count), to: &out)
                out.append(contentsOf: text.utf8)
            }
        }
        out.appendLE(out.withUnsafeBytes { Checksum.xxh3($0, seed: SearchFormat.stateSeed) })
        return out
    }

    static func decodeState(_ raw: UnsafeRawBufferPointer) -> (lsn: UInt64, next: UInt64, segments: [UInt64], tombstones: [UInt64], users: [SearchUser])? {
        guard raw.count >= 72, SearchFormat.stateMagic.elementsEqual(raw[0..<8]), raw.loadLE(UInt32.self, at: 8) == SearchFormat.stateFormatVersion,
              Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 8)]), seed: SearchFormat.stateSeed) == raw.loadLE(UInt64.self, at: raw.count - 8)
        else { return nil }
        let end = raw.count - 8
        let s = raw.loadLE(UInt64.self, at: 32)
        let d = raw.loadLE(UInt64.self, at: 40)
        let u = raw.loadLE(UInt64.self, at: 48)
        guard s < UInt64(end), d < UInt64(end), u < UInt64(end), 64 + Int(s + d) * 8 <= end else { return nil }
        var offset = 64
        var segments: [UInt64] = []
        for _ in 0..<s { segments.append(raw.loadLE(UInt64.self, at: offset)); offset += 8 }
        var tombstones: [UInt64] = []
        for _ in 0..<d { tombstones.append(raw.loadLE(UInt64.self, at: offset)); offset += 8 }
        var users: [SearchUser] = []
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        for _ in 0..<u {
            guard offset + 16 <= end else { return nil }
            let id = raw.loadLE(UInt64.self, at: offset)
            let followers = raw.loadLE(UInt64.self, at: offset + 8)
            offset += 16
            var texts: [String] = []
            for _ in 0..<2 {
                guard let (n, next) = Varint.read(from: body, at: offset), n <= UInt64(end - next) else { return nil }
                let bytes = UnsafeRawBufferPointer(rebasing: body[next..<(next + Int(n))])
                guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else { return nil }
                texts.append(text)
                offset = next + Int(n)
            }
            users.append(SearchUser(id: id, handle: texts[0], displayName: texts[1], followers: followers))
        }
        guard offset == end else { return nil }
        return (raw.loadLE(UInt64.self, at: 16), raw.loadLE(UInt64.self, at: 24), segments, tombstones, users)
    }

    // MARK: Background work

    private func startWorker() {
        // Not `[weak self]`: a weak reference gives the index a side table, and then every
        // retain and release of it (several per query and per add) takes the runtime's slow
        // path (~50-90 instructions each; a tenth of a rare term's query). The worker never
        // holds the index alive: `deinit` and `close` stop and join it first, and the index's
        // storage lasts until `deinit` returns.
        worker = BackgroundThread { [unowned(unsafe) self] in
            while true {
                let proceed = self.signal.withLock { () -> Bool in
                    while !self.workPending && !self.stopping { self.signal.wait() }
                    self.workPending = false
                    return !self.stopping
                }
                if !proceed { return }
                self.runMaintenance()
            }
        }
    }

    private func stopWorker() {
        guard let worker else { return }
        signal.withLock {
            stopping = true
            signal.broadcast()
        }
        worker.join()
        self.worker = nil
    }

    /// Stops the background thread (pending work stays in memory; `checkpoint()` first to keep it).
    public func close() { stopWorker() }

    // MARK: Statistics

    public struct Statistics: Sendable {
        public var frozenSegments = 0
        public var sealedSegments = 0
        public var activeDocuments = 0
        public var frozenDocuments = 0
        public var frozenPostings = 0
        /// Bytes of the frozen postings sections (document lists with their block directories).
        public var frozenPostingsBytes = 0
        public var frozenPositionsBytes = 0
        public var frozenFileBytes = 0
        public var frozenTerms = 0
        public var activePostings = 0
        public var tombstones = 0
        public var appliedLSN: UInt64 = 0
        public var checkpointLSN: UInt64 = 0
    }

    public func statistics() -> Statistics {
        lock.withReadLock {
            var s = Statistics()
            s.frozenSegments = frozen.count
            s.sealedSegments = sealed.count
            s.activeDocuments = active.documentCount + sealed.reduce(0) { $0 + $1.segment.documentCount }
            s.activePostings = active.postingCount + sealed.reduce(0) { $0 + $1.segment.postingCount }
            for f in frozen {
                s.frozenDocuments += f.documentCount
                s.frozenPostings += f.postingCount
                s.frozenPostingsBytes += f.postingsBytes - PostingCodec.paddingBytes
                s.frozenPositionsBytes += f.positionsBytes - PostingCodec.paddingBytes
                s.frozenFileBytes += f.fileBytes
                s.frozenTerms += f.termCount
            }
            s.tombstones = tombstones.count
            s.appliedLSN = applied
            s.checkpointLSN = checkpointed
            return s
        }
    }
}
