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
}
