import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The file-layer suite, run on both backends.
@Suite struct FileSystemTests {
    @Test(arguments: Backends.all)
    func writeReadAndShortReadAtEnd(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice)
        let file = try fs.open(dir.path + "/a", .createNew)
        defer { file.close() }
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try file.write(data, at: 100)
        #expect(try file.size() == 10_100)
        var back = [UInt8](repeating: 0xAA, count: 10_000)
        let n = try back.withUnsafeMutableBytes { try file.read(into: $0, at: 100) }
        #expect(n == 10_000)
        #expect(back == data)
        // The hole before the data reads as zeros; a read past the end is short.
        var tail = [UInt8](repeating: 0xAA, count: 500)
        let m = try tail.withUnsafeMutableBytes { try file.read(into: $0, at: 9_900) }
        #expect(m == 200)
        #expect(Array(tail[0..<200]) == Array(data[9_800..<10_000]))
        var head = [UInt8](repeating: 0xAA, count: 100)
        _ = try head.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        #expect(head.allSatisfy { $0 == 0 })
        #expect(throws: IOError.self) {
            try tail.withUnsafeMutableBytes { try file.readExactly(into: $0, at: 9_900) }
        }
    }

    @Test(arguments: Backends.all)
    func concurrentAppendsNeverOverlap(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice)
        let file = try fs.open(dir.path + "/log", .createNew)
        defer { file.close() }
        let threads = (0..<4).map { t in
            BackgroundThread {
                var record = [UInt8](repeating: UInt8(t + 1), count: 64)
                for i in 0..<500 {
                    record[1] = UInt8(truncatingIfNeeded: i)
                    _ = try! record.withUnsafeBytes { try file.append($0) }
                }
            }
        }
        threads.forEach { $0.join() }
        let bytes = readWholeFile(dir.path + "/log")
        #expect(bytes.count == 4 * 500 * 64)
        var counts = [Int](repeating: 0, count: 5)
        for chunk in stride(from: 0, to: bytes.count, by: 64) {
            let owner = bytes[chunk]
            #expect(bytes[chunk..<(chunk + 64)].enumerated().allSatisfy { $0.offset == 1 || $0.element == owner }, "a record was torn by another append")
            counts[Int(owner)] += 1
        }
        #expect(counts == [0, 500, 500, 500, 500])
    }

    @Test(arguments: Backends.all)
    func batchReadsManyRangesAtOnce(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice, ringEntries: 16) // smaller than the batch: split
        let a = try fs.open(dir.path + "/a", .createNew)
        let b = try fs.open(dir.path + "/b", .createNew)
        defer { a.close(); b.close() }
        let blocks = 100
        let buffer = AlignedBuffer(count: 4096 * blocks)
        for i in 0..<blocks {
            let block = buffer.bytes(from: i * 4096, count: 4096)
            block.initializeMemory(as: UInt8.self, repeating: UInt8(i))
        }
        var writes = (0..<blocks).map { i in
            FileSystem.WriteRequest(file: i % 2 == 0 ? a : b, offset: UInt64(i / 2) * 4096, bytes: UnsafeRawBufferPointer(buffer.bytes(from: i * 4096, count: 4096)))
        }
        writes.shuffle()
        try fs.write(batch: writes)
        let target = AlignedBuffer(count: 4096 * blocks)
        var reads = (0..<blocks).map { i in
            FileSystem.ReadRequest(file: i % 2 == 0 ? a : b, offset: UInt64(i / 2) * 4096, buffer: target.bytes(from: i * 4096, count: 4096))
        }
        // One more that runs past the end of `b`: it comes back short, not as an error.
        let extra = AlignedBuffer(count: 4096)
        reads.append(FileSystem.ReadRequest(file: b, offset: UInt64(blocks / 2) * 4096 - 100, buffer: extra.bytes))
        try withExtendedLifetime(extra) { try fs.read(batch: &reads) }
        for i in 0..<blocks {
            #expect(reads[i].bytesRead == 4096)
            #expect(target.bytes(from: i * 4096, count: 4096).allSatisfy { $0 == UInt8(i) })
        }
        #expect(reads[blocks].bytesRead == 100)
    }

    @Test(arguments: Backends.all)
    func writeAndSyncPreallocateTruncate(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice)
        let file = try fs.open(dir.path + "/seg", .createNew)
        defer { file.close() }
        try file.preallocate(at: 0, count: 1 << 20)
        #expect(try file.size() == 1 << 20)
        let data = [UInt8](repeating: 7, count: 5000)
        try data.withUnsafeBytes { try file.writeAndSync($0, at: 4096) }
        try file.dataSync()
        try file.sync()
        try file.truncate(to: 6000)
        #expect(try file.size() == 6000)
        #expect(file.endOffset == 6000)
        let bytes = readWholeFile(dir.path + "/seg")
        #expect(bytes[4096..<6000].allSatisfy { $0 == 7 })
        #expect(bytes[0..<4096].allSatisfy { $0 == 0 })
    }

    @Test(arguments: Backends.all)
    func directoriesRenameAndRemove(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice)
        try fs.makeDirectory(dir.path + "/x/y/z")
        #expect(fs.isDirectory(dir.path + "/x/y/z"))
        let f = try fs.open(dir.path + "/x/y/z/f.tmp", .createNew)
        try f.write([1, 2, 3], at: 0)
        try f.sync()
        f.close()
        try fs.rename(dir.path + "/x/y/z/f.tmp", to: dir.path + "/x/y/z/f")
        try fs.syncDirectory(dir.path + "/x/y/z")
        #expect(try fs.listDirectory(dir.path + "/x/y/z") == ["f"])
        #expect(readWholeFile(dir.path + "/x/y/z/f") == [1, 2, 3])
        #expect(throws: IOError.self) { try fs.open(dir.path + "/x/y/z/f", .createNew) }
        #expect(throws: IOError.self) { try fs.open(dir.path + "/missing") }
        try fs.removeTree(dir.path + "/x")
        #expect(!fs.exists(dir.path + "/x"))
    }

    @Test(arguments: Backends.all)
    func directIOWithAlignedBuffers(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fs")
        let fs = try FileSystem(backend: choice)
        let opened = Result { () throws(IOError) -> File in
            try fs.open(dir.path + "/direct", FileSystem.OpenOptions(create: true, direct: true))
        }
        if case .failure(let error) = opened, error.errno == EINVAL {
            print("note: O_DIRECT is not supported on \(dir.path); skipped")
            return
        }
        let file = try opened.get()
        defer { file.close() }
        let buffer = AlignedBuffer(count: 8192)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x5A)
        try file.write(UnsafeRawBufferPointer(buffer.bytes), at: 4096)
        let back = AlignedBuffer(count: 8192)
        #expect(try file.read(into: back.bytes, at: 4096) == 8192)
        #expect(back.bytes.allSatisfy { $0 == 0x5A })
    }

    @Test func automaticHonoursTheEnvironmentAndReportsItsChoice() throws {
        let fs = try FileSystem(backend: .automatic)
        if Backends.ioUringAvailable && getenv("SOCIALDB_IO") == nil {
            #expect(fs.backend == .ioUring)
        } else {
            #expect(fs.backend == .posix || getenv("SOCIALDB_IO") != nil)
        }
        #expect(try FileSystem(backend: .posix).backend == .posix)
    }
}

