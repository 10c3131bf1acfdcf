#if canImport(Glibc)
import Glibc
#endif

/// A small line editor for the interactive shell: raw mode (termios) only while a line is being
/// read, so a command's output is written with the terminal in its ordinary mode.
///
/// Keys: left/right (Ctrl-B/F), Ctrl-left/right and Alt-B/F by word, Home/End (Ctrl-A/E),
/// Backspace, Delete, Ctrl-K (to the end), Ctrl-U (to the start), Ctrl-W (the word before the
/// cursor), up/down (Ctrl-P/N) through the history, Tab (completion), Ctrl-L (clear the screen),
/// Ctrl-C (cancel the line), Ctrl-D (end of input on an empty line, else delete), Ctrl-Z
/// (suspend). East Asian wide characters and emoji take two columns; a line wider than the
/// terminal scrolls horizontally. Pasted text is drawn once, when all of it has been read.
final class LineEditor {
    enum Outcome: Equatable {
        /// Enter: the line as edited.
        case line(String)
        /// Ctrl-C: the line was dropped.
        case interrupted
        /// Ctrl-D on an empty line, or the terminal went away.
        case end
    }

    /// Completes the word that ends at the cursor: where that word starts in `line`, and the
    /// candidates that replace it.
    typealias Completer = (_ line: [Character], _ cursor: Int) -> (wordStart: Int, candidates: [String])

    let input: Int32
    let output: Int32
    var history: History
    var completer: Completer?

    private var original = termios()

    /// Nil when `input` is not a terminal the editor can drive (not a terminal, or `TERM=dumb`).
    init?(input: Int32 = 0, output: Int32 = 1, history: History) {
        guard isatty(input) != 0, isatty(output) != 0 else { return nil }
        if let term = getenv("TERM"), String(cString: term) == "dumb" { return nil }
        self.input = input
        self.output = output
        self.history = history
        guard tcgetattr(input, &original) == 0 else { return nil }
    }

    // MARK: Raw mode

    private func enableRawMode() -> Bool {
        var raw = original
        // Input: no break signal, no CR-to-NL, no parity check, no stripping, no flow control.
        raw.c_iflag &= ~tcflag_t(BRKINT | ICRNL | INPCK | ISTRIP | IXON)
        raw.c_cflag |= tcflag_t(CS8)
        // No echo, no canonical lines, no extended functions, no signal keys (Ctrl-C is a byte).
        // Output processing stays on: "\n" still goes out as CR LF.
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        // TCSADRAIN, not TCSAFLUSH: what was typed ahead (while a command ran) is kept.
        return tcsetattr(input, TCSADRAIN, &raw) == 0
    }

    private func disableRawMode() {
        _ = tcsetattr(input, TCSADRAIN, &original)
    }

    // MARK: Reading a line

    private struct State {
        var buffer: [Character] = []
        var cursor = 0
        var prompt: String
        /// Where in the history the buffer came from (`history.count`: the new line).
        var historyIndex: Int
        /// The lines as edited while browsing the history (the new line last), kept until Enter.
        var scratch: [String]
        var lastKeyWasTab = false
    }

    /// Reads one line with `prompt`, editing in place. The history is browsed, not changed.
    func readLine(prompt: String) -> Outcome {
        guard enableRawMode() else { return .end }
        defer { disableRawMode() }
        var state = State(prompt: prompt, historyIndex: history.entries.count, scratch: history.entries + [""])
        refresh(state)
        while true {
            guard let byte = readByte() else {
                write("\n")
                return .end
            }
            let wasTab = state.lastKeyWasTab
            state.lastKeyWasTab = false
            switch byte {
            case 13, 10: // Enter
                // Leave the whole line visible (a long line scrolls), then go to the next line.
                state.cursor = state.buffer.count
                refresh(state)
                write("\n")
                return .line(String(state.buffer))
            case 3: // Ctrl-C
                write("^C\n")
                return .interrupted
            case 4: // Ctrl-D
                if state.buffer.isEmpty {
                    write("\n")
                    return .end
                }
                deleteForward(&state)
            case 1: state.cursor = 0 // Ctrl-A
            case 5: state.cursor = state.buffer.count // Ctrl-E
            case 2: state.cursor = max(0, state.cursor - 1) // Ctrl-B
            case 6: state.cursor = min(state.buffer.count, state.cursor + 1) // Ctrl-F
            case 8, 127: // Backspace
                if state.cursor > 0 {
                    state.buffer.remove(at: state.cursor - 1)
                    state.cursor -= 1
                }
            case 11: state.buffer.removeSubrange(state.cursor...) // Ctrl-K
            case 21: // Ctrl-U
                state.buffer.removeSubrange(..<state.cursor)
                state.cursor = 0
            case 23: // Ctrl-W
                let start = wordStart(before: state.cursor, in: state.buffer)
                state.buffer.removeSubrange(start..<state.cursor)
                state.cursor = start
            case 16: moveHistory(&state, by: -1) // Ctrl-P
            case 14: moveHistory(&state, by: 1) // Ctrl-N
            case 12: write("\u{1B}[H\u{1B}[2J") // Ctrl-L
            case 9: complete(&state, secondTab: wasTab) // Tab
            case 26: suspend() // Ctrl-Z
            case 27: escape(&state)
            default:
                if byte >= 32 {
                    insert(decodeCharacter(first: byte), into: &state)
                    // Pasted text: draw once when the rest has been read, not per character.
                    if inputPending() { continue }
                }
            }
            refresh(state)
        }
    }

