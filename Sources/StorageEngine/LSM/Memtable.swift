#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The in-memory write buffer of the LSM tree: a skip list of internal keys whose nodes, keys and
/// values live in large arena chunks, so an insert allocates nothing per entry on the heap.
///
/// One writer inserts; any number of readers look up and scan at the same time (a reader-writer
/// lock guards the links). Nodes never move or die before the memtable does, so a reader may keep
/// a node pointer between steps. Keys that arrive in increasing order (snowflake ids) take a fast
/// path: the new node is linked after the remembered tail at every level without a search.
///
/// Node layout (8-byte aligned): trailer u64, key length u32, value length u32, height u32,
/// pad u32, then `height` next pointers (8 bytes each), then the key bytes and the value bytes.
final class Memtable: @unchecked Sendable {
    // @unchecked: links are read under `lock`'s read side and written under its write side; the
    // node payload is written before the node is linked and never changed after.
    typealias Node = UnsafeMutableRawPointer

    static let maxHeight = 12
    private static let chunkBytes = 4 << 20
    private static let headerBytes = 24

    let lock = ReadWriteLock()
    private var chunks: [UnsafeMutableRawPointer] = []
    /// The chunks mapped as transparent huge pages (see `allocate`).
    private var hugeChunks: [HugePageRegion] = []
    private var chunkCursor: UnsafeMutableRawPointer? = nil
    private var chunkRemaining = 0
    private let head: Node
    private var tails: [Node]
    private var height = 1
    private var randomState: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// Bytes of keys and values inserted plus node overhead: the flush trigger. Both counters are
    /// written only by the one inserting thread but read without a lock (scans skip empty
    /// memtables, statistics), so they are atomics: relaxed loads and stores, plain moves on x86
    /// (as plain Ints they were a data race ThreadSanitizer reported under ConcurrentStressTests).
    private let approximateBytesCounter = Atomic<Int>(0)
    private let entriesCounter = Atomic<Int>(0)
    var approximateBytes: Int { approximateBytesCounter.load(ordering: .relaxed) }
    var entries: Int { entriesCounter.load(ordering: .relaxed) }

    init() {
        let size = Self.headerBytes + Self.maxHeight * 8
        head = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        head.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        head.storeBytes(of: UInt32(Self.maxHeight), toByteOffset: 16, as: UInt32.self)
        tails = Array(repeating: head, count: Self.maxHeight)
    }

    deinit {
        head.deallocate()
        for chunk in chunks { chunk.deallocate() }
        for region in hugeChunks { region.deallocate() }
    }

    // MARK: node fields

