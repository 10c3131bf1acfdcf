/// LSD radix sort of UInt64 keys, 11 bits a pass, only over the low `keyBits` bits (the rest
/// must be zero). A pass whose digit is the same for every key is skipped.
public enum RadixSort {
    static let digitBits = 11

    public static func sort(_ keys: UnsafeMutableBufferPointer<UInt64>, keyBits: Int) {
        guard keys.count > 1, keyBits > 0 else { return }
        if keys.count < 64 {
            var keys = keys
            keys.sort()
            return
        }
        let scratch = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: keys.count)
        defer { scratch.deallocate() }
        let buckets = 1 << digitBits
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: buckets)
        defer { counts.deallocate() }
        var source = keys
        var destination = scratch
        var shift = 0
        while shift < keyBits {
            counts.initialize(repeating: 0)
            let mask = UInt64(buckets - 1)
            for key in source { counts[Int((key >> UInt64(shift)) & mask)] += 1 }
            if counts.contains(where: { $0 == source.count }) {
                shift += digitBits
                continue
            }
            var total = 0
            for i in 0..<buckets {
                let c = counts[i]
                counts[i] = total
                total += c
            }
            for key in source {
                let digit = Int((key >> UInt64(shift)) & mask)
                destination[counts[digit]] = key
                counts[digit] += 1
            }
            swap(&source, &destination)
            shift += digitBits
        }
        if source.baseAddress != keys.baseAddress {
            keys.baseAddress!.update(from: source.baseAddress!, count: keys.count)
        }
    }
}

/// Reads edge-list files: two user numbers a line, as SNAP and Network Repository publish them.
///
/// - `#` and `%` start comment lines; blank lines are skipped.
/// - Numbers are separated by spaces, tabs or commas; columns after the second (weights,
///   timestamps) are ignored.
/// - A Matrix Market file (first line `%%MatrixMarket`) has a size line (`rows cols entries`)
///   after its comments, which is skipped, and numbers from 1, which become numbers from 0.
/// - A line without two numbers that fit 32 bits is bad: counted, the first few kept with their
///   line numbers, the rest of the file still read.
public struct EdgeListParser {
    public struct Result: Sendable {
        /// Packed `follower << 32 | followee`, in file order.
        public var edges = ContiguousArray<UInt64>()
        public var lines = 0
        public var commentLines = 0
        public var badLines = 0
        /// The first bad lines: line number and why.
        public var badLineSamples: [(line: Int, reason: String)] = []
        public var matrixMarket = false
    }

    public var symmetric: Bool
    public static let badLineSamplesMax = 10

    /// - Parameter symmetric: add each edge in both directions (an undirected graph's friendships
    ///   as two follows, as DeathStarBench loads socfb-Reed98).
    public init(symmetric: Bool = false) {
        self.symmetric = symmetric
    }

    public func parse(path: String, fileSystem: FileSystem, progress: ((GraphLoadProgress) -> Void)? = nil) throws(IOError) -> Result {
        let file = try fileSystem.open(path, .readOnlyAccess)
        defer { file.close() }
        let size = try file.size()
        var state = State(symmetric: symmetric)
        let chunkBytes = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes + 256, alignment: 8)
        defer { buffer.deallocate() }
        var carry: [UInt8] = []
        var offset: UInt64 = 0
        while offset < size {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<chunkBytes]), at: offset)
            if n == 0 { break }
            offset += UInt64(n)
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            var lineStart = 0
            for i in 0..<n where chunk[i] == 0x0A {
                if carry.isEmpty {
                    state.line(UnsafeRawBufferPointer(rebasing: chunk[lineStart..<i]))
                } else {
                    carry.append(contentsOf: chunk[lineStart..<i])
                    carry.withUnsafeBytes { state.line($0) }
                    carry.removeAll(keepingCapacity: true)
                }
                lineStart = i + 1
            }
            carry.append(contentsOf: chunk[lineStart..<n])
            progress?(GraphLoadProgress(phase: .parsing, done: Int(offset), total: Int(size)))
        }
        if !carry.isEmpty { carry.withUnsafeBytes { state.line($0) } }
        return state.result
    }

    /// Parses text already in memory (tests, small inputs).
    public func parse(text: String) -> Result {
        var state = State(symmetric: symmetric)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var start = 0
            for i in 0...raw.count where i == raw.count || raw[i] == 0x0A {
                state.line(UnsafeRawBufferPointer(rebasing: raw[start..<i]))
                start = i + 1
            }
        }
        return state.result
    }

    struct State {
        var result = Result()
        let symmetric: Bool
        var sawSizeLine = false

        init(symmetric: Bool) { self.symmetric = symmetric }

        mutating func line(_ raw: UnsafeRawBufferPointer) {
            result.lines += 1
            var i = 0
            let n = raw.count
            while i < n && (raw[i] == 0x20 || raw[i] == 0x09 || raw[i] == 0x0D) { i += 1 }
            if i == n { return }
            if raw[i] == UInt8(ascii: "#") || raw[i] == UInt8(ascii: "%") {
                result.commentLines += 1
                if result.lines == 1 && n - i >= 14 && raw[i..<(i + 14)].elementsEqual("%%MatrixMarket".utf8) {
                    result.matrixMarket = true
                }
                return
            }
            var numbers: (UInt64, UInt64) = (0, 0)
            var found = 0
            while i < n && found < 2 {
                while i < n && (raw[i] == 0x20 || raw[i] == 0x09 || raw[i] == 0x2C || raw[i] == 0x0D) { i += 1 }
                guard i < n else { break }
                var value: UInt64 = 0
                var digits = 0
                while i < n, raw[i] >= 0x30, raw[i] <= 0x39 {
                    value = value &* 10 &+ UInt64(raw[i] - 0x30)
                    digits += 1
                    i += 1
                    if digits > 10 { break }
                }
                guard digits > 0, digits <= 10, value <= UInt64(UInt32.max),
                      i == n || raw[i] == 0x20 || raw[i] == 0x09 || raw[i] == 0x2C || raw[i] == 0x0D else {
                    bad("expected two user numbers below 2^32")
                    return
                }
                if found == 0 { numbers.0 = value } else { numbers.1 = value }
                found += 1
            }
            guard found == 2 else {
                bad("expected two user numbers")
                return
            }
            if result.matrixMarket && !sawSizeLine {
                sawSizeLine = true
                return
            }
            if result.matrixMarket {
                guard numbers.0 > 0, numbers.1 > 0 else {
                    bad("Matrix Market numbers start at 1")
                    return
                }
                numbers.0 -= 1
                numbers.1 -= 1
            }
            result.edges.append(numbers.0 << 32 | numbers.1)
            if symmetric { result.edges.append(numbers.1 << 32 | numbers.0) }
        }

        mutating func bad(_ reason: String) {
            result.badLines += 1
            if result.badLineSamples.count < EdgeListParser.badLineSamplesMax {
                result.badLineSamples.append((result.lines, reason))
            }
        }
    }
}
