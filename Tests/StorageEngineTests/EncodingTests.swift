import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct VarintTests {
    @Test func roundTripsEdgeValues() {
        var values: [UInt64] = [0, 1, 127, 128, 255, 256, 16383, 16384, UInt64(UInt32.max), UInt64.max - 1, UInt64.max]
        for shift in 0..<64 { values.append(1 << UInt64(shift)); values.append((1 << UInt64(shift)) - 1) }
        for value in values {
            var bytes: [UInt8] = []
            Varint.append(value, to: &bytes)
            #expect(bytes.count == Varint.size(value))
            let decoded = bytes.withUnsafeBytes { Varint.read(from: $0, at: 0) }
            #expect(decoded?.value == value)
            #expect(decoded?.next == bytes.count)
            // The same through the raw-buffer writer.
            var raw = [UInt8](repeating: 0, count: 10)
            let end = raw.withUnsafeMutableBytes { Varint.write(value, to: $0, at: 0) }
            #expect(Array(raw[0..<end]) == bytes)
        }
    }

    @Test func rejectsTruncatedAndOverlongInput() {
        var bytes: [UInt8] = []
        Varint.append(UInt64.max, to: &bytes)
        for cut in 0..<bytes.count {
            let prefix = Array(bytes[0..<cut])
            #expect(prefix.withUnsafeBytes { Varint.read(from: $0, at: 0) } == nil)
        }
        let overlong = [UInt8](repeating: 0xFF, count: 11)
        #expect(overlong.withUnsafeBytes { Varint.read(from: $0, at: 0) } == nil)
        let overflow: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]
        #expect(overflow.withUnsafeBytes { Varint.read(from: $0, at: 0) } == nil)
    }
}

@Suite struct ChecksumTests {
    @Test func matchesPublishedXXH3Vectors() {
        // XXH3_64bits of the empty input with seed 0 (from xxHash's sanity tests).
        #expect(Checksum.xxh3([], seed: .generic) == 0x2D06_8005_38D3_94C2)
        let a = Checksum.xxh3(Array("socialdb".utf8), seed: .logRecord)
        let b = Checksum.xxh3(Array("socialdb".utf8), seed: .logSegmentHeader)
        #expect(a != b, "different seeds separate the uses")
    }

    @Test func detectsEverySingleBitFlip() {
        let bytes = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let sum = Checksum.xxh3(bytes)
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(Checksum.xxh3(flipped) != sum)
        }
    }
}

/// A clock a test moves by hand.
final class FakeClock: Sendable {
    let wall = Atomic<UInt64>(0)
    let monotonic = Atomic<UInt64>(0)
    /// Monotonic nanoseconds added on every read, so waits end.
    let step: UInt64

    init(wallMilliseconds: UInt64, monotonicStep: UInt64 = 100_000) {
        wall.store(wallMilliseconds, ordering: .relaxed)
        step = monotonicStep
    }

    func generator(node: UInt16 = 1) -> SnowflakeGenerator {
        SnowflakeGenerator(
            node: node,
            wallClockMilliseconds: { self.wall.load(ordering: .relaxed) },
            monotonicNanoseconds: { self.monotonic.wrappingAdd(self.step, ordering: .relaxed).newValue }
        )
    }
}

@Suite struct SnowflakeTests {
    let t0 = Snowflake.epochMilliseconds + 1_000_000

    @Test func layoutIs41TimeBits10NodeBits12SequenceBits() {
        let id = Snowflake(millisecondsSinceEpoch: 0x1_2345_6789, node: 0x2AB, sequence: 0xCDE)
        #expect(id.rawValue == (0x1_2345_6789 << 22) | (0x2AB << 12) | 0xCDE)
        #expect(id.millisecondsSinceEpoch == 0x1_2345_6789)
        #expect(id.node == 0x2AB)
        #expect(id.sequence == 0xCDE)
        let max = Snowflake(millisecondsSinceEpoch: Snowflake.maxMillisecondsSinceEpoch, node: 1023, sequence: 4095)
        #expect(max.rawValue == UInt64(Int64.max), "the top bit stays 0: ids are positive as signed integers")
    }

    @Test func carriesTheWallClockAndNode() {
        let clock = FakeClock(wallMilliseconds: t0)
        let id = clock.generator(node: 7).next()
        #expect(id.unixMilliseconds == t0)
        #expect(id.node == 7)
        #expect(id.sequence == 0)
    }

    @Test func strictlyIncreasesWhenTheClockStepsBack() {
        let clock = FakeClock(wallMilliseconds: t0)
        let generator = clock.generator()
        var last = generator.next()
        for step in 0..<10_000 {
            if step % 1000 == 999 { clock.wall.store(clock.wall.load(ordering: .relaxed) - 5_000, ordering: .relaxed) }
            if step % 7 == 0 { clock.wall.wrappingAdd(1, ordering: .relaxed) }
            let id = generator.next()
            #expect(id > last)
            last = id
        }
    }

    @Test func takesAtMost4096IdsPerMillisecond() {
        let clock = FakeClock(wallMilliseconds: t0)
        let generator = clock.generator()
        var ids: [Snowflake] = []
        for _ in 0..<(4096 * 3) { ids.append(generator.next()) }
        // The wall clock never moved, so the generator waited (on the monotonic clock) and
        // moved to the next millisecond after each 4096.
        for (i, id) in ids.enumerated() {
            #expect(id.millisecondsSinceEpoch == t0 - Snowflake.epochMilliseconds + UInt64(i / 4096))
            #expect(id.sequence == UInt16(i % 4096))
        }
    }

    @Test func waitsForTheWallClockWhenItIsAhead() {
        let clock = FakeClock(wallMilliseconds: t0, monotonicStep: 0) // monotonic never advances
        let generator = clock.generator()
        for _ in 0..<4096 { _ = generator.next() }
        // The 4097th must wait until the wall clock moves: move it from another thread.
        let mover = BackgroundThread {
            var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&ts, nil)
            clock.wall.wrappingAdd(3, ordering: .relaxed)
        }
        let id = generator.next()
        mover.join()
        #expect(id.millisecondsSinceEpoch == t0 - Snowflake.epochMilliseconds + 3)
        #expect(id.sequence == 0)
    }

    @Test func uniqueAcrossThreads() {
        let generator = SnowflakeGenerator(node: 3)
        let results = Mutex<[UInt64]>([])
        let threads = (0..<4).map { _ in
            BackgroundThread {
                var mine: [UInt64] = []
                for _ in 0..<20_000 { mine.append(generator.next().rawValue) }
                let increasing = mine == mine.sorted()
                results.withLock { $0.append(contentsOf: increasing ? mine : []) }
            }
        }
        threads.forEach { $0.join() }
        let all = results.withLock { $0 }
        #expect(all.count == 80_000, "each thread sees increasing ids")
        #expect(Set(all).count == all.count)
    }

    @Test func floorKeepsARestartAboveStoredIds() {
        let clock = FakeClock(wallMilliseconds: t0)
        let stored = Snowflake(millisecondsSinceEpoch: t0 - Snowflake.epochMilliseconds + 50, node: 1, sequence: 9)
        let generator = SnowflakeGenerator(
            node: 1, floor: stored,
            wallClockMilliseconds: { clock.wall.load(ordering: .relaxed) },
            monotonicNanoseconds: { clock.monotonic.wrappingAdd(100_000, ordering: .relaxed).newValue })
        #expect(generator.next() > stored)
    }
}
