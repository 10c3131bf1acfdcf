import Social

/// One connection's state in `socialdb serve`: the shell that runs its commands (with the
/// connection's account, if it authenticated) and the format its responses are written in.
///
/// Thread safety: a session is used by one job at a time. The connection's handler runs a job
/// (a batch of its command lines) on the worker pool and starts the next only when the previous
/// has answered, so a session is never touched by two threads at once; it is `Sendable` only to
/// cross into those jobs.
final class Session: @unchecked Sendable {
    let shell: Shell
    /// `FORMAT json` (the default: one line of JSON per command) or `FORMAT text` (the shell's
    /// human form, each response ended by a line holding one `.`).
    private(set) var json = true
    let metrics: ServerMetrics?
    /// Failed AUTHs on this connection; at `failedLoginsMax` the connection is closed (on top
    /// of the per-handle limit of the Social layer, which a guesser cycling handles avoids).
    private var failedLogins = 0
    static let failedLoginsMax = 20

    /// The client's address (without port), for `loginGuard`.
    let peer: String
    let loginGuard: LoginGuard?

    init(db: SocialDB, metrics: ServerMetrics?, peer: String = "", loginGuard: LoginGuard? = nil) {
        self.peer = peer
        self.loginGuard = loginGuard
        shell = Shell(db: db, json: true)
        shell.enforcesAccounts = true
        self.metrics = metrics
    }

    /// What a line the connection sent stands for, decided by the connection's framing.
    enum Input: Sendable {
        case line(String)
        /// A line over the length limit (its bytes were dropped as they came).
        case tooLong(limitBytes: Int)
        /// A line that is not valid UTF-8.
        case notText
    }

    /// The responses to `inputs`, in order, appended to `output`; stops after QUIT and says so.
    /// `outputBytesMax` ends the batch early (the rest is run by the next job) so that one job's
    /// answer stays bounded; returns how many inputs were consumed.
    func run<Inputs: Collection<Input>>(_ inputs: Inputs, into output: inout [UInt8], outputBytesMax: Int) -> (consumed: Int, quit: Bool) {
        var consumed = 0
        for input in inputs {
            consumed += 1
            let response: Response?
            switch input {
            case .line(let line):
                if appendPageRead(line, into: &output) {
                    response = nil
                } else {
                    response = execute(line)
                }
            case .tooLong(let limit):
                response = .error(.tooLong, "the line is longer than \(limit) bytes; it was ignored")
                metrics?.count(verb: "OTHER", nanoseconds: 0, failed: true)
            case .notText:
                response = .error(.syntax, "the line is not valid UTF-8; it was ignored")
                metrics?.count(verb: "OTHER", nanoseconds: 0, failed: true)
            }
            if let response { append(response, to: &output) }
            if shell.quitRequested { return (consumed, true) }
            if output.count >= outputBytesMax { break }
        }
        return (consumed, false)
    }

