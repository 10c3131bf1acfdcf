import CLibURing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Read-side critical sections that take no lock and do no atomic read-modify-write: a small
/// userspace RCU for structures that publish immutable memory (the graph store's base) and
/// free the memory they replace only once no reader can still be inside it.
///
/// Every thread that reads gets one slot (a cache line of its own) the first time, kept in a
/// process-wide registry and handed to a later thread when its thread exits. A slot holds a
/// sequence number, odd while its thread is inside a section:
/// - `enter()` stores sequence+1, `exit()` stores sequence+2 with release ordering (the loads of
///   the section are done before it);
/// - a writer first makes the old memory unreachable (a sequentially consistent store of the new
///   pointer), then calls `synchronize()`, which waits until every slot that was odd has moved
///   on. After that no reader can hold the old pointer, and it may be freed.
///
/// The loads of a section must not be performed before its `enter()` store is visible to the
/// writer. Where Linux's membarrier(2) with PRIVATE_EXPEDITED is available (registered once per
/// process), the reader pays only a compiler barrier: `synchronize()` runs membarrier first,
/// which puts a full memory barrier on every running thread of the process, so any reader
/// whose odd store the writer cannot see yet will load the new pointer (the asymmetric-fence
/// scheme of liburcu's "memb" flavour). Elsewhere `enter()` stores with sequentially consistent
/// ordering, one fence per section. Either way a reader never writes a shared cache line.
///
/// Sections do not nest, and a thread inside one must not call `synchronize()` (it would wait
/// for itself). Readers keep sections short: no callbacks into caller code inside one.
@usableFromInline
enum ReadSections {
    @usableFromInline
    struct Slot {
        @usableFromInline let sequence: UnsafeMutablePointer<Atomic<UInt64>>

        @inlinable
        init(sequence: UnsafeMutablePointer<Atomic<UInt64>>) { self.sequence = sequence }

        @inlinable @inline(__always)
        func enter() {
            let s = sequence.pointee.load(ordering: .relaxed)
            // The word after the sequence holds `registry.asymmetric` (set at registration), so
            // a section does not go through the registry's lazy initializer.
            if (sequence + 1).pointee.load(ordering: .relaxed) != 0 {
                sequence.pointee.store(s &+ 1, ordering: .relaxed)
                socialdb_compiler_barrier()
            } else {
                sequence.pointee.store(s &+ 1, ordering: .sequentiallyConsistent)
            }
        }

        @inlinable @inline(__always)
        func exit() {
            let s = sequence.pointee.load(ordering: .relaxed)
            sequence.pointee.store(s &+ 1, ordering: .releasing)
        }
    }

    /// The calling thread's slot (registered on first use). Read from a C thread-local
    /// (`socialdb_read_slot`), filled from the pthread key on a thread's first call. The set
    /// sits here, beside the read, because each compiled unit that inlines this has its own
    /// copy of the C static: filled anywhere else, this copy would stay empty.
    @inlinable @inline(__always)
    static func current() -> Slot {
        if let cached = socialdb_read_slot() {
            return Slot(sequence: cached.assumingMemoryBound(to: Atomic<UInt64>.self))
        }
        let slot = registeredSlot()
        socialdb_set_read_slot(UnsafeMutableRawPointer(slot))
        return Slot(sequence: slot)
    }

    /// The thread's slot from the pthread key, registered if it has none yet.
    @usableFromInline @inline(never)
    static func registeredSlot() -> UnsafeMutablePointer<Atomic<UInt64>> {
        if let raw = pthread_getspecific(registry.key) {
            return raw.assumingMemoryBound(to: Atomic<UInt64>.self)
        }
        return registry.register()
    }

    /// Waits until every reader that was inside a section when called has left it.
    static func synchronize() {
        if registry.asymmetric {
            let status = socialdb_membarrier(socialdb_MEMBARRIER_CMD_PRIVATE_EXPEDITED)
            precondition(status == 0, "membarrier failed after registering: errno \(errno)")
        }
        let slots = registry.snapshot()
        for slot in slots {
            let seen = slot.pointee.load(ordering: .sequentiallyConsistent)
            guard seen & 1 == 1 else { continue }
            var spins = 0
            while slot.pointee.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > 64 { sched_yield() }
            }
        }
    }

    @usableFromInline
    static let registry = Registry()

    @usableFromInline
    final class Registry: @unchecked Sendable {
        // @unchecked: `slots` and `free` are touched only with `mutex` held; `key` is set once.
        @usableFromInline let key: pthread_key_t
        /// Whether membarrier(2) stands in for the readers' fences (see above).
        @usableFromInline let asymmetric: Bool
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private var slots: [UnsafeMutablePointer<Atomic<UInt64>>] = []
        private var free: [UnsafeMutablePointer<Atomic<UInt64>>] = []
        /// Slots are 64 bytes apart so two readers never share a cache line.
        private static let stride = 64 / MemoryLayout<Atomic<UInt64>>.stride

        init() {
            pthread_mutex_init(mutex, nil)
            var key = pthread_key_t()
            let status = pthread_key_create(&key) { raw in
                // Thread exit: the slot is even (outside any section); hand it to a later thread.
                guard let raw else { return }
                ReadSections.registry.release(raw.assumingMemoryBound(to: Atomic<UInt64>.self))
            }
            precondition(status == 0, "pthread_key_create failed: \(status)")
            self.key = key
            asymmetric = socialdb_membarrier(socialdb_MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        }

        @usableFromInline
        func register() -> UnsafeMutablePointer<Atomic<UInt64>> {
            pthread_mutex_lock(mutex)
            let slot: UnsafeMutablePointer<Atomic<UInt64>>
            if let reused = free.popLast() {
                slot = reused
            } else {
                let raw = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
                slot = raw.bindMemory(to: Atomic<UInt64>.self, capacity: Self.stride)
                slot.initialize(to: Atomic(0))
                // Beside the sequence, read by `enter()`: whether membarrier stands in for fences.
                (slot + 1).initialize(to: Atomic(asymmetric ? 1 : 0))
                slots.append(slot)
            }
            pthread_mutex_unlock(mutex)
            pthread_setspecific(key, UnsafeRawPointer(slot))
            return slot
        }

        func release(_ slot: UnsafeMutablePointer<Atomic<UInt64>>) {
            pthread_mutex_lock(mutex)
            free.append(slot)
            pthread_mutex_unlock(mutex)
        }

        func snapshot() -> [UnsafeMutablePointer<Atomic<UInt64>>] {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return slots
        }
    }
}