    @inline(__always) static func trailer(_ n: Node) -> UInt64 { n.load(as: UInt64.self) }
    @inline(__always) static func keyLength(_ n: Node) -> Int { Int(n.load(fromByteOffset: 8, as: UInt32.self)) }
    @inline(__always) static func valueLength(_ n: Node) -> Int { Int(n.load(fromByteOffset: 12, as: UInt32.self)) }
    @inline(__always) static func nodeHeight(_ n: Node) -> Int { Int(n.load(fromByteOffset: 16, as: UInt32.self)) }
    @inline(__always) static func next(_ n: Node, _ level: Int) -> Node? {
        n.load(fromByteOffset: headerBytes + level * 8, as: Node?.self)
    }
    @inline(__always) static func setNext(_ n: Node, _ level: Int, _ to: Node?) {
        n.storeBytes(of: to, toByteOffset: headerBytes + level * 8, as: Node?.self)
    }
    @inline(__always) static func userKey(_ n: Node) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: n + headerBytes + nodeHeight(n) * 8, count: keyLength(n))
    }
    @inline(__always) static func value(_ n: Node) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: n + headerBytes + nodeHeight(n) * 8 + keyLength(n), count: valueLength(n))
    }
    @inline(__always) static func sequence(_ n: Node) -> UInt64 { trailer(n) >> 8 }
    @inline(__always) static func kind(_ n: Node) -> ValueKind { ValueKind(rawValue: UInt8(truncatingIfNeeded: trailer(n))) ?? .deletion }

    /// Compares node `n` with (user key, trailer) in internal-key order.
    @inline(__always)
    private static func compare(_ n: Node, _ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> Int {
        let c = InternalKey.compareUser(userKey(n), key)
        if c != 0 { return c }
        let t = Self.trailer(n)
        return t == trailer ? 0 : (t > trailer ? -1 : 1)
    }

    // MARK: writing (single writer)

    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = (bytes + 7) & ~7
        if size > chunkRemaining {
            let chunkSize = max(Self.chunkBytes, size)
            // A chunk fills up front to back, so it is mapped as huge pages: a lookup or insert
            // visits ~25 nodes spread over the whole memtable, and with 4 KiB pages most of
            // those visits were TLB misses as well as cache misses (two page walks in a VM).
            let chunk: UnsafeMutableRawPointer
            if chunkSize == Self.chunkBytes, let region = HugePageRegion(byteCount: chunkSize) {
                hugeChunks.append(region)
                chunk = region.base
            } else {
                chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 8)
                chunks.append(chunk)
            }
            chunkCursor = chunk
            chunkRemaining = chunkSize
        }
        let p = chunkCursor!
        chunkCursor = p + size
        chunkRemaining -= size
        return p
    }

    private func randomHeight() -> Int {
        // xorshift64*; a level more with probability 1/4.
        randomState ^= randomState >> 12
        randomState ^= randomState << 25
        randomState ^= randomState >> 27
        var r = randomState &* 0x2545_F491_4F6C_DD1D
        var h = 1
        while h < Self.maxHeight && (r & 3) == 0 {
            h += 1
            r >>= 2
        }
        return h
    }

    /// Inserts every entry `body` gives under one hold of the write lock, so that no reader sees
    /// part of a write batch: a lookup sees all of it or none of it.
    func insertBatch(_ body: (_ insert: (UnsafeRawBufferPointer, UInt64, ValueKind, UnsafeRawBufferPointer) -> Void) -> Void) {
        lock.withWriteLock {
            body { key, sequence, kind, value in
                insert(key: key, sequence: sequence, kind: kind, value: value, locked: true)
            }
        }
    }

    /// Inserts one version. The caller is the only writer. A version with the same key and
    /// sequence as an existing one (a replayed log record) is ignored. `locked`: the caller
    /// already holds the write lock (see `insertBatch`).
    func insert(key: UnsafeRawBufferPointer, sequence: UInt64, kind: ValueKind, value: UnsafeRawBufferPointer, locked: Bool = false) {
        let trailer = InternalKey.trailer(sequence: sequence, kind: kind)
        let h = randomHeight()
        var preds: Predecessors = (head, head, head, head, head, head, head, head, head, head, head, head)
        let fast: Bool
        // Fast path: after the last node (increasing keys).
        let last = tails[0]
        if last != head && Self.compare(last, key, trailer) < 0 {
            fast = true
        } else if last == head {
            fast = true
        } else {
            fast = false
        }
        withUnsafeMutableBytes(of: &preds) { raw in
            let p = raw.bindMemory(to: Node.self)
            if fast {
                for level in 0..<Self.maxHeight { p[level] = tails[level] }
            } else {
                var x = head
                var level = height - 1
                while true {
                    if let n = Self.next(x, level), Self.compare(n, key, trailer) < 0 {
                        x = n
                        continue
                    }
                    p[level] = x
                    if level == 0 { break }
                    level -= 1
                }
                for level in height..<Self.maxHeight { p[level] = head }
                if let n = Self.next(x, 0), Self.compare(n, key, trailer) == 0 { return }
            }
        }
        let size = Self.headerBytes + h * 8 + key.count + value.count
        let node = allocate(size)
        node.storeBytes(of: trailer, as: UInt64.self)
        node.storeBytes(of: UInt32(key.count), toByteOffset: 8, as: UInt32.self)
        node.storeBytes(of: UInt32(value.count), toByteOffset: 12, as: UInt32.self)
        node.storeBytes(of: UInt32(h), toByteOffset: 16, as: UInt32.self)
        node.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
        let keyStart = node + Self.headerBytes + h * 8
        if key.count > 0 { keyStart.copyMemory(from: key.baseAddress!, byteCount: key.count) }
        if value.count > 0 { (keyStart + key.count).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        if locked {
            link(node, height: h, preds: &preds)
        } else {
            lock.withWriteLock { link(node, height: h, preds: &preds) }
        }
        approximateBytesCounter.store(approximateBytesCounter.load(ordering: .relaxed) + size, ordering: .relaxed)
        entriesCounter.store(entriesCounter.load(ordering: .relaxed) + 1, ordering: .relaxed)
    }

    typealias Predecessors = (Node, Node, Node, Node, Node, Node, Node, Node, Node, Node, Node, Node)

    /// Links `node` after its predecessors at each of its levels; the write lock is held.
    @inline(__always)
    private func link(_ node: Node, height h: Int, preds: inout Predecessors) {
        withUnsafeBytes(of: &preds) { raw in
            let p = raw.bindMemory(to: Node.self)
            for level in 0..<h {
                Self.setNext(node, level, Self.next(p[level], level))
                Self.setNext(p[level], level, node)
                if Self.next(node, level) == nil { tails[level] = node }
            }
        }
        if h > height { height = h }
    }

    // MARK: reading (any thread)

    /// The last node strictly before (key, trailer), or the head. Lock held.
    @inline(__always)
    private func predecessorLocked(_ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> Node {
        var x = head
        var level = height - 1
        while true {
            if let n = Self.next(x, level), Self.compare(n, key, trailer) < 0 {
                x = n
                continue
            }
            if level == 0 { return x }
            level -= 1
        }
    }

    /// The first node at or after (key, trailer) in internal-key order; the lock must be held.
    @inline(__always)
    private func seekLocked(_ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> Node? {
        Self.next(predecessorLocked(key, trailer), 0)
    }

    /// The last node strictly before (key, trailer); nil when there is none. Lock held.
    @inline(__always)
    private func seekBeforeLocked(_ key: UnsafeRawBufferPointer, _ trailer: UInt64) -> Node? {
        let x = predecessorLocked(key, trailer)
        return x == head ? nil : x
    }

    /// The newest version of `key`: its node, or nil when the memtable has none.
    func find(_ key: UnsafeRawBufferPointer) -> Node? {
        lock.withReadLock {
            guard let n = seekLocked(key, UInt64.max) else { return nil }
            return InternalKey.compareUser(Self.userKey(n), key) == 0 ? n : nil
        }
    }

    /// The first node whose user key is >= `key` (its newest version first).
    func seek(_ key: UnsafeRawBufferPointer) -> Node? {
        lock.withReadLock { seekLocked(key, UInt64.max) }
    }

    /// The last node whose user key is < `key` (the oldest version of that key, which is the
    /// last in internal order).
    func seekBefore(_ key: UnsafeRawBufferPointer) -> Node? {
        lock.withReadLock { seekBeforeLocked(key, UInt64.max) }
    }

    /// The node before `n` in internal order.
    func previous(_ n: Node) -> Node? {
        lock.withReadLock { seekBeforeLocked(Self.userKey(n), Self.trailer(n)) }
    }

    func first() -> Node? { lock.withReadLock { Self.next(head, 0) } }

    func last() -> Node? {
        lock.withReadLock {
            var x = head
            var level = height - 1
            while true {
                if let n = Self.next(x, level) { x = n; continue }
                if level == 0 { return x == head ? nil : x }
                level -= 1
            }
        }
    }

    func successor(_ n: Node) -> Node? { lock.withReadLock { Self.next(n, 0) } }
}
