import Foundation
import XCTest
import Engram

/// GGUF ⇄ Hugging Face tokenizer files: the loader on either side gives the same ids.
final class TokenizerConversionTests: XCTestCase {
    private func wikiText(_ limit: Int) throws -> String {
        let url = try TokenizerFixtures.sharedFile("data/wikitext-2/wiki.test.raw")
        return String(decoding: try Data(contentsOf: url).prefix(limit), as: UTF8.self)
    }

    func testSmolLM2ToHuggingFaceAndBack() throws {
        let ck = try TokenizerFixtures.smollm2()
        let original = try TokenizerFixtures.smollm2Tokenizer()
        let files = try TokenizerConversion.huggingFaceFiles(from: ck.metadata)
        XCTAssertEqual(Set(files.keys), ["tokenizer.json", "tokenizer_config.json"])

        let folder = Checkpoint(location: "/tmp/smollm2-hf", format: .safetensors, metadata: Metadata(file: "/tmp/smollm2-hf/config.json"))
        folder.sidecars = files
        let converted = try TokenizerLoader.load(folder)
        XCTAssertTrue(converted is BPETokenizer)
        XCTAssertEqual((converted as? BPETokenizer)?.preTokenizer.kind, .smollm)
        XCTAssertEqual(converted.vocabularySize, original.vocabularySize)
        XCTAssertEqual(converted.bos, original.bos)
        XCTAssertEqual(converted.eos, original.eos)
        XCTAssertEqual(converted.addsBOS, original.addsBOS)
        XCTAssertEqual(converted.chatFormat, original.chatFormat)
        for c in try TokenizerFixtures.smollm2Reference() {
            XCTAssertEqual(converted.encode(c.text, parseSpecial: true), c.ids, c.text.debugDescription)
        }
        let text = try wikiText(200_000)
        XCTAssertEqual(converted.encode(text), original.encode(text))

        // And back: the tokenizer.* entries equal the GGUF's own.
        let back = try TokenizerConversion.ggufMetadata(fromSidecars: files, file: "/tmp/smollm2-hf")
        let keys = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                    "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
                    "tokenizer.chat_template"]
        let written = Dictionary(back, uniquingKeysWith: { a, _ in a })
        for key in keys {
            let value = try XCTUnwrap(written[key], key)
            let expected = try XCTUnwrap(ck.metadata[key], key)
            if let i = expected.int {
                XCTAssertEqual(value.int, i, key)
            } else if case let .array(_, items) = expected, case let .array(_, ours) = value {
                XCTAssertEqual(ours.count, items.count, key)
                XCTAssertTrue(zip(ours, items).allSatisfy { a, b in a.string != nil ? a.string == b.string : a.int == b.int }, key)
            } else {
                XCTAssertEqual(value, expected, key)
            }
        }
        var rebuilt = Metadata(file: "rebuilt.gguf")
        for (k, v) in back { rebuilt[k] = v }
        XCTAssertEqual(try BPETokenizer(gguf: rebuilt).encode(text), original.encode(text))
    }

    func testSentencePieceGGUFToTokenizerModelAndBack() throws {
        let source = try SentencePieceTokenizer(modelProto: TokenizerSentencePieceFixture.model, file: "tiny/tokenizer.model")
        let metadataEntries = try TokenizerConversion.ggufMetadata(fromSidecars: ["tokenizer.model": TokenizerSentencePieceFixture.model], file: "tiny")
        var m = Metadata(file: "tiny.gguf")
        for (k, v) in metadataEntries { m[k] = v }
        XCTAssertEqual(m["tokenizer.ggml.model"]?.string, "llama")
        let fromGGUF = try SentencePieceTokenizer(gguf: m)
        let files = try TokenizerConversion.huggingFaceFiles(from: m)
        XCTAssertEqual(Set(files.keys), ["tokenizer.model", "tokenizer_config.json"])
        let again = try TokenizerLoader.load(sidecars: files, location: "again")
        let text = try wikiText(20_000) + " Привет 東京 😀"
        XCTAssertEqual(fromGGUF.encode(text), source.encode(text))
        XCTAssertEqual(again.encode(text, addSpecial: true), source.encode(text, addSpecial: true))
        XCTAssertEqual(again.bos, 1)
        XCTAssertEqual(again.eos, 2)
    }

    // MARK: tokenizer.json reading

    /// A small tokenizer.json in the shape Llama 3's takes: Split with its pattern + ByteLevel, merges as
    /// pairs, BOS from the post-processor, an added token that swallows the space to its left.
    private func llama3StyleJSON(pattern: String = PreTokenizerKind.llamaBPE.pattern) -> Data {
        var vocab: [String] = []
        for b in 0..<256 { vocab.append(TokenizerTests.byteLevel[b]) }
        vocab += ["ab", "Ġab"]
        let vocabJSON = vocab.enumerated().map { i, t in "\(Self.json(t)): \(i)" }.joined(separator: ", ")
        let text = """
        {"version": "1.0", "added_tokens": [
            {"id": 258, "content": "<|begin_of_text|>", "special": true, "lstrip": false, "rstrip": false},
            {"id": 259, "content": "<mask>", "special": true, "lstrip": true, "rstrip": false}],
         "normalizer": null,
         "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": \(Self.json(pattern))}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
         "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [258], "tokens": ["<|begin_of_text|>"]}}}]},
         "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
         "model": {"type": "BPE", "ignore_merges": true, "vocab": {\(vocabJSON)}, "merges": [["a", "b"], ["Ġ", "ab"]]}}
        """
        return Data(text.utf8)
    }

    private static func json(_ s: String) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])) ?? Data(), as: UTF8.self)
            .dropFirst().dropLast().description
    }

    func testReadsLlama3StyleTokenizerJSON() throws {
        let v = try BPEVocabulary(tokenizerJSON: llama3StyleJSON(), file: "m/tokenizer.json")
        XCTAssertEqual(v.preTokenizer, .llamaBPE)
        XCTAssertTrue(v.ignoreMerges)
        XCTAssertEqual(v.bos, 258)
        XCTAssertTrue(v.addBOS)
        XCTAssertEqual(v.merges.count, 2)
        let t = try BPETokenizer(vocabulary: v)
        XCTAssertEqual(t.encode("ab ab", addSpecial: true), [258, 256, 257])
        // lstrip: the space before <mask> belongs to the token.
        let spans = t.encodeWithOffsets("ab <mask>", addSpecial: false, parseSpecial: true)
        XCTAssertEqual(spans.map(\.id), [256, 259])
        XCTAssertEqual(spans.last?.bytes, 2..<9)
    }

    func testUnknownPreTokenizerNamesFileAndField() {
        XCTAssertThrowsError(try BPEVocabulary(tokenizerJSON: llama3StyleJSON(pattern: "\\w+|\\s+"), file: "m/tokenizer.json")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("m/tokenizer.json") && text.contains("pre_tokenizer"), text)
        }
        XCTAssertThrowsError(try BPEVocabulary(tokenizerJSON: Data("{\"model\": {\"type\": \"Unigram\"}}".utf8), file: "u/tokenizer.json")) { error in
            XCTAssertTrue("\(error)".contains("Unigram"), "\(error)")
        }
        XCTAssertThrowsError(try BPEVocabulary(tokenizerJSON: Data("not json".utf8), file: "x/tokenizer.json")) { error in
            XCTAssertTrue("\(error)".contains("x/tokenizer.json"), "\(error)")
        }
        // A merge whose result is not a token can never apply: a damaged or mismatched vocabulary.
        let badMerge = String(decoding: llama3StyleJSON(), as: UTF8.self).replacingOccurrences(of: #"["Ġ", "ab"]"#, with: #"["Ġ", "b"]"#)
        XCTAssertThrowsError(try BPEVocabulary(tokenizerJSON: Data(badMerge.utf8), file: "m/tokenizer.json")) { error in
            XCTAssertTrue("\(error)".contains("'model.merges': entry 1 'Ġ b' names 'Ġb', which is not in the vocabulary"), "\(error)")
        }
    }
}
