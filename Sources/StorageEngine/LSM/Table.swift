import CLibURing
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Table file (SSTable) layout, all integers little-endian:
///
///     data block 0 | u64 xxh3 | data block 1 | u64 xxh3 | ...
///     filter block | u64 xxh3          (bloom filter over user keys)
///     index block  | u64 xxh3          (block format; key = last internal key of a data block,
///                                       value = varint offset, varint size of that block as
///                                       stored, and (version 2) u8 compression type)
///     footer (56 bytes): magic u64 "SDBTABL1", version u32, flags u32, index offset u64,
///         filter offset u64, index size u32, filter size u32, entry count u64, xxh3 u64 of the
///         preceding 48 footer bytes (seed `tableFooter`)
///
/// Block checksums use seed `tableBlock` and cover the bytes as stored (compressed or not), so
/// a damaged block is caught before it is decompressed. Sizes exclude the 8-byte checksum.
/// Version 2 (compressed data blocks, `BlockCompressionType`) is written; version 1 (every
/// block stored as built, handles without the type byte) is still read, and compaction rewrites
/// what it merges as version 2.
enum TableFormat {
    static let magic: UInt64 = 0x3143_4241_5442_4453 // "SDBTABL1" little-endian
    static let version: UInt32 = 2
    static let oldestReadableVersion: UInt32 = 1
    static let footerBytes = 56
    static let checksumBytes = 8

    static func fileName(_ number: UInt64) -> String {
        var digits = String(number)
        while digits.count < 12 { digits = "0" + digits }
        return digits + ".sst"
    }

    static func parseFileName(_ name: String) -> UInt64? {
        guard name.hasSuffix(".sst"), name.count == 16 else { return nil }
        return UInt64(name.dropLast(4))
    }
}

/// What the manifest records about a table.
struct TableMeta: Sendable, Equatable {
    var number: UInt64
    var fileBytes: UInt64
    var entries: UInt64
    /// Smallest and largest internal keys.
    var smallest: [UInt8]
    var largest: [UInt8]

    var smallestUser: ArraySlice<UInt8> { smallest[..<(smallest.count - 8)] }
    var largestUser: ArraySlice<UInt8> { largest[..<(largest.count - 8)] }
}

/// Data blocks written: how many, how many stored compressed, their bytes as built and as stored.
public struct BlockStats: Sendable, Equatable {
    public var blocks: UInt64 = 0
    public var compressedBlocks: UInt64 = 0
    public var rawBytes: UInt64 = 0
    public var storedBytes: UInt64 = 0

    public init() {}

    public mutating func add(_ o: BlockStats) {
        blocks += o.blocks
        compressedBlocks += o.compressedBlocks
        rawBytes += o.rawBytes
        storedBytes += o.storedBytes
    }
}

/// Writes one table file from entries given in internal-key order.
struct TableBuilder {
    let file: File
    let path: String
    let number: UInt64
    let options: LSMOptions
    private var data = BlockBuilder(restartInterval: 16)
    private var index = BlockBuilder(restartInterval: 1, reserve: 4096)
    private var hashes: [UInt64] = []
    private var lastUserHash: (key: [UInt8], set: Bool) = ([], false)
    private var pending: [UInt8] = []
    private var offset: UInt64 = 0
    private var smallest: [UInt8] = []
    private var largest: [UInt8] = []
    private(set) var entries: UInt64 = 0
    private var handleScratch: [UInt8] = []
    /// The zstd context and output buffer of block compression (nil when it is off).
    private let compressor: ZstdCompressor?
    private let compressionLevel: Int32
    private var compressed: [UInt8] = []
    /// Blocks in a row that did not compress, and blocks left to store without trying: after
    /// `BlockCodec.giveUpAfter` failures in a row, only every `BlockCodec.retryEvery`-th block
    /// is tried until one compresses (a table holds one key space, and incompressible values,
    /// as the lsm suite's random ones, cost zstd's whole compression time for nothing).
    private var failedInARow = 0
    private var skipUntilRetry = 0
    /// Data blocks built and how many of them were stored compressed, with their bytes before and
    /// after (statistics).
    private(set) var blockStats = BlockStats()

