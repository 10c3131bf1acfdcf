/// `socialdb check --deep` for frozen search segments: every term's posting list and positions
/// stream decoded with bounds-checked code (`PostingCodec`'s decoders trust a list once its
/// section checksum passes) and their invariants checked: the term's document count of
/// documents, strictly decreasing and below the segment's document count, exactly filling the
/// bytes up to the next term's list; block directories that agree with the list; one positions
/// run per posting (format 5: a flag and byte per posting, each irregular byte its run's
/// offset), positions increasing, exactly filling the term's positions bytes; and the
/// terms' counts adding up to the header's posting count.
extension FrozenSegment {
    /// Checks an image; returns the problems found (at most `limit`) and how many more there were.
    public static func deepVerify(_ raw: UnsafeRawBufferPointer, limit: Int = 16) -> (problems: [DeepProblem], omitted: Int) {
        var found = DeepProblems(limit: limit)
        guard verify(raw) == nil else {
            found.add(.searchSegment, 0, "the file fails its basic checks; its lists are not decoded")
            return (found.problems, found.omitted)
        }
        let documentCount = Int(raw.loadLE(UInt64.self, at: 24))
        let termCount = Int(raw.loadLE(UInt64.self, at: 32))
        let postingCount = raw.loadLE(UInt64.self, at: 40)
        let footer = raw.count - SearchFormat.footerBytes
        func section(_ i: Int) -> (offset: Int, length: Int) {
            (Int(raw.loadLE(UInt64.self, at: footer + i * 24)), Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8)))
        }
        let terms = section(1), postings = section(3), positions = section(4)
        let postingsEnd = postings.length - PostingCodec.paddingBytes
        let positionsEnd = positions.length - PostingCodec.paddingBytes
        for (name, s, end, code) in [("postings", postings, postingsEnd, CheckCode.searchPostingsLength),
                                     ("positions", positions, positionsEnd, CheckCode.searchPositions)] {
            if let pad = raw[(s.offset + end)..<(s.offset + s.length)].firstIndex(where: { $0 != 0 }) {
                found.add(code, pad, "\(name): a non-zero byte in the decode padding")
            }
        }
        func entry(_ t: Int) -> (count: Int, postings: Int, positions: Int) {
            let e = terms.offset + t * SearchFormat.termEntryBytes
            // `verify` checked both offsets are inside their sections.
            return (Int(raw.loadLE(UInt32.self, at: e + 8)), Int(raw.loadLE(UInt64.self, at: e + 16)), Int(raw.loadLE(UInt64.self, at: e + 24)))
        }
        var total: UInt64 = 0
        var docs: [UInt32] = []
        var blockPositions: [Int] = []
        var next = termCount > 0 ? entry(0) : (count: 0, postings: postingsEnd, positions: positionsEnd)
        if next.postings != 0 { found.add(.searchPostingsLength, postings.offset, "the first \(next.postings) bytes of postings belong to no term") }
        if next.positions != 0 { found.add(.searchPositions, positions.offset, "the first \(next.positions) bytes of positions belong to no term") }
        for t in 0..<termCount {
            let current = next
            next = t + 1 < termCount ? entry(t + 1) : (count: 0, postings: postingsEnd, positions: positionsEnd)
            total += UInt64(current.count)
            let label = "term \(t) (\(current.count) documents)"
            let entryAt = terms.offset + t * SearchFormat.termEntryBytes
            guard next.postings > current.postings else {
                found.add(.searchPostingsMalformed, entryAt + SearchFormat.termEntryBytes + 16,
                          "term \(t + 1)'s postings start at \(next.postings), not after term \(t)'s (\(current.postings))")
                continue
            }
            guard next.positions > current.positions else {
                found.add(.searchPositions, entryAt + SearchFormat.termEntryBytes + 24,
                          "term \(t + 1)'s positions start at \(next.positions), not after term \(t)'s (\(current.positions))")
                continue
            }
            let listAt = postings.offset + current.postings
            let list = UnsafeRawBufferPointer(rebasing: raw[listAt..<(postings.offset + next.postings)])
            docs.removeAll(keepingCapacity: true)
            blockPositions.removeAll(keepingCapacity: true)
            if let (code, offset, detail) = PostingCodec.checkedDecode(list, count: current.count, documentCount: documentCount,
                                                                       into: &docs, blockPositions: &blockPositions) {
                found.add(code, listAt + offset, "\(label): \(detail)")
                continue
            }
            let streamAt = positions.offset + current.positions
            let stream = UnsafeRawBufferPointer(rebasing: raw[streamAt..<(positions.offset + next.positions)])
            let version = raw.loadLE(UInt32.self, at: 8)
            let problem = version >= 5
                ? PostingCodec.checkedRegularPositions(stream, postings: current.count, blockPositions: blockPositions)
                : PostingCodec.checkedPositions(stream, postings: current.count, blockPositions: blockPositions, checkpoints: version == 4)
            if let (code, offset, detail) = problem {
                found.add(code, (code == .searchDirectory ? listAt : streamAt) + offset, "\(label): \(detail)")
            }
        }
        if total != postingCount {
            found.add(.searchPostingsCount, 40, "the terms hold \(total) postings, the header says \(postingCount)")
        }
        return (found.problems, found.omitted)
    }
}

