#if canImport(Glibc)
import Glibc
#endif

/// A table block: prefix-compressed entries with restart points.
///
/// Entry: varint shared-prefix length, varint unshared length, varint value length, the
/// unshared key bytes, the value bytes. Every `restartInterval`-th entry stores its whole key
/// (shared = 0) and its offset goes into the restart array at the end: u32 offsets, then a u32
/// count. On disk each block is followed by a u64 xxh3 (seed `tableBlock`) of its bytes.
struct BlockBuilder {
    private(set) var buffer: [UInt8] = []
    private var restarts: [UInt32] = []
    private var lastKey: [UInt8] = []
    private var sinceRestart = 0
    let restartInterval: Int
    private(set) var count = 0

    init(restartInterval: Int, reserve: Int = 8192) {
        self.restartInterval = max(1, restartInterval)
        buffer.reserveCapacity(reserve)
        lastKey.reserveCapacity(64)
    }

    var isEmpty: Bool { count == 0 }
    /// The size of the block if finished now.
    var estimatedBytes: Int { buffer.count + restarts.count * 4 + 4 }
    var lastKeyBytes: [UInt8] { lastKey }

    mutating func add(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        var shared = 0
        if sinceRestart < restartInterval && count > 0 {
            let n = min(lastKey.count, key.count)
            lastKey.withUnsafeBufferPointer { last in
                while shared < n && last[shared] == key[shared] { shared += 1 }
            }
        } else {
            restarts.append(UInt32(buffer.count))
            sinceRestart = 0
        }
        Varint.append(UInt64(shared), to: &buffer)
        Varint.append(UInt64(key.count - shared), to: &buffer)
        Varint.append(UInt64(value.count), to: &buffer)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: key[shared...]))
        buffer.append(contentsOf: value)
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        sinceRestart += 1
        count += 1
    }

    /// Appends the restart array and returns the finished block bytes; the builder is reset.
    mutating func finish() -> [UInt8] {
        if restarts.isEmpty { restarts.append(0) }
        for r in restarts { buffer.appendLE(r) }
        buffer.appendLE(UInt32(restarts.count))
        let out = buffer
        buffer.removeAll(keepingCapacity: true)
        restarts.removeAll(keepingCapacity: true)
        lastKey.removeAll(keepingCapacity: true)
        sinceRestart = 0
        count = 0
        return out
    }
}

/// A verified, immutable block: either bytes it owns (read from the file, shared through the
/// block cache) or a view into a table's read-only mapping (kept alive by `owner`).
final class Block: @unchecked Sendable {
    // @unchecked: immutable after init.
    let raw: UnsafeRawBufferPointer
    private let owned: UnsafeMutableRawPointer?
    private let owner: AnyObject?
    let restartCount: Int
    let restartsOffset: Int

    /// A block with no entries (one restart at 0): what a table cursor holds before its first load.
    static let empty: Block = {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        bytes.storeBytes(of: UInt32(0).littleEndian, toByteOffset: 0, as: UInt32.self)
        bytes.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
        return try! Block(taking: bytes, file: "(empty block)")
    }()

    /// Takes ownership of `bytes` (allocated with `UnsafeMutableRawBufferPointer.allocate`),
    /// whose first `count` bytes (all of them by default) are the checksum-verified block.
    /// Throws on a malformed restart array.
    init(taking bytes: UnsafeMutableRawBufferPointer, count: Int? = nil, file: String) throws(LSMError) {
        let n = count ?? bytes.count
        owned = bytes.baseAddress
        owner = nil
        raw = UnsafeRawBufferPointer(start: bytes.baseAddress, count: n)
        guard let (c, o) = Block.restarts(raw) else {
            bytes.deallocate()
            throw .corrupt(file: file, detail: "block restart array does not fit its \(n) bytes")
        }
        restartCount = c
        restartsOffset = o
    }

