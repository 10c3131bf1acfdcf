/// The consumers' checkpoints: for each named consumer of the log, the last LSN whose effects it
/// has made durable in its own files. Segments wholly at or below every consumer's checkpoint
/// are removed.
///
/// File `CHECKPOINTS` in the log directory, replaced atomically (write `CHECKPOINTS.tmp`,
/// fsync, rename, fsync the directory), little-endian:
///
///     0   8  magic "SDBCKPT\n"
///     8   4  format version (1)
///     12  4  entry count N
///     then N entries: 2 bytes name length L, L bytes UTF-8 name, 8 bytes LSN
///     then 8 bytes XXH3-64 of everything before it, seed `Checksum.Seed.checkpointFile`
///
/// These constants are part of the format and must not change.
enum CheckpointFile {
    static let name = "CHECKPOINTS"
    static let magic: [UInt8] = Array("SDBCKPT\n".utf8)
    static let formatVersion: UInt32 = 1

    static func encode(_ checkpoints: [String: UInt64]) -> [UInt8] {
        var bytes = magic
        bytes.appendLE(formatVersion)
        bytes.appendLE(UInt32(checkpoints.count))
        for (name, lsn) in checkpoints.sorted(by: { $0.key < $1.key }) {
            let utf8 = Array(name.utf8)
            bytes.appendLE(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
            bytes.appendLE(lsn)
        }
        bytes.appendLE(Checksum.xxh3(bytes, seed: .checkpointFile))
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> Result<[String: UInt64], LogError> {
        let bad = { (why: String) in Result<[String: UInt64], LogError>.failure(.corrupt("\(name): \(why)")) }
        guard bytes.count >= 24 else { return bad("file too short (\(bytes.count) bytes)") }
        return bytes.withUnsafeBytes { raw in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 8)])
            if Checksum.xxh3(body, seed: .checkpointFile) != raw.loadLE(UInt64.self, at: raw.count - 8) {
                return bad("checksum mismatch")
            }
            if !magic.elementsEqual(raw[0..<8]) { return bad("bad magic") }
            let version = raw.loadLE(UInt32.self, at: 8)
            if version != formatVersion { return bad("unknown format version \(version)") }
            let count = Int(raw.loadLE(UInt32.self, at: 12))
            var at = 16
            var result: [String: UInt64] = [:]
            for _ in 0..<count {
                guard at + 2 <= body.count else { return bad("entry past the end") }
                let length = Int(raw.loadLE(UInt16.self, at: at))
                at += 2
                guard at + length + 8 <= body.count else { return bad("entry past the end") }
                let name = String(decoding: raw[at..<(at + length)], as: UTF8.self)
                at += length
                result[name] = raw.loadLE(UInt64.self, at: at)
                at += 8
            }
            return at == body.count ? .success(result) : bad("trailing bytes")
        }
    }

    static func load(directory: String, fileSystem: FileSystem) throws(LogError) -> [String: UInt64] {
        let path = directory + "/" + name
        guard fileSystem.exists(path) else { return [:] }
        do {
            let file = try fileSystem.open(path, .readOnlyAccess)
            defer { file.close() }
            var bytes = [UInt8](repeating: 0, count: Int(try file.size()))
            var failure: IOError?
            bytes.withUnsafeMutableBytes { raw in
                do throws(IOError) { try file.readExactly(into: raw, at: 0) } catch { failure = error }
            }
            if let failure { throw failure }
            return try decode(bytes).get()
        } catch let error as IOError {
            throw .io(error)
        } catch let error as LogError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    static func store(_ checkpoints: [String: UInt64], directory: String, fileSystem: FileSystem) throws(IOError) {
        let path = directory + "/" + name
        let temporary = path + ".tmp"
        try fileSystem.replaceAtomically(path, with: encode(checkpoints), temporary: temporary, directory: directory)
    }
}
