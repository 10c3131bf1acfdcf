import CLibURing

/// A bloom filter over the user keys of one table, hashed with xxh3 and probed by double hashing.
/// Format: the bit array (a whole number of bytes), then one byte: the number of probes.
enum BloomFilter {
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { Checksum.xxh3(key, seed: 0x426C_6F6F_6D) }

    static func build(hashes: [UInt64], bitsPerKey: Int) -> [UInt8] {
        let probes = max(1, min(30, Int(Double(bitsPerKey) * 0.69)))
        let bits = max(64, hashes.count * bitsPerKey)
        let bytes = (bits + 7) / 8
        var out = [UInt8](repeating: 0, count: bytes + 1)
        let nbits = UInt64(bytes * 8)
        out.withUnsafeMutableBufferPointer { p in
            for h in hashes {
                var h1 = h
                let delta = (h >> 33) | (h << 31)
                for _ in 0..<probes {
                    let bit = h1 % nbits
                    p[Int(bit >> 3)] |= 1 << UInt8(bit & 7)
                    h1 &+= delta
                }
            }
            p[bytes] = UInt8(probes)
        }
        return out
    }

    /// Starts loading the lines `mayContain` will read for `h` (a batch's probes overlap).
    @inline(__always)
    static func prefetch(_ filter: UnsafeRawBufferPointer, hash h: UInt64) {
        _ = allProbes(filter, hash: h) { byte, _ in
            socialdb_prefetch(filter.baseAddress! + byte)
            return true
        }
    }

    /// Calls `body` with the byte and bit of each of `h`'s probes (double hashing) until it
    /// returns false; returns whether every call returned true (true for a filter too short
    /// to have probes).
    @inline(__always)
    private static func allProbes(_ filter: UnsafeRawBufferPointer, hash h: UInt64, _ body: (Int, UInt8) -> Bool) -> Bool {
        guard filter.count >= 2 else { return true }
        let bytes = filter.count - 1
        let probes = Int(filter[bytes])
        let nbits = UInt64(bytes * 8)
        var h1 = h
        let delta = (h >> 33) | (h << 31)
        for _ in 0..<probes {
            let bit = h1 % nbits
            if !body(Int(bit >> 3), UInt8(bit & 7)) { return false }
            h1 &+= delta
        }
        return true
    }

    /// Whether the key may be in the set (false means certainly not).
    @inline(__always)
    static func mayContain(_ filter: UnsafeRawBufferPointer, hash h: UInt64) -> Bool {
        allProbes(filter, hash: h) { byte, bit in filter[byte] & (1 << bit) != 0 }
    }
}
