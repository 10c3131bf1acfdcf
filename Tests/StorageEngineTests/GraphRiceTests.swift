@testable import StorageEngine
import Testing

/// Rice lists (`GraphRiceCodec`, the follower lists of format 6) through every reader of a coded
/// list, and format 6 bases: converted from and to format 5 by merges, deep-checked, and
/// refused when a byte of their follower lists is damaged.
@Suite struct GraphRiceTests {
    /// Codes `values` as a Rice list (with 0xAB after it past the padding, zeros in it) and runs
    /// every reader against them (`GraphCodecTests.check`).
    func roundTrip(_ values: [UInt32], _ random: inout SeededRandom, context: String) {
        let size = values.withUnsafeBufferPointer { GraphRiceCodec.encodedSize($0) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size + GraphCodec.paddingBytes, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size)
        (buffer + size).initializeMemory(as: UInt8.self, repeating: 0, count: GraphCodec.paddingBytes)
        let written = values.withUnsafeBufferPointer { GraphRiceCodec.encode($0, into: buffer) }
        #expect(written == size, "\(context): size")
        GraphCodecTests().check(GraphRiceCodec.self, buffer, size: size, values, &random, context: context)
    }

    @Test func everySmallLengthAndGapShape() {
        let seed = testSeed()
        print("GraphRiceTests seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        for count in 1...300 {
            for shape in 0..<5 {
                var values = Set<UInt32>()
                let span: UInt32 = [UInt32(count), UInt32(count) * 50, 1 << 20, UInt32.max, UInt32(count) * 3][shape]
                while values.count < count { values.insert(UInt32.random(in: 0...max(span, UInt32(count)), using: &random)) }
                var sorted = values.sorted()
                // Shape 4: dense, with one far gap at index 77 (a quotient over many words at small k).
                if shape == 4 { sorted = sorted.enumerated().map { i, v in i >= 77 ? v &+ (1 << 28) : v } }
                roundTrip(sorted, &random, context: "count \(count) shape \(shape) seed \(seed)")
            }
        }
    }

    /// Every parameter 0...31 (each has its own copy of the search loop): gaps of about 2^k,
    /// at lengths around the group (8) and block (128) edges.
    @Test func everyParameter() {
        var random = SeededRandom(seed: 64)
        var chosen = Set<Int>()
        for k in 0...31 {
            for count in [1, 2, 7, 8, 9, 16, 17, 100, 127, 128, 129, 137, 300] {
                var values: [UInt32] = []
                var v = UInt64(random.next() % 3)
                for _ in 0..<count {
                    values.append(UInt32(v))
                    v += random.next() % (UInt64(1) << UInt64(k + 1)) + 1
                    if v > UInt64(UInt32.max) { break }
                }
                chosen.insert(values.withUnsafeBufferPointer { GraphRiceCodec.parameter($0) })
                roundTrip(values, &random, context: "about 2^\(k), count \(count)")
            }
        }
        // 31 only for a first value of 3 * 2^30 or more (as the whole list).
        chosen.insert([UInt32.max].withUnsafeBufferPointer { GraphRiceCodec.parameter($0) })
        roundTrip([UInt32.max], &random, context: "k 31")
        #expect(chosen == Set(0...31), "parameters taken: \(chosen.sorted())")
    }

    @Test func extremeGaps() {
        var random = SeededRandom(seed: 9)
        roundTrip([0], &random, context: "zero")
        roundTrip([UInt32.max], &random, context: "max")
        roundTrip([0, UInt32.max], &random, context: "largest gap")
        roundTrip([UInt32.max - 1, UInt32.max], &random, context: "top two")
        roundTrip(Array(0..<1000), &random, context: "consecutive (k 0, gap 0)")
        roundTrip(Array((UInt32.max - 999)...UInt32.max), &random, context: "consecutive at the top")
        // Blocks of one value at the end (129 and 257 values), far first values.
        roundTrip(Array(0..<129), &random, context: "129")
        roundTrip(Array(UInt32(3_000_000_000)..<3_000_000_257), &random, context: "257 far up")
        roundTrip([4_000_000_000] + Array(4_000_000_001...4_000_000_127), &random, context: "far first value, then consecutive")
        roundTrip([0, 1 << 31, UInt32.max - 1, UInt32.max], &random, context: "sparse")
        var mixed: [UInt32] = []
        var v: UInt64 = 5
        for i in 0..<700 {
            mixed.append(UInt32(v))
            v += i % 100 == 3 ? 1 << 26 : UInt64(i % 3) + 1
        }
        roundTrip(mixed, &random, context: "mixed")
    }

