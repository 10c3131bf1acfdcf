/// A parsed search: an AND of clauses, each an OR of phrases, optionally negated, plus a time
/// range. A single term is a phrase of one term.
///
/// Syntax (Twitter's search box):
///
///     word                  the folded word (a word that folds to several terms, such as
///                           `東京` or `e-mail`, is a phrase of them)
///     "exact phrase"        the terms at consecutive positions
///     #tag  @user           a hashtag, a mention
///     from:handle           tweets by the author with that handle (`from:@handle` also)
///     url:host              tweets linking to the host
///     is:reply  is:retweet  is:quote
///     since:YYYY-MM-DD      tweets at or after 00:00 UTC of that day
///     until:YYYY-MM-DD      tweets before 00:00 UTC of that day (exclusive, as on Twitter)
///     a OR b                either; OR binds tighter than the implicit AND: `x a OR b y` is
///                           x AND (a OR b) AND y
///     -term                 not (any of the forms above but since/until; `-a OR b` is an error)
///
/// At least one clause must be positive (a query of only negations or dates is an error).
public struct SearchQuery: Equatable, Sendable, CustomStringConvertible {
    /// Terms that must occur at consecutive positions (one term: anywhere).
    public struct Phrase: Equatable, Sendable {
        public var terms: [String]
        public init(_ terms: [String]) { self.terms = terms }
    }

    public struct Clause: Equatable, Sendable {
        public var alternatives: [Phrase]
        public var negated: Bool
        public init(alternatives: [Phrase], negated: Bool = false) {
            self.alternatives = alternatives
            self.negated = negated
        }
    }

    public var clauses: [Clause]
    /// Unix milliseconds, inclusive.
    public var sinceMilliseconds: UInt64?
    /// Unix milliseconds, exclusive.
    public var untilMilliseconds: UInt64?

    public init(clauses: [Clause], sinceMilliseconds: UInt64? = nil, untilMilliseconds: UInt64? = nil) {
        self.clauses = clauses
        self.sinceMilliseconds = sinceMilliseconds
        self.untilMilliseconds = untilMilliseconds
    }

    /// The term `is:reply` and friends index under.
    public static let replyTerm = "is:reply"
    public static let retweetTerm = "is:retweet"
    public static let quoteTerm = "is:quote"

    public static func fromTerm(_ handle: String) -> String { "from:" + SearchTokenizer.foldWord(Substring(handle)) }

    public var description: String {
        var parts: [String] = clauses.map { clause in
            let alternatives = clause.alternatives.map { $0.terms.count == 1 ? $0.terms[0] : "\"" + $0.terms.joined(separator: " ") + "\"" }
            return (clause.negated ? "-" : "") + alternatives.joined(separator: " OR ")
        }
        if let sinceMilliseconds { parts.append("since:\(sinceMilliseconds)ms") }
        if let untilMilliseconds { parts.append("until:\(untilMilliseconds)ms") }
        return parts.joined(separator: " ")
    }

    /// The term when the query is one positive term and nothing else (no OR, phrase,
    /// negation or dates): `SearchIndex` answers those without the general evaluator.
    var singleTerm: String? {
        guard clauses.count == 1, !clauses[0].negated, clauses[0].alternatives.count == 1, clauses[0].alternatives[0].terms.count == 1,
              sinceMilliseconds == nil, untilMilliseconds == nil else { return nil }
        return clauses[0].alternatives[0].terms[0]
    }

    // MARK: Parsing

