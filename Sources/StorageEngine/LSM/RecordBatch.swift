import Glibc

/// Keys to read together with `LSMTree.multiGet(_:)` and, after it, their values, in storage the
/// batch keeps from one use to the next: once warm, a multi-get into a batch allocates nothing
/// per key or value (the array form, `multiGet(_: [[UInt8]])`, makes an array per key and per
/// value). Values are copied back to back into one buffer; `value(at:)` points into it until
/// the batch changes.
///
/// One owner at a time (not `Sendable`): a reader thread keeps its own and reuses it.
public final class RecordBatch {
    // Every stored property is `@exclusivity(unchecked)`: the batch has one owner at a time, and
    // the dynamic exclusivity checks of a class's properties (a thread-local access set per
    // access) were 7% of the hydrated benchmark's samples.
    /// Key bytes back to back; key `i` is `keyBytes[keyStarts[i] ..< keyStarts[i + 1]]`.
    @exclusivity(unchecked) var keyBytes: UnsafeMutableRawPointer
    @exclusivity(unchecked) var keyBytesCapacity: Int
    @exclusivity(unchecked) var keyStarts: ContiguousArray<Int> = [0]
    /// Per key, after a multi-get: where its value starts in `valueBytes` and its length;
    /// start -1 when the key has no value.
    @exclusivity(unchecked) var valueStarts: ContiguousArray<Int> = []
    @exclusivity(unchecked) var valueLengths: ContiguousArray<Int> = []
    /// Values back to back (each padded to whole words while it is copied).
    @exclusivity(unchecked) var valueBytes: UnsafeMutableRawPointer
    @exclusivity(unchecked) var valueBytesCapacity: Int
    @exclusivity(unchecked) var valueBytesCount = 0
    /// Scratch of the record cache's passes, per key.
    @exclusivity(unchecked) var hashes: ContiguousArray<UInt64> = []
    @exclusivity(unchecked) var versions: ContiguousArray<UInt64> = []
    @exclusivity(unchecked) var slots: ContiguousArray<Int> = []
    /// Keys the record cache did not know, in order: read from the tree.
    @exclusivity(unchecked) var missing: ContiguousArray<Int> = []
    /// The tree's pipelined lookups (`LSMTree.pipelinedGet`): a probe and a key scratch per
    /// key, allocated at the first such lookup and kept.
    @exclusivity(unchecked) var probes: UnsafeMutablePointer<TreeProbe>?
    @exclusivity(unchecked) var probeKeys: UnsafeMutableRawPointer?
    @exclusivity(unchecked) var probeCapacity = 0
    /// The decompressed blocks (held by the block cache) the probes of one pipelined lookup
    /// read, kept alive until it is done (the cache may drop them meanwhile); emptied, with its
    /// capacity kept, when the lookup ends.
    @exclusivity(unchecked) var blockOwners: [Block] = []
    /// Whether the record cache keeps the keys this batch finds absent (default true). A reader
    /// whose keys are mostly absent and answered by a cache of its own (the Social layer's
    /// counter keys) turns it off, so they do not take the record cache's slots from values.
    @exclusivity(unchecked) public var keepsAbsent = true

    public init() {
        keyBytesCapacity = 256
        keyBytes = .allocate(byteCount: keyBytesCapacity, alignment: 8)
        valueBytesCapacity = 4096
        valueBytes = .allocate(byteCount: valueBytesCapacity, alignment: 8)
    }

    deinit {
        keyBytes.deallocate()
        valueBytes.deallocate()
        probes?.deallocate()
        probeKeys?.deallocate()
    }

    /// Room for `n` probes and their key scratch (`LSMTree.pipelinedGet`).
    func reserveProbes(_ n: Int) {
        guard n > probeCapacity else { return }
        probes?.deallocate()
        probeKeys?.deallocate()
        let capacity = max(n, 32)
        probes = .allocate(capacity: capacity)
        probeKeys = .allocate(byteCount: capacity * TreeProbe.keyScratch, alignment: 64)
        probeCapacity = capacity
    }

    /// Keys in the batch.
    public var count: Int { keyStarts.count - 1 }

    /// Forgets every key and value (the storage stays).
    public func removeAll() {
        keyStarts.removeAll(keepingCapacity: true)
        keyStarts.append(0)
        valueStarts.removeAll(keepingCapacity: true)
        valueLengths.removeAll(keepingCapacity: true)
        valueBytesCount = 0
    }

    /// Adds a key (its value is read by the next multi-get).
    public func append(key: UnsafeRawBufferPointer) {
        let start = keyStarts[keyStarts.count - 1]
        if start + key.count > keyBytesCapacity {
            let grown = UnsafeMutableRawPointer.allocate(byteCount: max(2 * keyBytesCapacity, start + key.count), alignment: 8)
            grown.copyMemory(from: keyBytes, byteCount: start)
            keyBytes.deallocate()
            keyBytes = grown
            keyBytesCapacity = max(2 * keyBytesCapacity, start + key.count)
        }
        if key.count > 0 { (keyBytes + start).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        keyStarts.append(start + key.count)
    }

    public func append(key: [UInt8]) {
        key.withUnsafeBytes { append(key: $0) }
    }

    /// Key `index`'s bytes (valid until the batch changes).
    public func key(at index: Int) -> UnsafeRawBufferPointer {
        precondition(index >= 0 && index < count, "key index out of range")
        return UnsafeRawBufferPointer(start: keyBytes + keyStarts[index], count: keyStarts[index + 1] - keyStarts[index])
    }

    @inline(__always)
    func withKey<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let start = keyStarts[index]
        return body(UnsafeRawBufferPointer(start: keyBytes + start, count: keyStarts[index &+ 1] &- start))
    }

