@testable import Social
import Testing

/// Tweets' entities are found by bytes when the text is ASCII and by grapheme clusters
/// otherwise: both must find the same mentions, hashtags and URLs.
@Suite struct EntitiesTests {
    @Test func theASCIIPathFindsWhatTheCharacterPathFinds() {
        var random = TortureRandom(seed: 0xE117_1735)
        let pieces = ["@", "#", "a", "Z", "_", "7", "0", " ", "\t", "\r\n", "\n", ".", ",", ")", "'", "\"", "!",
                      "http://", "HTTPS://", "https://x.co/", "h", "@alice", "#swift", "#2024", "@a_very_long_handle_x",
                      "e@mail", "a#b", "\u{1}", "\u{1F}", "\u{7F}", ":", "/", "?"]
        for round in 0..<20_000 {
            var text = ""
            for _ in 0..<Int(random.next() % 24) { text += pieces[Int(random.next() % UInt64(pieces.count))] }
            let fast = Entities(text)
            let slow = Entities(characters: Array(text))
            #expect(fast == slow, "round \(round): \(text.debugDescription)")
            if fast != slow { return }
            // The length and blank checks agree with the character rules too.
            let byRule: Bool = text.contains(where: { !$0.isWhitespace }) && text.count <= TextRules.tweetLengthMax
            #expect(((try? TextRules.checkTweet(text)) != nil) == byRule, "round \(round): \(text.debugDescription)")
        }
    }

    @Test func examples() {
        let e = Entities("hi @bob and @Carol_1, see #Swift6 #2024 at https://swift.org. e@mail a#b (http://x.y)")
        #expect(e.mentions == ["bob", "Carol_1"])
        #expect(e.hashtags == ["Swift6"])
        #expect(e.urls == ["https://swift.org"])
        let u = Entities("héllo @bob #café https://é.fr")
        #expect(u.mentions == ["bob"] && u.hashtags == ["café"] && u.urls == ["https://é.fr"])
        #expect(Entities("@abcdefghijklmnop").mentions.isEmpty, "16 characters is not a handle")
    }

    /// The length check counts characters: CR LF is one, so 280 characters can be 281 bytes.
    @Test func lengthsAtTheLimit() {
        #expect((try? TextRules.checkTweet(String(repeating: "a", count: 280))) != nil)
        #expect((try? TextRules.checkTweet(String(repeating: "a", count: 281))) == nil)
        #expect((try? TextRules.checkTweet(String(repeating: "a", count: 278) + "\r\n")) != nil, "279 characters, 280 bytes")
        #expect((try? TextRules.checkTweet(String(repeating: "a", count: 279) + "\r\n")) != nil, "280 characters, 281 bytes")
        #expect((try? TextRules.checkTweet(String(repeating: "a", count: 280) + "\r\n")) == nil, "281 characters")
        #expect((try? TextRules.checkTweet(" \t\r\n ")) == nil, "only white space")
    }
}
