#if canImport(Glibc)
import Glibc
#endif

/// Errors of the LSM tree. Every corruption names the file and what failed to verify, so an
/// operator can tell a torn write from a flipped bit; corrupt data is never returned as a value.
public enum LSMError: Error, Equatable, CustomStringConvertible {
    case io(IOError)
    case log(LogError)
    /// A checksum, magic number or structural check failed in `file`.
    case corrupt(file: String, detail: String)
    case invalidArgument(String)
    /// A background flush or compaction failed; the tree accepts no more writes until reopened.
    case failed(String)
    case closed

    public var description: String {
        switch self {
        case .io(let e): "LSM I/O error: \(e)"
        case .log(let e): "LSM write-ahead log: \(e)"
        case .corrupt(let file, let detail): "LSM corrupt: \(file): \(detail)"
        case .invalidArgument(let m): "invalid LSM argument: \(m)"
        case .failed(let m): "LSM failed: \(m)"
        case .closed: "LSM tree is closed"
        }
    }
}

/// Tuning of the tree. The defaults suit tweets (about 200-byte values) on one node.
public struct LSMOptions: Sendable {
    /// Bytes of keys and values a memtable takes before it is frozen and flushed.
    public var memtableBytes: Int = 32 << 20
    /// Target uncompressed size of a data block.
    public var blockBytes: Int = 4096
    /// How the data blocks of new tables (flushes and compactions) are stored: each compressed
    /// on its own with zstd at level 1 (the default; a block is kept compressed only when that
    /// saves at least 1/8 of it), or `.none` to turn compression off. Tables of either kind are
    /// read whatever this says. A compressed block is read through the block cache, which holds
    /// it decompressed, even when tables are mapped (`mmapReads`).
    public var compression: LSMCompression = .default
    /// Data blocks whose last key begins with one of these bytes are stored as built even with
    /// compression on: key spaces whose point reads are hot, where a block cache miss would pay
    /// a decompression of the whole block (the Social layer names its tweet records: pages of
    /// 20 tweets read 2x slower from zstd blocks once the tweets outgrew the block cache).
    public var uncompressedKeyPrefixes: [UInt8] = []
    /// Keys between restart points inside a block.
    public var restartInterval: Int = 16
    /// Bloom filter bits per key (10 gives about 1% false positives).
    public var bloomBitsPerKey: Int = 10
    /// Table files are cut at about this size by compaction.
    public var tableBytes: Int = 64 << 20
    /// Compaction of level 0 starts when it holds this many tables.
    public var level0CompactionTrigger: Int = 4
    /// Level 0 writes wait (back-pressure) when it holds this many tables.
    public var level0StopWrites: Int = 12
    /// Level 1's byte budget; each deeper level gets `levelSizeMultiplier` times more.
    public var level1Bytes: Int = 256 << 20
    public var levelSizeMultiplier: Int = 10
    public var levels: Int = 7
    /// The block cache's byte budget (shared by all tables; used when `mmapReads` is off).
    public var blockCacheBytes: Int = 64 << 20
    /// Read tables through a read-only mapping: a block read is a checksum check over the page
    /// cache, with no system call, copy or cache insertion (tables never change once written).
    /// Off, blocks are read with the file layer (io_uring or pread) into the block cache.
    public var mmapReads: Bool = true
    /// Byte budget of the record cache (recently read keys and values, RocksDB's row cache);
    /// 0 turns it off. A hit skips the memtables, bloom filters and block searches.
    public var recordCacheBytes: Int = 0
    /// Run flushes and compactions on a background thread. Off, they run inline in `write`.
    public var backgroundWork: Bool = true
    /// Log record type the tree uses for its write batches.
    public var logRecordType: UInt16 = 0x0020
    /// The table format version new tables are written in: the current one, or (tests only)
    /// 1, which stores every block uncompressed with the old handles, as builds before version 2
    /// wrote them, so the tests can check that such tables are still read and are rewritten.
    var tableFormatVersion: UInt32 = TableFormat.version

    public init() {}
}

/// What a table entry is: a value, or a tombstone that hides older values of the key.
public enum ValueKind: UInt8, Sendable {
    case deletion = 0
    case value = 1
}

/// Internal keys: the user key followed by an 8-byte trailer `(sequence << 8) | kind`, stored
/// little-endian. Ordered by user key ascending, then by sequence descending, so the newest
/// version of a key comes first.
@usableFromInline
enum InternalKey {
    /// The longest internal key: the longest user key and its 8-byte trailer. (Point lookups
    /// once read keys back into 1,024 bytes, and reported a table holding a key of more than
    /// 1,016 bytes as corrupt.)
    static let maxBytes = WriteBatch.maxKeyBytes + 8

    @usableFromInline static let trailerBytes = 8

    @inlinable @inline(__always)
    static func trailer(sequence: UInt64, kind: ValueKind) -> UInt64 { (sequence << 8) | UInt64(kind.rawValue) }

    /// Compares two user keys bytewise (memcmp order, shorter prefix first): -1, 0 or 1.
    /// Eight bytes at a time as big-endian integers, inline: keys are short (9 to 17 bytes for
    /// tweets and author entries), and a call to memcmp cost more than the comparison (point
    /// reads and scans compare a dozen keys each).
    @inlinable @inline(__always)
    static func compareUser(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = min(a.count, b.count)
        var i = 0
        if n > 0 {
            let pa = a.baseAddress.unsafelyUnwrapped
            let pb = b.baseAddress.unsafelyUnwrapped
            while i + 8 <= n {
                let x = UInt64(bigEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let y = UInt64(bigEndian: pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if x != y { return x < y ? -1 : 1 }
                i += 8
            }
            while i < n {
                let x = pa.load(fromByteOffset: i, as: UInt8.self)
                let y = pb.load(fromByteOffset: i, as: UInt8.self)
                if x != y { return x < y ? -1 : 1 }
                i += 1
            }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    /// Compares two internal keys (each user key + trailer).
    @inlinable @inline(__always)
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let ua = UnsafeRawBufferPointer(rebasing: a[..<(a.count - 8)])
        let ub = UnsafeRawBufferPointer(rebasing: b[..<(b.count - 8)])
        let c = compareUser(ua, ub)
        if c != 0 { return c }
        let ta = a.loadLE(UInt64.self, at: a.count - 8)
        let tb = b.loadLE(UInt64.self, at: b.count - 8)
        return ta == tb ? 0 : (ta > tb ? -1 : 1)
    }
}

/// Copies raw bytes into a fresh array (for the convenience APIs that return values). An
/// empty value is the literal: the initializer with capacity 0 stores its count into the
/// runtime's shared empty-array storage, a write ThreadSanitizer reports against every reader
/// of any empty array (the whole-suite TSan run did: an empty value read under the writer lock
/// against a follower batch read by the apply pipeline).
///
/// `Array(bytes)` (a collection copy, specialized here) rather than
/// `init(unsafeUninitializedCapacity:)`, which allocates through an unspecialized runtime entry
/// point that looks the storage class's metadata up on every call (callgrind: ~650
/// instructions an array, a tenth of a multi-get's key).
@inlinable
func makeArray(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
    guard !bytes.isEmpty else { return [] }
    return [UInt8](bytes)
}
