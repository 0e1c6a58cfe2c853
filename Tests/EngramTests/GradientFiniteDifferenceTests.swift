import Foundation
import XCTest
import Engram

/// The backward passes against central finite differences of an independent objective: the model's
/// own forward (with a hook adding δ, or with a weight entry nudged) and the losses written out in
/// Double in the test. Every architecture path is covered: LLaMA (GQA, interleaved RoPE, tied head),
/// Qwen2 (Q/K/V biases, NeoX RoPE, GQA 4/1, separate head) and GPT-2 (LayerNorm, fused QKV, GELU,
/// biases, learned positions).
final class GradientFiniteDifferenceTests: XCTestCase {
    /// Prompts in the shape ROME builds: the same prompt under different prefixes, a two-token
    /// target, and an essence prompt whose subject is its first token (lookup 0: no cached prefix);
    /// plus one prompt labelled at explicit positions.
    func prompts(vocab: Int, seed: UInt64) -> (rewriting: [ValueSearchPrompt], essence: [ValueSearchPrompt]) {
        var rng = SeededRandom(seed: seed)
        let prompt = InMemoryTinyModels.randomTokens(6, vocab: vocab, rng: &rng)
        let target = InMemoryTinyModels.randomTokens(2, vocab: vocab, rng: &rng)
        let prefixA = InMemoryTinyModels.randomTokens(3, vocab: vocab, rng: &rng)
        let prefixB = InMemoryTinyModels.randomTokens(1, vocab: vocab, rng: &rng)
        let rewriting = [
            ValueSearchPrompt(prompt: prompt, lookup: 2, target: target),
            ValueSearchPrompt(prompt: prefixA + prompt, lookup: 5, target: target),
            ValueSearchPrompt(prompt: prefixB + prompt, lookup: 3, target: target),
            // Explicit labelled positions, one of them at the lookup itself and none at the end.
            ValueSearchPrompt(tokens: prompt + target, lookup: 1, targets: [target[1], prompt[3]], targetPositions: [1, 2]),
        ]
        let essence = [ValueSearchPrompt(tokens: [prompt[2]] + InMemoryTinyModels.randomTokens(2, vocab: vocab, rng: &rng), lookup: 0)]
        return (rewriting, essence)
    }

    func checkValueSearch(_ name: String, _ config: ModelConfig, site: HookSite, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try InMemoryTinyModels.model(config)
        let (rewriting, essence) = prompts(vocab: config.vocab, seed: 11)
        let search = try ValueSearch(model: model, site: site, rewriting: rewriting, essence: essence)

        // target_init is the site's value at row 0's lookup, read by a plain hook.
        var expectedInit: [Float] = []
        var hooks = Hooks()
        hooks.on(site) { rows in
            if let r = rows.rowIndex(sequence: 0, position: rewriting[0].lookup) { expectedInit = rows.values(row: r) }
        }
        _ = try model.forward(rewriting[0].tokens, cache: model.makeCache(), hooks: hooks, logits: .none)
        XCTAssertEqual(search.targetInit.count, config.hidden, file: file, line: line)
        for (a, b) in zip(search.targetInit, expectedInit) { XCTAssertEqual(a, b, accuracy: 1e-5, "\(name) target_init", file: file, line: line) }

        var rng = SeededRandom(seed: 99)
        let delta = (0..<config.hidden).map { _ in 0.4 * rng.symmetric() }
        let klFactor = 0.5, weightDecay = 0.05 // larger than ROME's so that every term shows in the gradient
        let initial = try GradientReferenceMaths.initial(model, essence: essence)
        func reference(_ x: [Float]) throws -> Double {
            try GradientReferenceMaths.loss(model, site: site, rewriting: rewriting, essence: essence, delta: x, initial: initial,
                                            targetInit: search.targetInit, klFactor: klFactor, weightDecay: weightDecay)
        }

        let (loss, gradient) = try search.evaluate(delta: delta, klFactor: Float(klFactor), weightDecay: Float(weightDecay))
        let expectedLoss = try reference(delta)
        XCTAssertEqual(Double(loss.total), expectedLoss, accuracy: 1e-5 * abs(expectedLoss), "\(name) loss", file: file, line: line)
        XCTAssertGreaterThan(loss.kl, 1e-4, "\(name): the KL term should be live at δ ≠ 0", file: file, line: line)
        let g = gradient!.map(Double.init)

        // Central differences at two step sizes; both must agree with the analytic gradient.
        for eps in [2e-2, 1e-2] {
            var fd = [Double](repeating: 0, count: config.hidden)
            for i in 0..<config.hidden {
                var plus = delta, minus = delta
                plus[i] += Float(eps)
                minus[i] -= Float(eps)
                // The actual steps taken in Float, not the nominal eps.
                fd[i] = (try reference(plus) - reference(minus)) / Double(plus[i] - minus[i])
            }
            let err = GradientCompare.relativeError(g, fd)
            XCTAssertLessThan(err, 3e-3, "\(name) \(site) ε=\(eps): ‖g − fd‖/‖fd‖ = \(err)", file: file, line: line)
        }
        // The gradient at δ = 0 must be finite too (‖δ‖ is not differentiable there).
        let (_, g0) = try search.evaluate(delta: [Float](repeating: 0, count: config.hidden), klFactor: 0.0625, weightDecay: 1e-3)
        XCTAssertTrue(g0!.allSatisfy(\.isFinite), file: file, line: line)
    }