    /// Parses Twitter search-box syntax; throws `SearchQueryError` naming what is wrong.
    public static func parse(_ text: String) throws(SearchQueryError) -> SearchQuery {
        var lexer = Lexer(text)
        var items: [Item] = []
        items.reserveCapacity(4)
        while let item = try lexer.next() { items.append(item) }
        if items.isEmpty { throw SearchQueryError("empty query") }
        var query = SearchQuery(clauses: [])
        query.clauses.reserveCapacity(items.count)
        var index = 0
        while index < items.count {
            let item = items[index]
            switch item {
            case .or:
                throw SearchQueryError(index == 0 ? "OR at the start of the query" : "OR after OR")
            case .since(let ms):
                query.sinceMilliseconds = max(query.sinceMilliseconds ?? 0, ms)
                index += 1
                if index < items.count, case .or = items[index] { throw SearchQueryError("since: cannot be part of an OR") }
            case .until(let ms):
                query.untilMilliseconds = min(query.untilMilliseconds ?? .max, ms)
                index += 1
                if index < items.count, case .or = items[index] { throw SearchQueryError("until: cannot be part of an OR") }
            case .match(let phrase, let negated):
                var clause = Clause(alternatives: [phrase], negated: negated)
                index += 1
                while index < items.count, case .or = items[index] {
                    index += 1
                    guard index < items.count else { throw SearchQueryError("OR at the end of the query") }
                    guard case .match(let next, let nextNegated) = items[index] else {
                        if case .or = items[index] { throw SearchQueryError("OR after OR") }
                        throw SearchQueryError("since:/until: cannot be part of an OR")
                    }
                    if negated || nextNegated { throw SearchQueryError("a negated term cannot be part of an OR") }
                    clause.alternatives.append(next)
                    index += 1
                }
                query.clauses.append(clause)
            }
        }
        if !query.clauses.contains(where: { !$0.negated }) {
            throw SearchQueryError("the query needs at least one word, phrase, #tag, @mention, from:, url: or is: that is not negated")
        }
        if let since = query.sinceMilliseconds, let until = query.untilMilliseconds, since >= until {
            throw SearchQueryError("since: is not before until:")
        }
        return query
    }

    enum Item {
        case match(Phrase, negated: Bool)
        case or
        case since(UInt64)
        case until(UInt64)
    }

    struct Lexer {
        /// The scalars, when the text is not all ASCII (else empty: `bytes` serve).
        let text: [Unicode.Scalar]
        /// Whether every scalar is ASCII; then the lexer reads `bytes` alone (a byte is a scalar).
        let ascii: Bool
        let bytes: [UInt8]
        /// The number of scalars.
        let count: Int
        var i = 0

        init(_ source: String) {
            var source = source
            ascii = source.withUTF8 { SearchTokenizer.isASCII($0) }
            bytes = ascii ? Array(source.utf8) : []
            text = ascii ? [] : Array(source.unicodeScalars)
            count = ascii ? bytes.count : text.count
        }

        /// Scalar `k`.
        @inline(__always)
        func scalar(_ k: Int) -> Unicode.Scalar { ascii ? Unicode.Scalar(bytes[k]) : text[k] }

        /// `Unicode.Scalar.Properties.isWhitespace`, without the property lookup for ASCII.
        @inline(__always)
        static func isSpace(_ s: Unicode.Scalar) -> Bool {
            s.value < 0x80 ? SearchTokenizer.isSpaceByte(UInt8(s.value)) : s.properties.isWhitespace
        }

        func string(_ range: Range<Int>) -> String {
            ascii ? String(decoding: bytes[range], as: UTF8.self) : String(String.UnicodeScalarView(text[range]))
        }

