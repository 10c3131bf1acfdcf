@testable import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Table format version 2: data blocks compressed one by one (zstd), kept as built when that
/// saves less than 1/8; checksums over the stored bytes; version-1 tables still read.
@Suite struct LSMCompressionTests {
    /// A value that compresses well (text-like: a few words repeated) or not at all (random).
    static func value(_ n: UInt64, compressible: Bool, rng: inout SeededRandom) -> [UInt8] {
        var v: [UInt8] = []
        withUnsafeBytes(of: n.littleEndian) { v.append(contentsOf: $0) }
        let words = ["the ", "tweet ", "of ", "socialdb ", "#swift ", "@alice ", "https://x.co/ "]
        while v.count < 120 + Int(n % 80) {
            if compressible {
                v.append(contentsOf: words[Int(rng.next() % UInt64(words.count))].utf8)
            } else {
                v.append(UInt8(truncatingIfNeeded: rng.next()))
            }
        }
        return v
    }

    static func options(mapped: Bool) -> LSMOptions {
        var o = LSMOptions()
        o.blockBytes = 1024
        o.restartInterval = 8
        o.memtableBytes = 64 << 10
        o.blockCacheBytes = 128 << 10
        o.backgroundWork = false
        o.mmapReads = mapped
        return o
    }

    /// Every read form against `model`: gets, both multi-gets, scans both ways.
    static func expectReads(_ tree: LSMTree, _ model: [[UInt8]: [UInt8]], _ context: String) throws {
        let keys = model.keys.sorted { $0.lexicographicallyPrecedes($1) }
        for k in keys { #expect(try tree.get(k) == model[k], "get \(k) \(context)") }
        for start in stride(from: 0, to: keys.count, by: 20) {
            let page = Array(keys[start..<min(keys.count, start + 20)])
            #expect(try tree.multiGet(page) == page.map { model[$0] }, "multiGet \(context)")
            #expect(try batchGet(tree, page) == page.map { model[$0] }, "batch multiGet \(context)")
        }
        var forward: [[UInt8]] = []
        var values: [[UInt8]] = []
        try tree.scan(from: [0], to: nil) { k, v in forward.append(Array(k)); values.append(Array(v)); return true }
        #expect(forward == keys && values == keys.map { model[$0]! }, "scan \(context)")
        var backward: [[UInt8]] = []
        try tree.scan(from: [0], to: [0xFF], reverse: true) { k, _ in backward.append(Array(k)); return true }
        #expect(backward == keys.reversed(), "reverse scan \(context)")
    }

    static func usage(_ dir: String) -> (blocks: Int, compressed: Int, report: CheckReport) {
        let report = DataDirectoryCheck.run(directory: dir)
        return (report.keySpaces.reduce(0) { $0 + $1.blocks }, report.keySpaces.reduce(0) { $0 + $1.compressedBlocks }, report)
    }

    @Test func blocksRoundTripThroughTheCodec() throws {
        var rng = SeededRandom(seed: testSeed())
        let compressor = ZstdCompressor()
        var out: [UInt8] = []
        // A block of text-like values compresses, and decompresses to the same bytes.
        var text: [UInt8] = []
        for i in 0..<30 { text += Self.value(UInt64(i), compressible: true, rng: &rng) }
        #expect(text.withUnsafeBytes { BlockCodec.compress($0, level: 1, compressor: compressor, into: &out) })
        #expect(out.count <= text.count - text.count / 8)
        let plain = try out.withUnsafeBytes { try BlockCodec.decompress($0, type: BlockCompressionType.zstd.rawValue, path: "t", offset: 0) }
        #expect(Array(UnsafeRawBufferPointer(plain)) == text)
        plain.deallocate()
        // Random bytes do not save 1/8: stored as built. So are tiny blocks.
        let noise = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        #expect(!noise.withUnsafeBytes { BlockCodec.compress($0, level: 1, compressor: compressor, into: &out) })
        let tiny = [UInt8](repeating: 7, count: 40)
        #expect(!tiny.withUnsafeBytes { BlockCodec.compress($0, level: 1, compressor: compressor, into: &out) })
        // An unknown type, a truncated frame and a size header that disagrees are corruption.
        #expect(text.withUnsafeBytes { BlockCodec.compress($0, level: 1, compressor: compressor, into: &out) })
        #expect(throws: LSMError.self) { _ = try out.withUnsafeBytes { try BlockCodec.decompress($0, type: 9, path: "t", offset: 0) } }
        let cut = Array(out.dropLast(5))
        #expect(throws: LSMError.self) { _ = try cut.withUnsafeBytes { try BlockCodec.decompress($0, type: 1, path: "t", offset: 0) } }
        var wrongSize: [UInt8] = []
        Varint.append(UInt64(text.count + 1), to: &wrongSize)
        var i = 0
        out.withUnsafeBytes { _ = readBlockVarint($0, &i, $0.count) }
        wrongSize += out[i...]
        let error = #expect(throws: LSMError.self) {
            _ = try wrongSize.withUnsafeBytes { try BlockCodec.decompress($0, type: 1, path: "t", offset: 0) }
        }
        #expect(String(describing: error).contains("decompresses to \(text.count) bytes, its header says \(text.count + 1)"), "\(String(describing: error))")
    }

