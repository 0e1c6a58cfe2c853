import Foundation
import XCTest
import Engram

/// Tiny random models built in memory: a `Checkpoint` of owned float tensors under canonical names,
/// built by `ModelLoader.build` exactly like a file-based checkpoint.
enum InMemoryTinyModels {
    /// LLaMA with grouped-query attention (4 query heads over 2 K/V heads), tied embeddings.
    static let llama = ModelConfig(architecture: .llama, layers: 3, hidden: 16, intermediate: 24, heads: 4, kvHeads: 2,
                                   vocab: 40, contextLength: 64, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true)
    /// Qwen2-style: Q/K/V biases, NeoX RoPE, separate output head, GQA 4/1.
    static let qwen2 = ModelConfig(architecture: .qwen2, layers: 3, hidden: 16, intermediate: 20, heads: 4, kvHeads: 1,
                                   vocab: 36, contextLength: 64, ropeTheta: 1_000_000, normEps: 1e-6, tiedEmbeddings: false)
    /// GPT-2: LayerNorm, fused QKV, GELU, biases everywhere, learned positions, tied head.
    static let gpt2 = ModelConfig(architecture: .gpt2, layers: 3, hidden: 16, intermediate: 32, heads: 2, kvHeads: 2,
                                  vocab: 38, contextLength: 32, normEps: 1e-5, tiedEmbeddings: true)

    static let all: [(String, ModelConfig)] = [("llama", llama), ("qwen2", qwen2), ("gpt2", gpt2)]

    /// Canonical tensor names and shapes (outermost first) for a config.
    static func shapes(_ c: ModelConfig) -> [(String, [Int])] {
        let d = c.hidden, m = c.intermediate
        var out: [(String, [Int])] = [("token_embd.weight", [c.vocab, d])]
        if c.architecture == .gpt2 { out.append(("position_embd.weight", [c.contextLength, d])) }
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            switch c.architecture {
            case .llama, .qwen2:
                out += [(p + "attn_norm.weight", [d]), (p + "attn_q.weight", [c.qDim, d]), (p + "attn_k.weight", [c.kvDim, d]),
                        (p + "attn_v.weight", [c.kvDim, d]), (p + "attn_output.weight", [d, c.qDim]),
                        (p + "ffn_norm.weight", [d]), (p + "ffn_gate.weight", [m, d]), (p + "ffn_up.weight", [m, d]),
                        (p + "ffn_down.weight", [d, m])]
                if c.architecture == .qwen2 {
                    out += [(p + "attn_q.bias", [c.qDim]), (p + "attn_k.bias", [c.kvDim]), (p + "attn_v.bias", [c.kvDim])]
                }
            case .gpt2:
                out += [(p + "attn_norm.weight", [d]), (p + "attn_norm.bias", [d]),
                        (p + "attn_qkv.weight", [3 * d, d]), (p + "attn_qkv.bias", [3 * d]),
                        (p + "attn_output.weight", [d, d]), (p + "attn_output.bias", [d]),
                        (p + "ffn_norm.weight", [d]), (p + "ffn_norm.bias", [d]),
                        (p + "ffn_up.weight", [m, d]), (p + "ffn_up.bias", [m]),
                        (p + "ffn_down.weight", [d, m]), (p + "ffn_down.bias", [d])]
            }
        }
        out.append(("output_norm.weight", [d]))
        if c.architecture == .gpt2 { out.append(("output_norm.bias", [d])) }
        if !c.tiedEmbeddings { out.append(("output.weight", [c.vocab, d])) }
        return out
    }

    /// Random weights: matrices uniform with scale `1.5/√fan_in` (so activations stay O(1) and the
    /// non-linearities are exercised), norm weights around 1, biases small, embeddings O(1).
    static func checkpoint(_ c: ModelConfig, seed: UInt64) -> Checkpoint {
        var metadata = Metadata(file: "tiny-\(c.architecture.rawValue)")
        for (k, v) in c.ggufMetadata() { metadata[k] = v }
        let ck = Checkpoint(location: "tiny-\(c.architecture.rawValue)", format: .gguf, metadata: metadata)
        var rng = SeededRandom(seed: seed)
        for (name, shape) in shapes(c) {
            let count = shape.reduce(1, *)
            let buffer = FloatBuffer(count: count, zeroed: false)
            let scale: Float
            var offset: Float = 0
            if name.hasSuffix("norm.weight") { scale = 0.2; offset = 1 }
            else if name.hasSuffix(".bias") { scale = 0.2 }
            else if name.hasPrefix("token_embd") || name.hasPrefix("position_embd") { scale = 1 }
            else { scale = 1.5 / Float(shape.last!).squareRoot() }
            for i in 0..<count { buffer[i] = offset + scale * rng.symmetric() }
            ck.add(StoredTensor(name: name, dtype: .f32, shape: shape, data: UnsafeRawPointer(buffer.pointer),
                                byteCount: count * 4, file: ck.location, owner: buffer))
        }
        return ck
    }

    static func model(_ c: ModelConfig, seed: UInt64 = 7) throws -> LanguageModel {
        try ModelLoader.build(checkpoint(c, seed: seed))
    }

    static func randomTokens(_ n: Int, vocab: Int, rng: inout SeededRandom) -> [Int32] {
        (0..<n).map { _ in Int32(rng.int(below: vocab)) }
    }
}

