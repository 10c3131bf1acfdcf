import _CryptoExtras
import StorageEngine

/// Accounts: a password and a role for a user, so that `socialdb serve` can tell who a
/// connection speaks for. The password is never stored: an account keeps a random salt and the
/// scrypt hash of the password with it (swift-crypto's `KDF.Scrypt`), with the cost parameters
/// it was made with, so raising the cost later leaves old accounts readable.
///
/// Record (value of key space `accounts`, key = user id; part of the on-disk format):
///
///     version u8 (1) | role u8 (0 user, 1 admin) | kdf u8 (1 scrypt) | log2 N u8 | r u8 | p u8
///     | salt length u8 | salt | hash length u8 | hash
///
/// The admin: the user `admin`, made with the admin role at the first start of a server that
/// is given an admin password (`ensureAdmin`); the meta key `social.admin-user` holds its id.
public struct Account: Sendable, Equatable {
    public var userID: UInt64
    public var handle: String
    public var isAdmin: Bool
}

/// The cost of new password hashes: scrypt with N = 2^log2N, r, p. The default (N = 2^15,
/// r = 8, p = 1: 32 MiB and some tens of milliseconds per hash) is OWASP's floor for scrypt;
/// tests lower it.
public struct PasswordHashing: Sendable {
    public var log2N: Int = 15
    public var blockSize: Int = 8
    public var parallelism: Int = 1

    public init() {}
    public init(log2N: Int, blockSize: Int = 8, parallelism: Int = 1) {
        self.log2N = log2N
        self.blockSize = blockSize
        self.parallelism = parallelism
    }
}

struct AccountRecord: Equatable {
    static let version: UInt8 = 1
    static let kdfScrypt: UInt8 = 1
    static let saltBytes = 16
    static let hashBytes = 32

    var isAdmin: Bool
    var log2N: UInt8
    var blockSize: UInt8
    var parallelism: UInt8
    var salt: [UInt8]
    var hash: [UInt8]

    func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.version, isAdmin ? 1 : 0, Self.kdfScrypt, log2N, blockSize, parallelism]
        out.append(UInt8(salt.count))
        out.append(contentsOf: salt)
        out.append(UInt8(hash.count))
        out.append(contentsOf: hash)
        return out
    }

    static func decode(_ raw: [UInt8]) -> AccountRecord? {
        guard raw.count >= 8, raw[0] == version, raw[1] <= 1, raw[2] == kdfScrypt else { return nil }
        guard (1...30).contains(raw[3]), raw[4] >= 1, raw[5] >= 1 else { return nil }
        let saltCount = Int(raw[6])
        guard raw.count >= 7 + saltCount + 1 else { return nil }
        let salt = Array(raw[7..<(7 + saltCount)])
        let hashCount = Int(raw[7 + saltCount])
        guard raw.count == 8 + saltCount + hashCount, hashCount > 0 else { return nil }
        let hash = Array(raw[(8 + saltCount)...])
        return AccountRecord(isAdmin: raw[1] == 1, log2N: raw[3], blockSize: raw[4], parallelism: raw[5], salt: salt, hash: hash)
    }

    /// A new record for `password`: a fresh random salt, hashed at `cost`. Slow on purpose;
    /// callers run it outside the writer lock.
    static func make(password: String, isAdmin: Bool, cost: PasswordHashing) throws(SocialError) -> AccountRecord {
        // The system's generator is the kernel's (getrandom): fit for salts.
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<saltBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var record = AccountRecord(isAdmin: isAdmin, log2N: UInt8(cost.log2N), blockSize: UInt8(cost.blockSize),
                                   parallelism: UInt8(cost.parallelism), salt: salt, hash: [])
        record.hash = try record.derive(password)
        return record
    }

    func derive(_ password: String) throws(SocialError) -> [UInt8] {
        do {
            let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: Self.hashBytes,
                                               rounds: 1 << Int(log2N), blockSize: Int(blockSize), parallelism: Int(parallelism))
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw .io("scrypt failed: \(error)")
        }
    }

    /// Whether `password` is this account's, compared in time independent of where they differ.
    func matches(_ password: String) throws(SocialError) -> Bool {
        let candidate = try derive(password)
        guard candidate.count == hash.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<hash.count { difference |= candidate[i] ^ hash[i] }
        return difference == 0
    }
}

extension SocialKeys {
    static func account(_ userID: UInt64) -> [UInt8] { Keys.one(.accounts, userID) }
    static let adminUser = Keys.text(.meta, "social.admin-user")
}

