@testable import StorageEngine
import Testing

/// The tokenizer reads ASCII texts byte by byte and any other text scalar by scalar: both paths
/// must give the same terms at the same positions.
@Suite struct TokenizerASCIITests {
    @Test func theByteAndScalarPathsAgreeOnRandomASCIITexts() {
        var random = SeededRandom(seed: 0x70CE_A5C1)
        let pieces = ["a", "Z", "q", "0", "7", " ", "  ", "\t", "\n", "\r\n", "'", ".", ",", "_", "-", "#", "@", "/", "?", ":",
                      "http://", "HTTPS://", "https://www.", "http:/", "www.", "h", "H", "don't", "3.14", "1,000",
                      "#Swift", "@alice_b", "a#b", "e@mail", "#_x", "#1", "..", "(", ")", "!", "\u{1}", "\u{7F}", "x.y.", "WWW."]
        for round in 0..<30_000 {
            var text = ""
            for _ in 0..<Int(random.next() % 16) { text += pieces[Int(random.next() % UInt64(pieces.count))] }
            for forQuery in [false, true] {
                var fast: [SearchToken] = []
                var slow: [SearchToken] = []
                text.utf8.withContiguousStorageIfAvailable { SearchTokenizer.tokenizeASCII($0, into: &fast, forQuery: forQuery) }
                SearchTokenizer.tokenizeScalars(text, into: &slow, forQuery: forQuery)
                #expect(fast == slow, "round \(round) (query: \(forQuery)): \(text.debugDescription)")
                if fast != slow { return }
            }
            var scalarFolded = String()
            for s in text.unicodeScalars { SearchTokenizer.fold(SearchTokenizer.normalizedWidth(s), into: &scalarFolded) }
            #expect(SearchTokenizer.foldWord(Substring(text)) == scalarFolded, "round \(round): \(text.debugDescription)")
        }
    }

    @Test func aTextWithOneNonASCIIScalarTakesTheScalarPath() {
        #expect(SearchTokenizer.tokenize("Café #Über @bob https://www.Ex.com/p").map(\.term)
                == ["cafe", "#uber", "uber", "@bob", "url:ex.com"])
        #expect(SearchTokenizer.tokenize("Cafe #Uber @bob https://www.Ex.com/p").map(\.term)
                == ["cafe", "#uber", "uber", "@bob", "url:ex.com"])
    }
}
