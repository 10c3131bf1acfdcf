import CZstd
#if canImport(Glibc)
import Glibc
#endif

/// How the data blocks of new tables are stored (`LSMOptions.compression`).
public enum LSMCompression: Sendable, Equatable {
    /// Blocks stored as built (prefix-compressed keys only).
    case none
    /// Each data block compressed on its own with Zstandard at this level (1 is the fastest;
    /// the stored block is kept only when it saves at least 1/8 of the block).
    case zstd(level: Int32)

    /// The default: zstd at level 1.
    public static let `default` = LSMCompression.zstd(level: 1)
}

/// The compression type of a stored block, as table format version 2 records it in the block's
/// index handle (Docs/FORMATS.md, "LSM table"). Version-1 tables have only `none`.
enum BlockCompressionType: UInt8 {
    case none = 0
    /// varint uncompressed size, then one zstd frame holding the block.
    case zstd = 1
}

/// Block compression and decompression with libzstd. A compressed block is kept only when it
/// is at most 7/8 of the block (RocksDB's default threshold): below that the read-side cost of
/// decompressing buys too little disk.
enum BlockCodec {
    /// The largest uncompressed block a reader accepts (a block holds at most one value of up to
    /// 1 MiB plus its key, or many small entries up to the block target; a header claiming more
    /// is corruption, and is refused before anything is allocated).
    static let maxRawBytes = 64 << 20
    /// A table builder that failed to compress this many blocks in a row tries only one block
    /// in `retryEvery` until one compresses again.
    static let giveUpAfter = 8
    static let retryEvery = 16

    /// Compresses `block` into `out` (replacing its contents) with `compressor`; false when the
    /// result would not save at least 1/8 of the block (then `out` is meaningless).
    static func compress(_ block: UnsafeRawBufferPointer, level: Int32, compressor: ZstdCompressor,
                         into out: inout [UInt8]) -> Bool {
        guard block.count >= 64 else { return false }
        let limit = block.count - block.count / 8
        out.removeAll(keepingCapacity: true)
        Varint.append(UInt64(block.count), to: &out)
        let header = out.count
        let bound = ZSTD_compressBound(block.count)
        out.append(contentsOf: repeatElement(0, count: bound))
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_compressCCtx(compressor.context, dst.baseAddress! + header, bound, block.baseAddress, block.count, level)
        }
        guard ZSTD_isError(n) == 0, header + n <= limit else { return false }
        out.removeLast(bound - n)
        return true
    }

    /// Decompresses stored block bytes of compression type `type` into a fresh allocation (owned
    /// by the caller) holding exactly the uncompressed block. A stored size that does not match
    /// what the frame decompresses to, an unknown type or a frame that does not decode is
    /// corruption, reported naming the file and the block's offset.
    static func decompress(_ stored: UnsafeRawBufferPointer, type: UInt8, path: String,
                           offset: UInt64) throws(LSMError) -> UnsafeMutableRawBufferPointer {
        guard type == BlockCompressionType.zstd.rawValue else {
            throw .corrupt(file: path, detail: "block at offset \(offset) has unknown compression type \(type)")
        }
        var i = 0
        guard let raw = readBlockVarint(stored, &i, stored.count), raw > 0, raw <= maxRawBytes else {
            throw .corrupt(file: path, detail: "block at offset \(offset) has a bad uncompressed size")
        }
        let frame = UnsafeRawBufferPointer(rebasing: stored[i...])
        // The frame's own header states its size too (ZSTD_compressCCtx writes it): a mismatch
        // with the block's header is reported before anything is decompressed.
        let content = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        if content >= UInt64.max - 1 {
            throw .corrupt(file: path, detail: "block at offset \(offset) does not decompress (no frame size)")
        }
        guard content == UInt64(raw) else {
            throw .corrupt(file: path, detail: "block at offset \(offset) decompresses to \(content) bytes, its header says \(raw)")
        }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: raw, alignment: 8)
        let n = ZSTD_decompressDCtx(ZstdDecompressor.threadContext(), out.baseAddress, raw, frame.baseAddress, frame.count)
        if ZSTD_isError(n) != 0 {
            out.deallocate()
            let reason = String(cString: ZSTD_getErrorName(n))
            throw .corrupt(file: path, detail: "block at offset \(offset) does not decompress (\(reason))")
        }
        guard n == raw else {
            out.deallocate()
            throw .corrupt(file: path, detail: "block at offset \(offset) decompresses to \(n) bytes, its header says \(raw)")
        }
        return out
    }
}

/// A zstd compression context, reused for every block of a table builder.
final class ZstdCompressor {
    let context: OpaquePointer

    init() {
        guard let c = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx: out of memory") }
        context = c
    }

    deinit { ZSTD_freeCCtx(context) }
}

/// Each thread's zstd decompression context, made on its first decompression and freed when
/// the thread exits (a one-shot `ZSTD_decompress` allocates and initializes a context of about
/// 100 KiB per call).
enum ZstdDecompressor {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = pthread_key_create(&k) { p in
            if let p { ZSTD_freeDCtx(OpaquePointer(p)) }
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return k
    }()

    static func threadContext() -> OpaquePointer {
        if let p = pthread_getspecific(key) { return OpaquePointer(p) }
        guard let c = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx: out of memory") }
        pthread_setspecific(key, UnsafeRawPointer(c))
        return c
    }
}