        mutating func next() throws(SearchQueryError) -> Item? {
            while i < count, Self.isSpace(scalar(i)) { i += 1 }
            guard i < count else { return nil }
            var negated = false
            if scalar(i) == "-" {
                negated = true
                i += 1
                guard i < count, !Self.isSpace(scalar(i)) else { throw SearchQueryError("'-' must be followed by what to exclude") }
            }
            if scalar(i) == "\"" {
                let start = i + 1
                var j = start
                while j < count, scalar(j) != "\"" { j += 1 }
                guard j < count else { throw SearchQueryError("unterminated quote") }
                i = j + 1
                let inner = string(start..<j)
                var tokens: [SearchToken] = []
                SearchTokenizer.tokenize(inner, into: &tokens, forQuery: true)
                if tokens.isEmpty { throw SearchQueryError("the phrase \"\(inner)\" has nothing to search for") }
                return .match(Phrase(tokens.map(\.term)), negated: negated)
            }
            let start = i
            while i < count, !Self.isSpace(scalar(i)) { i += 1 }
            let word = string(start..<i)
            if word == "OR" && !negated { return .or }
            // ASCII: a scalar is a character, so the first ':' byte is the first ':' character.
            let colonIndex = ascii
                ? bytes[start..<i].firstIndex(of: 0x3A).map { word.utf8.index(word.utf8.startIndex, offsetBy: $0 - start) }
                : word.firstIndex(of: ":")
            if let colon = colonIndex {
                let op = word[..<colon].lowercased()
                let value = word[word.index(after: colon)...]
                switch op {
                case "from":
                    var handle = value
                    if handle.hasPrefix("@") { handle = handle.dropFirst() }
                    guard !handle.isEmpty, handle.utf8.count <= 15, handle.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }) else {
                        throw SearchQueryError("from: needs a handle (1-15 of A-Z a-z 0-9 _), got '\(value)'")
                    }
                    return .match(Phrase([SearchQuery.fromTerm(String(handle))]), negated: negated)
                case "url":
                    let host = String(SearchTokenizer.foldWord(value).drop(while: { $0 == "." }))
                    let trimmed = host.hasPrefix("www.") ? String(host.dropFirst(4)) : host
                    guard !trimmed.isEmpty else { throw SearchQueryError("url: needs a host") }
                    return .match(Phrase(["url:" + trimmed]), negated: negated)
                case "is":
                    switch value.lowercased() {
                    case "reply": return .match(Phrase([SearchQuery.replyTerm]), negated: negated)
                    case "retweet": return .match(Phrase([SearchQuery.retweetTerm]), negated: negated)
                    case "quote": return .match(Phrase([SearchQuery.quoteTerm]), negated: negated)
                    default: throw SearchQueryError("is: takes reply, retweet or quote, got '\(value)'")
                    }
                case "since", "until":
                    if negated { throw SearchQueryError("\(op): cannot be negated") }
                    guard let ms = Self.date(value) else { throw SearchQueryError("\(op): needs a date YYYY-MM-DD, got '\(value)'") }
                    return op == "since" ? .since(ms) : .until(ms)
                default:
                    // Not an operator we know: a time like 10:30 or a URL is text; an unknown
                    // lowercase word followed by a colon is a likely typo and is reported.
                    if !op.isEmpty, op.unicodeScalars.allSatisfy({ $0.value >= 0x61 && $0.value <= 0x7A }), !value.isEmpty,
                       !value.hasPrefix("//") {
                        throw SearchQueryError("unknown operator '\(op):'")
                    }
                }
            }
            var tokens: [SearchToken] = []
            SearchTokenizer.tokenize(word, into: &tokens, forQuery: true)
            if tokens.isEmpty { throw SearchQueryError("'\(word)' has nothing to search for") }
            return .match(Phrase(tokens.map(\.term)), negated: negated)
        }

        /// YYYY-MM-DD to Unix milliseconds at 00:00 UTC, or nil.
        static func date(_ text: Substring) -> UInt64? {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
                  let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
                  y >= 1970, y <= 2200, m >= 1, m <= 12, d >= 1 else { return nil }
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
            let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard d <= monthDays[m - 1] else { return nil }
            return UInt64(daysFromCivil(y, m, d)) * 86_400_000
        }

        /// Days since 1970-01-01 (Howard Hinnant's algorithm).
        static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yoe = y - era * 400
            let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            return era * 146_097 + doe - 719_468
        }
    }
}

/// A malformed query, with a message fit to show the user.
public struct SearchQueryError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
