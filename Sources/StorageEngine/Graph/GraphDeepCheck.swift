/// `socialdb check --deep` for graph bases: every adjacency list of both directions decoded with
/// bounds-checked code (`GraphCodec`'s decoders trust a list once its section checksum passes)
/// and its invariants checked: the index's degree of values, exactly filling the bytes up to the
/// next user's list; strictly increasing user numbers below the user count; and both directions
/// holding the same edges (a follows b exactly when a is among b's followers).
///
/// Memory: the followers direction is decoded whole (4 bytes per edge) so the following lists
/// can be matched against it in one pass.
extension GraphBase {
    /// Checks an image that `verify` accepted (its sections and index entries are in bounds).
    /// Returns the problems found (at most `limit`) and how many more there were.
    public static func deepVerify(_ raw: UnsafeRawBufferPointer, limit: Int = 16) -> (problems: [DeepProblem], omitted: Int) {
        var found = DeepProblems(limit: limit)
        guard verify(raw) == nil else {
            found.add(.graphBase, 0, "the file fails its basic checks; its lists are not decoded")
            return (found.problems, found.omitted)
        }
        let userCount = Int(raw.loadLE(UInt64.self, at: 32))
        let edgeCount = Int(raw.loadLE(UInt64.self, at: 40))
        let footer = raw.count - GraphFormat.footerBytes
        func section(_ i: Int) -> (offset: Int, length: Int) {
            (Int(raw.loadLE(UInt64.self, at: footer + i * 24)), Int(raw.loadLE(UInt64.self, at: footer + i * 24 + 8)))
        }
        let version = raw.loadLE(UInt32.self, at: 8)
        let grouped = version >= 5
        let filtered = GraphFormat.filteredIndex(version: version, direction: 1)
        // Where user b's index entry (format 5: its degree and length pair; format 7: its
        // degree byte) is, for reports.
        func followersEntry(_ b: Int) -> Int {
            filtered ? section(2).offset + (b >> GraphFormat.filteredShift) * GraphFormat.filteredBytes + GraphFormat.filteredDegreesAt
                + (b & (GraphFormat.filteredUsers - 1))
            : grouped ? section(2).offset + 8 + (b >> GraphFormat.groupShift) * GraphFormat.groupBytes + 8 + (b & (GraphFormat.groupUsers - 1)) * 2
                : section(2).offset + b * GraphFormat.indexEntryBytes
        }
        // Format 7: each follower list's filter against its values (read from the record).
        func storedFilter(_ b: Int) -> (at: Int, bits: Int) {
            let at = section(2).offset + (b >> GraphFormat.filteredShift) * GraphFormat.filteredBytes + GraphFormat.filteredFiltersAt
                + 3 * (b & (GraphFormat.filteredUsers - 1)) / 2
            return (at, (Int(raw.loadLE(UInt16.self, at: at)) >> (4 * (b & 1))) & 0xFFF)
        }
        var filters = DeepProblems(limit: 4)
        // Followers first (direction 1), kept whole; then following (direction 0), matched against it.
        var followerStart = [Int](repeating: 0, count: userCount + 1)
        var followerValues: [UInt32] = []
        followerValues.reserveCapacity(min(edgeCount, 1 << 26))
        var followersSound = true
        let followersDecoded = decodeDirection(raw, direction: 1, lists: section(3), userCount: userCount, name: "followers",
                                               &found) { user, values in
            followerStart[user] = followerValues.count
            if let values { followerValues.append(contentsOf: values) } else { followersSound = false }
            if filtered, let values {
                let expected = values.withUnsafeBufferPointer { values.isEmpty ? 0 : GraphFormat.filter($0) }
                let (at, bits) = storedFilter(user)
                if UInt64(bits) != expected {
                    filters.add(.graphFilter, at, "followers of user \(user): filter \(bits) in the index, \(expected) from its \(values.count) values")
                }
            }
        }
        for problem in filters.problems { found.add(problem.code, problem.offset, problem.detail) }
        found.omitted += filters.omitted
        followerStart[userCount] = followerValues.count
        var consumed = [Int](repeating: 0, count: followersSound && followersDecoded ? userCount : 0)
        // The direction problems apart (the closure cannot touch `found` while it is passed inout).
        var directions = DeepProblems(limit: 4)
        let followingDecoded = decodeDirection(raw, direction: 0, lists: section(1), userCount: userCount, name: "following",
                                               &found) { user, values in
            // A damaged list ends the matching: the edges after it would all be off by its own.
            guard let values else { consumed = []; return }
            guard !consumed.isEmpty else { return }
            for v in values {
                let b = Int(v)
                let at = followerStart[b] + consumed[b]
                if at < followerStart[b + 1] && followerValues[at] == UInt32(user) {
                    consumed[b] += 1
                } else {
                    directions.add(.graphDirections, followersEntry(b),
                                   "user \(user) follows \(b), but \(b)'s followers list does not hold \(user) where it should")
                }
            }
        }
        if followingDecoded && !consumed.isEmpty && directions.problems.isEmpty {
            for b in 0..<userCount where consumed[b] != followerStart[b + 1] - followerStart[b] {
                let extra = followerValues[followerStart[b] + consumed[b]]
                directions.add(.graphDirections, followersEntry(b),
                               "\(b)'s followers list holds \(extra), who does not follow \(b)")
                break
            }
        }
        for problem in directions.problems { found.add(problem.code, problem.offset, problem.detail) }
        found.omitted += directions.omitted
        return (found.problems, found.omitted)
    }

