// The seeded workload of the `social` suite (issue 9): users, a follow graph shaped like
// twitter-2010, tweets with realistic lengths, a Zipf vocabulary, hashtags, mentions, URLs,
// replies and retweets on a time axis. Same seed, same data.
//
// The parent process generates once and writes files that both systems' child processes read:
//   follows.txt        "follower followee" per line (socialdb IMPORT FOLLOWS, SQLite's loader)
//   tweets-NNN.jsonl   Twitter API v1.1 objects, 50,000 a file (socialdb IMPORT TWEETS)
//   tweets.tsv         id, author, unix ms, reply_to, retweet_of, text (SQLite's loader)
//   ids.bin            every tweet id, u64 little-endian (what likes pick from)
// so that the generator's memory is in neither system's peak RSS.
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

/// How much data and time a scale means.
struct SocialSizes: Sendable {
    var users: Int
    var tweetsPerUser: Int
    /// Seconds of each timed mix row.
    var seconds: Double
    var burstPosters: Int
    /// An edge list to load as the follow graph (both directions of each edge) instead of the
    /// synthetic graph; `users` is then the file's.
    var graphFile: String? = nil

    var tweets: Int { users * tweetsPerUser }
    /// The plot file's and the charts' name for this data.
    func plotName(_ scale: Scale) -> String { graphFile == nil ? scale.rawValue : scale.rawValue + "-reed98" }

    init(_ scale: Scale) {
        switch scale {
        case .small: users = 10_000; tweetsPerUser = 10; seconds = 3; burstPosters = 32
        case .medium: users = 100_000; tweetsPerUser = 10; seconds = 5; burstPosters = 64
        case .large: users = 1_000_000; tweetsPerUser = 10; seconds = 5; burstPosters = 64
        }
    }

    init(users: Int, tweetsPerUser: Int, seconds: Double, burstPosters: Int) {
        self.users = users
        self.tweetsPerUser = tweetsPerUser
        self.seconds = seconds
        self.burstPosters = burstPosters
    }
}

/// The vocabulary and the text maker, shared by the generator (the loaded tweets) and the
/// children (the texts they post): a Zipf(1.0) distribution over 50,000 pseudo-words, 5,000
/// hashtags (Zipf), mentions of users by popularity, t.co-style URLs.
struct SocialText: Sendable {
    static let wordCount = 50_000
    static let tagCount = 5_000
    let words: [String]
    let tags: [String]
    private let wordZipf: SearchSuite.Zipf
    private let tagZipf: SearchSuite.Zipf
    let users: Int

    init(users: Int) {
        self.users = users
        words = (0..<Self.wordCount).map { SearchSuite.pseudoWord($0) }
        tags = (0..<Self.tagCount).map { SearchSuite.pseudoWord($0, prefix: "t") }
        wordZipf = SearchSuite.Zipf(count: Self.wordCount)
        tagZipf = SearchSuite.Zipf(count: Self.tagCount)
    }

    func word(_ random: inout BenchRandom) -> String { words[wordZipf.index(random.unit())] }
    func tag(_ random: inout BenchRandom) -> String { tags[tagZipf.index(random.unit())] }

    /// A user by popularity: the rank distribution of the follow graph's followees (density
    /// ~ rank^(-2/3)), mapped to user numbers as `BenchGraph.synthetic` maps them.
    func popularUser(_ random: inout BenchRandom) -> Int {
        let x = random.unit()
        return SocialWorld.userNumber(rank: min(users - 1, Int(Double(users) * x * x * x)), users: users)
    }

