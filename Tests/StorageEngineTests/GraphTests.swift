@testable import StorageEngine
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The model of the follow graph the store is checked against: a set of (follower, followee).
struct GraphModel {
    var edges = Set<UInt64>()
    var followingOf: [UInt32: Set<UInt32>] = [:]
    var followersOf: [UInt32: Set<UInt32>] = [:]

    func key(_ a: UInt32, _ b: UInt32) -> UInt64 { UInt64(a) << 32 | UInt64(b) }
    func follows(_ a: UInt32, _ b: UInt32) -> Bool { edges.contains(key(a, b)) }
    mutating func set(_ a: UInt32, _ b: UInt32, _ present: Bool) -> Bool {
        if present {
            guard edges.insert(key(a, b)).inserted else { return false }
            followingOf[a, default: []].insert(b)
            followersOf[b, default: []].insert(a)
        } else {
            guard edges.remove(key(a, b)) != nil else { return false }
            followingOf[a]?.remove(b)
            followersOf[b]?.remove(a)
        }
        return true
    }
    func following(_ u: UInt32) -> [UInt32] { (followingOf[u] ?? []).sorted() }
    func followers(_ u: UInt32) -> [UInt32] { (followersOf[u] ?? []).sorted() }
    func followerCount(_ u: UInt32) -> Int { followersOf[u]?.count ?? 0 }

    /// Lists per user in both directions, in one pass.
    func lists(users: Int) -> (following: [[UInt32]], followers: [[UInt32]]) {
        var following = Array(repeating: [UInt32](), count: users)
        var followers = Array(repeating: [UInt32](), count: users)
        for e in edges.sorted() {
            let a = Int(e >> 32), b = Int(UInt32(truncatingIfNeeded: e))
            following[a].append(UInt32(b))
            followers[b].append(UInt32(a))
        }
        for i in 0..<users { followers[i].sort() }
        return (following, followers)
    }
}

func verifyAll(_ store: GraphStore, _ model: GraphModel, users: Int, context: String) {
    let (following, followers) = model.lists(users: users)
    var buffer = ContiguousArray<UInt32>()
    for u in 0..<users {
        let user = UInt32(u)
        #expect(store.followingCount(user) == following[u].count, "\(context): following count of \(u)")
        #expect(store.followerCount(user) == followers[u].count, "\(context): follower count of \(u)")
        #expect(store.following(of: user, limit: Int.max) == following[u], "\(context): following of \(u)")
        var seen: [UInt32] = []
        store.forEachFollower(of: user) { seen.append($0) }
        #expect(seen == followers[u], "\(context): followers of \(u)")
        store.copyFollowers(of: user, into: &buffer)
        #expect(Array(buffer) == followers[u], "\(context): copied followers of \(u)")
    }
    #expect(store.statistics().edges == model.edges.count, "\(context): edge count")
}

@Suite struct GraphCodecTests {
    func roundTrip(_ values: [UInt32], _ random: inout SeededRandom, context: String) {
        let size = values.withUnsafeBufferPointer { GraphCodec.encodedSize($0) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size + GraphCodec.paddingBytes, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size + GraphCodec.paddingBytes)
        let written = values.withUnsafeBufferPointer { GraphCodec.encode($0, into: buffer) }
        #expect(written == size, "\(context): size")
        check(buffer, size: size, values, &random, context: context)
    }

    /// Every reader of a coded list (`size` bytes at `buffer`, padding after it) against the
    /// values it must hold: whole decode, scan, forEach, membership of each value and its
    /// neighbours, intersection, scans and pages after cursors, and the deep check's decoder.
    func check(_ buffer: UnsafeMutableRawPointer, size: Int, _ values: [UInt32], _ random: inout SeededRandom, context: String) {
        check(GraphCodec.self, buffer, size: size, values, &random, context: context)
    }

    func check<C: AdjacencyBlockCodec>(_ codec: C.Type, _ buffer: UnsafeMutableRawPointer, size: Int, _ values: [UInt32],
                                       _ random: inout SeededRandom, context: String) {
        var checked: [UInt32] = []
        let problem = C.checkedDecode(UnsafeRawBufferPointer(start: buffer, count: size), count: values.count, into: &checked)
        #expect(problem == nil && checked == values, "\(context): checked decode \(String(describing: problem))")
        var decoded = [UInt32](repeating: 0, count: values.count)
        decoded.withUnsafeMutableBufferPointer { C.decode(buffer, count: values.count, into: $0.baseAddress!) }
        #expect(decoded == values, "\(context): decode")
        var scanned: [UInt32] = []
        C.scan(buffer, count: values.count, after: nil) { scanned.append($0); return true }
        #expect(scanned == values, "\(context): scan")
        var visited: [UInt32] = []
        C.forEach(buffer, count: values.count) { visited.append($0) }
        #expect(visited == values, "\(context): forEach")
        // Membership of every value and of its neighbours: the search adds up groups of 8 gaps
        // and walks into a group only at the end, so every position in a group is checked.
        let members = Set(values)
        for v in values {
            #expect(C.contains(buffer, count: values.count, v), "\(context): contains \(v)")
            for near in [v &- 1, v &+ 1] where !members.contains(near) {
                #expect(!C.contains(buffer, count: values.count, near), "\(context): not \(near)")
            }
        }
        // Intersection with sorted probes: some values of the list, some anything.
        var probeSet = Set<UInt32>()
        for v in values where Bool.random(using: &random) && probeSet.count < 300 { probeSet.insert(v) }
        let span = (values.last ?? 0) &+ 2
        for _ in 0..<50 { probeSet.insert(UInt32.random(in: 0...max(span, 1), using: &random)) }
        let probes = probeSet.sorted()
        var met: [UInt32] = []
        probes.withUnsafeBufferPointer { p in C.intersect(p, buffer, count: values.count) { met.append($0); return true } }
        let valueSet = Set(values)
        #expect(met == probes.filter { valueSet.contains($0) }, "\(context): intersect")
        // Few probes for the list's length: blocks holding one or two are searched, not decoded.
        var sparseSet = Set<UInt32>()
        for _ in 0..<Int.random(in: 1...max(1, values.count / 64), using: &random) {
            sparseSet.insert(Bool.random(using: &random) && !values.isEmpty ? values.randomElement(using: &random)!
                                                                            : UInt32.random(in: 0...max(span, 1), using: &random))
        }
        let sparse = sparseSet.sorted()
        var sparseMet: [UInt32] = []
        sparse.withUnsafeBufferPointer { p in C.intersect(p, buffer, count: values.count) { sparseMet.append($0); return true } }
        #expect(sparseMet == sparse.filter { valueSet.contains($0) }, "\(context): sparse intersect")
        for _ in 0..<20 {
            let probe = UInt32.random(in: 0...UInt32.max, using: &random)
            let cursor = values.isEmpty ? probe : (Bool.random(using: &random) ? values.randomElement(using: &random)! : probe)
            #expect(C.contains(buffer, count: values.count, probe) == values.contains(probe), "\(context): probe \(probe)")
            var after: [UInt32] = []
            C.scan(buffer, count: values.count, after: cursor) { after.append($0); return after.count < 200 }
            #expect(after == Array(values.filter { $0 > cursor }.prefix(200)), "\(context): after \(cursor)")
            // A page through copy (what followers(of:after:limit:) returns for a base list).
            let limit = Int(random.next() % 300) + 1
            let pageAfter: UInt32? = Bool.random(using: &random) ? cursor : nil
            let page = [UInt32](unsafeUninitializedCapacity: limit) { out, initialized in
                initialized = C.copy(buffer, count: values.count, after: pageAfter, limit: limit, into: out.baseAddress!)
            }
            let expectedPage = Array(values.filter { pageAfter == nil || $0 > pageAfter! }.prefix(limit))
            #expect(page == expectedPage, "\(context): copy after \(String(describing: pageAfter)) limit \(limit)")
        }
    }