    /// The encoder's parameter takes the fewest gap bits, and the directory holds the widths
    /// its largest value and offset need.
    @Test func parameterAndWidthsAreTheSmallest() {
        var random = SeededRandom(seed: 31)
        for count in [1, 2, 50, 128, 129, 300, 2000] {
            for span in [UInt32(count), UInt32(count) * 10, 1 << 24] {
                var set = Set<UInt32>()
                while set.count < count { set.insert(UInt32.random(in: 0...max(span, UInt32(count)), using: &random)) }
                let values = set.sorted()
                values.withUnsafeBufferPointer { v in
                    let k = GraphRiceCodec.parameter(v)
                    let bits = GraphRiceCodec.gapBits(v, k: k)
                    for other in 0...GraphRiceCodec.parameterMax {
                        #expect(GraphRiceCodec.gapBits(v, k: other) >= bits, "count \(count) span \(span): k \(other) beats \(k)")
                    }
                    let size = GraphRiceCodec.encodedSize(v)
                    if count <= 128 {
                        #expect(size == 1 + (bits + 7) / 8)
                    } else {
                        let layout = GraphRiceCodec.layout(v, k: k)
                        #expect(layout.valueWidth == 32 - values[(count - 1) / 128 * 128].leadingZeroBitCount)
                        #expect(size == layout.bytes)
                    }
                }
            }
        }
    }

    /// Random subsets (the shape of a follower list) take fewer bytes as Rice lists than as
    /// `GraphCodec` lists in the fast forms, and about what the every-form blocks take.
    @Test func smallerThanBlocksForRandomSubsets() {
        var random = SeededRandom(seed: 12)
        var rice = 0, fast = 0
        for _ in 0..<200 {
            let count = 1 + Int(random.next() % 2000)
            var set = Set<UInt32>()
            while set.count < count { set.insert(UInt32(random.next() % 1_000_000)) }
            let values = set.sorted()
            values.withUnsafeBufferPointer { v in
                rice += GraphRiceCodec.encodedSize(v)
                fast += GraphCodec.encodedSize(v, forms: .fast)
            }
        }
        #expect(rice * 100 < fast * 97, "Rice lists \(rice) bytes, fast blocks \(fast)")
    }

    // MARK: Format 6 bases

    static func randomModel(users: Int, _ random: inout SeededRandom) -> GraphModel {
        var model = GraphModel()
        for a in 0..<users {
            var targets: [UInt32] = []
            switch random.next() % 10 {
            case 0: break
            // Popular low numbers (long follower lists, escaped degrees, many blocks).
            case 1, 2: targets = (0..<(100 + Int(random.next() % 300))).map { _ in UInt32(random.next() % 400) }
            default: targets = (0..<Int(random.next() % 40)).map { _ in UInt32(random.next() % UInt64(users)) }
            }
            for b in targets where Int(b) != a { _ = model.set(UInt32(a), b, true) }
        }
        return model
    }

