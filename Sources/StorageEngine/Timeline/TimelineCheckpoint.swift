import Synchronization

/// What `TimelineStore.open` found.
public enum TimelineCheckpointStatus: Sendable, Equatable {
    /// The store is the checkpoint: replay the log after `appliedLSN`.
    case loaded(appliedLSN: UInt64, bytes: Int)
    /// No checkpoint file. The store is empty; see `open(missingMeansEmpty:)`.
    case missing
    /// The checkpoint is corrupt or unreadable: the store is empty, rebuilds each ring from the
    /// sources when it is read, and has applied nothing (replay the log from the start, or call
    /// `resetFromSources(appliedLSN:)` with the position the sources include).
    case unusable(TimelineError)
}

extension TimelineStore {
    /// Opens the store from the checkpoint in `directory`, if there is a usable one.
    ///
    /// - Parameter missingMeansEmpty: with no checkpoint file, whether the database is new (no
    ///   event was ever applied: a push may create a ring from nothing). When false, a missing
    ///   checkpoint is handled like a corrupt one: rings are rebuilt from the sources on demand.
    /// - Parameter knownUsers: how many users exist (numbers `0..<knownUsers`): a checkpoint
    ///   naming any other user number is corrupt (`TimelineError.userOutOfRange`). The user
    ///   table is dense, 4 bytes per user number up to the largest, so a checksum-valid file
    ///   naming a number near 2^32 would otherwise cost 16 GiB at open. nil (the caller does not
    ///   know): numbers below `sizeRelativeUserLimit(fileBytes:)`.
    public static func open(directory: String, fileSystem: FileSystem, options: TimelineOptions = TimelineOptions(),
                            followers: Followers, tweets: Tweets,
                            missingMeansEmpty: Bool = false, knownUsers: Int? = nil) -> (TimelineStore, TimelineCheckpointStatus) {
        let store = TimelineStore(options: options, followers: followers, tweets: tweets)
        let path = directory + "/" + TimelineFormat.fileName
        guard fileSystem.exists(path) else {
            if !missingMeansEmpty { store.state.pointee.lazyRebuild = true }
            return (store, .missing)
        }
        do throws(TimelineError) {
            let file: File
            do { file = try fileSystem.open(path, .readOnlyAccess) } catch { throw .io(error) }
            defer { file.close() }
            var reader: TimelineBlockReader
            do { reader = try TimelineBlockReader(file: file) } catch { throw .io(error) }
            let limit = knownUsers.map { UInt64(max(0, $0)) } ?? sizeRelativeUserLimit(fileBytes: reader.size)
            try store.state.pointee.load(&reader, userLimit: min(limit, UInt64(TimelineState<Followers, Tweets>.dropped)))
            store.checkpointBytesWritten.store(Int(reader.size), ordering: .relaxed)
            return (store, .loaded(appliedLSN: store.state.pointee.appliedLSN, bytes: Int(reader.size)))
        } catch {
            store.state.pointee.reset(appliedLSN: 0, lazyRebuild: true)
            return (store, .unusable(error))
        }
    }

    /// The user numbers a checkpoint of `fileBytes` bytes may name when the number of users is
    /// not known: 64 per byte of the file, and at least 65,536, so the user table (4 bytes per
    /// number) costs at most 256 times the file plus 256 KiB. A real checkpoint names users that
    /// have a ring, were dropped or are celebrities, each a record of at least one byte, but
    /// numbers may be sparse; callers that know the user count pass it instead (the Social
    /// layer does), which never rejects a real file.
    public static func sizeRelativeUserLimit(fileBytes: UInt64) -> UInt64 {
        max(65_536, fileBytes.multipliedReportingOverflow(by: 64).overflow ? UInt64.max : fileBytes * 64)
    }

    /// Writes a checkpoint of the whole store into `directory` and returns its size in bytes.
    ///
    /// Atomic: written to `TIMELINE.tmp`, fdatasynced, renamed over `TIMELINE`, and the directory
    /// fsynced; a crash at any point leaves the previous checkpoint or the new one, whole. Reads
    /// go on meanwhile; events wait until it is written.
    @discardableResult
    public func checkpoint(directory: String, fileSystem: FileSystem) throws(TimelineError) -> Int {
        let bytes = try lock.withReadLock { () throws(TimelineError) -> Int in
            try state.pointee.writeCheckpoint(directory: directory, fileSystem: fileSystem)
        }
        checkpointBytesWritten.store(bytes, ordering: .relaxed)
        return bytes
    }
}

