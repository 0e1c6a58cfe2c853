import XCTest
@testable import Engram

/// Streamed text: the pieces join to the answer, scalar for scalar (also where a later token joins a
/// character already streamed), and each piece carries the scores of the tokens whose text begins in
/// it, so that a stream's log-probabilities are the whole answer's, cut at the same stop string.
final class DecodingStreamTests: XCTestCase {
    /// Pieces given as bytes, so that a token can hold part of a character. 0 is BOS, 1 EOS.
    final class BytePieces: Tokenizer, @unchecked Sendable {
        let pieces: [[UInt8]]
        init(_ pieces: [[UInt8]]) { self.pieces = [[], []] + pieces }
        var vocabularySize: Int { pieces.count }
        var bos: Int32? { 0 }
        var eos: Int32? { 1 }
        var addsBOS: Bool { true }
        var chatTemplate: ChatTemplate? { nil }
        func encodeWithOffsets(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [TokenSpan] { [] }
        func decode(_ ids: [Int32], skipSpecial: Bool) -> String { String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self) }
        func piece(_ id: Int32) -> String? { String(decoding: bytes(of: id), as: UTF8.self) }
        func bytes(of id: Int32) -> [UInt8] { id >= 0 && Int(id) < pieces.count ? pieces[Int(id)] : [] }
        func id(ofPiece piece: String) -> Int32? { nil }
        func isEndOfGeneration(_ id: Int32) -> Bool { id == 1 }
    }

    /// Greedy generation along `chain` (each token's likeliest successor is the next one), streamed.
    func stream(_ tokenizer: BytePieces, chain: [Int32], stop: [String] = [], isReply: Bool = false)
        throws -> (result: GenerationResult, pieces: [StreamedText]) {
        var next: [Int32: Int32] = [:]
        for (a, b) in zip(chain, chain.dropFirst()) { next[a] = b }
        let generator = Generator(model: BigramModel(vocab: tokenizer.vocabularySize, next: next, strength: 5), tokenizer: tokenizer)
        var options = GenerationOptions(maxTokens: 20, stop: stop)
        options.logprobs = 2
        options.isReply = isReply
        var pieces: [StreamedText] = []
        let result = try generator.generate(prompt: [chain[0]], options: options) { pieces.append($0) }
        return (result, pieces)
    }

    func testPiecesCarryTheScoresOfTheTokensThatBeginInThem() throws {
        // "e" + a combining acute split over two tokens, " caf" + "é" split over two, then " S" "TOP",
        // cut at the stop string "STOP".
        let tokenizer = BytePieces([Array("e".utf8), [0xCC], [0x81], Array(" caf".utf8), [0xC3], [0xA9], Array(" S".utf8), Array("TOP".utf8),
                                    Array("x".utf8), Array(" Hi".utf8), Array(",".utf8), Array("\n".utf8)])
        let (result, pieces) = try stream(tokenizer, chain: [10, 2, 3, 4, 5, 6, 7, 8, 9, 10], stop: ["STOP"])
        XCTAssertEqual(result.finishReason, .stop)
        XCTAssertEqual(Array(result.text.unicodeScalars), Array("e\u{301} café ".unicodeScalars))
        XCTAssertEqual(pieces.map { Array($0.text.unicodeScalars) }, ["e", "\u{301}", " caf", "é", " "].map { Array($0.unicodeScalars) },
                       "the combining mark is streamed although it joins a character already sent")
        XCTAssertEqual(pieces.map { $0.logprobs.map(\.token) }, [[2], [3, 4], [5], [6, 7], [8]],
                       "a token of continuation bytes goes with the character it finishes; the held-back \"S\" token with the space it begins with")
        XCTAssertEqual(result.logprobs.map(\.token), [2, 3, 4, 5, 6, 7, 8], "the token that completed the stop string is not part of the answer")
        XCTAssertEqual(pieces.flatMap(\.logprobs), result.logprobs)
        for score in result.logprobs { XCTAssertEqual(score.top.count, 2) }

        // A reply drops its first token's space: "," begins at scalar 2 of "Hi,", before the cut at "\n".
        let (reply, replyPieces) = try stream(tokenizer, chain: [2, 11, 12, 13, 10], stop: ["\n"], isReply: true)
        XCTAssertEqual(reply.text, "Hi,")
        XCTAssertEqual(reply.logprobs.map(\.token), [11, 12])
        XCTAssertEqual(replyPieces.flatMap(\.logprobs), reply.logprobs)

        // The end token that ended an answer is scored, and comes with the last piece (empty text here).
        let (ended, endedPieces) = try stream(tokenizer, chain: [2, 11, 12, 1])
        XCTAssertEqual(ended.text, " Hi,")
        XCTAssertEqual(ended.finishReason, .endOfGeneration)
        XCTAssertEqual(endedPieces.map(\.text), [" Hi", ",", ""])
        XCTAssertEqual(endedPieces.map { $0.logprobs.map(\.token) }, [[11], [12], [1]])

        // A stop string matches scalar for scalar, as text is held back: "é" (U+00E9) does not cut the
        // "e" + U+0301 already streamed.
        let (literal, literalPieces) = try stream(tokenizer, chain: [10, 2, 3, 4, 5], stop: ["é"])
        XCTAssertEqual(Array(literal.text.unicodeScalars), Array("e\u{301} caf".unicodeScalars))
        XCTAssertEqual(literalPieces.flatMap(\.logprobs), literal.logprobs)
        XCTAssertEqual(Array(literalPieces.map(\.text).joined().unicodeScalars), Array(literal.text.unicodeScalars))

        // Without logprobs the pieces carry none, and nothing is sent for an end token.
        var plain = GenerationOptions(maxTokens: 20)
        plain.logprobs = nil
        var plainPieces: [StreamedText] = []
        let generator = Generator(model: BigramModel(vocab: tokenizer.vocabularySize, next: [2: 11, 11: 12, 12: 1], strength: 5), tokenizer: tokenizer)
        _ = try generator.generate(prompt: [2], options: plain) { plainPieces.append($0) }
        XCTAssertEqual(plainPieces.map(\.text), [" Hi", ","])
        XCTAssertTrue(plainPieces.allSatisfy(\.logprobs.isEmpty))
    }
}