    @Test func everySmallLengthAndGapShape() {
        let seed = testSeed()
        print("GraphCodecTests seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        for count in 1...300 {
            for shape in 0..<4 {
                var values = Set<UInt32>()
                let span: UInt32 = [UInt32(count), UInt32(count) * 50, 1 << 20, UInt32.max][shape]
                while values.count < count { values.insert(UInt32.random(in: 0...max(span, UInt32(count)), using: &random)) }
                roundTrip(values.sorted(), &random, context: "count \(count) shape \(shape) seed \(seed)")
            }
        }
    }

    /// Every packed width 0...32 has its own copy of the unpack and search loops (groups of 8
    /// gaps, then a tail): lists whose gaps span each width exactly, at lengths around the
    /// group and block boundaries.
    @Test func everyBitWidth() {
        var random = SeededRandom(seed: 32)
        for width in 0...32 {
            // The widest gap of this width (2^31 at 32: a gap is at most 2^32 - 2). Wide lists
            // end where the next value would pass 2^32 - 1 (at width 32, after two or three).
            let largest: UInt64 = width == 0 ? 0 : width == 32 ? 1 << 31 : (1 << UInt64(width)) - 1
            for count in [1, 2, 8, 9, 10, 16, 17, 100, 127, 128, 129, 136, 137, 300] {
                var values: [UInt32] = []
                var v = UInt64(random.next() % 1000)
                for i in 0..<count {
                    values.append(UInt32(v))
                    // The largest gap once a block, the rest anywhere below it.
                    let gap = i % 128 == 1 ? largest : (largest == 0 ? 0 : random.next() % (largest + 1))
                    v += gap + 1
                    if v > UInt64(UInt32.max) { break }
                }
                roundTrip(values, &random, context: "width \(width) count \(count)")
            }
        }
    }