extension TimelineState {
    func writeCheckpoint(directory: String, fileSystem: FileSystem) throws(TimelineError) -> Int {
        let path = directory + "/" + TimelineFormat.fileName
        let temporary = path + ".tmp"
        do throws(IOError) {
            let file = try fileSystem.open(temporary, FileSystem.OpenOptions(create: true, truncate: true))
            do throws(IOError) {
                let size = try writeBlocks(to: file)
                try file.dataSync()
                file.close()
                try fileSystem.rename(temporary, to: path)
                try fileSystem.syncDirectory(directory)
                return size
            } catch {
                file.close()
                throw error
            }
        } catch {
            throw .io(error)
        }
    }

    private func writeBlocks(to file: File) throws(IOError) -> Int {
        var writer = TimelineBlockWriter(file: file)
        try writer.begin(.header)
        writer.payload.append(contentsOf: TimelineFormat.magic)
        writer.payload.appendLE(TimelineFormat.formatVersion)
        writer.payload.appendLE(UInt32(options.capacity))
        writer.payload.appendLE(appliedLSN)
        writer.payload.appendLE(lazyRebuild ? TimelineFormat.flagLazyRebuild : 0)
        try writer.writeBlock()

        var ringCount: UInt64 = 0
        var entryCount: UInt64 = 0
        var referencedRetweets = Set<UInt64>()
        try writer.begin(.rings)
        for number in rings.indices where tableValue(owners[number].user) == UInt32(number + 1) {
            let user = owners[number].user
            let ring = rings.ring(number, layout: layout)
            writer.varint(UInt64(user))
            writer.varint(UInt64(ring.count))
            writer.varint(ring.floor)
            var previous = ring.floor
            for i in 0..<ring.count {
                let entry = ring[i]
                // Checked before it goes to disk: the ring is sorted and above its floor.
                precondition(entry.id > previous, "ring of user \(user) out of order at \(i)")
                precondition(TimelineFlags.all.isSuperset(of: entry.flags), "unknown flags in a ring entry")
                writer.varint(entry.id - previous)
                writer.varint(UInt64(entry.user) << 3 | UInt64(entry.flags.rawValue))
                if entry.flags.contains(.retweet) { referencedRetweets.insert(entry.id) }
                previous = entry.id
            }
            ringCount += 1
            entryCount += UInt64(ring.count)
            try writer.recordDone()
        }
        var retweetCount: UInt64 = 0
        try writer.begin(.retweets)
        for (id, original) in retweets where referencedRetweets.contains(id) {
            writer.varint(id)
            writer.varint(original.tweetId)
            writer.varint(UInt64(original.tweetAuthor))
            retweetCount += 1
            try writer.recordDone()
        }
        try writer.begin(.tombstones)
        for id in tombstones {
            writer.varint(id)
            try writer.recordDone()
        }
        try writer.begin(.celebrities)
        for user in celebrities {
            writer.varint(UInt64(user))
            try writer.recordDone()
        }
        var droppedCount: UInt64 = 0
        try writer.begin(.droppedUsers)
        for user in userTable.indices where userTable[user] == Self.dropped {
            writer.varint(UInt64(user))
            droppedCount += 1
            try writer.recordDone()
        }
        try writer.begin(.trailer)
        for value in [ringCount, entryCount, retweetCount, UInt64(tombstones.count), UInt64(celebrities.count), droppedCount] {
            writer.payload.appendLE(value)
        }
        writer.payload.appendLE(UInt64(writer.blocks))
        try writer.writeBlock()
        return Int(writer.offset)
    }