extension PostingCodec {
    /// Decodes the coded list that is exactly `list` (`count` >= 1 documents), appending them to
    /// `docs` and each block's directory positions offset to `blockPositions` (a one-block list
    /// has none: 0), checking every byte: directory offsets inside the list, known body headers,
    /// documents strictly decreasing and below `documentCount`, every body ending exactly where
    /// the next begins (the last at the list's end) with zero padding bits.
    /// Returns the first problem (code, offset within `list`, what), or nil.
    public static func checkedDecode(_ list: UnsafeRawBufferPointer, count: Int, documentCount: Int,
                                     into docs: inout [UInt32], blockPositions: inout [Int]) -> (CheckCode, Int, String)? {
        guard count > 0 else { return (.searchPostingsMalformed, 0, "a term with no documents") }
        if count <= blockSize {
            var at = 0
            guard let first = checkedVarint(list, &at) else { return (.searchPostingsMalformed, 0, "the first document's varint runs past the list") }
            blockPositions.append(0)
            return checkedBlock(list, from: at, to: list.count, first: first, size: count, documentCount: documentCount, into: &docs)
        }
        let blocks = (count + blockSize - 1) / blockSize
        let directory = blocks * directoryEntryBytes
        guard directory <= list.count else { return (.searchPostingsMalformed, 0, "a directory of \(blocks) blocks is longer than the list (\(list.count) bytes)") }
        for b in 0..<blocks {
            let e = b * directoryEntryBytes
            let first = UInt64(list.loadLE(UInt32.self, at: e))
            let start = Int(list.loadLE(UInt32.self, at: e + 4))
            let end = b + 1 < blocks ? Int(list.loadLE(UInt32.self, at: e + directoryEntryBytes + 4)) : list.count
            blockPositions.append(Int(list.loadLE(UInt32.self, at: e + 8)))
            guard b > 0 || start == directory else { return (.searchPostingsMalformed, 4, "the first body starts at \(start), not after the directory (\(directory))") }
            guard start <= end, end <= list.count else {
                return (.searchPostingsMalformed, e + 4, "block \(b)'s body (\(start)..<\(end)) is not inside the list (\(list.count) bytes)")
            }
            if let last = docs.last, first >= UInt64(last) {
                return (.searchPostingsOrder, e, "block \(b) starts at document \(first), not below the document before (\(last))")
            }
            let size = min(blockSize, count - b * blockSize)
            if let problem = checkedBlock(list, from: start, to: end, first: first, size: size, documentCount: documentCount, into: &docs) {
                return problem
            }
        }
        return nil
    }

