import Foundation
import XCTest
import Engram

/// The hand-written scanners against Hugging Face tokenizers' regex splits, and a few splits worked out
/// by hand from the patterns.
final class TokenizerPreTokenizerTests: XCTestCase {
    func testEveryVariantMatchesTheRegexReference() throws {
        let texts = TokenizerPreTokenizerReference.texts
        for kind in PreTokenizerKind.allCases {
            let expected = try XCTUnwrap(TokenizerPreTokenizerReference.words[kind.rawValue], kind.rawValue)
            XCTAssertEqual(expected.count, texts.count)
            let scanner = PreTokenizer(kind: kind)
            for (text, words) in zip(texts, expected) {
                XCTAssertEqual(scanner.words(text), words, "\(kind.rawValue): \(text.debugDescription)")
            }
        }
    }

    func testHandWorkedSplits() {
        let gpt2 = PreTokenizer(kind: .gpt2)
        // Contractions are case-sensitive in GPT-2; a run of spaces leaves its last space to the next word.
        XCTAssertEqual(gpt2.words("it's IT'S  x"), ["it", "'s", " IT", "'", "S", " ", " x"])
        // Trailing whitespace stays one piece; a lone newline before a word is its own piece.
        XCTAssertEqual(gpt2.words("a\nb  "), ["a", "\n", "b", "  "])
        XCTAssertEqual(gpt2.words("x 2024!"), ["x", " 2024", "!"])

        let smollm = PreTokenizer(kind: .smollm)
        // Digits alone first, so the space before a number stands alone.
        XCTAssertEqual(smollm.words("x 2024!"), ["x", " ", "2", "0", "2", "4", "!"])

        let llama3 = PreTokenizer(kind: .llamaBPE)
        // Case-insensitive contractions, numbers in threes, any non-letter prefixing a word, newlines
        // gathered after punctuation and with the spaces before them.
        XCTAssertEqual(llama3.words("IT'S 1234567 (word).\n\n  \nend"), ["IT", "'S", " ", "123", "456", "7", " (", "word", ").\n\n", "  \n", "end"])
        XCTAssertEqual(llama3.words("\tx"), ["\tx"])

        let qwen2 = PreTokenizer(kind: .qwen2)
        XCTAssertEqual(qwen2.words("1234"), ["1", "2", "3", "4"])
    }

    func testGGUFNames() {
        XCTAssertEqual(PreTokenizer(ggufName: "smollm", file: "f").kind, .smollm)
        XCTAssertEqual(PreTokenizer(ggufName: "llama-bpe", file: "f").kind, .llamaBPE)
        XCTAssertEqual(PreTokenizer(ggufName: "qwen2", file: "f").kind, .qwen2)
        XCTAssertEqual(PreTokenizer(ggufName: nil, file: "f").kind, .gpt2)
        // Unknown names fall back to GPT-2 (with a logged warning), they do not fail.
        XCTAssertEqual(PreTokenizer(ggufName: "some-future-model", file: "f").kind, .gpt2)
    }

    /// The words of a text concatenate back to it, for every variant, on text with every kind of scalar.
    func testWordsCoverTheText() {
        let text = "Mixed: ½ 12,345.67 — “quotes” \u{A0}\u{2028} ❤️ 𝟘 e\u{301}\r\n\t end  "
        for kind in PreTokenizerKind.allCases {
            XCTAssertEqual(PreTokenizer(kind: kind).words(text).joined(), text, kind.rawValue)
        }
    }
}