    func testValueSearchGradientLlama() throws {
        for site in [HookSite.mlpOutput(1), .residual(1), .mlpOutput(0), .mlpOutput(2)] {
            try checkValueSearch("llama", InMemoryTinyModels.llama, site: site)
        }
    }

    func testValueSearchGradientQwen2() throws {
        for site in [HookSite.mlpOutput(1), .residual(0)] {
            try checkValueSearch("qwen2", InMemoryTinyModels.qwen2, site: site)
        }
    }

    func testValueSearchGradientGPT2() throws {
        for site in [HookSite.mlpOutput(1), .residual(2)] {
            try checkValueSearch("gpt2", InMemoryTinyModels.gpt2, site: site)
        }
    }

    /// Requests searched together (stacked rows, one δ each) give what each gives searched alone:
    /// the same target_init, the same losses step by step (so the same stopping step) and the same
    /// value, for every architecture and for a group that stops early while the others go on.
    func testBatchedValueSearchEqualsOneByOne() throws {
        for (name, config) in InMemoryTinyModels.all {
            let model = try InMemoryTinyModels.model(config, seed: 8)
            let groups = (0..<3).map { i -> ValueSearchGroup in
                let (rewriting, essence) = prompts(vocab: config.vocab, seed: 20 + UInt64(i))
                return ValueSearchGroup(rewriting: Array(rewriting.prefix(2 + i)), essence: i == 1 ? [] : essence)
            }
            // A loose stopping threshold for the first group only is not expressible; instead the
            // budget is long enough that some groups stop early on these tiny models and some do not.
            var hp = ValueSearchHyperparameters(steps: 12, learningRate: 0.5)
            hp.earlyStopLoss = 0.5
            for site in [HookSite.mlpOutput(1), .residual(0)] {
                let together = try ValueSearch(model: model, site: site, groups: groups, threads: 1).runAll(hp)
                XCTAssertEqual(together.count, groups.count)
                // Split over threads (each a run of whole sequences, one cutting through a request's
                // prompts), the search is the same.
                for threads in [2, 3] {
                    let split = try ValueSearch(model: model, site: site, groups: groups, threads: threads).runAll(hp)
                    for (g, (a, b)) in zip(split, together).enumerated() {
                        let label = "\(name) \(site) request \(g), \(threads) threads"
                        XCTAssertEqual(a.losses.count, b.losses.count, label)
                        for (x, y) in zip(a.losses, b.losses) { XCTAssertEqual(x.total, y.total, accuracy: 1e-5 * max(1, abs(y.total)), label) }
                        for (x, y) in zip(a.value, b.value) { XCTAssertEqual(x, y, accuracy: 1e-5, label) }
                    }
                }
                for (g, group) in groups.enumerated() {
                    let alone = try ValueSearch(model: model, site: site, rewriting: group.rewriting, essence: group.essence).run(hp)
                    let label = "\(name) \(site) request \(g)"
                    XCTAssertEqual(together[g].losses.count, alone.losses.count, label)
                    XCTAssertEqual(together[g].stoppedEarly, alone.stoppedEarly, label)
                    for (a, b) in zip(together[g].losses, alone.losses) { XCTAssertEqual(a.total, b.total, accuracy: 1e-4 * max(1, abs(b.total)), label) }
                    for (a, b) in zip(together[g].targetInit, alone.targetInit) { XCTAssertEqual(a, b, accuracy: 1e-5, label) }
                    for (a, b) in zip(together[g].value, alone.value) { XCTAssertEqual(a, b, accuracy: 1e-4, label) }
                }
            }
        }
    }

