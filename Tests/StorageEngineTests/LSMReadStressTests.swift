import Foundation
import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Batched reads racing table turnover: readers run `multiGet` (one batched submission of the
/// blocks it misses, on io_uring where the host has it) and `get` while a writer forces flush
/// after flush and a compactor merges level after level, so the tables a reader's snapshot holds
/// are replaced and deleted under it; between rounds the tree is closed and reopened while
/// another tree in the same process opens and closes tables, so descriptor numbers are reused.
/// Every read must return the value last written or a later one, and never fail: a table's
/// descriptor must stay open for as long as any snapshot can read it, and a batch's completions
/// must land in that batch. (The suspects of a one-off "short read of block at 0"; the cause
/// turned out to be a test helper closing a descriptor twice, see DescriptorTests.)
@Suite struct LSMReadStressTests {
    /// key k's value in version v: the key number, the version, and filler so blocks hold few.
    static func value(_ k: UInt64, _ v: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: k.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
        bytes += [UInt8](repeating: UInt8(truncatingIfNeeded: k &+ v), count: 48)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> (key: UInt64, version: UInt64)? {
        guard bytes.count == 64 else { return nil }
        let k = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let v = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard bytes[16...].allSatisfy({ $0 == UInt8(truncatingIfNeeded: k &+ v) }) else { return nil }
        return (k, v)
    }

    @Test(arguments: Backends.all, [false, true])
    func readsRacingFlushesCompactionsAndReopens(backend: FileSystem.BackendChoice, mapped: Bool) throws {
        let directory = TemporaryDirectory("lsm-read-stress")
        let neighbour = TemporaryDirectory("lsm-read-stress-neighbour")
        var options = smallLSMOptions(background: true)
        options.mmapReads = mapped
        options.recordCacheBytes = 0 // every read goes to the memtables and tables
        options.blockCacheBytes = 16 << 10 // misses all the time: batched reads of the tables
        let harness = try TreeHarness(dir: directory.path, backend: backend, options: options)
        let keys: UInt64 = 600
        // What each key holds at least: readers may see this version or a later one.
        let floors = Floors(count: Int(keys))
        var batch = WriteBatch()
        for k in 0..<keys { batch.put(modelKey(space: 1, k), Self.value(k, 0)) }
        try harness.tree.write(batch)

        let problems = Mutex<[String]>([])
        @Sendable func problem(_ text: String) { problems.withLock { if $0.count < 20 { $0.append(text) } } }
        var version: UInt64 = 0
        for round in 0..<3 {
            let tree = harness.tree
            let writing = Atomic<Bool>(true)
            let group = DispatchGroup()
            func spawn(_ body: @escaping @Sendable () -> Void) {
                group.enter()
                Thread { body(); group.leave() }.start()
            }
            let firstVersion = version + 1
            version += 400
            let lastVersion = version
            // The writer: 400 batches of 16 keys, each a new version (a flush every few batches).
            spawn {
                var rng = SeededRandom(seed: UInt64(round) * 7919 + 1)
                for v in firstVersion...lastVersion {
                    var batch = WriteBatch()
                    var written: [UInt64] = []
                    for _ in 0..<16 {
                        let k = rng.next() % keys
                        batch.put(modelKey(space: 1, k), Self.value(k, v))
                        written.append(k)
                    }
                    do throws(LSMError) { try tree.write(batch) } catch { problem("write: \(error)"); break }
                    for k in written {
                        var current = floors.slot(Int(k)).pointee.load(ordering: .relaxed)
                        while current < v {
                            let (done, original) = floors.slot(Int(k)).pointee.compareExchange(expected: current, desired: v, ordering: .acquiringAndReleasing)
                            if done { break }
                            current = original
                        }
                    }
                }
                writing.store(false, ordering: .releasing)
            }
            // The compactor: whole-tree compactions while the writer runs.
            spawn {
                while writing.load(ordering: .acquiring) {
                    do throws(LSMError) { try tree.compactAll() } catch { problem("compactAll: \(error)"); return }
                    usleep(2_000)
                }
            }
            // Readers: single gets, multi-gets of 48 random keys and batches, checked against the floors.
            for r in 0..<3 {
                spawn {
                    var rng = SeededRandom(seed: UInt64(round * 10 + r) &* 104_729 &+ 17)
                    var passes = 0
                    while writing.load(ordering: .acquiring) || passes < 20 {
                        passes += 1
                        let chosen = (0..<48).map { _ in rng.next() % keys }
                        let before = chosen.map { floors.slot(Int($0)).pointee.load(ordering: .acquiring) }
                        let values: [[UInt8]?]
                        do throws(LSMError) {
                            // Single gets, the array multi-get, and a batch (the pipelined path
                            // when the tables are mapped).
                            switch r {
                            case 0: values = try chosen.map { k throws(LSMError) in try tree.get(modelKey(space: 1, k)) }
                            case 1: values = try tree.multiGet(chosen.map { modelKey(space: 1, $0) })
                            default:
                                let batch = RecordBatch()
                                for k in chosen { batch.append(key: modelKey(space: 1, k)) }
                                try tree.multiGet(batch)
                                values = chosen.indices.map { batch.value(at: $0).map { Array($0) } }
                            }
                        } catch {
                            problem("round \(round) reader \(r): \(error)")
                            return
                        }
                        for (i, k) in chosen.enumerated() {
                            guard let bytes = values[i], let (key, v) = Self.decode(bytes) else {
                                problem("round \(round): key \(k) read as \(values[i].map { "\($0.count) bad bytes" } ?? "absent")")
                                continue
                            }
                            if key != k || v < before[i] { problem("round \(round): key \(k) read as key \(key) version \(v), written \(before[i])") }
                        }
                    }
                }
            }
            // A neighbour tree opening and closing tables meanwhile: descriptor numbers churn.
            let neighbourPath = neighbour.path + "/\(round)"
            let neighbourOptions = options
            spawn {
                do {
                    let other = try TreeHarness(dir: neighbourPath, backend: backend, options: neighbourOptions)
                    var k: UInt64 = 0
                    while writing.load(ordering: .acquiring) {
                        var batch = WriteBatch()
                        for _ in 0..<16 { batch.put(modelKey(space: 2, k), Self.value(k, 1)); k += 1 }
                        try other.tree.write(batch)
                        if k % 512 == 0 { try other.reopen() }
                    }
                    try other.close()
                } catch { problem("neighbour: \(error)") }
            }
            group.wait()
            try harness.reopen(clean: round % 2 == 0)
        }
        let found = problems.withLock { $0 }
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
        // And after the last reopen, every key at its last version.
        let last = try harness.tree.multiGet((0..<keys).map { modelKey(space: 1, $0) })
        for k in 0..<Int(keys) {
            #expect(last[k].flatMap(Self.decode)?.version == floors.slot(k).pointee.load(ordering: .relaxed), "key \(k)")
        }
        try harness.close()
    }
}

/// One atomic version floor per key, shared by the stress threads.
final class Floors: Sendable {
    // Sendable: the pointer never changes and every access is atomic.
    private nonisolated(unsafe) let slots: UnsafeMutablePointer<Atomic<UInt64>>
    let count: Int

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        for i in 0..<count { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit { slots.deallocate() }

    func slot(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        precondition(i >= 0 && i < count)
        return slots + i
    }
}
