import Foundation
import Social
import StorageEngine
import Synchronization
import Testing

/// The apply pipeline (`SocialDB.writing`): writes apply their records to the timelines and the
/// search index after releasing the writer lock, one writer often applying another's. What users
/// rely on is unchanged: when a write returns, every structure shows it, to the writer and to
/// everyone else, and after it the same holds across a reopen.
@Suite struct ApplyPipelineTests {
    @Test(.timeLimit(.minutes(5))) func everyWriteIsEverywhereWhenItReturns() throws {
        let t = try TestDatabase()
        let db = t.db
        let writers = 6, rounds = 60
        let authors = (0..<writers).map { "author\($0)" }
        for handle in authors { try db.createUser(handle: handle) }
        try db.createUser(handle: "fan")
        for handle in authors { try db.follow("fan", handle) }

        let problems = Mutex<[String]>([])
        let latest = Mutex<[Int: UInt64]>([:])      // each author's newest post that is alive
        let deleted = Mutex<Set<UInt64>>([])
        let live = Mutex<[(id: UInt64, token: String)]>([])
        @Sendable func problem(_ text: String) { problems.withLock { $0.append(text) } }
        /// The newest item of `handle`'s home at or below `id`.
        @Sendable func newestAtOrBelow(_ id: UInt64, home handle: String) throws(SocialError) -> UInt64? {
            try db.home(handle: handle, limit: 1, before: id + 1).items.first?.id
        }

        let group = DispatchGroup()
        for w in 0..<writers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let me = authors[w]
                let next = authors[(w + 1) % writers]
                do throws(SocialError) {
                    for round in 0..<rounds {
                        let token = "pipe\(w)x\(round)"
                        let id = try db.post(handle: me, text: "\(token) goes everywhere #pipeline").id
                        // Right after the call: search, the author's home, a follower's home.
                        if !(try db.search(token).items.contains { $0.id == id }) { problem("\(token): not found by search") }
                        if try newestAtOrBelow(id, home: me) != id { problem("\(token): not in \(me)'s home") }
                        if try newestAtOrBelow(id, home: "fan") != id { problem("\(token): not in fan's home") }
                        if round % 5 == 4 {
                            try db.delete(handle: me, tweet: id)
                            deleted.withLock { _ = $0.insert(id) }
                            if try db.search(token).items.contains(where: { $0.id == id }) { problem("\(token): found after delete") }
                            if try newestAtOrBelow(id, home: "fan") == id { problem("\(token): in fan's home after delete") }
                        } else {
                            latest.withLock { $0[w] = id }
                            live.withLock { $0.append((id, token)) }
                        }
                        if round % 12 == 6 {
                            // A follow backfills the followee's posts acknowledged before it.
                            let theirs = latest.withLock { $0[(w + 1) % writers] }
                            _ = try db.follow(me, next)
                            if let theirs, try newestAtOrBelow(theirs, home: me) != theirs,
                               !deleted.withLock({ $0.contains(theirs) }) {
                                problem("\(me) follows \(next): \(theirs) not in the home")
                            }
                        } else if round % 12 == 11 {
                            _ = try db.unfollow(me, next)
                        }
                    }
                } catch {
                    problem("\(me): \(error)")
                }
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        #expect(problems.withLock { $0 } == [])
        #expect(try db.statistics().pendingApplies == 0)

        // Replayed or checkpointed, the structures agree after a reopen.
        try t.reopen()
        for (id, token) in live.withLock({ $0 }) {
            #expect(try t.db.search(token).items.map(\.id) == [id], "\(token)")
            #expect(try t.db.home(handle: "fan", limit: 1, before: id + 1).items.first?.id == id, "\(token)")
        }
        for id in deleted.withLock({ $0 }) {
            #expect(try t.db.home(handle: "fan", limit: 1, before: id + 1).items.first?.id != id)
        }
    }

    /// A write rejected before it appends queues nothing (it has no tickets to wait for), and
    /// the writes after it are applied as usual.
    @Test func aRejectedWriteLeavesNothingWaiting() throws {
        let t = try TestDatabase()
        try t.db.createUser(handle: "alice")
        let before = t.nextLSN
        t.expectRejected("not_found") { try t.db.delete(handle: "alice", tweet: 12345) }
        #expect(t.nextLSN == before)
        #expect(try t.db.statistics().pendingApplies == 0)
        let tweet = try t.db.post(handle: "alice", text: "after the rejection")
        #expect(try t.db.search("rejection").items.map(\.id) == [tweet.id])
        #expect(try t.db.statistics().pendingApplies == 0)
    }
}
