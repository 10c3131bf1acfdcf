#if canImport(Glibc)
import Glibc
#endif

/// Zeroed anonymous memory for a large table that is read at random, mapped on a 2 MiB boundary
/// and advised as transparent huge pages (`MADV_HUGEPAGE`), so that random reads across it hit
/// the TLB: with 4 KiB pages, every probe of a table of tens of MiB is a TLB miss, and in a
/// virtual machine (nested paging) a miss walks two sets of page tables.
///
/// Only for memory that fills up anyway: the kernel backs each 2 MiB as a whole on first touch
/// (zeroed), so a table whose pages are touched sparsely would cost far more memory and
/// clearing than with small pages (see `RingArena` for where that ruled it out). Where the
/// advice is refused (THP off), the memory is ordinary zeroed pages.
///
/// Pointer rules: `base` is valid from `init` until `deallocate()`, which the owner calls
/// exactly once; it never moves.
struct HugePageRegion {
    static let hugePageBytes = 2 << 20

    /// At least the bytes asked for, zeroed, aligned to `hugePageBytes`.
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    /// The whole mapping (`base` is inside it), for `munmap`.
    private let mapping: UnsafeMutableRawPointer
    private let mappingBytes: Int

    /// Maps `byteCount` bytes (rounded up to whole huge pages), or nil when the system refuses
    /// the mapping (the caller falls back to ordinary allocation).
    init?(byteCount: Int) {
        precondition(byteCount > 0, "an empty region")
        let huge = Self.hugePageBytes
        let rounded = (byteCount + huge - 1) & ~(huge - 1)
        // One huge page more than needed, so an aligned start is inside the mapping.
        let total = rounded + huge
        guard let raw = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            return nil
        }
        let aligned = (Int(bitPattern: raw) + huge - 1) & ~(huge - 1)
        mapping = raw
        mappingBytes = total
        base = UnsafeMutableRawPointer(bitPattern: aligned)!
        self.byteCount = rounded
        // Advice only: where THP is off it fails and the pages stay small.
        _ = madvise(base, rounded, MADV_HUGEPAGE)
    }

    func deallocate() {
        munmap(mapping, mappingBytes)
    }
}
