/// The graph store's records in the durable log.
///
/// Types 0x0100...0x01FF belong to the graph; today two are used. Payload (little-endian), 8 bytes:
///
///     0  4  follower (dense user number)
///     4  4  followee
///
/// A record is applied idempotently: replaying it over a state that already has it changes
/// nothing. These values are part of the log format and must not change.
public enum GraphRecord: Equatable, Sendable {
    case follow(follower: UInt32, followee: UInt32)
    case unfollow(follower: UInt32, followee: UInt32)

    public static let followType: UInt16 = 0x0100
    public static let unfollowType: UInt16 = 0x0101
    public static let typeRange: ClosedRange<UInt16> = 0x0100...0x01FF
    public static let payloadBytes = 8

    public var type: UInt16 {
        switch self {
        case .follow: Self.followType
        case .unfollow: Self.unfollowType
        }
    }

    public var follower: UInt32 {
        switch self {
        case .follow(let a, _), .unfollow(let a, _): a
        }
    }

    public var followee: UInt32 {
        switch self {
        case .follow(_, let b), .unfollow(_, let b): b
        }
    }

    /// The 8-byte payload.
    public var payload: UInt64 { UInt64(follower) | UInt64(followee) << 32 }

    /// Decodes a log record of a graph type. Returns nil for a type outside the graph's range;
    /// throws for a graph type it does not know or a payload of the wrong size (corruption or a
    /// newer writer), so replay never guesses.
    public static func decode(type: UInt16, payload: UnsafeRawBufferPointer) throws(GraphError) -> GraphRecord? {
        guard typeRange.contains(type) else { return nil }
        guard payload.count == payloadBytes else {
            throw .corrupt(path: "log", reason: "graph record of type \(type) with \(payload.count) payload bytes")
        }
        let follower = payload.loadLE(UInt32.self, at: 0)
        let followee = payload.loadLE(UInt32.self, at: 4)
        switch type {
        case followType: return .follow(follower: follower, followee: followee)
        case unfollowType: return .unfollow(follower: follower, followee: followee)
        default: throw .corrupt(path: "log", reason: "unknown graph record type \(type)")
        }
    }
}

public enum GraphError: Error, Equatable, CustomStringConvertible {
    case io(IOError)
    case log(LogError)
    /// A base file (or a graph log record) failed its checks; `path` names it.
    case corrupt(path: String, reason: String)
    /// The log no longer holds records the store needs to recover (or holds fewer than a base
    /// already includes), so the graph cannot be brought up to date.
    case logGap(String)
    case invalidArgument(String)
    case closed

    public var description: String {
        switch self {
        case .io(let e): "graph I/O error: \(e)"
        case .log(let e): "graph: \(e)"
        case .corrupt(let path, let reason): "graph base corrupt: \(path): \(reason)"
        case .logGap(let m): "graph cannot recover from the log: \(m)"
        case .invalidArgument(let m): "invalid graph argument: \(m)"
        case .closed: "graph store is closed"
        }
    }
}
