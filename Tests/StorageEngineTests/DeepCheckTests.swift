@testable import StorageEngine
import Testing

/// `socialdb check --deep`: adjacency and posting lists that pass every checksum (resealed after
/// the damage, as a writer bug would leave them) but break an invariant are each reported with
/// their stable code, and sound files are clean. The deep decoders never trap or read outside
/// the file on any of them (the suite runs under AddressSanitizer too).
@Suite struct DeepCheckTests {
    /// Recomputes the header, section and footer checksums of a graph base or search segment
    /// image: the damage a checksum cannot see.
    static func reseal(_ b: inout [UInt8], headerSeed: UInt64, footerBytes: Int, sections: Int, sectionSeed: UInt64, footerSeed: UInt64) {
        b.withUnsafeMutableBytes { raw in
            raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[0..<56]), seed: headerSeed), at: 56)
            let footer = raw.count - footerBytes
            for i in 0..<sections {
                let offset = Int(raw.loadLE(UInt64.self, at: footer + i * 24)), length = Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8))
                raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]), seed: sectionSeed), at: footer + i * 24 + 16)
            }
            raw.storeLE(Checksum.xxh3(UnsafeRawBufferPointer(rebasing: raw[footer..<(footer + footerBytes - 8)]), seed: footerSeed),
                        at: footer + footerBytes - 8)
        }
    }

    // MARK: Graph

    /// A base from per-user lists; `coded` entries (user -> (bytes, degree)) are written verbatim
    /// in the following direction instead of coding `following[user]`.
    static func graphImage(users: Int, following: [Int: [UInt32]], followers: [Int: [UInt32]],
                           coded: [Int: ([UInt8], Int)] = [:], codedFollowers: [Int: ([UInt8], Int)] = [:],
                           version: UInt32 = GraphFormat.formatVersion) -> [UInt8] {
        var builder = GraphBaseBuilder(userCount: users, generation: 1, coveredLSN: 0, options: GraphBuildOptions(formatVersion: version))
        for u in 0..<users {
            if let (bytes, degree) = coded[u] {
                bytes.withUnsafeBytes { builder.appendCoded(user: u, $0, degree: degree) }
            } else {
                (following[u] ?? []).withUnsafeBufferPointer { builder.append(user: u, $0) }
            }
        }
        builder.finishDirection()
        for u in 0..<users {
            if let (bytes, degree) = codedFollowers[u] {
                bytes.withUnsafeBytes { builder.appendCoded(user: u, $0, degree: degree) }
            } else {
                (followers[u] ?? []).withUnsafeBufferPointer { builder.append(user: u, $0) }
            }
        }
        builder.finishDirection()
        let base = builder.finish()
        return Array(UnsafeRawBufferPointer(base.image))
    }

    static func codes(_ image: [UInt8]) -> [CheckCode] {
        image.withUnsafeBytes { GraphBase.deepVerify($0).problems.map(\.code) }
    }

    static func coded(_ values: [UInt32]) -> [UInt8] {
        values.withUnsafeBufferPointer { v in
            var out = [UInt8](repeating: 0, count: GraphCodec.encodedSize(v))
            out.withUnsafeMutableBytes { _ = GraphCodec.encode(v, into: $0.baseAddress!) }
            return out
        }
    }

    /// A consistent graph of `users` users: user 0 follows everyone else (multi-block list with a
    /// degree escape), every user follows user 0 and a few users apart (varint bodies).
    static func soundGraph(users: Int) -> (following: [Int: [UInt32]], followers: [Int: [UInt32]]) {
        var edges = Set<[UInt32]>()
        for v in 1..<users { edges.insert([0, UInt32(v)]); edges.insert([UInt32(v), 0]) }
        for v in stride(from: 3, to: users, by: 7) { edges.insert([UInt32(v), UInt32(users - 1)]); edges.insert([UInt32(v), 1]) }
        var following: [Int: [UInt32]] = [:], followers: [Int: [UInt32]] = [:]
        for e in edges.sorted(by: { $0[0] != $1[0] ? $0[0] < $1[0] : $0[1] < $1[1] }) where e[0] != e[1] {
            following[Int(e[0]), default: []].append(e[1])
        }
        for (u, list) in following { for v in list { followers[Int(v), default: []].append(UInt32(u)) } }
        for key in followers.keys { followers[key]!.sort() }
        return (following, followers)
    }

    @Test func soundGraphBaseIsClean() {
        let (following, followers) = Self.soundGraph(users: 700)
        #expect(following[0]!.count > 255)
        let image = Self.graphImage(users: 700, following: following, followers: followers)
        let result = image.withUnsafeBytes { GraphBase.deepVerify($0) }
        #expect(result.problems.isEmpty, "\(result.problems)")
        // An empty base too.
        #expect(Self.codes(Self.graphImage(users: 0, following: [:], followers: [:])).isEmpty)
    }

    /// Format 7: a follower list's filter (12 bits in its record) that is not its values' is
    /// found by the deep check (`graph-filter`), resealed so the basic check passes it; a filter
    /// cleared for a user with a list, or set for one without, fails the basic check.
    @Test func wrongFollowerFiltersAreReported() {
        let users = 40
        let (following, followers) = Self.soundGraph(users: users)
        let sound = Self.graphImage(users: users, following: following, followers: followers, version: 7)
        #expect(Self.codes(sound).isEmpty)
        let index = sound.withUnsafeBytes { Int($0.loadLE(UInt64.self, at: $0.count - GraphFormat.footerBytes + 48)) }
        #expect(index % GraphFormat.filteredBytes == 0, "the filtered index starts on a 64-byte boundary")
        func filterAt(_ u: Int) -> (at: Int, shift: Int) {
            (index + (u / 16) * 64 + GraphFormat.filteredFiltersAt + 3 * (u % 16) / 2, 4 * (u & 1))
        }
        func damaged(_ u: Int, _ change: (Int) -> Int) -> [UInt8] {
            var image = sound
            let (at, shift) = filterAt(u)
            image.withUnsafeMutableBytes { raw in
                let word = Int(raw.loadLE(UInt16.self, at: at))
                let bits = change((word >> shift) & 0xFFF) & 0xFFF
                raw.storeLE(UInt16((word & ~(0xFFF << shift)) | bits << shift), at: at)
            }
            Self.reseal(&image, headerSeed: GraphFormat.headerSeed, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                        sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
            return image
        }
        // User 3 (odd: the high 12 bits of its word) follows 0 and 1, so 0 and 1 have followers;
        // user 2 has one follower (0): clearing one of its set bits rules out that follower.
        for u in [1, 2] {
            let (at, shift) = filterAt(u)
            let bits = sound.withUnsafeBytes { (Int($0.loadLE(UInt16.self, at: at)) >> shift) & 0xFFF }
            #expect(bits != 0, "user \(u) has followers")
            let lowest = bits & -bits
            let cleared = damaged(u) { $0 & ~lowest }
            let extra = damaged(u) { $0 | (~bits & 0xFFF & -(~bits & 0xFFF)) }
            #expect(Self.codes(cleared) == (bits == lowest ? [.graphBase] : [.graphFilter]), "user \(u): a bit cleared")
            if bits != 0xFFF { #expect(Self.codes(extra) == [.graphFilter], "user \(u): a bit set") }
        }
        // A filter for a user past the user count (the last record's last slots).
        #expect(Self.codes(damaged(users + 3) { _ in 1 }) == [.graphBase], "a filter past the user count")
    }

    @Test func malformedAdjacencyListsAreReportedWithTheirCodes() {
        // Two users, 1 follows 0; user 1's following list replaced by crafted bytes of the same degree.
        let followers: [Int: [UInt32]] = [0: [1]]
        func base(_ bytes: [UInt8], degree: Int = 1, users: Int = 2, followers: [Int: [UInt32]] = followers) -> [CheckCode] {
            Self.codes(Self.graphImage(users: users, following: [:], followers: followers, coded: [1: (bytes, degree)]))
        }
        #expect(base([0x00, 0x00]).isEmpty, "the crafted list [0] is sound")
        #expect(base([0x80]) == [.graphListMalformed], "a varint that runs past the list")
        #expect(base([0x00]) == [.graphListLength], "a body without its mode byte")
        #expect(base([0x00, 40]) == [.graphListMalformed], "mode byte 40")
        #expect(base([0x00, 0x00, 0x00]) == [.graphListLength], "a byte after the list")
        #expect(base([0x05, 0x00]) == [.graphListRange], "user 5 of 2")
        #expect(base([0x01, 0x00]) == [.graphDirections], "1 follows 1, but 1's followers are not 1")
        // [0, 1]: gap 0 at width 1 in one byte; a set padding bit after it.
        let two: [Int: [UInt32]] = [0: [1], 1: [1]]
        #expect(base([0x00, 0x01, 0x00], degree: 2, followers: two).isEmpty, "the crafted list [0, 1] is sound")
        #expect(base([0x00, 0x01, 0x02], degree: 2, followers: two).contains(.graphListLength), "a non-zero padding bit")
        // A value past UInt32 by a varint gap.
        #expect(base([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF, 0x00], degree: 2, followers: two).first == .graphListRange)
        // Rice bodies (mode 0x40 + k): [0, 1] as gap 0 at k = 0 is one unary one bit.
        #expect(base([0x00, 0x40, 0x01], degree: 2, followers: two).isEmpty, "the crafted Rice list [0, 1] is sound")
        #expect(base([0x00, 0x40, 0x00], degree: 2, followers: two) == [.graphListLength], "a quotient without its one bit")
        #expect(base([0x00, 0x40, 0x03], degree: 2, followers: two).contains(.graphListLength), "a non-zero bit after the quotients")
        #expect(base([0x00, 0x40, 0x01, 0x00], degree: 2, followers: two).contains(.graphListLength), "a byte after the quotients")
        #expect(base([0x00, 0x41], degree: 2, followers: two) == [.graphListLength], "low bits past the body")
        // Gap 0 after UInt32.max at k = 31: 31 low zero bits, then the one bit.
        #expect(base([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x5F, 0x00, 0x00, 0x00, 0x80], degree: 2, followers: two).first == .graphListRange)
        // Adaptive Rice bodies (mode 0x60 + k0): [0, 1] as gap 0 at k0 = 0 is one unary one bit.
        #expect(base([0x00, 0x60, 0x01], degree: 2, followers: two).isEmpty, "the crafted adaptive list [0, 1] is sound")
        #expect(base([0x00, 0x60, 0x00], degree: 2, followers: two) == [.graphListLength], "a quotient without its one bit")
        #expect(base([0x00, 0x60, 0x03], degree: 2, followers: two).contains(.graphListLength), "a non-zero bit after the last gap")
        #expect(base([0x00, 0x60, 0x01, 0x00], degree: 2, followers: two).contains(.graphListLength), "a byte after the last gap")
        #expect(base([0x00, 0x6A, 0x01], degree: 2, followers: two) == [.graphListLength], "low bits past the body")
        #expect(base([0x00, 0x80, 0x01], degree: 2, followers: two) == [.graphListMalformed], "mode byte 0x80 (k0 32)")
        #expect(base([0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x60, 0x01], degree: 2, followers: two).first == .graphListRange)
        // An escaped degree below 255: user 1's entry written with degree 1 and a 4-byte count of
        // 1 before its list, then its index entry's degree byte set to the escape and resealed.
        // Format 4 (degree byte at 5 of the 6-byte entry) and 5 (the pair of user 1, first group).
        for version in [UInt32(4), 5] {
            var escaped = Self.graphImage(users: 2, following: [:], followers: followers, coded: [1: ([0x01, 0x00, 0x00, 0x00, 0x00, 0x00], 1)],
                                          version: version)
            escaped.withUnsafeMutableBytes { raw in
                let index = Int(raw.loadLE(UInt64.self, at: raw.count - GraphFormat.footerBytes))
                raw[version >= 5 ? index + 8 + 8 + 2 : index + GraphFormat.indexEntryBytes + 5] = UInt8(GraphFormat.degreeEscape)
            }
            Self.reseal(&escaped, headerSeed: GraphFormat.headerSeed, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                        sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
            // Format 5's basic check reads the escaped degree itself and refuses it (below 255).
            #expect(Self.codes(escaped) == (version >= 5 ? [.graphBase] : [.graphListMalformed]), "version \(version)")
        }
    }

    @Test func multiBlockListDamageIsFound() {
        let users = 300
        let (following, followers) = Self.soundGraph(users: users)
        let list = following[0]!
        #expect(list.count > 255)
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { $0.storeLE(UInt32(list.count), at: 0) }
        bytes += Self.coded(list)
        #expect(Self.codes(Self.graphImage(users: users, following: following, followers: followers, coded: [0: (bytes, list.count)])).isEmpty)
        // Block 1's first value (directory entry 1, after the 4-byte escape) set below block 0's last.
        var unsorted = bytes
        unsorted.withUnsafeMutableBytes { $0.storeLE(UInt32(2), at: 4 + 8) }
        #expect(Self.codes(Self.graphImage(users: users, following: following, followers: followers, coded: [0: (unsorted, list.count)]))
                == [.graphListOrder])
        // Block 1's body offset pointed past the list.
        var outside = bytes
        outside.withUnsafeMutableBytes { $0.storeLE(UInt32(100_000), at: 4 + 12) }
        #expect(Self.codes(Self.graphImage(users: users, following: following, followers: followers, coded: [0: (outside, list.count)]))
                == [.graphListMalformed])
        // The first body not right after the directory.
        var shifted = bytes
        shifted.withUnsafeMutableBytes { $0.storeLE(UInt32(0), at: 4 + 4) }
        #expect(Self.codes(Self.graphImage(users: users, following: following, followers: followers, coded: [0: (shifted, list.count)]))
                == [.graphListMalformed])
    }

    @Test func directionsThatDisagreeAreReported() {
        // 1 follows 0, but 0's followers say 2: same edge count, same degrees per direction sum.
        let codes = Self.codes(Self.graphImage(users: 3, following: [1: [0]], followers: [0: [2]]))
        #expect(codes == [.graphDirections])
        // 1 follows 0 and 2; the followers direction has 0 <- 1 and 2 <- 0 (an extra follower of 2).
        #expect(Self.codes(Self.graphImage(users: 3, following: [1: [0, 2]], followers: [0: [1], 2: [0]])) == [.graphDirections])
    }

    @Test func bytesThatBelongToNoListAreReported() {
        // User 0 has degree 0, yet two bytes before user 1's list (format 4: offsets only; format
        // 5 cannot say so, a pair of degree 0 and length 2 failing the basic check, below).
        #expect(Self.codes(Self.graphImage(users: 2, following: [1: [0]], followers: [0: [1]], coded: [0: ([0x00, 0x00], 0)], version: 4))
                == [.graphListLength])
        // An index entry damaged (user 0 given degree 0) and resealed: the degrees no longer add
        // up, and the basic check (`verify`) refuses the file before any list is decoded.
        for version in [UInt32(4), 5] {
            var image = Self.graphImage(users: 2, following: [0: [1], 1: [0]], followers: [0: [1], 1: [0]], version: version)
            image.withUnsafeMutableBytes { raw in
                let index = Int(raw.loadLE(UInt64.self, at: raw.count - GraphFormat.footerBytes))
                raw[version >= 5 ? index + 16 : index + 5] = 0
            }
            Self.reseal(&image, headerSeed: GraphFormat.headerSeed, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                        sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
            #expect(Self.codes(image) == [.graphBase], "version \(version)")
        }
        // Format 5: a group header, a length byte and the long table damaged and resealed.
        // User 0 follows 300 users 61 apart (6-bit gaps: a 256-byte entry, long), user 5 follows 0.
        let users = 20_000
        let longList = (0..<300).map { UInt32(1 + 61 * $0) }
        var followers: [Int: [UInt32]] = [0: [5]]
        for v in longList { followers[Int(v)] = [0] }
        let sound = Self.graphImage(users: users, following: [0: longList, 5: [0]], followers: followers)
        #expect(Self.codes(sound).isEmpty)
        let index = sound.withUnsafeBytes { Int($0.loadLE(UInt64.self, at: $0.count - GraphFormat.footerBytes)) }
        #expect(sound.withUnsafeBytes { $0.loadLE(UInt64.self, at: index) } == 1, "user 0's following list is a long entry")
        for (at, name) in [(index + 8 + GraphFormat.groupBytes, "second group's short base"), (index + 8 + 8 + 11, "user 5's length"),
                           (index + 8 + GraphFormat.groupCount(userCount: users) * GraphFormat.groupBytes, "long table")] {
            var damaged = sound
            damaged[at] &+= 1
            Self.reseal(&damaged, headerSeed: GraphFormat.headerSeed, footerBytes: GraphFormat.footerBytes, sections: GraphFormat.sectionCount,
                        sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
            #expect(Self.codes(damaged) == [.graphBase], "\(name)")
        }
    }

    // MARK: Search

    /// A segment of `n` documents: term "a" in every document (multi-block, mixed bodies), "b" in
    /// a few spread far apart (Rice), "c" in one.
    static func searchImage(documents n: Int) -> [UInt8] {
        var builder = SegmentBuilder(number: 7)
        for d in 0..<n { builder.addDocument(tweetID: UInt64(1000 + d * 3), time: UInt64(d)) }
        // (The builder is noncopyable, so it is passed in rather than captured.)
        func add(_ name: String, _ docs: [UInt32], to builder: inout SegmentBuilder) {
            let starts = Array(stride(from: 0, to: docs.count * 2, by: 2))
            let values = docs.flatMap { [UInt32($0 % 5), UInt32($0 % 5 + 3)] }
            builder.addTerm(Array(name.utf8), docs: docs, positionStarts: starts, positionValues: values)
        }
        add("a", (0..<UInt32(n)).reversed().filter { $0 % 11 != 4 }, to: &builder)
        add("b", [UInt32(n - 1), UInt32(n - 2), 200, 199, 198, 3, 2, 1], to: &builder)
        add("c", [5], to: &builder)
        let segment = builder.finish()
        return Array(UnsafeRawBufferPointer(segment.image))
    }

    static func searchCodes(_ image: [UInt8]) -> [CheckCode] {
        image.withUnsafeBytes { FrozenSegment.deepVerify($0).problems.map(\.code) }
    }

    /// Damages a copy through `edit` (the raw image, the offsets of the terms, postings and
    /// positions sections), reseals it and returns the deep check's codes.
    static func damaged(_ image: [UInt8], _ edit: (UnsafeMutableRawBufferPointer, Int, Int, Int) -> Void) -> [CheckCode] {
        var copy = image
        copy.withUnsafeMutableBytes { raw in
            let footer = raw.count - SearchFormat.footerBytes
            edit(raw, Int(raw.loadLE(UInt64.self, at: footer + 24)), Int(raw.loadLE(UInt64.self, at: footer + 72)),
                 Int(raw.loadLE(UInt64.self, at: footer + 96)))
        }
        reseal(&copy, headerSeed: SearchFormat.headerSeed, footerBytes: SearchFormat.footerBytes, sections: SearchFormat.sectionCount,
               sectionSeed: SearchFormat.sectionSeed, footerSeed: SearchFormat.footerSeed)
        return searchCodes(copy)
    }

    @Test func soundSearchSegmentIsClean() {
        let image = Self.searchImage(documents: 600)
        let result = image.withUnsafeBytes { FrozenSegment.deepVerify($0) }
        #expect(result.problems.isEmpty, "\(result.problems)")
        #expect(Self.damaged(image) { _, _, _, _ in }.isEmpty, "resealing alone changes nothing")
        // Both body kinds are exercised: some block of "a" or "b" is Rice-coded.
        let headers: [UInt8] = image.withUnsafeBytes { raw in
            let footer = raw.count - SearchFormat.footerBytes
            let terms = Int(raw.loadLE(UInt64.self, at: footer + 24)), postings = Int(raw.loadLE(UInt64.self, at: footer + 72))
            let b = Int(raw.loadLE(UInt64.self, at: terms + 32 + 16))
            return [raw[postings + b + 2]]
        }
        #expect(headers[0] & 0x80 != 0, "term b's body is Rice-coded (header \(headers[0]))")
    }

    @Test func malformedPostingListsAreReportedWithTheirCodes() {
        let image = Self.searchImage(documents: 600)
        // Term b (index 1): a one-block list of 8: varint 599 (2 bytes), then the body header.
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 32 + 16))
            raw[postings + p] = 0xFF; raw[postings + p + 1] = 0x0F // first document 2047 of 600
        } == [.searchPostingsRange])
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 32 + 16))
            raw[postings + p + 2] = 0x60 // neither a width nor a Rice or Elias-Fano header
        } == [.searchPostingsMalformed])
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 32 + 16))
            raw[postings + p + 2] = 0x00 // width 0: the body is 1 byte, the list longer
        } == [.searchPostingsLength])
        // Term c (index 2): one document, 5, in one byte; made a varint that runs on.
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 64 + 16))
            raw[postings + p] = 0x85
        } == [.searchPostingsMalformed])
        // Term c's count raised to 2: the count no longer matches its bytes, nor the header.
        let counted = Self.damaged(image) { raw, terms, _, _ in raw.storeLE(UInt32(2), at: terms + 64 + 8) }
        #expect(counted.contains(.searchPostingsCount), "\(counted)")
        #expect(counted.first == .searchPostingsLength || counted.first == .searchPositions, "\(counted)")
        // Term a (index 0, multi-block): block 1's positions offset moved.
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 16))
            raw.storeLE(raw.loadLE(UInt32.self, at: postings + p + 12 + 8) + 1, at: postings + p + 12 + 8)
        } == [.searchDirectory])
        // Term a: block 1's first document raised to block 0's: not decreasing.
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 16))
            raw.storeLE(UInt32(599), at: postings + p + 12)
        } == [.searchPostingsOrder])
        // Term a: block 1's body offset past the list.
        #expect(Self.damaged(image) { raw, terms, postings, _ in
            let p = Int(raw.loadLE(UInt64.self, at: terms + 16))
            raw.storeLE(UInt32(1 << 30), at: postings + p + 12 + 4)
        } == [.searchPostingsMalformed])
        // Term a's first posting has 0 positions (format 5: every posting of a has two, so all
        // are irregular; the first run follows block 0's 16 flag bytes and 128 posting bytes).
        #expect(Self.damaged(image) { raw, terms, _, positions in
            let q = Int(raw.loadLE(UInt64.self, at: terms + 24))
            raw[positions + q + 16 + 128] = 0
        } == [.searchPositions])
        // Term a's posting 1's byte (its run's offset, 3) one off.
        #expect(Self.damaged(image) { raw, terms, _, positions in
            let q = Int(raw.loadLE(UInt64.self, at: terms + 24))
            raw[positions + q + 16 + 1] += 1
        } == [.searchPositions])
        // Term a's posting 100's byte (a far run: 255) made near.
        #expect(Self.damaged(image) { raw, terms, _, positions in
            let q = Int(raw.loadLE(UInt64.self, at: terms + 24))
            raw[positions + q + 16 + 100] = 254
        } == [.searchPositions])
        // Term a's posting 3 flagged regular: its byte is not a position run's.
        #expect(Self.damaged(image) { raw, terms, _, positions in
            let q = Int(raw.loadLE(UInt64.self, at: terms + 24))
            raw[positions + q] &= ~UInt8(1 << 3)
        } == [.searchPositions])
        // A flag past the last block's postings (term b: one block of 8, flags in one byte: all
        // bits used; term a's last block: 600 - 55 - 4 * 128 = 33 postings).
        #expect(Self.damaged(image) { raw, terms, postings, positions in
            let q = Int(raw.loadLE(UInt64.self, at: terms + 24))
            let p = Int(raw.loadLE(UInt64.self, at: terms + 16))
            let last = Int(raw.loadLE(UInt32.self, at: postings + p + 4 * 12 + 8))
            raw[positions + q + last + 4] |= 0x80
        } == [.searchPositions])
        // Term b's postings said to start where a's do.
        #expect(Self.damaged(image) { raw, terms, _, _ in raw.storeLE(UInt64(0), at: terms + 32 + 16) }.first == .searchPostingsMalformed)
    }

    /// Random damage of many kinds, every time resealed: the deep check never traps nor reads
    /// outside the image (AddressSanitizer runs of the suite), and when it finds nothing the
    /// databases' own decoders read every list safely.
    @Test func randomResealedDamageNeverTraps() {
        var random = SeededRandom(seed: 0x5EED_DEE9)
        let search = Self.searchImage(documents: 400)
        let (following, followers) = Self.soundGraph(users: 300)
        let graph = Self.graphImage(users: 300, following: following, followers: followers)
        var caught = 0
        for trial in 0..<400 {
            let isGraph = trial % 2 == 0
            var copy = isGraph ? graph : search
            let footerBytes = isGraph ? GraphFormat.footerBytes : SearchFormat.footerBytes
            // Damage inside the sections (not header or footer, which `verify` guards).
            let span = copy.count - footerBytes - 64
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                copy[64 + Int.random(in: 0..<span, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            }
            if isGraph {
                Self.reseal(&copy, headerSeed: GraphFormat.headerSeed, footerBytes: footerBytes, sections: GraphFormat.sectionCount,
                            sectionSeed: GraphFormat.sectionSeed, footerSeed: GraphFormat.footerSeed)
                if !Self.codes(copy).isEmpty { caught += 1; continue }
                let image = UnsafeMutableRawBufferPointer.allocate(byteCount: copy.count, alignment: 8)
                copy.withUnsafeBytes { image.copyMemory(from: $0) }
                let base = GraphBase(image: image)
                var out = [UInt32](repeating: 0, count: base.edgeCount + 1)
                for adjacency in [base.following, base.followers] {
                    for u in 0..<UInt32(base.userCount) {
                        let (list, count) = adjacency.list(u)
                        guard let list else { continue }
                        out.withUnsafeMutableBufferPointer { adjacency.decode(list, count: count, into: $0.baseAddress!) }
                        #expect(out[0..<count].allSatisfy { Int($0) < base.userCount })
                    }
                }
            } else {
                Self.reseal(&copy, headerSeed: SearchFormat.headerSeed, footerBytes: footerBytes, sections: SearchFormat.sectionCount,
                            sectionSeed: SearchFormat.sectionSeed, footerSeed: SearchFormat.footerSeed)
                if !Self.searchCodes(copy).isEmpty { caught += 1; continue }
                let image = UnsafeMutableRawBufferPointer.allocate(byteCount: copy.count, alignment: 8)
                copy.withUnsafeBytes { image.copyMemory(from: $0) }
                let segment = FrozenSegment(image: image)
                for t in 0..<segment.termCount {
                    var docs: [UInt32] = [], starts: [Int] = [], positions: [UInt32] = []
                    segment.decodeAll(t, docs: &docs, positionStarts: &starts, positionValues: &positions)
                    #expect(docs.allSatisfy { Int($0) < segment.documentCount })
                }
            }
        }
        // Most damage is caught (a flipped byte of a document's time or a term's name is not a list).
        #expect(caught > 100, "\(caught) of 400 damaged images reported")
    }
}