    init(fileSystem: FileSystem, directory: String, number: UInt64, options: LSMOptions) throws(LSMError) {
        path = directory + "/" + TableFormat.fileName(number)
        do { file = try fileSystem.open(path, .init(create: true, truncate: true)) } catch { throw .io(error) }
        self.number = number
        self.options = options
        data = BlockBuilder(restartInterval: options.restartInterval, reserve: options.blockBytes + 512)
        pending.reserveCapacity(1 << 20)
        switch options.tableFormatVersion < 2 ? .none : options.compression {
        case .none:
            compressor = nil
            compressionLevel = 0
        case .zstd(let level):
            compressor = ZstdCompressor()
            compressionLevel = level
            compressed.reserveCapacity(options.blockBytes + 1024)
        }
    }

    /// Bytes written or buffered so far (the cut point for compaction outputs).
    var estimatedFileBytes: UInt64 { offset + UInt64(pending.count + data.estimatedBytes) }

    mutating func add(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(LSMError) {
        if entries == 0 { smallest = makeArray(key) }
        let user = UnsafeRawBufferPointer(rebasing: key[..<(key.count - 8)])
        // One hash per distinct user key (versions of a key are adjacent).
        let same = lastUserHash.set && lastUserHash.key.withUnsafeBytes { InternalKey.compareUser($0, user) == 0 }
        if !same {
            hashes.append(BloomFilter.hash(user))
            lastUserHash.key.removeAll(keepingCapacity: true)
            lastUserHash.key.append(contentsOf: user)
            lastUserHash.set = true
        }
        data.add(key: key, value: value)
        entries += 1
        if data.estimatedBytes >= options.blockBytes { try flushDataBlock() }
        if pending.count >= 1 << 20 { try writePending() }
        lastKeyStorage.removeAll(keepingCapacity: true)
        lastKeyStorage.append(contentsOf: key)
    }

    private var lastKeyStorage: [UInt8] = []

    private mutating func flushDataBlock() throws(LSMError) {
        guard !data.isEmpty else { return }
        let lastKey = data.lastKeyBytes
        let block = data.finish()
        let blockOffset = offset + UInt64(pending.count)
        var type = BlockCompressionType.none
        let exempt = lastKey.first.map { options.uncompressedKeyPrefixes.contains($0) } ?? false
        if let compressor, !exempt {
            if skipUntilRetry > 0 {
                skipUntilRetry -= 1
            } else if block.withUnsafeBytes({ BlockCodec.compress($0, level: compressionLevel, compressor: compressor, into: &compressed) }) {
                type = .zstd
                failedInARow = 0
            } else {
                failedInARow += 1
                if failedInARow >= BlockCodec.giveUpAfter { skipUntilRetry = BlockCodec.retryEvery - 1 }
            }
        }
        let stored = type == .none ? block.count : compressed.count
        if type == .none { appendBlock(block) } else { appendBlock(compressed) }
        blockStats.blocks += 1
        blockStats.rawBytes += UInt64(block.count)
        blockStats.storedBytes += UInt64(stored)
        if type != .none { blockStats.compressedBlocks += 1 }
        handleScratch.removeAll(keepingCapacity: true)
        Varint.append(blockOffset, to: &handleScratch)
        Varint.append(UInt64(stored), to: &handleScratch)
        if options.tableFormatVersion >= 2 { handleScratch.append(type.rawValue) }
        lastKey.withUnsafeBytes { k in handleScratch.withUnsafeBytes { v in index.add(key: k, value: v) } }
    }

    private mutating func appendBlock(_ block: [UInt8]) {
        pending.append(contentsOf: block)
        let sum = block.withUnsafeBytes { Checksum.xxh3($0, seed: .tableBlock) }
        pending.appendLE(sum)
    }

    private mutating func writePending() throws(LSMError) {
        guard !pending.isEmpty else { return }
        do {
            try file.write(pending, at: offset)
        } catch { throw .io(error) }
        offset += UInt64(pending.count)
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes the filter, index and footer, fdatasyncs and closes the file.
    mutating func finish() throws(LSMError) -> TableMeta {
        try flushDataBlock()
        largest = lastKeyStorage
        let filter = BloomFilter.build(hashes: hashes, bitsPerKey: options.bloomBitsPerKey)
        // The filter and the index are stored as built: both are read once, when the table opens.
        let filterOffset = offset + UInt64(pending.count)
        appendBlock(filter)
        let indexBlock = index.finish()
        let indexOffset = offset + UInt64(pending.count)
        appendBlock(indexBlock)
        var footer: [UInt8] = []
        footer.reserveCapacity(TableFormat.footerBytes)
        footer.appendLE(TableFormat.magic)
        footer.appendLE(options.tableFormatVersion)
        footer.appendLE(UInt32(0))
        footer.appendLE(indexOffset)
        footer.appendLE(filterOffset)
        footer.appendLE(UInt32(indexBlock.count))
        footer.appendLE(UInt32(filter.count))
        footer.appendLE(entries)
        footer.appendLE(footer.withUnsafeBytes { Checksum.xxh3($0, seed: .tableFooter) })
        pending.append(contentsOf: footer)
        try writePending()
        do {
            try file.dataSync()
        } catch { throw .io(error) }
        file.close()
        return TableMeta(number: number, fileBytes: offset, entries: entries, smallest: smallest, largest: largest)
    }

    /// Closes and deletes a table that will not be finished.
    func abandon(fileSystem: FileSystem) {
        file.close()
        try? fileSystem.remove(path)
    }
}

/// An open table: its file, its index and filter in memory, and reads of its blocks through the
/// shared block cache. Immutable after open; safe to use from any thread.
final class Table: @unchecked Sendable {
    // @unchecked: immutable after init; File and BlockCache are thread-safe.
    let meta: TableMeta
    let path: String
    let file: File
    let cache: BlockCache
    /// Index: last internal key of each block (concatenated) and the block handles.
    private let indexKeys: [UInt8]
    private let indexKeyEnds: [Int]
    /// The first 8 bytes of each index key's user key after the bytes every key of the table
    /// starts with (`shared`), big-endian (zero-padded when shorter): the binary search
    /// compares these integers and compares whole keys only on a tie (a point read spent ~700
    /// instructions in it through memcmp). Skipping the shared bytes matters: tweet keys (a
    /// key-space byte, then a big-endian id) of one table share their first bytes, and ties
    /// of the first 8 bytes, each a read of the index keys, were half the index search of a
    /// multi-get.
    private let indexPrefixes: [UInt64]
    /// The bytes every user key of the table starts with (those its smallest and largest
    /// keys share).
    private let shared: [UInt8]
    let blockOffsets: [UInt64]
    /// Stored sizes (compressed or not), without the checksum.
    let blockSizes: [UInt32]
    /// Each block's `BlockCompressionType` (all `none` in a version-1 table).
    let blockTypes: [UInt8]
    /// Some block is stored compressed: its reads go through the block cache, which holds it
    /// decompressed, even in a mapped table.
    let anyCompressed: Bool
    /// The table's format version (1 or 2).
    let formatVersion: UInt32
    private let filter: [UInt8]

    var blockCount: Int { blockOffsets.count }

    private struct Loaded {
        var indexKeys: [UInt8]
        var indexKeyEnds: [Int]
        var blockOffsets: [UInt64]
        var blockSizes: [UInt32]
        var blockTypes: [UInt8]
        var version: UInt32
        var filter: [UInt8]
    }

    /// The whole file mapped read-only, when reads go through the page cache (tables never
    /// change after they are written, so the mapping never sees a partial update).
    private let mapping: UnsafeRawBufferPointer?
    /// Mapped tables: one flag per data block, set once its mapped bytes passed their checksum
    /// (the mapping never changes, so later reads skip the XXH3 pass, as the block cache's
    /// blocks do); cleared by `dropPages`, so pages read again from disk are checked again.
    private let verified: UnsafeMutablePointer<Atomic<UInt8>>?
    /// Why a table opened with `mapped` is not mapped: the resource shortage mmap reported
    /// (its blocks are read through the file layer into the block cache instead).
    let mapFallback: IOError?

    init(meta: TableMeta, directory: String, fileSystem: FileSystem, cache: BlockCache, mapped: Bool = false) throws(LSMError) {
        let path = directory + "/" + TableFormat.fileName(meta.number)
        let f: File
        do { f = try fileSystem.open(path, .readOnlyAccess) } catch { throw .io(error) }
        let loaded: Loaded
        do throws(LSMError) { loaded = try Table.load(file: f, path: path, meta: meta) } catch {
            f.close()
            throw error
        }
        // A mapping that fails for want of a resource (memory, address space) falls back to
        // reads through the file layer, and says so (`mapFallback`, counted by the tree). Any
        // other failure (EBADF: the descriptor was closed under us; EINVAL, EACCES) is a bug or
        // a broken file, and silently reading through the descriptor number anyway once read
        // another file's bytes (ARCHITECTURE.md, "Descriptors in tests"): the open fails, naming
        // the table.
        var map: UnsafeRawBufferPointer? = nil
        var fallback: IOError? = nil
        if mapped && meta.fileBytes > 0 {
            do throws(IOError) { map = try fileSystem.mapReadOnly(f, bytes: Int(meta.fileBytes)) } catch {
                guard error.isResourceShortage else {
                    f.close()
                    throw .io(error)
                }
                fallback = error
            }
        }
        mapping = map
        mapFallback = fallback
        if map != nil {
            let n = max(1, loaded.blockOffsets.count)
            let v = UnsafeMutablePointer<Atomic<UInt8>>.allocate(capacity: n)
            for i in 0..<n { (v + i).initialize(to: Atomic(0)) }
            verified = v
        } else {
            verified = nil
        }
        self.meta = meta
        self.cache = cache
        self.path = path
        self.file = f
        indexKeys = loaded.indexKeys
        indexKeyEnds = loaded.indexKeyEnds
        let smallest = meta.smallestUser
        let largest = meta.largestUser
        let common = zip(smallest, largest).prefix { $0 == $1 }.count
        let shared = Array(smallest.prefix(common))
        self.shared = shared
        indexPrefixes = loaded.indexKeys.withUnsafeBytes { keys in
            (0..<loaded.indexKeyEnds.count).map { i in
                let start = (i == 0 ? 0 : loaded.indexKeyEnds[i - 1]) + shared.count
                // An index key is one of the table's keys: it starts with `shared`.
                return Table.prefix(user: UnsafeRawBufferPointer(rebasing: keys[min(start, loaded.indexKeyEnds[i] - 8)..<(loaded.indexKeyEnds[i] - 8)]))
            }
        }
        blockOffsets = loaded.blockOffsets
        blockSizes = loaded.blockSizes
        blockTypes = loaded.blockTypes
        anyCompressed = loaded.blockTypes.contains { $0 != BlockCompressionType.none.rawValue }
        formatVersion = loaded.version
        filter = loaded.filter
    }

    private static func load(file: File, path: String, meta: TableMeta) throws(LSMError) -> Loaded {
        let size: UInt64
        do { size = try file.size() } catch { throw .io(error) }
        guard size == meta.fileBytes, size >= UInt64(TableFormat.footerBytes) else {
            throw .corrupt(file: path, detail: "size \(size) bytes, the manifest says \(meta.fileBytes)")
        }
        var footer = [UInt8](repeating: 0, count: TableFormat.footerBytes)
        let f = file
        let readResult: Result<Void, IOError> = footer.withUnsafeMutableBytes { buf in
            do throws(IOError) {
                try f.readExactly(into: buf, at: size - UInt64(TableFormat.footerBytes))
                return .success(())
            } catch { return .failure(error) }
        }
        if case .failure(let e) = readResult { throw .io(e) }
        let parsed: Result<(UInt64, UInt64, UInt32, UInt32, UInt64, UInt32), LSMError> = footer.withUnsafeBytes { raw in
            guard raw.loadLE(UInt64.self, at: 0) == TableFormat.magic else { return .failure(.corrupt(file: path, detail: "bad footer magic")) }
            let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<48]), seed: .tableFooter)
            guard sum == raw.loadLE(UInt64.self, at: 48) else { return .failure(.corrupt(file: path, detail: "footer checksum mismatch")) }
            let version = raw.loadLE(UInt32.self, at: 8)
            guard version >= TableFormat.oldestReadableVersion && version <= TableFormat.version else {
                return .failure(.corrupt(file: path, detail: "unknown table format version \(version)"))
            }
            return .success((raw.loadLE(UInt64.self, at: 16), raw.loadLE(UInt64.self, at: 24), raw.loadLE(UInt32.self, at: 32), raw.loadLE(UInt32.self, at: 36), raw.loadLE(UInt64.self, at: 40), version))
        }
        let (indexOffset, filterOffset, indexSize, filterSize, entries, version) = try parsed.get()
        // Offsets first bounded by the file size, so the sums below cannot overflow (a
        // checksum-valid footer with an offset near 2^64 trapped here: found by fuzzing).
        guard entries == meta.entries, filterOffset < size, indexOffset < size,
              filterOffset + UInt64(filterSize) + 8 <= indexOffset,
              indexOffset + UInt64(indexSize) + 8 + UInt64(TableFormat.footerBytes) == size
        else { throw .corrupt(file: path, detail: "footer handles do not fit the file") }
        let filterBytes = try Table.readRaw(file: file, path: path, offset: filterOffset, size: Int(filterSize))
        let filter = makeArray(UnsafeRawBufferPointer(rebasing: filterBytes[0..<Int(filterSize)]))
        filterBytes.deallocate()
        let indexBlock = try Block(taking: try Table.readRaw(file: file, path: path, offset: indexOffset, size: Int(indexSize)), count: Int(indexSize), file: path)
        var keys: [UInt8] = []
        var ends: [Int] = []
        var offsets: [UInt64] = []
        var sizes: [UInt32] = []
        var types: [UInt8] = []
        var cursor = BlockCursor(indexBlock)
        cursor.seekToFirst()
        while cursor.isValid {
            keys.append(contentsOf: cursor.key)
            ends.append(keys.count)
            var i = 0
            let v = cursor.value
            var off: UInt64 = 0
            var sz: UInt64 = 0
            guard Table.varint(v, &i, &off), Table.varint(v, &i, &sz), off < filterOffset, sz < filterOffset, off + sz + 8 <= filterOffset else {
                throw .corrupt(file: path, detail: "bad block handle in the index")
            }
            var type = BlockCompressionType.none.rawValue
            if version >= 2 {
                guard i < v.count else { throw .corrupt(file: path, detail: "bad block handle in the index") }
                type = v[i]
                i += 1
                guard BlockCompressionType(rawValue: type) != nil else {
                    throw .corrupt(file: path, detail: "block at offset \(off) has unknown compression type \(type)")
                }
            }
            guard i == v.count else { throw .corrupt(file: path, detail: "bad block handle in the index") }
            offsets.append(off)
            sizes.append(UInt32(sz))
            types.append(type)
            cursor.next()
        }
        if cursor.corrupt { throw .corrupt(file: path, detail: "malformed index block") }
        return Loaded(indexKeys: keys, indexKeyEnds: ends, blockOffsets: offsets, blockSizes: sizes, blockTypes: types,
                      version: version, filter: filter)
    }


    deinit {
        if let mapping { munmap(UnsafeMutableRawPointer(mutating: mapping.baseAddress), mapping.count) }
        verified?.deinitialize(count: max(1, blockOffsets.count)).deallocate()
        file.close()
    }

    var isMapped: Bool { mapping != nil }

    /// Drops this table's pages from the process and asks the kernel to drop them from the
    /// page cache (cold-read benchmarks).
    func dropPages() {
        if let mapping { madvise(UnsafeMutableRawPointer(mutating: mapping.baseAddress), mapping.count, MADV_DONTNEED) }
        if let verified { for i in 0..<blockOffsets.count { (verified + i).pointee.store(0, ordering: .relaxed) } }
        file.dropCache()
    }

    /// Starts reading block `i`'s pages in the background (a batch of lookups issues these for
    /// all its blocks first, so the disk reads overlap).
    /// Blocks read (and verified) since the last `dropPages` are skipped: their pages were just
    /// touched, and a warm multi-get would otherwise pay a system call per block for nothing.
    func prefetch(_ i: Int) {
        guard let mapping, let verified, (verified + i).pointee.load(ordering: .relaxed) == 0 else { return }
        let page = 4096
        let start = Int(blockOffsets[i]) & ~(page - 1)
        let end = Int(blockOffsets[i]) + Int(blockSizes[i]) + 8
        madvise(UnsafeMutableRawPointer(mutating: mapping.baseAddress! + start), end - start, MADV_WILLNEED)
    }

    /// Block `i` as a verified view into the mapping.
    @inline(__always)
    private func mappedBlock(_ i: Int, _ mapping: UnsafeRawBufferPointer) throws(LSMError) -> Block {
        try Block(viewing: verifiedMappedBytes(i, mapping), owner: self, file: path)
    }

    /// Block `i`'s bytes in the mapping, checksum-verified on their first read.
    @inline(__always)
    private func verifiedMappedBytes(_ i: Int, _ mapping: UnsafeRawBufferPointer) throws(LSMError) -> UnsafeRawBufferPointer {
        let offset = Int(blockOffsets[i])
        let size = Int(blockSizes[i])
        let body = UnsafeRawBufferPointer(rebasing: mapping[offset..<(offset + size)])
        let flag = verified! + i
        if flag.pointee.load(ordering: .relaxed) == 0 {
            guard Checksum.xxh3(body, seed: .tableBlock) == mapping.loadLE(UInt64.self, at: offset + size) else {
                throw .corrupt(file: path, detail: "block at offset \(offset) fails its checksum")
            }
            flag.pointee.store(1, ordering: .relaxed)
        }
        return body
    }

    /// Block `i` for a point lookup: a view into the mapping (no object allocated: a `Block`
    /// per lookup was ~550 instructions of a multi-get's key), or the cached or read (and
    /// decompressed) block, returned with its view so the caller keeps its bytes alive while it
    /// reads them.
    func pointBlock(_ i: Int) throws(LSMError) -> (view: BlockView, owner: Block?) {
        if let mapping, !anyCompressed || blockTypes[i] == BlockCompressionType.none.rawValue {
            let body = try verifiedMappedBytes(i, mapping)
            guard let view = BlockView(checking: body) else {
                throw .corrupt(file: path, detail: "block restart array does not fit its \(body.count) bytes")
            }
            return (view, nil)
        }
        let b = try block(i)
        return (b.view, b)
    }

    private static func varint(_ v: UnsafeRawBufferPointer, _ i: inout Int, _ out: inout UInt64) -> Bool {
        var shift: UInt64 = 0
        out = 0
        while i < v.count && shift < 64 {
            let b = v[i]
            i += 1
            out |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return true }
            shift += 7
        }
        return false
    }

    /// Reads `size` bytes plus the checksum at `offset` and verifies them.
    static func readRaw(file: File, path: String, offset: UInt64, size: Int) throws(LSMError) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 8, alignment: 8)
        do {
            try file.readExactly(into: buffer, at: offset)
        } catch {
            buffer.deallocate()
            throw .io(error)
        }
        return try verify(buffer, size: size, path: path, offset: offset)
    }

    /// Verifies a block read with its checksum (`buffer` holds the block and then its 8-byte
    /// checksum); returns `buffer`, or frees it and throws.
    static func verify(_ buffer: UnsafeMutableRawBufferPointer, size: Int, path: String, offset: UInt64) throws(LSMError) -> UnsafeMutableRawBufferPointer {
        let raw = UnsafeRawBufferPointer(buffer)
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<size])
        let expected = raw.loadLE(UInt64.self, at: size)
        guard Checksum.xxh3(body, seed: .tableBlock) == expected else {
            buffer.deallocate()
            throw .corrupt(file: path, detail: "block at offset \(offset) fails its checksum")
        }
        return buffer
    }

    private static func readVerified(file: File, path: String, offset: UInt64, size: Int, type: UInt8) throws(LSMError) -> Block {
        try open(try readRaw(file: file, path: path, offset: offset, size: size), size: size, type: type, path: path, offset: offset)
    }

    /// The block in `buffer` (its first `size` bytes: stored bytes that passed their checksum,
    /// owned by the caller until this returns), decompressed when `type` says so; takes
    /// `buffer` (kept as the block's bytes, or freed after decompression or on an error).
    static func open(_ buffer: UnsafeMutableRawBufferPointer, size: Int, type: UInt8, path: String, offset: UInt64) throws(LSMError) -> Block {
        if type == BlockCompressionType.none.rawValue { return try Block(taking: buffer, count: size, file: path) }
        defer { buffer.deallocate() }
        let plain = try BlockCodec.decompress(UnsafeRawBufferPointer(rebasing: buffer[0..<size]), type: type, path: path, offset: offset)
        return try Block(taking: plain, file: path)
    }

    // MARK: lookups

    /// The first block whose last key is >= `target`, or `blockCount` when none is.
    func blockIndex(for target: UnsafeRawBufferPointer) -> Int {
        let user = UnsafeRawBufferPointer(rebasing: target[..<(target.count - 8)])
        switch sharedOrder(user) {
        case .below: return 0
        case .above: return blockOffsets.count
        case .within(let prefix):
            return firstBlock(prefix: prefix) { InternalKey.compare($0, target) < 0 }.lo
        }
    }

    /// Where a user key stands against the bytes every key of this table starts with: below
    /// or above all of the table's keys, or starting with them, with its integer prefix after
    /// them (what `indexPrefixes` holds for the index keys).
    enum SharedOrder {
        case below, above
        case within(UInt64)
    }

    @inline(__always)
    func sharedOrder(_ user: UnsafeRawBufferPointer) -> SharedOrder {
        let n = shared.count
        if n > 0 {
            let c = shared.withUnsafeBytes { InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: user[..<min(n, user.count)]), $0) }
            // A key that is a proper prefix of the shared bytes sorts before all of them.
            if c < 0 { return .below }
            if c > 0 { return .above }
            if user.count < n { return .below }
        }
        return .within(Table.prefix(user: UnsafeRawBufferPointer(rebasing: user[n...])))
    }

    /// The binary search for the first block whose last user key is >= `user` (the block a
    /// point lookup of `user` searches: `blockIndex(for:)` of `user` with the largest trailer),
    /// from `lo..<hi` until at most `width` blocks are left: a pipelined lookup searches the top
    /// of the index, which stays in the CPU's caches, loads the lines of the range left, and
    /// finishes the search with width 0 once they are in. The result's `lo` is the block
    /// (`blockCount` when none is).
    @inline(__always)
    func narrowIndex(user: UnsafeRawBufferPointer, _ lo: Int, _ hi: Int, to width: Int) -> (lo: Int, hi: Int) {
        switch sharedOrder(user) {
        case .below: return (0, 0)
        case .above: return (blockOffsets.count, blockOffsets.count)
        case .within(let prefix):
            return firstBlock(prefix: prefix, lo, hi, to: width) {
                InternalKey.compareUser(UnsafeRawBufferPointer(rebasing: $0[..<($0.count - 8)]), user) < 0
            }
        }
    }

    /// Starts loading the index prefixes of blocks `lo..<hi`.
    @inline(__always)
    func prefetchIndex(_ lo: Int, _ hi: Int) {
        indexPrefixes.withUnsafeBufferPointer { prefixes in
            guard lo < hi else { return }
            var line = Int(bitPattern: prefixes.baseAddress! + lo) & ~63
            let end = Int(bitPattern: prefixes.baseAddress! + hi)
            while line < end {
                socialdb_prefetch(UnsafeRawPointer(bitPattern: line))
                line += 64
            }
        }
    }

    /// Binary search of the index over `lo..<hi` until at most `width` blocks are left: the
    /// range holding the first block whose last key is not `less` than the one sought,
    /// comparing the keys' 8-byte prefixes first and calling `less` on a tie.
    @inline(__always)
    private func firstBlock(prefix wanted: UInt64, _ lo: Int = 0, _ hi: Int? = nil, to width: Int = 0,
                            _ less: (UnsafeRawBufferPointer) -> Bool) -> (lo: Int, hi: Int) {
        var lo = lo
        var hi = hi ?? blockOffsets.count
        indexKeys.withUnsafeBytes { keys in
            indexPrefixes.withUnsafeBufferPointer { prefixes in
                indexKeyEnds.withUnsafeBufferPointer { ends in
                    while hi - lo > width && lo < hi {
                        let mid = (lo + hi) / 2
                        let p = prefixes[mid]
                        let below: Bool
                        if p != wanted {
                            below = p < wanted
                        } else {
                            let start = mid == 0 ? 0 : ends[mid - 1]
                            below = less(UnsafeRawBufferPointer(rebasing: keys[start..<ends[mid]]))
                        }
                        if below { lo = mid + 1 } else { hi = mid }
                    }
                }
            }
        }
        return (lo, hi)
    }

    /// The first 8 bytes of a user key as a big-endian integer, zero-padded: integers order as
    /// the keys do wherever they differ (a tie needs the whole keys).
    @inline(__always)
    static func prefix(user: UnsafeRawBufferPointer) -> UInt64 {
        if user.count >= 8 { return UInt64(bigEndian: user.loadUnaligned(as: UInt64.self)) }
        var v: UInt64 = 0
        for i in 0..<user.count { v |= UInt64(user[i]) << (56 - 8 * UInt64(i)) }
        return v
    }

    @inline(__always)
    func mayContain(hash: UInt64) -> Bool {
        filter.withUnsafeBytes { BloomFilter.mayContain($0, hash: hash) }
    }

    /// Starts loading the filter lines `mayContain(hash:)` reads.
    @inline(__always)
    func prefetchFilter(hash: UInt64) {
        filter.withUnsafeBytes { BloomFilter.prefetch($0, hash: hash) }
    }

    /// Starts loading block `i`'s offset, size and (mapped tables) verified flag.
    @inline(__always)
    func prefetchHandle(_ i: Int) {
        blockOffsets.withUnsafeBufferPointer { socialdb_prefetch($0.baseAddress! + i) }
        blockSizes.withUnsafeBufferPointer { socialdb_prefetch($0.baseAddress! + i) }
        if let verified { socialdb_prefetch(UnsafeRawPointer(verified + i)) }
    }

    /// Mapped tables: starts loading the lines of block `i` a point lookup reads first (its
    /// restart array, at the end).
    @inline(__always)
    func prefetchTail(_ i: Int) {
        guard let mapping, !anyCompressed || blockTypes[i] == BlockCompressionType.none.rawValue else { return }
        let end = Int(blockOffsets[i]) + Int(blockSizes[i])
        socialdb_prefetch(mapping.baseAddress! + (end - 4))
        socialdb_prefetch(mapping.baseAddress! + max(Int(blockOffsets[i]), end - 68))
    }

    /// Block `i`: a verified view of the mapping, or from the cache, or read (or viewed in the
    /// mapping), verified and decompressed. A block made here goes into the cache unless
    /// `fillCache` is false (compaction's reads: a table read once would evict what reads use).
    func block(_ i: Int, fillCache: Bool = true) throws(LSMError) -> Block {
        let type = blockTypes[i]
        if let mapping, type == BlockCompressionType.none.rawValue { return try mappedBlock(i, mapping) }
        let key = BlockCache.Key(file: meta.number, offset: blockOffsets[i])
        if let b = cache.lookup(key) { return b }
        let b: Block
        if let mapping {
            let stored = try verifiedMappedBytes(i, mapping)
            b = try Block(taking: try BlockCodec.decompress(stored, type: type, path: path, offset: blockOffsets[i]), file: path)
        } else {
            b = try Table.readVerified(file: file, path: path, offset: blockOffsets[i], size: Int(blockSizes[i]), type: type)
        }
        if fillCache { cache.insert(key, b) }
        return b
    }

    /// Block `i` when it needs no read of its own (mapped tables always qualify: a compressed
    /// block of theirs is decompressed from the mapping).
    func cachedBlock(_ i: Int) -> Block? {
        if isMapped { return nil }
        return cache.lookup(BlockCache.Key(file: meta.number, offset: blockOffsets[i]))
    }

    /// Verifies (and decompresses) a block read by a batch and caches it.
    func adopt(_ buffer: UnsafeMutableRawBufferPointer, block i: Int) throws(LSMError) -> Block {
        let bytes = try Table.verify(buffer, size: Int(blockSizes[i]), path: path, offset: blockOffsets[i])
        let b = try Table.open(bytes, size: Int(blockSizes[i]), type: blockTypes[i], path: path, offset: blockOffsets[i])
        cache.insert(BlockCache.Key(file: meta.number, offset: blockOffsets[i]), b)
        return b
    }
}
