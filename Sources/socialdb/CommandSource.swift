#if canImport(Glibc)
import Glibc
#endif

/// Where the shell's commands come from: one command per call, nil at the end of input. The
/// shell and any client of the language (`--connect`) read through this.
protocol CommandSource: AnyObject {
    func nextCommand() -> String?
}

/// Script mode, pipes, and a terminal the editor cannot drive: one line per command from a C
/// stream (`getline`), after `prompt` when there is one.
final class StreamCommandSource: CommandSource {
    let stream: UnsafeMutablePointer<FILE>
    let prompt: String?

    init(stream: UnsafeMutablePointer<FILE>, prompt: String?) {
        self.stream = stream
        self.prompt = prompt
    }

    func nextCommand() -> String? {
        if let prompt { writeOut(prompt) }
        return readLine(from: stream)
    }
}

/// A person at a terminal: the line editor with history and verb completion. A line with an
/// unterminated quote continues on the next (prompt `   ...> `), the lines joined by a newline
/// inside the quoted string; Ctrl-C drops the command being typed; Ctrl-D on an empty line ends.
final class TerminalCommandSource: CommandSource {
    let editor: LineEditor
    let prompt: String
    let continuationPrompt: String

    /// Nil when standard input and output are not both a terminal the editor can drive.
    init?(historyPath: String?, prompt: String = "socialdb> ", continuationPrompt: String = "   ...> ") {
        guard let editor = LineEditor(history: History(path: historyPath)) else { return nil }
        editor.completer = completeShellWord
        self.editor = editor
        self.prompt = prompt
        self.continuationPrompt = continuationPrompt
    }

    func nextCommand() -> String? {
        var pending: String?
        while true {
            switch editor.readLine(prompt: pending == nil ? prompt : continuationPrompt) {
            case .end:
                return nil
            case .interrupted:
                pending = nil
            case .line(let text):
                let command = pending.map { $0 + "\n" + text } ?? text
                if Self.continues(command) {
                    pending = command
                    continue
                }
                if let entry = Self.historyEntry(command) { editor.history.add(entry) }
                return command
            }
        }
    }

    /// Whether a command needs another line: a quote is still open (comments never continue).
    static func continues(_ command: String) -> Bool {
        let trimmed = command.drop { $0 == " " || $0 == "\t" }
        if trimmed.hasPrefix("--") { return false }
        if case .failure(.unterminatedQuote) = Tokenizer.split(command) { return true }
        return false
    }

    /// How a command is kept in the history: on one line (a newline, which only a continued
    /// quoted string holds, written as its escape `\n`); nil for commands that carry a password.
    static func historyEntry(_ command: String) -> String? {
        if case .success(let words) = Tokenizer.split(command) {
            let upper = words.filter { !$0.quoted }.map { $0.text.uppercased() }
            if upper.first == "AUTH" || upper.first == "PASSWORD" || (upper.first == "USER" && upper.contains("PASSWORD")) { return nil }
        }
        return command.replacingNewlines()
    }
}

private extension String {
    func replacingNewlines() -> String {
        var out = ""
        for c in self { out += c == "\n" ? "\\n" : String(c) }
        return out
    }
}

/// Tab completion: the verb in the first word (and `\timing`), the keyword after USER, SEARCH
/// and IMPORT, in the case the word was typed in (lowercase stays lowercase).
func completeShellWord(_ line: [Character], _ cursor: Int) -> (wordStart: Int, candidates: [String]) {
    var start = cursor
    while start > 0 && line[start - 1] != " " && line[start - 1] != "\t" { start -= 1 }
    let word = String(line[start..<cursor])
    let before = String(line[..<start]).split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.uppercased() }
    let choices: [String]
    switch before {
    case []: choices = commandTable.map(\.verb) + ["\\TIMING"]
    case ["USER"]: choices = ["ADD", "SHOW", "SET"]
    case ["FORMAT"]: choices = ["TEXT", "JSON"]
    case ["SEARCH"]: choices = ["TWEETS", "USERS"]
    case ["IMPORT"]: choices = ["FOLLOWS", "TWEETS"]
    case ["\\TIMING"]: choices = ["ON", "OFF"]
    default: choices = []
    }
    let upper = word.uppercased()
    let lower = word.contains(where: \.isLowercase) || (word.isEmpty == false && !word.contains(where: \.isUppercase))
    let candidates = choices.filter { $0.hasPrefix(upper) }.map { lower ? $0.lowercased() : $0 }
    return (start, candidates)
}
