import Testing
@testable import socialdb

/// Inputs the shell fuzz targets (Fuzz/, scripts/fuzz) found mishandled, kept as tests once fixed.
@Suite struct ShellFuzzRegressionTests {
    /// shell-tokenizer target: a combining mark after an escape's letter or after a quote merged
    /// with it into one Character, so `"\n\u{5BC}"` failed as an unknown escape and a quote
    /// followed by a combining mark did not open a string. The tokenizer now reads scalars.
    @Test func combiningMarksAfterEscapesAndQuotes() {
        let words = try? Tokenizer.split("POST alice \"\\n\u{05BC}b\" \"\u{0301}x\" c\u{0301}").get()
        #expect(words?.map(\.text) == ["POST", "alice", "\n\u{05BC}b", "\u{0301}x", "c\u{0301}"])
        #expect(words?.map(\.quoted) == [false, false, true, true, false])
        #expect(Tokenizer.split("\"\\\u{0301}\"") == .failure(.badEscape("\u{0301}")))
        #expect(Tokenizer.split("x \"\u{0301}") == .failure(.unterminatedQuote))
    }
}