    /// `groupSum` (8 gaps added in place, per width) against the 8 gaps extracted one by one,
    /// on random bytes, including all-ones groups (the largest sums).
    @Test func groupSumsEveryWidth() {
        var random = SeededRandom(seed: 88)
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 48, alignment: 8)
        defer { bytes.deallocate() }
        func check<let w: Int>(_ width: BitWidth<w>) {
            let mask: UInt64 = (1 << UInt64(w)) &- 1
            for round in 0..<200 {
                for i in 0..<48 { bytes.storeBytes(of: round == 0 ? 0xFF : UInt8(truncatingIfNeeded: random.next()), toByteOffset: i, as: UInt8.self) }
                var expected: UInt32 = 0
                for j in 0..<8 { expected &+= GraphCodec.gap(bytes, bit: j * w, mask: mask) }
                #expect(GraphCodec.groupSum(bytes, width, mask: mask) == expected, "width \(w) round \(round)")
            }
        }
        check(BitWidth<0>()); check(BitWidth<1>()); check(BitWidth<2>()); check(BitWidth<3>()); check(BitWidth<4>())
        check(BitWidth<5>()); check(BitWidth<6>()); check(BitWidth<7>()); check(BitWidth<8>()); check(BitWidth<9>())
        check(BitWidth<10>()); check(BitWidth<11>()); check(BitWidth<12>()); check(BitWidth<13>()); check(BitWidth<14>())
        check(BitWidth<15>()); check(BitWidth<16>()); check(BitWidth<17>()); check(BitWidth<24>()); check(BitWidth<31>())
        check(BitWidth<32>())
    }

    /// Varint blocks of mostly one-byte gaps with some longer ones (membership sums 8 one-byte
    /// gaps at a time and falls back to one varint where a longer one sits among them).
    @Test func varintRuns() {
        var random = SeededRandom(seed: 77)
        for count in 1...300 {
            var values: [UInt32] = []
            var v = UInt64(random.next() % 100)
            for i in 0..<count {
                values.append(UInt32(v))
                let r = random.next() % 100
                // One far gap a block makes it varint-coded (packed would cost 25 bits a gap).
                let gap = i % 128 == 64 ? UInt64(1 << 24) : r < 85 ? random.next() % 128 : r < 97 ? 128 + random.next() % 16_000 : random.next() % (1 << 21)
                v += gap + 1
            }
            roundTrip(values, &random, context: "varint runs count \(count)")
        }
    }

    /// Codes `values` as one block per 128 with every block's body written by `body` (a forced
    /// form, as the encoder writes it when that form is the one it takes), padded.
    func forcedCoded(_ values: [UInt32], body: (UnsafeBufferPointer<UInt32>, Int, Int, UnsafeMutableRawPointer) -> Int) -> (UnsafeMutableRawPointer, Int) {
        let blocks = (values.count + 127) / 128
        let capacity = values.count * 600 + 64 + GraphCodec.paddingBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB, count: capacity)
        var at = 0
        values.withUnsafeBufferPointer { v in
            if blocks == 1 {
                var first = UInt64(v[0])
                while first >= 0x80 { buffer.storeBytes(of: UInt8(truncatingIfNeeded: first) | 0x80, toByteOffset: at, as: UInt8.self); first >>= 7; at += 1 }
                buffer.storeBytes(of: UInt8(first), toByteOffset: at, as: UInt8.self)
                at += 1
                at += body(v, 0, v.count, buffer + at)
            } else {
                at = blocks * 8
                for b in 0..<blocks {
                    let start = b * 128, end = min(v.count, start + 128)
                    buffer.storeBytes(of: v[start].littleEndian, toByteOffset: b * 8, as: UInt32.self)
                    buffer.storeBytes(of: UInt32(at).littleEndian, toByteOffset: b * 8 + 4, as: UInt32.self)
                    at += body(v, start, end, buffer + at)
                }
            }
        }
        precondition(at + GraphCodec.paddingBytes <= capacity)
        (buffer + at).initializeMemory(as: UInt8.self, repeating: 0, count: GraphCodec.paddingBytes)
        return (buffer, at)
    }

    func riceCoded(_ values: [UInt32], k: Int) -> (UnsafeMutableRawPointer, Int) {
        forcedCoded(values) { v, start, end, out in
            GraphCodec.encodeRice(v, from: start, to: end, k: k, bytes: (GraphCodec.riceBits(v, from: start, to: end, k: k) + 7) / 8, into: out)
        }
    }

    func adaptiveCoded(_ values: [UInt32], k0: Int) -> (UnsafeMutableRawPointer, Int) {
        forcedCoded(values) { v, start, end, out in
            GraphCodec.encodeAdaptive(v, from: start, to: end, k0: k0, bytes: (GraphCodec.adaptiveBits(v, from: start, to: end, k0: k0) + 7) / 8, into: out)
        }
    }

    func modeByte(_ buffer: UnsafeMutableRawPointer, _ values: [UInt32]) -> UInt8 {
        buffer.load(fromByteOffset: values.count > 128 ? ((values.count + 127) / 128) * 8 : Varint.size(UInt64(values[0])), as: UInt8.self)
    }

    /// Every adaptive Rice start 0...31 through every reader: gaps that grow along the list
    /// from 2^k0 (the parameter climbs) and fall back, with zeros and rare far gaps (quotients
    /// past 56 bits, a load without a one bit), at lengths around the group and block edges.
    @Test func everyAdaptiveStart() {
        var random = SeededRandom(seed: 60)
        for k0 in 0...GraphCodec.riceParameterMax {
            for count in [1, 2, 3, 4, 5, 9, 17, 57, 100, 128, 129, 300] {
                var values: [UInt32] = []
                var v = UInt64(random.next() % 1000)
                var scale = Double(UInt64(1) << UInt64(k0))
                var state = GraphCodec.AdaptiveRice(initial: k0)
                for i in 0..<count {
                    values.append(UInt32(v))
                    let r = random.next() % 100
                    var gap = UInt64(Double(random.next() % 1000) / 1000 * scale * 2)
                    if r < 5 { gap = 0 } else if r < 8 { gap = UInt64(scale) * (60 + random.next() % 100) }
                    scale = i % 60 < 40 ? min(scale * 1.3, 1e9) : max(scale / 1.5, 1)
                    gap = min(gap, UInt64(UInt32.max) - 1)
                    // The gap to value i + 1 is coded in the block of i + 1 unless that starts a
                    // block; a block starts from k0. Quotients stay below 300 bits (the test's
                    // buffer), far past a 56-bit load all the same.
                    if i % 128 == 0 { state = GraphCodec.AdaptiveRice(initial: k0) }
                    if (i + 1) % 128 != 0 {
                        let k = state.parameter()
                        if gap >> UInt64(k) > 300 { gap = 300 << UInt64(k) | (gap & ((1 << UInt64(k)) - 1)) }
                        state.update(gap)
                    }
                    v += gap + 1
                    if v > UInt64(UInt32.max) { break }
                }
                let (buffer, size) = adaptiveCoded(values, k0: k0)
                defer { buffer.deallocate() }
                if values.count > 1 {
                    #expect(modeByte(buffer, values) == GraphCodec.adaptiveMode + UInt8(k0), "k0 \(k0) count \(count)")
                }
                check(buffer, size: size, values, &random, context: "adaptive k0 \(k0) count \(count)")
            }
        }
    }

    /// A following-shaped list (draws from a power law over user numbers: close together among
    /// the low numbers, ever further apart above) is written in adaptive Rice codes, at least a
    /// bit a gap smaller than Rice, packed or varints.
    @Test func adaptiveForPowerLawDraws() {
        // A fixed seed: which form is smallest for one draw is a matter of chance at the margin.
        let seed: UInt64 = 2010
        var random = SeededRandom(seed: seed)
        for count in [40, 80, 128, 1000] {
            var set = Set<UInt32>()
            while set.count < count {
                let u = Double(random.next() >> 11) / Double(1 << 53)
                set.insert(UInt32(200 * pow(5001.0, u) - 200))
            }
            let values = set.sorted()
            // Lists of a block, as most following lists are: a longer list's blocks each span
            // a narrower range of the law, which one Rice parameter fits (checked by the round trip).
            if count <= 128 { values.withUnsafeBufferPointer { v in
                let start = 0, end = count
                let form = GraphCodec.bodyForm(v, from: start, to: end)
                guard case .adaptive = form.form else { Issue.record("count \(count): \(form.form) taken"); return }
                let others = min((GraphCodec.riceParameter(v, from: start, to: end).bits + 7) / 8, GraphCodec.varintBytes(v, from: start, to: end),
                                 ((end - start - 1) * GraphCodec.blockWidth(v, from: start, to: end) + 7) / 8)
                #expect(form.bytes + (end - start - 1) / 8 < others, "count \(count)")
            } }
            roundTrip(values, &random, context: "power-law draws \(count) seed \(seed)")
        }
    }

    /// Every Rice parameter 0...31 through every reader (the unpack loops have a copy per
    /// parameter): gaps around 2^k with quotients 0 to a few, some far larger (runs of more than
    /// 56 zero bits, a word without a one bit), at lengths around the group and block edges.
    @Test func everyRiceParameter() {
        var random = SeededRandom(seed: 31)
        for k in 0...GraphCodec.riceParameterMax {
            for count in [1, 2, 8, 9, 10, 16, 17, 57, 100, 127, 128, 129, 136, 137, 300] {
                var values: [UInt32] = []
                var v = UInt64(random.next() % 1000)
                for i in 0..<count {
                    values.append(UInt32(v))
                    let low = k == 0 ? 0 : random.next() & ((1 << UInt64(k)) - 1)
                    let r = random.next() % 100
                    var quotient: UInt64 = r < 60 ? random.next() % 3 : r < 95 ? random.next() % 12 : 56 + random.next() % 200
                    if i % 50 == 3 { quotient = 0 }
                    // A gap stays below 2^32 and the list below UInt32.max.
                    while quotient > 0 && (quotient << UInt64(k) | low) >= UInt64(UInt32.max) { quotient >>= 1 }
                    v += (quotient << UInt64(k) | low) + 1
                    if v > UInt64(UInt32.max) { break }
                }
                let (buffer, size) = riceCoded(values, k: k)
                defer { buffer.deallocate() }
                if values.count > 1 {
                    #expect(modeByte(buffer, values) == GraphCodec.riceMode + UInt8(k), "k \(k) count \(count)")
                }
                check(buffer, size: size, values, &random, context: "Rice k \(k) count \(count)")
            }
        }
    }

    /// Random subsets (the shape of a follower list: geometric gaps) are Rice-coded by the
    /// encoder, at the parameter that takes the fewest bits, and smaller than packed or varints.
    @Test func riceForRandomSubsets() {
        let seed = testSeed()
        print("GraphCodecTests.riceForRandomSubsets seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        for (count, span) in [(100, UInt32(1_000_000)), (128, 5_000), (1000, 10_000_000), (5000, 4_000_000_000)] {
            var set = Set<UInt32>()
            while set.count < count { set.insert(UInt32.random(in: 0...span, using: &random)) }
            let values = set.sorted()
            values.withUnsafeBufferPointer { v in
                let end = min(count, 128)
                let (k, bits) = GraphCodec.riceParameter(v, from: 0, to: end)
                for other in 0...GraphCodec.riceParameterMax {
                    #expect(GraphCodec.riceBits(v, from: 0, to: end, k: other) >= bits, "count \(count): k \(other) beats the chosen \(k)")
                }
                #expect((bits + 7) / 8 < ((end - 1) * GraphCodec.blockWidth(v, from: 0, to: end) + 7) / 8, "count \(count): Rice beats packed")
                let size = GraphCodec.encodedSize(v)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: size + GraphCodec.paddingBytes, alignment: 8)
                defer { buffer.deallocate() }
                GraphCodec.encode(v, into: buffer)
                let modeAt = count > 128 ? ((count + 127) / 128) * 8 : Varint.size(UInt64(v[0]))
                #expect(buffer.load(fromByteOffset: modeAt, as: UInt8.self) == GraphCodec.riceMode + UInt8(k), "count \(count): block 0 is Rice at k \(k)")
            }
            roundTrip(values, &random, context: "random subset \(count) of \(span) seed \(seed)")
        }
    }

    /// `Forms.fast` (the base's long follower lists) writes only packed and varint bodies, of
    /// the size `encodedSize` says, which every reader decodes; `all` is never larger.
    @Test func fastFormsOnly() {
        var random = SeededRandom(seed: 5)
        for count in [2, 50, 128, 129, 1000, 3000] {
            var set = Set<UInt32>()
            while set.count < count { set.insert(UInt32(random.next() % 2_000_000)) }
            let values = set.sorted()
            values.withUnsafeBufferPointer { v in
                let size = GraphCodec.encodedSize(v, forms: .fast)
                #expect(GraphCodec.encodedSize(v, forms: .all) <= size)
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: size + GraphCodec.paddingBytes, alignment: 8)
                defer { buffer.deallocate() }
                buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size + GraphCodec.paddingBytes)
                #expect(GraphCodec.encode(v, into: buffer, forms: .fast) == size)
                let blocks = (count + 127) / 128
                for b in 0..<blocks {
                    let modeAt = blocks == 1 ? Varint.size(UInt64(v[0])) : Int(buffer.load(fromByteOffset: b * 8 + 4, as: UInt32.self))
                    let mode = buffer.load(fromByteOffset: modeAt, as: UInt8.self)
                    #expect(mode <= 32 || mode == GraphCodec.varintMode, "count \(count) block \(b): mode \(mode)")
                }
                var copy = random
                check(buffer, size: size, values, &copy, context: "fast forms \(count)")
            }
        }
    }

    @Test func extremeGaps() {
        var random = SeededRandom(seed: 7)
        roundTrip([0], &random, context: "zero")
        roundTrip([UInt32.max], &random, context: "max")
        roundTrip([0, UInt32.max], &random, context: "largest gap")
        roundTrip(Array(0..<1000), &random, context: "consecutive (gap 0)")
        roundTrip(Array((UInt32.max - 999)...UInt32.max), &random, context: "consecutive at the top")
        var mixed: [UInt32] = [0]
        for i in 1..<400 { mixed.append(i % 128 == 5 ? UInt32.max - UInt32(400 - i) * 2 : mixed[i - 1] + 1) }
        roundTrip(mixed.sorted().reduce(into: [UInt32]()) { if $0.last != $1 { $0.append($1) } }, &random, context: "mixed")
        roundTrip([0, 1 << 31, UInt32.max - 1, UInt32.max], &random, context: "sparse")
    }

    @Test func varintBlocksWhenSmaller() {
        var random = SeededRandom(seed: 11)
        // One far gap among consecutive values: packed at 30 bits each, or 48 one-byte varints
        // and one of five bytes.
        let skewed = Array(UInt32(0)..<49) + [1 << 30]
        let size = skewed.withUnsafeBufferPointer { GraphCodec.encodedSize($0) }
        #expect(size == 1 + 1 + 48 + 5)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size + GraphCodec.paddingBytes, alignment: 8)
        defer { buffer.deallocate() }
        _ = skewed.withUnsafeBufferPointer { GraphCodec.encode($0, into: buffer) }
        #expect(buffer.load(fromByteOffset: 1, as: UInt8.self) == GraphCodec.varintMode)
        roundTrip(skewed, &random, context: "skewed small")
        // Long lists: varint and packed blocks side by side, each block choosing.
        var long: [UInt32] = []
        var v: UInt32 = 3
        for i in 0..<1000 {
            long.append(v)
            v += (i / 128) % 2 == 0 ? (i % 40 == 0 ? 1 << 24 : 1) : UInt32(50 + i % 7)
        }
        roundTrip(long, &random, context: "mixed blocks")
    }

    @Test func oldFormatVersionIsRejected() throws {
        let dir = TemporaryDirectory("graph-version")
        let fs = try FileSystem(backend: .posix)
        do {
            let store = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil)
            var edges: ContiguousArray<UInt64> = [1 << 32 | 2, 2 << 32 | 1]
            try store.bulkLoad(&edges)
            store.close()
        }
        let path = dir.path + "/" + GraphFormat.fileName(generation: 1)
        var bytes = readWholeFile(path)
        bytes[8] = 1
        writeWholeFile(path, bytes)
        do {
            _ = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil)
            Issue.record("a version 1 base was opened")
        } catch {
            #expect("\(error)".contains("unknown format version 1"), "\(error)")
        }
    }

    /// A version 3 base (no Rice bodies) opens as it is, answers, and merges into a version 5
    /// base with its lists copied verbatim.
    @Test func versionThreeBaseIsRead() throws {
        let dir = TemporaryDirectory("graph-version-3")
        let fs = try FileSystem(backend: .posix)
        do {
            // Written as version 4 (the same index as 3), then relabeled 3.
            let store = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: 4, denseFollowingMax: 0))
            // Consecutive and far numbers only: packed and varint bodies, as version 3 wrote them.
            var edges: ContiguousArray<UInt64> = [1 << 32 | 2, 2 << 32 | 1, 1 << 32 | 3, 1 << 32 | 400, 3 << 32 | 1]
            try store.bulkLoad(&edges)
            store.close()
        }
        let path = dir.path + "/" + GraphFormat.fileName(generation: 1)
        var bytes = readWholeFile(path)
        #expect(bytes[8] == 4)
        bytes[8] = 3
        bytes.withUnsafeMutableBytes { raw in
            raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<56]), seed: GraphFormat.headerSeed), at: 56)
        }
        writeWholeFile(path, bytes)
        let store = try GraphStore.open(directory: dir.path, fileSystem: fs, log: nil)
        #expect(store.follows(1, 2) && store.follows(1, 400) && store.follows(3, 1) && !store.follows(2, 3))
        #expect(store.following(of: 1, after: nil, limit: 10) == [2, 3, 400])
        try store.follow(2, 3)
        _ = try store.merge()
        #expect(store.follows(2, 3) && store.follows(1, 400))
        #expect(store.base.formatVersion == GraphFormat.defaultVersion)
        store.close()
    }

    /// Format 5's grouped index against the model and beside format 4, over entries of every
    /// kind: users without lists, short entries, long ones (255 bytes or more), escaped degrees
    /// in short entries (runs of consecutive users) and in long ones, a last group cut short by
    /// the user count. Then bases converted both ways by merges (untouched entries copied
    /// verbatim), each deep-verified clean and answering as the model does.
    @Test func groupedIndexMatchesTheModel() throws {
        let seed = testSeed()
        print("GraphStoreTests.groupedIndexMatchesTheModel seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        let users = 3000 + Int(random.next() % 16)
        var model = GraphModel()
        for a in 0..<users {
            var targets: [UInt32] = []
            switch random.next() % 10 {
            case 0: break
            case 1: targets = (0..<300).map { UInt32(($0 + a + 1) % users) }
            case 2: targets = (0..<(350 + Int(random.next() % 300))).map { _ in UInt32(random.next() % UInt64(users)) }
            case 3: targets = (0..<60).map { UInt32($0) }
            default: targets = (0..<Int(random.next() % 40)).map { _ in UInt32(random.next() % UInt64(users)) }
            }
            for b in targets where Int(b) != a { _ = model.set(UInt32(a), b, true) }
        }
        let dir = TemporaryDirectory("graph-grouped")
        let fs = try FileSystem(backend: .posix)
        func check(_ store: GraphStore, version: UInt32, _ context: String) {
            #expect(store.base.formatVersion == version, "\(context): version")
            let raw = UnsafeRawBufferPointer(store.base.image)
            #expect(GraphBase.verify(raw) == nil, "\(context)")
            #expect(GraphBase.deepVerify(raw).problems.isEmpty, "\(context): \(GraphBase.deepVerify(raw).problems)")
            verifyAll(store, model, users: users, context: "\(context), seed \(seed)")
            for _ in 0..<20_000 {
                let a = UInt32(random.next() % UInt64(users)), b = UInt32(random.next() % UInt64(users))
                #expect(store.follows(a, b) == model.follows(a, b), "\(context): follows \(a) \(b), seed \(seed)")
            }
        }
        var edges = ContiguousArray(model.edges)
        let v4 = try GraphStore.open(directory: dir.path + "/v4", fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: 4))
        try v4.bulkLoad(&edges)
        check(v4, version: 4, "format 4")
        edges = ContiguousArray(model.edges)
        let v5 = try GraphStore.open(directory: dir.path + "/v5", fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: 5))
        try v5.bulkLoad(&edges)
        check(v5, version: 5, "format 5")
        // Every kind of entry occurred.
        var long = 0, short = 0, escapedShort = 0
        for direction in 0..<2 {
            GraphFormat.forEachEntry(UnsafeRawBufferPointer(v5.base.image), direction: direction) { _, _, bytes, degree in
                if bytes > GraphFormat.shortEntryBytesMax { long += 1 } else if bytes > 0 { short += 1 }
                if degree == 255 && bytes <= GraphFormat.shortEntryBytesMax { escapedShort += 1 }
            }
        }
        #expect(long > 0 && short > 0 && escapedShort > 0, "long \(long), short \(short), escaped short \(escapedShort)")
        #expect(v5.statistics().following.indexBytes < v4.statistics().following.indexBytes)
        edges = ContiguousArray(model.edges)
        let v7 = try GraphStore.open(directory: dir.path + "/v7", fileSystem: fs, log: nil, buildOptions: GraphBuildOptions(formatVersion: 7))
        try v7.bulkLoad(&edges)
        check(v7, version: 7, "format 7")
        // The filtered records take 32 bits a user where format 5's groups take 18.
        #expect(v7.statistics().followers.indexBytes > v5.statistics().followers.indexBytes)
        #expect(v7.statistics().following.indexBytes == v5.statistics().following.indexBytes)
        v4.close()
        v5.close()
        v7.close()
        // Format 4 merged into 5 and 5 into 4, 7 into 4: one change, every other entry copied verbatim.
        for (from, to) in [(UInt32(4), UInt32(5)), (5, 4), (7, 4)] {
            let store = try GraphStore.open(directory: dir.path + "/v\(from)", fileSystem: fs, log: nil,
                                            buildOptions: GraphBuildOptions(formatVersion: to))
            // A new edge, so the merge builds a base (an empty overlay would only relabel it).
            var a = UInt32(random.next() % UInt64(users)), b = UInt32((Int(a) + 1) % users)
            while model.follows(a, b) { a = UInt32(random.next() % UInt64(users)); b = UInt32((Int(a) + 1) % users) }
            let changed = try store.follow(a, b)
            #expect(changed && model.set(a, b, true))
            try store.merge()
            check(store, version: to, "format \(from) merged into \(to)")
            store.close()
            // The next round works on the other directory, which never had the change.
            if changed { _ = model.set(a, b, false) }
        }
    }

    @Test func radixSortMatchesSort() {
        var random = SeededRandom(seed: testSeed())
        for (count, bits) in [(10, 8), (1000, 20), (50_000, 40), (20_000, 64)] {
            let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            var keys = (0..<count).map { _ in random.next() & mask }
            let expected = keys.sorted()
            keys.withUnsafeMutableBufferPointer { RadixSort.sort($0, keyBits: bits) }
            #expect(keys == expected, "\(count) keys of \(bits) bits")
        }
    }
}

