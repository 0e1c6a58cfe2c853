import Foundation

/// One sequence to continue.
public struct GenerationJob: Sendable {
    public var context: [Int32]
    public var maxNewTokens: Int
    /// Seed of this sequence's sampler, so that a sample does not depend on what it was batched with.
    public var seed: UInt64
    public init(context: [Int32], maxNewTokens: Int, seed: UInt64 = 0) {
        self.context = context
        self.maxNewTokens = maxNewTokens
        self.seed = seed
    }
}

/// Generation over many sequences at once, for evaluation: all contexts are prefilled together (shared
/// prefixes once), then every unfinished sequence advances one token per batched forward call. Tokens
/// are chosen by the shared `Sampler`, one per sequence, seeded by the job. (`Generator` is the
/// single-sequence streaming loop of the CLI and server.)
public struct BatchGenerator {
    public let model: LanguageModel
    public var batchSize: Int

    public init(model: LanguageModel, batchSize: Int = 8) {
        self.model = model
        self.batchSize = max(1, batchSize)
    }

    /// ROME/EasyEdit `generate_fast`: sample from the k most likely tokens, renormalised (temperature 1).
    public static func topK(_ k: Int) -> SamplingParameters { SamplingParameters(temperature: 1, topK: k) }

    /// Generated ids per job (the context excluded). `sampling.seed` is ignored: each job brings its own.
    /// `stop(job, generated)` is asked after each token; when it says true the sequence ends there (the
    /// token that triggered it is kept).
    public func generate(_ jobs: [GenerationJob], sampling: SamplingParameters = .greedy,
                         stop: (Int, [Int32]) -> Bool = { _, _ in false }) throws -> [[Int32]] {
        try sampling.validate()
        // Jobs with common context prefixes share a batch (and the prefix pass).
        let order = PrefixSharing.order(jobs.map(\.context))
        var out = [[Int32]](repeating: [], count: jobs.count)
        var start = 0
        while start < order.count {
            let chunk = Array(order[start..<min(start + batchSize, order.count)])
            for (i, ids) in zip(chunk, try generateChunk(chunk, jobs, sampling: sampling, stop: stop)) { out[i] = ids }
            start += chunk.count
        }
        return out
    }

    private func generateChunk(_ indices: [Int], _ all: [GenerationJob], sampling: SamplingParameters,
                               stop: (Int, [Int32]) -> Bool) throws -> [[Int32]] {
        let jobs = indices.map { all[$0] }
        for (i, j) in zip(indices, jobs) where j.context.isEmpty {
            throw EngramError.invalidArgument("generation job \(i): the context is empty")
        }
        let vocab = model.config.vocab
        var generated = [[Int32]](repeating: [], count: jobs.count)
        var samplers = jobs.map { job -> Sampler in
            var p = sampling
            p.seed = job.seed
            return Sampler(p)
        }
        let caches = try PrefixSharing.prefill(model, contexts: jobs.map(\.context), keep: 1,
                                               capacity: jobs.map { $0.context.count + $0.maxNewTokens })
        var active = jobs.indices.filter { jobs[$0].maxNewTokens > 0 }
        var inputs = active.map { SequenceInput(tokens: [jobs[$0].context.last!], cache: caches[$0]) }
        while !active.isEmpty {
            let logits = try model.forward(inputs, hooks: nil, logits: .last)
            var next: [Int] = [], nextInputs: [SequenceInput] = []
            for (slot, s) in active.enumerated() {
                let token = samplers[s].sample(logits[slot].pointer, count: vocab)
                generated[s].append(token)
                if generated[s].count >= jobs[s].maxNewTokens || stop(indices[s], generated[s]) { continue }
                next.append(s)
                nextInputs.append(SequenceInput(tokens: [token], cache: caches[s]))
            }
            active = next
            inputs = nextInputs
        }
        return generated
    }
}
