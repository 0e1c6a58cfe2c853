import Foundation

/// What ROME, MEMIT and AlphaEdit share (editing-methods.md §2.1–2.3, §3): context templates, the
/// subject's last token in a filled prompt, the MLP keys there, and the `v*`/`z` value search.
public enum LocateThenEdit {
    /// One generated-prefix group: `count` samples of at most `length` tokens (seed tokens included).
    public struct TemplateGroup: Codable, Equatable, Sendable {
        public var length: Int
        public var count: Int
        public init(length: Int, count: Int) {
            self.length = length
            self.count = count
        }

        /// Templates are short prefixes sampled token by token: the bounds keep a typo (a length of
        /// 100000) from becoming hours of sampling or an overflowing cache size.
        static let maxLength = 512, maxCount = 500

        /// `context_template_length_params`: `[[length, count], …]`, each count a positive multiple of
        /// the five seed words (count / 5 samples per seed, as in the reference).
        static func validate(_ params: [[Int]]) throws {
            for (i, p) in params.enumerated() {
                guard p.count == 2, (1...maxLength).contains(p[0]), (1...maxCount).contains(p[1]), p[1] % LocateThenEdit.seeds.count == 0 else {
                    throw EngramError.invalidArgument("context_template_length_params[\(i)] is \(p): it must be [length, count] with "
                        + "length in 1...\(maxLength) and count a multiple of \(LocateThenEdit.seeds.count) in 5...\(maxCount) (one share per seed word)")
                }
            }
        }
    }

    static let seeds = ["The", "Therefore", "Because", "I", "You"]

    /// The value search's keys, shared by ROME's and MEMIT's files: a step count outside this range or a
    /// learning rate that is not positive is a mistake in the file, not a setting.
    static func validateValueSearch(_ keys: ValueSearchKeys) throws {
        guard (1...10_000).contains(keys.v_num_grad_steps) else {
            throw EngramError.invalidArgument("v_num_grad_steps \(keys.v_num_grad_steps) must be in 1...10000")
        }
        guard keys.v_lr > 0, keys.v_weight_decay >= 0, keys.kl_factor >= 0, keys.clamp_norm_factor > 0 else {
            throw EngramError.invalidArgument("v_lr (\(keys.v_lr)) and clamp_norm_factor (\(keys.clamp_norm_factor)) must be positive, "
                + "v_weight_decay (\(keys.v_weight_decay)) and kl_factor (\(keys.kl_factor)) not negative")
        }
    }

    /// Conflicting targets for one prompt and subject in one call cannot both be written: MEMIT would
    /// average them, ROME would keep the later one and report both as done.
    static func refuseConflicts(_ requests: [EditRequest]) throws {
        var seen: [String: String] = [:]
        for r in requests {
            let key = r.prompt + "\u{1F}" + r.subject
            if let t = seen[key], t != r.targetNew {
                throw EngramError.invalidArgument("request \(r.caseID): '\(r.prompt)' is asked to become both '\(t)' and '\(r.targetNew)'")
            }
            seen[key] = r.targetNew
        }
    }

    /// Templates sampled in this process, per model object. The entry holds the model weakly: an
    /// address can be reused by a model loaded later, and a freed model's entry must not answer for it.
    struct CachedTemplates {
        weak var model: LanguageModel?
        var templates: [[String]]
    }
    nonisolated(unsafe) static var templateCache: [String: CachedTemplates] = [:]
    static let cacheLock = NSLock()

    /// Template groups: `[["{}"], group 1, group 2, …]`. Each generated template is
    /// `"<text>. {}"`, sampled from the unedited model with top-5 sampling from the seed words
    /// (EasyEdit's rule), braces removed. Cached per model and parameters, since editing must not
    /// resample them (the edit log stores them for reproduction): in memory, and in `store` when given.
    public static func contextTemplates(model: LanguageModel, tokenizer: Tokenizer, groups: [TemplateGroup], seed: UInt64 = 0,
                                        store: TemplateStore? = nil) throws -> [[String]] {
        try TemplateGroup.validate(groups.map { [$0.length, $0.count] }) // a group of fewer than 5 would come back empty
        if let longest = groups.map(\.length).max(), longest >= model.config.contextLength {
            throw EngramError.invalidArgument("context_template_length_params: templates of \(longest) tokens do not fit the model's context of \(model.config.contextLength)")
        }
        let key = "\(ObjectIdentifier(model).hashValue)|\(groups.map { "\($0.length)x\($0.count)" })|\(seed)"
        cacheLock.lock()
        if let cached = templateCache[key], cached.model === model { cacheLock.unlock(); return cached.templates }
        cacheLock.unlock()
        let result: [[String]]
        if let stored = store?.load(groups: groups, seed: seed) {
            result = stored
        } else {
            result = try sampleTemplates(model: model, tokenizer: tokenizer, groups: groups, seed: seed)
            try store?.save(result, groups: groups, seed: seed)
        }
        cacheLock.lock()
        templateCache[key] = CachedTemplates(model: model, templates: result)
        cacheLock.unlock()
        return result
    }

