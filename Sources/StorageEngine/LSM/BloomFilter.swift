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
        guard filter.count >= 2 else { return }
        let bytes = filter.count - 1
        let probes = Int(filter[bytes])
        let nbits = UInt64(bytes * 8)
        var h1 = h
        let delta = (h >> 33) | (h << 31)
        for _ in 0..<probes {
            socialdb_prefetch(filter.baseAddress! + Int((h1 % nbits) >> 3))
            h1 &+= delta
        }
    }

    /// Whether the key may be in the set (false means certainly not).
    @inline(__always)
    static func mayContain(_ filter: UnsafeRawBufferPointer, hash h: UInt64) -> Bool {
        guard filter.count >= 2 else { return true }
        let bytes = filter.count - 1
        let probes = Int(filter[bytes])
        let nbits = UInt64(bytes * 8)
        var h1 = h
        let delta = (h >> 33) | (h << 31)
        for _ in 0..<probes {
            let bit = h1 % nbits
            if filter[Int(bit >> 3)] & (1 << UInt8(bit & 7)) == 0 { return false }
            h1 &+= delta
        }
        return true
    }
}
