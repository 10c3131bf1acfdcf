import Foundation
import Social
import StorageEngine
import Synchronization
import Testing

/// Many writer and reader threads through the `Social` API at once (issue 10; run under
/// ThreadSanitizer and AddressSanitizer by scripts/sanitize). Writers each own their users, so
/// the final state of everything they did is known: posts (some deleted), follows and unfollows,
/// likes. Readers meanwhile read home timelines, searches, profiles, notifications, trends and
/// check what any read must satisfy (newest first, no duplicates, search hits contain the query).
/// Afterwards every acknowledged write is checked. `SOCIALDB_STRESS_OPS` sets the writes per
/// writer (default 400).
@Suite struct ConcurrentStressTests {
    struct WriterResult: Sendable {
        var alive: [(id: UInt64, author: String, token: String)] = []
        var deleted: [UInt64] = []
        var follows: [String: Bool] = [:] // "a b": whether a follows b at the end
        var likes: [String: Bool] = [:]   // "user id": whether user likes id at the end
    }

    @Test(.timeLimit(.minutes(5))) func readersAndWritersTogether() throws {
        let writers = 4, readers = 4, usersPerWriter = 3
        let ops = environmentValue("SOCIALDB_STRESS_OPS", default: 400)
        let directory = TemporaryDirectory("stress")
        var options = testOptions()
        options.sync = .off
        let db = try SocialDB.open(at: directory.path + "/db", options: options)
        defer { try? db.close() }
        let handles = (0..<writers).map { w in (0..<usersPerWriter).map { "w\(w)u\($0)" } }
        let everyone = handles.flatMap { $0 }
        for h in everyone { _ = try db.createUser(handle: h) }

        let posted = Mutex<[UInt64]>([])
        let problems = Mutex<[String]>([])
        let results = Mutex<[Int: WriterResult]>([:])
        let writing = Atomic<Int>(writers)
        let reads = Atomic<Int>(0)
        @Sendable func problem(_ text: String) { problems.withLock { $0.append(text) } }

        let group = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            group.enter()
            let thread = Thread { body(); group.leave() }
            thread.stackSize = 4 << 20
            thread.start()
        }
        for w in 0..<writers {
            spawn {
                var rng = SystemRandomNumberGenerator()
                var result = WriterResult()
                let mine = handles[w]
                for i in 0..<ops {
                    let u = mine[i % mine.count]
                    do throws(SocialError) {
                        switch i % 8 {
                        case 0, 1, 2:
                            let token = "tok\(w)x\(i)"
                            let tweet = try db.post(handle: u, text: "\(token) hello #stress @\(everyone.randomElement(using: &rng)!)")
                            result.alive.append((tweet.id, u, token))
                            posted.withLock { $0.append(tweet.id) }
                        case 3:
                            let other = everyone.randomElement(using: &rng)!
                            guard other != u else { continue }
                            _ = try db.follow(u, other)
                            result.follows["\(u) \(other)"] = true
                        case 4:
                            let other = everyone.randomElement(using: &rng)!
                            guard other != u, result.follows["\(u) \(other)"] == true else { continue }
                            _ = try db.unfollow(u, other)
                            result.follows["\(u) \(other)"] = false
                        case 5:
                            guard let id = posted.withLock({ $0.randomElement(using: &rng) }) else { continue }
                            do throws(SocialError) {
                                _ = try db.like(handle: u, tweet: id)
                                result.likes["\(u) \(id)"] = true
                            } catch .notFound {
                                // Deleted meanwhile by its author (another thread): refused, fine.
                            }
                        case 6:
                            guard result.alive.count > 4, i % 16 == 6 else { continue }
                            let victim = result.alive.remove(at: Int.random(in: 0..<result.alive.count, using: &rng))
                            try db.delete(handle: victim.author, tweet: victim.id)
                            result.deleted.append(victim.id)
                        default:
                            _ = try db.reply(handle: u, to: result.alive.last?.id ?? 1, text: "reply \(w) \(i)")
                        }
                    } catch .notFound where i % 8 == 7 {
                        // A reply before this writer posted anything: refused, fine.
                    } catch {
                        problem("writer \(w) op \(i): \(error)")
                    }
                }
                results.withLock { $0[w] = result }
                writing.subtract(1, ordering: .releasing)
            }
        }
        for r in 0..<readers {
            spawn {
                var rng = SystemRandomNumberGenerator()
                while writing.load(ordering: .acquiring) > 0 {
                    let u = everyone.randomElement(using: &rng)!
                    do throws(SocialError) {
                        switch reads.add(1, ordering: .relaxed).newValue % 6 {
                        case 0:
                            let page = try db.home(handle: u, limit: 50)
                            let ids = page.items.map(\.id)
                            if ids != ids.sorted(by: >) { problem("reader \(r): HOME \(u) not newest first") }
                            if Set(ids).count != ids.count { problem("reader \(r): HOME \(u) repeats a tweet") }
                        case 1:
                            let page = try db.search("#stress", limit: 30)
                            let ids = page.items.map(\.id)
                            if ids != ids.sorted(by: >) { problem("reader \(r): SEARCH not newest first") }
                            for t in page.items where !t.text.contains("#stress") { problem("reader \(r): SEARCH #stress gave \(t.text)") }
                        case 2:
                            let page = try db.tweets(handle: u, limit: 50)
                            for t in page.items where t.authorHandle.lowercased() != u && t.retweetOf == nil { problem("reader \(r): TWEETS \(u) gave \(t.authorHandle)'s") }
                        case 3:
                            let user = try db.user(handle: u)
                            if user.tweetCount < 0 || user.followerCount < 0 || user.followingCount < 0 { problem("reader \(r): negative count for \(u)") }
                        case 4:
                            _ = try db.notifications(handle: u, limit: 20)
                        default:
                            _ = try db.trends(limit: 5)
                            _ = try db.followers(handle: u, limit: 20)
                        }
                    } catch {
                        problem("reader \(r): \(error)")
                    }
                }
            }
        }
        group.wait()
        let found = problems.withLock { $0 }
        #expect(found.isEmpty, "\(found.count) problems, first: \(found.prefix(5))")
        print("ConcurrentStressTests: \(writers) writers x \(ops) writes, \(readers) readers, \(reads.load(ordering: .relaxed)) reads")

