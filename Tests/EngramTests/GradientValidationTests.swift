import Foundation
import XCTest
import Engram

/// Bad requests to the gradient APIs are typed errors that name what is wrong, never crashes.
final class GradientValidationTests: XCTestCase {
    func assertInvalid(_ expectedText: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard case let EngramError.invalidArgument(text) = error else {
                return XCTFail("expected invalidArgument, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(text.contains(expectedText), "'\(text)' should mention '\(expectedText)'", file: file, line: line)
        }
    }

    func testValueSearchRejectsBadPrompts() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.llama)
        let good = ValueSearchPrompt(prompt: [1, 2, 3, 4], lookup: 1, target: [5, 6])
        let essence = ValueSearchPrompt(tokens: [1, 2, 7], lookup: 1)
        assertInvalid("lookup 9") { _ = try ValueSearch(model: model, site: .mlpOutput(1), rewriting: [ValueSearchPrompt(prompt: [1, 2], lookup: 9, target: [3])], essence: []) }
        assertInvalid("precedes the lookup") {
            _ = try ValueSearch(model: model, site: .mlpOutput(1), rewriting: [ValueSearchPrompt(tokens: [1, 2, 3], lookup: 2, targets: [4], targetPositions: [0])], essence: [])
        }
        assertInvalid("outside the vocabulary") { _ = try ValueSearch(model: model, site: .mlpOutput(1), rewriting: [ValueSearchPrompt(prompt: [1, 2], lookup: 0, target: [400])], essence: []) }
        assertInvalid("not at mlp_key.1") { _ = try ValueSearch(model: model, site: .mlpKey(1), rewriting: [good], essence: [essence]) }
        assertInvalid("layer 3") { _ = try ValueSearch(model: model, site: .residual(3), rewriting: [good], essence: [essence]) }
        assertInvalid("at least one") { _ = try ValueSearch(model: model, site: .residual(0), rewriting: [], essence: [essence]) }
        assertInvalid("targetInitRow") { _ = try ValueSearch(model: model, site: .residual(0), rewriting: [good], essence: [], targetInitRow: 1) }
        assertInvalid("labelled positions") {
            _ = try ValueSearch(model: model, site: .mlpOutput(0), rewriting: [ValueSearchPrompt(tokens: [1, 2, 3], lookup: 0, targets: [4, 5], targetPositions: [2])], essence: [])
        }
        let search = try ValueSearch(model: model, site: .mlpOutput(1), rewriting: [good], essence: [essence])
        assertInvalid("hidden width") { _ = try search.evaluate(delta: [0, 1], klFactor: 0.0625, weightDecay: 1e-3) }
    }

    func testWeightGradientRejectsBadRequests() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.gpt2)
        let batch = [LabelledSequence(tokens: [1, 2, 3], labels: [TokenLabel(position: 1, token: 4)])]
        assertInvalid("no weights") { _ = try WeightGradient(model: model, weights: [], batch: batch) }
        assertInvalid("mlpDown(7)") { _ = try WeightGradient(model: model, weights: [.mlpDown(7)], batch: batch) }
        assertInvalid("label") {
            _ = try WeightGradient(model: model, weights: [.mlpDown(0)], batch: [LabelledSequence(tokens: [1, 2], labels: [TokenLabel(position: 2, token: 1)])])
        }
        assertInvalid("longer than") {
            _ = try WeightGradient(model: model, weights: [.mlpDown(0)],
                                   batch: [LabelledSequence(tokens: [Int32](repeating: 1, count: 40), labels: [TokenLabel(position: 39, token: 1)])])
        }
        var adam = Adam(count: 3, learningRate: 0.1)
        var p: [Float] = [1, 2]
        assertInvalid("Adam over 3") { try adam.update(&p, gradient: [1, 2]) }
    }
}
