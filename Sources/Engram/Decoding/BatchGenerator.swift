import Foundation

/// How the next token is chosen.
public enum Decoding: Equatable, Sendable {
    /// Argmax (first index on ties).
    case greedy
    /// ROME/EasyEdit `generate_fast`: sample from the k most likely tokens, renormalised.
    case topK(Int)
}

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

/// Batched autoregressive generation over `LanguageModel.forward`: all contexts are prefilled in one
/// call, then every unfinished sequence advances one token per call.
public struct BatchGenerator {
    public let model: LanguageModel
    public var batchSize: Int

    public init(model: LanguageModel, batchSize: Int = 8) {
        self.model = model
        self.batchSize = max(1, batchSize)
    }

    /// Generated ids per job (the context excluded). `stop(job, generated)` is asked after each token;
    /// when it says true the sequence ends there (the token that triggered it is kept).
    public func generate(_ jobs: [GenerationJob], decoding: Decoding,
                         stop: (Int, [Int32]) -> Bool = { _, _ in false }) throws -> [[Int32]] {
        var out: [[Int32]] = []
        var start = 0
        while start < jobs.count {
            let end = min(start + batchSize, jobs.count)
            out += try generateChunk(Array(jobs[start..<end]), offset: start, decoding: decoding, stop: stop)
            start = end
        }
        return out
    }

    private func generateChunk(_ jobs: [GenerationJob], offset: Int, decoding: Decoding,
                               stop: (Int, [Int32]) -> Bool) throws -> [[Int32]] {
        for (i, j) in jobs.enumerated() where j.context.isEmpty {
            throw EngramError.invalidArgument("generation job \(offset + i): the context is empty")
        }
        let vocab = model.config.vocab
        var generated = [[Int32]](repeating: [], count: jobs.count)
        var rngs = jobs.map { SplitMix64(seed: $0.seed) }
        let caches = jobs.map { model.makeCache(capacity: $0.context.count + $0.maxNewTokens) }
        var active = jobs.indices.filter { jobs[$0].maxNewTokens > 0 }
        var inputs = active.map { SequenceInput(tokens: jobs[$0].context, cache: caches[$0]) }
        while !active.isEmpty {
            let logits = try model.forward(inputs, hooks: nil, logits: .last)
            var next: [Int] = [], nextInputs: [SequenceInput] = []
            for (slot, s) in active.enumerated() {
                let token = Int32(BatchGenerator.choose(logits[slot].pointer, count: vocab, decoding: decoding, rng: &rngs[s]))
                generated[s].append(token)
                if generated[s].count >= jobs[s].maxNewTokens || stop(offset + s, generated[s]) { continue }
                next.append(s)
                nextInputs.append(SequenceInput(tokens: [token], cache: caches[s]))
            }
            active = next
            inputs = nextInputs
        }
        return generated
    }

    static func choose(_ logits: UnsafePointer<Float>, count: Int, decoding: Decoding, rng: inout SplitMix64) -> Int {
        switch decoding {
        case .greedy: return TeacherForcing.argmax(logits, count: count)
        case let .topK(k):
            // The k largest logits, ties broken by the lower index, then softmax over them in double.
            var top: [(Float, Int)] = []
            let k = max(1, min(k, count))
            for i in 0..<count {
                let v = logits[i]
                if top.count < k {
                    top.append((v, i))
                    top.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
                } else if v > top[k - 1].0 {
                    top[k - 1] = (v, i)
                    top.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
                }
            }
            let m = Double(top[0].0)
            let weights = top.map { exp(Double($0.0) - m) }
            var u = rng.nextUnit() * weights.reduce(0, +)
            for (w, t) in zip(weights, top) {
                if u < w { return t.1 }
                u -= w
            }
            return top[top.count - 1].1
        }
    }
}
