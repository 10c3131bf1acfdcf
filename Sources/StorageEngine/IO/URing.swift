import CLibURing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One read, write or sync in a batch handed to a backend.
///
/// `result` is filled in by the backend: bytes transferred (reads and writes) or 0 (syncs), or
/// `-errno`. `linkedToNext` asks the io_uring backend to start the next op only after this one
/// completes in full (IOSQE_IO_LINK); the POSIX backend runs ops in order anyway.
@usableFromInline
struct IOOp {
    @usableFromInline enum Kind: UInt8 { case read, write, fdatasync, fsync }

    @usableFromInline var kind: Kind
    @usableFromInline var fd: Int32
    @usableFromInline var address: UnsafeMutableRawPointer?
    @usableFromInline var length: Int
    @usableFromInline var offset: UInt64
    @usableFromInline var linkedToNext: Bool
    @usableFromInline var result: Int32

    @usableFromInline
    init(kind: Kind, fd: Int32, address: UnsafeMutableRawPointer?, length: Int, offset: UInt64, linkedToNext: Bool = false) {
        self.kind = kind
        self.fd = fd
        self.address = address
        self.length = length
        self.offset = offset
        self.linkedToNext = linkedToNext
        self.result = 0
    }
}

/// The io_uring instances of one `FileSystem`: a batch takes an idle ring, runs on it and gives
/// it back, so batches of different threads run side by side. One shared ring (a batch holds
/// its ring until its last completion) made every write wait behind any fdatasync in flight:
/// the log's interval sync or a table's seal held the ring for milliseconds while posters'
/// log writes queued behind it, each then a sleep and a wakeup.
///
/// Rings are made on demand, as many as batches run at once (at most `maxRings`; past that a
/// batch waits for one to come back), and kept for reuse until the file system goes. When a
/// ring is retired (a submission the kernel kept refusing, see `URing.runChunk`) the whole pool
/// is: `run` answers false from then on and the file system runs every op with POSIX calls.
final class URingPool: Sendable {
    struct State {
        var idle: [URing] = []
        var made = 0
        var retired = false
    }

    let entries: Int
    private let state: Mutex<State>
    static var maxRings: Int { 64 }

    /// Sets up the first ring; throws the errno when the kernel refuses.
    init(entries: Int) throws(IOError) {
        self.entries = entries
        let first = try URing(entries: entries)
        state = Mutex(State(idle: [first], made: 1, retired: false))
    }

    /// Rings made so far (idle or running a batch).
    var ringsMade: Int { state.withLock { $0.made } }

    /// Runs `ops` on an idle ring (see `URing.run`). False, running nothing, when the pool is
    /// retired or no ring can be had (the kernel refused a new one): the caller runs the ops
    /// another way.
    func run(_ ops: UnsafeMutableBufferPointer<IOOp>) -> Bool {
        guard let ring = acquire() else { return false }
        let ran = ring.run(ops)
        let retired = !ran || ring.isRetired
        state.withLock { s in
            if retired { s.retired = true } else { s.idle.append(ring) }
        }
        return ran
    }

    /// An idle ring, a new one when none is idle, nil when retired or when a new ring cannot
    /// be set up.
    func acquire() -> URing? {
        while true {
            enum Step { case take(URing), make, wait, none }
            let step = state.withLock { s -> Step in
                if s.retired { return .none }
                if let ring = s.idle.popLast() { return .take(ring) }
                if s.made < Self.maxRings { s.made += 1; return .make }
                return .wait
            }
            switch step {
            case .take(let ring): return ring
            case .none: return nil
            case .wait: sched_yield()
            case .make:
                if let ring = try? URing(entries: entries) { return ring }
                state.withLock { $0.made -= 1 }
                return nil
            }
        }
    }

    /// Gives back a ring `acquire` returned without running anything on it.
    func release(_ ring: URing) {
        state.withLock { $0.idle.append(ring) }
    }
}

/// One io_uring instance (liburing), used by one batch at a time (see `URingPool`).
///
/// Thread safety: a ring's submission and completion queues have one producer and one consumer,
/// so every use holds `lock` from the first prepared entry until the last completion is reaped
/// (uncontended: the pool hands a ring to one batch at a time). A batch is one critical
/// section: prepare up to `entries` ops, one `io_uring_submit_and_wait`, reap exactly as many
/// completions.
///
/// Lifetime: `ring` is heap-allocated (the struct must not move once initialised) and freed in
/// deinit after `io_uring_queue_exit`.
final class URing: @unchecked Sendable {
    // @unchecked: the ring pointer and `broken` are only touched while `lock` is held.
    private let ring: UnsafeMutablePointer<io_uring>
    let entries: Int
    private let lock = Mutex(())
    /// Set (under `lock`) when a submission failed with entries the kernel did not take: they
    /// cannot be withdrawn, so the ring is never entered again (see `runChunk`).
    private var broken = false

