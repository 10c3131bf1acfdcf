/// A cursor over one term's postings in one segment, newest (largest document) first.
///
/// One concrete struct for both kinds of segment (a flag, not an existential), so the query
/// loop is monomorphic and allocation-free: a frozen cursor decodes one block of 128 documents
/// at a time into a buffer the query owns; an active cursor walks the chunk chain.
///
/// `seek(atOrBelow:)` must be called with non-increasing targets; it returns the largest
/// document at or below the target, or -1 when the list is exhausted.
struct PostingCursor {
    static let notStarted = Int32.max

    var doc: Int32 = PostingCursor.notStarted
    let isActive: Bool
    /// The list's document count (the conjunction moves the shortest list first).
    var length = 0

    // Active segment.
    var chunk: UnsafePointer<UInt64>?
    var entryIndex = 0

    // Frozen segment.
    var list: UnsafeRawPointer?
    var count = 0
    var blockCount = 0
    var positionsBase: UnsafeRawPointer?
    var buffer: UnsafeMutablePointer<UInt32>?
    var block = -1
    var blockLength = 0
    var inBlock = 0
    var blockPositions = 0
    var positionIndex = 0
    var positionOffset = 0
    /// Format 4 on: each block's positions start with a table of offsets of postings 16, 32,
    /// ... (from the end of the table, which `blockPositions` then points past);
    /// `positionTable` is where the current block's table starts.
    var checkpoints = false
    var positionTable = 0
    /// Format 5 on: each block's positions are a flag bitmap (bit i: posting i is irregular),
    /// one byte per posting (a regular posting's one position) and the irregular postings'
    /// runs after a checkpoint table of their own; `blockPositions` points at the flags and
    /// `positionsSize` is the block's posting count.
    var regular = false
    var positionsSize = 0
    /// A block Rice-coded with k = 0 is not decoded: its unary run is a bitmap of the block
    /// (bit `first - doc - 1` set for each later document), searched in place. Then `bits`
    /// points at it, `blockLength` is 0 (so the inline step never reads the buffer), `span` is
    /// one past the last document's bit and `bitIndex` the current document's bit + 1 (0 for
    /// the block's first); `inBlock` is computed from it only when positions are read.
    var bits: UnsafeRawPointer?
    var blockFirst: Int32 = 0
    var span = 0
    var bitIndex = 0
    /// Whether Elias-Fano blocks are searched in place rather than decoded: set for the cursors
    /// that confirm another list's documents in a conjunction (they skip most of their
    /// documents, so decoding them all costs more than stepping over them in place).
    var inPlace = false
    /// Whether every block is decoded into `buffer`, bitmap blocks (Rice, k = 0) included: set
    /// for the two cursors of a conjunction answered by `SearchIndex.intersectFiltered`, which
    /// reads their documents from the buffers.
    var decodeBitmaps = false
    /// An Elias-Fano block searched in place (`inPlace`): `high` points at its one bits (the
    /// document e_i = blockFirst - doc - 1 at bit (e_i >> lowBits) + (i - 1)), `lows` at its
    /// low bits; `element` is the current document's index in the block (0: the block's first,
    /// which has no bits) and `elementBit` its one bit (-1 for the first); `highLast` is the
    /// last document's high part, so a target beyond it moves to the next block at once.
    var high: UnsafeRawPointer?
    var lows: UnsafeRawPointer?
    var lowBits = 0
    var element = 0
    var elementBit = -1
    var highLast = 0
    var blockSizeNow = 0

    /// An exhausted cursor (a term the segment lacks).
    init() {
        isActive = true
        doc = -1
    }

    init(active view: ActiveSegment.TermView) {
        isActive = true
        chunk = view.head
        entryIndex = view.headCount - 1
        length = view.documentCount
    }

    init(frozen info: FrozenSegment.TermInfo) {
        isActive = false
        list = info.postings
        count = info.count
        length = info.count
        blockCount = (info.count + PostingCodec.blockSize - 1) / PostingCodec.blockSize
        positionsBase = info.positions
        checkpoints = info.checkpoints
        regular = info.regular
    }

