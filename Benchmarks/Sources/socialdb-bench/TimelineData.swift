// The data of the `timeline` suite: a follow graph in CSR form (a seeded synthetic power-law
// graph, or socfb-Reed98), the posts, and the two sources the timeline store reads, over them.
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

/// Followers and followees as compressed sparse rows. Immutable once built, so any number of
/// threads may read it.
final class BenchGraph: FollowerSource, @unchecked Sendable {
    // @unchecked: never mutated after init; the buffers are freed in deinit.
    let users: Int
    let edges: Int
    private let followerOffsets: UnsafeMutablePointer<Int>
    private let followerList: UnsafeMutablePointer<UInt32>
    private let followeeOffsets: UnsafeMutablePointer<Int>
    private let followeeList: UnsafeMutablePointer<UInt32>

    /// From (follower, followee) pairs; duplicates and self-follows must already be gone.
    init(users: Int, follows: ContiguousArray<(UInt32, UInt32)>) {
        self.users = users
        edges = follows.count
        followerOffsets = .allocate(capacity: users + 1)
        followeeOffsets = .allocate(capacity: users + 1)
        followerList = .allocate(capacity: max(1, edges))
        followeeList = .allocate(capacity: max(1, edges))
        followerOffsets.initialize(repeating: 0, count: users + 1)
        followeeOffsets.initialize(repeating: 0, count: users + 1)
        for (a, b) in follows {
            followeeOffsets[Int(a) + 1] += 1
            followerOffsets[Int(b) + 1] += 1
        }
        for u in 0..<users {
            followeeOffsets[u + 1] += followeeOffsets[u]
            followerOffsets[u + 1] += followerOffsets[u]
        }
        var followeeFill = [Int](repeating: 0, count: users)
        var followerFill = [Int](repeating: 0, count: users)
        for (a, b) in follows {
            (followeeList + followeeOffsets[Int(a)] + followeeFill[Int(a)]).initialize(to: b)
            followeeFill[Int(a)] += 1
            (followerList + followerOffsets[Int(b)] + followerFill[Int(b)]).initialize(to: a)
            followerFill[Int(b)] += 1
        }
    }

    deinit {
        followerOffsets.deallocate(); followeeOffsets.deallocate()
        followerList.deallocate(); followeeList.deallocate()
    }

    func followerCount(of user: UInt32) -> Int { followerOffsets[Int(user) + 1] - followerOffsets[Int(user)] }
    func followeeCount(of user: UInt32) -> Int { followeeOffsets[Int(user) + 1] - followeeOffsets[Int(user)] }

    func followers(of user: UInt32) -> UnsafeBufferPointer<UInt32> {
        UnsafeBufferPointer(start: followerList + followerOffsets[Int(user)], count: followerCount(of: user))
    }

    func followees(of user: UInt32) -> UnsafeBufferPointer<UInt32> {
        UnsafeBufferPointer(start: followeeList + followeeOffsets[Int(user)], count: followeeCount(of: user))
    }

