import Foundation
import Engram

/// A naive forward pass written from the Hugging Face definitions of the models, on Hugging Face
/// names and layouts: `rotate_half` RoPE on un-permuted Q/K for LLaMA/Qwen2, Conv1D `x @ W[in, out]`
/// for GPT-2. Plain loops in Double, no BLAS, no code shared with the library.
enum TinyModelReference {
    /// Logits at every position of `tokens` (a fresh sequence starting at position 0).
    static func logits(_ model: TinyModel, tokens: [Int]) -> [[Double]] {
        var w: [String: [Double]] = [:]
        for t in model.tensors { w[t.name] = t.values.map(Double.init) }
        func get(_ name: String) -> [Double] {
            guard let v = w[name] else { fatalError("reference: missing \(name)") }
            return v
        }
        switch model.kind {
        case .llama, .qwen2: return llama(model, tokens, get)
        case .gpt2: return gpt2(model, tokens, get)
        }
    }

    /// y = W x for W stored [out, in] (nn.Linear).
    static func linear(_ w: [Double], _ x: [Double], out: Int) -> [Double] {
        let n = x.count
        return (0..<out).map { o in (0..<n).reduce(0.0) { $0 + w[o * n + $1] * x[$1] } }
    }

    /// y = x W for W stored [in, out] (GPT-2 Conv1D).
    static func conv1D(_ w: [Double], _ x: [Double], out: Int) -> [Double] {
        (0..<out).map { o in x.indices.reduce(0.0) { $0 + x[$1] * w[$1 * out + o] } }
    }