    @inline(__always)
    mutating func seek(atOrBelow target: Int32) -> Int32 {
        if doc <= target && doc != Self.notStarted { return doc }
        if doc < 0 { return -1 }
        // The usual steps of a frozen cursor, inline: forward through the decoded block when
        // the target is inside it (its last document is at or below the target, so the scan
        // stops there at the latest). `blockLength` is 0 for an active cursor, a frozen one
        // before its first block and a bitmap block. More than 16 steps away, `seekFrozen`
        // binary-searches from the 16th.
        let end = blockLength
        if end > 0 {
            let docs = buffer.unsafelyUnwrapped
            if Int32(bitPattern: docs[end &- 1]) <= target {
                var next = inBlock &+ 1
                let far = next &+ 15
                if far < end && Int32(bitPattern: docs[far]) > target {
                    inBlock = far
                    return seekFrozen(target)
                }
                while Int32(bitPattern: docs[next]) > target { next &+= 1 }
                inBlock = next
                doc = Int32(bitPattern: docs[next])
                return doc
            }
        }
        return isActive ? seekActive(target) : seekFrozen(target)
    }

    /// Two cursors of a conjunction, `a` on a document above `target` and `b` on `target`
    /// (b's answer to a's document): when both sit in decoded blocks, walks the two blocks
    /// against each other in place, a merge of two decreasing arrays with no seek calls (a
    /// seek's checks and stores cost more than the step itself when the lists are of similar
    /// lengths). Returns (true, d) when both reach a common document d (and sit on it), else
    /// (false, c) when a block runs out first, with both cursors on valid documents of their
    /// blocks: the caller goes on with `seek(atOrBelow: c)` on `a`, which loads the next block
    /// where needed. The longer list `b` passes 16 documents at a time when far from the target.
    @inline(__always)
    static func intersectDecoded(_ a: UnsafeMutablePointer<PostingCursor>, _ b: UnsafeMutablePointer<PostingCursor>,
                                 _ target: Int32) -> (Bool, Int32) {
        let na = a.pointee.blockLength
        let nb = b.pointee.blockLength
        if na == 0 || nb == 0 { return (false, target) }
        let docsA = a.pointee.buffer.unsafelyUnwrapped
        let docsB = b.pointee.buffer.unsafelyUnwrapped
        let lastA = Int32(bitPattern: docsA[na &- 1])
        let lastB = Int32(bitPattern: docsB[nb &- 1])
        var i = a.pointee.inBlock
        var j = b.pointee.inBlock
        var y = target
        /// Leaves both cursors where the walk stopped.
        @inline(__always) func place(a inA: Int, _ docA: Int32, b inB: Int, _ docB: Int32) {
            a.pointee.inBlock = inA
            a.pointee.doc = docA
            b.pointee.inBlock = inB
            b.pointee.doc = docB
        }
        while true {
            // a to its first document at or below y (a's block's last document stops the scan).
            if lastA > y {
                place(a: na &- 1, lastA, b: j, y)
                return (false, y)
            }
            i &+= 1
            while Int32(bitPattern: docsA[i]) > y { i &+= 1 }
            let x = Int32(bitPattern: docsA[i])
            if x == y {
                place(a: i, x, b: j, y)
                return (true, x)
            }
            // b to its first document at or below x.
            if lastB > x {
                place(a: i, x, b: nb &- 1, lastB)
                return (false, x)
            }
            j &+= 1
            while j &+ 16 < nb && Int32(bitPattern: docsB[j &+ 16]) > x { j &+= 16 }
            while Int32(bitPattern: docsB[j]) > x { j &+= 1 }
            y = Int32(bitPattern: docsB[j])
            if y == x {
                place(a: i, x, b: j, y)
                return (true, x)
            }
        }
    }

    private mutating func seekActive(_ target: Int32) -> Int32 {
        while let c = chunk {
            var i = entryIndex
            while i >= 0 {
                let d = Int32(truncatingIfNeeded: c[2 + i] >> 32)
                if d <= target {
                    entryIndex = i
                    doc = d
                    return d
                }
                i -= 1
            }
            chunk = UnsafePointer(bitPattern: UInt(c[0]))
            if let p = chunk { entryIndex = Int(p[1]) - 1 }
        }
        doc = -1
        return -1
    }

