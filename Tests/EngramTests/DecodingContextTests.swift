import XCTest
@testable import Engram

/// Nothing runs past the model's context: generation stops there, however many tokens were asked
/// for (a huge `maxTokens` once reserved its whole KV cache up front and aborted), a pass that would
/// cross it is refused, and an edit request that cannot fit is named before any work is done.
final class DecodingContextTests: XCTestCase {
    func testGenerationStopsAtTheContextAndReservesNothingForAHugeLimit() throws {
        let model = try TinyModels.llama(vocab: 40)
        XCTAssertEqual(model.config.contextLength, 512)
        let generator = Generator(model: model, tokenizer: TestTokenizer(pieces: []))
        var options = GenerationOptions(maxTokens: 100_000_000)
        options.stopAtEndOfGeneration = false
        let result = try generator.generate(prompt: [2, 3, 4], options: options)
        XCTAssertEqual(result.tokens.count, 512 - 3 + 1) // the last token is never fed back
        XCTAssertEqual(result.finishReason, .length)
        // A limit inside the context is kept as it was.
        options.maxTokens = 7
        XCTAssertEqual(try generator.generate(prompt: [2, 3, 4], options: options).tokens.count, 7)

        XCTAssertEqual(try generator.generate(prompt: [Int32](repeating: 2, count: 512), options: options).tokens.count, 1)
        XCTAssertThrowsError(try generator.generate(prompt: [Int32](repeating: 2, count: 513), options: options)) {
            XCTAssertTrue("\($0)".contains("the prompt has 513 tokens, more than the model's context of 512 tokens"), "\($0)")
        }
    }

    func testAPassCrossingTheContextIsRefusedForRotaryModelsToo() throws {
        let model = try TinyModels.llama(vocab: 40)
        let cache = model.makeCache()
        _ = try model.forward([Int32](repeating: 2, count: 510), cache: cache)
        XCTAssertThrowsError(try model.forward([2, 3, 4], cache: cache)) {
            XCTAssertTrue("\($0)".contains("a sequence of 513 tokens exceeds the model's context of 512 tokens"), "\($0)")
        }
        XCTAssertEqual(cache.count, 510)
        _ = try model.forward([2, 3], cache: cache) // exactly full is fine
        XCTAssertEqual(cache.count, 512)
    }

    func testEditRequestsThatCannotFitAreNamed() throws {
        let tokenizer = TestTokenizer(pieces: [])
        // One token per character, plus BOS: 25 for the prompt, 5 for " Rome"; the last is never fed, so 29 positions.
        let request = EditRequest(caseID: "7", prompt: "The capital of France is", subject: "France", targetNew: "Rome")
        XCTAssertNoThrow(try request.checkFits(tokenizer: tokenizer, context: 29))
        XCTAssertThrowsError(try request.checkFits(tokenizer: tokenizer, context: 28)) {
            XCTAssertTrue("\($0)".contains("request 7: the prompt and new target take 30 tokens, more than the model's context of 28 tokens"), "\($0)")
        }
        // A target that already starts with a space gets no second one.
        XCTAssertNoThrow(try EditRequest(caseID: "8", prompt: "The capital of France is", subject: "France", targetNew: " Rome")
            .checkFits(tokenizer: tokenizer, context: 29))
        // The value search names the request whose template-filled prompt does not fit.
        let model = try TinyModels.llama(vocab: 40)
        let long = EditRequest(caseID: "long", prompt: String(repeating: "a", count: 600) + " France is", subject: "France", targetNew: "Rome")
        XCTAssertThrowsError(try LocateThenEdit.targetValues(model: model, tokenizer: tokenizer, requests: [long], templates: ["{}"], site: .residual(0),
                                                             hyperParameters: ValueSearchHyperparameters())) {
            XCTAssertTrue("\($0)".contains("request long: the value search's prompt '{}'"), "\($0)")
        }
    }
}