    /// A view of verified bytes inside a mapping that `owner` keeps alive.
    init(viewing bytes: UnsafeRawBufferPointer, owner: AnyObject, file: String) throws(LSMError) {
        owned = nil
        self.owner = owner
        raw = bytes
        guard let (c, o) = Block.restarts(raw) else {
            throw .corrupt(file: file, detail: "block restart array does not fit its \(bytes.count) bytes")
        }
        restartCount = c
        restartsOffset = o
    }

    /// The restart count and where the restart array starts, or nil when the array does not fit
    /// or its offsets are not 0 then strictly increasing inside the entries (cursors binary-search
    /// them and step back through them: unordered ones made `previous()` cycle forever; found by
    /// fuzzing). One pass over a few dozen words per block.
    static func restarts(_ raw: UnsafeRawBufferPointer) -> (Int, Int)? {
        guard raw.count >= 4 else { return nil }
        let n = Int(raw.loadLE(UInt32.self, at: raw.count - 4))
        guard n >= 1, n <= (raw.count - 4) / 4 else { return nil }
        let start = raw.count - 4 - n * 4
        guard raw.loadLE(UInt32.self, at: start) == 0 else { return nil }
        var previous: UInt32 = 0
        for i in 1..<n {
            let r = raw.loadLE(UInt32.self, at: start + i * 4)
            guard r > previous, Int(r) < start else { return nil }
            previous = r
        }
        return (n, start)
    }

    deinit { owned?.deallocate() }



    @inline(__always)
    func restart(_ i: Int) -> Int { Int(raw.loadLE(UInt32.self, at: restartsOffset + i * 4)) }

    var memoryBytes: Int { raw.count + 64 }
}

/// A growable byte buffer owned by a cursor: the current full key, reused from entry to entry.
/// A table cursor's buffer also carries `backSlots` slots in the same allocation, where a block
/// cursor keeps the entries before the current one in its restart run (so stepping backwards
/// pops a slot instead of decoding the run again from its restart point).
final class KeyBuffer {
    static let backSlots = 16
    static let slotBytes = 64
    /// Slot layout: i32 offset, i32 value start, i32 value count, i32 next offset, u32 key
    /// length, then the key (at most `slotKeyBytes`).
    static let slotKeyOffset = 20
    static let slotKeyBytes = slotBytes - slotKeyOffset

    // Owned by one cursor on one thread: no runtime exclusivity checks on these hot fields.
    @exclusivity(unchecked) private(set) var base: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private(set) var count = 0
    /// The one allocation made at init: the back slots (if any), then the first key bytes.
    private let first: UnsafeMutableRawPointer
    /// The back slots, or nil.
    let back: UnsafeMutableRawPointer?

    init(capacity: Int = 128, backSlots: Bool = false) {
        let backBytes = backSlots ? KeyBuffer.backSlots * KeyBuffer.slotBytes : 0
        self.capacity = capacity
        first = .allocate(byteCount: backBytes + capacity, alignment: 8)
        back = backSlots ? first : nil
        base = first + backBytes
    }

    deinit {
        if base != first + (back == nil ? 0 : KeyBuffer.backSlots * KeyBuffer.slotBytes) { base.deallocate() }
        first.deallocate()
    }

    @inline(__always) var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always) func truncate(_ n: Int) { count = n }

    @inline(__always)
    func append(_ src: UnsafeRawBufferPointer) {
        if count + src.count > capacity {
            var c = capacity * 2
            while c < count + src.count { c *= 2 }
            let nb = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 8)
            nb.copyMemory(from: base, byteCount: count)
            if base != first + (back == nil ? 0 : KeyBuffer.backSlots * KeyBuffer.slotBytes) { base.deallocate() }
            base = nb
            capacity = c
        }
        if src.count > 0 { (base + count).copyMemory(from: src.baseAddress!, byteCount: src.count) }
        count += src.count
    }

    func set(_ src: UnsafeRawBufferPointer) {
        count = 0
        append(src)
    }
}

@inline(__always)
func readBlockVarint(_ raw: UnsafeRawBufferPointer, _ i: inout Int, _ limit: Int) -> Int? {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    while i < limit && shift < 64 {
        let b = raw[i]
        i += 1
        result |= UInt64(b & 0x7F) << shift
        if b < 0x80 { return result <= UInt64(Int32.max) ? Int(result) : nil }
        shift += 7
    }
    return nil
}