        // Every acknowledged write, checked once the threads are done.
        let all = results.withLock { $0 }
        #expect(all.count == writers)
        var followerCounts: [String: Int] = [:]
        var followingCounts: [String: Int] = [:]
        for (_, result) in all {
            for entry in result.alive {
                let tweet = try? db.tweet(id: entry.id)
                #expect(tweet?.text.hasPrefix(entry.token + " ") == true, "tweet \(entry.id) of \(entry.author)")
                let hits = try db.search(entry.token, limit: 5).items.map(\.id)
                #expect(hits == [entry.id], "SEARCH \(entry.token): \(hits)")
            }
            for id in result.deleted {
                #expect(throws: SocialError.self) { _ = try db.tweet(id: id) }
            }
            for (pair, on) in result.follows {
                let parts = pair.split(separator: " ").map(String.init)
                #expect(try db.follows(parts[0], parts[1]) == on, "follow \(pair)")
                if on { followerCounts[parts[1], default: 0] += 1; followingCounts[parts[0], default: 0] += 1 }
            }
            for (pair, _) in result.likes {
                let parts = pair.split(separator: " ").map(String.init)
                if let id = UInt64(parts[1]), let tweet = try? db.tweet(id: id) { #expect(tweet.likeCount >= 1, "like \(pair)") }
            }
        }
        for h in everyone {
            let user = try db.user(handle: h)
            #expect(user.followerCount == followerCounts[h, default: 0], "\(h) followers")
            #expect(user.followingCount == followingCounts[h, default: 0], "\(h) following")
            let own = all.values.flatMap(\.alive).filter { $0.author == h }.count
            let replies = try db.tweets(handle: h, limit: 1000).items.filter { $0.text.hasPrefix("reply ") }.count
            #expect(user.tweetCount == own + replies, "\(h) tweet count")
        }
    }
}
