/// Cursors over the tree's sources, all speaking internal keys, merged for scans and compactions.
/// Sources are an enum of final classes, not protocol existentials: a merge step is a switch, and
/// moving a cursor mutates it in place instead of copying it out of the enum and back.
/// A cursor belongs to one scan on one thread, so its stored properties opt out of the runtime's
/// exclusivity checks (`@exclusivity(unchecked)`): those cost a call and a thread-local lookup on
/// every read of `isValid`, `key` and `value`, about a fifth of a reverse scan's instructions.

/// A cursor over one table: the current block's cursor, loaded through the block cache.
/// `isValid` is a stored flag set after every move, and the block cursor is not optional (an
/// empty block stands in before the first load): reading the validity, key or value of an
/// optional struct held by a class copied it out, retaining its block and key buffer, on every
/// step of a scan (callgrind: a third of a reverse scan's instructions went to that and to
/// the computed validity of the level cursor above).
final class TableCursor {
    let table: Table
    @exclusivity(unchecked) private(set) var blockIndex = 0
    @exclusivity(unchecked) private var cursor: BlockCursor
    @exclusivity(unchecked) private var loaded = false
    @exclusivity(unchecked) private(set) var isValid = false
    @exclusivity(unchecked) private(set) var error: LSMError?

    /// Blocks decompressed for this cursor go into the block cache (off for compaction inputs).
    let fillCache: Bool

    init(_ table: Table, fillCache: Bool = true) {
        self.table = table
        self.fillCache = fillCache
        cursor = BlockCursor(Block.empty, keyBuffer: KeyBuffer(backSlots: true))
    }

    @inline(__always) var key: UnsafeRawBufferPointer { cursor.key }
    @inline(__always) var value: UnsafeRawBufferPointer { cursor.value }

    @inline(__always)
    private func settle() { isValid = error == nil && loaded && cursor.isValid }

    private func load(_ i: Int) -> Bool {
        blockIndex = i
        guard i >= 0 && i < table.blockCount else { unload(); return false }
        do {
            let b = try table.block(i, fillCache: fillCache)
            cursor = BlockCursor(b, keyBuffer: cursor.keyBuffer)
            loaded = true
            return true
        } catch {
            self.error = error
            unload()
            return false
        }
    }

    private func unload() {
        loaded = false
        isValid = false
    }

    private func checkCorrupt() {
        if loaded && cursor.corrupt {
            error = .corrupt(file: table.path, detail: "malformed entry in block \(blockIndex)")
        }
    }

    func seekToFirst() {
        guard load(0) else { return }
        cursor.seekToFirst()
        skipEmptyForward()
    }

    func seek(_ target: UnsafeRawBufferPointer) {
        let i = table.blockIndex(for: target)
        guard load(i) else { return }
        cursor.seek(target)
        skipEmptyForward()
    }

    func next() {
        cursor.next()
        skipEmptyForward()
    }

    private func skipEmptyForward() {
        checkCorrupt()
        while error == nil && loaded && !cursor.isValid {
            guard load(blockIndex + 1) else { break }
            cursor.seekToFirst()
            checkCorrupt()
        }
        settle()
    }

    func seekToLast() {
        guard load(table.blockCount - 1) else { return }
        cursor.seekToLast()
        skipEmptyBackward()
    }

    /// The last entry whose internal key is < `target`.
    func seekBefore(_ target: UnsafeRawBufferPointer) {
        let i = table.blockIndex(for: target)
        if i >= table.blockCount { seekToLast(); return }
        guard load(i) else { return }
        cursor.seekBefore(target)
        skipEmptyBackward()
    }

    func previous() {
        cursor.previous()
        skipEmptyBackward()
    }

    private func skipEmptyBackward() {
        checkCorrupt()
        while error == nil && loaded && !cursor.isValid {
            guard blockIndex > 0, load(blockIndex - 1) else { unload(); break }
            cursor.seekToLast()
            checkCorrupt()
        }
        settle()
    }
}

