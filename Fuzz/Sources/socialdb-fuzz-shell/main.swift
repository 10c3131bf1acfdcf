import Foundation
import FuzzSupport
import Social
import StorageEngine

// socialdb-fuzz-shell: libFuzzer targets for the shell language (the tokenizer, the command
// parser and the commands run against a small database). See Fuzz/README.md.

/// The shell needs these from the `socialdb` program's main file, which is not compiled here.
func printError(_ message: String) { FileHandle.standardError.write(Data((message + "\n").utf8)) }
func printErrorPartial(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
func writeOut(_ text: String) {}
func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Quotes a word so the tokenizer reads it back as it is.
func quote(_ text: String) -> String {
    var out = "\""
    for c in text.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(c)
        }
    }
    return out + "\""
}

/// Splits a line; when it splits, joining its words quoted must split into the same words.
func tokenizer(_ input: UnsafeRawBufferPointer) {
    let line = String(decoding: input, as: UTF8.self)
    guard case .success(let words) = Tokenizer.split(line) else { return }
    let again = Tokenizer.split(words.map { quote($0.text) }.joined(separator: " "))
    guard case .success(let words2) = again, words2.map(\.text) == words.map(\.text) else {
        fuzzFailure("tokenizer: \(words.map(\.text)) quoted and split again gives \(again)")
    }
    if let first = words.first { _ = nearestVerb(to: String(first.text.prefix(64))) }
}

/// What any change to the data moves.
struct Fingerprint: Equatable {
    var nextLSN: UInt64
    var users: Int
    var edges: Int
}

final class ShellState: @unchecked Sendable {
    let folder = scratchFolder + "/db"
    var db: SocialDB
    var shell: Shell
    var inputs = 0

    init() {
        (db, shell) = ShellState.open(scratchFolder + "/db")
    }

    static func open(_ folder: String) -> (SocialDB, Shell) {
        try? FileManager.default.removeItem(atPath: folder)
        var options = SocialOptions()
        options.engine.ioBackend = .posix
        options.sync = .off
        let db = try! SocialDB.open(at: folder, options: options)
        let shell = Shell(db: db, json: false)
        for line in ["USER ADD alice", "USER ADD bob", "USER ADD carol", "FOLLOW bob alice", "POST alice \"hello #tag @bob\""] {
            _ = shell.execute(line)
        }
        return (db, shell)
    }

    /// A fresh database every few thousand inputs, so the data stays small.
    func recycle() {
        inputs += 1
        guard inputs % 2000 == 0 else { return }
        try! db.close()
        (db, shell) = ShellState.open(folder)
    }

    var fingerprint: Fingerprint {
        Fingerprint(nextLSN: db.engine.log.nextSequenceNumber, users: (try? db.userCount()) ?? -1, edges: db.engine.graph.statistics().edges)
    }
}

nonisolated(unsafe) var shellState: ShellState?

/// Each input line run by the shell (IMPORT and QUIT left out: they read files named by the
/// input, or end the session). A command answered with an error must change nothing.
func shellCommands(_ input: UnsafeRawBufferPointer) {
    if shellState == nil { shellState = ShellState() }
    let state = shellState!
    state.recycle()
    let text = String(decoding: input, as: UTF8.self)
    for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(16) {
        let verb = line.drop { $0 == " " || $0 == "\t" }.prefix { $0 != " " && $0 != "\t" }.uppercased()
        if verb == "IMPORT" || verb == "QUIT" || verb == "EXIT" { continue }
        let before = state.fingerprint
        guard let response = state.shell.execute(String(line)) else { continue }
        if response.isError && state.fingerprint != before {
            fuzzFailure("the command \(line.debugDescription) failed but changed the data: \(before) -> \(state.fingerprint)")
        }
    }
}

fuzzMain([
    FuzzTarget("shell-tokenizer", "the shell's tokenizer (words, quotes, escapes)", seeds: { _ in
        ["POST alice \"a \\\"b\\\" c\"", "SEARCH \"#tag\" LIMIT 5", "\"open", "a\tb  c \"\\n\"", "\"\\q\""].map { Array($0.utf8) }
    }, run: tokenizer),
    FuzzTarget("shell", "shell command lines run against a small database", seeds: { _ in
        ["USER ADD dave \"Dave D\"\nPOST dave \"hi @alice #x\"", "HOME bob LIMIT 5", "SEARCH from:alice #tag LIMIT 3 BEFORE 99",
         "FOLLOWERS alice LIMIT 2 AFTER 0", "LIKE bob 1\nUNLIKE bob 1\nRETWEET carol 1\nDELETE alice 1",
         "USER SET alice bio \"x\"", "NOTIFICATIONS bob", "TRENDS LIMIT 3", "THREAD 1", "TWEETS alice BEFORE 1", "HELP POST",
         "\\timing on", "SEARCH USERS al LIMIT 2", "REPLY bob 1 \"re\"", "QUOTE carol 1 \"q\"", "UNFOLLOW bob alice", "STATS"]
            .map { Array($0.utf8) }
    }, run: shellCommands),
])
