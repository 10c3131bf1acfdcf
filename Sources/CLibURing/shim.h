// Why this shim exists:
// - liburing.h uses types from the libc and kernel headers without including all of them itself,
//   so they are included first, in this order, or the Swift importer fails on a clean machine.
// - Swift cannot call function-like macros (io_uring_for_each_cqe) or see flags built from enums
//   (IOSQE_IO_LINK), so each one the engine needs has a static inline or static const twin here.
// - liburing's static inline helpers (io_uring_prep_*) are imported as they are.
#ifndef SOCIALDB_CLIBURING_SHIM_H
#define SOCIALDB_CLIBURING_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <linux/io_uring.h>
#include <liburing.h>

static const unsigned socialdb_IOSQE_IO_LINK = IOSQE_IO_LINK;
static const unsigned socialdb_IORING_FSYNC_DATASYNC = IORING_FSYNC_DATASYNC;

/// Heap-allocates a ring (struct io_uring is large and must not move once initialised).
static inline struct io_uring *socialdb_uring_alloc(void) {
    return (struct io_uring *)calloc(1, sizeof(struct io_uring));
}

/// Sets the user data of a submission entry (a tag the completion carries back).
static inline void socialdb_sqe_set_data64(struct io_uring_sqe *sqe, uint64_t data) {
    io_uring_sqe_set_data64(sqe, data);
}

static inline void socialdb_sqe_set_flags(struct io_uring_sqe *sqe, unsigned flags) {
    io_uring_sqe_set_flags(sqe, flags);
}

/// Peeks one completion without waiting; returns 0 and fills *cqe, or -EAGAIN when none is ready.
static inline int socialdb_peek_cqe(struct io_uring *ring, struct io_uring_cqe **cqe) {
    return io_uring_peek_cqe(ring, cqe);
}

static inline void socialdb_cqe_seen(struct io_uring *ring, struct io_uring_cqe *cqe) {
    io_uring_cqe_seen(ring, cqe);
}


// Read sections (StorageEngine/Support/ReadSections.swift): Swift cannot call the variadic
// syscall(2), and has no compiler-only fence.
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>

static const int socialdb_MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
static const int socialdb_MEMBARRIER_CMD_PRIVATE_EXPEDITED = MEMBARRIER_CMD_PRIVATE_EXPEDITED;

/// membarrier(2): 0 on success, -1 with errno when the kernel lacks the command.
static inline int socialdb_membarrier(int command) {
    return (int)syscall(__NR_membarrier, command, 0, 0);
}

/// Asks the CPU to start loading the cache line at `address` (no fault if it is unmapped).
static inline void socialdb_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// The same for a line about to be written.
static inline void socialdb_prefetch_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

/// Keeps the compiler from moving memory accesses across it; emits no instruction.
static inline void socialdb_compiler_barrier(void) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/// The calling thread's read-section slot, cached in a C thread-local: Swift has no
/// thread-local variables, and pthread_getspecific is a call of about 17 instructions on
/// every lock-free graph read. Each compiled unit that inlines these gets its own copy of the
/// variable (it is static; the importer emits the functions into every LLVM module that calls
/// them), so the getter and setter must be called from the same place (`ReadSections.current`).
/// Every copy is filled from the one pthread key, so all copies of a thread hold the same
/// slot. NULL until the thread's first section in that unit.
static inline void **socialdb_read_slot_cache(void) {
    // A function-local static: the Swift importer emits it with the function (a file-level
    // static variable of a header would be left undefined).
    static __thread void *cache;
    return &cache;
}

static inline void *socialdb_read_slot(void) {
    return *socialdb_read_slot_cache();
}

static inline void socialdb_set_read_slot(void *slot) {
    *socialdb_read_slot_cache() = slot;
}

// Group commit in the log (StorageEngine/Log/Log.swift): an appender waiting for its batch's
// fdatasync sleeps on a 32-bit word of that batch (futex(2)), so the leader wakes exactly the
// appenders whose records became durable and they return without taking the log's lock.
// Swift's Synchronization module has no futex, and syscall(2) is variadic.
#include <linux/futex.h>
#include <limits.h>

static inline uint32_t socialdb_load_u32(const uint32_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

static inline void socialdb_increment_u32(uint32_t *word) {
    __atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
}

/// Sleeps while *word == expected (returns at once if it differs); a wake or a signal may
/// also return early, so callers re-check their condition in a loop.
static inline void socialdb_futex_wait(uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

/// Wakes every thread sleeping on `word`.
static inline void socialdb_futex_wake_all(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

#endif
