import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A supply of equal regions of memory (2 MiB of ordinary 4 KiB pages) whose pages a background
/// thread has already faulted in, kept `ahead` regions ahead of a consumer that fills memory
/// front to back: the ring arena's segments (`RingArena`).
///
/// Why: the first touch of fresh anonymous memory costs a page fault and the kernel's clearing
/// of the page, and in a virtual machine whose host reclaims the guest's free memory (the
/// development VM reports free 2 MiB blocks to the host at once) also a fault on the host:
/// 4-18 us per 4 KiB page measured here, so a new store's fan-out, which writes ~300 MB of
/// fresh ring memory, spent a third to a half of its time waiting for first touches. The
/// consumer's thread now takes regions that are already mapped; the faulting runs on another
/// core, in a thread that sleeps whenever `ahead` regions are ready. Its CPU time is counted (`cpuNanoseconds`, each
/// region's own thread clock) so that what the work costs in all is reported, not hidden.
///
/// A consumer that runs faster than the thread gets a region mapped on the spot
/// (`regionsMadeInline`), faulted in by its own writes as before.
///
/// Why not huge pages: a transparent huge page needs a whole free 2 MiB block of the guest,
/// and those are exactly what the VM hands back to the host, so each costs the host's backing
/// of all of it; faulting in 2 MiB took 8-11 ms as one huge page against 0.9-1.9 ms as 4 KiB
/// pages (a C test, `madvise(MADV_POPULATE_WRITE)` of 100 regions, 2026-12-03), which come
/// from the guest's smaller free blocks, still backed. The arena's lines are written by
/// spills (one push in ten) and read past a ring's block, where a TLB miss matters little.
///
/// Thread safety: `take()` and `stop()` are called by one owner at a time (the timeline store
/// under its write lock); the ready list is behind `lock`, shared with the thread. `stop()`
/// joins the thread and unmaps the ready regions; regions handed out belong to the caller.
final class PrefaultedRegions: @unchecked Sendable {
    // @unchecked: `ready` and `stopping` are only touched under `lock`; `thread` only by the owner.
    static let regionBytes = 2 << 20

    /// `regionBytes` of anonymous memory (zero until written), from `mmap`.
    struct Region {
        let base: UnsafeMutableRawPointer
        var byteCount: Int { PrefaultedRegions.regionBytes }

        init?() {
            guard let raw = mmap(nil, PrefaultedRegions.regionBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  raw != MAP_FAILED else { return nil }
            base = raw
        }

        func deallocate() { munmap(base, PrefaultedRegions.regionBytes) }
    }

    /// Regions kept faulted in and ready.
    let ahead: Int
    private let lock = ConditionLock()
    private var ready: [Region] = []
    private var stopping = false
    private var thread: BackgroundThread?
    /// The thread's CPU time spent mapping and faulting in regions, in nanoseconds.
    let cpuNanoseconds = Atomic<Int>(0)
    /// The thread's wall-clock time spent the same way (its CPU time leaves out what the host
    /// spends backing the pages in a virtual machine, which stalls the thread all the same).
    let busyNanoseconds = Atomic<Int>(0)
    /// Regions the thread faulted in.
    let regionsPrefaulted = Atomic<Int>(0)
    /// Regions `take()` had to map itself because none was ready.
    let regionsMadeInline = Atomic<Int>(0)

    init(ahead: Int) {
        precondition(ahead >= 1, "a supply keeps at least one region ready")
        self.ahead = ahead
        ready.reserveCapacity(ahead)
        thread = BackgroundThread { [unowned(unsafe) self] in self.run() }
    }

    /// A region of `regionBytes`, faulted in when one was ready. The caller owns it (and
    /// `deallocate()`s it).
    func take() -> Region {
        let region: Region? = lock.withLock {
            let taken = ready.popLast()
            lock.broadcast()
            return taken
        }
        if let region { return region }
        regionsMadeInline.wrappingAdd(1, ordering: .relaxed)
        guard let mapped = Region() else { fatalError("out of memory for the ring arena") }
        return mapped
    }

    /// Bytes of ready regions (faulted in, not yet handed out).
    var readyBytes: Int { lock.withLock { ready.count } * Self.regionBytes }

    /// Ends the thread and unmaps the ready regions (again: nothing).
    func stop() {
        lock.withLock {
            stopping = true
            lock.broadcast()
        }
        thread?.join()
        thread = nil
        let left = lock.withLock {
            let left = ready
            ready = []
            return left
        }
        for region in left { region.deallocate() }
    }

    private func run() {
        while true {
            let work: Bool = lock.withLock {
                while !stopping && ready.count >= ahead { lock.wait() }
                return !stopping
            }
            guard work else { return }
            let before = Self.threadCPUNanoseconds()
            let started = Self.monotonicNanoseconds()
            guard let region = Region() else { return }
            Self.faultIn(region)
            cpuNanoseconds.wrappingAdd(Self.threadCPUNanoseconds() - before, ordering: .relaxed)
            busyNanoseconds.wrappingAdd(Self.monotonicNanoseconds() - started, ordering: .relaxed)
            regionsPrefaulted.wrappingAdd(1, ordering: .relaxed)
            let kept: Bool = lock.withLock {
                guard !stopping else { return false }
                ready.append(region)
                return true
            }
            if !kept {
                region.deallocate()
                return
            }
        }
    }

    /// Faults every page of `region` in, writable: `MADV_POPULATE_WRITE` (Linux 5.14), else a
    /// write of zero to each 4 KiB page (fresh anonymous memory is zero already).
    private static func faultIn(_ region: Region) {
        if madvise(region.base, region.byteCount, 23 /* MADV_POPULATE_WRITE */) == 0 { return }
        var offset = 0
        while offset < region.byteCount {
            region.base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
            offset &+= 4096
        }
    }

    private static func monotonicNanoseconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return time.tv_sec * 1_000_000_000 + time.tv_nsec
    }

    private static func threadCPUNanoseconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return time.tv_sec * 1_000_000_000 + time.tv_nsec
    }
}

