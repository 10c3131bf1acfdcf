// `socialdb-bench search`: the search index against SQLite FTS5 (issue 6).
//
// The same synthetic tweets go into both, in the same run: a Zipf(1.0) vocabulary of 50,000
// pseudo-words, 6-20 words per tweet, a hashtag in 20% of tweets (Zipf over 2,000 tags), a
// mention in 30% (Zipf over 20,000 handles), 20,000 authors; 100,000 tweets at `small`,
// 1,000,000 at `medium`, 10,000,000 at `large`. Tweet ids are snowflakes in posting order.
//
// socialdb: `SearchIndex` with background freezing and merging; indexing time includes the final
// checkpoint (freeze, write, fdatasync). SQLite: a contentless FTS5 table
// `fts5(body, author, content='', tokenize="unicode61 remove_diacritics 2 tokenchars '#@'")`, rowid
// = tweet id, WAL, synchronous=NORMAL, transactions of 10,000 tweets; queries
// `SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid DESC LIMIT 20`.
// Query rows: newest 20 for a rare term (Zipf rank 5,000-50,000), a common term (rank 1-20), two
// terms AND (ranks 10-300), two terms OR (ranks 100-2,000), a two-word phrase taken from a
// generated tweet, a hashtag (tag rank 1-100), from:author + a term (rank 1-200).
import CSQLite
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

struct SearchSuite {
    static let name = "search"

    struct Sizes {
        var tweets: Int
        var queries = 2_000
        var sqliteQueries = 400
        init(_ scale: Scale) {
            switch scale {
            case .small: tweets = 100_000
            case .medium: tweets = 1_000_000
            case .large: tweets = 10_000_000
            }
        }
    }

    let fileSystem: FileSystem
    let scratch: ScratchSpace
    let sizes: Sizes

    struct Failure: Error, CustomStringConvertible { var description: String }

    // MARK: Synthetic tweets

    struct Corpus {
        var words: [String]
        var tags: [String]
        var handles: [String]
        var tweets: [(id: UInt64, author: Int, text: String)]
    }

