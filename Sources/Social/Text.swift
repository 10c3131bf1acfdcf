/// The text rules of the brief: handles, tweet lengths and the entities of a tweet.
///
/// Lengths are counted in grapheme clusters (Swift `Character`s): "é" written as e + combining
/// accent is one, a family emoji built with zero-width joiners is one. Twitter weighs some
/// characters double and counts URLs as 23; socialdb does not.
public enum TextRules {
    public static let handleLengthMax = 15
    public static let tweetLengthMax = 280
    public static let nameLengthMax = 50
    public static let bioLengthMax = 160

    /// The handle without a leading `@`, if it is 1-15 of A-Z a-z 0-9 _.
    public static func validHandle(_ text: String) -> String? {
        let handle = text.hasPrefix("@") ? String(text.dropFirst()) : text
        guard !handle.isEmpty, handle.utf8.count <= handleLengthMax, handle.utf8.allSatisfy(isHandleByte) else { return nil }
        return handle
    }

    @inline(__always)
    static func isHandleByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
    }

    /// The lookup form of a valid handle: ASCII lowercased.
    static func folded(_ handle: String) -> String {
        String(decoding: handle.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    /// Checks a tweet's text: 1-280 grapheme clusters, not only white space.
    static func checkTweet(_ text: String) throws(SocialError) {
        // ASCII and at most 280 bytes (the common case): bytes are characters.
        let utf8 = text.utf8
        if let fine = utf8.withContiguousStorageIfAvailable({ bytes -> Bool in
            bytes.count <= tweetLengthMax && Entities.isASCII(bytes)
                && bytes.contains { $0 != 0x20 && ($0 < 0x09 || $0 > 0x0D) }
        }), fine {
            return
        }
        guard text.contains(where: { !$0.isWhitespace }) else { throw .invalid("a tweet needs text (1 to 280 characters, not only spaces)") }
        let count = text.count
        guard count <= tweetLengthMax else {
            throw .tooLong("the tweet is \(count) characters; at most \(tweetLengthMax) (grapheme clusters) are allowed")
        }
    }
}

/// The entities of a tweet's text, found in one pass over its characters.
///
/// - A mention is `@` then 1-15 handle characters, not preceded by a handle character (so an
///   e-mail address is not one) and not followed by a 16th.
/// - A hashtag is `#` then letters, digits, marks or `_` with at least one that is not a digit,
///   not preceded by a letter, digit or `_` (`a#b` is not one).
/// - A URL is a word (up to white space) that starts with `http://` or `https://`, without
///   trailing `.,;:!?)'"` punctuation.
struct Entities: Equatable {
    var mentions: [String] = []
    var hashtags: [String] = []
    var urls: [String] = []

    init(_ text: String) {
        // Most tweets are ASCII: there a byte is a character (CR LF aside, which no rule below
        // tells apart from two characters), so one pass over the bytes finds the same entities
        // without breaking the text into grapheme clusters.
        let utf8 = text.utf8
        if let fast = utf8.withContiguousStorageIfAvailable({ bytes -> Entities? in
            Self.isASCII(bytes) ? Entities(ascii: bytes) : nil
        }) ?? nil {
            self = fast
            return
        }
        self.init(characters: Array(text))
    }

    @inline(__always)
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var any: UInt8 = 0
        for b in bytes { any |= b }
        return any < 0x80
    }

    static let urlPrefixes: [[UInt8]] = [Array("https://".utf8), Array("http://".utf8)]

    /// `init(_:)` for an all-ASCII text, by bytes.
    init(ascii b: UnsafeBufferPointer<UInt8>) {
        @inline(__always) func isWord(_ c: UInt8) -> Bool {
            c == 0x5F || (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A)
        }
        @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
        func startsURL(at i: Int) -> Bool {
            for prefix in Self.urlPrefixes {
                guard i + prefix.count < b.count else { continue }
                var k = 0
                while k < prefix.count && lower(b[i + k]) == prefix[k] { k += 1 }
                if k == prefix.count { return true }
            }
            return false
        }
        func string(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: b[from..<to]), as: UTF8.self)
        }
        var i = 0
        while i < b.count {
            let c = b[i]
            let afterWord = i > 0 && isWord(b[i - 1])
            if c == 0x40, !afterWord {  // @
                var j = i + 1
                while j < b.count, TextRules.isHandleByte(b[j]) { j += 1 }
                let length = j - i - 1
                if length >= 1, length <= TextRules.handleLengthMax { mentions.append(string(i + 1, j)) }
                i = max(j, i + 1)
            } else if c == 0x23, !afterWord {  // #
                var j = i + 1
                var digitsOnly = true
                while j < b.count, isWord(b[j]) {
                    if b[j] < 0x30 || b[j] > 0x39 { digitsOnly = false }
                    j += 1
                }
                if j > i + 1, !digitsOnly { hashtags.append(string(i + 1, j)) }
                i = max(j, i + 1)
            } else if c | 0x20 == 0x68, i == 0 || isSpace(b[i - 1]), startsURL(at: i) {  // h or H
                var j = i
                while j < b.count, !isSpace(b[j]) { j += 1 }
                var end = j
                while end > i, ".,;:!?)'\"".utf8.contains(b[end - 1]) { end -= 1 }
                urls.append(string(i, end))
                i = j
            } else {
                i += 1
            }
        }
    }

    /// `init(_:)` by grapheme clusters: any text.
    init(characters: [Character]) {
        var i = 0
        while i < characters.count {
            let c = characters[i]
            let previous: Character? = i > 0 ? characters[i - 1] : nil
            if c == "@", !(previous.map(Self.isWordCharacter) ?? false) {
                var j = i + 1
                while j < characters.count, Self.isHandleCharacter(characters[j]) { j += 1 }
                let length = j - i - 1
                if length >= 1, length <= TextRules.handleLengthMax {
                    mentions.append(String(characters[(i + 1)..<j]))
                }
                i = max(j, i + 1)
            } else if c == "#", !(previous.map(Self.isWordCharacter) ?? false) {
                var j = i + 1
                while j < characters.count, Self.isWordCharacter(characters[j]) { j += 1 }
                let tag = characters[(i + 1)..<j]
                if !tag.isEmpty, tag.contains(where: { !$0.isNumber }) { hashtags.append(String(tag)) }
                i = max(j, i + 1)
            } else if (c == "h" || c == "H"), previous.map({ $0.isWhitespace }) ?? true, Self.startsURL(characters, at: i) {
                var j = i
                while j < characters.count, !characters[j].isWhitespace { j += 1 }
                var end = j
                while end > i, ".,;:!?)'\"".contains(characters[end - 1]) { end -= 1 }
                urls.append(String(characters[i..<end]))
                i = j
            } else {
                i += 1
            }
        }
    }

    static func isHandleCharacter(_ c: Character) -> Bool {
        guard c.isASCII, let b = c.asciiValue else { return false }
        return TextRules.isHandleByte(b)
    }

    static func isWordCharacter(_ c: Character) -> Bool {
        c == "_" || c.isLetter || c.isNumber || c.unicodeScalars.first.map { $0.properties.generalCategory == .nonspacingMark } ?? false
    }

    static func startsURL(_ characters: [Character], at i: Int) -> Bool {
        for prefix in ["https://", "http://"] {
            let p = Array(prefix)
            if i + p.count < characters.count,
               zip(characters[i..<(i + p.count)], p).allSatisfy({ $0.lowercased() == String($1) }) {
                return true
            }
        }
        return false
    }
}