    /// A tweet's text: log-normal word count (median about 7 words, a long tail up to the
    /// 280-character limit), a hashtag in 15% (two in 3%), a mention in 20%, a URL in 10%;
    /// `replyTo` (a handle) starts it with the mention a reply carries.
    func text(_ random: inout BenchRandom, replyTo: String? = nil) -> String {
        var parts: [String] = []
        if let replyTo { parts.append("@" + replyTo) }
        // Box-Muller: a normal deviate, then exp for the log-normal word count.
        let u1 = max(1e-12, random.unit())
        let u2 = random.unit()
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        let count = max(1, min(50, Int(exp(2.0 + 0.6 * normal))))
        for _ in 0..<count { parts.append(word(&random)) }
        let roll = random.below(100)
        if roll < 15 { parts.insert("#" + tag(&random), at: random.below(parts.count + 1)) }
        if roll < 3 { parts.append("#" + tag(&random)) }
        if random.below(100) < 20 { parts.insert("@u" + String(popularUser(&random)), at: random.below(parts.count + 1)) }
        if random.below(100) < 10 {
            var url = "https://t.co/"
            for _ in 0..<10 { url.append(Character(Unicode.Scalar(UInt8(97 + random.below(26))))) }
            parts.append(url)
        }
        var text = parts.joined(separator: " ")
        while text.utf8.count > 280, parts.count > 1 {
            parts.removeLast(parts.count > 2 ? 2 : 1)
            text = parts.joined(separator: " ")
        }
        return text
    }
}

extension BenchRandom {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The generated world, written to files. Users are `u0` ... `u<N-1>`; user number = the number
/// in the handle.
struct SocialWorld {
    static let seed: UInt64 = 0x50C1_A1DB
    /// The time axis: 30 days of tweets ending at 2026-11-01 00:00 UTC, with a day/night rhythm.
    static let endUnixMilliseconds: UInt64 = 1_793_491_200_000
    static let spanMilliseconds: UInt64 = 30 * 86_400_000

    static func userNumber(rank: Int, users: Int) -> Int {
        Int((UInt64(rank) &* 2_654_435_761) % UInt64(users))
    }

    struct Summary: Sendable {
        var users: Int
        var follows: Int
        var tweets: Int
        var originals: Int
        var replies: Int
        var retweets: Int
        var meanTextBytes: Double
        var maxFollowers: Int
        var celebrities: Int
        var tweetFiles: Int
        var generateSeconds: Double
    }

