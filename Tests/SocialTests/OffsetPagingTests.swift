import Social
import StorageEngine
import Testing

/// Offset paging of the home and user timelines (DeathStarBench reads 10 tweets at an offset of
/// 0 to 100): a page at an offset is the same slice of the newest-first list that cursor paging
/// shows, and an offset out of range is `invalid` and changes nothing.
@Suite struct OffsetPagingTests {
    static func ids(_ page: Page<Tweet>) -> [UInt64] { page.items.map(\.id) }

    /// alice and bob post 30 tweets each, carol follows both and posts 5.
    static func seeded() throws -> TestDatabase {
        let t = try TestDatabase()
        for h in ["alice", "bob", "carol"] { try t.db.createUser(handle: h) }
        try t.db.follow("carol", "alice")
        try t.db.follow("carol", "bob")
        for i in 0..<30 {
            try t.db.post(handle: "alice", text: "alice \(i)")
            try t.db.post(handle: "bob", text: "bob \(i)")
            if i % 6 == 0 { try t.db.post(handle: "carol", text: "carol \(i)") }
        }
        return t
    }

    @Test func homeOffsetPagesAreSlicesOfTheTimeline() throws {
        let t = try Self.seeded()
        let all = Self.ids(try t.db.home(handle: "carol", limit: 100))
        #expect(all.count == 65)
        for offset in [0, 1, 9, 10, 37, 55, 64] {
            let page = try t.db.home(handle: "carol", limit: 10, offset: offset)
            let expected = Array(all[offset..<min(all.count, offset + 10)])
            #expect(Self.ids(page) == expected)
            // The cursor continues where the page ends.
            #expect(page.nextCursor == (offset + 10 < all.count ? expected.last : nil))
        }
        #expect(try t.db.home(handle: "carol", limit: 10, offset: 65).items.isEmpty)
        #expect(try t.db.home(handle: "carol", limit: 10, offset: 100).items.isEmpty)
    }

    @Test func userTimelineOffsetPagesAreSlicesOfTheTweets() throws {
        let t = try Self.seeded()
        let all = Self.ids(try t.db.tweets(handle: "alice", limit: 100))
        #expect(all.count == 30)
        for offset in [0, 3, 20, 25, 29] {
            let page = try t.db.tweets(handle: "alice", limit: 10, offset: offset)
            let expected = Array(all[offset..<min(all.count, offset + 10)])
            #expect(Self.ids(page) == expected)
            #expect(page.nextCursor == (offset + 10 < all.count ? expected.last : nil))
        }
        #expect(try t.db.tweets(handle: "alice", limit: 10, offset: 30).items.isEmpty)
    }

    @Test func offsetsOutOfRangeAreInvalid() throws {
        let t = try Self.seeded()
        let capacity = t.db.homeLimitMax
        #expect(throws: SocialError.self) { try t.db.home(handle: "carol", limit: 10, offset: -1) }
        #expect(throws: SocialError.self) { try t.db.home(handle: "carol", limit: 10, offset: capacity - 9) }
        #expect(throws: SocialError.self) { try t.db.tweets(handle: "alice", limit: 10, offset: -1) }
        #expect(throws: SocialError.self) { try t.db.tweets(handle: "alice", limit: 10, offset: SocialDB.offsetMax + 1) }
        do {
            _ = try t.db.home(handle: "carol", limit: 10, offset: capacity)
            Issue.record("an offset past the capacity was accepted")
        } catch {
            #expect(error.code == "invalid")
        }
        // The largest page the capacity allows is accepted.
        #expect(try t.db.home(handle: "carol", limit: 10, offset: capacity - 10).items.isEmpty)
    }
}
