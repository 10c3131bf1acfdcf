import CLibURing

/// Where one key of a pipelined multi-get is in its lookup (`LSMTree.pipelinedGet`). Plain
/// values only: the table is unretained (the snapshot the lookup holds keeps it alive), so a
/// batch's probes are reused from page to page with no reference counting or allocation.
struct TreeProbe {
    enum Step: UInt8 {
        /// Find the next table whose range holds the key; start loading its filter lines.
        case table
        /// Test the filter; search the top of the block index; start loading the rest of it.
        case filter
        /// Finish the index search; start loading the block's handle and verified flag.
        case index
        /// Start loading the block's restart array (and, for a block not verified since its
        /// pages were dropped, have the kernel start reading it).
        case block
        /// Verify and open the block; start loading the first restart entry to compare.
        case open
        /// One step of the binary search over the block's restart entries.
        case restarts
        /// Read entries forward from the restart point found, a cache line at a time.
        case scan
        /// Copy the value found into the batch.
        case copy
        case done
    }

    /// Bytes of per-probe scratch for the key being read back from a block's prefix-compressed
    /// entries: the longest internal key, rounded up to whole lines.
    static let keyScratch = (InternalKey.maxBytes + 63) & ~63
    /// Index entries left for the second step of the block search: 64 prefixes, 8 lines.
    static let indexSpan = 64

    var index = 0
    var hash: UInt64 = 0
    var location = LSMTree.SearchLocation()
    var table: Unmanaged<Table>?
    var block = 0
    var base: UnsafeRawPointer?
    var blockBytes = 0
    var restartCount = 0
    var restartsOffset = 0
    var lo = 0
    var hi = 0
    var position = 0
    var keyLength = 0
    var valueStart = 0
    var valueCount = 0
    var step = Step.table
}

extension LSMTree {
    /// Looks up in the tables every key of `batch` listed in `batch.missing` (none of them in a
    /// memtable), all at once: each key's lookup is a series of steps (filter, block index,
    /// restart array, restart entries, entries, value), each of which ends by asking the CPU to
    /// load the line the next step reads; the keys take their steps in turn, so one key's cache
    /// miss is in flight while the others work, and a page of 20 random keys pays for about as
    /// many memory round trips as its slowest key rather than the sum of all of them. Every
    /// table of the snapshot's version must be mapped (`Version.allMapped`): a block is read in
    /// place, checksum-verified on its first read as `Table.pointBlock` does. Values go into the
    /// batch and, with `cache`, into the record cache.
    ///
    /// The checks of each entry are `BlockView.locate`'s: a malformed block throws, naming the file.
    /// `hashesKnown`: `batch.hashes` holds every key's hash already (the record cache's passes
    /// computed them), so they are not computed again.
    func pipelinedGet(_ batch: RecordBatch, _ version: Version, cache: (records: RecordCache, token: UInt64)?,
                      hashesKnown: Bool = false) throws(LSMError) {
        let n = batch.missing.count
        guard n > 0 else { return }
        batch.reserveProbes(n)
        let probes = batch.probes!
        let scratch = batch.probeKeys!
        var remaining = n
        for j in 0..<n {
            let index = batch.missing[j]
            let hash = hashesKnown ? batch.hashes[index] : batch.withKey(index) { BloomFilter.hash($0) }
            (probes + j).initialize(to: TreeProbe(index: index, hash: hash))
        }
        let prefetchBlocks = n > 1
        // The blocks probes read that are not views of a mapping (compressed blocks, held
        // decompressed by the block cache): kept alive in the batch until every probe is done,
        // as the cache may drop them meanwhile (the batch keeps the array's capacity).
        defer { batch.blockOwners.removeAll(keepingCapacity: true) }
        while remaining > 0 {
            for j in 0..<n where probes[j].step != .done {
                let p = probes + j
                let user = batch.withKey(p.pointee.index) { $0 }
                try advance(p, user: user, scratch: scratch + j * TreeProbe.keyScratch, version: version,
                            batch: batch, cache: cache, prefetchBlocks: prefetchBlocks)
                if p.pointee.step == .done { remaining -= 1 }
            }
        }
    }

