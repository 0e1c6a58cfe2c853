import Foundation

/// Causal tracing (editing-methods.md §1): corrupt the subject's token embeddings with Gaussian
/// noise, then restore one clean hidden state at a time and measure how much of the answer's
/// probability comes back. The grid says which (token, layer) states carry the fact.
public struct CausalTrace {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// Restore the residual stream after block l.
        case residual
        /// Restore the MLP outputs of a window of layers around l.
        case mlp
        /// Restore the attention outputs of a window of layers around l.
        case attention
    }

    public struct Options: Sendable {
        /// Noised copies of the prompt (the reference uses 10).
        public var samples = 10
        /// Noise standard deviation; nil = 3 × the standard deviation of the token-embedding table.
        public var noise: Float?
        /// Layers restored together for the mlp and attention kinds.
        public var window = 10
        public var seed: UInt64 = 1
        public var kinds: [Kind] = Kind.allCases
        /// Polled before every restoration run; when it returns true the trace stops by throwing
        /// `CancellationError` (a server's time limit).
        public var isCancelled: (@Sendable () -> Bool)?
        public init() {}
    }

    public struct Grid: Codable, Sendable {
        public let kind: Kind
        /// `scores[t][l]` = mean P(answer) with the state at token t, layer l restored.
        public let scores: [[Float]]
    }

    public struct Result: Codable, Sendable {
        public let prompt: String
        public let subject: String
        public let tokens: [String]
        public let tokenIds: [Int32]
        /// Subject tokens `[start, end)`.
        public let subjectRange: [Int]
        public let answer: String
        public let answerId: Int32
        public let cleanProbability: Float
        public let corruptedProbability: Float
        public let noise: Float
        public let samples: Int
        public let window: Int
        public let grids: [Grid]
    }

    public let model: LanguageModel
    public let tokenizer: Tokenizer

    /// The longest prompt `run` traces.
    public static let maxPromptTokens = 256

    public init(model: LanguageModel, tokenizer: Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Traces `prompt`; the answer is the model's own top token unless `target` is given (then its
    /// first token, with a leading space as continuations have).
    public func run(prompt: String, subject: String, target: String? = nil, options: Options = Options(),
                    progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        // Each sample holds a KV cache for the whole prompt: the bound keeps a typo from exhausting memory.
        guard (1...1000).contains(options.samples) else { throw EngramError.invalidArgument("samples \(options.samples) must be in 1...1000") }
        guard options.window >= 1 else { throw EngramError.invalidArgument("window \(options.window) must be at least 1") }
        guard let subjectBytes = SubjectLocator.byteRange(of: subject, in: prompt) else {
            throw EngramError.invalidArgument("subject '\(subject)' does not occur in the prompt '\(prompt)'")
        }
        let spans = tokenizer.encodeWithOffsets(prompt, addSpecial: true, parseSpecial: false)
        let ids = spans.map(\.id)
        guard let range = SubjectLocator.tokenRange(spans: spans, bytes: subjectBytes) else {
            throw EngramError.invalidArgument("no token of the prompt covers the subject '\(subject)'")
        }
        let c = model.config, L = c.layers, T = ids.count, d = c.hidden
        // One forward pass per token from the subject on, per layer and per kind, each over the rest of the
        // prompt: the work grows with the square of its length (5000 tokens would take days).
        guard T <= Self.maxPromptTokens else {
            throw EngramError.invalidArgument("the prompt has \(T) tokens; tracing allows at most \(Self.maxPromptTokens) "
                + "(a pass per token, layer and kind, each over the rest of the prompt)")
        }

        // Clean run: every state we may restore, and the answer.
        var clean: [HookSite: [Float]] = [:] // [T, width] per site
        var hooks = Hooks()
        for l in 0..<L {
            for site in [HookSite.residual(l), .mlpOutput(l), .attentionOutput(l)] {
                hooks.on(site) { rows in clean[site] = Array(UnsafeBufferPointer(start: rows.pointer, count: rows.rows * rows.width)) }
            }
        }
        let cleanLogits = try model.forward(ids, cache: model.makeCache(capacity: T), hooks: hooks)
        let answerId: Int32
        if let target {
            let t = target.hasPrefix(" ") ? target : " " + target
            guard let first = tokenizer.encode(t).first else { throw EngramError.invalidArgument("target '\(target)' has no tokens") }
            answerId = first
        } else {
            answerId = Sampler.argmax(cleanLogits.pointer, count: cleanLogits.cols)
        }
        let pClean = Self.probability(cleanLogits, row: 0, token: answerId)

        // Fixed noise for every sample at the subject positions.
        let sigma = options.noise ?? 3 * embeddingStd()
        var rng = SplitMix64(seed: options.seed)
        let noise: [[Float]] = (0..<options.samples).map { _ in
            (0..<(range.count * d)).map { _ in sigma * Self.gaussian(&rng) }
        }
        var noiseHooks = Hooks()
        noiseHooks.on(.embedding) { rows in
            for r in 0..<rows.rows where range.contains(rows.position[r]) {
                let z = noise[rows.sequence[r]], offset = (rows.position[r] - range.lowerBound) * d
                for i in 0..<d { rows.pointer[r * d + i] += z[offset + i] }
            }
        }

        // Corrupted run of the whole prompt; its caches serve as the shared prefix of every restoration
        // (states before token t are not affected by restoring token t).
        let corruptedCaches = (0..<options.samples).map { _ in model.makeCache(capacity: T) }
        let corrupted = try model.forward(corruptedCaches.map { SequenceInput(tokens: ids, cache: $0) }, hooks: noiseHooks, logits: .last)
        let pLow = corrupted.map { Self.probability($0, row: 0, token: answerId) }.reduce(0, +) / Float(options.samples)

        var grids: [Grid] = []
        let total = options.kinds.count * (T - range.lowerBound) * L
        var done = 0
        for kind in options.kinds {
            var scores = [[Float]](repeating: [Float](repeating: pLow, count: L), count: T)
            // Tokens before the subject are clean already: restoring them changes nothing.
            for t in range.lowerBound..<T {
                for l in 0..<L {
                    if let isCancelled = options.isCancelled, isCancelled() { throw CancellationError() }
                    let sites: [HookSite]
                    switch kind {
                    case .residual: sites = [.residual(l)]
                    case .mlp: sites = Self.window(l, options.window, L).map { HookSite.mlpOutput($0) }
                    case .attention: sites = Self.window(l, options.window, L).map { HookSite.attentionOutput($0) }
                    }
                    var h = noiseHooks
                    for site in sites {
                        let cleanRow = Array(clean[site]![(t * d)..<((t + 1) * d)])
                        h.on(site) { rows in
                            for r in 0..<rows.rows where rows.position[r] == t {
                                for i in 0..<d { rows.pointer[r * d + i] = cleanRow[i] }
                            }
                        }
                    }
                    let inputs = corruptedCaches.map { cache -> SequenceInput in
                        let branch = cache.copy()
                        branch.truncate(to: t)
                        return SequenceInput(tokens: Array(ids[t...]), cache: branch)
                    }
                    let logits = try model.forward(inputs, hooks: h, logits: .last)
                    scores[t][l] = logits.map { Self.probability($0, row: 0, token: answerId) }.reduce(0, +) / Float(options.samples)
                    done += 1
                    progress?(done, total)
                }
            }
            grids.append(Grid(kind: kind, scores: scores))
        }
        return Result(prompt: prompt, subject: subject, tokens: ids.map { tokenizer.decode([$0]) }, tokenIds: ids,
                      subjectRange: [range.lowerBound, range.upperBound], answer: tokenizer.decode([answerId]), answerId: answerId,
                      cleanProbability: pClean, corruptedProbability: pLow, noise: sigma, samples: options.samples,
                      window: options.window, grids: grids)
    }

    /// Layers `[max(0, l − w/2), min(L, l + ⌈w/2⌉))`, as the reference restores for a window.
    static func window(_ l: Int, _ w: Int, _ layers: Int) -> [Int] {
        let w = min(w, 2 * layers) // any wider window covers every layer too; the cap keeps w + 1 from overflowing
        return Array(max(0, l - w / 2)..<min(layers, l + (w + 1) / 2))
    }

    static func probability(_ logits: Matrix, row: Int, token: Int32) -> Float {
        var logProbs = [Float](repeating: 0, count: logits.cols)
        Kernels.logSoftmax(logits.row(row), count: logits.cols, into: &logProbs)
        return expf(logProbs[Int(token)])
    }

    /// Standard deviation of the entries of the token-embedding table (stands in for the reference's
    /// statistic over the token embeddings of a data set's subjects). Read from the table itself: the
    /// embedding hook would add GPT-2's position embedding, which the reference does not measure.
    func embeddingStd() -> Float {
        let table = model.tokenEmbedding, d = table.cols
        var sum = 0.0, sumSquares = 0.0, count = 0
        // A spread of the vocabulary, every step-th row (copied row by row: a table kept as quantized
        // blocks is not dequantized whole for this).
        let p = FloatBuffer(count: d, zeroed: false)
        for row in stride(from: 0, to: table.rows, by: max(1, table.rows / 4096)) {
            table.copyRow(row, into: p.pointer)
            for i in 0..<d { let v = Double(p[i]); sum += v; sumSquares += v * v }
            count += d
        }
        let mean = sum / Double(max(count, 1))
        return Float((sumSquares / Double(max(count, 1)) - mean * mean).squareRoot())
    }

    /// Box–Muller standard normal.
    static func gaussian(_ rng: inout SplitMix64) -> Float {
        let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

/// Finding a subject inside a prompt, in bytes and in tokens.
public enum SubjectLocator {
    /// UTF-8 byte range of the first occurrence of `subject` in `text`.
    public static func byteRange(of subject: String, in text: String) -> Range<Int>? {
        guard !subject.isEmpty, let r = text.range(of: subject) else { return nil }
        let start = text.utf8.distance(from: text.utf8.startIndex, to: r.lowerBound)
        return start..<(start + subject.utf8.count)
    }

    /// Tokens whose byte spans overlap `bytes`: `[first, last + 1)`. Robust to BOS and to merges
    /// across the subject's edges, unlike tokenizing the pieces separately.
    public static func tokenRange(spans: [TokenSpan], bytes: Range<Int>) -> Range<Int>? {
        let hits = spans.indices.filter { spans[$0].bytes.overlaps(bytes) }
        guard let first = hits.first, let last = hits.last else { return nil }
        return first..<(last + 1)
    }
}
