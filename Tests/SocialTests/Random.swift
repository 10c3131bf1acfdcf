#if canImport(Glibc)
import Glibc
#endif

/// A small seeded generator (xorshift64*) for the randomized tests of this target, so a failing
/// run prints a seed to rerun with `SOCIALDB_SEED=<seed>`.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// A seed from SOCIALDB_SEED, or a new one from the clock.
    static func seed() -> UInt64 {
        if let env = getenv("SOCIALDB_SEED"), let seed = UInt64(String(cString: env)) { return seed }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_nsec) ^ UInt64(ts.tv_sec) << 20
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }
}
