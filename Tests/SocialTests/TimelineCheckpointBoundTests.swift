@testable import Social
import StorageEngine
import Testing

/// A `timeline/TIMELINE` with valid checksums that names a user number the database never
/// had: open must treat it as a corrupt derived file (code `timeline-user-range`) and rebuild
/// the home timelines from the graph and the tweets, as for any other corrupt checkpoint.
@Suite struct TimelineCheckpointBoundTests {
    /// One block of the timeline checkpoint format (Docs/FORMATS.md, TIMELINE), sealed.
    static func block(_ kind: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var block: [UInt8] = []
        let length = UInt32(payload.count)
        for shift in stride(from: 0, to: 32, by: 8) { block.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        block += [kind, 0, 0, 0] + payload
        let sum = block.withUnsafeBytes { Checksum.xxh3($0, seed: 0x534442_544D_4C4E) }
        for shift in stride(from: 0, to: 64, by: 8) { block.append(UInt8(truncatingIfNeeded: sum >> UInt64(shift))) }
        return block
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var bytes: [UInt8] = []
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
        return bytes
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    /// A checkpoint at `appliedLSN` holding one ring, of `user`, with one post by user 0.
    static func checkpoint(ringOf user: UInt64, appliedLSN: UInt64) -> [UInt8] {
        var header = Array("SDBTIML\n".utf8)
        header += littleEndian(UInt32(1)) + littleEndian(UInt32(800)) + littleEndian(appliedLSN) + littleEndian(UInt32(0))
        let ring = varint(user) + varint(1) + varint(0) + varint(1) + varint(0 << 3)
        var trailer: [UInt8] = []
        for count: UInt64 in [1, 1, 0, 0, 0, 0, 2] { trailer += littleEndian(count) }
        return block(1, header) + block(2, ring) + block(7, trailer)
    }

    @Test func aRingOfAnUnknownUserIsCorruptAndTheTimelinesAreRebuilt() throws {
        let t = try TestDatabase()
        for handle in ["ann", "bob", "cat"] { try t.db.createUser(handle: handle) }
        _ = try t.db.follow("bob", "ann")
        _ = try t.db.follow("cat", "bob")
        for i in 0..<5 {
            _ = try t.db.post(handle: "ann", text: "ann \(i)")
            _ = try t.db.post(handle: "bob", text: "bob \(i)")
        }
        let expected = try ["ann", "bob", "cat"].map { try HomeTests.allPages(t.db, $0) }
        let applied = t.db.engine.log.nextSequenceNumber - 1
        try t.db.close()

        let path = t.directory.path + "/timeline/TIMELINE"
        let fs = try FileSystem(backend: .posix)
        // The control: a ring of a user the database has (number 2, cat) loads.
        try fs.replaceAtomically(path, with: Self.checkpoint(ringOf: 2, appliedLSN: applied << 12 | 0xFFF),
                                 temporary: path + ".tmp", directory: t.directory.path + "/timeline")
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
        guard case .loaded = t.db.consumers.timelineStatus else {
            Issue.record("the control checkpoint did not load: \(t.db.consumers.timelineStatus)")
            return
        }
        try t.db.closeWithoutCheckpoints()

        // User 3 is one past the last (three users: 0, 1, 2), and 3,000,000,000 would have
        // cost a 12 GB user table.
        for user: UInt64 in [3, 3_000_000_000] {
            try fs.replaceAtomically(path, with: Self.checkpoint(ringOf: user, appliedLSN: applied << 12 | 0xFFF),
                                     temporary: path + ".tmp", directory: t.directory.path + "/timeline")
            t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
            guard case .unusable(let error) = t.db.consumers.timelineStatus else {
                Issue.record("user \(user): not rejected: \(t.db.consumers.timelineStatus)")
                continue
            }
            #expect(error.code == "timeline-user-range")
            #expect(error == .userOutOfRange(file: path, user: user, limit: 3))
            #expect(try ["ann", "bob", "cat"].map { try HomeTests.allPages(t.db, $0) } == expected, "user \(user)")
            try t.db.closeWithoutCheckpoints()
        }
        t.db = try SocialDB.open(at: t.directory.path, options: testOptions())
    }
}
