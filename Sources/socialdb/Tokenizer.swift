/// Splits a command line into words, as the shell language defines: words are separated by
/// spaces (and tabs); `"..."` quotes a string with `\"`, `\\` and `\n` escapes.
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
        var current = ""
        var inWord = false
        var quoted = false
        var inQuotes = false
        var iterator = line.makeIterator()
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
                    default: return .failure(.badEscape(e))
                    }
                default:
                    current.append(c)
                }
            } else if c == " " || c == "\t" {
                if inWord {
                    words.append(Word(text: current, quoted: quoted))
                    current = ""
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
        if inWord { words.append(Word(text: current, quoted: quoted)) }
        return .success(words)
    }
}
