/// A value in a JSON response. Tweet ids and other 64-bit ids are strings, as the brief says.
enum JSONValue {
    case string(String)
    case int(Int)
    /// A finite number, rendered with up to 4 decimals (non-finite values render as null).
    case double(Double)
    case bool(Bool)
    case null
    case object([(String, JSONValue)])
    case array([JSONValue])
    /// A value rendered already (pages of tweets, written straight into one string: the
    /// server's most frequent answers).
    case raw(String)

    func render(into out: inout String) {
        switch self {
        case .string(let s): JSONValue.quote(s, into: &out)
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isFinite {
                let scaled = Int((d * 10_000).rounded())
                let sign = scaled < 0 ? "-" : ""
                let magnitude = scaled.magnitude
                var fraction = String(magnitude % 10_000)
                while fraction.count < 4 { fraction = "0" + fraction }
                out += "\(sign)\(magnitude / 10_000).\(fraction)"
            } else {
                out += "null"
            }
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .raw(let text): out += text
        case .object(let fields):
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSONValue.quote(key, into: &out)
                out += ":"
                value.render(into: &out)
            }
            out += "}"
        case .array(let values):
            out += "["
            for (i, value) in values.enumerated() {
                if i > 0 { out += "," }
                value.render(into: &out)
            }
            out += "]"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        // Most strings need no escape: append them whole (the server renders many per second).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
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
    case error(ErrorCode, String)

    var isError: Bool { if case .error = self { true } else { false } }

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
        switch self {
        case .ok(let fields, let human):
            if !json { return human }
            var out = ""
            out.reserveCapacity(1024)
            JSONValue.object([("ok", .bool(true))] + fields).render(into: &out)
            return out
        case .error(let code, let message):
            if !json { return "error (\(code.rawValue)): \(message)" }
            var out = ""
            JSONValue.object([
                ("ok", .bool(false)),
                ("error", .object([("code", .string(code.rawValue)), ("message", .string(message))])),
            ]).render(into: &out)
            return out
        }
    }
}