    /// The value read for key `index` by the last multi-get, nil when the key has none (valid
    /// until the batch changes).
    public func value(at index: Int) -> UnsafeRawBufferPointer? {
        precondition(index >= 0 && index < valueStarts.count, "no value read for this index")
        let start = valueStarts[index]
        guard start >= 0 else { return nil }
        return UnsafeRawBufferPointer(start: valueBytes + start, count: valueLengths[index])
    }

    /// Keys the last multi-get found a value for.
    public var found: Int {
        var n = 0
        for start in valueStarts where start >= 0 { n += 1 }
        return n
    }

    // MARK: Filling (the tree and the record cache)

    /// Sizes the per-key results and scratch for the keys there are, every key absent. The
    /// arrays keep their storage when the number of keys changes (pages of 17 and 20 tweets
    /// in turn made five new arrays each time: 7% of the timeline suite's hydrated page).
    func resetResults() {
        let n = count
        valueBytesCount = 0
        missing.removeAll(keepingCapacity: true)
        if valueStarts.count != n {
            Self.resize(&valueStarts, to: n, with: -1)
            Self.resize(&valueLengths, to: n, with: 0)
            Self.resize(&hashes, to: n, with: 0)
            Self.resize(&versions, to: n, with: 0)
            Self.resize(&slots, to: n, with: -1)
        }
        for i in 0..<n { valueStarts[i] = -1 }
    }

    /// `array` with `n` elements: its first ones kept, new ones `filler`, the storage kept.
    @inline(__always)
    private static func resize<T>(_ array: inout ContiguousArray<T>, to n: Int, with filler: T) {
        if array.count > n {
            array.removeLast(array.count - n)
        } else {
            array.append(contentsOf: repeatElement(filler, count: n - array.count))
        }
    }

    /// Room for a value of `length` bytes (rounded up to whole words) at the end of the values;
    /// `commitValue` keeps it.
    @inline(__always)
    func reserveValue(_ length: Int) -> UnsafeMutableRawPointer {
        let needed = valueBytesCount &+ ((length &+ 7) & ~7)
        if needed > valueBytesCapacity {
            let capacity = max(2 * valueBytesCapacity, needed)
            let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            grown.copyMemory(from: valueBytes, byteCount: valueBytesCount)
            valueBytes.deallocate()
            valueBytes = grown
            valueBytesCapacity = capacity
        }
        return valueBytes + valueBytesCount
    }

    /// Keeps the value just copied to `reserveValue(length)` as key `index`'s.
    @inline(__always)
    func commitValue(_ index: Int, length: Int) {
        valueStarts[index] = valueBytesCount
        valueLengths[index] = length
        valueBytesCount &+= (length &+ 7) & ~7
    }

    func setValue(_ index: Int, _ bytes: UnsafeRawBufferPointer) {
        let destination = reserveValue(bytes.count)
        if bytes.count > 0 { destination.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        commitValue(index, length: bytes.count)
    }

    func setAbsent(_ index: Int) {
        valueStarts[index] = -1
    }
}

// MARK: Keys of the key spaces, written in place

extension RecordBatch {
    /// Adds the key `Keys.one(space, a)` without making an array of it.
    public func append(_ space: KeySpace, _ a: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: 9, alignment: 1) { p in
            p[0] = space.rawValue
            p.storeBytes(of: a.bigEndian, toByteOffset: 1, as: UInt64.self)
            append(key: UnsafeRawBufferPointer(p))
        }
    }

    /// Adds the key `Keys.two(space, a, b)` without making an array of it.
    public func append(_ space: KeySpace, _ a: UInt64, _ b: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: 17, alignment: 1) { p in
            p[0] = space.rawValue
            p.storeBytes(of: a.bigEndian, toByteOffset: 1, as: UInt64.self)
            p.storeBytes(of: b.bigEndian, toByteOffset: 9, as: UInt64.self)
            append(key: UnsafeRawBufferPointer(p))
        }
    }
}

// MARK: One spare batch per thread

extension RecordBatch {
    /// Keys (and probes) a batch may have held and still be kept as its thread's spare: a page
    /// of the largest size keeps about 1 KiB of probe scratch per key (`reserveProbes`).
    static let spareKeysMax = 512

    private static let spareKey: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<RecordBatch>.fromOpaque(pointer).release()
        }
        precondition(created == 0, "pthread_key_create failed")
        return key
    }()

    /// Runs `body` with this thread's spare batch, empty (made at the thread's first use and
    /// kept for its next, so a reader that calls this per page allocates no batch once warm).
    /// A nested call gets a batch of its own. The batch must not escape `body`.
    public static func withThreadBatch<Result, Failure: Error>(_ body: (RecordBatch) throws(Failure) -> Result) throws(Failure) -> Result {
        let batch: RecordBatch
        if let spare = pthread_getspecific(spareKey) {
            pthread_setspecific(spareKey, nil)
            batch = Unmanaged<RecordBatch>.fromOpaque(spare).takeRetainedValue()
        } else {
            batch = RecordBatch()
        }
        batch.removeAll()
        batch.keepsAbsent = true
        defer {
            // Judged by the probe scratch it holds, not by its last round's keys: a use may
            // read a large round and then a small one.
            if batch.probeCapacity <= spareKeysMax && batch.count <= spareKeysMax && pthread_getspecific(spareKey) == nil {
                pthread_setspecific(spareKey, Unmanaged.passRetained(batch).toOpaque())
            }
        }
        return try body(batch)
    }
}
