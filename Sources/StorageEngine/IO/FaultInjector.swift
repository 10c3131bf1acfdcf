import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one seam every file-layer syscall passes through, so tests can make any of them fail.
///
/// A `FileSystem` built with an injector asks it before each operation (on both backends). A rule
/// names an operation, optionally a path fragment, and which matching calls it hits (the Nth, or
/// every one from the Nth on); its action is to fail with an errno, for writes to write only a
/// prefix (a short write, as a full disk or a signal can cause), or to be slow (a delay).
///
/// Thread safety: rules and counters are behind a mutex; any thread may call `check`.
public final class FaultInjector: Sendable {
    public enum Action: Sendable, Equatable {
        /// The call fails with this errno and does nothing.
        case fail(errno: Int32)
        /// A write transfers at most this many bytes of its buffer (a short write).
        case shortWrite(maxBytes: Int)
        /// The call waits this long, then runs normally (a slow disk: makes concurrency tests
        /// deterministic, e.g. group commit). `check` sleeps and returns nil for it.
        case delay(microseconds: UInt32)
    }

    public struct Rule: Sendable {
        public var operation: IOOperation
        public var pathContains: String?
        /// The 1-based index, among calls matching operation and path, of the first call hit.
        public var nth: Int
        /// Whether every later matching call is hit as well (a disk that stays full).
        public var sticky: Bool
        public var action: Action

        public init(operation: IOOperation, pathContains: String? = nil, nth: Int = 1, sticky: Bool = false, action: Action) {
            precondition(nth >= 1, "calls are counted from 1")
            self.operation = operation
            self.pathContains = pathContains
            self.nth = nth
            self.sticky = sticky
            self.action = action
        }
    }

    private struct State {
        var rules: [(rule: Rule, seen: Int)] = []
        var hits = 0
    }

    private let state = Mutex(State())
    /// A simulated power cut under the file layer, if the test wants one (see `CrashSimulator`).
    public let crash: CrashSimulator?

    public init(_ rules: [Rule] = [], crash: CrashSimulator? = nil) {
        self.crash = crash
        state.withLock { $0.rules = rules.map { ($0, 0) } }
    }

    public func add(_ rule: Rule) {
        state.withLock { $0.rules.append((rule, 0)) }
    }

    public func removeAll() {
        state.withLock { $0.rules.removeAll() }
    }

    /// How many calls the rules have hit so far.
    public var hits: Int { state.withLock { $0.hits } }

    /// The action for this call, if a rule hits it. Counts the call against every matching rule.
    public func check(_ operation: IOOperation, path: String) -> Action? {
        if let crash, crash.shouldFail(operation) { return .fail(errno: EIO) }
        let action = state.withLock { s in
            var result: Action?
            for i in s.rules.indices where s.rules[i].rule.operation == operation {
                let rule = s.rules[i].rule
                if let fragment = rule.pathContains, !path.contains(fragment) { continue }
                s.rules[i].seen += 1
                let seen = s.rules[i].seen
                if result == nil && (seen == rule.nth || (rule.sticky && seen > rule.nth)) {
                    result = rule.action
                }
            }
            if result != nil { s.hits += 1 }
            return result
        }
        if case .delay(let microseconds)? = action {
            usleep(microseconds)
            return nil
        }
        return action
    }
}