    /// An escape sequence: arrows, Home/End, Delete, Ctrl-arrows; Alt-B/F.
    private func escape(_ state: inout State) {
        guard let first = readByte() else { return }
        switch first {
        case UInt8(ascii: "b"): state.cursor = wordStart(before: state.cursor, in: state.buffer)
        case UInt8(ascii: "f"): state.cursor = wordEnd(after: state.cursor, in: state.buffer)
        case UInt8(ascii: "O"):
            guard let key = readByte() else { return }
            if key == UInt8(ascii: "H") { state.cursor = 0 }
            if key == UInt8(ascii: "F") { state.cursor = state.buffer.count }
        case UInt8(ascii: "["):
            // CSI: parameters (digits and ';'), then one final byte.
            var parameters: [UInt8] = []
            var final: UInt8 = 0
            while let b = readByte() {
                if b >= 0x40 && b <= 0x7E { final = b; break }
                parameters.append(b)
                if parameters.count > 16 { return }
            }
            let fields = parameters.split(separator: UInt8(ascii: ";")).map { Int(String(decoding: $0, as: UTF8.self)) ?? 0 }
            let modified = fields.count >= 2 && fields[1] != 1 // Ctrl-, Alt- or Shift-arrow
            switch final {
            case UInt8(ascii: "A"): moveHistory(&state, by: -1)
            case UInt8(ascii: "B"): moveHistory(&state, by: 1)
            case UInt8(ascii: "C"):
                state.cursor = modified ? wordEnd(after: state.cursor, in: state.buffer) : min(state.buffer.count, state.cursor + 1)
            case UInt8(ascii: "D"):
                state.cursor = modified ? wordStart(before: state.cursor, in: state.buffer) : max(0, state.cursor - 1)
            case UInt8(ascii: "H"): state.cursor = 0
            case UInt8(ascii: "F"): state.cursor = state.buffer.count
            case UInt8(ascii: "~"):
                switch fields.first ?? 0 {
                case 1, 7: state.cursor = 0
                case 4, 8: state.cursor = state.buffer.count
                case 3: deleteForward(&state)
                default: break
                }
            default: break
            }
        default: break
        }
    }

    private func deleteForward(_ state: inout State) {
        if state.cursor < state.buffer.count { state.buffer.remove(at: state.cursor) }
    }

    private func insert(_ character: Character, into state: inout State) {
        // A combining mark joins the character before it (one column, one cursor step).
        if state.cursor > 0 {
            let joined = String(state.buffer[state.cursor - 1]) + String(character)
            if joined.count == 1 {
                state.buffer[state.cursor - 1] = joined.first!
                return
            }
        }
        state.buffer.insert(character, at: state.cursor)
        state.cursor += 1
    }

    private func moveHistory(_ state: inout State, by step: Int) {
        let target = state.historyIndex + step
        guard target >= 0 && target < state.scratch.count else { return }
        state.scratch[state.historyIndex] = String(state.buffer)
        state.historyIndex = target
        state.buffer = Array(state.scratch[target])
        state.cursor = state.buffer.count
    }

    private func complete(_ state: inout State, secondTab: Bool) {
        guard let completer else { return bell() }
        let (start, candidates) = completer(state.buffer, state.cursor)
        guard !candidates.isEmpty else { return bell() }
        if candidates.count == 1 {
            replaceWord(&state, from: start, with: Array(candidates[0]) + [" "])
            return
        }
        var common = Array(candidates[0])
        for candidate in candidates.dropFirst() {
            let c = Array(candidate)
            var n = 0
            while n < common.count && n < c.count && common[n] == c[n] { n += 1 }
            common.removeSubrange(n...)
        }
        if common.count > state.cursor - start {
            replaceWord(&state, from: start, with: common)
        } else if secondTab {
            write("\n" + candidates.joined(separator: "  ") + "\n")
        } else {
            state.lastKeyWasTab = true
            bell()
        }
    }

