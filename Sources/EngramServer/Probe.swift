import Engram
import Foundation

/// A parsed `/v1/probe` request: how likely is each candidate continuation of a prompt?
struct ProbeRequest {
    var prompt: String
    var candidates: [String]
    var topK: Int
    var compareUnedited: Bool

    static func parse(_ data: Data, limits: ServerLimits) throws -> ProbeRequest {
        let r = try FieldReader.body(data)
        let prompt = try r.requiredString("prompt")
        let candidates = try r.stringArray("candidates", maxCount: limits.maxCandidates) ?? []
        if let i = candidates.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw APIError.invalidField("candidates[\(i)]", "must not be empty")
        }
        let topK = try r.int("top_k", in: 0...limits.maxTopK) ?? 10
        let compare = try r.bool("compare_unedited") ?? false
        _ = try r.string("model")
        try r.finish()
        guard !candidates.isEmpty || topK > 0 else { throw APIError.invalidField("candidates", "give candidates, top_k > 0, or both") }
        return ProbeRequest(prompt: prompt, candidates: candidates, topK: topK, compareUnedited: compare)
    }
}

/// The numbers of one probe on one model state.
struct ProbeNumbers: Encodable {
    struct Token: Encodable {
        var id: Int32
        var text: String
        var logprob: Float
    }

    struct Candidate: Encodable {
        var text: String
        /// Its tokens as scored (after the prompt, joined with one space as edit targets are).
        var tokens: [Token]
        /// Sum of the token log-probabilities: log P(candidate | prompt).
        var logprob: Float
        var probability: Float
        /// 1 + the number of vocabulary entries more likely than the candidate's first token.
        var firstTokenRank: Int
        var warning: String?
    }

    struct Next: Encodable {
        var id: Int32
        var text: String
        var logprob: Float
        var probability: Float
    }

    /// The prompt as the model saw it (prompt-side edits included).
    var renderedPrompt: String
    var promptTokens: Int
    var candidates: [Candidate]
    var topK: [Next]
}

struct ProbeResponse: Encodable {
    var object = "probe"
    var model: String
    var prompt: String
    /// With the edits in force.
    var current: ProbeNumbers
    /// With every edit disabled (when asked for).
    var unedited: ProbeNumbers?
    var editsInForce: [String]
    var stateVersion: Int
}

extension ModelState {
    /// One forward pass over the prompt gives the next-token distribution (top-k, first-token ranks and
    /// probabilities); the candidates' later tokens come from one batched pass over copies of its cache.
    /// Beside decoding (`control.runsBesideDecoding`) a probe takes no more tokens than one decoding step
    /// gives prompts (`DecodingSequence.promptPiece`); a heavier one waits for the model alone.
    func probe(_ request: ProbeRequest, edited: Bool, limits: ServerLimits, control: ModelWorker.JobControl? = nil) throws -> ProbeNumbers {
        let rendered = render(request.prompt, edited: edited)
        let contextIDs = tokenizer.encode(rendered, addSpecial: true)
        try checkPromptLength(contextIDs.count, limit: limits.maxPromptTokens, param: "prompt")
        let vocab = model.config.vocab

        var items: [(ScoringItem, String?)] = []
        for (i, candidate) in request.candidates.enumerated() {
            guard let e = TargetEncoding.encode(prompt: rendered, target: candidate, tokenizer: tokenizer), e.item.context == contextIDs else {
                throw APIError.invalidField("candidates[\(i)]", "no tokens of '\(candidate)' are left to score after the prompt")
            }
            guard e.item.target.count <= limits.maxCandidateTokens else {
                throw APIError.invalidField("candidates[\(i)]", "has \(e.item.target.count) tokens, more than the limit of \(limits.maxCandidateTokens)")
            }
            items.append((e.item, e.warning))
        }

        let laterTokens = items.reduce(0) { $0 + $1.0.target.count - 1 }
        if control?.runsBesideDecoding == true && contextIDs.count + laterTokens > DecodingSequence.promptPiece {
            throw ModelWorker.NeedsTheModelAlone()
        }
        let longest = items.map(\.0.target.count).max() ?? 0
        let cache = model.makeCache(capacity: contextIDs.count + longest)
        let last = try model.forward(contextIDs, cache: cache, logits: .last)
        var next = [Float](repeating: 0, count: vocab)
        Kernels.logSoftmax(last.row(0), count: vocab, into: &next)

        // Later target tokens: every candidate longer than one token continues from a copy of the cache.
        let longer = items.indices.filter { items[$0].0.target.count > 1 }
        let inputs = longer.map { SequenceInput(tokens: Array(items[$0].0.target.dropLast()), cache: cache.copy()) }
        let rows = inputs.isEmpty ? [] : try model.forward(inputs, hooks: nil, logits: .all)
        var scratch = [Float](repeating: 0, count: vocab)

        var candidates: [ProbeNumbers.Candidate] = []
        for (i, (item, warning)) in items.enumerated() {
            var logprobs = [next[Int(item.target[0])]]
            if let s = longer.firstIndex(of: i) {
                for j in 1..<item.target.count {
                    Kernels.logSoftmax(rows[s].row(j - 1), count: vocab, into: &scratch)
                    logprobs.append(scratch[Int(item.target[j])])
                }
            }
            let first = next[Int(item.target[0])]
            let rank = 1 + next.reduce(0) { $0 + ($1 > first ? 1 : 0) }
            let sum = logprobs.reduce(0, +)
            candidates.append(.init(
                text: request.candidates[i],
                tokens: zip(item.target, logprobs).map { .init(id: $0, text: tokenizer.decode([$0]), logprob: $1) },
                logprob: sum, probability: expf(sum), firstTokenRank: rank, warning: warning))
        }

        let top = Self.topIndices(next, k: request.topK).map { id in
            ProbeNumbers.Next(id: Int32(id), text: tokenizer.decode([Int32(id)]), logprob: next[id], probability: expf(next[id]))
        }
        return ProbeNumbers(renderedPrompt: rendered, promptTokens: contextIDs.count, candidates: candidates, topK: top)
    }