    /// Takes one step of probe `p` (see `TreeProbe.Step`).
    @inline(__always)
    private func advance(_ p: UnsafeMutablePointer<TreeProbe>, user: UnsafeRawBufferPointer, scratch: UnsafeMutableRawPointer,
                         version: Version, batch: RecordBatch, cache: (records: RecordCache, token: UInt64)?,
                         prefetchBlocks: Bool) throws(LSMError) {
        switch p.pointee.step {
        case .table:
            guard let t = nextTable(version, user: user, &p.pointee.location) else {
                if let cache, batch.keepsAbsent { cache.records.insertAbsent(user, hash: p.pointee.hash, token: cache.token) }
                p.pointee.step = .done
                return
            }
            t.prefetchFilter(hash: p.pointee.hash)
            p.pointee.table = Unmanaged.passUnretained(t)
            p.pointee.step = .filter
        case .filter:
            let t = p.pointee.table!.takeUnretainedValue()
            guard t.mayContain(hash: p.pointee.hash) else {
                p.pointee.step = .table
                return
            }
            let (lo, hi) = t.narrowIndex(user: user, 0, t.blockCount, to: TreeProbe.indexSpan)
            p.pointee.lo = lo
            p.pointee.hi = hi
            t.prefetchIndex(lo, hi)
            p.pointee.step = .index
        case .index:
            let t = p.pointee.table!.takeUnretainedValue()
            let b = t.narrowIndex(user: user, p.pointee.lo, p.pointee.hi, to: 0).lo
            guard b < t.blockCount else {
                p.pointee.step = .table
                return
            }
            p.pointee.block = b
            t.prefetchHandle(b)
            p.pointee.step = .block
        case .block:
            let t = p.pointee.table!.takeUnretainedValue()
            // `Table.prefetch` skips the system call for a block already verified.
            if prefetchBlocks { t.prefetch(p.pointee.block) }
            t.prefetchTail(p.pointee.block)
            p.pointee.step = .open
        case .open:
            let t = p.pointee.table!.takeUnretainedValue()
            let (view, owner) = try t.pointBlock(p.pointee.block)
            if let owner { batch.blockOwners.append(owner) }
            p.pointee.base = view.raw.baseAddress
            p.pointee.blockBytes = view.raw.count
            p.pointee.restartCount = view.restartCount
            p.pointee.restartsOffset = view.restartsOffset
            guard view.restartsOffset > 0 else {
                p.pointee.step = .table // no entries
                return
            }
            p.pointee.lo = 0
            p.pointee.hi = view.restartCount - 1
            nextRestart(p)
        case .restarts:
            let view = BlockView(raw: UnsafeRawBufferPointer(start: p.pointee.base, count: p.pointee.blockBytes),
                                 restartCount: p.pointee.restartCount, restartsOffset: p.pointee.restartsOffset)
            let mid = (p.pointee.lo + p.pointee.hi + 1) / 2
            var i = view.restart(mid)
            let limit = view.restartsOffset
            guard let shared = readBlockVarint(view.raw, &i, limit), shared == 0,
                  let unshared = readBlockVarint(view.raw, &i, limit), readBlockVarint(view.raw, &i, limit) != nil,
                  unshared >= 8, i + unshared <= limit
            else { throw .corrupt(file: p.pointee.table!.takeUnretainedValue().path, detail: "malformed restart entry") }
            // Below the key sought (a restart key of the same user key is not: its trailer is
            // below the largest, which a point lookup seeks).
            if InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: view.raw[i..<(i + unshared - 8)]), user) < 0 {
                p.pointee.lo = mid
            } else {
                p.pointee.hi = mid - 1
            }
            nextRestart(p)
        case .scan:
            try scan(p, user: user, scratch: scratch, batch: batch, cache: cache)
        case .copy:
            let value = UnsafeRawBufferPointer(start: p.pointee.base! + p.pointee.valueStart, count: p.pointee.valueCount)
            batch.setValue(p.pointee.index, value)
            if let cache { cache.records.insert(user, hash: p.pointee.hash, value: value, token: cache.token) }
            p.pointee.step = .done
        case .done:
            break
        }
    }

    /// After a step of the restart search: the next restart entry to compare, or, when the
    /// search is over, the scan from the restart point found. Starts loading its line.
    @inline(__always)
    private func nextRestart(_ p: UnsafeMutablePointer<TreeProbe>) {
        let base = p.pointee.base!
        let restarts = base + p.pointee.restartsOffset
        if p.pointee.lo < p.pointee.hi {
            let mid = (p.pointee.lo + p.pointee.hi + 1) / 2
            socialdb_prefetch(base + Int(restarts.loadUnaligned(fromByteOffset: mid * 4, as: UInt32.self).littleEndian))
            p.pointee.step = .restarts
        } else {
            let start = Int(restarts.loadUnaligned(fromByteOffset: p.pointee.lo * 4, as: UInt32.self).littleEndian)
            p.pointee.position = start
            p.pointee.keyLength = 0
            socialdb_prefetch(base + start)
            p.pointee.step = .scan
        }
    }

    /// Reads entries from `p.position` while they start on a line already loaded; stops at the
    /// first entry whose key is not below the key sought (found: the value's lines start
    /// loading; a deletion; or a larger key: the next table), at the block's end (the next
    /// table), or at an entry on a line not yet loaded (its line starts loading).
    @inline(__always)
    private func scan(_ p: UnsafeMutablePointer<TreeProbe>, user: UnsafeRawBufferPointer, scratch: UnsafeMutableRawPointer,
                      batch: RecordBatch, cache: (records: RecordCache, token: UInt64)?) throws(LSMError) {
        let base = p.pointee.base!
        let raw = UnsafeRawBufferPointer(start: base, count: p.pointee.blockBytes)
        let limit = p.pointee.restartsOffset
        var i = p.pointee.position
        var keyLength = p.pointee.keyLength
        while i < limit {
            guard let shared = readBlockVarint(raw, &i, limit),
                  let unshared = readBlockVarint(raw, &i, limit),
                  let valueLength = readBlockVarint(raw, &i, limit),
                  shared <= keyLength, shared + unshared <= InternalKey.maxBytes, i + unshared + valueLength <= limit
            else { throw .corrupt(file: p.pointee.table!.takeUnretainedValue().path, detail: "malformed block entry") }
            if unshared > 0 { (scratch + shared).copyMemory(from: base + i, byteCount: unshared) }
            keyLength = shared + unshared
            guard keyLength >= 8 else {
                throw .corrupt(file: p.pointee.table!.takeUnretainedValue().path, detail: "block key shorter than its trailer")
            }
            let valueStart = i + unshared
            let c = InternalKey.compareUser(UnsafeRawBufferPointer(start: scratch, count: keyLength - 8), user)
            if c > 0 {
                p.pointee.step = .table
                return
            }
            if c == 0 {
                let trailer = scratch.loadUnaligned(fromByteOffset: keyLength - 8, as: UInt64.self).littleEndian
                if UInt8(truncatingIfNeeded: trailer) == ValueKind.value.rawValue {
                    p.pointee.valueStart = valueStart
                    p.pointee.valueCount = valueLength
                    var line = (Int(bitPattern: base + valueStart) | 63) + 1
                    let end = Int(bitPattern: base + valueStart + valueLength)
                    while line < end {
                        socialdb_prefetch(UnsafeRawPointer(bitPattern: line))
                        line += 64
                    }
                    p.pointee.step = .copy
                } else {
                    if let cache, batch.keepsAbsent { cache.records.insertAbsent(user, hash: p.pointee.hash, token: cache.token) }
                    p.pointee.step = .done
                }
                return
            }
            let next = valueStart + valueLength
            let loaded = Int(bitPattern: base + valueStart) | 63
            i = next
            if i < limit && Int(bitPattern: base + next) > loaded {
                // The next entry is on a line not read yet: let the other keys work meanwhile.
                p.pointee.position = next
                p.pointee.keyLength = keyLength
                socialdb_prefetch(base + next)
                return
            }
        }
        p.pointee.step = .table // not in this block
    }
}