    /// Decodes every list of one direction in user order, calling `body` with each user's values
    /// (nil for a damaged list). Returns whether every list decoded.
    static func decodeDirection(_ raw: UnsafeRawBufferPointer, direction: Int, lists: (offset: Int, length: Int),
                                userCount: Int, name: String, _ found: inout DeepProblems,
                                _ body: (Int, [UInt32]?) -> Void) -> Bool {
        let listsEnd = lists.length - GraphCodec.paddingBytes
        if let pad = raw[(lists.offset + listsEnd)..<(lists.offset + lists.length)].firstIndex(where: { $0 != 0 }) {
            found.add(.graphListLength, pad, "\(name) lists: a non-zero byte in the decode padding")
        }
        let grouped = raw.loadLE(UInt32.self, at: 8) >= 5
        let rice = direction == 1 && GraphFormat.riceFollowers(version: raw.loadLE(UInt32.self, at: 8))
        var sound = true
        var values: [UInt32] = []
        // Format 5's index places every entry (`verify` checked that short entries fill the
        // section up to the long ones, which follow back to back); formats 3 and 4 give offsets
        // only, so bytes before the first list are checked here.
        if !grouped && userCount > 0 {
            var first = 0
            GraphFormat.forEachEntry(raw, direction: direction) { user, offset, _, _ in if user == 0 { first = offset } }
            if first != 0 {
                found.add(.graphListLength, lists.offset, "\(name) lists: the first \(first) bytes belong to no list")
                sound = false
            }
        }
        GraphFormat.forEachEntry(raw, direction: direction) { u, start, length, degree in
            // `verify` checked that every entry lies inside the section.
            let at = lists.offset + start
            let bytes = UnsafeRawBufferPointer(rebasing: raw[at..<(at + length)])
            if degree == 0 {
                if length > 0 {
                    found.add(.graphListLength, at, "\(name) of user \(u): degree 0, but \(length) bytes before the next list")
                    sound = false
                }
                body(u, [])
                return
            }
            var count = degree
            var listBytes = bytes
            var listAt = at
            if degree >= Int(GraphFormat.degreeEscape) {
                count = bytes.count >= 4 ? Int(bytes.loadLE(UInt32.self, at: 0)) : 0
                if count < Int(GraphFormat.degreeEscape) {
                    found.add(.graphListMalformed, at, "\(name) of user \(u): escaped degree \(count) (an escape is for 255 or more)")
                    sound = false
                    body(u, nil)
                    return
                }
                listBytes = UnsafeRawBufferPointer(rebasing: bytes[4...])
                listAt += 4
            }
            values.removeAll(keepingCapacity: true)
            let problem = rice ? GraphRiceCodec.checkedDecode(listBytes, count: count, into: &values)
                : GraphCodec.checkedDecode(listBytes, count: count, into: &values)
            if let (code, offset, detail) = problem {
                found.add(code, listAt + offset, "\(name) of user \(u) (\(count) values): \(detail)")
                sound = false
                body(u, nil)
                return
            }
            if let last = values.last, Int(last) >= userCount {
                let i = values.firstIndex { Int($0) >= userCount } ?? 0
                found.add(.graphListRange, listAt, "\(name) of user \(u): value \(values[i]) (index \(i)) is not below the user count \(userCount)")
                sound = false
                body(u, nil)
                return
            }
            body(u, values)
        }
        return sound
    }
}

