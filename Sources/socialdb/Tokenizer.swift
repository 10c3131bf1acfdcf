/// Splits a command line into words, as the shell language defines: words are separated by
/// spaces (and tabs); `"..."` quotes a string with `\"`, `\\` and `\n` escapes.
///
/// The line is read by Unicode scalars, not Characters: a combining mark right after a quote or
/// an escape's letter (`"\n\u{301}"`) would otherwise merge with it into one Character, and the
/// quote or escape would not be seen (found by the shell-tokenizer fuzz target).
struct Tokenizer {
    enum Failure: Error, Equatable {
        case unterminatedQuote
        case badEscape(Character)
    }

    struct Word: Equatable {
        var text: String
        var quoted: Bool
    }

    static func split(_ line: String) -> Result<[Word], Failure> {
        // Most lines have no quote (every read the server answers): those are cut at spaces
        // and tabs byte by byte, which gives the same words as the loop below, since the bytes
        // of a multi-byte character are all >= 0x80 and so never a space, a tab or a quote.
        var bytes = line
        if let words = bytes.withUTF8({ plainWords($0) }) { return .success(words) }
        var words: [Word] = []
        var current = String.UnicodeScalarView()
        var inWord = false
        var quoted = false
        var inQuotes = false
        var iterator = line.unicodeScalars.makeIterator()
        while let c = iterator.next() {
            if inQuotes {
                switch c {
                case "\"":
                    inQuotes = false
                case "\\":
                    guard let e = iterator.next() else { return .failure(.unterminatedQuote) }
                    switch e {
                    case "\"": current.append("\"")
                    case "\\": current.append("\\")
                    case "n": current.append("\n")
                    default: return .failure(.badEscape(Character(e)))
                    }
                default:
                    current.append(c)
                }
            } else if c == " " || c == "\t" {
                if inWord {
                    words.append(Word(text: String(current), quoted: quoted))
                    current = String.UnicodeScalarView()
                    inWord = false
                    quoted = false
                }
            } else if c == "\"" {
                inWord = true
                quoted = true
                inQuotes = true
            } else {
                inWord = true
                current.append(c)
            }
        }
        if inQuotes { return .failure(.unterminatedQuote) }
        if inWord { words.append(Word(text: String(current), quoted: quoted)) }
        return .success(words)
    }

    /// The words of a line without a `"`, each made from its bytes (a word of up to 15 bytes
    /// is a small String, stored inline); nil when the line has a quote.
    private static func plainWords(_ bytes: UnsafeBufferPointer<UInt8>) -> [Word]? {
        var words: [Word] = []
        words.reserveCapacity(8)
        var wordStart = -1
        for i in 0..<bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") { return nil }
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                if wordStart >= 0 {
                    words.append(Word(text: String(decoding: UnsafeBufferPointer(rebasing: bytes[wordStart..<i]), as: UTF8.self), quoted: false))
                    wordStart = -1
                }
            } else if wordStart < 0 {
                wordStart = i
            }
        }
        if wordStart >= 0 {
            words.append(Word(text: String(decoding: UnsafeBufferPointer(rebasing: bytes[wordStart..<bytes.count]), as: UTF8.self), quoted: false))
        }
        return words
    }
}
