import CXXHash

/// XXH3-64 checksums for everything the engine writes to disk.
///
/// Every durable byte is covered by one: log records, segment headers, table blocks, manifests.
/// A seed separates the uses, so a block of one kind can never pass as another by accident.
public enum Checksum {
    /// Seeds that name what a checksum covers. These values are part of the on-disk formats and
    /// must not change.
    public enum Seed: UInt64, Sendable {
        case logRecord = 0x534442_4C4F_4752
        case logSegmentHeader = 0x534442_5345_4748
        case checkpointFile = 0x534442_434B_5054
        case tableBlock = 0x534442_5442_4C4B
        case tableFooter = 0x534442_5446_4F54
        case manifest = 0x534442_4D4E_4654
        case generic = 0
    }

    @inlinable
    public static func xxh3(_ bytes: UnsafeRawBufferPointer, seed: Seed = .generic) -> UInt64 {
        xxh3(bytes, seed: seed.rawValue)
    }

    @inlinable
    public static func xxh3(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        XXH3_64bits_withSeed(bytes.baseAddress, bytes.count, seed)
    }

    public static func xxh3(_ bytes: [UInt8], seed: Seed = .generic) -> UInt64 {
        bytes.withUnsafeBytes { xxh3($0, seed: seed) }
    }
}
