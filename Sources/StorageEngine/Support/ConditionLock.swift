#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with one condition variable, for threads that must block until state changes
/// (group commit followers, background flushers). `Synchronization.Mutex` has no condition.
///
/// Lifetime: both pthread objects are heap-allocated once (they must not move) and destroyed in
/// deinit; nobody may hold or wait on the lock by then.
public final class ConditionLock: @unchecked Sendable {
    // @unchecked: the pthread objects are themselves the synchronisation.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// A second condition on the same mutex, for one kind of waiter that must not be woken by
    /// (or wake) everyone else: the log's group-commit leader waiting for followers.
    private let second: UnsafeMutablePointer<pthread_cond_t>
    /// A third, for one more such kind: the log's next group-commit leader, waiting for the write
    /// in flight to end and then for the appenders it gathers (the second is the log's
    /// background writer's).
    private let third: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        second = .allocate(capacity: 1)
        third = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_cond_init(second, &attributes)
        pthread_cond_init(third, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_cond_destroy(second)
        pthread_cond_destroy(third)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        second.deallocate()
        third.deallocate()
        mutex.deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a broadcast; the lock must be held, and is held again on return.
    @inline(__always) public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a broadcast or until `nanoseconds` pass; returns false on timeout.
    @discardableResult
    public func wait(nanoseconds: UInt64) -> Bool {
        wait(on: condition, nanoseconds: nanoseconds)
    }

    /// Waits on the second condition for `signalSecond()` or until `nanoseconds` pass.
    @discardableResult
    public func waitSecond(nanoseconds: UInt64) -> Bool {
        wait(on: second, nanoseconds: nanoseconds)
    }

    /// Wakes one waiter of the second condition; the lock must be held.
    @inline(__always) public func signalSecond() { pthread_cond_signal(second) }

    /// Waits on the third condition for `signalThird()` or until `nanoseconds` pass.
    @discardableResult
    public func waitThird(nanoseconds: UInt64) -> Bool {
        wait(on: third, nanoseconds: nanoseconds)
    }

    /// Waits on the third condition for `signalThird()`.
    @inline(__always) public func waitThird() { pthread_cond_wait(third, mutex) }

    /// Wakes one waiter of the third condition; the lock must be held.
    @inline(__always) public func signalThird() { pthread_cond_signal(third) }

    private func wait(on condition: UnsafeMutablePointer<pthread_cond_t>, nanoseconds: UInt64) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = UInt64(now.tv_nsec) + nanoseconds % 1_000_000_000
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + Int(nanoseconds / 1_000_000_000) + Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        return pthread_cond_timedwait(condition, mutex, &deadline) == 0
    }

    @inline(__always) public func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts a plain OS thread running `body` (the engine's background work must not occupy the
/// Swift concurrency pool, which has one thread per core here). Returns a handle to join it.
public final class BackgroundThread: @unchecked Sendable {
    // @unchecked: `thread` is written once before any other thread can see the handle.
    private var thread = pthread_t()
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    public init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    public func join() {
        pthread_join(thread, nil)
    }
}