    /// Generates everything into `directory` and returns what it made.
    static func generate(sizes: SocialSizes, into directory: String, celebrityThreshold: Int = 10_000) throws -> Summary {
        let started = monotonicNanoseconds()
        // The graph: the edge list given (socfb-Reed98), else BenchGraph.synthetic (mean 35
        // followees, followees by rank^(-2/3), ranks permuted over the numbers with the
        // multiplier userNumber uses).
        let graph = try sizes.graphFile.map { try BenchGraph.load(edgesFile: $0) }
            ?? BenchGraph.synthetic(users: sizes.users, meanFollowees: 35, seed: seed)
        precondition(graph.users == sizes.users, "the suite sizes the users to the graph file")
        let users = sizes.users
        var maxFollowers = 0
        var celebrities = 0
        do {
            let out = try TextWriter(directory + "/follows.txt")
            for u in 0..<users {
                let f = graph.followerCount(of: UInt32(u))
                maxFollowers = max(maxFollowers, f)
                if f >= celebrityThreshold { celebrities += 1 }
                for b in graph.followees(of: UInt32(u)) {
                    out.write(String(u)); out.write(" "); out.write(String(b)); out.write("\n")
                }
            }
            try out.close()
        }

        let text = SocialText(users: users)
        var random = BenchRandom(seed: seed ^ 0x7EE7)
        let count = sizes.tweets
        var ids = ContiguousArray<UInt64>()
        ids.reserveCapacity(count)
        var authors = ContiguousArray<UInt32>()
        authors.reserveCapacity(count)
        // Originals' texts for the retweets' nested copies: only a recent window is retweeted.
        let window = 4096
        var recentText = [String](repeating: "", count: window)
        var recentIndex = [Int](repeating: -1, count: window)
        var recentRetweeters = Set<UInt64>()
        var summary = Summary(users: users, follows: graph.edges, tweets: 0, originals: 0, replies: 0, retweets: 0,
                              meanTextBytes: 0, maxFollowers: maxFollowers, celebrities: celebrities,
                              tweetFiles: 0, generateSeconds: 0)
        var textBytes = 0
        let tsv = try TextWriter(directory + "/tweets.tsv")
        var json: TextWriter?
        let perFile = 50_000
        var lastMs: UInt64 = 0
        var sequence: UInt16 = 0
        var ms = Double(endUnixMilliseconds - spanMilliseconds)
        let meanGap = Double(spanMilliseconds) / Double(max(1, count))
        for i in 0..<count {
            if i % perFile == 0 {
                try json?.close()
                json = try TextWriter(directory + "/tweets-" + String(summary.tweetFiles) + ".jsonl")
                summary.tweetFiles += 1
            }
            // Day/night: the rate swings by +-60% over 24 hours.
            let dayPhase = (ms.truncatingRemainder(dividingBy: 86_400_000)) / 86_400_000
            let rate = 1 + 0.6 * sin(2 * Double.pi * dayPhase)
            ms += -log(max(1e-12, random.unit())) * meanGap / rate
            var unix = UInt64(ms)
            if unix <= lastMs { unix = lastMs; sequence &+= 1 } else { sequence = 0 }
            if sequence >= 4096 { unix += 1; sequence = 0 }
            lastMs = unix
            ms = max(ms, Double(unix))
            let id = Snowflake(millisecondsSinceEpoch: unix - Snowflake.epochMilliseconds, node: 1, sequence: sequence).rawValue
            // Active accounts post more: authors by rank^(-1/2) (x squared).
            let x = random.unit()
            let author = userNumber(rank: min(users - 1, Int(Double(users) * x * x)), users: users)
            let roll = random.below(100)
            var replyTo: UInt64 = 0
            var retweetOf: UInt64 = 0
            var body: String
            var nested: (index: Int, text: String)?
            if roll < 15 && i > 100 {
                // A retweet of a recent original (not a retweet, not one this user retweeted).
                let slot = random.below(min(window, i))
                let index = recentIndex[(i - 1 - slot) % window]
                let key = UInt64(author) << 32 | UInt64(max(0, index))
                if index >= 0, recentRetweeters.insert(key).inserted, Int(authors[index]) != author {
                    retweetOf = ids[index]
                    nested = (index, recentText[index % window])
                }
            }
            if retweetOf != 0 {
                body = ""
                summary.retweets += 1
            } else if roll < 35 && i > 100 {
                let parent = i - 1 - random.below(min(window, i))
                replyTo = ids[parent]
                body = text.text(&random, replyTo: "u" + String(authors[parent]))
                summary.replies += 1
            } else {
                body = text.text(&random)
                summary.originals += 1
            }
            ids.append(id)
            authors.append(UInt32(author))
            recentText[i % window] = body
            recentIndex[i % window] = retweetOf == 0 ? i : -1
            textBytes += body.utf8.count
            if recentRetweeters.count > 1_000_000 { recentRetweeters.removeAll(keepingCapacity: true) }

            tsv.write(String(id)); tsv.write("\t"); tsv.write(String(author)); tsv.write("\t"); tsv.write(String(unix))
            tsv.write("\t"); tsv.write(String(replyTo)); tsv.write("\t"); tsv.write(String(retweetOf)); tsv.write("\t")
            tsv.write(body); tsv.write("\n")

            let line = json!
            line.write("{")
            writeObjectFields(line, id: id, unix: unix, author: author)
            if let nested {
                line.write(",\"retweeted_status\":{")
                writeObjectFields(line, id: ids[nested.index], unix: Snowflake(rawValue: ids[nested.index]).unixMilliseconds,
                                  author: Int(authors[nested.index]))
                line.write(",\"full_text\":\""); line.write(nested.text); line.write("\"}")
            } else {
                line.write(",\"full_text\":\""); line.write(body); line.write("\"")
                if replyTo != 0 { line.write(",\"in_reply_to_status_id_str\":\""); line.write(String(replyTo)); line.write("\"") }
            }
            line.write("}\n")
        }
        try json?.close()
        try tsv.close()
        summary.tweets = count
        summary.meanTextBytes = Double(textBytes) / Double(max(1, count - summary.retweets))
        ids.withUnsafeBytes { bytes in
            let fd = open(directory + "/ids.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n <= 0 { break }
                done += n
            }
            Glibc.close(fd)
        }
        summary.generateSeconds = seconds(from: started, to: monotonicNanoseconds())
        return summary
    }

