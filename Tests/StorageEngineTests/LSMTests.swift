import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Small sizes so a few thousand operations go through every path: many flushes, level-0
/// compactions, trivial moves, merges into deeper levels and tombstones reaching the bottom.
func smallLSMOptions(background: Bool) -> LSMOptions {
    var o = LSMOptions()
    o.memtableBytes = 24 << 10
    o.blockBytes = 512
    o.restartInterval = 4
    o.tableBytes = 48 << 10
    o.level0CompactionTrigger = 3
    o.level0StopWrites = 8
    o.level1Bytes = 128 << 10
    o.levelSizeMultiplier = 4
    o.levels = 5
    o.blockCacheBytes = 256 << 10
    o.backgroundWork = background
    return o
}

/// Opens a log and a tree over one directory, like the engine does.
final class TreeHarness {
    let dir: String
    let fs: FileSystem
    var log: Log
    var tree: LSMTree
    let options: LSMOptions
    let logOptions: LogOptions

    init(dir: String, backend: FileSystem.BackendChoice = .automatic, options: LSMOptions, sync: LogSyncPolicy = .off, faults: FaultInjector? = nil) throws {
        self.dir = dir
        fs = try FileSystem(backend: backend, faults: faults)
        self.options = options
        logOptions = LogOptions(sync: sync, segmentSizeBytes: 256 << 10)
        (log, _) = try Log.open(directory: dir + "/log", fileSystem: fs, options: logOptions)
        tree = try LSMTree.open(directory: dir + "/lsm", fileSystem: fs, log: log, options: options)
    }

    func reopen(clean: Bool = true) throws {
        try tree.close(flush: clean)
        try? log.close()
        (log, _) = try Log.open(directory: dir + "/log", fileSystem: fs, options: logOptions)
        tree = try LSMTree.open(directory: dir + "/lsm", fileSystem: fs, log: log, options: options)
    }

    func close() throws {
        try tree.close()
        try log.close()
    }
}

/// Keys like the engine's: a key-space byte, then big-endian numbers.
func modelKey(space: UInt8, _ n: UInt64) -> [UInt8] {
    var k: [UInt8] = [space]
    withUnsafeBytes(of: n.bigEndian) { k.append(contentsOf: $0) }
    return k
}

func modelValue(_ n: UInt64, version: Int, rng: inout SeededRandom) -> [UInt8] {
    let length = Int(rng.next() % 300)
    var v = [UInt8](repeating: 0, count: length + 12)
    withUnsafeBytes(of: n.littleEndian) { for i in 0..<8 { v[i] = $0[i] } }
    withUnsafeBytes(of: UInt32(truncatingIfNeeded: version).littleEndian) { for i in 0..<4 { v[8 + i] = $0[i] } }
    for i in 12..<v.count { v[i] = UInt8(truncatingIfNeeded: rng.next()) }
    return v
}