/// Faults injected through the seam reach the caller as errors, on both backends.
@Suite struct FaultInjectionTests {
    @Test(arguments: Backends.all)
    func eioOnTheNthFsync(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fault")
        let faults = FaultInjector([.init(operation: .fdatasync, nth: 3, action: .fail(errno: EIO))])
        let fs = try FileSystem(backend: choice, faults: faults)
        let file = try fs.open(dir.path + "/f", .createNew)
        defer { file.close() }
        try file.dataSync()
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try file.writeAndSync($0, at: 0) }
        let error = #expect(throws: IOError.self) {
            try [UInt8](repeating: 2, count: 10).withUnsafeBytes { try file.writeAndSync($0, at: 10) }
        }
        #expect(error?.errno == EIO)
        #expect(error?.operation == .fdatasync)
        try file.dataSync() // the 4th is not hit
        #expect(faults.hits == 1)
    }

    @Test(arguments: Backends.all)
    func enospcOnWrite(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fault")
        let faults = FaultInjector([.init(operation: .write, pathContains: "full", nth: 2, sticky: true, action: .fail(errno: ENOSPC))])
        let fs = try FileSystem(backend: choice, faults: faults)
        let full = try fs.open(dir.path + "/full", .createNew)
        let other = try fs.open(dir.path + "/other", .createNew)
        defer { full.close(); other.close() }
        try full.write([1], at: 0)
        for _ in 0..<3 {
            let error = #expect(throws: IOError.self) { try full.write([2], at: 1) }
            #expect(error?.isNoSpace == true)
        }
        try other.write([3], at: 0) // the path filter spares other files
        // A linked sync after a failed write is not run, and the write error is what surfaces.
        let linked = #expect(throws: IOError.self) {
            try [UInt8](repeating: 9, count: 4).withUnsafeBytes { try full.writeAndSync($0, at: 0) }
        }
        #expect(linked?.operation == .write)
        #expect(readWholeFile(dir.path + "/full") == [1])
    }

    @Test(arguments: Backends.all)
    func shortWritesAreCompleted(_ choice: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("fault")
        let faults = FaultInjector([.init(operation: .write, nth: 1, action: .shortWrite(maxBytes: 3))])
        let fs = try FileSystem(backend: choice, faults: faults)
        let file = try fs.open(dir.path + "/f", .createNew)
        defer { file.close() }
        let data = (0..<100).map { UInt8($0) }
        try data.withUnsafeBytes { try file.writeAndSync($0, at: 0) }
        #expect(faults.hits == 1)
        #expect(readWholeFile(dir.path + "/f") == data)
    }
}

