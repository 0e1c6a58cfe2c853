import Foundation

/// MEMIT / AlphaEdit hyper-parameters (editing-methods.md §3.1, §4), EasyEdit key names.
public struct MEMITHyperParameters: MethodHyperParameters, ValueSearchKeys, Equatable {
    public var layers: [Int] = [4, 5, 6, 7, 8]
    public var fact_token = "subject_last"
    public var v_num_grad_steps = 25
    public var v_lr: Float = 0.5
    /// The final logits' layer or nothing (see ROME's).
    public var v_loss_layer: Int?
    public var v_weight_decay: Float = 1e-3
    public var clamp_norm_factor: Float = 4
    public var kl_factor: Float = 0.0625
    /// Must stay true: the update is always weighed by C (the reference ignores the key).
    public var mom2_adjustment = true
    /// λ in `λ C + K Kᵀ` (MEMIT).
    public var mom2_update_weight: Double = 15000
    /// A label only (see ROME's); patches record the corpus actually used.
    public var mom2_dataset = "wikitext-2"
    public var mom2_n_samples = 2000
    public var mom2_dtype = "float64"
    public var context_template_length_params: [[Int]] = [[10, 10]]
    /// AlphaEdit: eigenvalues of C below this span the preserved-knowledge null space.
    public var nullspace_threshold: Double = 2e-2
    /// AlphaEdit: ridge α in `(P (K Kᵀ + Kp Kpᵀ) + α I)`.
    public var L2: Double = 10

    public init() {}
    public static let knownKeys: Set<String> = [
        "layers", "fact_token", "v_num_grad_steps", "v_lr", "v_loss_layer", "v_weight_decay", "clamp_norm_factor",
        "kl_factor", "mom2_adjustment", "mom2_update_weight", "mom2_dataset", "mom2_n_samples", "mom2_dtype",
        "context_template_length_params", "nullspace_threshold", "L2",
    ]

    func validate(layers count: Int) throws {
        guard !layers.isEmpty, layers.allSatisfy({ (0..<count).contains($0) }), layers == layers.sorted(), Set(layers).count == layers.count else {
            throw EngramError.invalidArgument("layers \(layers) must be distinct, ascending and inside 0..<\(count)")
        }
        guard fact_token == "subject_last" else { throw EngramError.invalidArgument("fact_token '\(fact_token)' is not supported (subject_last)") }
        // L2 = 0 would leave AlphaEdit's (P S + αI) singular wherever P is.
        guard mom2_update_weight > 0, L2 > 0, nullspace_threshold > 0 else {
            throw EngramError.invalidArgument("mom2_update_weight, nullspace_threshold and L2 must be positive")
        }
        try LocateThenEdit.TemplateGroup.validate(context_template_length_params)
        try LocateThenEdit.validateValueSearch(self)
        try HyperParameterFile.checkFixedKeys(v_loss_layer: v_loss_layer, mom2_dtype: mom2_dtype, mom2_dataset: mom2_dataset, modelLayers: count)
        guard mom2_adjustment else {
            throw EngramError.invalidArgument("mom2_adjustment: false is not supported by MEMIT or AlphaEdit: their update is always weighed by C")
        }
    }
}

/// MEMIT (editing-methods.md §3): many edits at once, spread over several layers. For each request a
/// target `z` for the last edited layer's output, then per layer a least-squares update that moves the
/// subjects' keys towards their share of the remaining residual while preserving `C = E[k kᵀ]`.
/// AlphaEdit is the same pipeline with a null-space-projected solve (see `AlphaEdit`).
public class MEMIT: Editor {
    public let hp: MEMITHyperParameters
    let statistics: StatisticsProvider
    var momentCache: [Int: [Double]] = [:]
    /// Where each layer's statistics came from, for the patch.
    var statisticsProvenance: [Int: String] = [:]
    /// Where `z` values are kept between runs (optional).
    public var valueCache: ValueCache?
    /// Where context templates are kept between runs (optional).
    public var templateStore: TemplateStore?
    /// The file `hp` was read from (nil: built-in defaults), named in errors about its values.
    public var hyperParameterSource: String?

