import StorageEngine
import Testing

/// The record cache through the tree's reads: a cache small enough that every path of its log
/// runs thousands of times (eviction, wrapping with padding, referenced records moved to the
/// tail, backward-shift deletion, replacement, absent entries), checked against a model after
/// every operation: a read, by `get`, `multiGet` of arrays or `multiGet` into a `RecordBatch`,
/// returns exactly the model's value whether the cache or the tree answers.
@Suite struct RecordCacheTests {
    static func key(_ n: UInt64) -> [UInt8] { Keys.one(.users, n) }

    static func value(_ n: UInt64, version: UInt64, length: Int) -> [UInt8] {
        var v = [UInt8](repeating: UInt8(truncatingIfNeeded: n &* 31 &+ version), count: length)
        for i in 0..<min(8, length) { v[i] = UInt8(truncatingIfNeeded: (n ^ version) >> (8 * UInt64(i))) }
        return v
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func readsMatchTheModelThroughEvictionAndReplacement(seed: UInt64) throws {
        // 1 KiB a shard: 16 slots (a word each) and 112 words of arena, records up to 128 bytes.
        try Self.checkAgainstModel(seed: seed, cacheBytes: 64 << 10, steps: 20_000)
    }

    /// A budget large enough for the slots and arenas to share one region of huge pages
    /// (`RecordCache.hugePagesMinimumBytes`): every shard's memory is carved out of it, and a
    /// mistake in the carving (shards overlapping, an arena running into the next shard's)
    /// would show as values that are not the model's.
    @Test func readsMatchTheModelWithAHugePageRegion() throws {
        try Self.checkAgainstModel(seed: 4, cacheBytes: 16 << 20, steps: 6_000)
    }

    static func checkAgainstModel(seed: UInt64, cacheBytes: Int, steps: Int) throws {
        print("RecordCacheTests seed \(seed), \(cacheBytes) bytes")
        let tmp = TemporaryDirectory("record-cache-model")
        var options = smallLSMOptions(background: false)
        options.recordCacheBytes = cacheBytes
        let h = try TreeHarness(dir: tmp.path, options: options)
        var rng = SeededRandom(seed: seed)
        var model: [UInt64: [UInt8]] = [:]
        let keys: UInt64 = 3_000
        let batch = RecordBatch()
        for step in 0..<steps {
            let n = rng.next() % keys
            switch rng.next() % 10 {
            case 0:
                let v = Self.value(n, version: UInt64(step), length: Int(rng.next() % 100))
                try h.tree.put(Self.key(n), v)
                model[n] = v
            case 1:
                try h.tree.delete(Self.key(n))
                model[n] = nil
            case 2:
                if step % 4000 == 3999 { try h.tree.flush() }
                let page = (0..<Int(1 + rng.next() % 24)).map { _ in rng.next() % keys }
                let got = try h.tree.multiGet(page.map(Self.key))
                #expect(got == page.map { model[$0] }, "array multiGet at step \(step)")
            case 3, 4, 5:
                // Mostly a few hot keys, so references and moves happen.
                let page = (0..<Int(1 + rng.next() % 24)).map { _ in rng.next() % 4 == 0 ? rng.next() % keys : rng.next() % 64 }
                batch.removeAll()
                for k in page { batch.append(key: Self.key(k)) }
                try h.tree.multiGet(batch)
                for (i, k) in page.enumerated() {
                    let got = batch.value(at: i).map { [UInt8]($0) }
                    #expect(got == model[k], "batch multiGet of \(k) at step \(step)")
                }
                #expect(batch.found == page.filter { model[$0] != nil }.count)
            default:
                let k = rng.next() % 4 == 0 ? n : n % 64
                #expect(try h.tree.get(Self.key(k)) == model[k], "get of \(k) at step \(step)")
            }
        }
        let stats = h.tree.statistics
        #expect(stats.recordCacheHits > 0 && stats.recordCacheMisses > 0)
        #expect(stats.recordCacheBytes <= cacheBytes, "the cache keeps to its budget")
        try h.close()
    }

    /// A batch of no keys, a batch larger than its first buffers, and values larger than the
    /// cache keeps (read from the tree every time).
    @Test func batchEdgeCases() throws {
        let tmp = TemporaryDirectory("record-cache-batch")
        var options = smallLSMOptions(background: false)
        options.recordCacheBytes = 256 << 10
        let h = try TreeHarness(dir: tmp.path, options: options)
        let batch = RecordBatch()
        try h.tree.multiGet(batch)
        #expect(batch.count == 0 && batch.found == 0)
        let big = [UInt8](repeating: 7, count: 3_000)
        for n in 0..<UInt64(600) { try h.tree.put(Self.key(n), n % 50 == 0 ? big : Self.value(n, version: 0, length: Int(n % 40))) }
        for round in 0..<3 {
            batch.removeAll()
            for n in 0..<UInt64(700) { batch.append(key: Self.key(n)) }
            try h.tree.multiGet(batch)
            for n in 0..<UInt64(700) {
                let expected: [UInt8]? = n >= 600 ? nil : (n % 50 == 0 ? big : Self.value(n, version: 0, length: Int(n % 40)))
                #expect(batch.value(at: Int(n)).map { [UInt8]($0) } == expected, "key \(n), round \(round)")
            }
            #expect(batch.found == 600)
            if round == 0 { try h.tree.flush() }
        }
        try h.close()
    }
}