@Suite struct GraphStoreTests {
    static let reedPath = "/work/shared/data/socfb-Reed98/socfb-Reed98.edges"

    @Test func followUnfollowIdempotentAndVisible() throws {
        let dir = TemporaryDirectory("graph")
        let fs = try FileSystem(backend: .posix)
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .always))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        #expect(try store.follow(1, 2))
        #expect(try !store.follow(1, 2))
        #expect(store.follows(1, 2) && !store.follows(2, 1))
        #expect(store.followerCount(2) == 1 && store.followingCount(1) == 1)
        #expect(throws: GraphError.self) { try store.follow(3, 3) }
        #expect(try store.unfollow(1, 2))
        #expect(try !store.unfollow(1, 2))
        #expect(!store.follows(1, 2) && store.followerCount(2) == 0)
        try store.follow(5, 9)
        store.close()
        try log.close()
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        #expect(reopened.follows(5, 9) && !reopened.follows(1, 2))
        #expect(reopened.replayedRecords == 3)
        try log2.close()
    }

    /// A merge after the log failed (another writer's record never reached the disk) must not
    /// write a base that claims that record: the directory would not open again. Found by the
    /// I/O-error torture ("the base covers LSN 12 but the log ends at 11").
    @Test func mergeNeverCoversWhatTheLogLost() throws {
        let dir = TemporaryDirectory("graph-log-failure")
        let faults = FaultInjector()
        let fs = try FileSystem(backend: .posix, faults: faults)
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .always))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        #expect(try store.follow(1, 2))
        faults.add(.init(operation: .write, pathContains: "/log/", sticky: true, action: .fail(errno: ENOSPC)))
        var record: [UInt8] = [1, 2, 3]
        #expect(throws: LogError.self) { _ = try record.withUnsafeMutableBytes { try log.append(type: 0x0020, payload: UnsafeRawBufferPointer($0)) } }
        #expect(throws: GraphError.self) { try store.merge() }
        store.close()
        try? log.close()
        faults.removeAll()
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        #expect(reopened.follows(1, 2))
        try log2.close()
    }

    /// Random follows, unfollows, queries, merges and reopenings against a set of pairs.
    /// Membership through the search marks of long follower lists (`SearchMarks`) is exact: a
    /// seeded graph of 2^20 users with empty lists, single-entry lists, lists at the block and
    /// escape boundaries, a celebrity followed by a third of the users (16-bit marks, narrow
    /// packed blocks), sparse long lists whose marks need 32 bits, runs of consecutive followers
    /// (width 0 blocks) and random edges; every member, its neighbours, random users and
    /// out-of-range numbers are probed against the model, then again with follows and unfollows
    /// in the overlay, after a merge and after reopening. Each special list is coded with the
    /// default options and with every form allowed (varint and Rice blocks keep no marks).
    @Test func searchMarksMembershipMatchesTheModel() throws {
        let seed = testSeed()
        print("GraphStoreTests.searchMarksMembershipMatchesTheModel seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        let users = 1 << 20
        var model = GraphModel()
        func randomUser() -> UInt32 { UInt32(random.next() % UInt64(users)) }
        // Followees 0...9 are the special lists.
        for a in stride(from: 10, to: users, by: 3) where random.next() % 100 < 90 { _ = model.set(UInt32(a), 0, true) }
        for _ in 0..<300 { _ = model.set(randomUser(), 1, true) }  // mean gap about 3,500: 32-bit marks
        for _ in 0..<2_000 { _ = model.set(randomUser(), 2, true) }  // 16-bit marks, wide gaps
        for a in 5_000..<5_600 { _ = model.set(UInt32(a), 3, true) }  // a run: width 0 blocks
        for _ in 0..<400 { _ = model.set(randomUser(), 3, true) }
        _ = model.set(randomUser(), 4, true)  // a single entry
        for (user, count) in [(UInt32(5), 128), (6, 129), (7, 255), (8, 256)] {
            while model.followerCount(user) < count { _ = model.set(randomUser(), user, true) }
        }
        // 9 has no followers; random edges among the rest.
        for _ in 0..<60_000 {
            let a = randomUser(), b = UInt32(10) + UInt32(random.next() % UInt64(users - 10))
            if a != b { _ = model.set(a, b, true) }
        }
        func probes(_ b: UInt32) -> [UInt32] {
            var result: [UInt32] = [0, 1, UInt32(users - 1), UInt32(users), UInt32.max - 1, UInt32.max]
            // Every member of a list and its neighbours (every k-th of the celebrity's).
            let members = model.followers(b)
            for i in stride(from: 0, to: members.count, by: max(1, members.count / 20_000)) {
                result += [members[i] &- 1, members[i], members[i] &+ 1]
            }
            for _ in 0..<3_000 { result.append(randomUser()) }
            return result
        }
        func check(_ store: GraphStore, _ context: String) {
            for b in UInt32(0)...12 {
                for a in probes(b) {
                    #expect(store.follows(a, b) == model.follows(a, b), "\(context): follows \(a) \(b), seed \(seed)")
                }
            }
            for _ in 0..<20_000 {
                let a = randomUser(), b = randomUser()
                #expect(store.follows(a, b) == model.follows(a, b), "\(context): follows \(a) \(b), seed \(seed)")
            }
        }
        for (name, options) in [("default", GraphBuildOptions()),
                                ("every form", GraphBuildOptions(formatVersion: 5, denseFollowingMax: .max, denseFollowersMax: .max))] {
            let dir = TemporaryDirectory("graph-marks")
            let fs = try FileSystem(backend: .posix)
            let logOptions = LogOptions(sync: .off, segmentSizeBytes: 1 << 20)
            var (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: logOptions)
            var store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log, buildOptions: options)
            var edges = ContiguousArray(model.edges)
            try store.bulkLoad(&edges)
            // Both kinds of marks exist, and they are counted in the followers' bits per edge.
            let marks = try #require(store.base.followerMarks, "\(name): search marks")
            if name == "default" {
                let wide = (0..<marks.slotCount).filter { marks.slots[$0] & 1 != 0 }.count
                #expect(wide > 0 && wide < marks.slotCount, "\(name): \(wide) of \(marks.slotCount) long lists with 32-bit marks")
            }
            let statistics = store.statistics().followers
            #expect(statistics.searchMarkBytes == marks.byteCount && statistics.searchMarkBytes > 0, "\(name)")
            #expect(statistics.bitsPerEdge > Double((statistics.listsBytes + statistics.indexBytes) * 8) / Double(statistics.edges), "\(name)")
            check(store, "\(name), bulk load")
            // The overlay: changes to the special lists, not merged yet.
            for b in UInt32(0)...8 {
                for a in model.followers(b).prefix(3) {
                    let removed = try store.unfollow(a, b)
                    let modelRemoved = model.set(a, b, false)
                    #expect(removed && modelRemoved, "\(name): unfollow \(a) \(b)")
                }
                for _ in 0..<3 {
                    let a = randomUser()
                    if a != b { #expect(try store.follow(a, b) == model.set(a, b, true), "\(name): follow \(a) \(b)") }
                }
            }
            check(store, "\(name), overlay")
            try store.merge()
            check(store, "\(name), merged")
            store.close()
            try log.close()
            (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: logOptions)
            store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log, buildOptions: options)
            #expect(store.base.followerMarks != nil, "\(name): marks after reopening")
            check(store, "\(name), reopened")
            store.close()
            try log.close()
        }
    }

    /// Membership (one pair at a time and batched) against the model on random graphs of
    /// every shape the search meets: popular users whose follower lists cross many blocks
    /// (packed, varint and run blocks, with search marks), lists of one to a few hundred values,
    /// users without followers, self-follows in the loaded edge list (dropped), and probes with
    /// ids at, beyond and far beyond the highest user. Checked for each builder option, after
    /// an overlay of changes and after merging it.
    @Test func membershipMatchesTheModelOnRandomGraphs() throws {
        let seed = testSeed()
        print("GraphStoreTests.membershipMatchesTheModelOnRandomGraphs seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        for round in 0..<4 {
            let users = [40, 700, 5_000, 30_000][round] + Int(random.next() % 50)
            var model = GraphModel()
            var loaded: [UInt64] = []
            func randomUser() -> UInt32 { UInt32(random.next() % UInt64(users)) }
            // Followees skewed to low numbers (popular users first), as in the bench's graph.
            func popular() -> UInt32 { UInt32(min(Double(users - 1), Double(users) * pow(Double(random.next() % 1_000_000) / 1_000_000, 4))) }
            for a in 0..<users {
                let kind = random.next() % 10
                let degree = kind == 0 ? 0 : kind == 1 ? Int(random.next() % 400) : Int(random.next() % 40)
                for _ in 0..<degree {
                    let b = kind == 2 ? randomUser() : popular()
                    loaded.append(UInt64(a) << 32 | UInt64(b))
                    if b != UInt32(a) { _ = model.set(UInt32(a), b, true) }
                }
                if random.next() % 20 == 0 { loaded.append(UInt64(a) << 32 | UInt64(a)) }  // a self-follow
            }
            // A run of consecutive followers (width 0 and varint blocks) on one user.
            let runUser = UInt32(users / 2)
            for a in 0..<min(users, 600) where UInt32(a) != runUser {
                loaded.append(UInt64(a) << 32 | UInt64(runUser))
                _ = model.set(UInt32(a), runUser, true)
            }
            func probes() -> [(UInt32, UInt32)] {
                var result: [(UInt32, UInt32)] = []
                let beyond: [UInt32] = [UInt32(users), UInt32(users + 1), UInt32(users) + 1_000, UInt32.max - 1, UInt32.max]
                for b in (0..<UInt32(min(users, 64))) + [runUser, UInt32(users - 1)] {
                    for a in model.followers(b) { result += [(a, b), (a &- 1, b), (a &+ 1, b)] }
                    result += [(b, b), (0, b), (UInt32(users - 1), b)]
                    for x in beyond { result += [(x, b), (b, x)] }
                }
                for _ in 0..<20_000 { result.append((randomUser(), randomUser())) }
                for _ in 0..<2_000 {
                    let u = randomUser()
                    result.append((u, u))
                }
                for x in beyond { result.append((x, x)) }
                return result
            }
            // Format 7: the filters answer many tests without the list and let others through
            // (false positives the list then refutes); both must occur, and the base's every
            // filter must be its list's (the deep check recomputes them).
            func checkFilters(_ store: GraphStore, _ context: String) {
                let followers = store.base.followers
                #expect(followers.filtered, "\(context): filtered followers index")
                var rejected = 0, falsePositives = 0
                for _ in 0..<20_000 {
                    let a = randomUser(), b = randomUser()
                    if !followers.mayContain(Int(b), a) {
                        rejected += 1
                        if model.follows(a, b) { Issue.record("\(context): the filter of \(b) rules out its follower \(a), seed \(seed)") }
                    } else if !model.follows(a, b) {
                        falsePositives += 1
                    }
                }
                for b in UInt32(0)..<UInt32(min(users, 64)) {
                    for a in model.followers(b) where !followers.mayContain(Int(b), a) {
                        Issue.record("\(context): the filter of \(b) rules out its follower \(a), seed \(seed)")
                    }
                }
                if users > 1_000 {
                    #expect(rejected > 0 && falsePositives > 0, "\(context): \(rejected) rejected, \(falsePositives) false positives, seed \(seed)")
                }
                let raw = UnsafeRawBufferPointer(store.base.image)
                let deep = GraphBase.deepVerify(raw).problems
                #expect(deep.isEmpty, "\(context): \(deep)")
            }
            func check(_ store: GraphStore, _ context: String) {
                let pairs = probes()
                let packed = pairs.map { UInt64($0.0) << 32 | UInt64($0.1) }
                var batched = [Bool](repeating: false, count: packed.count)
                packed.withUnsafeBufferPointer { p in batched.withUnsafeMutableBufferPointer { store.follows(p, into: $0) } }
                var wrong = 0
                for (i, (a, b)) in pairs.enumerated() {
                    let expected = model.follows(a, b)
                    if store.follows(a, b) != expected || batched[i] != expected {
                        wrong += 1
                        if wrong <= 5 { Issue.record("\(context): follows \(a) \(b) should be \(expected), seed \(seed)") }
                    }
                }
                #expect(wrong == 0, "\(context): \(wrong) of \(pairs.count) answers wrong, seed \(seed)")
            }
            for (name, options) in [("default", GraphBuildOptions()), ("fast", GraphBuildOptions.fast),
                                    ("compact", GraphBuildOptions.compact), ("format 4", GraphBuildOptions(formatVersion: 4)),
                                    ("format 5", GraphBuildOptions(formatVersion: 5, denseFollowingMax: .max)),
                                    ("format 7 fast", GraphBuildOptions(formatVersion: 7, denseFollowingMax: 0))] {
                let context = "round \(round) (\(users) users), \(name)"
                let dir = TemporaryDirectory("graph-membership")
                let fs = try FileSystem(backend: .posix)
                let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
                let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log, buildOptions: options)
                var edges = ContiguousArray(loaded)
                try store.bulkLoad(&edges)
                #expect(store.statistics().edges == model.edges.count, "\(context): edges, seed \(seed)")
                check(store, "\(context), loaded")
                // Changes in the overlay (locked path for these followers), then merged.
                var changed = model
                for _ in 0..<200 {
                    let a = randomUser(), b = random.next() % 2 == 0 ? popular() : randomUser()
                    guard a != b else { continue }
                    let present = random.next() % 3 != 0
                    let expected = changed.set(a, b, present)
                    let applied = try present ? store.follow(a, b) : store.unfollow(a, b)
                    #expect(applied == expected, "\(context): \(present ? "follow" : "unfollow") \(a) \(b), seed \(seed)")
                }
                swap(&model, &changed)
                check(store, "\(context), overlay")
                try store.merge()
                check(store, "\(context), merged")
                if options.formatVersion >= 7 { checkFilters(store, "\(context), merged") }
                store.close()
                try log.close()
                // Reopened: the merged base read back from its file (and the log replayed).
                let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off, segmentSizeBytes: 1 << 20))
                let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2, buildOptions: options)
                #expect(reopened.base.formatVersion == options.formatVersion, "\(context): version after reopening")
                check(reopened, "\(context), reopened")
                reopened.close()
                try log2.close()
                swap(&model, &changed)
            }
        }
    }

    @Test func modelRandomOperations() throws {
        let seed = testSeed()
        print("GraphStoreTests.modelRandomOperations seed \(seed) (SOCIALDB_SEED to replay)")
        var random = SeededRandom(seed: seed)
        let operations = environmentInt("SOCIALDB_GRAPH_OPS", default: 200_000)
        let users = 300
        let dir = TemporaryDirectory("graph-model")
        let fs = try FileSystem(backend: .posix)
        let logOptions = LogOptions(sync: .off, segmentSizeBytes: 1 << 20)
        var (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: logOptions)
        var store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        var model = GraphModel()
        // Popular users get more followers, so lists of every size (and multi-block lists) occur.
        func pick() -> UInt32 {
            let r = Double(random.next() % 1_000_000) / 1_000_000
            return UInt32(Double(users) * r * r * r)
        }
        for i in 0..<operations {
            let a = UInt32(random.next() % UInt64(users))
            var b = pick()
            if a == b { b = (b + 1) % UInt32(users) }
            switch random.next() % 100 {
            case 0..<45:
                #expect(try store.follow(a, b) == model.set(a, b, true), "follow \(a) \(b) at \(i), seed \(seed)")
            case 45..<70:
                #expect(try store.unfollow(a, b) == model.set(a, b, false), "unfollow \(a) \(b) at \(i), seed \(seed)")
            case 70..<89:
                #expect(store.follows(a, b) == model.follows(a, b), "follows \(a) \(b) at \(i), seed \(seed)")
            case 89:
                // Batched membership agrees with single tests (overlay and base users mixed).
                let pairs = (0..<40).map { _ in UInt64(random.next() % UInt64(users)) << 32 | random.next() % UInt64(users) }
                var answers = [Bool](repeating: false, count: pairs.count)
                pairs.withUnsafeBufferPointer { p in answers.withUnsafeMutableBufferPointer { store.follows(p, into: $0) } }
                #expect(answers == pairs.map { model.follows(UInt32($0 >> 32), UInt32(truncatingIfNeeded: $0)) }, "batched at \(i), seed \(seed)")
            case 90..<95:
                #expect(store.followerCount(b) == model.followerCount(b), "follower count \(b) at \(i), seed \(seed)")
            default:
                let all = model.followers(b)
                let cursor = all.isEmpty || random.next() % 3 == 0 ? nil : all.randomElement(using: &random)
                let page = store.followers(of: b, after: cursor, limit: 7)
                #expect(page == Array(all.filter { cursor == nil || $0 > cursor! }.prefix(7)), "page \(b) at \(i), seed \(seed)")
                // The whole list through the fan-out's loop (overlay entries or not).
                var seen: [UInt32] = []
                store.forEachFollowing(of: a) { seen.append($0) }
                #expect(seen == model.following(a), "forEachFollowing \(a) at \(i), seed \(seed)")
            }
            if i % 40_000 == 39_999 {
                try store.merge()
                verifyAll(store, model, users: users, context: "after merge at \(i), seed \(seed)")
            }
            if i % 70_000 == 69_999 {
                store.close()
                try log.close()
                (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: logOptions)
                // Every other reopen merges into format 4 with every list in the fast forms (following
                // entries copied verbatim either way, follower lists coded again between format 6's
                // Rice lists and format 4's blocks; membership by the shorter list).
                let options = i % 140_000 == 69_999 ? GraphBuildOptions(formatVersion: 4, denseFollowingMax: 0) : GraphBuildOptions()
                store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log, buildOptions: options)
                verifyAll(store, model, users: users, context: "after reopen at \(i), seed \(seed)")
            }
        }
        verifyAll(store, model, users: users, context: "at the end, seed \(seed)")
        // Set queries against the model.
        for _ in 0..<200 {
            let u = UInt32(random.next() % UInt64(users)), x = pick()
            let expected = model.following(u).filter { model.follows($0, x) }
            #expect(store.followingWhoFollow(u, x) == expected, "intersection \(u) \(x), seed \(seed)")
        }
        for u in UInt32(0)..<20 {
            var counts: [UInt32: Int] = [:]
            for f in model.following(u) { for g in model.following(f) where g != u { counts[g, default: 0] += 1 } }
            let ranked = counts.filter { !model.follows(u, $0.key) }
                .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            // A small window (kept sorted while counting) and a large one (sorted once at the end).
            for limit in [5, 100] {
                let expected = ranked.prefix(limit)
                let got = store.suggestions(for: u, limit: limit, edgesScannedMax: Int.max)
                #expect(got.map(\.user) == expected.map(\.key) && got.map(\.followedBy) == expected.map(\.value),
                        "suggestions \(u) limit \(limit), seed \(seed)")
            }
        }
        let bounded = store.suggestions(for: 0, limit: 5, edgesScannedMax: 10)
        #expect(bounded.reduce(0) { $0 + $1.followedBy } <= 10, "bounded work")
        try log.close()
    }

    @Test func concurrentWritersConverge() throws {
        let dir = TemporaryDirectory("graph-threads")
        let fs = try FileSystem(backend: .posix)
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .always))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        let threads = (0..<4).map { t in
            BackgroundThread {
                var random = SeededRandom(seed: UInt64(t + 1))
                for _ in 0..<150 {
                    let a = UInt32(random.next() % 20), b = UInt32(20 + random.next() % 20)
                    if random.next() % 3 == 0 { _ = try? store.unfollow(a, b) } else { _ = try? store.follow(a, b) }
                }
            }
        }
        let merger = BackgroundThread { for _ in 0..<3 { _ = try? store.merge() } }
        for t in threads { t.join() }
        merger.join()
        var live = Set<UInt64>()
        for a in UInt32(0)..<20 { for b in UInt32(20)..<40 where store.follows(a, b) { live.insert(UInt64(a) << 32 | UInt64(b)) } }
        store.close()
        try log.close()
        // Replay gives the same graph as the live store had: the log's order decides.
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        var replayed = Set<UInt64>()
        for a in UInt32(0)..<20 { for b in UInt32(20)..<40 where reopened.follows(a, b) { replayed.insert(UInt64(a) << 32 | UInt64(b)) } }
        #expect(live == replayed)
        #expect(reopened.statistics().edges == live.count)
        try log2.close()
    }

    @Test func emptyMergeMovesTheCheckpoint() throws {
        let dir = TemporaryDirectory("graph-empty-merge")
        let fs = try FileSystem(backend: .posix)
        var model = GraphModel()
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        for i in UInt32(0)..<40 { try store.follow(i % 7, 7 + i % 11); _ = model.set(i % 7, 7 + i % 11, true) }
        try store.merge()
        // Records of other consumers only: the overlay stays empty, the log moves on.
        for _ in 0..<5 { _ = try log.append(type: 0x7777, payload: [1, 2, 3]) }
        let last = log.nextSequenceNumber - 1
        let first = try #require(try store.merge(), "an empty overlay behind the log still gives a new base")
        #expect(first.coveredLSN == last)
        let second = try #require(try store.merge())
        #expect(second.coveredLSN == last)
        // The fallback (the base before) now covers the whole log, and so does the checkpoint.
        #expect(log.checkpoint(of: GraphStore.consumerName) == last)
        #expect(try store.merge() == nil, "nothing left to do")
        verifyAll(store, model, users: 18, context: "after empty merges")
        store.close()
        try log.close()
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        #expect(reopened.replayedRecords == 0)
        verifyAll(reopened, model, users: 18, context: "reopened")
        try log2.close()
    }

    /// Lock-free readers (no overlay for the users they ask about) racing merges that free the
    /// base they read, and mutations that make users dirty: every answer is one the graph had.
    @Test func lockFreeReadersAcrossMerges() throws {
        let directory = TemporaryDirectory("graph-rcu")
        let store = try GraphStore.open(directory: directory.path, fileSystem: try FileSystem(backend: .posix), log: nil)
        // Users 0..<50 follow 100..<150 (stable); users 50..<100 are changed while readers run.
        var edges = ContiguousArray<UInt64>()
        for a in UInt64(0)..<100 { for b in UInt64(100)..<150 where (a + b) % 3 == 0 { edges.append(a << 32 | b) } }
        try store.bulkLoad(&edges)
        let stop = Atomic<Bool>(false)
        let failures = Atomic<Int>(0)
        let readers = (0..<3).map { t in
            BackgroundThread {
                var random = SeededRandom(seed: UInt64(t + 10))
                var buffer = ContiguousArray<UInt32>()
                while !stop.load(ordering: .relaxed) {
                    let a = UInt32(random.next() % 50), b = UInt32(100 + random.next() % 50)
                    if store.follows(a, b) != ((a + b) % 3 == 0) { failures.add(1, ordering: .relaxed) }
                    store.copyFollowing(of: a, into: &buffer)
                    let expected = (UInt32(100)..<150).filter { ($0 + a) % 3 == 0 }
                    if Array(buffer) != expected || store.followingCount(a) != expected.count { failures.add(1, ordering: .relaxed) }
                }
            }
        }
        for round in 0..<20 {
            for a in UInt32(50)..<100 { try store.follow(a, UInt32(150 + round)) }
            try store.merge()
        }
        stop.store(true, ordering: .relaxed)
        for r in readers { r.join() }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(store.followerCount(150) == 50 && store.followerCount(169) == 50)
        #expect(store.follows(77, 160))
        withExtendedLifetime(directory) {}
    }

    @Test func corruptBaseIsReportedOrRebuiltFromTheLog() throws {
        let dir = TemporaryDirectory("graph-corrupt")
        let fs = try FileSystem(backend: .posix)
        var model = GraphModel()
        do {
            let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off))
            let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
            for i in UInt32(0)..<500 { try store.follow(i % 50, 50 + i % 37); _ = model.set(i % 50, 50 + i % 37, true) }
            try store.merge()
            try log.close()
        }
        let newest = dir.path + "/graph/" + GraphFormat.fileName(generation: 1)
        var bytes = readWholeFile(newest)
        // A byte in the middle of the following lists (section 1), which its checksum covers.
        let (listsOffset, listsLength) = bytes.withUnsafeBytes { raw in
            let footer = raw.count - GraphFormat.footerBytes
            return (Int(raw.loadLE(UInt64.self, at: footer + 24)), Int(raw.loadLE(UInt64.self, at: footer + 24 + 8)))
        }
        bytes[listsOffset + listsLength / 2] ^= 0x40
        writeWholeFile(newest, bytes)
        // Without the log the corrupt newest base cannot be replaced: a clear error, no data.
        #expect {
            _ = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: nil)
        } throws: { error in
            guard case GraphError.corrupt(let path, let reason) = error else { return false }
            return path == newest && reason.contains("checksum")
        }
        #expect(fs.exists(newest), "a failed open renames nothing")
        // With the log (which still covers the older base), it is set aside and rebuilt.
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        #expect(store.openReport.corruptBasesSetAside.count == 1, "\(store.openReport)")
        #expect(fs.exists(newest + ".corrupt"))
        verifyAll(store, model, users: 87, context: "rebuilt")
        try log.close()
    }

    @Test func crashAroundBaseSwitch() throws {
        let dir = TemporaryDirectory("graph-crash")
        let faults = FaultInjector()
        let fs = try FileSystem(backend: .posix, faults: faults)
        var model = GraphModel()
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        for i in UInt32(0)..<300 { try store.follow(i % 30, 30 + i % 41); _ = model.set(i % 30, 30 + i % 41, true) }
        // The switch fails at the rename, then at the fdatasync of the new file: the store keeps
        // serving the same graph, and nothing half-written is ever loaded.
        faults.add(FaultInjector.Rule(operation: .rename, pathContains: ".graph.tmp", action: .fail(errno: EIO)))
        #expect(throws: GraphError.self) { try store.merge() }
        faults.removeAll()
        faults.add(FaultInjector.Rule(operation: .fdatasync, pathContains: ".graph.tmp", action: .fail(errno: EIO)))
        #expect(throws: GraphError.self) { try store.merge() }
        faults.removeAll()
        verifyAll(store, model, users: 71, context: "after failed switches")
        try store.unfollow(0, 30); _ = model.set(0, 30, false)
        try log.close()
        // A crash mid-write leaves a temporary file: removed at open, the graph rebuilt from
        // the base before plus the log.
        writeWholeFile(dir.path + "/graph/" + GraphFormat.fileName(generation: 1) + ".tmp", [1, 2, 3])
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        #expect(reopened.openReport.removedTemporaryFiles.count == 1)
        verifyAll(reopened, model, users: 71, context: "after crash")
        try reopened.merge()
        verifyAll(reopened, model, users: 71, context: "after merge")
        try log2.close()
    }

    @Test func bulkLoadReed98() throws {
        let fs = try FileSystem(backend: .posix)
        guard fs.exists(Self.reedPath) else {
            print("note: \(Self.reedPath) is missing; skipped")
            return
        }
        let parsed = try EdgeListParser(symmetric: true).parse(path: Self.reedPath, fileSystem: fs)
        #expect(parsed.lines == 18_812 && parsed.badLines == 0)
        #expect(parsed.edges.count == 2 * 18_812)
        var model = GraphModel()
        for e in parsed.edges { _ = model.set(UInt32(e >> 32), UInt32(truncatingIfNeeded: e), true) }
        let dir = TemporaryDirectory("graph-reed")
        let (log, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs, options: LogOptions(sync: .off))
        let store = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log)
        try store.follow(0, 961)
        _ = model.set(0, 961, true)
        var edges = parsed.edges
        var phases = 0
        let report = try store.bulkLoad(&edges) { _ in phases += 1 }
        #expect(phases > 0)
        #expect(report.edges == model.edges.count)
        let stats = store.statistics()
        #expect(stats.users == 962 && stats.edges == model.edges.count)
        #expect(Set(parsed.edges).count == 37_624, "18,812 friendships, both directions, no duplicates")
        #expect(model.edges.count == 37_624 + (Set(parsed.edges).contains(961) ? 0 : 1))
        verifyAll(store, model, users: 962, context: "Reed98")
        print("Reed98: \(stats.edges) edges; bits/edge following \(stats.following.listBitsPerEdge) lists, \(stats.following.bitsPerEdge) with index")
        try log.close()
        let (log2, _) = try Log.open(directory: dir.path + "/log", fileSystem: fs)
        let reopened = try GraphStore.open(directory: dir.path + "/graph", fileSystem: fs, log: log2)
        verifyAll(reopened, model, users: 962, context: "Reed98 reopened")
        try log2.close()
    }

    @Test func edgeListForms() {
        let snap = EdgeListParser().parse(text: "# Directed graph\n# FromNodeId\tToNodeId\n0\t1\n1\t2\n\n2 0 1287000\nbad line\n3,4\n99999999999 1\n")
        #expect(Array(snap.edges) == [0 << 32 | 1, 1 << 32 | 2, 2 << 32 | 0, 3 << 32 | 4])
        #expect(snap.badLines == 2 && snap.badLineSamples.map(\.line) == [7, 9] && snap.commentLines == 2)
        let mtx = EdgeListParser(symmetric: true).parse(text: "%%MatrixMarket matrix coordinate pattern symmetric\n% comment\n3 3 2\n1 2\n3 1\n")
        #expect(mtx.matrixMarket)
        #expect(Array(mtx.edges) == [0 << 32 | 1, 1 << 32 | 0, 2 << 32 | 0, 0 << 32 | 2])
    }
}
