import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A reader-writer lock whose readers do not share a cache line: each reader counts itself on
/// one of `stripes` counters (a line each, picked by a hash of its thread), so reads on several
/// cores never bounce a line between them, where `ReadWriteLock` (a pthread rwlock) makes every
/// read and unlock a read-modify-write of one shared word. The home-timeline store uses it: its
/// reads are a few hundred nanoseconds, and that shared word was what kept two reading threads
/// from going twice as fast as one.
///
/// Writers first, one at a time: a writer takes `writerMutex`, raises `writing`, and waits until
/// every stripe is zero. A reader increments its stripe and then checks `writing` (both
/// sequentially consistent, so the writer sees the reader or the reader sees the writer, never
/// neither); if a writer is there it takes its count back and sleeps on `writerMutex` until the
/// writer is done, then tries again. So a steady stream of readers cannot starve a writer, and
/// waiting readers sleep instead of spinning. A writer waits for readers already inside with
/// `sched_yield`: read sections are short.
///
/// Two threads whose hashes collide share a stripe: still correct, only not contention-free.
/// Not reentrant (a reader must not take the write lock, nor a writer the read lock).
public final class StripedReadWriteLock: @unchecked Sendable {
    // @unchecked: the state is atomics and a pthread mutex, allocated once, freed in deinit.
    @usableFromInline static var stripes: Int { 32 }
    @usableFromInline static var intsPerLine: Int { 64 / MemoryLayout<Int>.stride }
    /// Line 0: `writing` (1 while a writer holds or waits for the lock); lines 1...stripes: the
    /// readers' counts.
    @usableFromInline let lines: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let writerMutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        let count = (Self.stripes + 1) * Self.intsPerLine
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Int>.stride, alignment: 64)
        lines = raw.bindMemory(to: Atomic<Int>.self, capacity: count)
        for i in 0..<count { (lines + i).initialize(to: Atomic(0)) }
        writerMutex = .allocate(capacity: 1)
        pthread_mutex_init(writerMutex, nil)
    }

    deinit {
        pthread_mutex_destroy(writerMutex)
        writerMutex.deallocate()
        lines.deinitialize(count: (Self.stripes + 1) * Self.intsPerLine)
        UnsafeMutableRawPointer(lines).deallocate()
    }

    /// The calling thread's counter: pthread_self is its control block, spread by a
    /// multiplicative hash.
    @inlinable @inline(__always)
    func readerCounter() -> UnsafeMutablePointer<Atomic<Int>> {
        let id = UInt(pthread_self())
        let stripe = Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 59) & (Self.stripes - 1)
        return lines + (stripe + 1) * Self.intsPerLine
    }

    @inlinable @inline(__always)
    public func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let counter = readerCounter()
        while true {
            counter.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if lines.pointee.load(ordering: .sequentiallyConsistent) == 0 { break }
            counter.pointee.wrappingSubtract(1, ordering: .releasing)
            waitForWriter()
        }
        defer { counter.pointee.wrappingSubtract(1, ordering: .releasing) }
        return try body()
    }

    @inlinable @inline(__always)
    public func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lockWriter()
        defer { unlockWriter() }
        return try body()
    }

    /// Sleeps until the writer that raised `writing` is done (it holds the mutex meanwhile).
    @usableFromInline
    func waitForWriter() {
        pthread_mutex_lock(writerMutex)
        pthread_mutex_unlock(writerMutex)
    }

    @usableFromInline
    func lockWriter() {
        pthread_mutex_lock(writerMutex)
        lines.pointee.store(1, ordering: .sequentiallyConsistent)
        // The common case first, no reader inside: one pass of loads, or-ed (a count is never
        // below zero, so all were zero when each was read, and a reader that comes after
        // sees `writing`). The timeline store takes this lock for every post it fans out.
        var any = 0
        for stripe in 0..<Self.stripes {
            any |= lines[(stripe + 1) * Self.intsPerLine].load(ordering: .sequentiallyConsistent)
        }
        if any == 0 { return }
        for stripe in 0..<Self.stripes {
            let counter = lines + (stripe + 1) * Self.intsPerLine
            var spins = 0
            while counter.pointee.load(ordering: .sequentiallyConsistent) != 0 {
                spins += 1
                if spins > 64 { sched_yield() }
            }
        }
    }

    @usableFromInline
    func unlockWriter() {
        lines.pointee.store(0, ordering: .releasing)
        pthread_mutex_unlock(writerMutex)
    }
}
