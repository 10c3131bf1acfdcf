@testable import StorageEngine
import Testing

/// A timeline checkpoint whose checksums are valid but which names a user number no database
/// could have (a writer bug, or the fuzzer's checksum repair): open must report it corrupt
/// with the stable code `timeline-user-range` and rebuild, never grow the dense user table to
/// that number (4 bytes a number: 16 GiB for a number near 2^32).
@Suite struct TimelineUserBoundTests {
    struct Ring {
        var user: UInt64
        var entryUsers: [UInt64]
    }

    /// Writes a whole, checksum-valid checkpoint with the writer the store uses.
    static func writeCheckpoint(_ path: String, rings: [Ring] = [], retweetAuthors: [UInt64] = [],
                                celebrities: [UInt64] = [], dropped: [UInt64] = []) throws {
        let fs = try FileSystem(backend: .posix)
        let file = try fs.open(path, FileSystem.OpenOptions(create: true, truncate: true))
        defer { file.close() }
        var writer = TimelineBlockWriter(file: file)
        try writer.begin(.header)
        writer.payload.append(contentsOf: TimelineFormat.magic)
        writer.payload.appendLE(TimelineFormat.formatVersion)
        writer.payload.appendLE(UInt32(800))
        writer.payload.appendLE(UInt64(7))
        writer.payload.appendLE(UInt32(0))
        try writer.writeBlock()
        var entries: UInt64 = 0
        var retweetIds: [UInt64] = []
        try writer.begin(.rings)
        for (r, ring) in rings.enumerated() {
            writer.varint(ring.user)
            writer.varint(UInt64(ring.entryUsers.count))
            writer.varint(0) // floor
            for (i, user) in ring.entryUsers.enumerated() {
                // The first ring's first entries are the retweets the retweet rows describe.
                let isRetweet = r == 0 && i < retweetAuthors.count
                writer.varint(1)
                writer.varint(user << 3 | (isRetweet ? 1 : 0))
                if isRetweet { retweetIds.append(UInt64(i + 1)) }
            }
            entries += UInt64(ring.entryUsers.count)
        }
        try writer.begin(.retweets)
        for (id, author) in zip(retweetIds, retweetAuthors) {
            writer.varint(id)
            writer.varint(id - 1)
            writer.varint(author)
        }
        try writer.begin(.celebrities)
        for user in celebrities { writer.varint(user) }
        try writer.begin(.droppedUsers)
        for user in dropped { writer.varint(user) }
        try writer.begin(.trailer)
        for value in [UInt64(rings.count), entries, UInt64(retweetIds.count), 0, UInt64(celebrities.count), UInt64(dropped.count)] {
            writer.payload.appendLE(value)
        }
        writer.payload.appendLE(UInt64(writer.blocks))
        try writer.writeBlock()
    }

    static func open(_ directory: String, knownUsers: Int?) throws -> (ModelStore, TimelineCheckpointStatus) {
        ModelStore.open(directory: directory, fileSystem: try FileSystem(backend: .posix),
                        followers: ModelGraph(), tweets: ModelTweets(), knownUsers: knownUsers)
    }

    /// The store is empty, rebuilds from the sources, and allocated no user table to speak of.
    static func expectRejected(_ store: ModelStore, _ status: TimelineCheckpointStatus, user: UInt64, limit: UInt64,
                               _ comment: Comment) {
        guard case .unusable(let error) = status else {
            Issue.record("\(comment): not rejected: \(status)")
            return
        }
        #expect(error.code == "timeline-user-range", comment)
        guard case .userOutOfRange(let file, let named, let bound) = error else {
            Issue.record("\(comment): \(error)")
            return
        }
        #expect(file.hasSuffix("/TIMELINE") && named == user && bound == limit, comment)
        #expect(store.appliedLSN == 0, comment)
        #expect(store.state.pointee.userTable.count <= Int(limit), comment)
        #expect(store.statistics.rings == 0, comment)
    }

    @Test func aUserNumberPastTheKnownUsersIsCorrupt() throws {
        let directory = TemporaryDirectory("timeline-bound")
        let path = directory.path + "/TIMELINE"
        let huge: UInt64 = 4_000_000_000

        // The control: the same shape with small numbers loads.
        try Self.writeCheckpoint(path, rings: [Ring(user: 9, entryUsers: [2, 3])], retweetAuthors: [4], celebrities: [5], dropped: [6])
        let (loaded, status) = try Self.open(directory.path, knownUsers: 10)
        #expect(status == .loaded(appliedLSN: 7, bytes: readWholeFile(path).count))
        #expect(loaded.statistics.rings == 1)
        // One past the last known user is out of range (numbers are 0..<knownUsers).
        let (atLimit, atLimitStatus) = try Self.open(directory.path, knownUsers: 9)
        Self.expectRejected(atLimit, atLimitStatus, user: 9, limit: 9, "ring user at the limit")

        // Each place a user number can be named.
        let cases: [(String, () throws -> Void)] = [
            ("ring owner", { try Self.writeCheckpoint(path, rings: [Ring(user: huge, entryUsers: [1])]) }),
            ("entry user", { try Self.writeCheckpoint(path, rings: [Ring(user: 1, entryUsers: [2, huge])]) }),
            ("retweet author", { try Self.writeCheckpoint(path, rings: [Ring(user: 1, entryUsers: [2])], retweetAuthors: [huge]) }),
            ("celebrity", { try Self.writeCheckpoint(path, celebrities: [huge]) }),
            ("dropped user", { try Self.writeCheckpoint(path, dropped: [3, huge]) }),
        ]
        for (name, write) in cases {
            try write()
            let (store, status) = try Self.open(directory.path, knownUsers: 10)
            Self.expectRejected(store, status, user: huge, limit: 10, "\(name), 10 known users")
            // A caller that does not know the users: the bound relative to the file's size.
            let size = UInt64(readWholeFile(path).count)
            let limit = ModelStore.sizeRelativeUserLimit(fileBytes: size)
            #expect(limit == 65_536, "a small file may name the first 65,536 users")
            let (unbounded, unboundedStatus) = try Self.open(directory.path, knownUsers: nil)
            Self.expectRejected(unbounded, unboundedStatus, user: huge, limit: limit, "\(name), users not known")
        }
    }

    @Test func theSizeRelativeBoundGrowsWithTheFileAndNeverOverflows() {
        #expect(ModelStore.sizeRelativeUserLimit(fileBytes: 0) == 65_536)
        #expect(ModelStore.sizeRelativeUserLimit(fileBytes: 1 << 20) == 64 << 20)
        #expect(ModelStore.sizeRelativeUserLimit(fileBytes: UInt64.max / 2) == UInt64.max)
    }
}
