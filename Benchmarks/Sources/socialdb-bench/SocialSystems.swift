// The two systems of the `social` suite behind one small interface: socialdb through its public
// `Social` API (class SocialDB), and SQLite as a developer would embed it (WAL, the natural
// schema with indexes, FTS5 for search). A session is what one client thread uses.
import CSQLite
import Social
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

protocol SocialSession: AnyObject {
    /// 10 tweets of `user`'s home timeline from `offset`; returns how many came back.
    func home(user: Int, offset: Int) throws -> Int
    /// 10 tweets of `user`'s own tweets from `offset`.
    func userTimeline(user: Int, offset: Int) throws -> Int
    func post(user: Int, text: String) throws
    func like(user: Int, tweet: UInt64) throws
    func follow(user: Int, other: Int) throws
    /// The newest 10 tweets matching one term or hashtag.
    func search(_ term: String) throws -> Int
}

/// The handles `u0` ... `u<N-1>` made once (small strings, stored inline).
final class Handles: Sendable {
    let names: [String]
    init(users: Int) { names = (0..<users).map { "u" + String($0) } }
}

// MARK: socialdb

final class SocialDBSession: SocialSession, @unchecked Sendable {
    // @unchecked: used by one client thread; SocialDB itself is Sendable.
    let db: SocialDB
    let handles: Handles

    init(db: SocialDB, handles: Handles) {
        self.db = db
        self.handles = handles
    }

    func home(user: Int, offset: Int) throws -> Int {
        try db.home(handle: handles.names[user], limit: 10, offset: offset).items.count
    }

    func userTimeline(user: Int, offset: Int) throws -> Int {
        try db.tweets(handle: handles.names[user], limit: 10, offset: offset).items.count
    }

    func post(user: Int, text: String) throws {
        _ = try db.post(handle: handles.names[user], text: text)
    }

    func like(user: Int, tweet: UInt64) throws {
        _ = try db.like(handle: handles.names[user], tweet: tweet)
    }

    func follow(user: Int, other: Int) throws {
        _ = try db.follow(handles.names[user], handles.names[other])
    }

    func search(_ term: String) throws -> Int {
        try db.search(term, limit: 10).items.count
    }
}

// MARK: SQLite

/// One SQLite connection with the suite's prepared statements. Schema (users and tweets keyed by
/// their numbers/ids, counters denormalized as apps do):
///
///   users(id INTEGER PRIMARY KEY, handle TEXT UNIQUE, name, created, tweet_count)
///   follows(follower, followee, created, PRIMARY KEY(follower, followee)) WITHOUT ROWID
///     + INDEX follows_followee(followee, follower)
///   tweets(id INTEGER PRIMARY KEY, author, created, text, reply_to, retweet_of,
///          like_count, retweet_count, reply_count) + INDEX tweets_author(author, id)
///   likes(tweet, user, created, PRIMARY KEY(tweet, user)) WITHOUT ROWID + INDEX likes_user(user, tweet)
///   tweets_fts: contentless fts5(text), tokenchars '#@', rowid = tweet id
final class SocialSQLite: SocialSession, @unchecked Sendable {
    // @unchecked: one connection, used by one thread at a time.
    var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    static let homeSQL = """
        SELECT t.id, t.author, u.handle, t.created, t.text, t.reply_to, t.like_count, t.retweet_count, t.reply_count, o.text, o.author
        FROM tweets t JOIN users u ON u.id = t.author LEFT JOIN tweets o ON o.id = t.retweet_of
        WHERE t.author IN (SELECT followee FROM follows WHERE follower = ?1 UNION ALL SELECT ?1)
        ORDER BY t.id DESC LIMIT 10 OFFSET ?2
        """
    static let userSQL = """
        SELECT t.id, t.author, u.handle, t.created, t.text, t.reply_to, t.like_count, t.retweet_count, t.reply_count, o.text, o.author
        FROM tweets t JOIN users u ON u.id = t.author LEFT JOIN tweets o ON o.id = t.retweet_of
        WHERE t.author = ?1 ORDER BY t.id DESC LIMIT 10 OFFSET ?2
        """
    static let searchSQL = """
        SELECT t.id, t.author, u.handle, t.created, t.text, t.reply_to, t.like_count, t.retweet_count, t.reply_count
        FROM tweets t JOIN users u ON u.id = t.author
        WHERE t.id IN (SELECT rowid FROM tweets_fts WHERE tweets_fts MATCH ?1 ORDER BY rowid DESC LIMIT 10)
        ORDER BY t.id DESC
        """

