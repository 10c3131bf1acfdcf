import FuzzSupport
@testable import Social
@testable import StorageEngine

/// A small data directory with a file of every kind, for seed inputs: users, follows (one user
/// with more than 255 followers, so its list takes the escaped degree), posts sharing words (a
/// term with more than 128 postings, so its list has a block directory), replies, retweets, likes,
/// deletions; then the tree flushed, the graph merged, the search segment frozen, and closed.
enum SampleDirectory {
    static func build() -> String {
        let path = scratchFolder + "/sample"
        var options = SocialOptions()
        options.engine.ioBackend = .posix
        options.sync = .off
        let db = try! SocialDB.open(at: path, options: options)
        let users = (0..<300).map { "u\($0)" }
        for u in users { _ = try! db.createUser(handle: u) }
        for (i, u) in users.enumerated() {
            if i > 0 { _ = try! db.follow(u, "u0") }
            _ = try! db.follow(u, users[(i * 7 + 1) % users.count])
        }
        var ids: [UInt64] = []
        for i in 0..<400 {
            let author = users[i % 40]
            let text = "common word \(i) #tag\(i % 5) @u\(i % 3) " + String(repeating: "w\(i % 11) ", count: 1 + i % 4)
            ids.append(try! db.post(handle: author, text: text).id)
        }
        for i in 0..<60 {
            _ = try! db.reply(handle: users[i + 50], to: ids[i], text: "reply \(i) common")
            _ = try! db.like(handle: users[i + 60], tweet: ids[i * 2])
            _ = try! db.retweet(handle: users[i + 100], tweet: ids[i * 3])
        }
        for i in 0..<10 { try! db.delete(handle: users[i % 40], tweet: ids[i * 40 + i % 40]) }
        try! db.engine.tree.flush()
        _ = try! db.engine.graph.merge()
        db.consumers.search.freeze()
        try! db.close()
        return path
    }
}
