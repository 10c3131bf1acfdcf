import Synchronization

/// Failed logins per client address, across its connections: past `failuresMax` in a window
/// of `windowSeconds` (counted from the first failure), AUTH from that address is answered
/// `rate_limited` at once, without computing a password hash. This stops a guesser that cycles
/// handles over new connections (the Social layer limits failures per handle; a session closes
/// after 20 of its own), and it bounds the CPU an attacker can make the server spend in scrypt.
///
/// Thread safety: a mutex around the table. Memory: at most `addressesMax` addresses; when
/// full, expired windows are dropped, then everything (a flood of addresses gets fresh windows,
/// not memory).
final class LoginGuard: Sendable {
    private struct Window {
        var startNanoseconds: UInt64
        var failures: Int
    }

    let failuresMax: Int
    let windowNanoseconds: UInt64
    static let addressesMax = 100_000
    private let table = Mutex<[String: Window]>([:])

    init(failuresMax: Int, windowSeconds: Int) {
        self.failuresMax = failuresMax
        windowNanoseconds = UInt64(max(1, windowSeconds)) * 1_000_000_000
    }

    /// Seconds until `address` may try again, or nil if it may now.
    func retryAfterSeconds(_ address: String) -> UInt64? {
        guard failuresMax > 0 else { return nil }
        let now = monotonicNanoseconds()
        return table.withLock { table -> UInt64? in
            guard let window = table[address], now - window.startNanoseconds < windowNanoseconds,
                  window.failures >= failuresMax else { return nil }
            return (window.startNanoseconds + windowNanoseconds - now) / 1_000_000_000 + 1
        }
    }

    func recordFailure(_ address: String) {
        guard failuresMax > 0 else { return }
        let now = monotonicNanoseconds()
        table.withLock { table in
            if table.count >= Self.addressesMax && table[address] == nil {
                table = table.filter { now - $0.value.startNanoseconds < windowNanoseconds }
                if table.count >= Self.addressesMax { table.removeAll(keepingCapacity: true) }
            }
            if var window = table[address], now - window.startNanoseconds < windowNanoseconds {
                window.failures += 1
                table[address] = window
            } else {
                table[address] = Window(startNanoseconds: now, failures: 1)
            }
        }
    }
}