    /// Opens a connection; `durable` is synchronous=FULL (fsync at every commit), else NORMAL
    /// (WAL: survives a process crash, fsyncs at checkpoints).
    init(path: String, durable: Bool) throws {
        self.path = path
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            throw BenchmarkFailure(description: "sqlite open \(path)")
        }
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=\(durable ? "FULL" : "NORMAL")")
        try exec("PRAGMA cache_size=-65536")
        sqlite3_busy_timeout(db, 60_000)
    }

    deinit { close() }

    func close() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements = [:]
        if db != nil { sqlite3_close(db) }
        db = nil
    }

    func exec(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "?"
            sqlite3_free(message)
            throw BenchmarkFailure(description: "sqlite: \(text) in \(sql.prefix(80))")
        }
    }

    func statement(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] {
            sqlite3_reset(s)
            return s
        }
        var s: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK, let s else {
            throw BenchmarkFailure(description: "sqlite prepare: \(String(cString: sqlite3_errmsg(db)))")
        }
        statements[sql] = s
        return s
    }

    private func done(_ s: OpaquePointer) throws {
        let rc = sqlite3_step(s)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw BenchmarkFailure(description: "sqlite step: \(String(cString: sqlite3_errmsg(db)))") }
    }

    /// Steps every row, touching each text column's bytes as a client reading them would.
    private func rows(_ s: OpaquePointer, columns: Int32) throws -> Int {
        var count = 0
        var checksum = 0
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw BenchmarkFailure(description: "sqlite step: \(String(cString: sqlite3_errmsg(db)))") }
            for c in 0..<columns {
                if sqlite3_column_type(s, c) == SQLITE_TEXT {
                    if let p = sqlite3_column_text(s, c) { checksum &+= Int(p[0]) &+ Int(sqlite3_column_bytes(s, c)) }
                } else {
                    checksum &+= Int(sqlite3_column_int64(s, c))
                }
            }
            count += 1
        }
        if checksum == 42 { count += 0 }
        return count
    }

    static func createSchema(_ c: SocialSQLite) throws {
        try c.exec("""
            CREATE TABLE users(id INTEGER PRIMARY KEY, handle TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
                               tweet_count INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE follows(follower INTEGER NOT NULL, followee INTEGER NOT NULL, created INTEGER NOT NULL,
                                 PRIMARY KEY(follower, followee)) WITHOUT ROWID;
            CREATE TABLE tweets(id INTEGER PRIMARY KEY, author INTEGER NOT NULL, created INTEGER NOT NULL, text TEXT NOT NULL,
                                reply_to INTEGER, retweet_of INTEGER, like_count INTEGER NOT NULL DEFAULT 0,
                                retweet_count INTEGER NOT NULL DEFAULT 0, reply_count INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE likes(tweet INTEGER NOT NULL, user INTEGER NOT NULL, created INTEGER NOT NULL,
                               PRIMARY KEY(tweet, user)) WITHOUT ROWID;
            CREATE VIRTUAL TABLE tweets_fts USING fts5(text, content='', tokenize="unicode61 remove_diacritics 2 tokenchars '#@'");
            """)
    }

    /// The users and the follow graph, in one transaction; the secondary indexes after.
    func loadGraph(users: Int, followsPath: String) throws -> Int {
        try exec("BEGIN")
        let now = Int64(SocialWorld.endUnixMilliseconds)
        let u = try statement("INSERT INTO users(id, handle, name, created) VALUES(?1, ?2, ?2, ?3)")
        for i in 0..<users {
            sqlite3_reset(u)
            let handle = "u" + String(i)
            sqlite3_bind_int64(u, 1, Int64(i))
            sqlite3_bind_text(u, 2, handle, -1, socialdb_sqlite_transient())
            sqlite3_bind_int64(u, 3, now)
            try done(u)
        }
        try exec("CREATE UNIQUE INDEX users_handle ON users(handle)")
        let f = try statement("INSERT OR IGNORE INTO follows(follower, followee, created) VALUES(?1, ?2, ?3)")
        var edges = 0
        try forEachLine(followsPath) { fields in
            guard fields.count >= 2 else { return }
            sqlite3_reset(f)
            sqlite3_bind_int64(f, 1, Int64(fields[0].int))
            sqlite3_bind_int64(f, 2, Int64(fields[1].int))
            sqlite3_bind_int64(f, 3, now)
            try done(f)
            edges += 1
        }
        try exec("CREATE INDEX follows_followee ON follows(followee, follower)")
        try exec("COMMIT")
        // Settled like the tweets' load (and like socialdb's checkpoint after each phase): the
        // pages move from the WAL into the database file and the WAL is truncated, so the disk
        // measured after the graph is the graph's, not the graph plus a WAL the next phase frees.
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
        return edges
    }

    /// The tweets (with FTS rows and the reply and retweet counters) in one transaction; the
    /// author index and the users' tweet counts after.
    func loadTweets(path: String) throws -> Int {
        try exec("BEGIN")
        let insert = try statement("INSERT INTO tweets(id, author, created, text, reply_to, retweet_of) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
        let fts = try statement("INSERT INTO tweets_fts(rowid, text) VALUES(?1, ?2)")
        let replies = try statement("UPDATE tweets SET reply_count = reply_count + 1 WHERE id = ?1")
        let retweets = try statement("UPDATE tweets SET retweet_count = retweet_count + 1 WHERE id = ?1")
        var count = 0
        try forEachLine(path) { fields in
            guard fields.count >= 6 else { return }
            let id = Int64(fields[0].int)
            let replyTo = fields[3].int
            let retweetOf = fields[4].int
            sqlite3_reset(insert)
            sqlite3_bind_int64(insert, 1, id)
            sqlite3_bind_int64(insert, 2, Int64(fields[1].int))
            sqlite3_bind_int64(insert, 3, Int64(fields[2].int))
            sqlite3_bind_text(insert, 4, fields[5].start, Int32(fields[5].count), socialdb_sqlite_transient())
            if replyTo != 0 { sqlite3_bind_int64(insert, 5, Int64(replyTo)) } else { sqlite3_bind_null(insert, 5) }
            if retweetOf != 0 { sqlite3_bind_int64(insert, 6, Int64(retweetOf)) } else { sqlite3_bind_null(insert, 6) }
            try done(insert)
            if fields[5].count > 0 {
                sqlite3_reset(fts)
                sqlite3_bind_int64(fts, 1, id)
                sqlite3_bind_text(fts, 2, fields[5].start, Int32(fields[5].count), socialdb_sqlite_transient())
                try done(fts)
            }
            if replyTo != 0 {
                sqlite3_reset(replies); sqlite3_bind_int64(replies, 1, Int64(replyTo)); try done(replies)
            }
            if retweetOf != 0 {
                sqlite3_reset(retweets); sqlite3_bind_int64(retweets, 1, Int64(retweetOf)); try done(retweets)
            }
            count += 1
        }
        try exec("CREATE INDEX tweets_author ON tweets(author, id)")
        try exec("CREATE INDEX likes_user ON likes(user, tweet)")
        try exec("UPDATE users SET tweet_count = (SELECT count(*) FROM tweets WHERE author = users.id)")
        try exec("COMMIT")
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
        try exec("ANALYZE")
        return count
    }

    func home(user: Int, offset: Int) throws -> Int {
        let s = try statement(Self.homeSQL)
        sqlite3_bind_int64(s, 1, Int64(user))
        sqlite3_bind_int64(s, 2, Int64(offset))
        return try rows(s, columns: 11)
    }

    func userTimeline(user: Int, offset: Int) throws -> Int {
        let s = try statement(Self.userSQL)
        sqlite3_bind_int64(s, 1, Int64(user))
        sqlite3_bind_int64(s, 2, Int64(offset))
        return try rows(s, columns: 11)
    }

    func post(user: Int, text: String) throws {
        try exec("BEGIN IMMEDIATE")
        do {
            let now = Int64(monotonicNanoseconds() / 1_000_000)
            let insert = try statement("INSERT INTO tweets(author, created, text) VALUES(?1, ?2, ?3)")
            sqlite3_bind_int64(insert, 1, Int64(user))
            sqlite3_bind_int64(insert, 2, now)
            sqlite3_bind_text(insert, 3, text, -1, socialdb_sqlite_transient())
            try done(insert)
            let id = sqlite3_last_insert_rowid(db)
            let fts = try statement("INSERT INTO tweets_fts(rowid, text) VALUES(?1, ?2)")
            sqlite3_bind_int64(fts, 1, id)
            sqlite3_bind_text(fts, 2, text, -1, socialdb_sqlite_transient())
            try done(fts)
            let count = try statement("UPDATE users SET tweet_count = tweet_count + 1 WHERE id = ?1")
            sqlite3_bind_int64(count, 1, Int64(user))
            try done(count)
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    func like(user: Int, tweet: UInt64) throws {
        try exec("BEGIN IMMEDIATE")
        do {
            let insert = try statement("INSERT OR IGNORE INTO likes(tweet, user, created) VALUES(?1, ?2, ?3)")
            sqlite3_bind_int64(insert, 1, Int64(tweet))
            sqlite3_bind_int64(insert, 2, Int64(user))
            sqlite3_bind_int64(insert, 3, Int64(monotonicNanoseconds() / 1_000_000))
            try done(insert)
            if sqlite3_changes(db) > 0 {
                let count = try statement("UPDATE tweets SET like_count = like_count + 1 WHERE id = ?1")
                sqlite3_bind_int64(count, 1, Int64(tweet))
                try done(count)
            }
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    func follow(user: Int, other: Int) throws {
        let s = try statement("INSERT OR IGNORE INTO follows(follower, followee, created) VALUES(?1, ?2, ?3)")
        sqlite3_bind_int64(s, 1, Int64(user))
        sqlite3_bind_int64(s, 2, Int64(other))
        sqlite3_bind_int64(s, 3, Int64(monotonicNanoseconds() / 1_000_000))
        try done(s)
    }

    func search(_ term: String) throws -> Int {
        let s = try statement(Self.searchSQL)
        // A phrase of one token: FTS5 syntax never misreads a word or a #tag.
        sqlite3_bind_text(s, 1, "\"" + term + "\"", -1, socialdb_sqlite_transient())
        return try rows(s, columns: 9)
    }
}

/// A field of a tab- or space-separated line, pointing into the line buffer.
struct LineField {
    var start: UnsafePointer<CChar>
    var count: Int
    var int: Int {
        var v = 0
        for i in 0..<count {
            let c = Int(start[i]) - 48
            guard c >= 0 && c <= 9 else { break }
            v = v * 10 + c
        }
        return v
    }
}

/// Calls `body` with each line's fields (split on tabs, or on spaces when the line has no tab).
func forEachLine(_ path: String, _ body: ([LineField]) throws -> Void) throws {
    guard let file = fopen(path, "r") else { throw BenchmarkFailure(description: "cannot open \(path)") }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    var fields: [LineField] = []
    defer { free(line) }
    while true {
        let n = getline(&line, &capacity, file)
        if n < 0 { break }
        guard let line else { break }
        var length = n
        while length > 0 && (line[length - 1] == 10 || line[length - 1] == 13) { length -= 1 }
        var separator: CChar = 32
        for i in 0..<length where line[i] == 9 { separator = 9; break }
        fields.removeAll(keepingCapacity: true)
        var start = 0
        for i in 0...length where i == length || line[i] == separator {
            fields.append(LineField(start: UnsafePointer(line + start), count: i - start))
            start = i + 1
        }
        try body(fields)
    }
}