    private static func sampleTemplates(model: LanguageModel, tokenizer: Tokenizer, groups: [TemplateGroup], seed: UInt64) throws -> [[String]] {
        var result: [[String]] = [["{}"]]
        for (g, group) in groups.enumerated() {
            let perSeed = group.count / seeds.count
            var jobs: [GenerationJob] = []
            for (s, word) in seeds.enumerated() {
                let context = tokenizer.encode(word, addSpecial: true)
                for i in 0..<perSeed {
                    jobs.append(GenerationJob(context: context, maxNewTokens: max(0, group.length - context.count),
                                              seed: SplitMix64.mix([seed, UInt64(g), UInt64(s), UInt64(i)])))
                }
            }
            let generated = try BatchGenerator(model: model, batchSize: 16).generate(jobs, sampling: BatchGenerator.topK(5))
            result.append(zip(jobs, generated).map { job, ids in
                let text = tokenizer.decode(job.context + ids, skipSpecial: true)
                    .replacingOccurrences(of: "{", with: " ").replacingOccurrences(of: "}", with: " ")
                return text + ". {}"
            })
        }
        return result
    }

    /// A template filled with the request's prompt, tokenized, with the subject's last token located
    /// through byte offsets (robust to BOS and to merges at the subject's edges, §2.2).
    public struct FilledPrompt: Sendable {
        public let text: String
        public let tokens: [Int32]
        public let lookup: Int
    }

    public static func fill(_ template: String, request: EditRequest, tokenizer: Tokenizer, suffix: String = "") throws -> FilledPrompt {
        guard let placeholder = template.range(of: "{}") else {
            throw EngramError.invalidArgument("context template '\(template)' has no {} placeholder")
        }
        let prefix = String(template[..<placeholder.lowerBound])
        let text = prefix + request.prompt + suffix
        guard let subjectRange = request.subjectRange else {
            throw EngramError.invalidArgument("request \(request.caseID): subject '\(request.subject)' is not in the prompt '\(request.prompt)'")
        }
        let start = prefix.utf8.count + request.prompt.utf8.distance(from: request.prompt.startIndex, to: subjectRange.lowerBound)
        let bytes = start..<(start + request.subject.utf8.count)
        let spans = tokenizer.encodeWithOffsets(text, addSpecial: true, parseSpecial: false)
        guard let range = SubjectLocator.tokenRange(spans: spans, bytes: bytes) else {
            throw EngramError.invalidArgument("request \(request.caseID): no token covers the subject '\(request.subject)'")
        }
        return FilledPrompt(text: text, tokens: spans.map(\.id), lookup: range.upperBound - 1)
    }

    /// The target's token ids, with the leading space that continuations carry (§2 preprocessing).
    public static func targetTokens(_ target: String, tokenizer: Tokenizer) throws -> [Int32] {
        let text = target.hasPrefix(" ") ? target : " " + target
        let ids = tokenizer.encode(text)
        guard !ids.isEmpty else { throw EngramError.invalidArgument("target '\(target)' has no tokens") }
        return ids
    }

    /// Sequences per forward pass when reading keys and states. A batch of MEMIT requests has ~11 prompts
    /// each, and every sequence of a pass holds a KV cache for all layers: 550 prompts in one pass took
    /// ~0.5 GB, the largest part of a 50-request edit's peak memory.
    public static let lookupChunk = 64

    /// The hidden states at each site, at each prompt's lookup position, in order: forward passes of at
    /// most `lookupChunk` sequences that stop after the last site the pass reaches.
    static func lookupRows(model: LanguageModel, prompts: [FilledPrompt], sites: [HookSite]) throws -> [[[Float]]] {
        var out = [[[Float]]](repeating: [], count: sites.count)
        for start in stride(from: 0, to: prompts.count, by: lookupChunk) {
            let chunk = prompts[start..<min(start + lookupChunk, prompts.count)]
            var hooks = Hooks()
            hooks.stopAfter = sites.max()
            for (j, site) in sites.enumerated() {
                hooks.on(site) { rows in
                    out[j] += chunk.enumerated().map { s, p in rows.values(row: rows.rowIndex(sequence: s, position: p.lookup)!) }
                }
            }
            _ = try model.forward(chunk.map { SequenceInput(tokens: $0.tokens, cache: model.makeCache(capacity: $0.tokens.count)) },
                                  hooks: hooks, logits: .none)
        }
        return out
    }

    /// Down-projection inputs (keys, width m) at each prompt's lookup position, at one or more layers.
    public static func keys(model: LanguageModel, prompts: [FilledPrompt], layers: [Int]) throws -> [Int: [[Float]]] {
        let rows = try lookupRows(model: model, prompts: prompts, sites: layers.map { .mlpKey($0) })
        return Dictionary(uniqueKeysWithValues: zip(layers, rows))
    }

