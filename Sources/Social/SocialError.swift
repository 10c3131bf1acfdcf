import StorageEngine

/// The errors of the Social layer. Each case is one of the shell's stable error codes (see
/// `code`), so an app and a script see the same classification; the message says which argument
/// was wrong and what was expected.
///
/// A call that throws changed nothing: every write is validated completely before its one batch
/// goes to the log.
public enum SocialError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An unknown user or tweet.
    case notFound(String)
    /// The thing to create exists already (a handle taken, a tweet already retweeted).
    case exists(String)
    /// An argument breaks a rule (a malformed handle, following oneself, an empty tweet).
    case invalid(String)
    /// The caller may not do this (deleting someone else's tweet).
    case forbidden(String)
    /// A text is over its limit (280 grapheme clusters for a tweet).
    case tooLong(String)
    /// A rate limit of `SocialOptions.rateLimits` is spent (per user, per window).
    case rateLimited(String)
    /// Input that does not parse. The API itself never throws it; the shell uses it for command
    /// lines, and it is here so the cases map one to one onto the shell's codes.
    case syntax(String)
    /// The engine failed underneath (I/O error, corruption, closed database).
    case io(String)

    /// The stable word of the shell language for this error.
    public var code: String {
        switch self {
        case .notFound: "not_found"
        case .exists: "exists"
        case .invalid: "invalid"
        case .forbidden: "forbidden"
        case .tooLong: "too_long"
        case .rateLimited: "rate_limited"
        case .syntax: "syntax"
        case .io: "io"
        }
    }

    public var message: String {
        switch self {
        case .notFound(let m), .exists(let m), .invalid(let m), .forbidden(let m), .tooLong(let m), .rateLimited(let m),
             .syntax(let m), .io(let m):
            m
        }
    }

    public var description: String { "\(code): \(message)" }

    init(_ error: LSMError) { self = .io("storage: \(error)") }
    init(_ error: GraphError) { self = .io("graph: \(error)") }
    init(_ error: EngineError) { self = .io("\(error)") }
}