    private static func writeObjectFields(_ out: TextWriter, id: UInt64, unix: UInt64, author: Int) {
        out.write("\"id_str\":\""); out.write(String(id)); out.write("\",\"created_at\":\"")
        out.write(twitterDate(unixMilliseconds: unix))
        out.write("\",\"user\":{\"id_str\":\""); out.write(String(author))
        out.write("\",\"screen_name\":\"u"); out.write(String(author)); out.write("\",\"name\":\"u"); out.write(String(author))
        out.write("\"}")
    }

    /// "Wed Oct 10 20:19:24 +0000 2018", as the v1.1 API writes `created_at`.
    static func twitterDate(unixMilliseconds: UInt64) -> String {
        let seconds = Int(unixMilliseconds / 1000)
        let days = seconds / 86_400
        let rest = seconds % 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int) -> String { v < 10 ? "0" + String(v) : String(v) }
        return weekdays[days % 7] + " " + months[month - 1] + " " + two(day) + " " + two(rest / 3600) + ":"
            + two(rest / 60 % 60) + ":" + two(rest % 60) + " +0000 " + String(year)
    }

    /// Every tweet id of the world, in order.
    static func readIDs(_ directory: String) throws -> [UInt64] {
        let path = directory + "/ids.bin"
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchmarkFailure(description: "cannot open \(path)") }
        defer { Glibc.close(fd) }
        var info = stat()
        fstat(fd, &info)
        var ids = [UInt64](repeating: 0, count: Int(info.st_size) / 8)
        let wanted = ids.count * 8
        let got = ids.withUnsafeMutableBytes { bytes -> Int in
            var done = 0
            while done < wanted {
                let n = read(fd, bytes.baseAddress! + done, wanted - done)
                if n <= 0 { break }
                done += n
            }
            return done
        }
        guard got == wanted else { throw BenchmarkFailure(description: "short read of \(path)") }
        return ids
    }
}

/// Buffered text output to a file (the generator writes hundreds of megabytes).
final class TextWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []
    let path: String

    init(_ path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw BenchmarkFailure(description: "cannot create \(path)") }
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 20 { flush() }
    }

    private func flush() {
        buffer.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                done += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        flush()
        guard Glibc.close(fd) == 0 else { throw BenchmarkFailure(description: "closing \(path) failed") }
    }
}

/// Latencies in a log-linear histogram (HdrHistogram's layout: 64 sub-buckets per power of two,
/// under 1.6% error), fixed size, one per thread: recording is an increment, no allocation.
final class LatencyHistogram: @unchecked Sendable {
    // @unchecked: one recording thread at a time, read after join().
    static let subBits = 6
    static let buckets = (64 - subBits + 1) << subBits
    private let counts: UnsafeMutablePointer<UInt64>
    private(set) var total: UInt64 = 0

    init() {
        counts = .allocate(capacity: Self.buckets)
        counts.initialize(repeating: 0, count: Self.buckets)
    }

    deinit { counts.deallocate() }

    @inline(__always)
    static func index(_ v: UInt64) -> Int {
        if v < UInt64(1 << subBits) { return Int(v) }
        let shift = 63 - v.leadingZeroBitCount - subBits
        return ((shift + 1) << subBits) + Int(v >> UInt64(shift)) - (1 << subBits)
    }

    /// The smallest value of bucket `i` (what percentiles report).
    static func value(_ i: Int) -> UInt64 {
        let group = i >> subBits
        if group == 0 { return UInt64(i) }
        return UInt64((1 << subBits) + (i & ((1 << subBits) - 1))) << UInt64(group - 1)
    }

    @inline(__always)
    func record(nanoseconds: UInt64) {
        counts[Self.index(nanoseconds)] &+= 1
        total &+= 1
    }

    func add(_ other: LatencyHistogram) {
        for i in 0..<Self.buckets { counts[i] &+= other.counts[i] }
        total &+= other.total
    }

    /// The value at quantile `q` (0...1), in microseconds.
    func quantileMicroseconds(_ q: Double) -> Double {
        guard total > 0 else { return 0 }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<Self.buckets {
            seen &+= counts[i]
            if seen >= rank { return Double(Self.value(i)) / 1000 }
        }
        return Double(Self.value(Self.buckets - 1)) / 1000
    }
}