    func forEachFollowerBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) { body(followers(of: user)) }
    func forEachFolloweeBatch(of user: UInt32, _ body: (UnsafeBufferPointer<UInt32>) -> Void) { body(followees(of: user)) }

    /// A seeded power-law graph: each user follows 1 + an exponential number (mean `meanFollowees`)
    /// of others, drawn with density proportional to rank^(-2/3) (the rank a uniform number cubed),
    /// so a handful of accounts gather tens of thousands of followers and most have a few.
    static func synthetic(users: Int, meanFollowees: Double, seed: UInt64) -> BenchGraph {
        var random = BenchRandom(seed: seed)
        var follows = ContiguousArray<(UInt32, UInt32)>()
        follows.reserveCapacity(Int(Double(users) * meanFollowees * 1.05))
        var chosen: [UInt32] = []
        // Ranks are mapped to user numbers by a fixed permutation, so the celebrities are
        // spread over the user space (as in a real id space) rather than being users 0, 1, 2.
        // A prime multiplier: i -> i * m mod users is a bijection for any user count below m.
        let multiplier = UInt64(2_654_435_761)
        precondition(users < Int(multiplier), "too many users for the permutation")
        func permuted(_ rank: Int) -> UInt32 { UInt32((UInt64(rank) &* multiplier) % UInt64(users)) }
        for u in 0..<users {
            let uniform = max(1e-12, random.unit())
            let count = min(users - 1, min(5_000, 1 + Int(-log(uniform) * (meanFollowees - 1))))
            chosen.removeAll(keepingCapacity: true)
            let me = permuted(u)
            while chosen.count < count {
                let x = random.unit()
                let rank = min(users - 1, Int(Double(users) * x * x * x))
                let followee = permuted(rank)
                if followee != me && !chosen.contains(followee) { chosen.append(followee) }
            }
            for followee in chosen { follows.append((me, followee)) }
        }
        return BenchGraph(users: users, follows: follows)
    }

    /// socfb-Reed98: one undirected edge a line ("a b", 0-based); each is a follow both ways,
    /// as DeathStarBench registers it.
    static func load(edgesFile path: String) throws -> BenchGraph {
        guard let handle = fopen(path, "r") else { throw BenchmarkFailure(description: "cannot open \(path)") }
        defer { fclose(handle) }
        var follows = ContiguousArray<(UInt32, UInt32)>()
        var seen = Set<UInt64>()
        var users = 0
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, handle) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            guard fields.count >= 2, let x = UInt32(fields[0]), let y = UInt32(fields[1]), x != y else { continue }
            for (f, g) in [(x, y), (y, x)] where seen.insert(UInt64(f) << 32 | UInt64(g)).inserted {
                follows.append((f, g))
            }
            users = max(users, Int(max(x, y)) + 1)
        }
        return BenchGraph(users: users, follows: follows)
    }
}

/// Every author's posts (ids ascending) in CSR form; immutable once built.
final class BenchTweets: AuthorTweetSource, @unchecked Sendable {
    // @unchecked: never mutated after init.
    let posts: ContiguousArray<TimelineItem>
    private let offsets: ContiguousArray<Int>
    private let byAuthor: ContiguousArray<UInt32> // indexes into `posts`, ascending per author

    /// `count` posts by authors drawn uniformly, ids strictly increasing snowflakes (about one
    /// post per millisecond of a synthetic clock).
    init(users: Int, count: Int, seed: UInt64) {
        var random = BenchRandom(seed: seed)
        var posts = ContiguousArray<TimelineItem>()
        posts.reserveCapacity(count)
        var perAuthor = ContiguousArray<Int>(repeating: 0, count: users + 1)
        for i in 0..<count {
            let author = UInt32(random.next() % UInt64(users))
            let id = Snowflake(millisecondsSinceEpoch: 1_000_000 + UInt64(i), node: 1, sequence: UInt16(i & 0xFFF)).rawValue
            posts.append(.post(id: id, author: author))
            perAuthor[Int(author) + 1] += 1
        }
        for u in 0..<users { perAuthor[u + 1] += perAuthor[u] }
        var fill = perAuthor
        var index = ContiguousArray<UInt32>(repeating: 0, count: count)
        for (i, post) in posts.enumerated() {
            index[fill[Int(post.author)]] = UInt32(i)
            fill[Int(post.author)] += 1
        }
        self.posts = posts
        offsets = perAuthor
        byAuthor = index
    }

    func newestItems(of author: UInt32, before: UInt64, limit: Int, into items: inout ContiguousArray<TimelineItem>) {
        let start = offsets[Int(author)]
        var i = offsets[Int(author) + 1] - 1
        var added = 0
        while i >= start && added < limit {
            let post = posts[Int(byAuthor[i])]
            if post.id < before {
                items.append(post)
                added += 1
            }
            i -= 1
        }
    }
}

/// xorshift64*, seeded: the suite's data is the same in every run.
struct BenchRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