    private func replaceWord(_ state: inout State, from start: Int, with replacement: [Character]) {
        state.buffer.replaceSubrange(start..<state.cursor, with: replacement)
        state.cursor = start + replacement.count
    }

    private func wordStart(before cursor: Int, in buffer: [Character]) -> Int {
        var i = cursor
        while i > 0 && buffer[i - 1] == " " { i -= 1 }
        while i > 0 && buffer[i - 1] != " " { i -= 1 }
        return i
    }

    private func wordEnd(after cursor: Int, in buffer: [Character]) -> Int {
        var i = cursor
        while i < buffer.count && buffer[i] == " " { i += 1 }
        while i < buffer.count && buffer[i] != " " { i += 1 }
        return i
    }

    /// Redraws the line: prompt, the visible part of the buffer (scrolled so the cursor is in
    /// view), clear to the end, cursor.
    private func refresh(_ state: State) {
        let promptWidth = state.prompt.count
        let room = max(2, columns() - promptWidth - 1)
        // The first character shown: as far left as keeps the cursor within `room` columns.
        var first = state.cursor
        var used = 0
        while first > 0 && used + Self.width(state.buffer[first - 1]) < room {
            first -= 1
            used += Self.width(state.buffer[first])
        }
        var last = first
        var shown = 0
        while last < state.buffer.count && shown + Self.width(state.buffer[last]) <= room {
            shown += Self.width(state.buffer[last])
            last += 1
        }
        var out = "\r" + state.prompt + String(state.buffer[first..<last]) + "\u{1B}[0K\r"
        let column = promptWidth + used
        if column > 0 { out += "\u{1B}[\(column)C" }
        write(out)
    }

    /// Terminal columns of a character: 2 for East Asian wide and emoji, else 1.
    static func width(_ c: Character) -> Int {
        guard let v = c.unicodeScalars.first?.value, v >= 0x1100 else { return 1 }
        switch v {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x1FA70...0x1FAFF, 0x20000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }

    private func columns() -> Int {
        var size = winsize()
        if ioctl(output, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    private func suspend() {
        disableRawMode()
        write("\n")
        raise(SIGTSTP)
        _ = enableRawMode()
    }

    private func bell() { write("\u{07}") }

    private func write(_ text: String) { writeAll(output, text) }

    // MARK: Bytes

    private func inputPending() -> Bool {
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let n = Glibc.read(input, &byte, 1)
            if n == 1 { return byte }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// The character whose UTF-8 encoding starts with `first` (bytes that do not form one give
    /// U+FFFD).
    private func decodeCharacter(first: UInt8) -> Character {
        var bytes = [first]
        let length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1
        while bytes.count < length, let next = readByte() {
            bytes.append(next)
            if next & 0xC0 != 0x80 { break }
        }
        return String(decoding: bytes, as: UTF8.self).first ?? "\u{FFFD}"
    }
}

/// The interactive shell's history: the last `capacity` commands, kept in a file (one command
/// a line, mode 0600), appended to as each command is entered and trimmed to the capacity when
/// it is loaded.
struct History {
    private(set) var entries: [String] = []
    let capacity: Int
    let path: String?

    init(path: String?, capacity: Int = 1000) {
        self.path = path
        self.capacity = capacity
        guard let path, let text = readText(path) else { return }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let trim = lines.count > capacity
        if trim { lines.removeFirst(lines.count - capacity) }
        entries = lines
        if trim { rewrite() }
    }

    /// Adds a command (not a repeat of the last one, not an empty one) and appends it to the file.
    mutating func add(_ command: String) {
        var command = command
        while command.last == " " || command.last == "\t" { command.removeLast() }
        guard !command.allSatisfy({ $0 == " " || $0 == "\t" }), !command.contains("\n"), entries.last != command else { return }
        entries.append(command)
        if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        guard let path else { return }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        writeAll(fd, command + "\n")
        close(fd)
    }

    private func rewrite() {
        guard let path else { return }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        writeAll(fd, entries.map { $0 + "\n" }.joined())
        close(fd)
        if rename(temporary, path) != 0 { unlink(temporary) }
    }

    /// Where the history lives: `$SOCIALDB_HISTORY` (empty: no file), else `~/.socialdb_history`.
    static func defaultPath() -> String? {
        if let explicit = getenv("SOCIALDB_HISTORY") {
            let path = String(cString: explicit)
            return path.isEmpty ? nil : path
        }
        guard let home = getenv("HOME"), home.pointee != 0 else { return nil }
        return String(cString: home) + "/.socialdb_history"
    }
}

/// A whole small file as text, or nil.
private func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
