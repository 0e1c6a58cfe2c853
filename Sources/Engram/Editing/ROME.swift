import COpenBLAS
import Foundation

/// ROME hyper-parameters (editing-methods.md §2.5), EasyEdit key names.
public struct ROMEHyperParameters: MethodHyperParameters, ValueSearchKeys, Equatable {
    public var layers: [Int] = [4]
    public var fact_token = "subject_last"
    public var v_num_grad_steps = 25
    public var v_lr: Float = 0.5
    /// Always the last layer: ROME's loss uses the model's final logits (§2.3); any other value is refused.
    public var v_loss_layer: Int?
    public var v_weight_decay: Float = 1e-3
    public var clamp_norm_factor: Float = 4
    public var kl_factor: Float = 0.0625
    public var mom2_adjustment = false
    /// A label only: the corpus is the statistics provider's (`--corpus`, default WikiText-2), and patches
    /// record the one actually used.
    public var mom2_dataset = "wikitext-2"
    /// Documents of the statistics corpus (the reference counts Wikipedia articles); more than the corpus
    /// holds is an error.
    public var mom2_n_samples = 2000
    /// Statistics are float64 whatever this says (`float32` is accepted for EasyEdit's files).
    public var mom2_dtype = "float64"
    public var context_template_length_params: [[Int]] = [[5, 10], [10, 10]]
    /// `original` (reference parity) or `rrome` (uses k* in the residual and denominator; §2.4).
    public var rome_key_mode = "original"

    public init() {}
    public static let knownKeys: Set<String> = [
        "layers", "fact_token", "v_num_grad_steps", "v_lr", "v_loss_layer", "v_weight_decay", "clamp_norm_factor",
        "kl_factor", "mom2_adjustment", "mom2_dataset", "mom2_n_samples", "mom2_dtype", "context_template_length_params",
        "rome_key_mode",
    ]

    func validate(layers count: Int) throws {
        guard !layers.isEmpty, layers.allSatisfy({ (0..<count).contains($0) }) else {
            throw EngramError.invalidArgument("ROME layers \(layers) must be inside 0..<\(count)")
        }
        guard fact_token == "subject_last" else { throw EngramError.invalidArgument("ROME fact_token '\(fact_token)' is not supported (subject_last)") }
        guard ["original", "rrome"].contains(rome_key_mode) else {
            throw EngramError.invalidArgument("rome_key_mode must be 'original' or 'rrome', got '\(rome_key_mode)'")
        }
        try LocateThenEdit.TemplateGroup.validate(context_template_length_params)
        try LocateThenEdit.validateValueSearch(self)
        try HyperParameterFile.checkFixedKeys(v_loss_layer: v_loss_layer, mom2_dtype: mom2_dtype, mom2_dataset: mom2_dataset, modelLayers: count)
    }
}

/// Supplies `E[k kᵀ]` statistics for layers over the first `documents` corpus documents (the method's
/// `mom2_n_samples`), computed or read from the cache.
public typealias StatisticsProvider = (_ layers: [Int], _ documents: Int) throws -> [Int: KeyStatistics]

/// ROME (editing-methods.md §2): a rank-one update of one MLP down projection per request, so that the
/// subject's key maps to a value that makes the model say the new target.
public final class ROME: Editor {
    public let hp: ROMEHyperParameters
    let statistics: StatisticsProvider?
    /// `C⁻¹` per layer, float64 `[m, m]`.
    var inverseCache: [Int: [Double]] = [:]
    /// Where each layer's statistics came from (mom2_adjustment), for the patch.
    var statisticsProvenance: [Int: String] = [:]
    /// Where `v*` values are kept between runs (optional).
    public var valueCache: ValueCache?
    /// Where context templates are kept between runs (optional).
    public var templateStore: TemplateStore?
    /// The file `hp` was read from (nil: built-in defaults), named in errors about its values.
    public var hyperParameterSource: String?

    public init(_ hp: ROMEHyperParameters = ROMEHyperParameters(), statistics: StatisticsProvider? = nil) {
        self.hp = hp
        self.statistics = statistics
    }

    public var name: String { "ROME" }
    public var hyperParameters: [String: String] { HyperParameterFile.describe(hp) }

    /// Context templates, and the inverse moments when `mom2_adjustment` is on.
    public func prepare(model: LanguageModel, tokenizer: Tokenizer) throws {
        try HyperParameterFile.checking(hyperParameterSource) { try hp.validate(layers: model.config.layers) }
        _ = try contextTemplates(model: model, tokenizer: tokenizer)
        if hp.mom2_adjustment {
            for layer in hp.layers { _ = try inverseMoment(layer: layer, model: model) }
        }
    }

    func contextTemplates(model: LanguageModel, tokenizer: Tokenizer) throws -> [String] {
        let groups = hp.context_template_length_params.map { LocateThenEdit.TemplateGroup(length: $0[0], count: $0[1]) }
        return try LocateThenEdit.contextTemplates(model: model, tokenizer: tokenizer, groups: groups, store: templateStore).flatMap { $0 }
    }