extension SocialDB {
    /// The handle of the admin account `ensureAdmin` makes.
    public static let adminHandle = "admin"
    public static let passwordLengthMin = 8
    public static let passwordBytesMax = 1024

    static func checkPassword(_ password: String) throws(SocialError) {
        guard password.count >= passwordLengthMin else { throw .invalid("a password has at least \(passwordLengthMin) characters") }
        guard password.utf8.count <= passwordBytesMax else { throw .tooLong("a password has at most \(passwordBytesMax) bytes") }
    }

    /// Registers a user with a password (an account that can `authenticate`).
    @discardableResult
    public func createUser(handle: String, name: String? = nil, password: String) throws(SocialError) -> User {
        try createUser(handle: handle, name: name, password: password, isAdmin: false)
    }

    func createUser(handle: String, name: String?, password: String, isAdmin: Bool) throws(SocialError) -> User {
        try answering { () throws(SocialError) -> User in
            let handle = try Self.checkHandle(handle)
            let name = name ?? handle
            guard name.count <= TextRules.nameLengthMax else {
                throw .tooLong("the display name is \(name.count) characters; at most \(TextRules.nameLengthMax)")
            }
            try Self.checkPassword(password)
            let account = try AccountRecord.make(password: password, isAdmin: isAdmin, cost: options.passwordHashing)
            let record = try writing { () throws(SocialError) -> UserRecord in
                var changes = ChangeSet()
                let record = try addUser(handle: handle, name: name, to: &changes, nextNumber: nil)
                changes.put(SocialKeys.account(record.id), account.encoded())
                if isAdmin { changes.put(SocialKeys.adminUser, .u64(record.id)) }
                try changes.commit(to: self)
                return record
            }
            return try makeUser(record)
        }
    }

    /// Sets (or replaces) the password of `handle`, keeping its role.
    public func setPassword(handle: String, password: String) throws(SocialError) {
        try answering { () throws(SocialError) in
            try Self.checkPassword(password)
            let user = try userRecord(handle: handle)
            let isAdmin = try accountRecord(user.id)?.isAdmin ?? false
            let account = try AccountRecord.make(password: password, isAdmin: isAdmin, cost: options.passwordHashing)
            try writing { () throws(SocialError) in
                var changes = ChangeSet()
                changes.put(SocialKeys.account(user.id), account.encoded())
                try changes.commit(to: self)
            }
        }
    }

    /// The account of `handle` if `password` is its password. A wrong password, a user without
    /// an account and an unknown user all answer the same `forbidden`, so a caller cannot learn
    /// which handles exist; failed attempts count against `rateLimits.authFailuresPerWindow` per
    /// handle, and past it every attempt is `rate_limited` until the window ends.
    public func authenticate(handle: String, password: String) throws(SocialError) -> Account {
        try answering { () throws(SocialError) -> Account in
            let valid = TextRules.validHandle(handle)
            let key = "auth:" + TextRules.folded(valid ?? handle)
            try rateLimiter.check(key, limit: options.rateLimits.authFailuresPerWindow, what: "failed logins")
            let denied = SocialError.forbidden("wrong handle or password")
            guard valid != nil, let user = try? userRecord(handle: handle), let account = try accountRecord(user.id),
                  password.utf8.count <= Self.passwordBytesMax else {
                rateLimiter.record(key, limit: options.rateLimits.authFailuresPerWindow)
                throw denied
            }
            guard try account.matches(password) else {
                rateLimiter.record(key, limit: options.rateLimits.authFailuresPerWindow)
                throw denied
            }
            return Account(userID: user.id, handle: user.handle, isAdmin: account.isAdmin)
        }
    }

    /// Makes the admin account (user `admin`, admin role) unless one exists; the password is
    /// only used the first time. Returns whether it made it.
    @discardableResult
    public func ensureAdmin(password: String) throws(SocialError) -> Bool {
        try answering { () throws(SocialError) -> Bool in
            if try value(SocialKeys.adminUser) != nil { return false }
            _ = try createUser(handle: Self.adminHandle, name: "Administrator", password: password, isAdmin: true)
            return true
        }
    }

    /// Whether an admin account exists.
    public func hasAdmin() throws(SocialError) -> Bool { try answering { () throws(SocialError) -> Bool in try value(SocialKeys.adminUser) != nil } }

    func accountRecord(_ userID: UInt64) throws(SocialError) -> AccountRecord? {
        guard let raw = try value(SocialKeys.account(userID)) else { return nil }
        guard let record = AccountRecord.decode(raw) else { throw .io("storage: the account of user \(userID) does not decode") }
        return record
    }
}
