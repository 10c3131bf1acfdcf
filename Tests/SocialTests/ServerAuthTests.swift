import Social
import StorageEngine
import Testing
@testable import socialdb

#if canImport(Glibc)
import Glibc
#endif

/// Accounts, AUTH and the rate limits, through `socialdb serve` over real sockets.
@Suite struct ServerAuthTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// Cheap password hashes (scrypt N = 2^10) so the tests do not spend their time hashing.
    static func options(_ limits: RateLimits = .off) -> SocialOptions {
        var options = testOptions()
        options.passwordHashing = PasswordHashing(log2N: 10)
        options.rateLimits = limits
        return options
    }

    /// alice and bob with passwords, a tweet of each, and the admin.
    static func network() throws -> (TestServer, alicesTweet: UInt64, bobsTweet: UInt64) {
        let t = try TestServer(options: options())
        try t.db.createUser(handle: "alice", password: "alice-password")
        try t.db.createUser(handle: "bob", password: "bob-password")
        try t.db.ensureAdmin(password: "admin-password")
        let a = try t.db.post(handle: "alice", text: "alice's tweet")
        let b = try t.db.post(handle: "bob", text: "bob's tweet")
        return (t, a.id, b.id)
    }

    /// Every command that writes as a user (and NOTIFICATIONS, PASSWORD, IMPORT, USER ADD
    /// without a password), as alice.
    static func commandsAsAlice(alicesTweet: UInt64, bobsTweet: UInt64) -> [String] {
        [
            "USER SET alice name Alice", "USER SET alice bio hello", "POST alice hi", "REPLY alice \(bobsTweet) hi",
            "QUOTE alice \(bobsTweet) look", "RETWEET alice \(bobsTweet)", "UNRETWEET alice \(bobsTweet)",
            "LIKE alice \(bobsTweet)", "UNLIKE alice \(bobsTweet)", "FOLLOW alice bob", "UNFOLLOW alice bob",
            "NOTIFICATIONS alice", "PASSWORD alice alice-password", "DELETE alice \(alicesTweet)",
        ]
    }

    @Test func everyWriteIsForbiddenWithoutLoginAndAsAnotherUser() throws {
        let (t, alicesTweet, bobsTweet) = try Self.network()
        let anonymous = try t.anonymousClient()
        let bob = try t.anonymousClient()
        #expect(isOK(bob.command("AUTH bob bob-password")))
        let before = t.database.nextLSN
        for command in Self.commandsAsAlice(alicesTweet: alicesTweet, bobsTweet: bobsTweet)
            + ["USER ADD carol", "USER ADD carol Carol", "IMPORT FOLLOWS /nonexistent", "IMPORT TWEETS /nonexistent"] {
            #expect(errorCode(anonymous.command(command)) == "forbidden", "anonymous: \(command)")
            #expect(errorCode(bob.command(command)) == "forbidden", "as bob: \(command)")
            // The handle's case and an @ do not get around it.
            let shouted = command.replacingFirst("alice", with: "@ALICE")
            #expect(errorCode(bob.command(shouted)) == "forbidden", "as bob: \(shouted)")
        }
        #expect(t.database.nextLSN == before, "a forbidden command wrote")
    }

    @Test func aUserMayWriteAsThemselves() throws {
        let (t, alicesTweet, bobsTweet) = try Self.network()
        let alice = try t.anonymousClient()
        #expect(isOK(alice.command("AUTH @Alice alice-password")))
        for command in Self.commandsAsAlice(alicesTweet: alicesTweet, bobsTweet: bobsTweet) {
            #expect(isOK(alice.command(command)), "\(command)")
        }
        #expect(errorCode(alice.command("IMPORT FOLLOWS /nonexistent")) == "forbidden")
    }

    @Test func theAdminMayDoAnything() throws {
        let (t, alicesTweet, bobsTweet) = try Self.network()
        let admin = try t.anonymousClient()
        let login = admin.command("AUTH admin admin-password")
        #expect(isOK(login) && login.contains("\"admin\":true"), "\(login)")
        for command in Self.commandsAsAlice(alicesTweet: alicesTweet, bobsTweet: bobsTweet) + ["USER ADD carol"] {
            #expect(isOK(admin.command(command)), "\(command)")
        }
        // Not forbidden: the file is missing.
        #expect(errorCode(admin.command("IMPORT FOLLOWS /nonexistent/edges")) != "forbidden")
    }

    @Test func readsOfPublicDataNeedNoLogin() throws {
        let (t, alicesTweet, _) = try Self.network()
        let c = try t.anonymousClient()
        for command in ["USER SHOW alice", "TWEET \(alicesTweet)", "THREAD \(alicesTweet)", "TWEETS alice", "HOME alice",
                        "FOLLOWERS alice", "FOLLOWING alice", "SEARCH tweet", "SEARCH USERS al", "TRENDS", "HELP", "STATS"] {
            #expect(isOK(c.command(command)), "\(command)")
        }
    }

    @Test func signingUpNeedsAPasswordAndThenLogsIn() throws {
        let (t, _, _) = try Self.network()
        let c = try t.anonymousClient()
        #expect(errorCode(c.command("USER ADD dave PASSWORD short")) == "invalid")
        #expect(isOK(c.command("USER ADD dave \"Dave D.\" PASSWORD \"correct horse\"")))
        #expect(errorCode(c.command("POST dave hi")) == "forbidden")
        #expect(isOK(c.command("AUTH dave \"correct horse\"")))
        #expect(isOK(c.command("POST dave hi")))
        #expect(c.command("USER SHOW dave").contains("\"name\":\"Dave D.\""))
    }

    @Test func aWrongPasswordAndAnUnknownUserLookTheSame() throws {
        let (t, _, _) = try Self.network()
        let c = try t.anonymousClient()
        let wrong = c.command("AUTH alice nope-nope-nope")
        let unknown = c.command("AUTH nobody nope-nope-nope")
        let noAccount = try { () throws -> String in
            try t.db.createUser(handle: "plain")
            return c.command("AUTH plain nope-nope-nope")
        }()
        #expect(errorCode(wrong) == "forbidden")
        #expect(wrong == unknown && unknown == noAccount)
    }

    @Test func bruteForceLoginIsRateLimited() throws {
        let t = try TestServer(options: Self.options(RateLimits(windowSeconds: 60, authFailuresPerWindow: 5)))
        try t.db.createUser(handle: "alice", password: "alice-password")
        let guesser = try t.anonymousClient()
        for i in 0..<5 {
            #expect(errorCode(guesser.command("AUTH alice guess-\(i)-xx")) == "forbidden")
        }
        // The window is spent (the test clock stands still): even the right password waits,
        // on every connection.
        #expect(errorCode(guesser.command("AUTH alice alice-password")) == "rate_limited")
        #expect(errorCode(try t.anonymousClient().command("AUTH alice alice-password")) == "rate_limited")
        // Other handles are not affected.
        try t.db.createUser(handle: "bob", password: "bob-password")
        #expect(isOK(try t.anonymousClient().command("AUTH bob bob-password")))
    }

    @Test func aConnectionCyclingHandlesIsClosed() throws {
        let t = try TestServer(options: Self.options(RateLimits(windowSeconds: 60, authFailuresPerWindow: 5)))
        let guesser = try t.anonymousClient()
        var answers: [String] = []
        for i in 0..<(Session.failedLoginsMax + 5) {
            guesser.send("AUTH user\(i) some-password\n")
            guard let line = guesser.readLine() else { break }
            answers.append(line)
        }
        #expect(answers.count == Session.failedLoginsMax)
        #expect(guesser.readLine() == nil)
    }

    @Test func failedLoginsFromOneAddressAreLimitedAcrossConnectionsAndHandles() throws {
        let t = try TestServer(options: Self.options()) { $0.loginFailuresPerAddress = 3 }
        try t.db.createUser(handle: "alice", password: "alice-password")
        for i in 0..<3 {
            #expect(errorCode(try t.anonymousClient().command("AUTH user\(i) some-password")) == "forbidden")
        }
        // From the same address, on a new connection, for another handle, with the right password:
        // refused before any hash is computed.
        let answer = try t.anonymousClient().command("AUTH alice alice-password")
        #expect(errorCode(answer) == "rate_limited", "\(answer)")
        #expect(answer.contains("this address"))
    }

    @Test func writesPastTheLimitAreRateLimitedAndChangeNothing() throws {
        let t = try TestServer(options: Self.options(RateLimits(windowSeconds: 60, writesPerWindow: 3)))
        try t.db.createUser(handle: "alice", password: "alice-password")
        let c = try t.anonymousClient()
        #expect(isOK(c.command("AUTH alice alice-password")))
        for i in 0..<3 { #expect(isOK(c.command("POST alice \"post \(i)\""))) }
        let before = t.database.nextLSN
        #expect(errorCode(c.command("POST alice \"one too many\"")) == "rate_limited")
        #expect(errorCode(c.command("FOLLOW alice alice")) == "rate_limited")
        #expect(t.database.nextLSN == before)
        #expect(isOK(c.command("TWEETS alice")))
    }

    @Test func accountsSurviveAReopenAndKeepNoPassword() throws {
        let t = try TestDatabase(options: Self.options())
        try t.db.createUser(handle: "alice", password: "alice-password")
        try t.db.ensureAdmin(password: "admin-password")
        #expect(try t.db.ensureAdmin(password: "other-password") == false)
        try t.reopen()
        #expect(try t.db.authenticate(handle: "alice", password: "alice-password").isAdmin == false)
        #expect(try t.db.authenticate(handle: "admin", password: "admin-password").isAdmin)
        #expect(throws: SocialError.self) { try t.db.authenticate(handle: "admin", password: "other-password") }
        var stored: [UInt8] = []
        try t.db.engine.tree.scan(from: [KeySpace.accounts.rawValue], to: [KeySpace.accounts.rawValue + 1]) { _, value in
            stored.append(contentsOf: value)
            return true
        }
        #expect(stored.count > 0)
        #expect(!String(decoding: stored, as: UTF8.self).contains("password"))
        try t.db.setPassword(handle: "alice", password: "new-password")
        #expect(throws: SocialError.self) { try t.db.authenticate(handle: "alice", password: "alice-password") }
        #expect(try t.db.authenticate(handle: "alice", password: "new-password").handle == "alice")
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