    /// Tables holding compressed blocks and blocks stored as built (incompressible values), read
    /// mapped and through the block cache, before and after a full compaction, and by a tree
    /// whose compression is off (it reads compressed tables, and writes plain ones).
    @Test(arguments: [true, false])
    func compressedAndPlainBlocksRoundTrip(mapped: Bool) throws {
        var rng = SeededRandom(seed: testSeed())
        let tmp = TemporaryDirectory("lsm-compress")
        var options = Self.options(mapped: mapped)
        var h = try TreeHarness(dir: tmp.path, options: options)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<3_000 as Range<UInt64> {
            // Runs of 40 keys alike, so whole blocks are of one kind or the other.
            let k = modelKey(space: UInt8(1 + i % 2), i)
            let v = Self.value(i, compressible: (i / 40) % 3 != 0, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.tree.flush()
        try Self.expectReads(h.tree, model, "after the flush, mapped \(mapped)")
        #expect(h.tree.statistics.blocksWritten.compressedBlocks > 0)
        #expect(h.tree.statistics.blocksWritten.storedBytes < h.tree.statistics.blocksWritten.rawBytes)
        // Overwrite a tenth, so the compaction merges instead of moving.
        for i in stride(from: 0, to: 3_000, by: 10) as StrideTo<UInt64> {
            let k = modelKey(space: UInt8(1 + i % 2), i)
            let v = Self.value(i &+ 7, compressible: i % 20 == 0, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.tree.compactAll()
        try Self.expectReads(h.tree, model, "after compaction, mapped \(mapped)")
        try h.close()
        var (blocks, compressed, report) = Self.usage(tmp.path)
        #expect(report.isClean, "\(report.findings)")
        #expect(compressed > 0 && compressed < blocks, "\(compressed) of \(blocks) blocks compressed")
        // A tree with compression off reads them all, and writes its tables uncompressed.
        options.compression = .none
        h = try TreeHarness(dir: tmp.path, options: options)
        try Self.expectReads(h.tree, model, "compression off, mapped \(mapped)")
        for i in 0..<3_000 as Range<UInt64> where i % 7 == 0 {
            let k = modelKey(space: UInt8(1 + i % 2), i)
            let v = Self.value(i &+ 11, compressible: true, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.tree.compactAll()
        #expect(h.tree.statistics.blocksWritten.compressedBlocks == 0 && h.tree.statistics.blocksWritten.blocks > 0)
        try Self.expectReads(h.tree, model, "compression off, compacted, mapped \(mapped)")
        try h.close()
        (blocks, compressed, report) = Self.usage(tmp.path)
        #expect(report.isClean, "\(report.findings)")
        #expect(compressed == 0, "\(compressed) of \(blocks) blocks compressed after compaction without compression")
    }

    /// Blocks of the key spaces named in `uncompressedKeyPrefixes` stay as built however well
    /// they would compress (the engine's default names the tweet records); the others compress;
    /// both read back.
    @Test func exemptKeySpacesStayAsBuilt() throws {
        #expect(EngineOptions().uncompressedKeyPrefixes == [KeySpace.tweets.rawValue])
        var rng = SeededRandom(seed: testSeed())
        let tmp = TemporaryDirectory("lsm-compress-exempt")
        var options = Self.options(mapped: true)
        options.uncompressedKeyPrefixes = [1]
        let h = try TreeHarness(dir: tmp.path, options: options)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<2_000 as Range<UInt64> {
            let k = modelKey(space: UInt8(1 + i % 2), i)
            let v = Self.value(i, compressible: true, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.tree.flush()
        try h.tree.compactAll()
        try Self.expectReads(h.tree, model, "exempt space 1")
        try h.close()
        let (_, _, report) = Self.usage(tmp.path)
        #expect(report.isClean, "\(report.findings)")
        let one = report.keySpaces.first { $0.space == 1 }, two = report.keySpaces.first { $0.space == 2 }
        #expect((one?.blocks ?? 0) > 0 && one?.compressedBlocks == 0, "\(String(describing: one))")
        #expect((two?.compressedBlocks ?? 0) > 0, "\(String(describing: two))")
    }

    /// Tables of format version 1 (as builds before version 2 wrote them) open and read as they
    /// were, next to version-2 tables; compaction rewrites what it merges as version 2.
    @Test(arguments: [true, false])
    func versionOneTablesAreStillRead(mapped: Bool) throws {
        var rng = SeededRandom(seed: testSeed())
        let tmp = TemporaryDirectory("lsm-v1")
        var options = Self.options(mapped: mapped)
        options.tableFormatVersion = 1
        var h = try TreeHarness(dir: tmp.path, options: options)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<2_000 as Range<UInt64> {
            let k = modelKey(space: 3, i * 2)
            let v = Self.value(i, compressible: true, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.close()
        var report = Self.usage(tmp.path).report
        #expect(report.isClean, "\(report.findings)")
        let tables = report.files.filter { $0.kind == "lsm table" }
        #expect(!tables.isEmpty && tables.allSatisfy { $0.summary.hasSuffix("format version 1") && $0.summary.contains("(0 compressed)") },
                "\(tables)")
        // The current writer: version-1 tables read beside new ones, and merged into version 2.
        options.tableFormatVersion = TableFormat.version
        h = try TreeHarness(dir: tmp.path, options: options)
        try Self.expectReads(h.tree, model, "version 1, mapped \(mapped)")
        for i in 0..<2_000 as Range<UInt64> where i % 3 == 0 {
            let k = modelKey(space: 3, i * 2 + (i % 2))
            let v = Self.value(i &+ 5, compressible: true, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.tree.flush()
        try Self.expectReads(h.tree, model, "versions 1 and 2, mapped \(mapped)")
        try h.tree.compactAll()
        try Self.expectReads(h.tree, model, "compacted, mapped \(mapped)")
        try h.close()
        report = Self.usage(tmp.path).report
        #expect(report.isClean, "\(report.findings)")
        let after = report.files.filter { $0.kind == "lsm table" }
        #expect(!after.isEmpty && after.allSatisfy { $0.summary.hasSuffix("format version 2") }, "\(after)")
        #expect(report.keySpaces.reduce(0) { $0 + $1.compressedBlocks } > 0)
    }

    /// Flipping a byte of a compressed block: every read form (and `check`) reports the
    /// table's checksum failure, never data; a block whose stored size header disagrees with
    /// its frame (with a checksum made to match) is reported as a size mismatch.
    @Test(arguments: [true, false])
    func damagedCompressedBlocksAreReportedNeverReturned(mapped: Bool) throws {
        var rng = SeededRandom(seed: testSeed())
        let tmp = TemporaryDirectory("lsm-compress-corrupt")
        var options = Self.options(mapped: mapped)
        options.blockCacheBytes = 0
        var h = try TreeHarness(dir: tmp.path, options: options)
        var model: [[UInt8]: [UInt8]] = [:]
        for i in 0..<1_000 as Range<UInt64> {
            let k = modelKey(space: 1, i)
            let v = Self.value(i, compressible: true, rng: &rng)
            try h.tree.put(k, v)
            model[k] = v
        }
        try h.close()
        let lsm = tmp.path + "/lsm"
        let fs = try FileSystem(backend: .posix)
        let name = try fs.listDirectory(lsm).filter { $0.hasSuffix(".sst") }.sorted()[0]
        let path = lsm + "/" + name
        let original = readWholeFile(path)
        // Where the table's second block is, and that it is compressed.
        let manifest = try #require(try Manifest.read(directory: lsm, fileSystem: fs))
        let meta = try #require(manifest.levels.joined().first { TableFormat.fileName($0.number) == name })
        let table = try Table(meta: meta, directory: lsm, fileSystem: fs, cache: BlockCache(capacityBytes: 0))
        #expect(table.formatVersion == 2)
        #expect(table.blockTypes[1] == BlockCompressionType.zstd.rawValue)
        let offset = Int(table.blockOffsets[1])
        let size = Int(table.blockSizes[1])
        let plain = try table.block(1).raw.count

        func expectOnlyErrors(_ detail: String) throws {
            h = try TreeHarness(dir: tmp.path, options: options)
            var failed = 0
            for (k, v) in model {
                do {
                    #expect(try h.tree.get(k) == v, "a damaged block returned data")
                } catch {
                    let d = String(describing: error)
                    #expect(d.contains(name) && d.contains(detail), "\(d)")
                    failed += 1
                }
            }
            #expect(failed > 0)
            #expect(throws: LSMError.self) { try h.tree.scan(from: [0], to: nil) { _, _ in true } }
            #expect(throws: LSMError.self) { try h.tree.scan(from: [0], to: [0xFF], reverse: true) { _, _ in true } }
            #expect(throws: LSMError.self) { _ = try h.tree.multiGet(Array(model.keys)) }
            #expect(throws: LSMError.self) { _ = try batchGet(h.tree, Array(model.keys)) }
            try h.tree.close(flush: false)
            let report = DataDirectoryCheck.run(directory: tmp.path)
            #expect(report.findings.contains { $0.file.hasSuffix(name) && $0.problem.contains(detail) }, "\(report.findings)")
        }

        // A flipped byte in the middle of the compressed bytes: the checksum, before decompression.
        var bytes = original
        bytes[offset + size / 2] ^= 0x10
        writeWholeFile(path, bytes)
        try expectOnlyErrors("fails its checksum")

        // The size header says one byte more than the frame holds; the checksum is recomputed.
        bytes = original
        var i = offset
        let stated = try #require(bytes.withUnsafeBytes { readBlockVarint($0, &i, offset + size) })
        #expect(stated == plain)
        var header: [UInt8] = []
        Varint.append(UInt64(stated + 1), to: &header)
        try #require(header.count == i - offset)
        bytes.replaceSubrange(offset..<i, with: header)
        let sum = bytes.withUnsafeBytes { Checksum.xxh3(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)]), seed: .tableBlock) }
        withUnsafeBytes(of: sum.littleEndian) { bytes.replaceSubrange((offset + size)..<(offset + size + 8), with: $0) }
        writeWholeFile(path, bytes)
        try expectOnlyErrors("decompresses to \(plain) bytes, its header says \(plain + 1)")
    }
}