extension Block {
    /// Where `locate` found a key: its trailer and where its value lies in the block.
    struct Found {
        var trailer: UInt64
        var valueStart: Int
        var valueCount: Int
    }

    /// This block as a `BlockView` (for point lookups).
    @inline(__always)
    var view: BlockView { BlockView(raw: raw, restartCount: restartCount, restartsOffset: restartsOffset) }

    func locate(target: UnsafeRawBufferPointer, user: UnsafeRawBufferPointer, file: String) throws(LSMError) -> Found? {
        try view.locate(target: target, user: user, file: file)
    }

    @inline(__always)
    func value(_ f: Found) -> UnsafeRawBufferPointer { view.value(f) }
}

/// A verified block's bytes and restart array, as point lookups read them. A view of a mapped
/// table's block is made with no allocation (`Table.pointBlock`); a `Block` object exists for
/// bytes that must be owned and shared (the block cache) and for cursors. The bytes must stay
/// alive while the view is used: the mapping lives as long as its table, and a cached block
/// as long as the `Block` the caller holds.
struct BlockView {
    let raw: UnsafeRawBufferPointer
    let restartCount: Int
    let restartsOffset: Int

    init(raw: UnsafeRawBufferPointer, restartCount: Int, restartsOffset: Int) {
        self.raw = raw
        self.restartCount = restartCount
        self.restartsOffset = restartsOffset
    }

    /// A view of `raw`, or nil when its restart array is malformed (see `Block.restarts`).
    init?(checking raw: UnsafeRawBufferPointer) {
        guard let (c, o) = Block.restarts(raw) else { return nil }
        self.init(raw: raw, restartCount: c, restartsOffset: o)
    }

    @inline(__always)
    func restart(_ i: Int) -> Int { Int(raw.loadLE(UInt32.self, at: restartsOffset + i * 4)) }

    typealias Found = Block.Found

    /// Point lookup without a cursor: finds the first entry whose internal key is >= `target`
    /// and returns it when its user key equals `user`; nil when no version of the key is in
    /// this block. Throws on a malformed entry. Not generic, so it is compiled once, specialized.
    func locate(target: UnsafeRawBufferPointer, user: UnsafeRawBufferPointer, file: String) throws(LSMError) -> Found? {
        let raw = self.raw
        let limit = restartsOffset
        // Binary search restarts: keys there are whole (shared = 0).
        var lo = 0
        var hi = restartCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            var i = restart(mid)
            guard let shared = readBlockVarint(raw, &i, limit), shared == 0,
                  let unshared = readBlockVarint(raw, &i, limit), readBlockVarint(raw, &i, limit) != nil,
                  unshared >= 8, i + unshared <= limit
            else { throw .corrupt(file: file, detail: "malformed restart entry") }
            let k = UnsafeRawBufferPointer(rebasing: raw[i..<(i + unshared)])
            if InternalKey.compare(k, target) < 0 { lo = mid } else { hi = mid - 1 }
        }
        if limit == 0 { return nil }
        let result: Result<Found?, LSMError> = withUnsafeTemporaryAllocation(byteCount: InternalKey.maxBytes, alignment: 8) { scratch in
            var keyLength = 0
            var i = restart(lo)
            while i < limit {
                guard let shared = readBlockVarint(raw, &i, limit),
                      let unshared = readBlockVarint(raw, &i, limit),
                      let valueLength = readBlockVarint(raw, &i, limit),
                      shared <= keyLength, shared + unshared <= scratch.count, i + unshared + valueLength <= limit
                else { return .failure(.corrupt(file: file, detail: "malformed block entry")) }
                if unshared > 0 {
                    (scratch.baseAddress! + shared).copyMemory(from: raw.baseAddress! + i, byteCount: unshared)
                }
                keyLength = shared + unshared
                guard keyLength >= 8 else { return .failure(.corrupt(file: file, detail: "block key shorter than its trailer")) }
                let key = UnsafeRawBufferPointer(start: scratch.baseAddress!, count: keyLength)
                let valueStart = i + unshared
                if InternalKey.compare(key, target) >= 0 {
                    let u = UnsafeRawBufferPointer(rebasing: key[..<(keyLength - 8)])
                    guard InternalKey.compareUser(u, user) == 0 else { return .success(nil) }
                    return .success(Found(trailer: key.loadLE(UInt64.self, at: keyLength - 8), valueStart: valueStart, valueCount: valueLength))
                }
                i = valueStart + valueLength
            }
            return .success(nil)
        }
        return try result.get()
    }

    @inline(__always)
    func value(_ f: Found) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[f.valueStart..<(f.valueStart + f.valueCount)])
    }
}