extension GraphCodec {
    /// Decodes the coded list that is exactly `list` (`count` >= 1 values), appending them to
    /// `out`, checking every byte: directory offsets inside the list, known mode bytes, varints
    /// inside their body, values strictly increasing and at most UInt32.max, every body ending
    /// exactly where the next begins (the last at the list's end) with zero padding bits.
    /// Returns the first problem (code, offset within `list`, what), or nil.
    public static func checkedDecode(_ list: UnsafeRawBufferPointer, count: Int, into out: inout [UInt32]) -> (CheckCode, Int, String)? {
        guard count > 0 else { return list.isEmpty ? nil : (.graphListLength, 0, "\(list.count) bytes for an empty list") }
        var previous: UInt64?
        if count <= blockSize {
            var at = 0
            guard let first = checkedVarint(list, &at) else { return (.graphListMalformed, 0, "the first value's varint runs past the list") }
            guard first <= UInt64(UInt32.max) else { return (.graphListRange, 0, "first value \(first) is past UInt32") }
            return checkedBody(list, from: at, to: list.count, first: first, size: count, previous: &previous, into: &out)
        }
        let blocks = (count + blockSize - 1) >> blockShift
        let directory = blocks * directoryEntryBytes
        guard directory <= list.count else { return (.graphListMalformed, 0, "a directory of \(blocks) blocks is longer than the list (\(list.count) bytes)") }
        for b in 0..<blocks {
            let first = UInt64(list.loadLE(UInt32.self, at: b * 8))
            let start = Int(list.loadLE(UInt32.self, at: b * 8 + 4))
            let end = b + 1 < blocks ? Int(list.loadLE(UInt32.self, at: b * 8 + 12)) : list.count
            guard b > 0 || start == directory else { return (.graphListMalformed, 4, "the first body starts at \(start), not after the directory (\(directory))") }
            guard start <= end, end <= list.count else {
                return (.graphListMalformed, b * 8 + 4, "block \(b)'s body (\(start)..<\(end)) is not inside the list (\(list.count) bytes)")
            }
            let size = min(blockSize, count - (b << blockShift))
            if let problem = checkedBody(list, from: start, to: end, first: first, size: size, previous: &previous, into: &out) { return problem }
        }
        return nil
    }

