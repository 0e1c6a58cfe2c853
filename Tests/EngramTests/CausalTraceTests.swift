@testable import Engram
import Foundation
import XCTest

final class CausalTraceTests: XCTestCase {
    /// Restoring the last token's residual stream in the last layer restores the clean run exactly
    /// (nothing after it can differ), and corrupting the subject lowers the answer's probability.
    func testRestorationBoundsAndHeatmap() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        var options = CausalTrace.Options()
        options.samples = 2
        options.kinds = [.residual]
        let r = try CausalTrace(model: model, tokenizer: tokenizer).run(prompt: "The Eiffel Tower is located in the city of",
                                                                        subject: "The Eiffel Tower", options: options)
        XCTAssertEqual(r.answer, " Paris")
        XCTAssertEqual(r.subjectRange, [0, 4])
        XCTAssertLessThan(r.corruptedProbability, r.cleanProbability)
        let grid = r.grids[0].scores
        let last = grid[r.tokens.count - 1][model.config.layers - 1]
        XCTAssertEqual(last, r.cleanProbability, accuracy: 1e-4, "restoring the final state gives the clean probability")
        XCTAssertEqual(grid[0].count, model.config.layers)
        let svg = TraceHeatmap.svg(r)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("Eiffel"))
    }

    /// The noise level is 3 × the standard deviation of the token embeddings, as the reference measures
    /// them: for GPT-2 that excludes the position embedding, which the embedding hook adds in.
    func testNoiseLevelComesFromTheTokenEmbeddingsAlone() throws {
        let tokenizer = TestTokenizer(pieces: [" Ann", " lives", " in", " Rome"])
        for base in [InMemoryTinyModels.gpt2, InMemoryTinyModels.llama] {
            var config = base
            config.vocab = tokenizer.vocabularySize
            let model = try InMemoryTinyModels.model(config)
            let table = model.tokenEmbedding.values.map(Double.init)
            let mean = table.reduce(0, +) / Double(table.count)
            let std = (table.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(table.count)).squareRoot()
            var options = CausalTrace.Options()
            options.samples = 1
            options.kinds = [.residual]
            let r = try CausalTrace(model: model, tokenizer: tokenizer).run(prompt: "Ann lives in", subject: "Ann", target: "Rome", options: options)
            XCTAssertEqual(Double(r.noise), 3 * std, accuracy: 1e-5 * std, "\(config.architecture)")
        }
    }

    func testSubjectMissingFromPromptIsAClearError() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        XCTAssertThrowsError(try CausalTrace(model: model, tokenizer: tokenizer).run(prompt: "Hello there", subject: "Eiffel")) {
            XCTAssertTrue("\($0)".contains("does not occur"), "\($0)")
        }
        // Options out of range are errors (a negative window made an inverted range, a huge one
        // overflowed, a huge sample count exhausted memory); a window wider than the model is every layer.
        let trace = CausalTrace(model: model, tokenizer: tokenizer)
        for (window, samples, message) in [(0, 2, "window"), (-2, 2, "window"), (3, 0, "samples"), (3, 100_000_000, "samples")] {
            var options = CausalTrace.Options()
            options.window = window
            options.samples = samples
            XCTAssertThrowsError(try trace.run(prompt: "Paris is in", subject: "Paris", options: options), "\(window) \(samples)") {
                XCTAssertTrue("\($0)".contains(message), "\($0)")
            }
        }
        XCTAssertEqual(CausalTrace.window(3, Int.max, 30), Array(0..<30))
        XCTAssertEqual(CausalTrace.window(3, 60, 30), CausalTrace.window(3, 61, 30))
    }

    /// Tracing makes a pass per token, layer and kind over the rest of the prompt: a prompt beyond the
    /// limit is refused before any pass (5000 tokens ran for hours without a word).
    func testLongPromptsAreRefused() throws {
        let (ck, model) = try TestSupport.sharedDefaultModel()
        let tracer = CausalTrace(model: model, tokenizer: try TokenizerLoader.load(ck))
        let prompt = String(repeating: "word ", count: 400) + "The Eiffel Tower is located in the city of"
        assertEngramError(["tokens", "at most \(CausalTrace.maxPromptTokens)"]) {
            _ = try tracer.run(prompt: prompt, subject: "The Eiffel Tower")
        }
    }
}