    struct Zipf {
        var cdf: [Double]
        init(count: Int, exponent: Double = 1.0) {
            var sum = 0.0
            cdf = (1...count).map { r in sum += 1 / pow(Double(r), exponent); return sum }
            cdf = cdf.map { $0 / sum }
        }
        func sample(_ rng: inout Xorshift) -> Int { index(rng.unit()) }
        /// The rank whose cumulative probability first reaches `u` (0 ..< 1).
        func index(_ u: Double) -> Int {
            var low = 0
            var high = cdf.count - 1
            while low < high {
                let mid = (low + high) >> 1
                if cdf[mid] < u { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }

    struct Xorshift {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func pseudoWord(_ i: Int, prefix: String = "") -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        var s = prefix
        var v = i + 26
        while v > 0 {
            s.append(letters[v % 26])
            v /= 26
        }
        return s + "o"
    }

    static func corpus(tweets count: Int, seed: UInt64) -> Corpus {
        var rng = Xorshift(state: seed)
        let words = (0..<50_000).map { pseudoWord($0) }
        let tags = (0..<2_000).map { pseudoWord($0, prefix: "t") }
        let handles = (0..<20_000).map { "u" + String($0) }
        let wordZipf = Zipf(count: words.count)
        let tagZipf = Zipf(count: tags.count)
        let userZipf = Zipf(count: handles.count)
        var tweets: [(id: UInt64, author: Int, text: String)] = []
        tweets.reserveCapacity(count)
        var ms: UInt64 = 10_000_000
        for _ in 0..<count {
            ms += 1 + UInt64(rng.below(2))
            let id = Snowflake(millisecondsSinceEpoch: ms, node: 1, sequence: UInt16(rng.below(4096))).rawValue
            var parts: [String] = []
            for _ in 0..<(6 + rng.below(15)) { parts.append(words[wordZipf.sample(&rng)]) }
            if rng.below(10) < 2 { parts.insert("#" + tags[tagZipf.sample(&rng)], at: rng.below(parts.count + 1)) }
            if rng.below(10) < 3 { parts.insert("@" + handles[userZipf.sample(&rng)], at: 0) }
            let author = rng.below(handles.count)
            if let last = tweets.last, last.id >= id { continue }
            tweets.append((id, author, parts.joined(separator: " ")))
        }
        return Corpus(words: words, tags: tags, handles: handles, tweets: tweets)
    }

    // MARK: Queries

    enum Kind: String, CaseIterable {
        case rare = "rare term", common = "common term", and = "two-term AND", or = "two-term OR", phrase = "phrase",
             hashtag = "hashtag", fromTerm = "from: + term"
    }

    /// (socialdb query, FTS5 MATCH expression) pairs of a kind.
    static func queries(_ kind: Kind, corpus: Corpus, count: Int, seed: UInt64) -> [(String, String)] {
        var rng = Xorshift(state: seed)
        func word(_ low: Int, _ high: Int) -> String { corpus.words[low + rng.below(high - low)] }
        return (0..<count).map { _ in
            switch kind {
            case .rare:
                let w = word(5_000, 50_000)
                return (w, "body:\(w)")
            case .common:
                let w = word(0, 20)
                return (w, "body:\(w)")
            case .and:
                let a = word(10, 300), b = word(10, 300)
                return ("\(a) \(b)", "body:\(a) AND body:\(b)")
            case .or:
                let a = word(100, 2_000), b = word(100, 2_000)
                return ("\(a) OR \(b)", "body:\(a) OR body:\(b)")
            case .phrase:
                let t = corpus.tweets[rng.below(corpus.tweets.count)].text.split(separator: " ").filter { !$0.hasPrefix("#") && !$0.hasPrefix("@") }
                let i = rng.below(max(1, t.count - 1))
                let p = "\(t[i]) \(t[min(i + 1, t.count - 1)])"
                return ("\"\(p)\"", "body:\"\(p)\"")
            case .hashtag:
                let tag = corpus.tags[rng.below(100)]
                return ("#\(tag)", "body:\"#\(tag)\"")
            case .fromTerm:
                let author = corpus.handles[rng.below(corpus.handles.count / 20)]
                let w = word(0, 200)
                return ("from:\(author) \(w)", "author:\(author) AND body:\(w)")
            }
        }
    }

    // MARK: Run

    func run() throws -> SuiteResult {
        var result = SuiteResult()
        let progress = ProgressBar("generating tweets", total: 1)
        let corpus = Self.corpus(tweets: sizes.tweets, seed: 0x5EA2C4)
        progress.finish()
        let n = corpus.tweets.count
        let label = n >= 1_000_000 ? "\(n / 1_000_000)M tweets" : "\(n / 1000)k tweets"

        // socialdb: index.
        let directory = try scratch.freshDirectory("search-socialdb")
        let index = try SearchIndex.open(directory: directory, fileSystem: fileSystem)
        let bar = ProgressBar("socialdb indexing", total: n)
        let start = monotonicNanoseconds()
        var lsn: UInt64 = 0
        for (i, t) in corpus.tweets.enumerated() {
            lsn += 1
            let record = TweetRecord(id: t.id, author: UInt64(t.author), time: Snowflake(rawValue: t.id).unixMilliseconds, text: t.text)
            index.add(tweet: record, authorHandle: corpus.handles[t.author], lsn: lsn)
            if i & 4095 == 0 { bar.update(done: i) }
        }
        try index.checkpoint()
        let indexSeconds = seconds(from: start, to: monotonicNanoseconds())
        bar.finish()
        index.runMaintenance()
        let stats = index.statistics()
        let bytesPerPosting = Double(stats.frozenPostingsBytes) / Double(max(1, stats.frozenPostings))
        let positionBytesPerPosting = Double(stats.frozenPositionsBytes) / Double(max(1, stats.frozenPostings))

        // SQLite FTS5: index.
        let sqliteDirectory = try scratch.freshDirectory("search-sqlite")
        let fts = try FTS5(path: sqliteDirectory + "/fts.db")
        let sqliteBar = ProgressBar("FTS5 indexing", total: n)
        let sqliteStart = monotonicNanoseconds()
        try fts.exec("BEGIN")
        for (i, t) in corpus.tweets.enumerated() {
            try fts.insert(rowid: Int64(bitPattern: t.id), body: t.text, author: corpus.handles[t.author])
            if i % 10_000 == 9_999 {
                try fts.exec("COMMIT")
                try fts.exec("BEGIN")
                sqliteBar.update(done: i)
            }
        }
        try fts.exec("COMMIT")
        try fts.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        let sqliteSeconds = seconds(from: sqliteStart, to: monotonicNanoseconds())
        sqliteBar.finish()
        let sqliteBytes = fileBytes(sqliteDirectory)

        let ours = Double(n) / indexSeconds
        let theirs = Double(n) / sqliteSeconds
        result.rows.append(ResultRow(suite: Self.name, workload: "\(label): index", system: "socialdb", operationsPerSecond: ours,
                                     ratioVersusPeer: ours / theirs, metrics: [
                                        Metric(key: "bytes_per_posting", label: "B/posting (docs)", value: bytesPerPosting, decimals: 2),
                                        Metric(key: "position_bytes_per_posting", label: "+positions B", value: positionBytesPerPosting, decimals: 2),
                                        Metric(key: "postings", label: "postings", value: Double(stats.frozenPostings)),
                                        Metric(key: "file_bytes", label: "bytes", value: Double(stats.frozenFileBytes)),
                                        Metric(key: "segments", label: "segments", value: Double(stats.frozenSegments)),
                                     ]))
        result.rows.append(ResultRow(suite: Self.name, workload: "\(label): index", system: "sqlite-fts5", operationsPerSecond: theirs,
                                     metrics: [Metric(key: "file_bytes", label: "bytes", value: Double(sqliteBytes)),
                                               Metric(key: "bytes_per_posting", label: "B/posting (all)", value: Double(sqliteBytes) / Double(max(1, stats.frozenPostings)), decimals: 2)]))
        result.targets.append(TargetCheck(description: "\(label): indexing vs FTS5 >= 5x", measured: ours / theirs, threshold: 5, isRatio: true))
        result.targets.append(TargetCheck(description: "\(label): bytes per posting (frozen, no positions) <= 1.5 (as 1.5/x)",
                                          measured: 1.5 / bytesPerPosting, threshold: 1, isRatio: true))

        // Queries.
        for (k, kind) in Kind.allCases.enumerated() {
            let qs = Self.queries(kind, corpus: corpus, count: sizes.queries, seed: 77 + UInt64(k))
            // socialdb: parse + search, newest 20 (FTS5 parses its MATCH text per query too).
            let parsed = try qs.map { try SearchQuery.parse($0.0) }
            let samples = LatencySamples(capacity: parsed.count)
            var hits = 0
            let qStart = monotonicNanoseconds()
            for q in qs {
                let t0 = monotonicNanoseconds()
                hits += try index.search(q.0, limit: 20).count
                samples.record(nanoseconds: monotonicNanoseconds() - t0)
            }
            let qSeconds = seconds(from: qStart, to: monotonicNanoseconds())
            let ourQPS = Double(parsed.count) / qSeconds
            let ourP = percentiles(of: [samples])
            // FTS5.
            let sqliteSamples = LatencySamples(capacity: sizes.sqliteQueries)
            var sqliteHits = 0
            var agree = 0
            let sStart = monotonicNanoseconds()
            for (i, q) in qs.prefix(sizes.sqliteQueries).enumerated() {
                let t0 = monotonicNanoseconds()
                let ids = try fts.newest(match: q.1, limit: 20)
                sqliteSamples.record(nanoseconds: monotonicNanoseconds() - t0)
                sqliteHits += ids.count
                if i < 50 && ids.map({ UInt64(bitPattern: $0) }) == index.search(parsed[i], limit: 20) { agree += 1 }
            }
            let sSeconds = seconds(from: sStart, to: monotonicNanoseconds())
            let theirQPS = Double(min(qs.count, sizes.sqliteQueries)) / sSeconds
            let theirP = percentiles(of: [sqliteSamples])
            result.rows.append(ResultRow(suite: Self.name, workload: "\(label): newest 20, \(kind.rawValue)", system: "socialdb",
                                         operationsPerSecond: ourQPS, p50Microseconds: ourP?.p50Microseconds, p99Microseconds: ourP?.p99Microseconds,
                                         ratioVersusPeer: ourQPS / theirQPS,
                                         metrics: [Metric(key: "mean_hits", label: "hits", value: Double(hits) / Double(parsed.count), decimals: 1),
                                                   Metric(key: "same_as_fts5_of_50", label: "same as FTS5 /50", value: Double(agree))]))
            result.rows.append(ResultRow(suite: Self.name, workload: "\(label): newest 20, \(kind.rawValue)", system: "sqlite-fts5",
                                         operationsPerSecond: theirQPS, p50Microseconds: theirP?.p50Microseconds, p99Microseconds: theirP?.p99Microseconds,
                                         metrics: [Metric(key: "mean_hits", label: "hits", value: Double(sqliteHits) / Double(min(qs.count, sizes.sqliteQueries)), decimals: 1)]))
            result.targets.append(TargetCheck(description: "\(label): \(kind.rawValue) queries/s vs FTS5 >= 20x", measured: ourQPS / theirQPS, threshold: 20, isRatio: true))
            if let p99 = ourP?.p99Microseconds {
                result.targets.append(TargetCheck(description: "\(label): \(kind.rawValue) p99 < 1 ms (as 1000us/x)", measured: 1000 / p99, threshold: 1, isRatio: true))
            }
        }

        // Time to searchable: add a tweet with a fresh term, query at once.
        let fresh = 2_000
        var visible = 0
        let visSamples = LatencySamples(capacity: fresh)
        var nextID = (corpus.tweets.last?.id ?? 0) + 1
        for i in 0..<fresh {
            lsn += 1
            nextID += 1 << 22
            let term = "fresh\(i)x"
            let t0 = monotonicNanoseconds()
            index.add(tweet: TweetRecord(id: nextID, author: 1, time: 0, text: "breaking \(term) now"), authorHandle: "u1", lsn: lsn)
            if index.search(SearchQuery(clauses: [.init(alternatives: [.init([term])])]), limit: 1) == [nextID] { visible += 1 }
            visSamples.record(nanoseconds: monotonicNanoseconds() - t0)
        }
        var sqliteVisible = 0
        let sqliteVis = LatencySamples(capacity: fresh)
        nextID = (corpus.tweets.last?.id ?? 0) + 1
        for i in 0..<fresh {
            nextID += 1 << 22
            let term = "fresh\(i)x"
            let t0 = monotonicNanoseconds()
            try fts.insert(rowid: Int64(bitPattern: nextID), body: "breaking \(term) now", author: "u1")
            if try fts.newest(match: "body:\(term)", limit: 1) == [Int64(bitPattern: nextID)] { sqliteVisible += 1 }
            sqliteVis.record(nanoseconds: monotonicNanoseconds() - t0)
        }
        let visP = percentiles(of: [visSamples])
        let sqliteVisP = percentiles(of: [sqliteVis])
        result.rows.append(ResultRow(suite: Self.name, workload: "\(label): add then search at once", system: "socialdb",
                                     operationsPerSecond: 1e6 / max(0.001, visP?.p50Microseconds ?? 1), p50Microseconds: visP?.p50Microseconds,
                                     p99Microseconds: visP?.p99Microseconds, ratioVersusPeer: nil,
                                     metrics: [Metric(key: "visible_fraction", label: "seen by next query %", value: 100 * Double(visible) / Double(fresh))]))
        result.rows.append(ResultRow(suite: Self.name, workload: "\(label): add then search at once", system: "sqlite-fts5",
                                     operationsPerSecond: 1e6 / max(0.001, sqliteVisP?.p50Microseconds ?? 1), p50Microseconds: sqliteVisP?.p50Microseconds,
                                     p99Microseconds: sqliteVisP?.p99Microseconds,
                                     metrics: [Metric(key: "visible_fraction", label: "seen by next query %", value: 100 * Double(sqliteVisible) / Double(fresh))]))
        result.targets.append(TargetCheck(description: "\(label): time to searchable is zero (share of adds the next query sees, as x/100%)",
                                          measured: Double(visible) / Double(fresh), threshold: 1, isRatio: true))
        index.close()
        fts.close()
        try scratch.discard(directory)
        try scratch.discard(sqliteDirectory)
        result.notes += [
            "ratio vs peer = socialdb / SQLite FTS5 on the same row. socialdb queries include parsing; FTS5 gets prepared statements.",
            "B/posting (docs): frozen postings sections (gap blocks + skip directories) over document-term pairs, positions apart.",
            "same as FTS5 /50: of the first 50 queries, how many returned the same 20 ids in the same order as FTS5.",
            "Xapian: not measured (libxapian is not linked into this benchmark yet).",
            "hits can differ from FTS5 where a hashtag body equals a word: socialdb indexes #tag also as the word tag.",
            "add then search at once: latency of one add plus the query for its fresh term; ops/s there is 1/p50.",
        ]
        return result
    }

    /// `search-profile`: indexes `tweets` synthetic tweets (checkpointed into `directory`), then
    /// runs `queries` queries of one kind (a `Kind` raw value or its first word: rare, common,
    /// two-term, ..., or `index` for indexing alone) and prints their time, hits and a
    /// checksum of every result list.
    static func profile(tweets: Int, kind name: String, queries: Int, directory: String, withFTS5: Bool = false) throws {
        let corpus = Self.corpus(tweets: tweets, seed: 0x5EA2C4)
        let fileSystem = try FileSystem(backend: .posix)
        try? SearchIndex.removeFiles(directory: directory, fileSystem: fileSystem)
        let index = try SearchIndex.open(directory: directory, fileSystem: fileSystem)
        var start = monotonicNanoseconds()
        var cpu = processCPUSeconds()
        try runProfileIndex(index, corpus)
        var elapsed = seconds(from: start, to: monotonicNanoseconds())
        let ourCPU = processCPUSeconds() - cpu
        print("indexed \(corpus.tweets.count) tweets in \(elapsed) s, \(Format.grouped(Double(corpus.tweets.count) / elapsed)) tweets/s, "
              + "\(ourCPU) CPU s (all threads), \(Format.grouped(Double(corpus.tweets.count) / ourCPU)) tweets per CPU second")
        index.runMaintenance()
        defer { index.close() }
        let stats = index.statistics()
        print("frozen: \(stats.frozenSegments) segments, \(stats.frozenPostings) postings, "
              + "\(Format.grouped(Double(stats.frozenPostingsBytes) / Double(max(1, stats.frozenPostings)), decimals: 3)) bytes per posting (documents), "
              + "\(Format.grouped(Double(stats.frozenPositionsBytes) / Double(max(1, stats.frozenPostings)), decimals: 3)) (positions)")
        let kinds = Kind.allCases.enumerated().filter { $0.element.rawValue == name || $0.element.rawValue.hasPrefix(name + " ") || name == "all" }
        guard !kinds.isEmpty || name == "index" else { throw Failure(description: "unknown kind \(name)") }
        var fts: FTS5?
        if withFTS5 {
            try? fileSystem.removeTree(directory + "-fts5")
            try fileSystem.makeDirectory(directory + "-fts5")
            let f = try FTS5(path: directory + "-fts5/fts.db")
            start = monotonicNanoseconds()
            cpu = processCPUSeconds()
            try runProfileIndexFTS5(f, corpus)
            elapsed = seconds(from: start, to: monotonicNanoseconds())
            let theirCPU = processCPUSeconds() - cpu
            print("  fts5: indexed in \(elapsed) s, \(Format.grouped(Double(corpus.tweets.count) / elapsed)) tweets/s, \(theirCPU) CPU s, "
                  + "\(Format.grouped(Double(corpus.tweets.count) / theirCPU)) tweets per CPU second; socialdb/FTS5 per CPU second \(theirCPU / ourCPU)")
            fts = f
        }
        defer { fts?.close() }
        for (k, kind) in kinds {
            let pairs = Self.queries(kind, corpus: corpus, count: 2_000, seed: 77 + UInt64(k))
            let texts = pairs.map { $0.0 }
            start = monotonicNanoseconds()
            let (hits, checksum) = try runProfileQueries(index, texts, count: queries)
            elapsed = seconds(from: start, to: monotonicNanoseconds())
            print("\(kind.rawValue): \(queries) queries in \(elapsed) s, \(Format.grouped(Double(queries) / elapsed)) queries/s, "
                  + "hits \(hits), checksum \(String(checksum, radix: 16))")
            if let fts {
                start = monotonicNanoseconds()
                let ftsHits = try runProfileFTS5(fts, pairs.map { $0.1 }, count: queries)
                elapsed = seconds(from: start, to: monotonicNanoseconds())
                print("  fts5: \(queries) queries in \(elapsed) s, \(Format.grouped(Double(queries) / elapsed)) queries/s, hits \(ftsHits)")
            }
        }
    }

    /// The suite's socialdb indexing (adds, then the checkpoint), a function of its own for
    /// callgrind (`--toggle-collect='*runProfileIndex*'`; background freezes run on the index's
    /// thread and are counted only with the whole program).
    @inline(never)
    static func runProfileIndex(_ index: SearchIndex, _ corpus: Corpus) throws {
        for (i, t) in corpus.tweets.enumerated() {
            let record = TweetRecord(id: t.id, author: UInt64(t.author), time: Snowflake(rawValue: t.id).unixMilliseconds, text: t.text)
            index.add(tweet: record, authorHandle: corpus.handles[t.author], lsn: UInt64(i + 1))
        }
        try index.checkpoint()
    }

    /// The suite's FTS5 indexing (transactions of 10,000, then a WAL checkpoint).
    @inline(never)
    static func runProfileIndexFTS5(_ f: FTS5, _ corpus: Corpus) throws {
        try f.exec("BEGIN")
        for (i, t) in corpus.tweets.enumerated() {
            try f.insert(rowid: Int64(bitPattern: t.id), body: t.text, author: corpus.handles[t.author])
            if i % 10_000 == 9_999 {
                try f.exec("COMMIT")
                try f.exec("BEGIN")
            }
        }
        try f.exec("COMMIT")
        try f.exec("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// CPU time of the whole process (every thread), seconds.
    static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// The same kind's queries in FTS5 (a function of its own for callgrind, like
    /// `runProfileQueries`; `--toggle-collect='*runProfile*'` collects both).
    @inline(never)
    static func runProfileFTS5(_ fts: FTS5, _ matches: [String], count: Int) throws -> Int {
        var hits = 0
        for i in 0..<count { hits += try fts.newest(match: matches[i % matches.count], limit: 20).count }
        return hits
    }

    /// One kind's queries (parse and search, as the suite times them); a function of its own so
    /// that callgrind can collect and dump exactly it (`--toggle-collect='*runProfileQueries*'`).
    @inline(never)
    static func runProfileQueries(_ index: SearchIndex, _ texts: [String], count: Int) throws -> (hits: Int, checksum: UInt64) {
        var hits = 0
        var checksum: UInt64 = 0
        for i in 0..<count {
            let ids = try index.search(texts[i % texts.count], limit: 20)
            hits += ids.count
            for id in ids { checksum = (checksum &* 0x100000001B3) ^ id }
        }
        return (hits, checksum)
    }

    func fileBytes(_ directory: String) -> Int {
        guard let names = try? fileSystem.listDirectory(directory) else { return 0 }
        var total = 0
        for name in names {
            var st = stat()
            if stat(directory + "/" + name, &st) == 0 { total += Int(st.st_size) }
        }
        return total
    }
}

/// One SQLite connection with a contentless FTS5 table and prepared statements.
final class FTS5 {
    var db: OpaquePointer?
    var insertStatement: OpaquePointer?
    var queryStatement: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw SearchSuite.Failure(description: "sqlite open \(path)") }
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=NORMAL")
        try exec("CREATE VIRTUAL TABLE t USING fts5(body, author, content='', tokenize=\"unicode61 remove_diacritics 2 tokenchars '#@'\")")
        insertStatement = try prepare("INSERT INTO t(rowid, body, author) VALUES (?, ?, ?)")
        queryStatement = try prepare("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid DESC LIMIT ?")
    }

    func close() {
        sqlite3_finalize(insertStatement)
        sqlite3_finalize(queryStatement)
        sqlite3_close(db)
    }

    func exec(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "?"
            sqlite3_free(message)
            throw SearchSuite.Failure(description: "sqlite: \(text) in \(sql)")
        }
    }

    func prepare(_ sql: String) throws -> OpaquePointer {
        var s: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK, let s else {
            throw SearchSuite.Failure(description: "sqlite prepare: \(String(cString: sqlite3_errmsg(db)))")
        }
        return s
    }

    func insert(rowid: Int64, body: String, author: String) throws {
        let s = insertStatement
        sqlite3_reset(s)
        sqlite3_bind_int64(s, 1, rowid)
        sqlite3_bind_text(s, 2, body, -1, socialdb_sqlite_transient())
        sqlite3_bind_text(s, 3, author, -1, socialdb_sqlite_transient())
        guard sqlite3_step(s) == SQLITE_DONE else { throw SearchSuite.Failure(description: "fts5 insert: \(String(cString: sqlite3_errmsg(db)))") }
    }

    func newest(match: String, limit: Int) throws -> [Int64] {
        let s = queryStatement
        sqlite3_reset(s)
        sqlite3_bind_text(s, 1, match, -1, socialdb_sqlite_transient())
        sqlite3_bind_int64(s, 2, Int64(limit))
        var out: [Int64] = []
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_ROW { out.append(sqlite3_column_int64(s, 0)); continue }
            if rc == SQLITE_DONE { break }
            throw SearchSuite.Failure(description: "fts5 query \(match): \(String(cString: sqlite3_errmsg(db)))")
        }
        return out
    }
}