    /// One block in `list[from..<to]`: `first`, then (when `size` > 1) a body of `size - 1` gaps.
    static func checkedBlock(_ list: UnsafeRawBufferPointer, from: Int, to: Int, first: UInt64, size: Int, documentCount: Int,
                             into docs: inout [UInt32]) -> (CheckCode, Int, String)? {
        guard first < UInt64(documentCount) else {
            return (.searchPostingsRange, from, "document \(first) is not below the document count \(documentCount)")
        }
        docs.append(UInt32(first))
        var doc = first
        let body = UnsafeRawBufferPointer(rebasing: list[from..<to])
        guard size > 1 else {
            return body.isEmpty ? nil : (.searchPostingsLength, from, "\(body.count) bytes after a block of one document")
        }
        guard !body.isEmpty else { return (.searchPostingsLength, from, "a block of \(size) documents without a body") }
        func next(_ gap: UInt64, _ at: Int) -> (CheckCode, Int, String)? {
            guard gap < doc else { return (.searchPostingsOrder, from + at, "gap \(gap) after document \(doc) goes below 0") }
            doc -= gap + 1
            docs.append(UInt32(doc))
            return nil
        }
        let header = body.load(as: UInt8.self)
        if header <= 32 {
            let width = Int(header)
            let need = 1 + ((size - 1) * width + 7) >> 3
            guard body.count == need else {
                return (.searchPostingsLength, from, "a body of \(size - 1) gaps at \(width) bits takes \(need) bytes, not \(body.count)")
            }
            var bits = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1...]))
            for _ in 1..<size {
                guard let gap = bits.take(width) else { return (.searchPostingsLength, from, "gaps run past the body") }
                if let problem = next(gap, 1 + bits.bit >> 3) { return problem }
            }
            if !bits.finishByte() { return (.searchPostingsLength, from + body.count - 1, "non-zero padding bits after the last gap") }
            return nil
        }
        if header & 0xE0 == eliasFanoFlag {
            // Elias-Fano: e_i = first - doc_i - 1 = (zeros before its one bit) << l | its low
            // bits, strictly increasing.
            let l = Int(header & 0x1F)
            let lowBytes = ((size - 1) * l + 7) >> 3
            guard 1 + lowBytes <= body.count else { return (.searchPostingsLength, from, "the Elias-Fano low bits run past the body") }
            var low = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1..<(1 + lowBytes)]))
            var high = CheckedBits(UnsafeRawBufferPointer(rebasing: body[(1 + lowBytes)...]))
            var highPart: UInt64 = 0
            var previous: UInt64?
            for _ in 1..<size {
                guard let bits = low.take(l) else { return (.searchPostingsLength, from, "the Elias-Fano low bits run past their bytes") }
                guard let zeros = high.unary() else { return (.searchPostingsLength, from + body.count, "an Elias-Fano high part runs past the body") }
                highPart += UInt64(zeros)
                guard highPart < 1 << 32 else { return (.searchPostingsOrder, from + 1 + lowBytes + high.bit >> 3, "an Elias-Fano high part of \(highPart)") }
                let e = highPart << UInt64(l) | bits
                let at = 1 + lowBytes + high.bit >> 3
                if let previous, e <= previous {
                    return (.searchPostingsOrder, from + at, "Elias-Fano offsets not increasing (\(e) after \(previous))")
                }
                guard e < first else { return (.searchPostingsOrder, from + at, "offset \(e) below document \(first) goes below 0") }
                docs.append(UInt32(first - 1 - e))
                previous = e
            }
            if !low.finishByte() { return (.searchPostingsLength, from + lowBytes, "non-zero padding bits after the Elias-Fano low bits") }
            if !high.finishByte() { return (.searchPostingsLength, from + 1 + lowBytes + (high.bit >> 3) - 1, "non-zero padding bits after the last high part") }
            if high.bit >> 3 != high.bytes.count {
                return (.searchPostingsLength, from + 1 + lowBytes + high.bit >> 3, "\(high.bytes.count - high.bit >> 3) bytes after the block's last document")
            }
            return nil
        }
        guard header & riceFlag != 0, header & 0x60 == 0 else { return (.searchPostingsMalformed, from, "unknown body header \(header)") }
        let k = Int(header & 0x1F)
        let lowBytes = ((size - 1) * k + 7) >> 3
        guard 1 + lowBytes <= body.count else { return (.searchPostingsLength, from, "the Rice low bits run past the body") }
        var low = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1..<(1 + lowBytes)]))
        var high = CheckedBits(UnsafeRawBufferPointer(rebasing: body[(1 + lowBytes)...]))
        for _ in 1..<size {
            guard let bits = low.take(k) else { return (.searchPostingsLength, from, "the Rice low bits run past their bytes") }
            guard let quotient = high.unary() else { return (.searchPostingsLength, from + body.count, "a Rice quotient runs past the body") }
            guard quotient < 1 << 32 else { return (.searchPostingsOrder, from + 1 + lowBytes + high.bit >> 3, "a Rice quotient of \(quotient)") }
            if let problem = next(UInt64(quotient) << UInt64(k) | bits, 1 + lowBytes + high.bit >> 3) { return problem }
        }
        if !low.finishByte() { return (.searchPostingsLength, from + lowBytes, "non-zero padding bits after the Rice low bits") }
        if !high.finishByte() { return (.searchPostingsLength, from + 1 + lowBytes + (high.bit >> 3) - 1, "non-zero padding bits after the last quotient") }
        if high.bit >> 3 != high.bytes.count {
            return (.searchPostingsLength, from + 1 + lowBytes + high.bit >> 3, "\(high.bytes.count - high.bit >> 3) bytes after the block's last gap")
        }
        return nil
    }

    /// One posting's run at `at` (varint count >= 1, then the first position and each later
    /// one minus the one before minus 1), moving `at` past it.
    static func checkedRun(_ stream: UnsafeRawBufferPointer, _ at: inout Int, posting i: Int) -> (CheckCode, Int, String)? {
        let runAt = at
        guard let count = checkedVarint(stream, &at) else { return (.searchPositions, runAt, "posting \(i): the count's varint runs past the stream") }
        guard count >= 1, count <= UInt64(stream.count - at) else { return (.searchPositions, runAt, "posting \(i): \(count) positions") }
        var position: UInt64 = 0
        for p in 0..<Int(count) {
            let valueAt = at
            guard let value = checkedVarint(stream, &at) else { return (.searchPositions, valueAt, "posting \(i): a position's varint runs past the stream") }
            position = p == 0 ? value : position &+ value &+ 1
            guard value <= UInt64(UInt32.max), position <= UInt64(UInt32.max) else {
                return (.searchPositions, valueAt, "posting \(i): position passes UInt32")
            }
        }
        return nil
    }

    /// The format 5 positions stream that is exactly `stream`, for `postings` postings: per
    /// block of 128, at the block's directory positions offset (`blockPositions[b]`, each block
    /// right after the one before): the flag bitmap (no bit set past the block's size), a byte
    /// per posting (an irregular one's: its run's offset from the first run, or `farRunMark`
    /// from there on) and the irregular postings' runs (as `checkedRun`).
    public static func checkedRegularPositions(_ stream: UnsafeRawBufferPointer, postings: Int, blockPositions: [Int]) -> (CheckCode, Int, String)? {
        var at = 0
        var b = 0
        var from = 0
        while from < postings {
            let size = min(blockSize, postings - from)
            if b < blockPositions.count, blockPositions[b] != at {
                return (.searchDirectory, b * directoryEntryBytes + 8,
                        "block \(b)'s positions offset is \(blockPositions[b]), but its positions start at \(at)")
            }
            let flagBytes = (size + 7) / 8
            guard flagBytes + size <= stream.count - at else { return (.searchPositions, at, "block \(b): its flags and bytes run past the stream") }
            if size % 8 != 0, stream[at + flagBytes - 1] >> UInt8(size % 8) != 0 {
                return (.searchPositions, at + flagBytes - 1, "block \(b): a flag set past its \(size) postings")
            }
            let flagsAt = at
            let bytesAt = at + flagBytes
            at = bytesAt + size
            let runsAt = at
            for i in 0..<size where stream[flagsAt + i / 8] & (UInt8(1) << UInt8(i % 8)) != 0 {
                let expected = UInt8(min(at - runsAt, Int(farRunMark)))
                if stream[bytesAt + i] != expected {
                    return (.searchPositions, bytesAt + i, "posting \(from + i): its byte is \(stream[bytesAt + i]), its run is at \(at - runsAt)")
                }
                if let problem = checkedRun(stream, &at, posting: from + i) { return problem }
            }
            from += size
            b += 1
        }
        if at != stream.count { return (.searchPositions, at, "\(stream.count - at) bytes after the last posting's positions") }
        return nil
    }

    /// The positions stream that is exactly `stream`, of `postings` runs (varint count >= 1, then
    /// the first position and each later one minus the one before minus 1). Checks each block's
    /// directory positions offset (`blockPositions[b]`, the run of posting b*128) against it.
    /// With `checkpoints` (format 4 on), each block's positions start with its checkpoint
    /// table, whose every entry must be where that posting's positions start.
    public static func checkedPositions(_ stream: UnsafeRawBufferPointer, postings: Int, blockPositions: [Int],
                                        checkpoints: Bool = false) -> (CheckCode, Int, String)? {
        var at = 0
        var table: [Int] = []
        var tableEnd = 0
        let interval = positionCheckpointInterval
        for i in 0..<postings {
            if i % blockSize == 0, postings > blockSize {
                let b = i / blockSize
                if b < blockPositions.count, blockPositions[b] != at {
                    return (.searchDirectory, b * directoryEntryBytes + 8,
                            "block \(b)'s positions offset is \(blockPositions[b]), but its first posting's positions start at \(at)")
                }
            }
            if checkpoints && i % blockSize == 0 {
                let entries = (min(blockSize, postings - i) - 1) / interval
                guard entries * 4 <= stream.count - at else { return (.searchPositions, at, "posting \(i): the block's checkpoint table runs past the stream") }
                table = (0..<entries).map { Int(stream.loadLE(UInt32.self, at: at + $0 * 4)) }
                at += entries * 4
                tableEnd = at
            } else if checkpoints && (i % blockSize) % interval == 0 {
                let mark = table[(i % blockSize) / interval - 1]
                if mark != at - tableEnd {
                    return (.searchPositions, tableEnd, "posting \(i): its checkpoint says \(mark), its positions start at \(at - tableEnd)")
                }
            }
            let runAt = at
            guard let count = checkedVarint(stream, &at) else { return (.searchPositions, runAt, "posting \(i): the count's varint runs past the stream") }
            guard count >= 1, count <= UInt64(stream.count - at) else { return (.searchPositions, runAt, "posting \(i): \(count) positions") }
            var position: UInt64 = 0
            for p in 0..<Int(count) {
                let valueAt = at
                guard let value = checkedVarint(stream, &at) else { return (.searchPositions, valueAt, "posting \(i): a position's varint runs past the stream") }
                position = p == 0 ? value : position &+ value &+ 1
                guard value <= UInt64(UInt32.max), position <= UInt64(UInt32.max) else {
                    return (.searchPositions, valueAt, "posting \(i): position passes UInt32")
                }
            }
        }
        if at != stream.count { return (.searchPositions, at, "\(stream.count - at) bytes after the last posting's positions") }
        return nil
    }
}