/// Sequences advanced together (`Generator.advance`, what the server's worker does): each ends on its
/// own terms and, with weights read from their blocks, gets exactly the tokens it gets alone.
final class DecodingTogetherTests: XCTestCase {
    func testSequencesAdvancedTogetherGetTheirOwnTokens() throws {
        let file = try QuantizedTinyLlama(seed: 61)
        let model = try file.model(onDemand: true)
        let generator = Generator(model: model, tokenizer: TestTokenizer(pieces: []))
        func options(_ maxTokens: Int, temperature: Float = 0, seed: UInt64 = 0) -> GenerationOptions {
            var o = GenerationOptions(maxTokens: maxTokens, sampling: SamplingParameters(temperature: temperature, seed: seed))
            o.stopAtEndOfGeneration = false
            return o
        }
        let work: [([Int32], GenerationOptions)] = [([1, 5, 9], options(6)), ([2, 4], options(0)), ([7, 7, 7, 7, 7], options(12, temperature: 1, seed: 5)),
                                                    ([3], options(9)), ([8, 6, 4, 2, 9, 1], options(1))]
        let alone = try work.map { try generator.generate(prompt: $0.0, options: $0.1).tokens }
        XCTAssertEqual(alone.map(\.count), [6, 0, 12, 9, 1])

        // Together, with a sixth sequence cancelled after its second token: it alone ends with the error.
        var cancelledAfter = options(20)
        let steps = FloatBuffer(count: 1)
        cancelledAfter.isCancelled = { steps[0] >= 2 }
        var sequences = try work.map { try DecodingSequence(generator: generator, prompt: $0.0, options: $0.1) }
        sequences.append(try DecodingSequence(generator: generator, prompt: [4, 4], options: cancelledAfter))
        for s in sequences { try s.prefill() }
        var largest = 0
        while sequences.contains(where: { !$0.isFinished }) {
            let open = sequences.filter { !$0.isFinished }
            largest = max(largest, open.count)
            try generator.advance(open)
            steps[0] = Float(sequences[5].tokens.count)
        }
        XCTAssertEqual(largest, 5) // the one asking for no tokens ended at its prefill, without a pass
        XCTAssertEqual(sequences[1].promptTokensDone, 0)
        XCTAssertEqual(sequences.prefix(5).map { try? $0.outcome?.get().tokens }, alone.map { $0 })
        XCTAssertEqual(sequences[5].tokens.count, 2)
        guard case .failure(let error)? = sequences[5].outcome else { return XCTFail("the cancelled sequence did not fail") }
        XCTAssertTrue(error is CancellationError)
    }

    /// A prompt longer than `DecodingSequence.promptPiece` goes through the model a piece at a time (what
    /// lets the server decode other sequences between pieces): no logits until the last piece, then the
    /// same first token and continuation as the whole prompt in one pass; cancellation stops it between pieces.
    func testALongPromptIsPrefilledInPieces() throws {
        let model = try TinyModels.llama(vocab: 40)
        let generator = Generator(model: model, tokenizer: TestTokenizer(pieces: []))
        var rng = SeededRandom(seed: 3)
        let prompt = (0..<300).map { _ in Int32(1 + rng.int(below: model.config.vocab - 1)) }
        var options = GenerationOptions(maxTokens: 8)
        options.stopAtEndOfGeneration = false

        let sequence = try DecodingSequence(generator: generator, prompt: prompt, options: options)
        var done: [Int] = []
        while !sequence.isPrefilled {
            try generator.advance([sequence]) // no logits yet: nothing to choose, nothing fed
            XCTAssertEqual(sequence.tokens, [])
            try sequence.prefillPiece()
            done.append(sequence.promptTokensDone)
        }
        XCTAssertEqual(DecodingSequence.promptPiece, 128)
        XCTAssertEqual(done, [128, 256, 300])
        while !sequence.isFinished { try generator.advance([sequence]) }

        // The whole prompt in one pass, then the same greedy loop by hand.
        let cache = model.makeCache()
        var logits = try model.forward(prompt, cache: cache, logits: .last)
        var tokens: [Int32] = []
        for _ in 0..<8 {
            let next = Sampler.argmax(logits.pointer, count: logits.cols)
            tokens.append(next)
            logits = try model.forward([next], cache: cache, logits: .last)
        }
        XCTAssertEqual(try sequence.outcome?.get().tokens, tokens)

        // Cancelled after its first piece: the second is not run, and the sequence ends with the error.
        var cancelling = options
        let pieces = FloatBuffer(count: 1)
        cancelling.isCancelled = { pieces[0] >= 1 }
        let cancelled = try DecodingSequence(generator: generator, prompt: prompt, options: cancelling)
        try cancelled.prefillPiece()
        pieces[0] = 1
        XCTAssertThrowsError(try cancelled.prefillPiece()) { XCTAssertTrue($0 is CancellationError) }
        XCTAssertEqual(cancelled.promptTokensDone, 128)
        XCTAssertTrue(cancelled.isFinished && cancelled.isPrefilled)
    }
}