/// A cursor over one block. Keeps the current full key in a reusable buffer.
struct BlockCursor {
    let block: Block
    /// Offset of the current entry; `block.restartsOffset` when past the end, -1 before start.
    private(set) var offset: Int = -1
    private var nextOffset = 0
    let keyBuffer: KeyBuffer
    private(set) var valueStart = 0
    private(set) var valueCount = 0
    private(set) var corrupt = false
    /// How many of the key buffer's back slots hold the entries before the current one (the
    /// current restart run, in order); 0 after any move but `previous` and `seekToLast`.
    private var backCount = 0

    init(_ block: Block, keyBuffer: KeyBuffer = KeyBuffer()) {
        self.block = block
        self.keyBuffer = keyBuffer
    }

    var isValid: Bool { offset >= 0 && offset < block.restartsOffset && !corrupt }

    /// The current internal key.
    @inline(__always) var key: UnsafeRawBufferPointer { keyBuffer.bytes }

    @inline(__always) var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: block.raw[valueStart..<(valueStart + valueCount)])
    }

    /// Decodes the entry at `at` (whose predecessor's key is in the key buffer) and makes it current.
    @inline(__always)
    private mutating func decode(at: Int) -> Bool {
        let raw = block.raw
        let limit = block.restartsOffset
        var i = at
        guard let shared = readBlockVarint(raw, &i, limit),
              let unshared = readBlockVarint(raw, &i, limit),
              let valueLength = readBlockVarint(raw, &i, limit),
              shared <= keyBuffer.count, i + unshared + valueLength <= limit, shared + unshared >= 8
        else {
            corrupt = true
            offset = limit
            return false
        }
        keyBuffer.truncate(shared)
        keyBuffer.append(UnsafeRawBufferPointer(rebasing: raw[i..<(i + unshared)]))
        offset = at
        valueStart = i + unshared
        valueCount = valueLength
        nextOffset = valueStart + valueLength
        return true
    }

    /// Saves the current entry in back slot `slot`; false when there is no such slot or the key
    /// does not fit one.
    @inline(__always)
    private func save(slot: Int) -> Bool {
        guard let back = keyBuffer.back, slot < KeyBuffer.backSlots, keyBuffer.count <= KeyBuffer.slotKeyBytes else { return false }
        let p = back + slot * KeyBuffer.slotBytes
        p.storeBytes(of: Int32(truncatingIfNeeded: offset), toByteOffset: 0, as: Int32.self)
        p.storeBytes(of: Int32(truncatingIfNeeded: valueStart), toByteOffset: 4, as: Int32.self)
        p.storeBytes(of: Int32(truncatingIfNeeded: valueCount), toByteOffset: 8, as: Int32.self)
        p.storeBytes(of: Int32(truncatingIfNeeded: nextOffset), toByteOffset: 12, as: Int32.self)
        p.storeBytes(of: UInt32(truncatingIfNeeded: keyBuffer.count), toByteOffset: 16, as: UInt32.self)
        (p + KeyBuffer.slotKeyOffset).copyMemory(from: keyBuffer.base, byteCount: keyBuffer.count)
        return true
    }

    /// Decodes forward from the current entry up to the last entry starting before `end`,
    /// saving each entry passed over in the back slots when they all fit.
    @inline(__always)
    private mutating func decodeRun(until end: Int) {
        var n = 0
        var saving = true
        while nextOffset < end {
            if saving {
                saving = save(slot: n)
                n += 1
            }
            guard decode(at: nextOffset) else { backCount = 0; return }
        }
        backCount = saving ? n : 0
    }

    mutating func seekToFirst() {
        backCount = 0
        keyBuffer.truncate(0)
        if block.restartsOffset == 0 { offset = 0; return }
        _ = decode(at: 0)
    }

    mutating func next() {
        backCount = 0
        if nextOffset >= block.restartsOffset { offset = block.restartsOffset; return }
        _ = decode(at: nextOffset)
    }

    /// Binary search of the restart points: the last whose key is below `target` (0 when
    /// none is), or nil when a restart entry is malformed (the cursor is then corrupt).
    private mutating func lastRestart(below target: UnsafeRawBufferPointer) -> Int? {
        var lo = 0
        var hi = block.restartCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            keyBuffer.truncate(0)
            guard decode(at: block.restart(mid)) else { return nil }
            if InternalKey.compare(key, target) < 0 { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Positions at the first entry whose internal key is >= `target`.
    mutating func seek(_ target: UnsafeRawBufferPointer) {
        backCount = 0
        guard let lo = lastRestart(below: target) else { return }
        keyBuffer.truncate(0)
        if block.restartsOffset == 0 { offset = 0; return }
        guard decode(at: block.restart(lo)) else { return }
        while isValid {
            if InternalKey.compare(key, target) >= 0 { return }
            next()
        }
    }

    /// Positions at the last entry whose internal key is < `target` (before the start when
    /// there is none). One pass: the entries walked over from the restart point are saved in the
    /// back slots on the way, so the `previous()` steps of a reverse scan that follow pop them
    /// (seeking forward and then stepping back decoded the run twice).
    mutating func seekBefore(_ target: UnsafeRawBufferPointer) {
        backCount = 0
        guard let lo = lastRestart(below: target) else { return }
        keyBuffer.truncate(0)
        if block.restartsOffset == 0 { offset = -1; return }
        guard decode(at: block.restart(lo)) else { return }
        if InternalKey.compare(key, target) >= 0 { offset = -1; return } // every entry is >= target
        var n = 0
        var saving = true
        while nextOffset < block.restartsOffset {
            if saving {
                saving = save(slot: n)
                n += 1
            }
            guard decode(at: nextOffset) else { backCount = 0; return }
            if InternalKey.compare(key, target) >= 0 {
                // The entry before this one is the answer: the last slot saved, or decoded again.
                backCount = saving ? n : 0
                previous()
                return
            }
        }
        backCount = saving ? n : 0 // the block's last entry is below target
    }

    mutating func seekToLast() {
        backCount = 0
        keyBuffer.truncate(0)
        if block.restartsOffset == 0 { offset = -1; return }
        guard decode(at: block.restart(block.restartCount - 1)) else { return }
        decodeRun(until: block.restartsOffset)
    }

    /// Moves to the entry before the current one (or before-the-start): pops a back slot when
    /// one is saved, else decodes the run from its restart point (saving it for the next steps).
    mutating func previous() {
        if backCount > 0 {
            backCount -= 1
            let p = keyBuffer.back! + backCount * KeyBuffer.slotBytes
            offset = Int(p.load(fromByteOffset: 0, as: Int32.self))
            valueStart = Int(p.load(fromByteOffset: 4, as: Int32.self))
            valueCount = Int(p.load(fromByteOffset: 8, as: Int32.self))
            nextOffset = Int(p.load(fromByteOffset: 12, as: Int32.self))
            keyBuffer.set(UnsafeRawBufferPointer(start: p + KeyBuffer.slotKeyOffset, count: Int(p.load(fromByteOffset: 16, as: UInt32.self))))
            return
        }
        let current = offset
        guard current > 0 else { offset = -1; return }
        var lo = 0
        var hi = block.restartCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if block.restart(mid) < current { lo = mid } else { hi = mid - 1 }
        }
        keyBuffer.truncate(0)
        guard decode(at: block.restart(lo)) else { return }
        decodeRun(until: current)
    }
}
