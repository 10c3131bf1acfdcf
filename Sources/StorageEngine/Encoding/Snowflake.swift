#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A snowflake id: 64 bits, newest largest.
///
/// Layout (most significant first), part of every on-disk format that stores ids:
///
///     | 1 bit 0 | 41 bits milliseconds since `Snowflake.epochMilliseconds` | 10 bits node | 12 bits sequence |
///
/// 41 bits of milliseconds last about 69.7 years from the epoch (until 2093).
public struct Snowflake: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    /// 2024-01-01T00:00:00Z in Unix milliseconds. Part of the format: must not change.
    public static let epochMilliseconds: UInt64 = 1_704_067_200_000
    public static let nodeBits = 10
    public static let sequenceBits = 12
    public static let maxNode: UInt16 = (1 << 10) - 1
    public static let maxSequence: UInt16 = (1 << 12) - 1
    public static let maxMillisecondsSinceEpoch: UInt64 = (1 << 41) - 1

    @inlinable
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(millisecondsSinceEpoch: UInt64, node: UInt16, sequence: UInt16) {
        precondition(millisecondsSinceEpoch <= Self.maxMillisecondsSinceEpoch, "snowflake time out of range")
        precondition(node <= Self.maxNode && sequence <= Self.maxSequence, "snowflake node or sequence out of range")
        rawValue = millisecondsSinceEpoch << 22 | UInt64(node) << 12 | UInt64(sequence)
    }

    public var millisecondsSinceEpoch: UInt64 { rawValue >> 22 }
    public var unixMilliseconds: UInt64 { millisecondsSinceEpoch + Self.epochMilliseconds }
    public var node: UInt16 { UInt16(truncatingIfNeeded: (rawValue >> 12) & 0x3FF) }
    public var sequence: UInt16 { UInt16(truncatingIfNeeded: rawValue & 0xFFF) }

    public static func < (a: Snowflake, b: Snowflake) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// Hands out snowflake ids that strictly increase, for one node.
///
/// Thread safety: `next()` may be called from any thread; a mutex orders the callers.
///
/// Invariants and why:
/// - Ids strictly increase even when the wall clock steps back: the generator keeps the last
///   millisecond it used and never goes below it (a step back makes ids carry a time slightly
///   ahead of the wall clock until it catches up, which is better than repeating or refusing).
/// - At most 4096 ids per millisecond: after the 4096th, `next()` waits for the next
///   millisecond of the wall clock, or, when the wall clock is behind the last used millisecond,
///   for one millisecond of monotonic time, and then moves the last millisecond on by one. So
///   the rate is bounded and every wait is bounded by about one millisecond.
public final class SnowflakeGenerator: Sendable {
    public typealias Clock = @Sendable () -> UInt64

    private struct State {
        var lastMilliseconds: UInt64 = 0
        var sequence: UInt16 = 0
        var started = false
    }

    public let node: UInt16
    private let wallClockMilliseconds: Clock
    private let monotonicNanoseconds: Clock
    private let state = Mutex(State())

    /// - Parameters:
    ///   - wallClockMilliseconds: Unix time in milliseconds (tests pass a fake one).
    ///   - monotonicNanoseconds: a clock that never steps back (tests pass a fake one).
    ///   - floor: an id this generator must exceed, such as the largest id already stored, so a
    ///     restarted process cannot hand out an id it handed out before its clock stepped back.
    public init(
        node: UInt16,
        floor: Snowflake? = nil,
        wallClockMilliseconds: @escaping Clock = SnowflakeGenerator.systemWallClockMilliseconds,
        monotonicNanoseconds: @escaping Clock = SnowflakeGenerator.systemMonotonicNanoseconds
    ) {
        precondition(node <= Snowflake.maxNode, "snowflake node must be below 1024")
        self.node = node
        self.wallClockMilliseconds = wallClockMilliseconds
        self.monotonicNanoseconds = monotonicNanoseconds
        if let floor {
            state.withLock {
                $0.lastMilliseconds = floor.millisecondsSinceEpoch
                $0.sequence = Snowflake.maxSequence // the next id moves to a later millisecond
                $0.started = true
            }
        }
    }

    /// Makes sure every later id is above `id` (after loading stored data, for example).
    public func advance(past id: Snowflake) {
        state.withLock { s in
            let ms = id.millisecondsSinceEpoch
            if !s.started || ms > s.lastMilliseconds {
                s.lastMilliseconds = ms
                s.sequence = Snowflake.maxSequence
                s.started = true
            }
        }
    }

    public func next() -> Snowflake {
        state.withLock { s in
            let now = millisecondsSinceEpoch()
            if !s.started || now > s.lastMilliseconds {
                s.lastMilliseconds = now
                s.sequence = 0
                s.started = true
            } else if s.sequence < Snowflake.maxSequence {
                s.sequence += 1
            } else {
                // 4096 ids in this millisecond: wait for the next one (bounded, see above).
                let waitStart = monotonicNanoseconds()
                while true {
                    let wall = millisecondsSinceEpoch()
                    if wall > s.lastMilliseconds {
                        s.lastMilliseconds = wall
                        break
                    }
                    if monotonicNanoseconds() &- waitStart >= 1_000_000 {
                        s.lastMilliseconds += 1
                        break
                    }
                    sched_yield()
                }
                s.sequence = 0
            }
            return Snowflake(millisecondsSinceEpoch: s.lastMilliseconds, node: node, sequence: s.sequence)
        }
    }

    private func millisecondsSinceEpoch() -> UInt64 {
        let wall = wallClockMilliseconds()
        return wall > Snowflake.epochMilliseconds ? wall - Snowflake.epochMilliseconds : 0
    }

    public static let systemWallClockMilliseconds: Clock = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }

    public static let systemMonotonicNanoseconds: Clock = {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