    /// The hidden state at a hook site at each prompt's lookup (e.g. the block output for MEMIT's `cur_Z`).
    public static func states(model: LanguageModel, prompts: [FilledPrompt], site: HookSite) throws -> [[Float]] {
        try lookupRows(model: model, prompts: prompts, sites: [site])[0]
    }

    /// One request's value-search prompts: every template filled with the prompt, followed by the
    /// target; the KL prompt is "{subject} is a".
    static func searchGroup(tokenizer: Tokenizer, request: EditRequest, templates: [String], context: Int) throws -> ValueSearchGroup {
        let target = try targetTokens(request.targetNew, tokenizer: tokenizer)
        let rewriting = try templates.map { template -> ValueSearchPrompt in
            let filled = try fill(template, request: request, tokenizer: tokenizer)
            // The pass feeds the prompt and all target tokens but the last.
            guard filled.tokens.count + target.count - 1 <= context else {
                throw EngramError.invalidArgument("request \(request.caseID): the value search's prompt '\(template)' filled with the prompt and target "
                    + "takes \(filled.tokens.count + target.count - 1) positions, more than the model's context of \(context)")
            }
            return ValueSearchPrompt(prompt: filled.tokens, lookup: filled.lookup, target: target)
        }
        let essenceRequest = EditRequest(caseID: request.caseID, prompt: request.subject + " is a", subject: request.subject, targetNew: request.targetNew)
        let essence = try fill("{}", request: essenceRequest, tokenizer: tokenizer)
        // A request's rows are searched together, whatever the batch; the tape holds ~0.5 MB per row and the
        // head's probabilities a vocabulary per target row: a 3000-token target took tens of GB.
        let rows = rewriting.reduce(essence.tokens.count) { $0 + $1.tokens.count }
        guard rows <= maxRequestSearchRows else {
            throw EngramError.invalidArgument("request \(request.caseID): the value search would stack \(rows) positions (the prompt and its "
                + "\(target.count)-token target after each of \(templates.count) context templates), more than \(maxRequestSearchRows): "
                + "shorten the prompt or target_new")
        }
        return ValueSearchGroup(rewriting: rewriting, essence: [ValueSearchPrompt(tokens: essence.tokens, lookup: essence.lookup)])
    }

    /// Positions one request's value search may take (its prompts filled into every template, with the
    /// target): CounterFact's take about 500 with ROME's 21 templates.
    public static let maxRequestSearchRows = 2048

    /// Rows a batched value search may stack: bounds the tape's memory (≈ 0.5 MB per row on a 30-layer
    /// 135M model) while keeping its matrix products large enough to run near full speed.
    static let searchRowBudget = 384

    /// `v*` (ROME, site `.mlpOutput(l)`) or `z` (MEMIT/AlphaEdit, site `.residual(l)`) for each request,
    /// all on the model as it is now. Values found in `cache` are reused; the others are searched
    /// together in batches of at most `searchRowBudget` rows and stored there.
    public static func targetValues(model: LanguageModel, tokenizer: Tokenizer, requests: [EditRequest], templates: [String],
                                    site: HookSite, hyperParameters hp: ValueSearchHyperparameters,
                                    cache: ValueCache? = nil) throws -> [[Float]] {
        var values = [[Float]?](repeating: nil, count: requests.count)
        var keys: [[String: String]] = []
        if let cache {
            let weights = ValueCache.weightsFingerprint(model)
            keys = requests.map { ValueCache.describe(modelID: cache.modelID, weights: weights, site: site, hp: hp, templates: templates, request: $0) }
            for i in requests.indices { values[i] = cache.lookup(keys[i], width: model.config.hidden) }
        }
        var pending: [(index: Int, group: ValueSearchGroup, rows: Int)] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            let results = try ValueSearch(model: model, site: site, groups: pending.map(\.group)).runAll(hp)
            for (p, result) in zip(pending, results) {
                values[p.index] = result.value
                if let cache { try cache.store(result.value, for: keys[p.index]) }
            }
            pending = []
        }
        for i in requests.indices where values[i] == nil {
            let group = try searchGroup(tokenizer: tokenizer, request: requests[i], templates: templates, context: model.config.contextLength)
            let rows = group.rows
            if pending.reduce(0, { $0 + $1.rows }) + rows > searchRowBudget { try flush() }
            pending.append((i, group, rows))
        }
        try flush()
        return values.map { $0! }
    }
}

extension Array where Element == [Float] {
    /// Element-wise mean of equal-length vectors.
    func mean() -> [Float] {
        guard let first = first else { return [] }
        var sum = [Double](repeating: 0, count: first.count)
        for v in self { for i in v.indices { sum[i] += Double(v[i]) } }
        return sum.map { Float($0 / Double(count)) }
    }
}
