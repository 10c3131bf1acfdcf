#if SOCIALDB_TSAN
#if canImport(Glibc)
import Glibc
#endif

/// Under ThreadSanitizer only (scripts/sanitize builds the thread run with `-DSOCIALDB_TSAN`):
/// `Mutex` in this module is this pthread mutex, which TSan sees. `Synchronization.Mutex` locks
/// with raw futex calls that TSan does not intercept, so every access it guards would be
/// reported as a race (a false positive). The module's own declaration shadows the imported
/// one; ordinary builds never compile this file's contents. Sources/Social/TSanMutex.swift is a
/// symbolic link to this file: each module needs its own copy of the shadowing declaration.
/// So are Tests/StorageEngineTests/TSanMutex.swift and Tests/SocialTests/TSanMutex.swift: the
/// tests guard their own results with `Mutex` from many threads, and without the shadow TSan
/// reported a "Swift access race" on one (LogGroupCommitTests, an append's LSN recorded under
/// the lock) and halted the run.
final class Mutex<Value: ~Copyable>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `lock` held. Both live outside the object (a
    // class property's inout access is itself instrumented, and a zero-sized value shares its
    // address with its neighbour: TSan reported "Swift access races" on them).
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initial: consuming Value) {
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value.pointee)
    }
}
#endif
