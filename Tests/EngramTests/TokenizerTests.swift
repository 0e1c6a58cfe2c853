import Foundation
import XCTest
import Engram

/// Byte-level BPE: the real SmolLM2 vocabulary against ids from the reference tokenizer and against a
/// naive merge loop written here; small hand-made vocabularies for the rules around the merges.
final class TokenizerTests: XCTestCase {
    func testSmolLM2ReferenceIDs() throws {
        let cases = try TokenizerFixtures.smollm2Reference()
        let tokenizer = try TokenizerFixtures.smollm2Tokenizer()
        XCTAssertEqual(cases.count, 32)
        for c in cases {
            let ids = tokenizer.encode(c.text, addSpecial: false, parseSpecial: true)
            XCTAssertEqual(ids, c.ids, "ids of \(c.text.debugDescription)")
            XCTAssertEqual(ids.compactMap { tokenizer.piece($0) }, c.pieces, "pieces of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids), c.text, "decoding \(c.text.debugDescription)")
        }
    }

    func testSmolLM2Vocabulary() throws {
        let t = try TokenizerFixtures.smollm2Tokenizer()
        XCTAssertTrue(t is BPETokenizer)
        XCTAssertEqual(t.vocabularySize, 49152)
        XCTAssertEqual(t.bos, 1)
        XCTAssertEqual(t.eos, 2)
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(t.encode("Hello", addSpecial: true), [19556]) // add_bos_token is false
        XCTAssertEqual(t.id(ofPiece: "Ġworld"), 905)
        XCTAssertEqual(t.piece(905), "Ġworld")
        XCTAssertNil(t.piece(49152))
        XCTAssertEqual(t.bytes(of: 905), Array(" world".utf8))
        XCTAssertEqual(t.bytes(of: 49152), [])
        // A character split across byte tokens: each holds part of its UTF-8, which join into it.
        let split = t.encode("鼻")
        XCTAssertEqual(split.flatMap { t.bytes(of: $0) }, Array("鼻".utf8))
        XCTAssertNil(t.id(ofPiece: "no such piece"))
        XCTAssertTrue(t.isEndOfGeneration(2))   // <|im_end|>, the EOS
        XCTAssertTrue(t.isEndOfGeneration(0))   // <|endoftext|>
        XCTAssertFalse(t.isEndOfGeneration(1))  // <|im_start|>
        XCTAssertFalse(t.isEndOfGeneration(905))
    }

    func testSpecialTokensOnlyWhenAsked() throws {
        let t = try TokenizerFixtures.smollm2Tokenizer()
        let text = "<|im_start|>user\nHi<|im_end|>\n"
        let plain = t.encode(text, parseSpecial: false)
        XCTAssertFalse(plain.contains(1))
        XCTAssertFalse(plain.contains(2))
        XCTAssertEqual(t.decode(plain), text)
        XCTAssertEqual(t.decode([1, 4093, 198, 26843, 2, 198], skipSpecial: true), "user\nHi\n")
        // Longest match wins where special tokens share a prefix; text around them is ordinary text.
        XCTAssertEqual(t.encode("<|im_end|><|im_end|>x", parseSpecial: true), [2, 2, 104])
    }

    func testOffsetsCoverTheText() throws {
        let t = try TokenizerFixtures.smollm2Tokenizer()
        let text = "<|im_start|>Naïve 東京 😀 x=12.5;\n\n  done<|im_end|>"
        let bytes = Array(text.utf8)
        let spans = t.encodeWithOffsets(text, addSpecial: false, parseSpecial: true)
        var at = 0
        for span in spans {
            XCTAssertEqual(span.bytes.lowerBound, at, "spans are contiguous")
            at = span.bytes.upperBound
            // Each ordinary token spells exactly the bytes it came from (tokens may split a character).
            if span.id > 16, let piece = t.piece(span.id) {
                let spelled = piece.unicodeScalars.compactMap { s in Self.byteLevel.firstIndex(of: String(s)).map(UInt8.init) }
                XCTAssertEqual(spelled, Array(bytes[span.bytes]), piece)
            }
        }
        XCTAssertEqual(at, bytes.count)
        XCTAssertEqual(spans.first?.bytes, 0..<12) // <|im_start|>
    }

    /// The merge loop against the textbook one: repeatedly merge every occurrence of the best-ranked
    /// adjacent pair, over strings, on the words of a slice of WikiText-2.
    func testMergesMatchNaiveBPE() throws {
        let t = try XCTUnwrap(try TokenizerFixtures.smollm2Tokenizer() as? BPETokenizer)
        let url = try TokenizerFixtures.sharedFile("data/wikitext-2/wiki.test.raw")
        let text = String(decoding: try Data(contentsOf: url).prefix(60_000), as: UTF8.self)
        var rank: [String: Int] = [:]
        for (i, (a, b)) in t.vocabulary.merges.enumerated() where rank["\(a) \(b)"] == nil { rank["\(a) \(b)"] = i }
        var checked = Set<String>()
        for word in t.preTokenizer.words(text) + ["aaaaaaaa", "ĠĠĠĠĠĠĠĠĠ", String(repeating: "=", count: 40)] where checked.insert(word).inserted {
            var symbols = Array(word.utf8).map { Self.byteLevel[Int($0)] }
            while symbols.count > 1 {
                var best: (rank: Int, pair: (String, String))?
                for i in 0..<(symbols.count - 1) {
                    if let r = rank["\(symbols[i]) \(symbols[i + 1])"], r < (best?.rank ?? Int.max) { best = (r, (symbols[i], symbols[i + 1])) }
                }
                guard let (_, pair) = best else { break }
                var merged: [String] = []
                var i = 0
                while i < symbols.count {
                    if i + 1 < symbols.count, symbols[i] == pair.0, symbols[i + 1] == pair.1 {
                        merged.append(pair.0 + pair.1)
                        i += 2
                    } else {
                        merged.append(symbols[i])
                        i += 1
                    }
                }
                symbols = merged
            }
            let expected = symbols.compactMap { t.id(ofPiece: $0) }
            XCTAssertEqual(t.encode(word), expected, "word \(word.debugDescription)")
        }
        XCTAssertGreaterThan(checked.count, 2000)
    }

    /// GPT-2's byte alphabet, written out from its definition: printable Latin-1 as itself, the other
    /// bytes from U+0100 on.
    static let byteLevel: [String] = {
        var table = [String](repeating: "", count: 256)
        var next = 0x100
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            table[b] = String(UnicodeScalar(printable ? b : next).map(Character.init) ?? "?")
            if !printable { next += 1 }
        }
        return table
    }()