    static func rmsNorm(_ x: [Double], _ w: [Double], eps: Double) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let s = 1 / (ms + eps).squareRoot()
        return x.indices.map { x[$0] * s * w[$0] }
    }

    static func layerNorm(_ x: [Double], _ w: [Double], _ b: [Double], eps: Double) -> [Double] {
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
        let s = 1 / (variance + eps).squareRoot()
        return x.indices.map { (x[$0] - mean) * s * w[$0] + b[$0] }
    }

    static func add(_ a: [Double], _ b: [Double]) -> [Double] { a.indices.map { a[$0] + b[$0] } }

    /// Causal attention of every position over the previous ones; `kvHead(h)` picks the K/V head.
    static func attention(q: [[Double]], k: [[Double]], v: [[Double]], heads: Int, headDim hd: Int,
                          kvHead: (Int) -> Int) -> [[Double]] {
        q.indices.map { t in
            var out = [Double](repeating: 0, count: heads * hd)
            for h in 0..<heads {
                let g = kvHead(h)
                var scores = (0...t).map { s in
                    (0..<hd).reduce(0.0) { $0 + q[t][h * hd + $1] * k[s][g * hd + $1] } / Double(hd).squareRoot()
                }
                let mx = scores.max() ?? 0
                scores = scores.map { exp($0 - mx) }
                let z = scores.reduce(0, +)
                for s in 0...t {
                    for i in 0..<hd { out[h * hd + i] += scores[s] / z * v[s][g * hd + i] }
                }
            }
            return out
        }
    }

    static func llama(_ m: TinyModel, _ tokens: [Int], _ w: (String) -> [Double]) -> [[Double]] {
        let d = m.hidden, hd = m.headDim, eps = Double(m.eps)
        let embed = w("model.embed_tokens.weight")
        var x = tokens.map { Array(embed[($0 * d)..<(($0 + 1) * d)]) }
        // HF rotate_half: pairs (i, i + hd/2) rotated by angle pos * theta^(-2i/hd).
        func rope(_ vec: [Double], heads: Int, position: Int) -> [Double] {
            var out = vec
            let half = hd / 2
            for h in 0..<heads {
                for i in 0..<half {
                    let angle = Double(position) * pow(Double(m.ropeTheta), -Double(2 * i) / Double(hd))
                    let a = vec[h * hd + i], b = vec[h * hd + i + half]
                    out[h * hd + i] = a * cos(angle) - b * sin(angle)
                    out[h * hd + i + half] = b * cos(angle) + a * sin(angle)
                }
            }
            return out
        }
        for l in 0..<m.layers {
            let p = "model.layers.\(l)."
            let hasBias = m.kind == .qwen2
            var q: [[Double]] = [], k: [[Double]] = [], v: [[Double]] = []
            for (t, xt) in x.enumerated() {
                let h = rmsNorm(xt, w(p + "input_layernorm.weight"), eps: eps)
                var qt = linear(w(p + "self_attn.q_proj.weight"), h, out: m.heads * hd)
                var kt = linear(w(p + "self_attn.k_proj.weight"), h, out: m.kvHeads * hd)
                var vt = linear(w(p + "self_attn.v_proj.weight"), h, out: m.kvHeads * hd)
                if hasBias {
                    qt = add(qt, w(p + "self_attn.q_proj.bias"))
                    kt = add(kt, w(p + "self_attn.k_proj.bias"))
                    vt = add(vt, w(p + "self_attn.v_proj.bias"))
                }
                q.append(rope(qt, heads: m.heads, position: t))
                k.append(rope(kt, heads: m.kvHeads, position: t))
                v.append(vt)
            }
            let group = m.heads / m.kvHeads
            let attn = attention(q: q, k: k, v: v, heads: m.heads, headDim: hd) { $0 / group }
            for t in x.indices {
                x[t] = add(x[t], linear(w(p + "self_attn.o_proj.weight"), attn[t], out: d))
                let h = rmsNorm(x[t], w(p + "post_attention_layernorm.weight"), eps: eps)
                let gate = linear(w(p + "mlp.gate_proj.weight"), h, out: m.intermediate)
                let up = linear(w(p + "mlp.up_proj.weight"), h, out: m.intermediate)
                let act = gate.indices.map { gate[$0] / (1 + exp(-gate[$0])) * up[$0] }
                x[t] = add(x[t], linear(w(p + "mlp.down_proj.weight"), act, out: d))
            }
        }
        let head = m.tied ? embed : w("lm_head.weight")
        return x.map { linear(head, rmsNorm($0, w("model.norm.weight"), eps: eps), out: m.vocab) }
    }

    static func gpt2(_ m: TinyModel, _ tokens: [Int], _ w: (String) -> [Double]) -> [[Double]] {
        let d = m.hidden, hd = m.headDim, eps = Double(m.eps)
        let wte = w("transformer.wte.weight"), wpe = w("transformer.wpe.weight")
        var x = tokens.enumerated().map { pos, tok in add(Array(wte[(tok * d)..<((tok + 1) * d)]), Array(wpe[(pos * d)..<((pos + 1) * d)])) }
        func gelu(_ v: Double) -> Double { 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))) }
        for l in 0..<m.layers {
            let p = "transformer.h.\(l)."
            var q: [[Double]] = [], k: [[Double]] = [], v: [[Double]] = []
            for xt in x {
                let h = layerNorm(xt, w(p + "ln_1.weight"), w(p + "ln_1.bias"), eps: eps)
                let qkv = add(conv1D(w(p + "attn.c_attn.weight"), h, out: 3 * d), w(p + "attn.c_attn.bias"))
                q.append(Array(qkv[0..<d])); k.append(Array(qkv[d..<(2 * d)])); v.append(Array(qkv[(2 * d)...]))
            }
            let attn = attention(q: q, k: k, v: v, heads: m.heads, headDim: hd) { $0 }
            for t in x.indices {
                x[t] = add(x[t], add(conv1D(w(p + "attn.c_proj.weight"), attn[t], out: d), w(p + "attn.c_proj.bias")))
                let h = layerNorm(x[t], w(p + "ln_2.weight"), w(p + "ln_2.bias"), eps: eps)
                let hidden = add(conv1D(w(p + "mlp.c_fc.weight"), h, out: m.intermediate), w(p + "mlp.c_fc.bias")).map(gelu)
                x[t] = add(x[t], add(conv1D(w(p + "mlp.c_proj.weight"), hidden, out: d), w(p + "mlp.c_proj.bias")))
            }
        }
        return x.map { linear(wte, layerNorm($0, w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), eps: eps), out: m.vocab) }
    }
}