@Suite struct CrashSimulatorTests {
    /// What a power cut leaves: synced data and names stay, everything after the last sync goes
    /// (unsynced writes, growth, a created file, a rename over an old file, a removal).
    @Test(arguments: Backends.all)
    func powerCutKeepsExactlyWhatWasSynced(_ backend: FileSystem.BackendChoice) throws {
        let dir = TemporaryDirectory("crashsim")
        let simulator = CrashSimulator(stashDirectory: dir.path + "/stash")
        let fs = try FileSystem(backend: backend, faults: FaultInjector(crash: simulator))
        try fs.makeDirectory(dir.path + "/d")
        let a = try fs.open(dir.path + "/d/a", .createOrOpen)
        try a.write([1, 2, 3, 4], at: 0)
        try a.dataSync()
        try fs.syncDirectory(dir.path + "/d")
        try a.write([9, 9], at: 2)          // unsynced overwrite
        try a.write([7, 7, 7], at: 4)       // unsynced growth
        writeWholeFile(dir.path + "/d/old", [5])
        try fs.syncDirectory(dir.path + "/d")
        let b = try fs.open(dir.path + "/d/new", .createOrOpen)
        try b.write([6], at: 0)
        try b.dataSync()                    // data synced, but its name is not
        try fs.rename(dir.path + "/d/new", to: dir.path + "/d/old")
        let c = try fs.open(dir.path + "/d/c", .createOrOpen)
        try fs.syncDirectory(dir.path + "/d")
        try fs.remove(dir.path + "/d/c")    // unsynced removal
        #expect(simulator.pending.writes == 2)
        simulator.arm(afterMutations: 1)
        #expect(throws: IOError.self) { try a.write([0], at: 0) }
        #expect(simulator.crashed)
        a.close(); b.close(); c.close()
        var random = SeededRandom(seed: 1)
        let undone = simulator.powerCut(keepPrefixes: false, using: &random)
        #expect(undone.writes == 2)
        #expect(readWholeFile(dir.path + "/d/a") == [1, 2, 3, 4])
        // The rename was made durable by the directory fsync after it; the removal came after
        // the last one, so `c` is back.
        #expect(readWholeFile(dir.path + "/d/old") == [6])
        #expect(fs.exists(dir.path + "/d/c"))
    }

    @Test func unsyncedNamesAreUndoneNewestFirst() throws {
        let dir = TemporaryDirectory("crashsim")
        let simulator = CrashSimulator(stashDirectory: dir.path + "/stash")
        let fs = try FileSystem(backend: .posix, faults: FaultInjector(crash: simulator))
        try fs.makeDirectory(dir.path + "/sub/deeper")             // durable: parents are synced
        writeWholeFile(dir.path + "/old", [5])
        let t = try fs.open(dir.path + "/x.tmp", .createOrOpen)
        try t.write([6], at: 0)
        try t.dataSync()
        t.close()
        try fs.rename(dir.path + "/x.tmp", to: dir.path + "/old") // no directory fsync
        var random = SeededRandom(seed: 2)
        simulator.powerCut(keepPrefixes: false, using: &random)
        #expect(readWholeFile(dir.path + "/old") == [5], "the old file is back")
        #expect(!fs.exists(dir.path + "/x.tmp"), "the unsynced temporary file is gone")
        #expect(fs.isDirectory(dir.path + "/sub/deeper"))
    }
}
