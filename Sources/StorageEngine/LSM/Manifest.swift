/// The manifest: the set of live tables by level, the next file number, the log position the
/// tables cover and the write counters, in one checksummed file replaced atomically (written to
/// `MANIFEST.tmp`, fdatasynced, renamed over `MANIFEST`, directory fsynced). A crash at any point
/// leaves either the old or the new manifest; tables that neither names are deleted at open.
///
/// Format (little-endian): magic u64 "SDBMANI1", version u32, level count u32, next file number
/// u64, covered LSN u64, user bytes u64, flush bytes u64, compaction bytes u64, table count u32,
/// then per table: level u8, number u64, file bytes u64, entries u64, smallest key length u32 and
/// bytes, largest key length u32 and bytes; then xxh3 u64 (seed `manifest`) of everything before.
struct ManifestState: Sendable, Equatable {
    var levels: [[TableMeta]]
    var nextFileNumber: UInt64 = 1
    /// Every log record at or below this LSN is in the tables.
    var coveredLSN: UInt64 = 0
    /// Bytes of keys and values written by users, by flushes and by compactions.
    var userBytes: UInt64 = 0
    var flushBytes: UInt64 = 0
    var compactionBytes: UInt64 = 0

    init(levels: Int) { self.levels = Array(repeating: [], count: levels) }
}

enum Manifest {
    static let magic: UInt64 = 0x3149_4E41_4D42_4453 // "SDBMANI1"
    static let version: UInt32 = 1
    static let fileName = "MANIFEST"

    static func encode(_ s: ManifestState) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(magic)
        out.appendLE(version)
        out.appendLE(UInt32(s.levels.count))
        out.appendLE(s.nextFileNumber)
        out.appendLE(s.coveredLSN)
        out.appendLE(s.userBytes)
        out.appendLE(s.flushBytes)
        out.appendLE(s.compactionBytes)
        out.appendLE(UInt32(s.levels.reduce(0) { $0 + $1.count }))
        for (level, tables) in s.levels.enumerated() {
            for t in tables {
                out.append(UInt8(level))
                out.appendLE(t.number)
                out.appendLE(t.fileBytes)
                out.appendLE(t.entries)
                out.appendLE(UInt32(t.smallest.count))
                out.append(contentsOf: t.smallest)
                out.appendLE(UInt32(t.largest.count))
                out.append(contentsOf: t.largest)
            }
        }
        out.appendLE(out.withUnsafeBytes { Checksum.xxh3($0, seed: .manifest) })
        return out
    }

    static func decode(_ bytes: [UInt8], path: String) throws(LSMError) -> ManifestState {
        let r: Result<ManifestState, LSMError> = bytes.withUnsafeBytes { raw in
            do throws(LSMError) { return .success(try decode(raw, path: path)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    static func decode(_ raw: UnsafeRawBufferPointer, path: String) throws(LSMError) -> ManifestState {
        do {
            guard raw.count >= 60 else { throw .corrupt(file: path, detail: "manifest of \(raw.count) bytes is too short") }
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 8)])
            guard Checksum.xxh3(body, seed: .manifest) == raw.loadLE(UInt64.self, at: raw.count - 8) else {
                throw .corrupt(file: path, detail: "manifest checksum mismatch")
            }
            guard raw.loadLE(UInt64.self, at: 0) == magic else { throw .corrupt(file: path, detail: "bad manifest magic") }
            let v = raw.loadLE(UInt32.self, at: 8)
            guard v == version else { throw .corrupt(file: path, detail: "unknown manifest version \(v)") }
            let levelCount = Int(raw.loadLE(UInt32.self, at: 12))
            guard levelCount >= 2 && levelCount <= 16 else { throw .corrupt(file: path, detail: "bad level count \(levelCount)") }
            var s = ManifestState(levels: levelCount)
            s.nextFileNumber = raw.loadLE(UInt64.self, at: 16)
            s.coveredLSN = raw.loadLE(UInt64.self, at: 24)
            s.userBytes = raw.loadLE(UInt64.self, at: 32)
            s.flushBytes = raw.loadLE(UInt64.self, at: 40)
            s.compactionBytes = raw.loadLE(UInt64.self, at: 48)
            let count = Int(raw.loadLE(UInt32.self, at: 56))
            var i = 60
            let end = raw.count - 8
            for _ in 0..<count {
                guard i + 29 <= end else { throw .corrupt(file: path, detail: "manifest table list truncated") }
                let level = Int(raw[i])
                guard level < levelCount else { throw .corrupt(file: path, detail: "table at level \(level)") }
                let number = raw.loadLE(UInt64.self, at: i + 1)
                let fileBytes = raw.loadLE(UInt64.self, at: i + 9)
                let entries = raw.loadLE(UInt64.self, at: i + 17)
                let sl = Int(raw.loadLE(UInt32.self, at: i + 25))
                i += 29
                guard sl >= 8, i + sl + 4 <= end else { throw .corrupt(file: path, detail: "manifest key truncated") }
                let smallest = makeArray(UnsafeRawBufferPointer(rebasing: raw[i..<(i + sl)]))
                i += sl
                let ll = Int(raw.loadLE(UInt32.self, at: i))
                i += 4
                guard ll >= 8, i + ll <= end else { throw .corrupt(file: path, detail: "manifest key truncated") }
                let largest = makeArray(UnsafeRawBufferPointer(rebasing: raw[i..<(i + ll)]))
                i += ll
                guard number < s.nextFileNumber else { throw .corrupt(file: path, detail: "table \(number) not below the next file number") }
                s.levels[level].append(TableMeta(number: number, fileBytes: fileBytes, entries: entries, smallest: smallest, largest: largest))
            }
            guard i == end else { throw .corrupt(file: path, detail: "trailing bytes in the manifest") }
            return s
        }
    }

    /// Writes `state` atomically into `directory`.
    static func write(_ state: ManifestState, directory: String, fileSystem: FileSystem) throws(LSMError) {
        let bytes = encode(state)
        let tmp = directory + "/" + fileName + ".tmp"
        do throws(IOError) {
            try fileSystem.replaceAtomically(directory + "/" + fileName, with: bytes, temporary: tmp, directory: directory)
        } catch {
            throw .io(error)
        }
    }

    /// Reads the manifest, or nil when the directory has none (a new tree).
    static func read(directory: String, fileSystem: FileSystem) throws(LSMError) -> ManifestState? {
        let path = directory + "/" + fileName
        guard fileSystem.exists(path) else { return nil }
        let bytes: [UInt8]
        do throws(IOError) {
            let file = try fileSystem.open(path, .readOnlyAccess)
            defer { file.close() }
            let size = Int(try file.size())
            var buffer = [UInt8](repeating: 0, count: size)
            let r: Result<Void, IOError> = buffer.withUnsafeMutableBytes { b in
                do throws(IOError) { try file.readExactly(into: b, at: 0); return .success(()) } catch { return .failure(error) }
            }
            try r.get()
            bytes = buffer
        } catch {
            throw .io(error)
        }
        return try decode(bytes, path: path)
    }
}
