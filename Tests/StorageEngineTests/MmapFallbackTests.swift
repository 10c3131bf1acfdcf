import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A table's read-only mapping failing (injected at the file layer's `mmap` seam): for want of
/// a resource the table reads through the block cache and the fallback is counted; for any
/// other reason (a closed descriptor, bad arguments, no permission) the open of the table fails
/// naming it, never a silent fallback.
@Suite struct MmapFallbackTests {
    static let keys = 1_500

    static func key(_ n: Int) -> [UInt8] { modelKey(space: 1, UInt64(n)) }

    static func value(_ n: Int) -> [UInt8] {
        var v = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 120)
        withUnsafeBytes(of: UInt64(n).littleEndian) { for i in 0..<8 { v[i] = $0[i] } }
        return v
    }

    static func options() -> LSMOptions {
        var o = smallLSMOptions(background: false)
        o.mmapReads = true
        o.recordCacheBytes = 0 // every read reaches a table
        // Blocks stored as built: a mapped table's reads then never touch the block cache (a
        // compressed block is read through it, decompressed), which the tests below count on.
        o.compression = .none
        return o
    }

    static func writeAll(_ tree: LSMTree) throws {
        for start in stride(from: 0, to: keys, by: 10) {
            var batch = WriteBatch()
            for n in start..<min(start + 10, keys) { batch.put(key(n), value(n)) }
            try tree.write(batch)
        }
        try tree.flush()
    }

    /// Every key, by `get` and by `multiGet`, from the tables (the memtable is flushed).
    static func readAll(_ tree: LSMTree) throws -> [String] {
        var wrong: [String] = []
        for n in stride(from: 0, to: keys, by: 7) where try tree.get(key(n)) != value(n) { wrong.append("get \(n)") }
        let all = try tree.multiGet((0..<keys).map(key))
        for n in 0..<keys where all[n] != value(n) { wrong.append("multiGet \(n)") }
        return wrong
    }

    static func tableCount(_ tree: LSMTree) -> Int { tree.statistics.tablesPerLevel.reduce(0, +) }

    @Test(arguments: [ENOMEM, EAGAIN, ENODEV])
    func aResourceShortageFallsBackToReadsAndIsCounted(errno code: Int32) throws {
        let dir = TemporaryDirectory("mmap-short")
        let faults = FaultInjector([.init(operation: .mmap, pathContains: ".sst", sticky: true, action: .fail(errno: code))])
        let h = try TreeHarness(dir: dir.path, backend: .posix, options: Self.options(), faults: faults)
        // Flushes and compactions: every table they make fails to map.
        try Self.writeAll(h.tree)
        try h.tree.compactAll()
        var stats = h.tree.statistics
        #expect(faults.hits > 0)
        #expect(stats.mmapFallbacks == faults.hits, "each failed mapping counted once")
        #expect(stats.lastMmapFallback?.errno == code)
        #expect(stats.lastMmapFallback?.operation == .mmap)
        #expect(stats.lastMmapFallback?.path.hasSuffix(".sst") == true, "\(String(describing: stats.lastMmapFallback))")
        #expect(try Self.readAll(h.tree).isEmpty)
        #expect(h.tree.statistics.cacheMisses > 0, "the unmapped tables read through the block cache")

        // At open, still short: every table falls back, and reads stay right.
        try h.reopen()
        stats = h.tree.statistics
        #expect(Self.tableCount(h.tree) > 0)
        #expect(stats.mmapFallbacks == Self.tableCount(h.tree))
        #expect(try Self.readAll(h.tree).isEmpty)

        // The shortage over: mapped again, nothing counted.
        faults.removeAll()
        try h.reopen()
        stats = h.tree.statistics
        #expect(stats.mmapFallbacks == 0)
        #expect(stats.lastMmapFallback == nil)
        let misses = stats.cacheMisses
        #expect(try Self.readAll(h.tree).isEmpty)
        #expect(h.tree.statistics.cacheMisses == misses, "mapped tables do not use the block cache")
        try h.close()
    }

    @Test(arguments: [EBADF, EINVAL, EACCES])
    func anyOtherFailureFailsTheOpenNamingTheTable(errno code: Int32) throws {
        let dir = TemporaryDirectory("mmap-error")
        let faults = FaultInjector()
        let h = try TreeHarness(dir: dir.path, backend: .posix, options: Self.options(), faults: faults)
        try Self.writeAll(h.tree)
        #expect(h.tree.statistics.mmapFallbacks == 0)
        try h.tree.close()
        try h.log.close()

        // Reopening: the tree refuses to open, and the error names the table and the call.
        faults.add(.init(operation: .mmap, pathContains: ".sst", nth: 2, action: .fail(errno: code)))
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: h.fs, options: h.logOptions)
        var failure: LSMError?
        do { _ = try LSMTree.open(directory: dir.path + "/lsm", fileSystem: h.fs, log: log, options: Self.options()) } catch {
            failure = error
        }
        guard case .io(let e)? = failure else {
            Issue.record("open with mmap failing (errno \(code)) answered \(String(describing: failure))")
            return
        }
        #expect(e.errno == code)
        #expect(e.operation == .mmap)
        #expect(e.path.hasPrefix(dir.path + "/lsm/") && e.path.hasSuffix(".sst"), "\(e)")
        #expect("\(failure!)".contains("mmap \(e.path)"), "\(failure!)")
        try log.close()

        // The fault gone, the same directory opens with everything in it.
        faults.removeAll()
        try h.reopen()
        #expect(try Self.readAll(h.tree).isEmpty)

        // At a flush: the flush fails naming its new table, nothing is lost, and the next
        // flush (the fault gone) succeeds.
        faults.add(.init(operation: .mmap, pathContains: ".sst", action: .fail(errno: code)))
        var batch = WriteBatch()
        batch.put(Self.key(Self.keys), Self.value(Self.keys))
        try h.tree.write(batch)
        var flushFailure: LSMError?
        do { try h.tree.flush() } catch { flushFailure = error }
        guard case .io(let f)? = flushFailure else {
            Issue.record("flush with mmap failing (errno \(code)) answered \(String(describing: flushFailure))")
            return
        }
        #expect(f.errno == code && f.operation == .mmap && f.path.hasSuffix(".sst"), "\(f)")
        #expect(h.tree.statistics.mmapFallbacks == 0, "an error is never a fallback")
        faults.removeAll()
        try h.tree.flush()
        #expect(try h.tree.get(Self.key(Self.keys)) == Self.value(Self.keys))
        try h.reopen()
        #expect(try h.tree.get(Self.key(Self.keys)) == Self.value(Self.keys))
        #expect(try Self.readAll(h.tree).isEmpty)
        try h.close()
    }
}
