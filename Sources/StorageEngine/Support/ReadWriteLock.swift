#if canImport(Glibc)
import Glibc
#endif

/// A pthread reader-writer lock: many concurrent readers or one writer, writers first (a steady
/// stream of readers must not starve the writer). The memtable uses it so point reads and scans
/// run side by side while the single writer inserts; the timeline store so home reads run on
/// every core while fan-out rewrites rings.
public final class ReadWriteLock: @unchecked Sendable {
    // @unchecked: the pthread object is itself the synchronisation; it never moves.
    @usableFromInline let lock: UnsafeMutablePointer<pthread_rwlock_t>

    public init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inlinable @inline(__always)
    public func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    @inlinable @inline(__always)
    public func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