    /// One body in `list[from..<to]`: mode byte, then the `size - 1` gaps after `first`.
    static func checkedBody(_ list: UnsafeRawBufferPointer, from: Int, to: Int, first: UInt64, size: Int,
                            previous: inout UInt64?, into out: inout [UInt32]) -> (CheckCode, Int, String)? {
        if let previous, first <= previous { return (.graphListOrder, from, "a block starts at \(first), not above the value before (\(previous))") }
        out.append(UInt32(first))
        var value = first
        guard from < to else { return (.graphListLength, from, "a body without its mode byte") }
        let body = UnsafeRawBufferPointer(rebasing: list[from..<to])
        let mode = body.load(as: UInt8.self)
        if mode == varintMode {
            var at = 1
            for _ in 1..<size {
                let gapAt = at
                guard let gap = checkedVarint(body, &at) else { return (.graphListMalformed, from + gapAt, "a gap's varint runs past the body") }
                guard gap < UInt64(UInt32.max), value + gap + 1 <= UInt64(UInt32.max) else {
                    return (.graphListRange, from + gapAt, "gap \(gap) after \(value) passes UInt32")
                }
                value += gap + 1
                out.append(UInt32(value))
            }
            if at != body.count { return (.graphListLength, from + at, "\(body.count - at) bytes after the block's last gap") }
        } else if mode <= 32 {
            let width = Int(mode)
            let need = 1 + ((size - 1) * width + 7) >> 3
            guard body.count == need else {
                return (.graphListLength, from, "a body of \(size - 1) gaps at \(width) bits takes \(need) bytes, not \(body.count)")
            }
            var bits = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1...]))
            for _ in 1..<size {
                guard let gap = bits.take(width) else { return (.graphListLength, from, "gaps run past the body") }
                guard value + gap + 1 <= UInt64(UInt32.max) else { return (.graphListRange, from, "gap \(gap) after \(value) passes UInt32") }
                value += gap + 1
                out.append(UInt32(value))
            }
            if !bits.finishByte() { return (.graphListLength, from + body.count - 1, "non-zero padding bits after the last gap") }
        } else if mode >= riceMode && Int(mode - riceMode) <= riceParameterMax {
            let k = Int(mode - riceMode)
            var bits = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1...]))
            var lows: [UInt64] = []
            lows.reserveCapacity(size - 1)
            for _ in 1..<size {
                guard let low = bits.take(k) else { return (.graphListLength, from, "Rice low bits run past the body") }
                lows.append(low)
            }
            for low in lows {
                guard let quotient = bits.unary() else { return (.graphListLength, from, "a Rice quotient runs past the body") }
                guard quotient < (1 << 32) else { return (.graphListRange, from, "a Rice quotient of \(quotient) passes UInt32") }
                let gap = UInt64(quotient) << UInt64(k) | low
                guard gap < UInt64(UInt32.max), value + gap + 1 <= UInt64(UInt32.max) else {
                    return (.graphListRange, from, "gap \(gap) after \(value) passes UInt32")
                }
                value += gap + 1
                out.append(UInt32(value))
            }
            if !bits.finishByte() { return (.graphListLength, from + body.count - 1, "non-zero padding bits after the last quotient") }
            if bits.byteOffset != body.count - 1 {
                return (.graphListLength, from + 1 + bits.byteOffset, "\(body.count - 1 - bits.byteOffset) bytes after the block's last quotient")
            }
        } else if mode >= adaptiveMode && Int(mode - adaptiveMode) <= riceParameterMax {
            var state = AdaptiveRice(initial: Int(mode - adaptiveMode))
            var bits = CheckedBits(UnsafeRawBufferPointer(rebasing: body[1...]))
            for _ in 1..<size {
                let k = state.parameter()
                guard let quotient = bits.unary() else { return (.graphListLength, from, "an adaptive Rice quotient runs past the body") }
                guard quotient < (1 << 32) else { return (.graphListRange, from, "a Rice quotient of \(quotient) passes UInt32") }
                guard let low = bits.take(k) else { return (.graphListLength, from, "adaptive Rice low bits run past the body") }
                let gap = UInt64(quotient) << UInt64(k) | low
                guard gap < UInt64(UInt32.max), value + gap + 1 <= UInt64(UInt32.max) else {
                    return (.graphListRange, from, "gap \(gap) after \(value) passes UInt32")
                }
                value += gap + 1
                out.append(UInt32(value))
                state.update(gap)
            }
            if !bits.finishByte() { return (.graphListLength, from + body.count - 1, "non-zero padding bits after the last gap") }
            if bits.byteOffset != body.count - 1 {
                return (.graphListLength, from + 1 + bits.byteOffset, "\(body.count - 1 - bits.byteOffset) bytes after the block's last gap")
            }
        } else {
            return (.graphListMalformed, from, "unknown mode byte \(mode)")
        }
        previous = value
        return nil
    }
}
