@testable import Engram
import Foundation
import XCTest

/// The closed-form solves of ROME, MEMIT and AlphaEdit (editing-methods.md §2.2, §3 step 2, §4) on synthetic key
/// covariances. For AlphaEdit the null space is known exactly: `C` is built from keys that live in the
/// first 16 of 24 coordinates, so the preserved directions are those 16 and the null-space projection
/// `P` is the diagonal 0…0 1…1. ROME and MEMIT need `C` of full rank and get keys in all 24. The editors'
/// answers are checked by multiplying them back into the equations the spec gives, with this `P` written
/// down rather than computed.
final class EditClosedFormTests: XCTestCase {
    let m = InMemoryTinyModels.llama.keyWidth, preserved = 16, layer = 1

    /// `E[k kᵀ]` of 400 random keys that are zero past coordinate `span`.
    func covariance(span: Int) -> KeyStatistics {
        var rng = SeededRandom(seed: 11)
        var stats = KeyStatistics(layer: layer, width: m)
        let samples = 400
        for _ in 0..<samples {
            let k = (0..<m).map { $0 < span ? Double(rng.symmetric()) : 0 }
            addOuter(&stats.sum, k, m)
        }
        stats.tokens = samples
        return stats
    }

    func randomKeys(_ n: Int, seed: UInt64) -> [[Double]] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in (0..<m).map { _ in 2 * Double(rng.symmetric()) } }
    }

    func hyperParameters() -> MEMITHyperParameters {
        var hp = MEMITHyperParameters()
        hp.layers = [layer]
        return hp
    }

    func provider(_ stats: KeyStatistics) -> StatisticsProvider {
        { layers, _ in Dictionary(uniqueKeysWithValues: layers.map { ($0, stats) }) }
    }

    /// Row-major `[r, c]` product of `[r, k]` and `[k, c]`.
    func product(_ a: [Double], _ b: [Double], rows r: Int, inner k: Int, cols c: Int) -> [Double] {
        var out = [Double](repeating: 0, count: r * c)
        for i in 0..<r { for t in 0..<k where a[i * k + t] != 0 { for j in 0..<c { out[i * c + j] += a[i * k + t] * b[t * c + j] } } }
        return out
    }

    func outerSum(_ keys: [[Double]]) -> [Double] {
        var s = [Double](repeating: 0, count: m * m)
        for k in keys { addOuter(&s, k, m) }
        return s
    }

    /// Largest |entry| of `lhs − rhs`, relative to the largest |entry| of `rhs`.
    func relativeGap(_ lhs: [Double], _ rhs: [Double]) -> Double {
        zip(lhs, rhs).map { abs($0 - $1) }.max()! / rhs.map(abs).max()!
    }

    /// `(P S + α I) Y = P K` with `Y = adjᵀ [m, n]`, `S = K Kᵀ + Kp Kpᵀ`: how far the answer is from it.
    func alphaEditGap(adj: [[Double]], keys: [[Double]], past: [[Double]], alpha: Double) -> Double {
        let n = keys.count
        var p = [Double](repeating: 0, count: m * m)
        for i in preserved..<m { p[i * m + i] = 1 }
        let s = zip(outerSum(keys), outerSum(past)).map { $0 + $1 }
        let y = columns(adj, m), kMatrix = columns(keys, m)
        var lhs = product(product(p, s, rows: m, inner: m, cols: m), y, rows: m, inner: m, cols: n)
        for i in 0..<(m * n) { lhs[i] += alpha * y[i] }
        return relativeGap(lhs, product(p, kMatrix, rows: m, inner: m, cols: n))
    }

    func testMEMITSolvesTheCovarianceWeightedLeastSquares() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.llama)
        let stats = covariance(span: m), hp = hyperParameters(), keys = randomKeys(3, seed: 5)
        let adj = try MEMIT(hp, statistics: provider(stats)).inputFactors(layer: layer, keys: keys, model: model)
        // (λ C + K Kᵀ) adjᵀ = K
        let a = zip(stats.moment(), outerSum(keys)).map { hp.mom2_update_weight * $0 + $1 }
        let lhs = product(a, columns(adj, m), rows: m, inner: m, cols: keys.count)
        XCTAssertLessThan(relativeGap(lhs, columns(keys, m)), 1e-9)
    }

    /// ROME with `mom2_adjustment`: `u = C⁻¹ k*` (§2.2), i.e. `C u = k*`.
    func testROMEInverseMomentSolvesTheCovariance() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.llama)
        let stats = covariance(span: m), x = randomKeys(1, seed: 9)[0]
        var hp = ROMEHyperParameters()
        hp.layers = [layer]
        hp.mom2_adjustment = true
        let u = try ROME(hp, statistics: provider(stats)).inverseMoment(layer: layer, model: model, times: x)
        XCTAssertLessThan(relativeGap(product(stats.moment(), u, rows: m, inner: m, cols: 1), x), 1e-9)
    }

    /// A second moment that rounding has left a hair below positive semi-definite stops Cholesky; ROME
    /// falls back to LU and still solves it. A singular one (units that are zero over the whole corpus)
    /// has no inverse: the error says which layer and what to do instead of trapping or advising more text.
    func testROMEInverseMomentFallsBackToLUAndExplainsASingularMoment() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.llama)
        var hp = ROMEHyperParameters()
        hp.layers = [layer]
        hp.mom2_adjustment = true
        var indefinite = KeyStatistics(layer: layer, width: m)
        for i in 0..<m { indefinite.sum[i * m + i] = i == m - 1 ? -1e-13 : Double(i + 1) }
        indefinite.tokens = 1
        XCTAssertThrowsError(try LinearSolve.symmetricPositiveDefinite(indefinite.moment(), n: m, [Double](repeating: 1, count: m), columns: 1))
        let x = randomKeys(1, seed: 5)[0]
        let rome = ROME(hp, statistics: provider(indefinite))
        let u = try rome.inverseMoment(layer: layer, model: model, times: x)
        XCTAssertLessThan(relativeGap(product(indefinite.moment(), u, rows: m, inner: m, cols: 1), x), 1e-9)
        XCTAssertTrue(rome.statisticsProvenance[layer]?.contains("by LU") == true, "the patch says C was not positive definite")

        XCTAssertThrowsError(try ROME(hp, statistics: provider(covariance(span: preserved))).inverseMoment(layer: layer, model: model)) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("layer \(layer)") && message.contains("singular") && message.contains("mom2_adjustment: false"), message)
        }
    }

    /// After a ROME update the edited MLP answers `v*` at the subject's last token of the un-prefixed
    /// prompt. GPT-2's down projection has a bias, which the MLP output (and so `v*`) includes: the
    /// residual must be taken against `W k + b`, not `W k`.
    func testROMEEditedMLPOutputsTheSearchedValueWithAndWithoutABias() throws {
        let tokenizer = TestTokenizer(pieces: [" Ann", " lives", " in", " Rome"])
        let request = EditRequest(caseID: "ann", prompt: "Ann lives in", subject: "Ann", targetNew: "Rome")
        for base in [InMemoryTinyModels.llama, InMemoryTinyModels.gpt2] {
            var config = base
            config.vocab = tokenizer.vocabularySize
            let model = try InMemoryTinyModels.model(config)
            var hp = ROMEHyperParameters()
            hp.layers = [layer]
            hp.context_template_length_params = []  // the un-prefixed prompt only: no sampling
            hp.v_num_grad_steps = 5
            let value = try LocateThenEdit.targetValues(model: model, tokenizer: tokenizer, requests: [request], templates: ["{}"],
                                                        site: .mlpOutput(layer), hyperParameters: hp.valueSearch)[0]
            let prompt = try LocateThenEdit.fill("{}", request: request, tokenizer: tokenizer)
            let before = try LocateThenEdit.states(model: model, prompts: [prompt], site: .mlpOutput(layer))[0]
            let applied = try ROME(hp).edit([request], model: model, tokenizer: tokenizer).apply(to: model)
            let after = try LocateThenEdit.states(model: model, prompts: [prompt], site: .mlpOutput(layer))[0]
            try applied.revert()
            let moved = zip(value, before).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(moved, 1e-2, "\(config.architecture): the search must move the value")
            XCTAssertLessThan(zip(after, value).map { abs($0 - $1) }.max()!, 1e-4 * max(1, moved), "\(config.architecture)")
        }
    }

    /// Template groups and AlphaEdit's ridge are checked before any work (a bad group used to trap on
    /// `$0[1]`, and `L2 = 0` makes the solve singular).
    func testTemplateGroupsAndRidgeAreChecked() throws {
        for params in [[[10]], [[10, 7]], [[0, 10]], [[10, 0]], [[Int.max, 5]], [[10, 1_000_000]]] {
            var hp = hyperParameters()
            hp.context_template_length_params = params
            XCTAssertThrowsError(try hp.validate(layers: 3), "\(params)") { XCTAssertTrue("\($0)".contains("context_template_length_params[0]"), "\($0)") }
            var rome = ROMEHyperParameters()
            rome.context_template_length_params = params
            XCTAssertThrowsError(try rome.validate(layers: 3), "\(params)")
        }
        var hp = hyperParameters()
        hp.L2 = 0
        XCTAssertThrowsError(try hp.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("L2"), "\($0)") }
        // The value search's knobs: a step count of zero or a huge negative one, a learning rate that is not positive.
        for steps in [0, Int.min, 1_000_000] {
            var memit = hyperParameters(), rome = ROMEHyperParameters()
            rome.layers = [layer]
            memit.v_num_grad_steps = steps
            rome.v_num_grad_steps = steps
            XCTAssertThrowsError(try memit.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("v_num_grad_steps"), "\($0)") }
            XCTAssertThrowsError(try rome.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("v_num_grad_steps"), "\($0)") }
        }
        hp = hyperParameters()
        hp.v_lr = -0.5
        XCTAssertThrowsError(try hp.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("v_lr"), "\($0)") }
    }

    /// Keys EasyEdit's files carry that have one meaning here are refused when they say something else
    /// (they used to be accepted and ignored).
    func testKeysWithOneMeaningRefuseOtherValues() throws {
        var memit = hyperParameters(), rome = ROMEHyperParameters()
        rome.layers = [layer]
        memit.v_loss_layer = 2
        rome.v_loss_layer = 2
        memit.mom2_dtype = "float32"
        XCTAssertNoThrow(try memit.validate(layers: 3), "the final logits' layer and EasyEdit's float32 are accepted")
        XCTAssertNoThrow(try rome.validate(layers: 3))
        memit.v_loss_layer = 1
        rome.v_loss_layer = 1
        XCTAssertThrowsError(try memit.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("v_loss_layer 1"), "\($0)") }
        XCTAssertThrowsError(try rome.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("v_loss_layer 1"), "\($0)") }
        memit.v_loss_layer = nil
        memit.mom2_dtype = "bfloat16"
        XCTAssertThrowsError(try memit.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("mom2_dtype"), "\($0)") }
        memit.mom2_dtype = "float64"
        rome.v_loss_layer = nil
        for name in ["wikipedia", "wikitext"] {
            memit.mom2_dataset = name
            rome.mom2_dataset = name
            XCTAssertNoThrow(try memit.validate(layers: 3), "EasyEdit's name and ours are accepted")
            XCTAssertNoThrow(try rome.validate(layers: 3))
        }
        memit.mom2_dataset = "/data/my-corpus.txt"
        rome.mom2_dataset = "/data/my-corpus.txt"
        XCTAssertThrowsError(try memit.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("mom2_dataset"), "\($0)") }
        XCTAssertThrowsError(try rome.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("mom2_dataset"), "\($0)") }
        memit.mom2_dataset = "wikitext-2"
        memit.mom2_adjustment = false
        XCTAssertThrowsError(try memit.validate(layers: 3)) { XCTAssertTrue("\($0)".contains("mom2_adjustment"), "\($0)") }
    }

    /// The patch says which statistics the update was solved with (corpus, hash, documents, tokens),
    /// rather than only the file's mom2_dataset label.
    func testPatchRecordsTheStatisticsItWasSolvedWith() throws {
        let tokenizer = TestTokenizer(pieces: [" Ann", " lives", " in", " Rome"])
        var config = InMemoryTinyModels.llama
        config.vocab = tokenizer.vocabularySize
        let model = try InMemoryTinyModels.model(config)
        var stats = covariance(span: m)
        stats.info = ["corpus": "notes.txt", "corpus_sha256": String(repeating: "ab", count: 32)]
        stats.documents = 7
        var hp = hyperParameters()
        hp.context_template_length_params = []
        hp.v_num_grad_steps = 2
        let request = EditRequest(caseID: "ann", prompt: "Ann lives in", subject: "Ann", targetNew: "Rome")
        let patch = try MEMIT(hp, statistics: provider(stats)).edit([request], model: model, tokenizer: tokenizer)
        XCTAssertEqual(patch.metadata["statistics"], "layer \(layer): notes.txt (sha256 abababababababab), 7 documents, 400 tokens")
    }

    func testAlphaEditUpdateLeavesPreservedKeysAloneAndKeepsPastKeysUntilReset() throws {
        let model = try InMemoryTinyModels.model(InMemoryTinyModels.llama)
        let hp = hyperParameters(), editor = AlphaEdit(hp, statistics: provider(covariance(span: preserved)))
        let first = randomKeys(4, seed: 21), second = randomKeys(3, seed: 22)

        let adj = try editor.inputFactors(layer: layer, keys: first, model: model)
        XCTAssertLessThan(alphaEditGap(adj: adj, keys: first, past: [], alpha: hp.L2), 1e-9)
        // ΔW = resid · adjᵀ, so ΔW k₀ = 0 for every key k₀ of the preserved space iff adj has no
        // component there.
        let largest = adj.flatMap { $0 }.map(abs).max()!
        XCTAssertGreaterThan(largest, 1e-3, "a non-trivial update")
        for row in adj { XCTAssertLessThan(row[0..<preserved].map(abs).max()!, 1e-9 * largest) }

        // After a batch the edited keys join the solve (sequential editing) …
        try editor.didEdit(keysAt: { XCTAssertEqual($0, self.layer); return first })
        let next = try editor.inputFactors(layer: layer, keys: second, model: model)
        XCTAssertLessThan(alphaEditGap(adj: next, keys: second, past: first, alpha: hp.L2), 1e-9)
        XCTAssertGreaterThan(alphaEditGap(adj: next, keys: second, past: [], alpha: hp.L2), 1e-3, "past keys must change the answer")
        // … until a new session starts.
        editor.reset()
        let fresh = try editor.inputFactors(layer: layer, keys: second, model: model)
        XCTAssertLessThan(alphaEditGap(adj: fresh, keys: second, past: [], alpha: hp.L2), 1e-9)
    }
}
