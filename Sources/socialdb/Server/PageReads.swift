import Social

/// The server's most frequent commands, `HOME <handle> [LIMIT n] [BEFORE id]` and
/// `TWEETS <handle> [LIMIT n] [BEFORE id]`, answered in JSON straight from the line's bytes:
/// no tokenizer words, no command table lookup, no `Response`, and the page written by
/// `SocialDB.appendEncodedHome`/`appendEncodedTweets` directly into the batch's output rather
/// than into a page that is then copied. Together these were about a fifth of the server's
/// CPU on a page read.
///
/// Only the plain form is taken here: verb, handle and clauses made of bytes without a quote,
/// each clause at most once, numbers as 1 to 18 ASCII digits. Anything else, and any line whose
/// read fails (an unknown user, a LIMIT out of range), goes the general way (`Shell.execute`),
/// which gives the same answer to every line this path takes (`PageReadsTests` compares the
/// two byte for byte) and the error the language defines for the rest. A failed read changes
/// nothing, so running it a second time the general way is safe.
extension Session {
    enum PageVerb {
        case home
        case tweets
    }

    struct PageRead: Equatable {
        var verb: PageVerb
        var handle: String
        var limit: Int?
        var before: UInt64?
    }

    /// The page read `line` asks for in the plain form, or nil (the general way answers it).
    static func parsePageRead(_ line: String) -> PageRead? {
        var line = line
        return line.withUTF8 { bytes -> PageRead? in
            var at = 0
            /// The next word's bounds (nil at the end of the line); nil also for a quote.
            func nextWord() -> Range<Int>?? {
                while at < bytes.count && (bytes[at] == 32 || bytes[at] == 9) { at += 1 }
                guard at < bytes.count else { return .some(nil) }
                let start = at
                while at < bytes.count && bytes[at] != 32 && bytes[at] != 9 {
                    if bytes[at] == UInt8(ascii: "\"") { return nil }
                    at += 1
                }
                return .some(start..<at)
            }
            func matches(_ word: Range<Int>, _ upper: StaticString) -> Bool {
                guard word.count == upper.utf8CodeUnitCount else { return false }
                let expected = upper.utf8Start
                for (k, i) in word.enumerated() {
                    let b = bytes[i]
                    if (b >= 97 && b <= 122 ? b - 32 : b) != expected[k] { return false }
                }
                return true
            }
            func number(_ word: Range<Int>) -> UInt64? {
                guard word.count >= 1 && word.count <= 18 else { return nil }
                var value: UInt64 = 0
                for i in word {
                    let digit = bytes[i] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    value = value * 10 + UInt64(digit)
                }
                return value
            }
            guard case .some(.some(let verbWord)) = nextWord() else { return nil }
            let verb: PageVerb
            if matches(verbWord, "HOME") {
                verb = .home
            } else if matches(verbWord, "TWEETS") {
                verb = .tweets
            } else {
                return nil
            }
            guard case .some(.some(let handleWord)) = nextWord() else { return nil }
            var read = PageRead(verb: verb, handle: String(decoding: UnsafeBufferPointer(rebasing: bytes[handleWord]), as: UTF8.self))
            while true {
                guard case .some(let keywordOrEnd) = nextWord() else { return nil }
                guard let keyword = keywordOrEnd else { return read }
                guard case .some(.some(let valueWord)) = nextWord(), let value = number(valueWord) else { return nil }
                if matches(keyword, "LIMIT") {
                    guard read.limit == nil else { return nil }
                    read.limit = Int(value)
                } else if matches(keyword, "BEFORE") {
                    guard read.before == nil else { return nil }
                    read.before = value
                } else {
                    return nil
                }
            }
        }
    }

    /// Answers `line` here when it is a page read in the plain form that succeeds, appending
    /// the same line of JSON `Shell.execute` would give (with its newline); false, having
    /// appended nothing, when the general way must answer it.
    func appendPageRead(_ line: String, into output: inout [UInt8]) -> Bool {
        guard json, let read = Self.parsePageRead(line) else { return false }
        let started = metrics == nil ? 0 : monotonicNanoseconds()
        let start = output.count
        JSONBytes.append("{\"ok\":true,\"tweets\":[", to: &output)
        let next: UInt64?
        do {
            let limit = read.limit ?? SocialDB.pageLimitDefault
            switch read.verb {
            case .home:
                next = try shell.db.appendEncodedHome(handle: read.handle, limit: limit, before: read.before, as: JSONTweetEncoding.self, into: &output)
            case .tweets:
                next = try shell.db.appendEncodedTweets(handle: read.handle, limit: limit, before: read.before, as: JSONTweetEncoding.self, into: &output)
            }
        } catch {
            output.removeSubrange(start...)
            return false
        }
        JSONBytes.append("],\"next\":", to: &output)
        if let next {
            output.append(UInt8(ascii: "\""))
            JSONBytes.appendDecimal(next, to: &output)
            output.append(UInt8(ascii: "\""))
        } else {
            JSONBytes.append("null", to: &output)
        }
        JSONBytes.append("}\n", to: &output)
        if let metrics {
            metrics.count(verb: read.verb == .home ? "HOME" : "TWEETS", nanoseconds: monotonicNanoseconds() - started, failed: false)
        }
        return true
    }
}