    /// Requests are applied one after another (each sees the previous ones), and returned together.
    public func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        try LocateThenEdit.refuseConflicts(requests)
        // Templates and C⁻¹ describe the unedited model: read them all before the first update.
        try prepare(model: model, tokenizer: tokenizer)
        let templates = try contextTemplates(model: model, tokenizer: tokenizer)
        var deltas: [WeightDelta] = []
        var applied: [AppliedPatch] = []
        defer { for a in applied.reversed() { try? a.revert() } } // leave the model as we found it
        for request in requests {
            for layer in hp.layers.sorted() {
                let delta = try rankOneUpdate(request, layer: layer, templates: templates, model: model, tokenizer: tokenizer)
                // Later layers and later requests are computed on the updated weights (§2.4).
                applied.append(try EditPatch(method: name, requests: [request], deltas: [delta]).apply(to: model))
                deltas.append(delta)
            }
        }
        return EditPatch(method: name, hyperParameters: hyperParameters, requests: requests, deltas: deltas,
                         metadata: ["context_templates": templates.joined(separator: "\u{1F}"),
                                    "statistics": hp.mom2_adjustment ? hp.layers.compactMap { statisticsProvenance[$0] }.joined(separator: "; ") : "not used"])
    }

    func rankOneUpdate(_ request: EditRequest, layer: Int, templates: [String], model: LanguageModel, tokenizer: Tokenizer) throws -> WeightDelta {
        // k*: mean key over the templates; k: the un-prefixed prompt's key.
        // The MLP output of the un-prefixed prompt (templates[0] is "{}") is read with the keys: it is
        // W k plus the down projection's bias where there is one (GPT-2), which v* includes too.
        let filled = try templates.map { try LocateThenEdit.fill($0, request: request, tokenizer: tokenizer) }
        let rows = try LocateThenEdit.lookupRows(model: model, prompts: filled, sites: [.mlpKey(layer), .mlpOutput(layer)])
        let keys = rows[0], output = rows[1][0]
        let kStar = keys.mean(), k = keys[0]
        var u = kStar.map(Double.init)
        if hp.mom2_adjustment { u = try inverseMoment(layer: layer, model: model, times: u) }
        let uNorm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard uNorm > 0 else { throw EngramError.invalidArgument("request \(request.caseID): the subject's key is zero at layer \(layer)") }
        u = u.map { $0 / uNorm }

        let value = try LocateThenEdit.targetValues(model: model, tokenizer: tokenizer, requests: [request], templates: templates,
                                                    site: .mlpOutput(layer), hyperParameters: hp.valueSearch, cache: valueCache)[0]
        // r = (v* − (W k + b)) / (kᵀ u)   (original) or with k* in both places (r-ROME), so that the
        // edited MLP answers v* for that key: W k* + b = output + W (k* − k).
        let key = hp.rome_key_mode == "rrome" ? kStar : k
        let w = model.readWeight(.mlpDown(layer))
        var current = output
        if hp.rome_key_mode == "rrome" {
            let shift = zip(kStar, k).map { $0 - $1 }
            BLAS.gemv(trans: false, m: w.rows, n: w.cols, a: w.pointer, lda: w.cols, x: shift, beta: 1, y: &current)
        }
        let denominator = zip(key, u).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        guard abs(denominator) > 1e-12 else { throw EngramError.invalidArgument("request \(request.caseID): key is orthogonal to u at layer \(layer)") }
        let r = (0..<w.rows).map { Float(Double(value[$0] - current[$0]) / denominator) }
        return WeightDelta(weight: .mlpDown(layer), change: .lowRank(r: Matrix(rows: 1, cols: w.rows, values: r),
                                                                       u: Matrix(rows: 1, cols: w.cols, values: u.map(Float.init))))
    }

    /// `C⁻¹` of the layer, cached (solved against the identity, once per layer).
    func inverseMoment(layer: Int, model: LanguageModel) throws -> [Double] {
        if let inverse = inverseCache[layer] { return inverse }
        let m = model.config.keyWidth
        guard let statistics, let stats = try statistics([layer], hp.mom2_n_samples)[layer] else {
            throw EngramError.invalidArgument("ROME with mom2_adjustment needs key statistics for layer \(layer)")
        }
        var identity = [Double](repeating: 0, count: m * m)
        for i in 0..<m { identity[i * m + i] = 1 }
        let c = stats.moment()
        statisticsProvenance[layer] = stats.provenance
        let inverse: [Double]
        do {
            inverse = try LinearSolve.symmetricPositiveDefinite(c, n: m, identity, columns: m)
        } catch {
            // Rarely active units leave C barely positive semi-definite, and rounding can tip it just
            // below zero where Cholesky stops. The reference inverts C by LU whatever its conditioning;
            // do the same, and say so in the patch, since such a C⁻¹ is dominated by those directions.
            do {
                inverse = try LinearSolve.general(c, n: m, identity, columns: m)
                statisticsProvenance[layer] = stats.provenance + " (not positive definite in float64: C⁻¹ by LU, as the reference's inverse)"
            } catch {
                let cause = stats.tokens < m
                    ? "it sums \(stats.tokens) tokens for \(m) key units; collect statistics over more documents, or set mom2_adjustment: false"
                    : "some key units are zero on every token, or linearly dependent; set mom2_adjustment: false"
                throw EngramError.invalidArgument("ROME mom2_adjustment: the key second moment of layer \(layer) is singular, so C⁻¹ "
                    + "does not exist: \(cause) (ROME's default here)")
            }
        }
        inverseCache[layer] = inverse
        return inverse
    }

    /// `C⁻¹ x`.
    func inverseMoment(layer: Int, model: LanguageModel, times x: [Double]) throws -> [Double] {
        let m = model.config.keyWidth, inverse = try inverseMoment(layer: layer, model: model)
        var y = [Double](repeating: 0, count: m)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(m), 1, inverse, Int32(m), x, 1, 0, &y, 1)
        return y
    }
}