    public init(_ hp: MEMITHyperParameters = MEMITHyperParameters(), statistics: @escaping StatisticsProvider) {
        self.hp = hp
        self.statistics = statistics
    }

    public var name: String { "MEMIT" }
    public var hyperParameters: [String: String] { HyperParameterFile.describe(hp) }

    func moment(_ layer: Int) throws -> [Double] {
        if let c = momentCache[layer] { return c }
        guard let stats = try statistics([layer], hp.mom2_n_samples)[layer] else {
            throw EngramError.invalidArgument("\(name) needs key statistics for layer \(layer)")
        }
        return remember(stats, layer: layer)
    }

    /// Keeps a layer's moment and where it came from (for the patch).
    @discardableResult
    func remember(_ stats: KeyStatistics, layer: Int) -> [Double] {
        let c = stats.moment()
        momentCache[layer] = c
        statisticsProvenance[layer] = stats.provenance
        return c
    }

    /// The layer's update `ΔW = resid · adjᵀ` given keys `K [n, m]` and residuals `resid [n, d]`:
    /// returns the input-side factors `adj [n, m]` (so ΔW = Σ_i resid_i adj_iᵀ).
    /// MEMIT: `adj = (λ C + K Kᵀ)⁻¹ K` in float64.
    func inputFactors(layer: Int, keys: [[Double]], model: LanguageModel) throws -> [[Double]] {
        let m = model.config.keyWidth, n = keys.count
        var a = try moment(layer).map { $0 * hp.mom2_update_weight }
        for k in keys { addOuter(&a, k, m) }
        let kMatrix = columns(keys, m) // [m, n]
        // LU rather than Cholesky: dead MLP units make C only semi-definite in float64.
        let solution = try LinearSolve.general(a, n: m, kMatrix, columns: n)
        return (0..<n).map { j in (0..<m).map { solution[$0 * n + j] } }
    }

    /// Context templates and the second moments of every edited layer.
    public func prepare(model: LanguageModel, tokenizer: Tokenizer) throws {
        try HyperParameterFile.checking(hyperParameterSource) { try hp.validate(layers: model.config.layers) }
        _ = try templatesAndMoments(model: model, tokenizer: tokenizer)
    }

    func templatesAndMoments(model: LanguageModel, tokenizer: Tokenizer) throws -> [[String]] {
        let groups = try LocateThenEdit.contextTemplates(model: model, tokenizer: tokenizer,
            groups: hp.context_template_length_params.map { LocateThenEdit.TemplateGroup(length: $0[0], count: $0[1]) },
            store: templateStore)
        let missing = hp.layers.filter { momentCache[$0] == nil }
        if !missing.isEmpty {
            for (l, stats) in try statistics(missing, hp.mom2_n_samples) { remember(stats, layer: l) }
        }
        return groups
    }

    /// MEMIT keeps nothing between edits.
    public func reset() {}

    /// Called after a batch is written, with a reader of each edited layer's keys as they are now
    /// (AlphaEdit accumulates them; MEMIT reads none).
    func didEdit(keysAt: (Int) throws -> [[Double]]) throws {}

    public func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        try HyperParameterFile.checking(hyperParameterSource) { try hp.validate(layers: model.config.layers) }
        guard !requests.isEmpty else { return EditPatch(method: name, hyperParameters: hyperParameters, requests: []) }
        try LocateThenEdit.refuseConflicts(requests)
        // Statistics describe the unedited model: load them all before any weight changes.
        let groups = try templatesAndMoments(model: model, tokenizer: tokenizer)
        let lastLayer = hp.layers.last!

