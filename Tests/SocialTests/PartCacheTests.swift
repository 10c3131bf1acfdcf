@testable import Social
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `PartCache`, the encoded parts pages are copied from: against a model (a dictionary of what
/// may be there), through installs, replacements, invalidations, stale stamps, evictions and
/// table growth, with ids that collide in a shard and in a table.
@Suite struct PartCacheTests {
    /// `SplitMix` with a bound.
    struct Generator {
        var random: SplitMix
        init(state: UInt64) { random = SplitMix(seed: state) }
        mutating func next() -> UInt64 { random.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func part(_ id: UInt64, version: Int, length: Int) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: Int(id) &* 31 &+ version &* 7 &+ $0) }
    }

    /// What `append` gives for `id`, or nil.
    static func read(_ cache: PartCache, _ id: UInt64) -> (bytes: [UInt8], retweetOf: UInt64?, quoteOf: UInt64?)? {
        var out: [UInt8] = [9, 9]
        guard let inside = cache.append(id, into: &out) else {
            #expect(out == [9, 9], "a miss appended bytes")
            return nil
        }
        #expect(Array(out.prefix(2)) == [9, 9], "an append changed what was before it")
        return (Array(out.dropFirst(2)), inside.retweetOf, inside.quoteOf)
    }

    @Test(arguments: [1 << 20, 96 * 1024])
    func matchesAModel(maxBytes: Int) {
        let cache = PartCache(maxBytes: maxBytes)
        // The model: id -> what the cache may hold (it may also have evicted it).
        var model: [UInt64: (bytes: [UInt8], retweetOf: UInt64?, quoteOf: UInt64?)] = [:]
        var random = Generator(state: UInt64(maxBytes))
        // Few ids, many operations: every id is installed, replaced and removed many times;
        // sequential snowflake-like ids (time high, sequence low) as the server sees them.
        let ids = (0..<UInt64(600)).map { (UInt64(1_700_000_000_000) << 22) | ($0 << 3) }
        var version = 0
        var evictionsSeen = 0
        for step in 0..<40_000 {
            let id = ids[random.below(ids.count)]
            switch random.below(10) {
            case 0...4:
                version += 1
                let bytes = Self.part(id, version: version, length: random.below(300))
                let retweetOf: UInt64? = random.below(3) == 0 ? random.next() : nil
                let quoteOf: UInt64? = random.below(3) == 0 ? random.next() : nil
                let stamp = cache.stamp(id)
                if random.below(8) == 0 {
                    // A write in the same shard between the stamp and the install: not kept.
                    cache.invalidate(id)
                    model[id] = nil
                    cache.install(id, bytes: bytes, retweetOf: retweetOf, quoteOf: quoteOf, since: stamp)
                    #expect(Self.read(cache, id) == nil, "step \(step): installed after an invalidation")
                } else {
                    cache.install(id, bytes: bytes, retweetOf: retweetOf, quoteOf: quoteOf, since: stamp)
                    model[id] = (bytes, retweetOf, quoteOf)
                }
            case 5:
                cache.invalidate(id)
                model[id] = nil
            case 6:
                cache.prefetch(ids[random.below(ids.count)...].prefix(20))
            default:
                let found = Self.read(cache, id)
                if let found {
                    guard let expected = model[id] else {
                        Issue.record("step \(step): \(id) found but invalidated or never installed")
                        continue
                    }
                    #expect(found.bytes == expected.bytes && found.retweetOf == expected.retweetOf && found.quoteOf == expected.quoteOf,
                            "step \(step): \(id) has another part than its last install")
                } else if model[id] != nil {
                    evictionsSeen += 1
                }
            }
        }
        // Every id still in the model is either there with its last part or evicted; with the
        // large budget nothing is evicted.
        var present = 0
        for id in ids {
            if let found = Self.read(cache, id) {
                present += 1
                #expect(model[id] != nil && found.bytes == model[id]!.bytes)
            } else if maxBytes == 1 << 20 {
                #expect(model[id] == nil, "\(id) was lost without an eviction's need")
            }
        }
        let stats = cache.statistics
        #expect(stats.entries == present)
        if maxBytes == 1 << 20 {
            #expect(evictionsSeen == 0)
        } else {
            #expect(evictionsSeen > 0, "the small budget never evicted: the test does not reach eviction")
            #expect(stats.bytes <= maxBytes, "\(stats)")
        }
    }

    /// A reader copying pages (with the prefetch pass) while a writer installs, replaces and
    /// invalidates the same ids and the shards evict and grow: every part the reader gets is
    /// whole, one that some install wrote for that id. (Run under TSan and ASan by
    /// `scripts/sanitize`.)
    @Test func readersSeeWholePartsWhileWritersChangeThem() async {
        let cache = PartCache(maxBytes: 512 * 1024)
        let ids = (0..<UInt64(2_000)).map { (UInt64(1_700_000_000_000) << 22) | ($0 << 2) }
        /// A part that says which id and version it is: 8 bytes of id, 4 of version, then a
        /// pattern of both, so a torn or misplaced copy is seen.
        @Sendable func wholePart(_ id: UInt64, _ version: UInt32) -> [UInt8] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: id.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: version.littleEndian) { bytes.append(contentsOf: $0) }
            let length = 20 + Int((id >> 2) % 200)
            for i in 0..<length { bytes.append(UInt8(truncatingIfNeeded: UInt64(i) &+ id &+ UInt64(version) &* 13)) }
            return bytes
        }
        final class Flags: Sendable {
            let problems = Atomic<Int>(0)
            let stop = Atomic<Bool>(false)
        }
        let flags = Flags()
        // One writer and one reader (a task group's threads are as many as the cores, at
        // least two here): the writer goes on until the reader has read its pages.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var random = Generator(state: 1)
                var step = 0
                while !flags.stop.load(ordering: .relaxed) && step < 2_000_000 {
                    let id = ids[random.below(ids.count)]
                    if random.below(4) == 0 {
                        cache.invalidate(id)
                    } else {
                        cache.install(id, bytes: wholePart(id, UInt32(truncatingIfNeeded: step)), retweetOf: id &+ 1, quoteOf: nil,
                                      since: cache.stamp(id))
                    }
                    step += 1
                }
            }
            group.addTask {
                var random = Generator(state: 100)
                var out: [UInt8] = []
                for _ in 0..<4_000 {
                    let start = random.below(ids.count - 20)
                    let page = ids[start..<start + 20]
                    cache.prefetch(page)
                    for id in page {
                        out.removeAll(keepingCapacity: true)
                        guard let inside = cache.append(id, into: &out) else { continue }
                        let gotID = out.count >= 12 ? out.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } : 0
                        let version = out.count >= 12 ? out.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) } : 0
                        if gotID != id || out != wholePart(id, version) || inside.retweetOf != id &+ 1 || inside.quoteOf != nil {
                            flags.problems.add(1, ordering: .relaxed)
                        }
                    }
                }
                flags.stop.store(true, ordering: .relaxed)
            }
        }
        #expect(flags.problems.load(ordering: .relaxed) == 0)
        #expect(cache.statistics.bytes <= 512 * 1024)
        #expect(cache.statistics.hits > 1_000, "the readers found too few parts to check: \(cache.statistics)")
    }

    /// A part above a quarter of its shard's share is not kept; a zero budget keeps nothing.
    @Test func oversizedPartsAndAZeroBudget() {
        let cache = PartCache(maxBytes: 64 * 1024) // 1 KiB a shard
        cache.install(5, bytes: Self.part(5, version: 1, length: 400), retweetOf: nil, quoteOf: nil, since: cache.stamp(5))
        #expect(Self.read(cache, 5) == nil)
        cache.install(5, bytes: Self.part(5, version: 2, length: 100), retweetOf: 7, quoteOf: nil, since: cache.stamp(5))
        let found = Self.read(cache, 5)
        #expect(found?.bytes == Self.part(5, version: 2, length: 100) && found?.retweetOf == 7 && found?.quoteOf == nil)
        let none = PartCache(maxBytes: 0)
        none.install(5, bytes: [1, 2, 3], retweetOf: nil, quoteOf: nil, since: none.stamp(5))
        #expect(Self.read(none, 5) == nil)
        none.prefetch([5])
        #expect(none.statistics.entries == 0)
    }

    /// Tens of thousands of ids in one cache: the tables grow, and every id reads back.
    @Test func tablesGrowAndKeepEveryPart() {
        let cache = PartCache(maxBytes: 256 << 20)
        let ids = (0..<UInt64(50_000)).map { ($0 &* 0x1_0000_0001) ^ 0xABCD }
        for id in ids {
            cache.install(id, bytes: Self.part(id, version: 0, length: Int(id % 50)), retweetOf: nil, quoteOf: id, since: cache.stamp(id))
        }
        for (i, id) in ids.enumerated() where i % 3 == 0 { cache.invalidate(id) }
        cache.prefetch(ids.prefix(64))
        var problems = 0
        for (i, id) in ids.enumerated() {
            let found = Self.read(cache, id)
            if i % 3 == 0 {
                if found != nil { problems += 1 }
            } else if found?.bytes != Self.part(id, version: 0, length: Int(id % 50)) || found?.quoteOf != id {
                problems += 1
            }
        }
        #expect(problems == 0)
        #expect(cache.statistics.entries == ids.count - (ids.count + 2) / 3)
    }
}