    /// Loads a checkpoint into this (empty) state, checking every value before using it. Every
    /// user number it names (ring owners, entry users, retweet authors, celebrities, dropped
    /// users) must be below `userLimit`.
    mutating func load(_ reader: inout TimelineBlockReader, userLimit: UInt64) throws(TimelineError) {
        let path = reader.file.path
        func corrupt(_ why: String) -> TimelineError { .corrupt("\(path): \(why)") }
        func checkUser(_ user: UInt64) throws(TimelineError) {
            if user >= userLimit { throw .userOutOfRange(file: path, user: user, limit: userLimit) }
        }

        guard try reader.next() == .header else { throw corrupt("the first block is not the header") }
        guard try reader.bytes(8) == TimelineFormat.magic else { throw corrupt("bad magic") }
        let version = try reader.fixed(UInt32.self)
        guard version == TimelineFormat.formatVersion else { throw corrupt("unknown format version \(version)") }
        _ = try reader.fixed(UInt32.self) // the capacity it was written with; rings are trimmed to ours
        let applied = try reader.fixed(UInt64.self)
        let flags = try reader.fixed(UInt32.self)
        guard flags & ~TimelineFormat.flagLazyRebuild == 0 else { throw corrupt("unknown header flags \(flags)") }
        guard !reader.payloadRemaining else { throw corrupt("trailing bytes in the header") }
        appliedLSN = applied
        lazyRebuild = flags & TimelineFormat.flagLazyRebuild != 0

        var counts = [UInt64](repeating: 0, count: 6) // rings, entries, retweets, tombstones, celebrities, dropped
        var blocks: UInt64 = 1
        while true {
            guard !reader.atEnd else { throw corrupt("no trailer (the file is truncated)") }
            let kind = try reader.next()
            if kind == .trailer { break }
            blocks += 1
            while reader.payloadRemaining {
                switch kind {
                case .header, .trailer:
                    throw corrupt("a second header block")
                case .rings:
                    try loadRing(&reader, counts: &counts, corrupt: corrupt, checkUser: checkUser)
                case .retweets:
                    let id = try reader.varint()
                    let original = try reader.varint()
                    let author = try reader.varint()
                    guard original < id, author <= UInt64(UInt32.max) else { throw corrupt("bad retweet row \(id)") }
                    try checkUser(author)
                    retweets[id] = RetweetOriginal(tweetId: original, tweetAuthor: UInt32(author))
                    counts[2] += 1
                case .tombstones:
                    tombstones.insert(try reader.varint())
                    counts[3] += 1
                case .celebrities:
                    let user = try reader.varint()
                    guard user < UInt64(Self.dropped) else { throw corrupt("bad celebrity \(user)") }
                    try checkUser(user)
                    celebrities.insert(UInt32(user))
                    counts[4] += 1
                case .droppedUsers:
                    let user = try reader.varint()
                    try checkUser(user)
                    guard user < UInt64(Self.dropped), tableValue(UInt32(user)) == 0 else { throw corrupt("bad dropped user \(user)") }
                    markDropped(UInt32(user))
                    counts[5] += 1
                }
            }
        }
        for i in 0..<6 {
            let written = try reader.fixed(UInt64.self)
            guard written == counts[i] else { throw corrupt("the trailer counts \(written) of kind \(i), the blocks hold \(counts[i])") }
        }
        guard try reader.fixed(UInt64.self) == blocks else { throw corrupt("blocks missing before the trailer") }
        guard !reader.payloadRemaining, reader.atEnd else { throw corrupt("bytes after the trailer") }
        for number in rings.indices {
            let ring = rings.ring(number, layout: layout)
            for i in 0..<ring.count where ring[i].flags.contains(.retweet) && retweets[ring[i].id] == nil {
                throw corrupt("retweet \(ring[i].id) in the ring of \(owners[number].user) has no original")
            }
        }
        bumpCelebrityEpoch()
    }

    private mutating func loadRing(_ reader: inout TimelineBlockReader, counts: inout [UInt64],
                                   corrupt: (String) -> TimelineError,
                                   checkUser: (UInt64) throws(TimelineError) -> Void) throws(TimelineError) {
        let user = try reader.varint()
        let count = try reader.varint()
        var floor = try reader.varint()
        try checkUser(user)
        guard user < UInt64(Self.dropped), tableValue(UInt32(user)) == 0 else { throw corrupt("bad or repeated ring user \(user)") }
        guard count <= UInt64(TimelineOptions.capacityMax) else { throw corrupt("ring of \(user) claims \(count) entries") }
        scratchEntries.removeAll(keepingCapacity: true)
        var previous = floor
        for _ in 0..<Int(count) {
            let delta = try reader.varint()
            let word = try reader.varint()
            let (id, overflow) = previous.addingReportingOverflow(delta)
            guard delta >= 1, !overflow else { throw corrupt("ring of \(user) out of order") }
            guard word >> 3 <= UInt64(UInt32.max) else { throw corrupt("bad entry user in the ring of \(user)") }
            try checkUser(word >> 3)
            let flags = TimelineFlags(rawValue: UInt32(word & 7))
            scratchEntries.append(TimelineEntry(id: id, user: UInt32(word >> 3), flags: flags))
            previous = id
        }
        // A checkpoint written with a larger capacity: keep the newest, raise the floor.
        var start = 0
        if scratchEntries.count > options.capacity {
            start = scratchEntries.count - options.capacity
            floor = scratchEntries[start - 1].id
        }
        let number = createRing(for: UInt32(user), entries: 1)
        let entries = scratchEntries
        entries.withUnsafeBufferPointer { buffer in
            setContents(ofRing: number, UnsafeBufferPointer(rebasing: buffer[start...]), floor: floor)
        }
        counts[0] += 1
        counts[1] += count
    }
}