    /// Whether `input` may run on an event loop (`Server.Configuration.readsOnEventLoop`): a
    /// read of the language (it takes no writer lock, and under `--sync off` or `interval` it
    /// waits for no fdatasync), a blank line or comment, FORMAT, or a line answered with an
    /// error before it runs; with `writes` (`Server.Configuration.writesOnEventLoop`) also the
    /// writes of one tweet, like or follow, which under those policies wait only for the writer
    /// lock and their own apply. AUTH (a password hash takes milliseconds), DELETE (a tweet's
    /// retweets go with it), IMPORT, USER and the rest go to the worker pool.
    static func runsOnEventLoop(_ input: Input, writes: Bool = false) -> Bool {
        guard case .line(var text) = input else { return true }
        return text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count && (bytes[start] == 32 || bytes[start] == 9) { start += 1 }
            var end = start
            while end < bytes.count && bytes[end] != 32 && bytes[end] != 9 { end += 1 }
            if end == start { return true } // blank
            if end - start >= 2 && bytes[start] == UInt8(ascii: "-") && bytes[start + 1] == UInt8(ascii: "-") { return true } // comment
            let word = UnsafeBufferPointer(rebasing: bytes[start..<end])
            func matches(_ verb: [UInt8]) -> Bool {
                verb.count == word.count && zip(verb, word).allSatisfy { $0 == ($1 >= 97 && $1 <= 122 ? $1 - 32 : $1) }
            }
            return eventLoopVerbs.contains(where: matches) || (writes && eventLoopWriteVerbs.contains(where: matches))
        }
    }

    /// The writes `runsOnEventLoop` lets run there when asked to: each changes one tweet, like,
    /// retweet or follow (bounded work under the writer lock).
    private static let eventLoopWriteVerbs: [[UInt8]] = ["POST", "REPLY", "QUOTE", "RETWEET", "UNRETWEET", "LIKE", "UNLIKE",
                                                         "FOLLOW", "UNFOLLOW"].map { Array($0.utf8) }

    /// The verbs `runsOnEventLoop` lets run there, in upper case: reads of public data and of
    /// one's own notifications, and FORMAT.
    private static let eventLoopVerbs: [[UInt8]] = ["HOME", "TWEETS", "TWEET", "THREAD", "SEARCH", "FOLLOWERS", "FOLLOWING",
                                                    "NOTIFICATIONS", "TRENDS", "HELP", "FORMAT"].map { Array($0.utf8) }

    /// One command line: FORMAT is the connection's own; the rest is the shell's language.
    func execute(_ line: String) -> Response? {
        let started = metrics == nil ? 0 : monotonicNanoseconds()
        let verb = Self.verb(of: line)
        guard !verb.isEmpty else { return nil } // blank lines and comments get no response
        let response: Response?
        if verb == "FORMAT" {
            response = format(line)
        } else if verb.hasPrefix("\\") {
            response = .error(.syntax, "\(verb.lowercased()) is a command of the shell client, not of the server")
        } else if verb == "AUTH", let wait = loginGuard?.retryAfterSeconds(peer) {
            response = .error(.rateLimited, "too many failed logins from this address; try again in \(wait) seconds")
            failedLogins += 1
            if failedLogins >= Self.failedLoginsMax { shell.quitRequested = true }
        } else {
            response = shell.execute(line)
            if verb == "AUTH", case .error(let code, _) = response, code == .forbidden || code == .rateLimited {
                loginGuard?.recordFailure(peer)
                failedLogins += 1
                if failedLogins >= Self.failedLoginsMax { shell.quitRequested = true }
            }
        }
        if let metrics {
            metrics.count(verb: verb, nanoseconds: monotonicNanoseconds() - started, failed: response?.isError ?? false)
        }
        return response
    }

    private func format(_ line: String) -> Response {
        guard case .success(let words) = Tokenizer.split(line), words.count == 2 else {
            return .error(.syntax, "usage: FORMAT text|json")
        }
        switch words[1].text.lowercased() {
        case "json": json = true
        case "text": json = false
        default: return .error(.syntax, "FORMAT takes text or json, not '\(words[1].text)'")
        }
        shell.json = json
        return .ok(fields: [("format", .string(json ? "json" : "text"))], human: "format is \(json ? "json" : "text")")
    }

    /// A response on the wire: JSON on one line, or the human text with each line that starts
    /// with `.` given one more, then a line `.` (as SMTP ends a message), so a client knows
    /// where a response of several lines ends.
    func append(_ response: Response, to output: inout [UInt8]) {
        if json {
            response.appendJSON(to: &output)
            output.append(10)
            return
        }
        let text = response.humanText
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == "." { output.append(UInt8(ascii: ".")) }
            output.append(contentsOf: line.utf8)
            output.append(10)
        }
        output.append(contentsOf: ".\n".utf8)
    }

    /// The first word of a line in upper case (a known verb, FORMAT, or the word as typed, cut
    /// to 16 characters for the metrics); empty for blank lines and comments.
    static func verb(of line: String) -> String {
        var word = ""
        for c in line.utf8 {
            if c == 32 || c == 9 {
                if word.isEmpty { continue }
                break
            }
            if word.isEmpty && c == UInt8(ascii: "-") && line.utf8.drop(while: { $0 == 32 || $0 == 9 }).starts(with: "--".utf8) { return "" }
            if word.utf8.count >= 16 { break }
            word.unicodeScalars.append(Unicode.Scalar(c >= 97 && c <= 122 ? c - 32 : c))
        }
        return word
    }
}