@Suite struct LSMModelTests {
    /// Random puts, deletes, gets, multi-gets, scans both ways, flushes, full compactions and
    /// reopenings, checked against a dictionary. SOCIALDB_LSM_OPS sets the number of operations.
    @Test(arguments: [true, false])
    func randomOperationsMatchADictionary(background: Bool) throws {
        let seed = testSeed()
        print("LSM model test seed \(seed) (SOCIALDB_SEED=\(seed) to replay), background \(background)")
        var rng = SeededRandom(seed: seed)
        let ops = environmentInt("SOCIALDB_LSM_OPS", default: 30_000)
        let tmp = TemporaryDirectory("lsm-model")
        let h = try TreeHarness(dir: tmp.path, options: smallLSMOptions(background: background))
        var model: [[UInt8]: [UInt8]] = [:]
        var nextIncreasing: UInt64 = 1
        var version = 0
        var randomKeys: [[UInt8]] = []

        func pickExisting() -> [UInt8]? {
            guard !randomKeys.isEmpty else { return nil }
            return randomKeys[Int(rng.next() % UInt64(randomKeys.count))]
        }

        // The model's keys in order, kept sorted as keys come and go, for scans.
        var sorted: [[UInt8]] = []
        func position(_ k: [UInt8]) -> Int {
            var lo = 0
            var hi = sorted.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if sorted[mid].lexicographicallyPrecedes(k) { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        func set(_ k: [UInt8], _ v: [UInt8]?) {
            let had = model[k] != nil
            model[k] = v
            if v != nil && !had {
                sorted.insert(k, at: position(k))
            } else if v == nil && had {
                sorted.remove(at: position(k))
            }
        }
        func sortedModelKeys(_ lower: [UInt8], _ upper: [UInt8]) -> [[UInt8]] {
            Array(sorted[position(lower)..<position(upper)])
        }

        for step in 0..<ops {
            let r = rng.next() % 1000
            version += 1
            switch r {
            case 0..<300:
                // Increasing ids in key space 1 (tweets by id): the fast path.
                let k = modelKey(space: 1, nextIncreasing)
                nextIncreasing += 1 + rng.next() % 3
                let v = modelValue(nextIncreasing, version: version, rng: &rng)
                try h.tree.put(k, v)
                set(k, v)
                randomKeys.append(k)
            case 300..<520:
                // Random keys in key spaces 2 and 3, often overwriting.
                let k: [UInt8]
                if rng.next() % 3 == 0, let e = pickExisting() { k = e } else {
                    k = modelKey(space: UInt8(2 + rng.next() % 2), rng.next() % 5000)
                    randomKeys.append(k)
                }
                let v = modelValue(UInt64(step), version: version, rng: &rng)
                try h.tree.put(k, v)
                set(k, v)
            case 520..<600:
                if let k = pickExisting() {
                    try h.tree.delete(k)
                    set(k, nil)
                }
            case 600..<610:
                // A batch: several puts and deletes applied as one.
                var batch = WriteBatch()
                for _ in 0..<(1 + rng.next() % 8) {
                    let k = modelKey(space: 3, rng.next() % 5000)
                    if rng.next() % 4 == 0 {
                        batch.delete(k)
                        set(k, nil)
                    } else {
                        let v = modelValue(UInt64(step), version: version, rng: &rng)
                        batch.put(k, v)
                        set(k, v)
                    }
                    randomKeys.append(k)
                }
                try h.tree.write(batch)
            case 610..<850:
                let k = pickExisting() ?? modelKey(space: 2, rng.next() % 5000)
                let got = try h.tree.get(k)
                if got != model[k] {
                    Issue.record("get \(k) at step \(step): \(got?.count ?? -1) bytes, want \(model[k]?.count ?? -1), seed \(seed)")
                    return
                }
            case 850..<880:
                var keys: [[UInt8]] = []
                for _ in 0..<20 { keys.append(pickExisting() ?? modelKey(space: 3, rng.next() % 5000)) }
                let got = try h.tree.multiGet(keys)
                let want = keys.map { model[$0] }
                if let i = keys.indices.first(where: { got[$0] != want[$0] }) {
                    let single = try h.tree.get(keys[i])
                    Issue.record("multiGet key \(keys[i]) at step \(step): \(got[i]?.count ?? -1) bytes, want \(want[i]?.count ?? -1), get gives \(single?.count ?? -1), seed \(seed)")
                    return
                }
            case 880..<960:
                let space = UInt8(1 + rng.next() % 3)
                let a = rng.next() % (space == 1 ? max(nextIncreasing, 1) : 5000)
                let lower = modelKey(space: space, a)
                let upper = modelKey(space: space, a + 1 + rng.next() % 400)
                let reverse = rng.next() % 2 == 0
                let limit = Int(1 + rng.next() % 30)
                var want = sortedModelKeys(lower, upper)
                if reverse { want.reverse() }
                want = Array(want.prefix(limit))
                var got: [[UInt8]] = []
                var values: [[UInt8]] = []
                try h.tree.scan(from: lower, to: upper, reverse: reverse, limit: limit) { k, v in
                    got.append(Array(k))
                    values.append(Array(v))
                    return true
                }
                if got != want || values != want.map({ model[$0]! }) {
                    Issue.record("scan \(lower)..<\(upper) reverse=\(reverse) limit \(limit) at step \(step): got \(got.count) keys \(got.prefix(5)), want \(want.count) \(want.prefix(5)), seed \(seed)")
                    return
                }
            case 960..<985:
                try h.tree.flush()
            case 985..<987:
                try h.tree.compactAll()
            default:
                try h.reopen(clean: rng.next() % 2 == 0)
            }
        }
        let stats = h.tree.statistics
        print("LSM model: \(ops) ops, levels \(stats.tablesPerLevel), flushes \(stats.flushes), compactions \(stats.compactions), moves \(stats.trivialMoves), write amp \(stats.writeAmplification)")
        // Everything, both ways, after a final reopen.
        try h.reopen()
        let all = sorted
        var got: [[UInt8]] = []
        try h.tree.scan(from: [0], to: nil) { k, _ in got.append(Array(k)); return true }
        #expect(got.count == all.count && got == all, "full scan, seed \(seed)")
        got.removeAll()
        try h.tree.scan(from: [0], to: nil, reverse: true) { k, _ in got.append(Array(k)); return true }
        #expect(got.count == all.count && got == all.reversed(), "full reverse scan, seed \(seed)")
        #expect(h.tree.statistics.tablesPerLevel.reduce(0, +) > 1)
        try h.close()
    }
}