    func testWikiTextSpeedAndRoundTrip() throws {
        let url = try TokenizerFixtures.sharedFile("data/wikitext-2/wiki.test.raw")
        let text = try String(contentsOf: url, encoding: .utf8)
        let ck = try TokenizerFixtures.smollm2()
        let cached = try BPETokenizer(gguf: ck.metadata)
        let uncached = try BPETokenizer(vocabulary: cached.vocabulary, cachingWords: false)
        func timed(_ t: BPETokenizer) -> ([Int32], Double) {
            let start = Date()
            let ids = t.encode(text)
            return (ids, Date().timeIntervalSince(start))
        }
        let (cold, coldTime) = timed(cached)
        let (warm, warmTime) = timed(cached)
        let (plain, plainTime) = timed(uncached)
        print(String(format: "wiki.test.raw: %d bytes → %d tokens; cold cache %.3f s, warm cache %.3f s, no cache %.3f s",
                     text.utf8.count, cold.count, coldTime, warmTime, plainTime))
        XCTAssertEqual(cold, warm)
        XCTAssertEqual(cold, plain)
        XCTAssertEqual(cached.decode(cold), text)
        XCTAssertLessThan(coldTime, 10, "tokenizing 1.3 MB should take well under a few seconds in release")
    }

    // MARK: hand-made vocabularies

    /// A vocabulary of the 256 byte characters plus `extra` tokens, with the given merges.
    static func tinyVocabulary(extra: [(String, TokenKind)], merges: [(String, String)], pre: PreTokenizerKind = .gpt2) -> BPEVocabulary {
        let tokens = byteLevel + extra.map(\.0)
        let kinds = [TokenKind](repeating: .normal, count: 256) + extra.map(\.1)
        return BPEVocabulary(tokens: tokens, kinds: kinds, merges: merges, preTokenizer: pre, file: "tiny")
    }

