/// A group of puts and deletes applied atomically: one log record, one sequence number.
///
/// The encoded form is the log record's payload: u32 entry count, then per entry a kind byte
/// (1 put, 0 delete), varint key length, key bytes, and for a put varint value length and value
/// bytes. Keys are 1 to 1,024 bytes; values up to 1 MiB.
public struct WriteBatch: Sendable {
    public static let maxKeyBytes = 1024
    public static let maxValueBytes = 1 << 20
    /// Entries of a batch get sequence numbers `(lsn << 12) | index`, so a later entry for the
    /// same key wins, and a replayed batch gets the same numbers again.
    public static let maxEntries = 4096
    static let indexBits: UInt64 = 12

    @inline(__always)
    static func sequence(lsn: UInt64, index: Int) -> UInt64 { lsn << indexBits | UInt64(index) }

    public private(set) var encoded: [UInt8]
    public private(set) var count = 0
    /// Bytes of keys and values (what write amplification divides by).
    public private(set) var payloadBytes = 0

    public init(reservingCapacity bytes: Int = 256) {
        encoded = []
        encoded.reserveCapacity(bytes)
        encoded.appendLE(UInt32(0))
    }

    public var isEmpty: Bool { count == 0 }

    public mutating func removeAll() {
        encoded.removeAll(keepingCapacity: true)
        encoded.appendLE(UInt32(0))
        count = 0
        payloadBytes = 0
    }

    private mutating func bumpCount() {
        precondition(count < Self.maxEntries, "a write batch holds at most 4,096 entries")
        count += 1
        encoded.withUnsafeMutableBytes { $0.storeLE(UInt32(count), at: 0) }
    }

    public mutating func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        precondition(key.count >= 1 && key.count <= Self.maxKeyBytes, "key must be 1 to 1,024 bytes")
        precondition(value.count <= Self.maxValueBytes, "value over 1 MiB")
        encoded.append(ValueKind.value.rawValue)
        Varint.append(UInt64(key.count), to: &encoded)
        encoded.append(contentsOf: key)
        Varint.append(UInt64(value.count), to: &encoded)
        encoded.append(contentsOf: value)
        payloadBytes += key.count + value.count
        bumpCount()
    }

    public mutating func delete(_ key: UnsafeRawBufferPointer) {
        precondition(key.count >= 1 && key.count <= Self.maxKeyBytes, "key must be 1 to 1,024 bytes")
        encoded.append(ValueKind.deletion.rawValue)
        Varint.append(UInt64(key.count), to: &encoded)
        encoded.append(contentsOf: key)
        payloadBytes += key.count
        bumpCount()
    }

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBytes { k in value.withUnsafeBytes { v in put(k, v) } }
    }

    public mutating func delete(_ key: [UInt8]) {
        key.withUnsafeBytes { delete($0) }
    }

    /// Calls `body` with each entry (index, kind, key, value; the value is empty for a delete) of
    /// a batch as a log record of type `LSMOptions.logRecordType` carries it, in batch order.
    /// For log consumers that follow the tree's writes; throws `.corrupt` on a malformed payload.
    public static func forEachEntry(inLogPayload payload: UnsafeRawBufferPointer,
                                    _ body: (Int, ValueKind, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(LSMError) {
        try forEach(payload, body)
    }

    /// Calls `body` for each entry of an encoded batch; throws on a malformed one.
    static func forEach(_ payload: UnsafeRawBufferPointer,
                        _ body: (Int, ValueKind, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(LSMError) {
        guard payload.count >= 4 else { throw .corrupt(file: "log", detail: "write batch shorter than its header") }
        let n = Int(payload.loadLE(UInt32.self, at: 0))
        guard n <= maxEntries else { throw .corrupt(file: "log", detail: "write batch of \(n) entries") }
        var i = 4
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for index in 0..<n {
            guard i < payload.count, let kind = ValueKind(rawValue: payload[i]) else {
                throw .corrupt(file: "log", detail: "bad write batch entry kind")
            }
            i += 1
            guard let kl = readBlockVarint(payload, &i, payload.count), kl >= 1, i + kl <= payload.count else {
                throw .corrupt(file: "log", detail: "bad write batch key")
            }
            let key = UnsafeRawBufferPointer(rebasing: payload[i..<(i + kl)])
            i += kl
            if kind == .value {
                guard let vl = readBlockVarint(payload, &i, payload.count), i + vl <= payload.count else {
                    throw .corrupt(file: "log", detail: "bad write batch value")
                }
                body(index, kind, key, UnsafeRawBufferPointer(rebasing: payload[i..<(i + vl)]))
                i += vl
            } else {
                body(index, kind, key, empty)
            }
        }
        guard i == payload.count else { throw .corrupt(file: "log", detail: "trailing bytes in a write batch") }
    }
}
