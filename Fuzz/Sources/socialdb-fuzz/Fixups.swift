@testable import StorageEngine

/// Checksum repair: a fuzzer cannot guess a 64-bit checksum, so most of its inputs would stop at
/// the first one. A target whose first input byte has bit 0 set repairs every checksum it can
/// find (as a writer with a bug, or a collision, would leave them) before decoding, so the
/// structural checks behind the checksums are fuzzed too. Bit 0 clear: the bytes as they are
/// (random corruption of a real file).
enum Fixup {
    static func loadLE<T: FixedWidthInteger>(_ b: [UInt8], _ at: Int, _: T.Type) -> T {
        b.withUnsafeBytes { $0.loadLE(T.self, at: at) }
    }

    static func storeLE<T: FixedWidthInteger>(_ b: inout [UInt8], _ value: T, at: Int) {
        b.withUnsafeMutableBytes { $0.storeLE(value, at: at) }
    }

    static func xxh3(_ b: [UInt8], _ range: Range<Int>, seed: UInt64) -> UInt64 {
        b.withUnsafeBytes { Checksum.xxh3(UnsafeRawBufferPointer(rebasing: $0[range]), seed: seed) }
    }

    /// Whether `[offset, offset + count)` lies inside `0..<limit`, without overflow.
    static func fits(_ offset: UInt64, _ count: UInt64, _ limit: Int) -> Bool {
        offset <= UInt64(limit) && count <= UInt64(limit) - offset
    }

    /// Log records from offset 0 of `region` (the bytes after the segment header page): sets each
    /// frame's LSN to the expected one and its checksum, while frames fit.
    static func logRecords(_ b: inout [UInt8], firstLSN: UInt64) {
        var at = 0
        var lsn = firstLSN
        while at + LogFormat.recordHeaderBytes <= b.count {
            let length = Int(loadLE(b, at + 8, UInt32.self))
            if length == 0 && loadLE(b, at + 12, UInt16.self) == 0 { return }
            let end = at + LogFormat.recordHeaderBytes + length
            guard length <= LogFormat.maxPayloadBytes, end <= b.count else { return }
            storeLE(&b, lsn, at: at + 16)
            storeLE(&b, xxh3(b, (at + 8)..<end, seed: Checksum.Seed.logRecord.rawValue), at: at)
            at = end
            lsn += 1
        }
    }

    /// A table file: every data block the index names, the filter and index blocks, the footer.
    static func table(_ b: inout [UInt8]) {
        let n = b.count
        guard n >= TableFormat.footerBytes else { return }
        let f = n - TableFormat.footerBytes
        let indexOffset = loadLE(b, f + 16, UInt64.self), filterOffset = loadLE(b, f + 24, UInt64.self)
        let indexSize = UInt64(loadLE(b, f + 32, UInt32.self)), filterSize = UInt64(loadLE(b, f + 36, UInt32.self))
        func block(_ offset: UInt64, _ size: UInt64) {
            guard fits(offset, size + 8, f) else { return }
            let o = Int(offset), s = Int(size)
            storeLE(&b, xxh3(b, o..<(o + s), seed: Checksum.Seed.tableBlock.rawValue), at: o + s)
        }
        if fits(indexOffset, indexSize + 8, f) {
            // The data blocks the index names (decoded as the reader will, as far as it goes).
            let index = Array(b[Int(indexOffset)..<Int(indexOffset + indexSize)])
            var handles: [(UInt64, UInt64)] = []
            index.withUnsafeBytes { raw in
                guard let blk = try? Block(viewing: raw, owner: Holder(), file: "fuzz") else { return }
                var cursor = BlockCursor(blk)
                cursor.seekToFirst()
                var count = 0
                while cursor.isValid && count < 10_000 {
                    let v = cursor.value
                    if let (off, i) = Varint.read(from: v, at: 0), let (size, _) = Varint.read(from: v, at: i) { handles.append((off, size)) }
                    cursor.next()
                    count += 1
                }
            }
            for (off, size) in handles where size < UInt64(n) { block(off, size) }
        }
        block(filterOffset, filterSize)
        block(indexOffset, indexSize)
        storeLE(&b, xxh3(b, f..<(f + 48), seed: Checksum.Seed.tableFooter.rawValue), at: f + 48)
    }

    /// Header, sections and footer of a file laid out as the graph base and search segment are.
    static func sectioned(_ b: inout [UInt8], headerSeed: UInt64, footerBytes: Int, sections: Int, sectionSeed: UInt64, footerSeed: UInt64) {
        guard b.count >= 64 + footerBytes else { return }
        storeLE(&b, xxh3(b, 0..<56, seed: headerSeed), at: 56)
        let footer = b.count - footerBytes
        for i in 0..<sections {
            let offset = loadLE(b, footer + i * 24, UInt64.self), length = loadLE(b, footer + i * 24 + 8, UInt64.self)
            guard fits(offset, length, footer) else { continue }
            storeLE(&b, xxh3(b, Int(offset)..<Int(offset + length), seed: sectionSeed), at: footer + i * 24 + 16)
        }
        storeLE(&b, xxh3(b, footer..<(footer + footerBytes - 8), seed: footerSeed), at: footer + footerBytes - 8)
    }

    /// Timeline checkpoint blocks, while they fit.
    static func timeline(_ b: inout [UInt8]) {
        var at = 0
        while at + 16 <= b.count {
            let length = Int(loadLE(b, at, UInt32.self))
            let end = at + 8 + length
            guard length <= TimelineFormat.blockPayloadBytesMax, end + 8 <= b.count else { return }
            storeLE(&b, xxh3(b, at..<end, seed: TimelineFormat.checksumSeed), at: end)
            at = end + 8
        }
    }

    /// A file whose last 8 bytes are the checksum of the rest.
    static func trailing(_ b: inout [UInt8], seed: UInt64) {
        guard b.count >= 8 else { return }
        storeLE(&b, xxh3(b, 0..<(b.count - 8), seed: seed), at: b.count - 8)
    }
}

/// Keeps viewed bytes' owner alive (the bytes belong to the caller here).
final class Holder {}
