@testable import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The io_uring backend's pool of rings: concurrent batches each get a ring of their own, rings
/// come back for reuse, and the data of many threads' writes and syncs is what they wrote.
@Suite struct URingPoolTests {
    @Test func concurrentBatchesGetDistinctRingsThatAreReused() throws {
        guard Backends.ioUringAvailable else { return }
        let pool = try URingPool(entries: 8)
        #expect(pool.ringsMade == 1)
        // Two batches in flight at once (two rings held): two rings, not one shared.
        let a = try #require(pool.acquire())
        let b = try #require(pool.acquire())
        #expect(a !== b)
        #expect(pool.ringsMade == 2)
        pool.release(a)
        pool.release(b)
        // Back in the pool: the next batches reuse them instead of setting up more.
        let c = try #require(pool.acquire())
        #expect(c === a || c === b)
        pool.release(c)
        #expect(pool.ringsMade == 2)
    }

    @Test func aBatchRunsOnAPooledRingAndGivesItBack() throws {
        guard Backends.ioUringAvailable else { return }
        let dir = TemporaryDirectory("uring-pool")
        let pool = try URingPool(entries: 8)
        let fd = open(dir.path + "/f", O_CREAT | O_RDWR, 0o644)
        #expect(fd >= 0)
        defer { close(fd) }
        var data = [UInt8](repeating: 0x5A, count: 4096)
        let ran = data.withUnsafeMutableBytes { raw -> Bool in
            var ops = [IOOp(kind: .write, fd: fd, address: raw.baseAddress, length: raw.count, offset: 0, linkedToNext: true),
                       IOOp(kind: .fdatasync, fd: fd, address: nil, length: 0, offset: 0)]
            return ops.withUnsafeMutableBufferPointer { pool.run($0) && $0[0].result == 4096 && $0[1].result == 0 }
        }
        #expect(ran)
        #expect(pool.ringsMade == 1)
        #expect(readWholeFile(dir.path + "/f") == data)
    }

    /// Eight threads write and fdatasync files of their own through one io_uring file system
    /// at once (each batch on its own ring): every file reads back exactly as written.
    @Test func manyThreadsWritingAndSyncingAtOnceEachReadBackTheirOwnData() throws {
        guard Backends.ioUringAvailable else { return }
        let dir = TemporaryDirectory("uring-pool")
        let fs = try FileSystem(backend: .ioUring)
        let path = dir.path
        let threads = (0..<8).map { t in
            BackgroundThread {
                let file = try! fs.open(path + "/f\(t)", .createNew)
                defer { file.close() }
                var block = [UInt8](repeating: 0, count: 1000)
                for i in 0..<200 {
                    for j in block.indices { block[j] = UInt8(truncatingIfNeeded: t &* 37 &+ i &* 11 &+ j) }
                    try! block.withUnsafeBytes { raw in
                        if i % 10 == 9 {
                            try file.writeAndSync(raw, at: UInt64(i * 1000))
                        } else {
                            try file.write(raw, at: UInt64(i * 1000))
                        }
                    }
                }
                try! file.dataSync()
            }
        }
        threads.forEach { $0.join() }
        for t in 0..<8 {
            let bytes = readWholeFile(dir.path + "/f\(t)")
            #expect(bytes.count == 200 * 1000)
            var expected = [UInt8](repeating: 0, count: 200 * 1000)
            for i in 0..<200 {
                for j in 0..<1000 { expected[i * 1000 + j] = UInt8(truncatingIfNeeded: t &* 37 &+ i &* 11 &+ j) }
            }
            #expect(bytes == expected, "thread \(t)'s file differs from what it wrote")
        }
        let rings = try #require(fs.ring).ringsMade
        #expect(rings >= 1 && rings <= URingPool.maxRings)
    }
}
