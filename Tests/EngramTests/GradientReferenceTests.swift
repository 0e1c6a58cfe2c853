import Foundation
import XCTest
import Engram

/// Gradients on the real default model against PyTorch autograd (fixtures/gradient-reference.json,
/// made by fixtures/make_gradient_reference.py from the same GGUF file dequantized by transformers).
/// Float32 implementations that sum in different orders agree to about 1e-3, so that is the bar.
final class GradientReferenceTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    nonisolated(unsafe) static var cachedModel: LanguageModel?
    nonisolated(unsafe) static var cachedFixture: [String: Any]?

    /// The default model is part of the test setup (scripts/setup.sh installs it): absent is a failure.
    func model() throws -> LanguageModel {
        if let m = Self.cachedModel { return m }
        let m = try ModelLoader.build(ModelLoader.checkpoint("smollm2"))
        Self.cachedModel = m
        return m
    }

    func fixture() throws -> [String: Any] {
        if let f = Self.cachedFixture { return f }
        let url = Self.packageRoot.appendingPathComponent("fixtures/gradient-reference.json")
        let f = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        Self.cachedFixture = f
        return f
    }

    static func floats(_ any: Any?) -> [Float] { ((any as? [NSNumber]) ?? []).map(\.floatValue) }
    static func doubles(_ any: Any?) -> [Double] { ((any as? [NSNumber]) ?? []).map(\.doubleValue) }
    static func ints(_ any: Any?) -> [Int] { ((any as? [NSNumber]) ?? []).map(\.intValue) }

    static func prompt(_ any: Any?) throws -> ValueSearchPrompt {
        let p = try XCTUnwrap(any as? [String: Any])
        return ValueSearchPrompt(tokens: ints(p["tokens"]).map(Int32.init), lookup: try XCTUnwrap(p["lookup"] as? Int),
                                 targets: ints(p["targets"]).map(Int32.init))
    }

    func testValueSearchLossAndGradientMatchPyTorch() throws {
        let model = try model(), f = try fixture()
        let layer = try XCTUnwrap(f["layer"] as? Int)
        let klFactor = try XCTUnwrap(f["kl_factor"] as? Double), weightDecay = try XCTUnwrap(f["v_weight_decay"] as? Double)
        let cases = try XCTUnwrap(f["value_search"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 2)
        for c in cases {
            let target = c["target"] as? String ?? "?"
            let rewriting = try XCTUnwrap(c["rewriting"] as? [Any]).map(Self.prompt)
            let essence = [try Self.prompt(c["essence"])]
            let search = try ValueSearch(model: model, site: .mlpOutput(layer), rewriting: rewriting, essence: essence)

            let expectedInit = Self.doubles(c["target_init"])
            XCTAssertLessThan(GradientCompare.relativeError(search.targetInit.map(Double.init), expectedInit), 1e-3, "\(target): target_init")

            let delta = Self.floats(c["delta"])
            let (loss, gradient) = try search.evaluate(delta: delta, klFactor: Float(klFactor), weightDecay: Float(weightDecay))
            let expected = try XCTUnwrap(c["loss"] as? [String: Double])
            XCTAssertEqual(Double(loss.nll), expected["nll"]!, accuracy: 1e-3 * expected["nll"]!, "\(target): nll")
            XCTAssertEqual(Double(loss.kl), expected["kl"]!, accuracy: 1e-3 * expected["kl"]! + 1e-6, "\(target): kl")
            XCTAssertEqual(Double(loss.weightDecay), expected["weight_decay"]!, accuracy: 1e-3 * expected["weight_decay"]!, "\(target): wd")
            XCTAssertEqual(Double(loss.total), expected["total"]!, accuracy: 1e-3 * expected["total"]!, "\(target): total")

            let g = try XCTUnwrap(gradient).map(Double.init), reference = Self.doubles(c["gradient"])
            XCTAssertEqual(g.count, reference.count)
            let err = GradientCompare.relativeError(g, reference)
            XCTAssertLessThan(err, 1e-3, "\(target): ‖g − g_torch‖/‖g_torch‖ = \(err)")
            print("value search vs torch, target '\(target)': loss \(loss.total) vs \(expected["total"]!), gradient relative error \(err)")
        }
    }

    func testDownProjectionGradientMatchesPyTorch() throws {
        let model = try model(), f = try fixture()
        let cases = try XCTUnwrap(f["value_search"] as? [[String: Any]])
        let rewriting = try XCTUnwrap(cases[0]["rewriting"] as? [Any]).map(Self.prompt)
        let ref = try XCTUnwrap(f["weight_gradient"] as? [String: Any])
        let layer = try XCTUnwrap(ref["layer"] as? Int)
        // ROME's NLL: per prompt the mean over its target tokens, then the mean over prompts.
        let batch = rewriting.map { p in
            LabelledSequence(tokens: p.tokens, labels: p.targets.enumerated().map { k, t in
                TokenLabel(position: p.tokens.count - p.targets.count + k, token: t,
                           weight: 1 / Float(p.targets.count * rewriting.count))
            })
        }
        let wg = try WeightGradient(model: model, weights: [.mlpDown(layer)], batch: batch)
        let (loss, gradients) = wg.evaluate()
        let expectedLoss = try XCTUnwrap(ref["loss"] as? Double)
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-3 * expectedLoss)
        let g = try XCTUnwrap(gradients[.mlpDown(layer)])
        XCTAssertEqual([g.rows, g.cols], [model.config.hidden, model.config.intermediate])

        var frobenius = 0.0
        var rowSums = [Double](repeating: 0, count: g.rows)
        for r in 0..<g.rows {
            for c in 0..<g.cols {
                let v = Double(g.row(r)[c])
                frobenius += v * v
                rowSums[r] += v
            }
        }
        let expectedNorm = try XCTUnwrap(ref["frobenius_norm"] as? Double)
        XCTAssertEqual(frobenius.squareRoot(), expectedNorm, accuracy: 1e-3 * expectedNorm)
        let rowErr = GradientCompare.relativeError(rowSums, Self.doubles(ref["row_sums"]))
        XCTAssertLessThan(rowErr, 1e-3, "row sums: relative error \(rowErr)")
        let entries = try XCTUnwrap(ref["entries"] as? [[String: Any]])
        let mine = entries.map { Double(g.row($0["row"] as! Int)[$0["col"] as! Int]) }
        let theirs = entries.map { ($0["value"] as! NSNumber).doubleValue }
        let entryErr = GradientCompare.relativeError(mine, theirs)
        XCTAssertLessThan(entryErr, 1e-3, "single entries: relative error \(entryErr)")
        print("W_down gradient vs torch: loss \(loss) vs \(expectedLoss), norm \(frobenius.squareRoot()) vs \(expectedNorm), row sums error \(rowErr), entries error \(entryErr)")
    }

    /// The whole v* loop against the same loop in PyTorch. Adam's first steps move every coordinate
    /// by about ±lr whatever the gradient's size, so the two trajectories separate slowly; the first
    /// steps must agree closely and the end state loosely.
    func testRomeLoopMatchesPyTorch() throws {
        let model = try model(), f = try fixture()
        let layer = try XCTUnwrap(f["layer"] as? Int)
        let loop = try XCTUnwrap(f["rome_loop"] as? [String: Any])
        let cases = try XCTUnwrap(f["value_search"] as? [[String: Any]])
        let c = try XCTUnwrap(cases.first { ($0["target"] as? String) == (loop["target"] as? String) })
        let rewriting = try XCTUnwrap(c["rewriting"] as? [Any]).map(Self.prompt)
        let essence = [try Self.prompt(c["essence"])]
        let search = try ValueSearch(model: model, site: .mlpOutput(layer), rewriting: rewriting, essence: essence)
        let hp = ValueSearchHyperparameters(steps: try XCTUnwrap(loop["steps"] as? Int), learningRate: Float(try XCTUnwrap(loop["lr"] as? Double)),
                                            weightDecay: Float(try XCTUnwrap(loop["weight_decay"] as? Double)),
                                            klFactor: Float(try XCTUnwrap(loop["kl_factor"] as? Double)),
                                            clampNormFactor: Float(try XCTUnwrap(loop["clamp_norm_factor"] as? Double)))
        let result = try search.run(hp)
        let expected = try XCTUnwrap(loop["losses"] as? [[String: Double]]).map { $0["total"]! }
        let mine = result.losses.map { Double($0.total) }
        print("value search losses  ours:", mine.map { String(format: "%.4f", $0) }.joined(separator: " "))
        print("value search losses torch:", expected.map { String(format: "%.4f", $0) }.joined(separator: " "))
        for i in 0..<min(3, expected.count, mine.count) {
            XCTAssertEqual(mine[i], expected[i], accuracy: 2e-3 * expected[i], "step \(i)")
        }
        XCTAssertEqual(result.stoppedEarly, expected.last! < 5e-2)
        XCTAssertLessThanOrEqual(abs(mine.count - expected.count), 2, "steps taken: ours \(mine.count), torch \(expected.count)")
        let expectedNorm = try XCTUnwrap(loop["final_delta_norm"] as? Double)
        XCTAssertEqual(Double(GradientCompare.norm(result.delta.map(Double.init))), expectedNorm, accuracy: 0.05 * expectedNorm)
        XCTAssertEqual(result.value.count, model.config.hidden)
        for i in 0..<model.config.hidden { XCTAssertEqual(result.value[i], result.targetInit[i] + result.delta[i]) }
    }

    func testAdamMatchesTorch() throws {
        let f = try fixture()
        for run in try XCTUnwrap(f["adam"] as? [[String: Any]]) {
            var p = Self.floats(run["start"])
            var adam = Adam(count: p.count, learningRate: Float(try XCTUnwrap(run["lr"] as? Double)),
                            weightDecay: Float(try XCTUnwrap(run["weight_decay"] as? Double)))
            let gradients = try XCTUnwrap(run["gradients"] as? [Any]).map(Self.floats)
            let trace = try XCTUnwrap(run["parameters"] as? [Any]).map(Self.floats)
            for (step, g) in gradients.enumerated() {
                adam.update(&p, gradient: g)
                for (a, b) in zip(p, trace[step]) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b)), "step \(step)") }
            }
            XCTAssertEqual(adam.step, gradients.count)
        }
    }
}