/// A cursor over a sorted run of non-overlapping tables (a level below 0): `tables[range]`.
/// Validity is stored, as in `TableCursor`.
final class LevelCursor {
    let tables: [Table]
    let range: Range<Int>
    @exclusivity(unchecked) private(set) var index = 0
    @exclusivity(unchecked) private var cursor: TableCursor?
    @exclusivity(unchecked) private(set) var isValid = false
    @exclusivity(unchecked) private(set) var error: LSMError?

    let fillCache: Bool

    init(_ tables: [Table], range: Range<Int>? = nil, fillCache: Bool = true) {
        self.tables = tables
        self.range = range ?? tables.indices
        self.fillCache = fillCache
    }

    @inline(__always) var key: UnsafeRawBufferPointer { cursor.unsafelyUnwrapped.key }
    @inline(__always) var value: UnsafeRawBufferPointer { cursor.unsafelyUnwrapped.value }

    /// The first table of the range whose largest key is >= target.
    private func tableIndex(_ target: UnsafeRawBufferPointer) -> Int {
        var lo = range.lowerBound
        var hi = range.upperBound
        while lo < hi {
            let mid = (lo + hi) / 2
            let c = tables[mid].meta.largest.withUnsafeBytes { InternalKey.compare($0, target) }
            if c < 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private func open(_ i: Int) -> Bool {
        index = i
        guard range.contains(i) else { cursor = nil; isValid = false; return false }
        cursor = TableCursor(tables[i], fillCache: fillCache)
        return true
    }

    private func settleForward() {
        while let c = cursor {
            if let e = c.error { error = e; break }
            if c.isValid { break }
            guard open(index + 1) else { break }
            cursor.unsafelyUnwrapped.seekToFirst()
        }
        isValid = error == nil && (cursor?.isValid ?? false)
    }

    private func settleBackward() {
        while let c = cursor {
            if let e = c.error { error = e; break }
            if c.isValid { break }
            guard index > range.lowerBound, open(index - 1) else { cursor = nil; break }
            cursor.unsafelyUnwrapped.seekToLast()
        }
        isValid = error == nil && (cursor?.isValid ?? false)
    }

    func seekToFirst() {
        guard open(range.lowerBound) else { return }
        cursor.unsafelyUnwrapped.seekToFirst()
        settleForward()
    }

    func seek(_ target: UnsafeRawBufferPointer) {
        guard open(tableIndex(target)) else { return }
        cursor.unsafelyUnwrapped.seek(target)
        settleForward()
    }

    func next() {
        cursor.unsafelyUnwrapped.next()
        settleForward()
    }

    func seekToLast() {
        guard open(range.upperBound - 1) else { return }
        cursor.unsafelyUnwrapped.seekToLast()
        settleBackward()
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) {
        let i = tableIndex(target)
        if i >= range.upperBound { seekToLast(); return }
        guard open(i) else { return }
        cursor.unsafelyUnwrapped.seekBefore(target)
        settleBackward()
    }

    func previous() {
        cursor.unsafelyUnwrapped.previous()
        settleBackward()
    }
}

/// What a one-source reverse scan needs of a cursor (`LSMTree.reverseSingle`, specialized per
/// cursor class: no existential).
protocol ScanSource: AnyObject {
    var isValid: Bool { get }
    var key: UnsafeRawBufferPointer { get }
    var value: UnsafeRawBufferPointer { get }
    var error: LSMError? { get }
    func previous()
}

extension TableCursor: ScanSource {}
extension LevelCursor: ScanSource {}
extension MemtableCursor: ScanSource {
    var error: LSMError? { nil }
}

/// A cursor over a memtable (its nodes are stable, so the cursor is a node pointer).
final class MemtableCursor {
    let memtable: Memtable
    @exclusivity(unchecked) private(set) var node: Memtable.Node?
    let keyBuffer = KeyBuffer()

    init(_ memtable: Memtable) { self.memtable = memtable }

    var isValid: Bool { node != nil }

    /// Internal key (user key + trailer), assembled in the cursor's buffer.
    var key: UnsafeRawBufferPointer { keyBuffer.bytes }
    var value: UnsafeRawBufferPointer { Memtable.value(node!) }

    private func set(_ n: Memtable.Node?) {
        node = n
        guard let n else { return }
        keyBuffer.set(Memtable.userKey(n))
        var t = Memtable.trailer(n).littleEndian
        withUnsafeBytes(of: &t) { keyBuffer.append($0) }
    }

    func seekToFirst() { set(memtable.first()) }
    func seek(_ target: UnsafeRawBufferPointer) {
        let user = UnsafeRawBufferPointer(rebasing: target[..<(target.count - 8)])
        var n = memtable.seek(user)
        // Skip versions of the target's user key newer than the target trailer.
        let t = target.loadLE(UInt64.self, at: target.count - 8)
        while let x = n, InternalKey.compareUser(Memtable.userKey(x), user) == 0, Memtable.trailer(x) > t {
            n = memtable.successor(x)
        }
        set(n)
    }
    func next() { set(memtable.successor(node!)) }
    func seekToLast() { set(memtable.last()) }
    func seekBefore(_ target: UnsafeRawBufferPointer) {
        let user = UnsafeRawBufferPointer(rebasing: target[..<(target.count - 8)])
        // Last node < target: the last node with user key < user, unless versions of `user`
        // older... (targets used for reverse scans carry the largest trailer, so every version of
        // `user` is >= target and the answer is the last node before `user`).
        let t = target.loadLE(UInt64.self, at: target.count - 8)
        if t == UInt64.max {
            set(memtable.seekBefore(user))
        } else {
            // General case: walk back from the first node >= target.
            let probe = MemtableCursor(memtable)
            probe.seek(target)
            if let n = probe.node { set(memtable.previous(n)) } else { set(memtable.last()) }
        }
    }
    func previous() { set(memtable.previous(node!)) }
}

/// One source of a merge.
enum SourceCursor {
    case memtable(MemtableCursor)
    case table(TableCursor)
    case level(LevelCursor)

    var isValid: Bool {
        switch self {
        case .memtable(let c): c.isValid
        case .table(let c): c.isValid
        case .level(let c): c.isValid
        }
    }

    var error: LSMError? {
        switch self {
        case .memtable: nil
        case .table(let c): c.error
        case .level(let c): c.error
        }
    }

    var key: UnsafeRawBufferPointer {
        switch self {
        case .memtable(let c): c.key
        case .table(let c): c.key
        case .level(let c): c.key
        }
    }

    var value: UnsafeRawBufferPointer {
        switch self {
        case .memtable(let c): c.value
        case .table(let c): c.value
        case .level(let c): c.value
        }
    }

    func seekToFirst() {
        switch self {
        case .memtable(let c): c.seekToFirst()
        case .table(let c): c.seekToFirst()
        case .level(let c): c.seekToFirst()
        }
    }

    func seek(_ target: UnsafeRawBufferPointer) {
        switch self {
        case .memtable(let c): c.seek(target)
        case .table(let c): c.seek(target)
        case .level(let c): c.seek(target)
        }
    }

    func next() {
        switch self {
        case .memtable(let c): c.next()
        case .table(let c): c.next()
        case .level(let c): c.next()
        }
    }

    func seekToLast() {
        switch self {
        case .memtable(let c): c.seekToLast()
        case .table(let c): c.seekToLast()
        case .level(let c): c.seekToLast()
        }
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) {
        switch self {
        case .memtable(let c): c.seekBefore(target)
        case .table(let c): c.seekBefore(target)
        case .level(let c): c.seekBefore(target)
        }
    }

    func previous() {
        switch self {
        case .memtable(let c): c.previous()
        case .table(let c): c.previous()
        case .level(let c): c.previous()
        }
    }
}