    /// Indices of the k largest values, largest first (lower index first on ties).
    static func topIndices(_ values: [Float], k: Int) -> [Int] {
        guard k > 0 else { return [] }
        var best: [Int] = []
        for i in values.indices {
            if best.count == k, let lastBest = best.last, values[i] <= values[lastBest] { continue }
            let at = best.firstIndex { values[i] > values[$0] } ?? best.count
            best.insert(i, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}

// MARK: - Causal tracing

struct TraceRequest {
    var prompt: String
    var subject: String
    var target: String?
    var options: CausalTrace.Options

    static func parse(_ data: Data, limits: ServerLimits, layers: Int) throws -> TraceRequest {
        let r = try FieldReader.body(data)
        let prompt = try r.requiredString("prompt")
        let subject = try r.requiredString("subject")
        guard SubjectLocator.byteRange(of: subject, in: prompt) != nil else {
            throw APIError.invalidField("subject", "'\(subject)' does not occur in the prompt")
        }
        let target = try r.string("target")
        if let target, target.trimmingCharacters(in: .whitespaces).isEmpty { throw APIError.invalidField("target", "must not be empty") }
        var options = CausalTrace.Options()
        options.samples = try r.int("samples", in: 1...limits.maxTraceSamples) ?? min(3, limits.maxTraceSamples)
        if let noise = try r.double("noise", in: 0...1000) {
            guard noise > 0 else { throw APIError.invalidField("noise", "must be greater than 0") }
            options.noise = Float(noise)
        }
        options.window = try r.int("window", in: 1...max(1, layers)) ?? min(10, layers)
        if let seed = try r.uint64("seed") { options.seed = seed }
        if let kinds = try r.stringArray("kinds", maxCount: 3) {
            options.kinds = try kinds.enumerated().map { i, k in
                guard let kind = CausalTrace.Kind(rawValue: k) else {
                    throw APIError.invalidField("kinds[\(i)]", "expected residual, mlp or attention, got '\(k)'")
                }
                return kind
            }
            guard !options.kinds.isEmpty else { throw APIError.invalidField("kinds", "must name at least one kind") }
        }
        _ = try r.string("model")
        try r.finish()
        return TraceRequest(prompt: prompt, subject: subject, target: target, options: options)
    }
}

struct TraceResponse: Encodable {
    var object = "trace"
    var model: String
    var trace: CausalTrace.Result
    var editsInForce: [String]
    var stateVersion: Int
    /// Tracing runs on the weights in force; prompt-side (IKE) edits are not added to the prompt,
    /// which would move the subject.
    var promptSideEditsApplied = false
}

extension ModelState {
    func trace(_ request: TraceRequest, limits: ServerLimits, control: ModelWorker.JobControl) throws -> CausalTrace.Result {
        let count = tokenizer.encode(request.prompt, addSpecial: true).count
        guard count <= limits.maxTracePromptTokens else {
            throw APIError(.badRequest, "the prompt has \(count) tokens; tracing allows at most \(limits.maxTracePromptTokens)",
                           param: "prompt", code: "context_length_exceeded")
        }
        var options = request.options
        options.isCancelled = { control.isCancelled }
        do {
            return try CausalTrace(model: model, tokenizer: tokenizer)
                .run(prompt: request.prompt, subject: request.subject, target: request.target, options: options)
        } catch let error as EngramError {
            throw APIError(.badRequest, error.description, param: "subject", code: "invalid_trace")
        }
    }
}
