/// One term of a tweet and its position (the count of terms before it; a hashtag's two terms
/// share one position).
public struct SearchToken: Equatable, Sendable, CustomStringConvertible {
    public var term: String
    public var position: UInt32

    public init(term: String, position: UInt32) {
        self.term = term
        self.position = position
    }

    public var description: String { "\(term)@\(position)" }
}

/// The search tokenizer: text to terms, folded for matching. No Foundation, no stop words.
///
/// What is a term (each one takes the next position):
/// - a word: a run of letters, digits and combining marks (of any script but the ones below),
///   folded; an apostrophe between letters joins (`don't` is `dont`); `_` and other punctuation
///   separate;
/// - a number: digits, with `.` between digits kept (`3.14`) and `,` between digits dropped
///   (`1,000` is `1000`);
/// - a hashtag `#word` (after a non-word character): the terms `#word` and `word` at one
///   position, so a keyword search finds hashtags too;
/// - a mention `@handle`: the term `@handle` only;
/// - a URL `http://` or `https://`: the term `url:host` (host lowercased, `www.` dropped); the
///   path is not indexed;
/// - each Han ideograph, Hiragana and Katakana character alone (unigrams): CJK has no spaces,
///   and a query word of several such characters becomes a phrase of unigrams, which matches
///   exactly the tweets that contain that string. Hangul words are spaced and stay words;
/// - each emoji scalar alone; variation selectors, zero-width joiners, skin-tone modifiers and
///   tag characters are dropped (a ZWJ sequence is a phrase of its emoji).
///
/// Folding (applied to words, hashtags and mentions alike):
/// - case: the Unicode full lowercase mapping (`Unicode.Scalar.Properties.lowercaseMapping`),
///   plus `ß`/`ẞ` -> `ss`, final sigma -> sigma, dotless i -> i;
/// - compatibility (the NFKC subset that occurs in tweets): fullwidth ASCII (U+FF01...U+FF5E) to
///   ASCII, Latin ligatures (`ﬁ` -> `fi`), super/subscript digits, number forms;
/// - diacritics: Latin-1, Latin Extended-A/B, Latin Extended Additional and Greek letters fold
///   to their base letters (NFKD with marks dropped, from the generated `FoldingTable`), and
///   every nonspacing mark (category Mn) is dropped, so decomposed input folds the same way;
///   that also drops Arabic harakat and Hebrew points;
/// - Arabic: tatweel dropped, alef with hamza or madda -> alef, alef maqsura -> yeh, teh
///   marbuta -> heh.
public enum SearchTokenizer {
    /// The terms of a tweet's text, in order.
    public static func tokenize(_ text: String) -> [SearchToken] {
        var tokens: [SearchToken] = []
        tokenize(text, into: &tokens, forQuery: false)
        return tokens
    }

    /// Appends the terms of `text` to `tokens`. In query mode a hashtag yields only `#word`.
    public static func tokenize(_ text: String, into tokens: inout [SearchToken], forQuery: Bool) {
        var text = text
        let done = text.withUTF8 { bytes -> Bool in
            guard isASCII(bytes) else { return false }
            tokenizeASCII(bytes, into: &tokens, forQuery: forQuery)
            return true
        }
        if !done { tokenizeScalars(text, into: &tokens, forQuery: forQuery) }
    }

    /// Appends the terms of `text` to `terms` as bytes (the indexer's path: no String per term
    /// for ASCII text).
    static func tokenize(_ text: String, into terms: inout PackedTerms, forQuery: Bool) {
        var text = text
        let ascii = text.withUTF8 { isASCII($0) }
        if ascii {
            text.withUTF8 { tokenizeASCII($0, into: &terms, forQuery: forQuery) }
        } else {
            var tokens: [SearchToken] = []
            tokenizeScalars(text, into: &tokens, forQuery: forQuery)
            for token in tokens { terms.append(token.term, position: token.position) }
        }
    }