    /// dL/dW_down against central differences on single entries, for one and for two layers at once
    /// (the lowest at layer 0, where the tape starts from the embeddings).
    func testDownProjectionGradient() throws {
        for (name, config) in InMemoryTinyModels.all {
            for layers in [[1], [0, 2]] {
                let model = try InMemoryTinyModels.model(config, seed: 5)
                var rng = SeededRandom(seed: 3)
                let a = InMemoryTinyModels.randomTokens(7, vocab: config.vocab, rng: &rng)
                let b = InMemoryTinyModels.randomTokens(5, vocab: config.vocab, rng: &rng)
                let batch = [
                    LabelledSequence(tokens: a, labels: [TokenLabel(position: 4, token: a[5], weight: 0.25),
                                                         TokenLabel(position: 5, token: a[6], weight: 0.25)]),
                    // Labels need not be at the end: positions after the last label are never run.
                    LabelledSequence(tokens: b, labels: [TokenLabel(position: 2, token: 3, weight: 0.5)]),
                    LabelledSequence(tokens: b, labels: []),
                ]
                let weights = layers.map { EditableWeight.mlpDown($0) }
                let wg = try WeightGradient(model: model, weights: weights, batch: batch)
                let (loss, gradients) = wg.evaluate()
                let expected = try GradientReferenceMaths.crossEntropy(model, batch: batch)
                XCTAssertEqual(Double(loss), expected, accuracy: 1e-5 * abs(expected), "\(name) \(layers) loss")
                for w in weights {
                    let live = model.weight(w)
                    guard let g = gradients[w] else { return XCTFail("\(name): no gradient for \(w)") }
                    XCTAssertEqual(g.rows, live.rows)
                    XCTAssertEqual(g.cols, live.cols)
                    var analytic: [Double] = [], numeric: [Double] = []
                    for _ in 0..<16 {
                        let i = rng.int(below: live.count)
                        let original = live.pointer[i]
                        let eps: Float = 1e-2
                        live.pointer[i] = original + eps
                        let plus = try GradientReferenceMaths.crossEntropy(model, batch: batch)
                        let stepPlus = live.pointer[i] - original
                        live.pointer[i] = original - eps
                        let minus = try GradientReferenceMaths.crossEntropy(model, batch: batch)
                        let stepMinus = original - live.pointer[i]
                        live.pointer[i] = original
                        numeric.append((plus - minus) / Double(stepPlus + stepMinus))
                        analytic.append(Double(g.pointer[i]))
                    }
                    let err = GradientCompare.relativeError(analytic, numeric)
                    XCTAssertLessThan(err, 2e-3, "\(name) \(w): ‖g − fd‖/‖fd‖ = \(err)")
                }
                // The weights were restored exactly, so the loss is unchanged.
                XCTAssertEqual(wg.evaluate(gradient: false).loss, loss)
            }
        }
    }
}