    /// Sets up a ring; throws the errno when the kernel refuses (ENOSYS, EPERM in sandboxes, ENOMEM).
    init(entries: Int) throws(IOError) {
        precondition(entries > 0 && entries <= 4096, "ring size out of range")
        guard let ring = socialdb_uring_alloc() else {
            throw IOError(errno: ENOMEM, operation: .open, path: "io_uring")
        }
        let rc = io_uring_queue_init(UInt32(entries), ring, 0)
        if rc < 0 {
            free(ring)
            throw IOError(errno: -rc, operation: .open, path: "io_uring")
        }
        self.ring = ring
        self.entries = entries
    }

    deinit {
        io_uring_queue_exit(ring)
        free(ring)
    }

    /// Whether a failed submission retired the ring.
    var isRetired: Bool { lock.withLock { _ in broken } }

    /// Runs `ops` and fills in each `result`. Ops whose `result` is already negative on entry
    /// (failed by the fault injector) are not submitted. Chains of linked ops are never split
    /// across two submissions. Returns false, running nothing, once the ring is retired
    /// (a failed submission, see `runChunk`): the caller runs the ops another way.
    func run(_ ops: UnsafeMutableBufferPointer<IOOp>) -> Bool {
        lock.withLock { _ in
            if broken { return false }
            var start = 0
            while start < ops.count {
                // Take up to `entries` ops, shrinking so the chunk does not end inside a chain.
                var end = min(ops.count, start + entries)
                while end > start + 1 && ops[end - 1].linkedToNext && end < ops.count { end -= 1 }
                runChunk(ops, start, end)
                start = end
                if broken {
                    // The rest of the batch never reached the ring.
                    for i in start..<ops.count where ops[i].result >= 0 { ops[i].result = -EIO }
                    break
                }
            }
            return true
        }
    }

    private func runChunk(_ ops: UnsafeMutableBufferPointer<IOOp>, _ start: Int, _ end: Int) {
        var submitted = 0
        for i in start..<end where ops[i].result >= 0 {
            guard let sqe = io_uring_get_sqe(ring) else {
                preconditionFailure("io_uring submission queue full inside a chunk no larger than the ring")
            }
            let op = ops[i]
            switch op.kind {
            case .read:
                io_uring_prep_read(sqe, op.fd, op.address, UInt32(op.length), op.offset)
            case .write:
                io_uring_prep_write(sqe, op.fd, op.address, UInt32(op.length), op.offset)
            case .fdatasync:
                io_uring_prep_fsync(sqe, op.fd, socialdb_IORING_FSYNC_DATASYNC)
            case .fsync:
                io_uring_prep_fsync(sqe, op.fd, 0)
            }
            // Link only to an op that is itself submitted in this chunk.
            let linkNext = op.linkedToNext && i + 1 < end && ops[i + 1].result >= 0
            socialdb_sqe_set_flags(sqe, linkNext ? socialdb_IOSQE_IO_LINK : 0)
            socialdb_sqe_set_data64(sqe, UInt64(i))
            submitted += 1
        }
        if submitted == 0 { return }
        // The kernel may take fewer entries than it was given (it returns how many it took);
        // the rest are still queued and are submitted again, so exactly `submitted` completions
        // are owed before the lock is released and no completion of this chunk can be reaped
        // by a later batch (whose indexes and buffers are different).
        var taken = 0
        var failure: Int32 = 0
        var attempts = 0
        while taken < submitted {
            let rc = taken == 0 ? io_uring_submit_and_wait(ring, UInt32(submitted)) : io_uring_submit(ring)
            if rc == -EINTR { continue }
            if rc > 0 { taken += Int(rc); continue }
            // 0 or a transient refusal (EAGAIN, EBUSY): a bounded number of retries.
            attempts += 1
            if attempts > 100 || (rc < 0 && rc != -EAGAIN && rc != -EBUSY) {
                failure = rc < 0 ? rc : -EIO
                break
            }
            sched_yield()
        }
        if failure != 0 {
            // Entries the kernel did not take stay published in the submission queue and no
            // entry can be withdrawn, so the next io_uring_enter would submit them into buffers
            // their callers freed. The ring is retired: nothing calls into it again, and the
            // file system runs every later op with POSIX calls. What was taken completes and is
            // reaped; the rest are reported failed.
            broken = true
            // The kernel takes entries in queue order: the first `taken` submitted ops.
            var seen = 0
            for i in start..<end where ops[i].result >= 0 {
                if seen >= taken { ops[i].result = failure }
                seen += 1
            }
            reap(ops, taken)
            return
        }
        reap(ops, submitted)
    }

    /// Waits for and records `count` completions (each names its op by index).
    private func reap(_ ops: UnsafeMutableBufferPointer<IOOp>, _ count: Int) {
        var reaped = 0
        while reaped < count {
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            var wrc = io_uring_wait_cqe(ring, &cqe)
            while wrc == -EINTR { wrc = io_uring_wait_cqe(ring, &cqe) }
            guard wrc == 0, let cqe else {
                preconditionFailure("io_uring_wait_cqe failed with \(wrc) while completions were owed")
            }
            ops[Int(cqe.pointee.user_data)].result = cqe.pointee.res
            socialdb_cqe_seen(ring, cqe)
            reaped += 1
        }
    }
}