        // 1. Target z_i for the last layer's block output (δ added to the residual stream).
        let searchTemplates = groups.flatMap { $0 }
        let z = try LocateThenEdit.targetValues(model: model, tokenizer: tokenizer, requests: requests, templates: searchTemplates,
                                                site: .residual(lastLayer), hyperParameters: hp.valueSearch, cache: valueCache)
        let unprefixed = try requests.map { try LocateThenEdit.fill("{}", request: $0, tokenizer: tokenizer) }
        let filledGroups = try groups.map { g in try requests.map { r in try g.map { try LocateThenEdit.fill($0, request: r, tokenizer: tokenizer) } } }

        var deltas: [WeightDelta] = []
        var applied: [AppliedPatch] = []
        defer { for a in applied.reversed() { try? a.revert() } }
        for (k, layer) in hp.layers.enumerated() {
            // 2. Keys at this layer: mean within each template group, then across groups.
            let keys = try layerKeys(filledGroups, layer: layer, model: model)
            let current = try LocateThenEdit.states(model: model, prompts: unprefixed, site: .residual(lastLayer))
            let share = Double(hp.layers.count - k)
            var resid: [[Double]] = []
            for i in 0..<requests.count {
                let zi = z[i], ci = current[i]
                resid.append((0..<zi.count).map { (j: Int) -> Double in Double(zi[j] - ci[j]) / share })
            }
            let adj = try inputFactors(layer: layer, keys: keys, model: model)
            let delta = WeightDelta(weight: .mlpDown(layer), change: .lowRank(
                r: Matrix(rows: requests.count, cols: model.config.hidden, values: resid.flatMap { $0.map(Float.init) }),
                u: Matrix(rows: requests.count, cols: model.config.keyWidth, values: adj.flatMap { $0.map(Float.init) })))
            applied.append(try EditPatch(method: name, requests: requests, deltas: [delta]).apply(to: model))
            deltas.append(delta)
        }
        // Keys as they are after the whole update (AlphaEdit, §4 step 3).
        try didEdit(keysAt: { try self.layerKeys(filledGroups, layer: $0, model: model) })
        return EditPatch(method: name, hyperParameters: hyperParameters, requests: requests, deltas: deltas,
                         metadata: ["context_templates": searchTemplates.joined(separator: "\u{1F}"),
                                    "statistics": hp.layers.compactMap { statisticsProvenance[$0] }.joined(separator: "; ")])
    }

    /// `[n][m]` keys: for each request, the mean over each template group, then over groups.
    func layerKeys(_ filledGroups: [[[LocateThenEdit.FilledPrompt]]], layer: Int, model: LanguageModel) throws -> [[Double]] {
        let n = filledGroups.first?.count ?? 0
        var sums = [[Double]](repeating: [Double](repeating: 0, count: model.config.keyWidth), count: n)
        for group in filledGroups {
            let flat = group.flatMap { $0 }
            let keys = try LocateThenEdit.keys(model: model, prompts: flat, layers: [layer])[layer]!
            var offset = 0
            for (i, prompts) in group.enumerated() {
                let mean = Array(keys[offset..<(offset + prompts.count)]).mean()
                for j in mean.indices { sums[i][j] += Double(mean[j]) / Double(filledGroups.count) }
                offset += prompts.count
            }
        }
        return sums
    }
}

/// `a += k kᵀ` for row-major `[m, m]`.
func addOuter(_ a: inout [Double], _ k: [Double], _ m: Int) {
    for i in 0..<m where k[i] != 0 {
        let ki = k[i]
        for j in 0..<m { a[i * m + j] += ki * k[j] }
    }
}

/// Vectors as the columns of a row-major `[m, n]` matrix.
func columns(_ vectors: [[Double]], _ m: Int) -> [Double] {
    let n = vectors.count
    var out = [Double](repeating: 0, count: m * n)
    for (j, v) in vectors.enumerated() { for i in 0..<m { out[i * n + j] = v[i] } }
    return out
}