    /// A format 5 base merged into format 6 and a format 6 base into 5: every follower list
    /// decoded and coded again (following lists copied verbatim), answers as the model's,
    /// deep-verified clean; and a change after each conversion merged in place.
    @Test func basesConvertBothWays() throws {
        let seed = testSeed()
        print("GraphRiceTests.basesConvertBothWays seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        let users = 2500 + Int(random.next() % 40)
        var model = Self.randomModel(users: users, &random)
        let dir = TemporaryDirectory("graph-rice")
        let fs = try FileSystem(backend: .posix)
        func check(_ store: GraphStore, version: UInt32, _ context: String) {
            #expect(store.base.formatVersion == version, "\(context): version")
            let raw = UnsafeRawBufferPointer(store.base.image)
            #expect(GraphBase.verify(raw) == nil, "\(context)")
            let deep = GraphBase.deepVerify(raw).problems
            #expect(deep.isEmpty, "\(context): \(deep)")
            verifyAll(store, model, users: users, context: "\(context), seed \(seed)")
            for _ in 0..<20_000 {
                let a = UInt32(random.next() % UInt64(users)), b = UInt32(random.next() % 500)
                #expect(store.follows(a, b) == model.follows(a, b), "\(context): follows \(a) \(b), seed \(seed)")
            }
            for x in [UInt32(0), 1, 7, 399] {
                for u in [UInt32(3), 100, UInt32(users - 1)] {
                    let expected = model.following(u).filter { model.follows($0, x) }
                    #expect(store.followingWhoFollow(u, x) == expected, "\(context): following of \(u) who follow \(x)")
                }
            }
        }
        // Format 7 (the filtered followers index) from and into 5 and 6: filters computed from
        // decoded entries (5), from recoded lists (6), and copied with their entries (7 into 7).
        for (from, to) in [(UInt32(5), UInt32(6)), (6, 5), (5, 7), (7, 5), (6, 7), (7, 6)] {
            var edges = ContiguousArray(model.edges)
            let path = dir.path + "/from\(from)"
            do {
                let store = try GraphStore.open(directory: path, fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: from))
                try store.bulkLoad(&edges)
                check(store, version: from, "format \(from)")
                store.close()
            }
            let store = try GraphStore.open(directory: path, fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: to))
            // A change, so the merge builds a base (an empty overlay would only relabel it).
            var a = UInt32(random.next() % UInt64(users)), b = UInt32(random.next() % 400)
            while a == b || model.follows(a, b) { a = UInt32(random.next() % UInt64(users)); b = UInt32(random.next() % 400) }
            let followed = try store.follow(a, b)
            #expect(followed && model.set(a, b, true))
            try store.merge()
            check(store, version: to, "format \(from) merged into \(to)")
            // And one more change merged in place (entries copied verbatim this time).
            let unfollowed = try store.unfollow(a, b)
            #expect(unfollowed && model.set(a, b, false))
            try store.merge()
            check(store, version: to, "format \(to) merged again")
            store.close()
        }
    }

    /// A damaged byte in a format 6 base's follower lists fails the section checksum: the base
    /// is refused with the file named, and nothing of it is returned.
    @Test func damagedFollowerListsAreRefused() throws {
        var random = SeededRandom(seed: 4)
        let model = Self.randomModel(users: 600, &random)
        let dir = TemporaryDirectory("graph-rice-damage")
        let fs = try FileSystem(backend: .posix)
        do {
            let store = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil, buildOptions: .compact)
            var edges = ContiguousArray(model.edges)
            try store.bulkLoad(&edges)
            #expect(store.base.formatVersion == 6)
            store.close()
        }
        let path = dir.path + "/" + GraphFormat.fileName(generation: 1)
        var bytes = readWholeFile(path)
        let (offset, length) = bytes.withUnsafeBytes { raw in
            let footer = raw.count - GraphFormat.footerBytes
            return (Int(raw.loadLE(UInt64.self, at: footer + 3 * 24)), Int(raw.loadLE(UInt64.self, at: footer + 3 * 24 + 8)))
        }
        bytes[offset + length / 2] ^= 0x10
        writeWholeFile(path, bytes)
        do {
            _ = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil)
            Issue.record("a base with a damaged follower list was opened")
        } catch {
            #expect("\(error)".contains("section 3") && "\(error)".contains("checksum mismatch") && "\(error)".contains(path), "\(error)")
        }
    }

    /// Rice follower lists that pass every checksum (resealed after the damage) but break an
    /// invariant are reported by the deep check with their codes.
    @Test func malformedRiceListsAreReportedWithTheirCodes() {
        // Two users, 1 follows 0: user 0's follower list replaced by crafted bytes.
        func base(_ bytes: [UInt8], degree: Int = 1, following: [Int: [UInt32]] = [1: [0]]) -> [CheckCode] {
            DeepCheckTests.codes(DeepCheckTests.graphImage(users: 2, following: following, followers: [:],
                                                           codedFollowers: [0: (bytes, degree)], version: 6))
        }
        // [1] at k = 0: gap 1 from -1 is one zero bit, then the one bit.
        #expect(base([0x00, 0x02]).isEmpty, "the crafted Rice list [1] is sound")
        #expect(base([0x20, 0x02]) == [.graphListMalformed], "parameter 32")
        #expect(base([0x00]) == [.graphListLength], "a quotient without its bits")
        #expect(base([0x00, 0x00]) == [.graphListLength], "a quotient without its one bit")
        #expect(base([0x00, 0x06]).contains(.graphListLength), "a non-zero bit after the quotient")
        #expect(base([0x00, 0x02, 0x00]) == [.graphListLength], "a byte after the list")
        #expect(base([0x00, 0x08]) == [.graphListRange], "user 3 of 2")
        #expect(base([0x00, 0x01]) == [.graphDirections], "0 follows 0, but 1 follows 0")
        // [1] at k = 1: low bit 1, then quotient 0 (one bit): bits 1, 1.
        #expect(base([0x01, 0x03]).isEmpty, "the crafted Rice list [1] at k 1 is sound")
        // A value past UInt32: UInt32.max at k = 31 (q 1, low 2^31 - 1) then gap 0.
        // Lows: 31 one bits, then 31 zero bits; quotients: 0 1 (q 1), then 1 (q 0).
        let two: [Int: [UInt32]] = [0: [1], 1: [0]]
        #expect(base([0x1F, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x00, 0x80, 0x01], degree: 2, following: two).first == .graphListRange)

        // A long list (user 0 followed by everyone): damage in its directory.
        let users = 300
        var following: [Int: [UInt32]] = [:]
        for u in 1..<users { following[u] = [0] }
        let list = (1..<users).map { UInt32($0) }
        var coded = [UInt8](repeating: 0, count: 4)
        coded.withUnsafeMutableBytes { $0.storeLE(UInt32(list.count), at: 0) }
        list.withUnsafeBufferPointer { v in
            var out = [UInt8](repeating: 0, count: GraphRiceCodec.encodedSize(v))
            out.withUnsafeMutableBytes { _ = GraphRiceCodec.encode(v, into: $0.baseAddress!) }
            coded += out
        }
        func long(_ bytes: [UInt8]) -> [CheckCode] {
            DeepCheckTests.codes(DeepCheckTests.graphImage(users: users, following: following, followers: [:],
                                                           codedFollowers: [0: (bytes, list.count)], version: 6))
        }
        #expect(long(coded).isEmpty, "the long Rice list is sound")
        // Header after the escape: k at 4, value width at 5, offset width at 6, directory at 7.
        var widths = coded
        widths[5] = 33
        #expect(long(widths) == [.graphListMalformed], "value width 33")
        var order = coded
        // Block 1's first value (after block 0's value and offset) set to 1, below block 0's last.
        let valueWidth = Int(coded[5]), offsetWidth = Int(coded[6])
        order.withUnsafeMutableBytes { raw in
            var bit = 7 * 8 + valueWidth + offsetWidth
            for i in 0..<valueWidth {
                let byte = bit >> 3, mask = UInt8(1) << UInt8(bit & 7)
                if i == 0 { raw[byte] |= mask } else { raw[byte] &= ~mask }
                bit += 1
            }
        }
        #expect(long(order) == [.graphListOrder], "a block starting below the one before")
        var shifted = coded
        shifted.withUnsafeMutableBytes { raw in
            // Block 0's offset's lowest bit set: the first body not right after the directory.
            let bit = 7 * 8 + valueWidth
            raw[bit >> 3] |= UInt8(1) << UInt8(bit & 7)
        }
        #expect(long(shifted) == [.graphListMalformed], "block 0 not right after the directory")
    }
}
