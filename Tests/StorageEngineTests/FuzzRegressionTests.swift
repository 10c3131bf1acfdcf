@testable import StorageEngine
import Testing

/// Inputs the fuzz targets (Fuzz/, scripts/fuzz) found crashing a decoder, kept as tests once
/// fixed. Each builds the smallest input with the same defect.
@Suite struct FuzzRegressionTests {
    /// graph-base target: a base whose footer (checksum repaired) gives a section offset at or
    /// past 2^63. `Int(_:)` of it trapped in `GraphBase.verify`; now it is out of bounds.
    @Test func graphSectionOffsetPastIntMaxIsRejected() {
        let base = GraphBase.empty(generation: 1, coveredLSN: 0)
        var bytes = Array(UnsafeRawBufferPointer(base.image))
        #expect(bytes.withUnsafeBytes { GraphBase.verify($0) } == nil)
        let footer = bytes.count - GraphFormat.footerBytes
        for (section, field) in [(0, 0), (1, 8), (3, 0), (2, 8)] {
            var damaged = bytes
            damaged.withUnsafeMutableBytes { raw in
                raw.storeLE(UInt64.max - 7, at: footer + section * 24 + field)
                let sum = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + 104)]), seed: GraphFormat.footerSeed)
                raw.storeLE(sum, at: footer + 104)
            }
            let problem = damaged.withUnsafeBytes { GraphBase.verify($0) }
            #expect(problem == "section \(section) out of bounds")
        }
        bytes[0] ^= 1
        #expect(bytes.withUnsafeBytes { GraphBase.verify($0) } == "bad magic")
    }

    /// A block's restart array with offsets not 0 then strictly increasing inside the entries
    /// (table-block target: a cursor stepping back through unordered restarts never ended).
    /// Rejected when the block is made; a well-formed block still loads.
    @Test func blockWithUnorderedRestartsIsRejected() throws {
        var builder = BlockBuilder(restartInterval: 2)
        for i in 0..<10 {
            let key = Array("key\(i)".utf8) + [UInt8](repeating: 0, count: 8)
            key.withUnsafeBytes { k in [UInt8(i)].withUnsafeBytes { v in builder.add(key: k, value: v) } }
        }
        let good = builder.finish()
        let count = Int(good.withUnsafeBytes { $0.loadLE(UInt32.self, at: good.count - 4) })
        #expect(count == 5)
        let start = good.count - 4 - count * 4
        try good.withUnsafeBytes { raw in
            let block = try Block(viewing: raw, owner: Holder(), file: "good")
            var cursor = BlockCursor(block)
            cursor.seekToLast()
            var n = 0
            while cursor.isValid { n += 1; cursor.previous() }
            #expect(n == 10)
        }
        func damaged(_ change: (inout [UInt8]) -> Void) -> [UInt8] { var b = good; change(&b); return b }
        let restart = { (b: [UInt8], i: Int) in b.withUnsafeBytes { $0.loadLE(UInt32.self, at: start + i * 4) } }
        let bad: [[UInt8]] = [
            damaged { b in b.withUnsafeMutableBytes { $0.storeLE(restart(good, 3), at: start + 4) } },           // 1 after 3: unordered
            damaged { b in b.withUnsafeMutableBytes { $0.storeLE(restart(good, 1), at: start + 8) } },           // repeated
            damaged { b in b.withUnsafeMutableBytes { $0.storeLE(UInt32(start), at: start + 16) } },            // past the entries
            damaged { b in b.withUnsafeMutableBytes { $0.storeLE(UInt32(1), at: start) } },                     // first is not 0
            damaged { b in b.withUnsafeMutableBytes { $0.storeLE(UInt32.max, at: $0.count - 4) } },            // count too large
        ]
        for bytes in bad {
            bytes.withUnsafeBytes { raw in
                _ = #expect(throws: LSMError.self) { _ = try Block(viewing: raw, owner: Holder(), file: "bad") }
            }
        }
    }

    /// A table whose footer (checksum valid) puts the filter or index near 2^64, or whose index
    /// names a block near 2^64 (table-file target: the bounds sums overflowed and trapped).
    @Test func tableHandlesNearTwoToThe64AreRejected() throws {
        let dir = TemporaryDirectory("fuzz-table")
        let fs = try FileSystem(backend: .posix)
        var builder = try TableBuilder(fileSystem: fs, directory: dir.path, number: 1, options: LSMOptions())
        for i in 0..<200 {
            let digits = String(i)
            let key = Array(("key" + String(repeating: "0", count: 4 - digits.count) + digits).utf8) + [UInt8](repeating: 0, count: 8)
            try key.withUnsafeBytes { k in try [UInt8](repeating: UInt8(i & 0xFF), count: 40).withUnsafeBytes { v in try builder.add(key: k, value: v) } }
        }
        let meta = try builder.finish()
        let path = dir.path + "/" + TableFormat.fileName(1)
        let original = readWholeFile(path)
        _ = try Table(meta: meta, directory: dir.path, fileSystem: fs, cache: BlockCache(capacityBytes: 1 << 20))
        let f = original.count - TableFormat.footerBytes
        func withFooter(_ bytes: [UInt8], _ change: (UnsafeMutableRawBufferPointer, Int) -> Void) -> [UInt8] {
            var b = bytes
            let footer = b.count - TableFormat.footerBytes
            b.withUnsafeMutableBytes { raw in
                change(raw, footer)
                raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + 48)]), seed: .tableFooter), at: footer + 48)
            }
            return b
        }
        var cases: [[UInt8]] = [
            withFooter(original) { raw, footer in raw.storeLE(UInt64.max - 4, at: footer + 24) },   // filter offset
            withFooter(original) { raw, footer in raw.storeLE(UInt64.max - 4, at: footer + 16) },   // index offset
        ]
        // An index whose one handle is at 2^64 - 16: a new index block, checksummed, and footer.
        let indexOffset = Int(original.withUnsafeBytes { $0.loadLE(UInt64.self, at: f + 16) })
        var index = BlockBuilder(restartInterval: 1)
        var handle: [UInt8] = []
        Varint.append(UInt64.max - 15, to: &handle)
        Varint.append(8, to: &handle)
        let lastKey = Array("key0199".utf8) + [UInt8](repeating: 0, count: 8)
        lastKey.withUnsafeBytes { k in handle.withUnsafeBytes { v in index.add(key: k, value: v) } }
        let indexBlock = index.finish()
        var rebuilt = Array(original[0..<indexOffset]) + indexBlock
        rebuilt.appendLE(Checksum.xxh3(indexBlock, seed: .tableBlock))
        rebuilt += original[f...]
        cases.append(withFooter(rebuilt) { raw, footer in raw.storeLE(UInt32(indexBlock.count), at: footer + 32) })
        for bytes in cases {
            writeWholeFile(path, bytes)
            var m = meta
            m.fileBytes = UInt64(bytes.count)
            #expect(throws: LSMError.self) { _ = try Table(meta: m, directory: dir.path, fileSystem: fs, cache: BlockCache(capacityBytes: 1 << 20)) }
        }
    }
}

/// Keeps viewed bytes' owner alive in the tests above.
final class Holder {}