    @inline(__always)
    private func directoryFirst(_ b: Int) -> Int32 {
        Int32(bitPattern: UInt32(littleEndian: list!.loadUnaligned(fromByteOffset: b * PostingCodec.directoryEntryBytes, as: UInt32.self)))
    }

    private mutating func loadBlock(_ b: Int) {
        let base = list!
        block = b
        inBlock = 0
        positionIndex = 0
        let first: UInt32
        let body: UnsafeRawPointer
        let size: Int
        if blockCount == 1 {
            guard let (value, next) = Varint.read(from: UnsafeRawBufferPointer(start: base, count: 10), at: 0) else {
                preconditionFailure("verified search segment has a bad varint")
            }
            first = UInt32(truncatingIfNeeded: value)
            body = base + next
            size = count
            blockPositions = 0
        } else {
            let entry = b * PostingCodec.directoryEntryBytes
            first = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: entry, as: UInt32.self))
            body = base + Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: entry + 4, as: UInt32.self)))
            blockPositions = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: entry + 8, as: UInt32.self)))
            size = min(PostingCodec.blockSize, count - b * PostingCodec.blockSize)
        }
        positionTable = blockPositions
        positionsSize = size
        if checkpoints { blockPositions &+= ((size &- 1) / PostingCodec.positionCheckpointInterval) &* 4 }
        positionOffset = blockPositions
        let header = size > 1 ? body.load(as: UInt8.self) : 0
        if header == PostingCodec.riceFlag && !decodeBitmaps {
            bits = body + 1
            high = nil
            blockFirst = Int32(bitPattern: first)
            if b &+ 1 < blockCount {
                // The body ends where the next block's begins, and its last byte holds the
                // last document's bit (the segment's bodies are contiguous, padded with zero
                // bits: the deep check verifies both): no popcounts.
                let end = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: (b &+ 1) &* PostingCodec.directoryEntryBytes &+ 4, as: UInt32.self)))
                span = PostingCodec.bitmapSpan(bytes: end &- base.distance(to: body) &- 1, last: base.load(fromByteOffset: end &- 1, as: UInt8.self))
            } else {
                span = PostingCodec.bitmapSpan(body + 1, ones: size - 1)
            }
            blockLength = 0
        } else if inPlace && header & 0xC0 == PostingCodec.eliasFanoFlag {
            bits = nil
            let l = Int(header & 0x1F)
            lowBits = l
            lows = body + 1
            let ones = body + 1 + (((size - 1) * l + 7) >> 3)
            high = ones
            // The last document's bit is one before the span of its size - 1 one bits.
            highLast = PostingCodec.bitmapSpan(ones, ones: size - 1) - 1 - (size - 2)
            element = 0
            elementBit = -1
            blockSizeNow = size
            blockFirst = Int32(bitPattern: first)
            blockLength = 0
        } else {
            bits = nil
            high = nil
            blockLength = size
            _ = PostingCodec.decodeBlock(body, first: first, size: size, into: buffer!)
        }
    }

    /// In an Elias-Fano block searched in place: the first document at or below `target`
    /// after the current one, or nil when the block has none (the caller moves to the next
    /// block). Steps over one bits (documents) from the current one; a word whose last
    /// document is still above the target is passed whole (its set bits counted once).
    @inline(__always)
    private mutating func seekEliasFano(_ ones: UnsafeRawPointer, _ target: Int32) -> Int32? {
        let first = Int(blockFirst)
        // The first document i >= 1 with e_i >= u is the answer.
        let u = first &- 1 &- Int(target)
        if u < 0 {
            element = 0
            elementBit = -1
            inBlock = 0
            return blockFirst
        }
        let l = lowBits
        let h = u &>> l
        if h > highLast { return nil }
        let size = blockSizeNow
        let mask: UInt64 = (1 &<< UInt64(l)) &- 1
        let lowBase = lows.unsafelyUnwrapped
        var j = element &+ 1
        // The current document may be the block's last (its bucket can be h, its low bits below u's).
        if j >= size { return nil }
        let start = elementBit &+ 1
        var w = start &>> 6
        var word = UInt64(littleEndian: ones.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self)) & (~UInt64(0) &<< UInt64(start & 63))
        // Documents j, j + 1, ... (at least one) are the set bits from here on, and the last
        // one reaches bucket h (h <= highLast): no load passes the block's bits before j
        // reaches the size.
        while true {
            if word == 0 {
                w &+= 1
                word = UInt64(littleEndian: ones.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self))
                continue
            }
            let p = (w &<< 6) &+ word.trailingZeroBitCount
            let hi = p &- (j &- 1)
            if hi >= h {
                let bit = (j &- 1) &* l
                let low = Int(truncatingIfNeeded: (UInt64(littleEndian: lowBase.loadUnaligned(fromByteOffset: bit &>> 3, as: UInt64.self)) &>> UInt64(bit & 7)) & mask)
                let e = (hi &<< l) | low
                if e >= u {
                    element = j
                    elementBit = p
                    inBlock = j
                    return Int32(truncatingIfNeeded: first &- 1 &- e)
                }
            } else if h &- hi > 8 {
                // Far below the target's bucket: if the word's last document is too, pass the
                // whole word.
                let last = (w &<< 6) &+ 63 &- word.leadingZeroBitCount
                let c = word.nonzeroBitCount
                if last &- (j &+ c &- 2) < h {
                    j &+= c
                    w &+= 1
                    word = UInt64(littleEndian: ones.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self))
                    continue
                }
            }
            word &= word &- 1
            j &+= 1
            if j == size { return nil }
        }
    }

    private mutating func seekFrozen(_ target: Int32) -> Int32 {
        // Skip whole blocks whose successor still starts at or above the target.
        var b = max(block, 0)
        while b + 1 < blockCount && directoryFirst(b + 1) >= target { b += 1 }
        if b != block { loadBlock(b) }
        while true {
            if let map = bits {
                // A bitmap block: the first set bit at or after the target's.
                let j = Int(blockFirst) &- Int(target)
                if j <= 0 {
                    bitIndex = 0
                    doc = blockFirst
                    return doc
                }
                if j <= span {
                    var w = (j &- 1) &>> 6
                    var word = UInt64(littleEndian: map.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self)) & (~UInt64(0) &<< UInt64((j &- 1) & 63))
                    // Stops at the latest at the last document's bit (span - 1), before any
                    // byte after the block.
                    while word == 0 {
                        w &+= 1
                        word = UInt64(littleEndian: map.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self))
                    }
                    bitIndex = (w &<< 6) &+ word.trailingZeroBitCount &+ 1
                    doc = blockFirst &- Int32(truncatingIfNeeded: bitIndex)
                    return doc
                }
                if block + 1 >= blockCount {
                    doc = -1
                    return -1
                }
                loadBlock(block + 1)
                continue
            }
            if let ones = high {
                if let d = seekEliasFano(ones, target) {
                    doc = d
                    return d
                }
                if block + 1 >= blockCount {
                    doc = -1
                    return -1
                }
                loadBlock(block + 1)
                continue
            }
            var i = inBlock
            let docs = buffer!
            let end = blockLength
            // A few steps forward (the usual distance when both lists are dense), then a
            // binary search over the rest of the block (documents decrease along it).
            var steps = 0
            while i < end && steps < 8 && Int32(bitPattern: docs[i]) > target {
                i &+= 1
                steps &+= 1
            }
            if i < end && Int32(bitPattern: docs[i]) > target {
                var low = i + 1
                var high = end
                while low < high {
                    let middle = (low + high) >> 1
                    if Int32(bitPattern: docs[middle]) > target { low = middle + 1 } else { high = middle }
                }
                i = low
            }
            if i < end {
                inBlock = i
                doc = Int32(bitPattern: docs[i])
                return doc
            }
            if block + 1 >= blockCount {
                doc = -1
                return -1
            }
            loadBlock(block + 1)
        }
    }

    /// Appends the positions of the current document (increasing for frozen segments,
    /// decreasing for the active one) to `out`.
    mutating func positions(into out: inout [UInt32]) {
        let count = positions(into: nil, capacity: 0)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBufferPointer { _ = positions(into: $0.baseAddress! + start, capacity: count) }
    }

    /// Writes up to `capacity` positions of the current document (increasing for frozen
    /// segments, decreasing for the active one) to `buffer` and returns how many it has (more
    /// than `capacity` when the buffer is too small: call again with a larger one).
    mutating func positions(into buffer: UnsafeMutablePointer<UInt32>?, capacity: Int) -> Int {
        precondition(doc >= 0 && doc != Self.notStarted, "positions of no document")
        if isActive {
            var n = 0
            var c = chunk
            var i = entryIndex
            while let current = c {
                while i >= 0 {
                    let entry = current[2 + i]
                    if Int32(truncatingIfNeeded: entry >> 32) != doc { return n }
                    if n < capacity { buffer.unsafelyUnwrapped[n] = UInt32(truncatingIfNeeded: entry) }
                    n += 1
                    i -= 1
                }
                c = UnsafePointer(bitPattern: UInt(current[0]))
                if let p = c { i = Int(p[1]) - 1 }
            }
            return n
        }
        // Frozen: walk the block's positions stream forward to this posting. The stream is
        // covered by the segment's verified checksum, so varints are read without bounds checks
        // (as before, through a buffer of unbounded length).
        if bits != nil { placeInBitmap() }
        if regular {
            let base = positionsBase.unsafelyUnwrapped + blockPositions
            let i = inBlock
            if (base.load(fromByteOffset: i &>> 3, as: UInt8.self) &>> UInt8(i & 7)) & 1 == 0 {
                if capacity > 0 {
                    buffer.unsafelyUnwrapped[0] = UInt32(base.load(fromByteOffset: ((positionsSize &+ 7) &>> 3) &+ i, as: UInt8.self))
                }
                return 1
            }
            return Self.irregularPositions(base, size: positionsSize, index: i, into: buffer, capacity: capacity)
        }
        if positionIndex > inBlock {
            positionIndex = 0
            positionOffset = blockPositions
        }
        let stream = positionsBase.unsafelyUnwrapped
        // From the nearest checkpoint at or before the posting when the walk would start
        // before it.
        let interval = PostingCodec.positionCheckpointInterval
        if checkpoints && inBlock >= interval && positionIndex < inBlock / interval * interval {
            let c = inBlock / interval
            positionIndex = c &* interval
            positionOffset = blockPositions &+ Int(UInt32(littleEndian: stream.loadUnaligned(fromByteOffset: positionTable &+ (c &- 1) &* 4, as: UInt32.self)))
        }
        var offset = positionOffset
        var index = positionIndex
        let wanted = inBlock
        while index < wanted {
            // When none of the next 8 bytes has its high bit set, each is a varint of its own:
            // postings of one position ([1, p], the usual case) go four, two or one at a time,
            // and a posting of up to 6 positions lies wholly in these bytes (1 + count). Else
            // a posting of fewer than 7 one-byte positions is still 1 + count bytes. Else the
            // varints one by one.
            let word = UInt64(littleEndian: stream.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let c = Int(truncatingIfNeeded: word & 0xFF)
            if word & 0x8080_8080_8080_8080 == 0 {
                if c == 1 {
                    if word & 0x00FF_00FF_00FF_00FF == 0x0001_0001_0001_0001 && index &+ 4 <= wanted {
                        offset &+= 8
                        index &+= 4
                    } else if word & 0x00FF_0000 == 0x0001_0000 && index &+ 2 <= wanted {
                        offset &+= 4
                        index &+= 2
                    } else {
                        offset &+= 2
                        index &+= 1
                    }
                    continue
                }
                if c < 7 {
                    offset &+= 1 &+ c
                    index &+= 1
                    continue
                }
            } else if c < 7 && word & ((UInt64(1) &<< UInt64((c &+ 1) &* 8)) &- 1) & 0x8080_8080_8080_8080 == 0 {
                offset &+= 1 &+ c
                index &+= 1
                continue
            }
            // Skip a posting: its count, then that many varints (count their last bytes).
            var n = Self.readVarint(stream, &offset)
            while n > 0 {
                if stream.load(fromByteOffset: offset, as: UInt8.self) < 0x80 { n &-= 1 }
                offset &+= 1
            }
            index &+= 1
        }
        positionIndex = index
        positionOffset = offset
        let count = Int(truncatingIfNeeded: Self.readVarint(stream, &offset))
        let n = min(count, capacity)
        var previous: UInt32 = 0
        var k = 0
        while k < n {
            let v = UInt32(truncatingIfNeeded: Self.readVarint(stream, &offset))
            let p = k == 0 ? v : previous &+ v &+ 1
            buffer.unsafelyUnwrapped[k] = p
            previous = p
            k &+= 1
        }
        return count
    }

    /// The current document's index in a bitmap block (1 + the set bits before its bit) into
    /// `inBlock`.
    private mutating func placeInBitmap() {
        let map = bits.unsafelyUnwrapped
        var index = 0
        if bitIndex > 0 {
            let bit = bitIndex &- 1
            index = 1
            var w = 0
            while (w &+ 1) &<< 6 <= bit {
                index &+= UInt64(littleEndian: map.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self)).nonzeroBitCount
                w &+= 1
            }
            if bit & 63 != 0 {
                let word = UInt64(littleEndian: map.loadUnaligned(fromByteOffset: w &<< 3, as: UInt64.self))
                index &+= (word & ((UInt64(1) &<< UInt64(bit & 63)) &- 1)).nonzeroBitCount
            }
        }
        inBlock = index
    }

    /// The current document's position when its posting is regular (format 5 on: one
    /// position, read from the block's byte for it), else -1 (an irregular posting, an older
    /// format or the active segment: `positions(into:capacity:)` reads them).
    @inline(__always)
    mutating func singlePosition() -> Int {
        if !regular { return -1 }
        if bits != nil { placeInBitmap() }
        let base = positionsBase.unsafelyUnwrapped + blockPositions
        let i = inBlock
        if (base.load(fromByteOffset: i &>> 3, as: UInt8.self) &>> UInt8(i & 7)) & 1 != 0 { return -1 }
        return Int(base.load(fromByteOffset: ((positionsSize &+ 7) &>> 3) &+ i, as: UInt8.self))
    }

    /// The positions of the current document's posting, irregular in a format 5 block at
    /// `base` (`positions(into:capacity:)`'s step): its byte is its run's offset from the
    /// block's first run; a far run (the byte `farRunMark`) is reached by walking the runs
    /// from the nearest irregular posting before it with a nearer one.
    /// (Static, with the block's size and the posting's index as arguments: a method on the
    /// cursor copied the whole struct for the call.)
    private static func irregularPositions(_ base: UnsafeRawPointer, size: Int, index i: Int, into buffer: UnsafeMutablePointer<UInt32>?,
                                           capacity: Int) -> Int {
        let bytes = (size &+ 7) &>> 3
        let runs = bytes &+ size
        let mark = PostingCodec.farRunMark
        var offset: Int
        let own = base.load(fromByteOffset: bytes &+ i, as: UInt8.self)
        if own != mark {
            offset = runs &+ Int(own)
        } else {
            // Back to an irregular posting with a near run (the block's first irregular one's
            // run is at 0), counting the runs to skip from there.
            var j = i
            var skip = 0
            while true {
                j &-= 1
                if (base.load(fromByteOffset: j &>> 3, as: UInt8.self) &>> UInt8(j & 7)) & 1 == 0 { continue }
                skip &+= 1
                let b = base.load(fromByteOffset: bytes &+ j, as: UInt8.self)
                if b != mark {
                    offset = runs &+ Int(b)
                    break
                }
            }
            while skip > 0 {
                var n = Self.readVarint(base, &offset)
                while n > 0 {
                    if base.load(fromByteOffset: offset, as: UInt8.self) < 0x80 { n &-= 1 }
                    offset &+= 1
                }
                skip &-= 1
            }
        }
        let count = Int(truncatingIfNeeded: Self.readVarint(base, &offset))
        let n = min(count, capacity)
        var previous: UInt32 = 0
        var x = 0
        while x < n {
            let v = UInt32(truncatingIfNeeded: Self.readVarint(base, &offset))
            let p = x == 0 ? v : previous &+ v &+ 1
            buffer.unsafelyUnwrapped[x] = p
            previous = p
            x &+= 1
        }
        return count
    }

    @inline(__always)
    private static func readVarint(_ p: UnsafeRawPointer, _ offset: inout Int) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = p.load(fromByteOffset: offset, as: UInt8.self)
            offset += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }
}
