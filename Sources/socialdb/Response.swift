import Social

/// A value in a JSON response. Tweet ids and other 64-bit ids are strings, as the brief says.
///
/// Rendering writes bytes into one `[UInt8]` (`render(into:)`), with no String built per field:
/// the server appends every answer of a batch to one buffer, and pages of tweets are most of
/// what it answers. The `String` forms wrap the byte form, so both give the same text.
enum JSONValue {
    case string(String)
    case int(Int)
    /// A finite number, rendered with up to 4 decimals (non-finite values render as null).
    case double(Double)
    case bool(Bool)
    case null
    case object([(String, JSONValue)])
    case array([JSONValue])
    /// One tweet as an object (the fields of Docs/SHELL.md), written straight from the value.
    case tweet(Tweet)
    /// A list of tweets as an array of those objects (pages: the server's most frequent answer).
    case tweets([Tweet])
    /// JSON text already written (a page or a tweet served from the tweets' cached JSON by
    /// `SocialDB.appendEncodedHome` and the like: the bytes `.tweets` or `.tweet` would write).
    case raw([UInt8])

    func render(into out: inout [UInt8]) {
        switch self {
        case .string(let s): JSONBytes.appendString(s, to: &out)
        case .int(let i): JSONBytes.appendInteger(i, to: &out)
        case .double(let d):
            if d.isFinite {
                let scaled = Int((d * 10_000).rounded())
                if scaled < 0 { out.append(UInt8(ascii: "-")) }
                let magnitude = scaled.magnitude
                JSONBytes.appendDecimal(UInt64(magnitude / 10_000), to: &out)
                out.append(UInt8(ascii: "."))
                JSONBytes.appendDecimal(UInt64(magnitude % 10_000), width: 4, to: &out)
            } else {
                JSONBytes.append("null", to: &out)
            }
        case .bool(let b): JSONBytes.append(b ? "true" : "false", to: &out)
        case .null: JSONBytes.append("null", to: &out)
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in fields {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONBytes.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.render(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let values):
            out.append(UInt8(ascii: "["))
            var first = true
            for value in values {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                value.render(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .tweet(let tweet): renderTweetJSON(tweet, into: &out)
        case .raw(let bytes): out.append(contentsOf: bytes)
        case .tweets(let tweets):
            out.append(UInt8(ascii: "["))
            var first = true
            for tweet in tweets {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                renderTweetJSON(tweet, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    func render(into out: inout String) {
        var bytes: [UInt8] = []
        render(into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    static func quote(_ s: String, into out: inout String) {
        var bytes: [UInt8] = []
        JSONBytes.appendString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}

/// The pieces of JSON text, appended to a byte buffer without intermediate Strings.
enum JSONBytes {
    /// Text known at compile time (punctuation, keys, literals): copied from the binary.
    @inline(__always)
    static func append(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `s` as a JSON string: quoted, with `"`, `\` and control characters escaped (`\n`, `\r`,
    /// `\t`, else `\u00xx`). Other bytes are copied as they are: a String is valid UTF-8, and
    /// the bytes of a multi-byte character are all >= 0x80, so copying bytes copies characters.
    /// Runs without an escape (almost all text) are copied whole.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for i in 0..<bytes.count {
                let byte = bytes[i]
                if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 10: out.append(UInt8(ascii: "n"))
                case 13: out.append(UInt8(ascii: "r"))
                case 9: out.append(UInt8(ascii: "t"))
                default:
                    append("u00", to: &out)
                    out.append(hexDigit(byte >> 4))
                    out.append(hexDigit(byte & 15))
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    static func appendInteger(_ value: Int, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(UInt64(value.magnitude), to: &out)
    }

    /// The decimal digits of `value`, at least `width` (at most 20) of them, with leading zeros.
    /// The digits are made right to left in a buffer on the stack and appended in one copy
    /// (a page of tweets has about 150 numbers: ids, counts, the parts of each time).
    static func appendDecimal(_ value: UInt64, width: Int = 1, to out: inout [UInt8]) {
        if value < 10 && width <= 1 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        precondition(width <= 20, "a UInt64 has at most 20 digits")
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            var rest = value
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0 || 20 - start < width
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<20]))
        }
    }

    /// An id as a JSON string (`"123"`), or `null`.
    static func appendID(_ value: UInt64?, to out: inout [UInt8]) {
        guard let value else {
            append("null", to: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
        appendDecimal(value, to: &out)
        out.append(UInt8(ascii: "\""))
    }
}

/// The stable error codes of the shell language.
enum ErrorCode: String {
    case notFound = "not_found", exists, invalid, forbidden, tooLong = "too_long"
    case rateLimited = "rate_limited", syntax, io
}

/// What one command answers: a success with fields (and its human rendering), or an error.
enum Response {
    case ok(fields: [(String, JSONValue)], human: String)
    /// A success that answers tweets (one, or a page: POST, TWEET, HOME, TWEETS, SEARCH, THREAD):
    /// `fields` as for `ok` (they hold the tweets as `.tweet`/`.tweets`), and the human text made
    /// from `list` only when it is asked for (a server connection in JSON never asks), with a
    /// last line `more: BEFORE <more>` when there is a next page and `empty` for no tweets.
    case tweets(fields: [(String, JSONValue)], list: [Tweet], more: UInt64?, empty: String)
    /// A success made for a shell or connection that answers in JSON only (pages served from
    /// the tweets' cached JSON): it has no human form, and asking for one is a programmer error.
    case json(fields: [(String, JSONValue)])
    case error(ErrorCode, String)

    var isError: Bool { if case .error = self { true } else { false } }

    /// The fields of a success (`ok` is not among them); nil for an error.
    var fields: [(String, JSONValue)]? {
        switch self {
        case .ok(let fields, _), .tweets(let fields, _, _, _), .json(let fields): fields
        case .error: nil
        }
    }

    /// With `elapsedNanoseconds` (`\\timing on`): human text gets a line `Time: 0.412 ms` after
    /// the response, as psql prints it; JSON gets a last field `"time_ms":0.412`.
    func render(json: Bool, elapsedNanoseconds: UInt64?) -> String {
        var text = render(json: json)
        guard let elapsedNanoseconds else { return text }
        let microseconds = (elapsedNanoseconds + 500) / 1000
        let fraction = String(microseconds % 1000)
        let milliseconds = "\(microseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
        if json {
            text.removeLast() // the object's closing brace
            return text + ",\"time_ms\":" + milliseconds + "}"
        }
        return text + "\nTime: " + milliseconds + " ms"
    }

    func render(json: Bool) -> String {
        guard json else { return humanText }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        appendJSON(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The JSON form, one object without a newline, appended to `out`.
    func appendJSON(to out: inout [UInt8]) {
        switch self {
        case .ok(let fields, _), .tweets(let fields, _, _, _), .json(let fields):
            JSONBytes.append("{\"ok\":true", to: &out)
            for (key, value) in fields {
                out.append(UInt8(ascii: ","))
                JSONBytes.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.render(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .error(let code, let message):
            JSONBytes.append("{\"ok\":false,\"error\":{\"code\":", to: &out)
            JSONBytes.appendString(code.rawValue, to: &out)
            JSONBytes.append(",\"message\":", to: &out)
            JSONBytes.appendString(message, to: &out)
            JSONBytes.append("}}", to: &out)
        }
    }

    /// The human form (`FORMAT text`, the shell without `--json`).
    var humanText: String {
        switch self {
        case .ok(_, let human): return human
        case .tweets(_, let list, let more, let empty):
            var text = tweetsText(list, empty: empty)
            if let more { text += "\nmore: BEFORE \(more)" }
            return text
        case .json:
            preconditionFailure("a response made for a JSON answer has no human form (Shell.json was on)")
        case .error(let code, let message): return "error (\(code.rawValue)): \(message)"
        }
    }
}
