import Foundation
import XCTest
import Engram

/// SentencePiece through libsentencepiece: a tokenizer.model file against ids from the Python
/// `sentencepiece` package, and the same vocabulary rebuilt from GGUF-style metadata.
final class TokenizerSentencePieceTests: XCTestCase {
    private func fromModelFile() throws -> SentencePieceTokenizer {
        try SentencePieceTokenizer(modelProto: TokenizerSentencePieceFixture.model, file: "tiny/tokenizer.model")
    }

    /// The GGUF vocabulary a converter writes for the tiny model: tokens, scores and types read from the
    /// proto by hand here (not through our conversion code), ids as llama.cpp's converter sets them.
    private func ggufMetadata(addSpacePrefix: Bool = true) throws -> Metadata {
        let model = try SentencePieceModel(serialized: TokenizerSentencePieceFixture.model, file: "tiny/tokenizer.model")
        var m = Metadata(file: "tiny.gguf")
        m["tokenizer.ggml.model"] = .string("llama")
        m["tokenizer.ggml.tokens"] = .array(.string, model.pieces.map { .string($0.text) })
        m["tokenizer.ggml.scores"] = .array(.float32, model.pieces.map { .float32($0.score) })
        m["tokenizer.ggml.token_type"] = .array(.int32, model.pieces.map { .int32($0.kind.rawValue) })
        m["tokenizer.ggml.bos_token_id"] = .uint32(1)
        m["tokenizer.ggml.eos_token_id"] = .uint32(2)
        m["tokenizer.ggml.unknown_token_id"] = .uint32(0)
        m["tokenizer.ggml.add_space_prefix"] = .bool(addSpacePrefix)
        return m
    }

    func testModelFileMatchesPythonSentencePiece() throws {
        let t = try fromModelFile()
        XCTAssertEqual(t.vocabularySize, 600)
        for c in TokenizerSentencePieceFixture.cases {
            let spans = t.encodeWithOffsets(c.text, addSpecial: false, parseSpecial: false)
            XCTAssertEqual(spans.map(\.id), c.ids, "ids of \(c.text.debugDescription)")
            XCTAssertEqual(spans.map(\.bytes), c.spans, "byte ranges of \(c.text.debugDescription)")
            XCTAssertEqual(t.decode(c.ids), c.text, "decoding \(c.text.debugDescription)")
        }
    }

    /// A token's bytes (log-probability responses show them) join into the decoded text, byte pieces
    /// included, but for the leading space decoding drops.
    func testTokenBytesJoinIntoTheDecodedText() throws {
        for t in [try fromModelFile(), try SentencePieceTokenizer(gguf: ggufMetadata())] {
            for c in TokenizerSentencePieceFixture.cases where !c.ids.isEmpty {
                var joined = c.ids.flatMap { t.bytes(of: $0) }
                if joined.first == 0x20 { joined.removeFirst() }
                XCTAssertEqual(String(decoding: joined, as: UTF8.self), c.text, "bytes of \(c.text.debugDescription)")
            }
            // A completion's text keeps its first word's space (" Paris" after "… is"), which decoding drops.
            if let c = TokenizerSentencePieceFixture.cases.first(where: { $0.text.hasPrefix(" ") == false && $0.ids.count > 1 }) {
                let word = Array(c.ids.dropFirst())
                XCTAssertEqual(t.continuation(word), String(decoding: word.flatMap { t.bytes(of: $0) }, as: UTF8.self))
                XCTAssertEqual(t.decode(Array(c.ids.prefix(1))) + t.continuation(word), c.text, "\(c.text.debugDescription) in two parts")
            }
            XCTAssertEqual(t.bytes(of: -1), [])
            XCTAssertEqual(t.bytes(of: Int32(t.vocabularySize)), [])
        }
    }