    func testMergeRanksAndTies() throws {
        // ranks: a b → ab (0), ab c → abc (1), b c → bc (2)
        let v = Self.tinyVocabulary(extra: [("ab", .normal), ("abc", .normal), ("bc", .normal), ("aa", .normal)],
                                    merges: [("a", "b"), ("ab", "c"), ("b", "c"), ("a", "a")])
        let t = try BPETokenizer(vocabulary: v)
        let (ab, abc, bc, aa) = (Int32(256), Int32(257), Int32(258), Int32(259))
        let (a, b, c) = (Int32(0x61), Int32(0x62), Int32(0x63)) // the tiny vocabulary lists byte characters in byte order
        XCTAssertEqual(t.id(ofPiece: "a"), a)
        XCTAssertEqual(t.encode("abc"), [abc])
        XCTAssertEqual(t.encode("bc"), [bc])
        XCTAssertEqual(t.encode("cab"), [c, ab])
        // Equal ranks go left first: "aaa" → aa + a, not a + aa.
        XCTAssertEqual(t.encode("aaa"), [aa, a])
        XCTAssertEqual(t.encode("aaaaa"), [aa, aa, a])
        XCTAssertEqual(t.encode("abbc"), [ab, bc])
        XCTAssertEqual(t.encode("bb"), [b, b])
    }

    func testIgnoreMergesTakesWholeWords() throws {
        var v = Self.tinyVocabulary(extra: [("xyz", .normal)], merges: [])
        XCTAssertEqual(try BPETokenizer(vocabulary: v).encode("xyz").count, 3)
        v.ignoreMerges = true
        XCTAssertEqual(try BPETokenizer(vocabulary: v).encode("xyz"), [256])
    }

    func testControlAndUserDefinedTokens() throws {
        let v = Self.tinyVocabulary(extra: [("<ctl>", .control), ("<ud>", .userDefined), ("<ctl>x", .control)], merges: [])
        let t = try BPETokenizer(vocabulary: v)
        // User-defined tokens are always matched; control tokens only with parseSpecial.
        XCTAssertEqual(t.encode("a<ud>b"), [0x61, 257, 0x62])
        XCTAssertEqual(t.encode("<ctl>").count, 5)
        XCTAssertEqual(t.encode("<ctl>", parseSpecial: true), [256])
        XCTAssertEqual(t.encode("<ctl>x", parseSpecial: true), [258]) // longest first
        XCTAssertEqual(t.decode([256, 257], skipSpecial: true), "<ud>")
        XCTAssertEqual(t.decode([256, 257]), "<ctl><ud>")
    }

    func testAddsBOSAndEOSWhenTheVocabularySaysSo() throws {
        var v = Self.tinyVocabulary(extra: [("<s>", .control), ("</s>", .control)], merges: [])
        v.bos = 256
        v.eos = 257
        v.addBOS = true
        v.addEOS = true
        let t = try BPETokenizer(vocabulary: v)
        let spans = t.encodeWithOffsets("hi", addSpecial: true, parseSpecial: false)
        XCTAssertEqual(spans.map(\.id), [256, 0x68, 0x69, 257])
        XCTAssertEqual(spans.first?.bytes, 0..<0)
        XCTAssertEqual(spans.last?.bytes, 2..<2)
        XCTAssertEqual(t.encode("hi", addSpecial: false).count, 2)
    }

    func testNFCNormalizationKeepsOriginalSpans() throws {
        var v = Self.tinyVocabulary(extra: [("Ã©", .normal)], merges: [("Ã", "©")]) // "é" is C3 A9
        v.normalizesNFC = true
        let t = try BPETokenizer(vocabulary: v)
        let decomposed = "cafe\u{301}!" // e + combining acute: 1 + 2 bytes
        XCTAssertEqual(t.encode(decomposed), t.encode("café!"))
        let spans = t.encodeWithOffsets(decomposed, addSpecial: false, parseSpecial: false)
        XCTAssertEqual(spans.map(\.id), [0x63, 0x61, 0x66, 256, 0x21])
        XCTAssertEqual(spans.map(\.bytes), [0..<1, 1..<2, 2..<3, 3..<6, 6..<7])
        v.normalizesNFC = false
        XCTAssertNotEqual(try BPETokenizer(vocabulary: v).encode(decomposed), t.encode("café!"))
    }

    func testLoaderWithoutTokenizerNamesWhatItExpected() {
        let ck = Checkpoint(location: "/models/bare", format: .safetensors, metadata: Metadata(file: "/models/bare/config.json"))
        XCTAssertThrowsError(try TokenizerLoader.load(ck)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("no tokenizer") && text.contains("tokenizer.json") && text.contains("tokenizer.model"), text)
        }
        var m = Metadata(file: "odd.gguf")
        m["tokenizer.ggml.model"] = .string("rwkv")
        XCTAssertThrowsError(try TokenizerLoader.load(Checkpoint(location: "odd.gguf", format: .gguf, metadata: m))) { error in
            XCTAssertTrue("\(error)".contains("tokenizer.ggml.model"), "\(error)")
        }
    }
}
