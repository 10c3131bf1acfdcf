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
}