    /// Whether every byte is below 0x80, eight at a time.
    @inline(__always)
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        var i = 0
        var bits: UInt64 = 0
        while i + 8 <= bytes.count {
            bits |= raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < bytes.count {
            bits |= UInt64(base[i])
            i += 1
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }

    /// Per byte: its lowercase when it is an ASCII letter or digit (`isWordByte`), else 0.
    /// Allocated once, never written after and never freed (so `nonisolated(unsafe)`).
    nonisolated(unsafe) static let asciiWordTable: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for b in 0..<256 { table[b] = isWordByte(UInt8(b)) ? lowerByte(UInt8(b)) : 0 }
        return UnsafePointer(table)
    }()

    /// ASCII letter or digit (`isWordScalar` on ASCII).
    @inline(__always)
    static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
    }

    @inline(__always)
    static func isLetterByte(_ b: UInt8) -> Bool { b | 0x20 >= 0x61 && b | 0x20 <= 0x7A }

    @inline(__always)
    static func isDigitByte(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// The ASCII whitespace that `Unicode.Scalar.Properties.isWhitespace` reports (tab, line
    /// feed, vertical tab, form feed, carriage return, space).
    @inline(__always)
    static func isSpaceByte(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    @inline(__always)
    static func lowerByte(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    /// `tokenizeASCII(_:into:forQuery:)` as tokens (for the public API and tests).
    static func tokenizeASCII(_ bytes: UnsafeBufferPointer<UInt8>, into tokens: inout [SearchToken], forQuery: Bool) {
        // Stack buffers of at most 1 KiB each (larger ones cost a stack-bounds query); a long
        // text moves to the heap.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer in
            withUnsafeTemporaryAllocation(of: PackedTerms.Term.self, capacity: 1024 / MemoryLayout<PackedTerms.Term>.stride) { list in
                var terms = PackedTerms(bytes: buffer, terms: list)
                tokenizeASCII(bytes, into: &terms, forQuery: forQuery)
                for i in 0..<terms.count { tokens.append(SearchToken(term: terms.string(i), position: terms.position(i))) }
            }
        }
    }

    /// `tokenizeScalars` for text that is all ASCII, over its bytes: the same terms and
    /// positions (on ASCII, every folding is lowercasing, no scalar is a unigram, dropped or
    /// fullwidth, and the letters are the only alphabetic scalars), each term's bytes written
    /// once straight into `terms`.
    static func tokenizeASCII(_ bytes: UnsafeBufferPointer<UInt8>, into terms: inout PackedTerms, forQuery: Bool) {
        let n = bytes.count
        guard n > 0, let p = bytes.baseAddress else { return }
        // Every term's body is at most its source bytes, and its prefix (`#`, `@`, `url:`) at
        // most the source bytes that gave rise to it, so 2n bytes hold all of them.
        terms.reserveBytes(2 * n + 8)
        let table = asciiWordTable
        var position: UInt32 = 0
        var i = 0
        while i < n {
            let v = p[i]
            var c = table[Int(v)]
            // URLs: http:// or https:// at a word boundary (`c` is h for h and H).
            if c == 0x68, terms.pendingLength == 0, let (hostStart, hostEnd, end) = urlASCII(bytes, at: i) {
                if hostEnd > hostStart {
                    terms.put(0x75)
                    terms.put(0x72)
                    terms.put(0x6C)
                    terms.put(0x3A)
                    var k = hostStart
                    while k < hostEnd {
                        terms.put(lowerByte(p[k]))
                        k += 1
                    }
                    terms.commit(position: position)
                    position += 1
                }
                i = end
                continue
            }
            if c != 0 {
                // The whole run of word bytes at once, each byte's class and lowercase from one
                // table load. A plain space after it (the usual case) ends the term at once: a
                // space is neither a joiner nor a sign, so the steps below would only come to
                // the same commit.
                let out = terms.pendingEnd
                var j = i
                var k = 0
                repeat {
                    out[k] = c
                    k &+= 1
                    j &+= 1
                    if j == n { break }
                    c = table[Int(p[j])]
                } while c != 0
                terms.extendPending(k)
                if j < n && p[j] == 0x20 {
                    terms.commit(position: position)
                    position += 1
                    i = j &+ 1
                } else {
                    i = j
                }
                continue
            }
            if (v == 0x23 || v == 0x40), terms.pendingLength == 0, i + 1 < n, isWordByte(p[i + 1]), i == 0 || !isWordByte(p[i - 1]) {
                // A hashtag or mention: the sign, then the word after it.
                terms.put(v)
                var j = i + 1
                while j < n, isWordByte(p[j]) || p[j] == 0x5F {
                    terms.put(lowerByte(p[j]))
                    j += 1
                }
                terms.commit(position: position)
                // A hashtag's word alone too, at the same position (the same bytes).
                if v == 0x23 && !forQuery { terms.repeatLastWithoutFirstByte() }
                position += 1
                i = j
                continue
            }
            // Joiners inside a word: apostrophes between letters, `.`/`,` between digits.
            if terms.pendingLength > 0, i + 1 < n {
                let next = p[i + 1]
                let previous = p[i - 1]
                if v == 0x27, isLetterByte(previous), isLetterByte(next) {
                    i += 1
                    continue
                }
                if (v == 0x2E || v == 0x2C), isDigitByte(previous), isDigitByte(next) {
                    if v == 0x2E { terms.put(0x2E) }
                    i += 1
                    continue
                }
            }
            if terms.pendingLength > 0 {
                terms.commit(position: position)
                position += 1
            }
            i += 1
        }
        if terms.pendingLength > 0 { terms.commit(position: position) }
    }

    /// `url(_:at:)` over ASCII bytes: when `http://` or `https://` starts at `i`, the range of
    /// the host (trailing dots and a leading `www.` removed; to be lowercased) and the index
    /// after the URL.
    @inline(__always)
    static func urlASCII(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (Int, Int, Int)? {
        let n = bytes.count
        var j = i
        for c: UInt8 in [0x68, 0x74, 0x74, 0x70] {
            guard j < n, lowerByte(bytes[j]) == c else { return nil }
            j += 1
        }
        if j < n, lowerByte(bytes[j]) == 0x73 { j += 1 }
        for c: UInt8 in [0x3A, 0x2F, 0x2F] {
            guard j < n, bytes[j] == c else { return nil }
            j += 1
        }
        var hostStart = j
        var hostEnd = j
        var inHost = true
        while j < n, !isSpaceByte(bytes[j]) {
            let v = bytes[j]
            if v == 0x2F || v == 0x3F || v == 0x23 || v == 0x3A { inHost = false }
            if inHost { hostEnd = j + 1 }
            j += 1
        }
        while hostEnd > hostStart && bytes[hostEnd - 1] == 0x2E { hostEnd -= 1 }
        if hostEnd - hostStart >= 4, lowerByte(bytes[hostStart]) == 0x77, lowerByte(bytes[hostStart + 1]) == 0x77,
           lowerByte(bytes[hostStart + 2]) == 0x77, bytes[hostStart + 3] == 0x2E {
            hostStart += 4
        }
        return (hostStart, hostEnd, j)
    }

    /// The general tokenizer, a Unicode scalar at a time (what `tokenize` does for text that
    /// is not all ASCII; `tokenizeASCII` must agree with it on ASCII text).
    static func tokenizeScalars(_ text: String, into tokens: inout [SearchToken], forQuery: Bool) {
        let scalars = Array(text.unicodeScalars)
        var position: UInt32 = 0
        var word = String()
        var i = 0
        let n = scalars.count

        func flushWord() {
            if !word.isEmpty {
                tokens.append(SearchToken(term: word, position: position))
                position += 1
                word = String()
            }
        }

        while i < n {
            let s = normalizedWidth(scalars[i])
            let v = s.value
            // URLs: http:// or https:// at a word boundary.
            if word.isEmpty, v == 0x68 || v == 0x48, let (host, end) = url(scalars, at: i) {
                if !host.isEmpty {
                    tokens.append(SearchToken(term: "url:" + host, position: position))
                    position += 1
                }
                i = end
                continue
            }
            if (v == 0x23 || v == 0x40), word.isEmpty, i + 1 < n, isWordScalar(normalizedWidth(scalars[i + 1])),
               i == 0 || !isWordScalar(normalizedWidth(scalars[i - 1])) {
                // A hashtag or mention: the word after the sign.
                var j = i + 1
                var body = String()
                while j < n, isWordScalar(normalizedWidth(scalars[j])) || normalizedWidth(scalars[j]).value == 0x5F {
                    fold(normalizedWidth(scalars[j]), into: &body)
                    j += 1
                }
                if !body.isEmpty {
                    if v == 0x23 {
                        tokens.append(SearchToken(term: "#" + body, position: position))
                        if !forQuery { tokens.append(SearchToken(term: body, position: position)) }
                    } else {
                        tokens.append(SearchToken(term: "@" + body, position: position))
                    }
                    position += 1
                }
                i = j
                continue
            }
            if isUnigram(s) {
                flushWord()
                var single = String()
                fold(s, into: &single)
                tokens.append(SearchToken(term: single, position: position))
                position += 1
                i += 1
                continue
            }
            if isWordScalar(s) {
                fold(s, into: &word)
                i += 1
                continue
            }
            // Joiners inside a word: apostrophes between letters, `.`/`,` between digits.
            if !word.isEmpty, i + 1 < n {
                let next = normalizedWidth(scalars[i + 1])
                let previous = normalizedWidth(scalars[i - 1])
                if (v == 0x27 || v == 0x2019), isWordScalar(next), previous.properties.isAlphabetic, next.properties.isAlphabetic {
                    i += 1
                    continue
                }
                if (v == 0x2E || v == 0x2C), isDigit(previous), isDigit(next) {
                    if v == 0x2E { word.unicodeScalars.append(".") }
                    i += 1
                    continue
                }
            }
            flushWord()
            i += 1
        }
        flushWord()
    }

    /// Folds one query word (the text after `#`, `@` or `from:`) as the tokenizer would.
    public static func foldWord(_ text: Substring) -> String {
        // ASCII: folding is lowercasing.
        if let folded = text.utf8.withContiguousStorageIfAvailable({ bytes -> String? in
            guard isASCII(bytes) else { return nil }
            return String(unsafeUninitializedCapacity: bytes.count) { out in
                for (k, c) in bytes.enumerated() { out[k] = lowerByte(c) }
                return bytes.count
            }
        }), let folded {
            return folded
        }
        var out = String()
        for s in text.unicodeScalars { fold(normalizedWidth(s), into: &out) }
        return out
    }

    // MARK: Classes of scalars

    @inline(__always)
    static func normalizedWidth(_ s: Unicode.Scalar) -> Unicode.Scalar {
        // Fullwidth ASCII variants U+FF01...U+FF5E are ASCII 0x21...0x7E (NFKC).
        if s.value >= 0xFF01 && s.value <= 0xFF5E { return Unicode.Scalar(s.value - 0xFF01 + 0x21)! }
        return s
    }

    @inline(__always)
    static func isDigit(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value >= 0x30 && s.value <= 0x39 }
        return s.properties.generalCategory == .decimalNumber
    }

    static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 {
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
        }
        if isDropped(s) || isUnigram(s) { return false }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber, .nonspacingMark, .spacingMark, .enclosingMark:
            return true
        default:
            return false
        }
    }

    /// Scalars that are a term on their own: CJK ideographs, Kana, emoji.
    static func isUnigram(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x2000 { return false }
        if (v >= 0x3040 && v <= 0x30FF) || (v >= 0x31F0 && v <= 0x31FF) || (v >= 0xFF66 && v <= 0xFF9F) { return true }
        let p = s.properties
        if p.isIdeographic { return true }
        if p.isEmoji && !isDropped(s) && p.generalCategory == .otherSymbol { return true }
        return false
    }

    /// Scalars that vanish: emoji modifiers and joiners, variation selectors, tags.
    @inline(__always)
    static func isDropped(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return v == 0x200D || (v >= 0xFE00 && v <= 0xFE0F) || (v >= 0x1F3FB && v <= 0x1F3FF) || (v >= 0xE0020 && v <= 0xE007F)
            || v == 0x20E3
    }

    // MARK: Folding

    /// Appends the folded form of `s` (see the type's documentation) to `out`.
    static func fold(_ s: Unicode.Scalar, into out: inout String) {
        let v = s.value
        if v < 0x80 {
            out.unicodeScalars.append(v >= 0x41 && v <= 0x5A ? Unicode.Scalar(v + 0x20)! : s)
            return
        }
        if isDropped(s) { return }
        if v < 0x10000, let folded = FoldingTable.lookup(UInt16(v)) {
            var packed = folded
            while packed != 0 {
                let scalar = UInt32(packed & 0xFFFF)
                if let u = Unicode.Scalar(scalar) { fold(u, into: &out) }
                packed >>= 16
            }
            return
        }
        switch v {
        case 0x0640: return // Arabic tatweel
        case 0x0622, 0x0623, 0x0625, 0x0671: out.unicodeScalars.append("\u{0627}"); return // alef forms
        case 0x0649: out.unicodeScalars.append("\u{064A}"); return // alef maqsura -> yeh
        case 0x0629: out.unicodeScalars.append("\u{0647}"); return // teh marbuta -> heh
        default: break
        }
        let properties = s.properties
        if properties.generalCategory == .nonspacingMark { return }
        if properties.changesWhenLowercased {
            for u in properties.lowercaseMapping.unicodeScalars where u.properties.generalCategory != .nonspacingMark {
                out.unicodeScalars.append(u)
            }
        } else {
            out.unicodeScalars.append(s)
        }
    }

    // MARK: URLs

    /// When `http://` or `https://` starts at `i`: the folded host and the index after the URL.
    static func url(_ scalars: [Unicode.Scalar], at i: Int) -> (String, Int)? {
        let n = scalars.count
        var j = i
        func lower(_ k: Int) -> UInt32 {
            let v = scalars[k].value
            return v >= 0x41 && v <= 0x5A ? v + 0x20 : v
        }
        for c in "http".unicodeScalars {
            guard j < n, lower(j) == c.value else { return nil }
            j += 1
        }
        if j < n, lower(j) == 0x73 { j += 1 }
        for c in "://".unicodeScalars {
            guard j < n, scalars[j].value == c.value else { return nil }
            j += 1
        }
        var host = String()
        var inHost = true
        while j < n, !scalars[j].properties.isWhitespace {
            let v = scalars[j].value
            if v == 0x2F || v == 0x3F || v == 0x23 || v == 0x3A { inHost = false }
            if inHost { fold(scalars[j], into: &host) }
            j += 1
        }
        while host.hasSuffix(".") { host.removeLast() }
        if host.hasPrefix("www.") { host.removeFirst(4) }
        return (host, j)
    }
}

extension FoldingTable {
    /// The packed folding of `scalar`, or nil (binary search over the sorted entries).
    @inline(__always)
    static func lookup(_ scalar: UInt16) -> UInt64? {
        let key = UInt64(scalar)
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) >> 1
            let k = entries[mid] >> 48
            if k == key { return entries[mid] & 0xFFFF_FFFF_FFFF }
            if k < key { low = mid + 1 } else { high = mid }
        }
        return nil
    }
}
