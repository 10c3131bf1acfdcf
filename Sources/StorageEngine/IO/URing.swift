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

/// An io_uring instance (liburing), shared by the threads of one `FileSystem`.
///
/// Thread safety: a ring's submission and completion queues have one producer and one consumer,
/// so every use holds `lock` from the first prepared entry until the last completion is reaped.
/// A batch is therefore one critical section: prepare up to `entries` ops, one
/// `io_uring_submit_and_wait`, reap exactly as many completions.
///
/// Lifetime: `ring` is heap-allocated (the struct must not move once initialised) and freed in
/// deinit after `io_uring_queue_exit`.
final class URing: @unchecked Sendable {
    // @unchecked: the ring pointer is only touched while `lock` is held.
    private let ring: UnsafeMutablePointer<io_uring>
    let entries: Int
    private let lock = Mutex(())

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

    /// Runs `ops` and fills in each `result`. Ops whose `result` is already negative on entry
    /// (failed by the fault injector) are not submitted. Chains of linked ops are never split
    /// across two submissions.
    func run(_ ops: UnsafeMutableBufferPointer<IOOp>) {
        lock.withLock { _ in
            var start = 0
            while start < ops.count {
                // Take up to `entries` ops, shrinking so the chunk does not end inside a chain.
                var end = min(ops.count, start + entries)
                while end > start + 1 && ops[end - 1].linkedToNext && end < ops.count { end -= 1 }
                runChunk(ops, start, end)
                start = end
            }
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
        var rc: Int32
        repeat {
            rc = io_uring_submit_and_wait(ring, UInt32(submitted))
        } while rc == -EINTR
        if rc < 0 {
            // The kernel took none of them: report the error on each op of the chunk.
            io_uring_submit(ring) // no-op if nothing is queued; keeps the queue consistent
            for i in start..<end where ops[i].result >= 0 { ops[i].result = rc }
            return
        }
        var reaped = 0
        while reaped < submitted {
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            var wrc = io_uring_wait_cqe(ring, &cqe)
            while wrc == -EINTR { wrc = io_uring_wait_cqe(ring, &cqe) }
            guard wrc == 0, let cqe else {
                preconditionFailure("io_uring_wait_cqe failed with \(wrc) while completions were owed")
            }
            let index = Int(cqe.pointee.user_data)
            ops[index].result = cqe.pointee.res
            socialdb_cqe_seen(ring, cqe)
            reaped += 1
        }
    }
}
