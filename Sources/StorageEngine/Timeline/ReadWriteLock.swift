#if canImport(Glibc)
import Glibc
#endif

/// A pthread reader-writer lock: many readers at once, or one writer.
///
/// The timeline store needs it because home reads (the hot path, on every core) only read the
/// rings, while fan-out, follows and rebuilds rewrite them; `Synchronization.Mutex` would
/// serialize the readers.
///
/// Lifetime: the pthread object is heap-allocated once (it must not move) and destroyed in
/// deinit; nobody may hold the lock by then.
final class ReadWriteLock: @unchecked Sendable {
    // @unchecked: the pthread object is itself the synchronisation.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        // Writers first: a steady stream of readers must not starve fan-out.
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inline(__always)
    func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    @inline(__always)
    func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