/// Independent reference maths for the gradient tests: the model's own batched forward with a hook
/// that adds δ, and the losses written out directly in Double.
enum GradientReferenceMaths {
    /// Logits at every position of `tokens`, with `delta` added at `site` at position `lookup`.
    static func logits(_ model: LanguageModel, tokens: [Int32], site: HookSite, lookup: Int, delta: [Float]?) throws -> Matrix {
        var hooks = Hooks()
        if let delta {
            hooks.on(site) { rows in
                if let r = rows.rowIndex(sequence: 0, position: lookup) {
                    for i in 0..<rows.width { rows.row(r)[i] += delta[i] }
                }
            }
        }
        return try model.forward(tokens, cache: model.makeCache(capacity: tokens.count), hooks: hooks, logits: .all)
    }

    static func logSoftmax(_ row: UnsafePointer<Float>, count: Int) -> [Double] {
        let mx = (0..<count).map { Double(row[$0]) }.max()!
        let z = mx + log((0..<count).reduce(0.0) { $0 + exp(Double(row[$1]) - mx) })
        return (0..<count).map { Double(row[$0]) - z }
    }

    /// ROME's objective (spec §2.3) at `delta`.
    static func loss(_ model: LanguageModel, site: HookSite, rewriting: [ValueSearchPrompt], essence: [ValueSearchPrompt],
                     delta: [Float], initial: [[Double]], targetInit: [Float], klFactor: Double, weightDecay: Double) throws -> Double {
        let v = model.config.vocab
        var nll = 0.0
        for p in rewriting {
            let lg = try logits(model, tokens: p.tokens, site: site, lookup: p.lookup, delta: delta)
            var s = 0.0
            for (t, position) in zip(p.targets, p.targetPositions) {
                s += logSoftmax(lg.row(position), count: v)[Int(t)]
            }
            nll -= s / Double(p.targets.count)
        }
        nll /= Double(rewriting.count)
        var kl = 0.0
        for (j, p) in essence.enumerated() {
            let lg = try logits(model, tokens: p.tokens, site: site, lookup: p.lookup, delta: delta)
            let cur = logSoftmax(lg.row(p.lookup), count: v)
            for i in 0..<v { kl += exp(cur[i]) * (cur[i] - initial[j][i]) }
        }
        kl = essence.isEmpty ? 0 : klFactor * kl / Double(essence.count)
        let dn = delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let tn = targetInit.reduce(0.0) { $0 + Double($1) * Double($1) }
        return nll + kl + weightDecay * dn / tn
    }

    /// P_init of each essence prompt (δ = 0).
    static func initial(_ model: LanguageModel, essence: [ValueSearchPrompt]) throws -> [[Double]] {
        try essence.map { p in
            let lg = try logits(model, tokens: p.tokens, site: .embedding, lookup: p.lookup, delta: nil)
            return logSoftmax(lg.row(p.lookup), count: model.config.vocab)
        }
    }

    /// Teacher-forced weighted cross-entropy.
    static func crossEntropy(_ model: LanguageModel, batch: [LabelledSequence]) throws -> Double {
        var total = 0.0
        for s in batch {
            let lg = try model.forward(s.tokens, cache: model.makeCache(capacity: s.tokens.count), logits: .all)
            for label in s.labels {
                total -= Double(label.weight) * logSoftmax(lg.row(label.position), count: model.config.vocab)[Int(label.token)]
            }
        }
        return total
    }
}

/// Comparison helpers.
enum GradientCompare {
    static func norm(_ a: [Double]) -> Double { a.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// ‖a − b‖ / ‖b‖.
    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        norm(zip(a, b).map { $0 - $1 }) / max(norm(b), 1e-30)
    }
}