    func testGGUFVocabularyGivesTheSameIDs() throws {
        let file = try fromModelFile()
        let gguf = try SentencePieceTokenizer(gguf: ggufMetadata())
        var texts = TokenizerSentencePieceFixture.cases.map(\.text)
        texts += ["", " ", "   ", "\n\n", "x\ty", "ÀÉÎõü", "<s> not special", "mixed 中文 and English 123"]
        for text in texts {
            XCTAssertEqual(gguf.encode(text), file.encode(text), "ids of \(text.debugDescription)")
        }
        // Through the loader, as a checkpoint without files beside it would be read.
        let checkpoint = Checkpoint(location: "tiny.gguf", format: .gguf, metadata: try ggufMetadata())
        let loaded = try TokenizerLoader.load(checkpoint)
        XCTAssertTrue(loaded is SentencePieceTokenizer)
        XCTAssertEqual(loaded.encode("Hello world"), [360, 315, 511, 505, 270, 277, 424])
    }

    func testSpacePrefixFollowsGGUFKey() throws {
        let t = try SentencePieceTokenizer(gguf: ggufMetadata(addSpacePrefix: false))
        // Without the dummy prefix the first word is not "▁"-prefixed, so it differs from the default.
        let ids = t.encode("Hello")
        XCTAssertNotEqual(ids, try fromModelFile().encode("Hello"))
        XCTAssertEqual(t.piece(ids[0])?.hasPrefix("▁"), false)
        XCTAssertEqual(t.decode(ids), "Hello")
    }

    func testBOSAndControlTokens() throws {
        let t = try fromModelFile()
        XCTAssertEqual(t.bos, 1)
        XCTAssertEqual(t.eos, 2)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(t.encode("x", addSpecial: true), [1, 500, 543])
        XCTAssertTrue(t.isEndOfGeneration(2))
        XCTAssertFalse(t.isEndOfGeneration(543))
        // Control text is split out only when asked; each side is encoded on its own, "▁"-prefixed.
        let ctrl = try XCTUnwrap(t.id(ofPiece: "<ctrl>"))
        XCTAssertEqual(ctrl, 3)
        let parsed = t.encodeWithOffsets("x<ctrl>x", addSpecial: false, parseSpecial: true)
        XCTAssertEqual(parsed.map(\.id), [500, 543, ctrl, 500, 543])
        XCTAssertEqual(parsed[2].bytes, 1..<7)
        XCTAssertEqual(parsed[3].bytes, 7..<7)
        XCTAssertFalse(t.encode("x<ctrl>x").contains(ctrl))
        XCTAssertEqual(t.decode([500, 543, ctrl, 500, 543]), "x<ctrl>x")
        XCTAssertEqual(t.decode([1, 500, 543, 2], skipSpecial: true), "x")
        // The user-defined piece is always one token, as libsentencepiece does it.
        XCTAssertEqual(t.encode("a<|user|>b"), [263, 4, 521])
        XCTAssertNil(t.id(ofPiece: "no such piece"))
        XCTAssertEqual(t.piece(360), "▁H")
    }

    func testProtoRoundTrip() throws {
        let model = try SentencePieceModel(serialized: TokenizerSentencePieceFixture.model, file: "tiny/tokenizer.model")
        XCTAssertEqual(model.algorithm, .bpe)
        XCTAssertTrue(model.byteFallback)
        XCTAssertTrue(model.addDummyPrefix)
        XCTAssertFalse(model.removeExtraWhitespaces)
        XCTAssertEqual(model.pieces[0].kind, .unknown)
        XCTAssertEqual(model.pieces[3].kind, .control)
        XCTAssertEqual(model.pieces[4].kind, .userDefined)
        XCTAssertEqual(model.pieces[5], .init(text: "<0x00>", score: 0, kind: .byte))
        let again = try SentencePieceModel(serialized: model.serialized(), file: "again")
        XCTAssertEqual(again, model)
    }

    func testBrokenProtoIsAnErrorNamingTheFile() {
        XCTAssertThrowsError(try SentencePieceTokenizer(modelProto: Data([0x0A, 0xFF, 0xFF, 0x01]), file: "bad/tokenizer.model")) { error in
            XCTAssertTrue("\(error)".contains("bad/tokenizer.model"), "\(error)")
        }
        var m = Metadata(file: "nounk.gguf")
        m["tokenizer.ggml.model"] = .string("llama")
        m["tokenizer.ggml.tokens"] = .array(.string, [.string("a"), .string("b")])
        XCTAssertThrowsError(try SentencePieceTokenizer(gguf: m)) { error in
            XCTAssertTrue("\(error)".contains("unknown_token_id"), "\(error)")
        }
    }
}
