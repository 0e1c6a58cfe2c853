import Foundation

/// GPT-2: learned position embeddings, LayerNorm with bias, fused QKV projection, GELU MLP, every
/// linear with a bias, output head tied to the token embedding. Weights use the canonical `[out, in]`
/// layout (Hugging Face's Conv1D `[in, out]` is transposed by the safetensors reader).
public final class GPT2: LanguageModel {
    public let config: ModelConfig

    struct Block {
        let ln1w: Matrix, ln1b: Matrix
        let wqkv: Matrix, bqkv: Matrix
        let wo: Matrix, bo: Matrix
        let ln2w: Matrix, ln2b: Matrix
        let wUp: Matrix, bUp: Matrix
        let wDown: Matrix, bDown: Matrix
    }

    public let tokenEmbedding: Matrix
    let positionEmbedding: Matrix
    let blocks: [Block]
    let lnfw: Matrix, lnfb: Matrix
    public let outputWeight: Matrix

    public init(config c: ModelConfig, checkpoint ck: Checkpoint) throws {
        config = c
        let d = c.hidden, m = c.intermediate
        tokenEmbedding = try ck.matrix("token_embd.weight", shape: [c.vocab, d])
        positionEmbedding = try ck.matrix("position_embd.weight", shape: [c.contextLength, d])
        blocks = try (0..<c.layers).map { l in
            let p = "blk.\(l)."
            return Block(
                ln1w: try ck.matrix(p + "attn_norm.weight", shape: [d]), ln1b: try ck.matrix(p + "attn_norm.bias", shape: [d]),
                wqkv: try ck.matrix(p + "attn_qkv.weight", shape: [3 * d, d]), bqkv: try ck.matrix(p + "attn_qkv.bias", shape: [3 * d]),
                wo: try ck.matrix(p + "attn_output.weight", shape: [d, d]), bo: try ck.matrix(p + "attn_output.bias", shape: [d]),
                ln2w: try ck.matrix(p + "ffn_norm.weight", shape: [d]), ln2b: try ck.matrix(p + "ffn_norm.bias", shape: [d]),
                wUp: try ck.matrix(p + "ffn_up.weight", shape: [m, d]), bUp: try ck.matrix(p + "ffn_up.bias", shape: [m]),
                wDown: try ck.matrix(p + "ffn_down.weight", shape: [d, m]), bDown: try ck.matrix(p + "ffn_down.bias", shape: [d]))
        }
        lnfw = try ck.matrix("output_norm.weight", shape: [d])
        lnfb = try ck.matrix("output_norm.bias", shape: [d])
        outputWeight = c.tiedEmbeddings ? tokenEmbedding : try ck.matrix("output.weight", shape: [c.vocab, d])
    }

    public func readWeight(_ w: EditableWeight) -> Matrix {
        switch w { case let .mlpDown(l): return blocks[l].wDown }
    }

    public func weight(_ w: EditableWeight) -> Matrix {
        let m = readWeight(w)
        m.quantized?.retire() // the caller may change the floats
        return m
    }

    public func finalNorm(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        Kernels.layerNorm(x, weight: lnfw.pointer, bias: lnfb.pointer, rows: rows, width: config.hidden, eps: config.normEps, into: out)
    }

    public func forward(_ batch: [SequenceInput], hooks: Hooks?, logits request: LogitRows) throws -> [Matrix] {
        let c = config, d = c.hidden, m = c.intermediate
        let layout = try BatchLayout(batch, config: c)
        let n = layout.totalRows
        Attention.reserve(batch, layout: layout)
        let hooks = hooks ?? Hooks()
        func stopped() -> [Matrix] { batch.map { _ in Matrix(rows: 0, cols: c.vocab) } } // no logits

        let x = FloatBuffer(count: n * d, zeroed: false)
        let position = FloatBuffer(count: d, zeroed: false)
        for r in 0..<n {
            let s = layout.rowSequence[r], pos = layout.rowPosition[r]
            let token = Int(batch[s].tokens[pos - layout.past[s]])
            let row = x.pointer + r * d
            tokenEmbedding.copyRow(token, into: row)
            positionEmbedding.copyRow(pos, into: position.pointer)
            Kernels.add(row, position.pointer, count: d)
        }
        if hooks.run(.embedding, layout, x.pointer, width: d) { return stopped() }

        let xn = FloatBuffer(count: n * d, zeroed: false)
        let qkv = FloatBuffer(count: n * 3 * d, zeroed: false)
        let q = FloatBuffer(count: n * d, zeroed: false), k = FloatBuffer(count: n * d, zeroed: false), v = FloatBuffer(count: n * d, zeroed: false)
        let attn = FloatBuffer(count: n * d, zeroed: false)
        let delta = FloatBuffer(count: n * d, zeroed: false)
        let hidden = FloatBuffer(count: n * m, zeroed: false)

        for (l, b) in blocks.enumerated() {
            Kernels.layerNorm(x.pointer, weight: b.ln1w.pointer, bias: b.ln1b.pointer, rows: n, width: d, eps: c.normEps, into: xn.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wqkv, into: qkv.pointer)
            Kernels.addBias(qkv.pointer, bias: b.bqkv.pointer, rows: n, width: 3 * d)
            for r in 0..<n { // split the fused projection into q, k, v rows
                let src = qkv.pointer + r * 3 * d
                (q.pointer + r * d).update(from: src, count: d)
                (k.pointer + r * d).update(from: src + d, count: d)
                (v.pointer + r * d).update(from: src + 2 * d, count: d)
            }
            Attention.run(layout: layout, batch: batch, layer: l, config: c, q: q.pointer, k: k.pointer, v: v.pointer, out: attn.pointer)
            BLAS.linear(attn.pointer, rows: n, weight: b.wo, into: delta.pointer)
            Kernels.addBias(delta.pointer, bias: b.bo.pointer, rows: n, width: d)
            if hooks.run(.attentionOutput(l), layout, delta.pointer, width: d) { return stopped() }
            Kernels.add(x.pointer, delta.pointer, count: n * d)

            Kernels.layerNorm(x.pointer, weight: b.ln2w.pointer, bias: b.ln2b.pointer, rows: n, width: d, eps: c.normEps, into: xn.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wUp, into: hidden.pointer)
            Kernels.addBias(hidden.pointer, bias: b.bUp.pointer, rows: n, width: m)
            Kernels.gelu(hidden.pointer, count: n * m)
            if hooks.run(.mlpKey(l), layout, hidden.pointer, width: m) { return stopped() }
            BLAS.linear(hidden.pointer, rows: n, weight: b.wDown, into: delta.pointer)
            Kernels.addBias(delta.pointer, bias: b.bDown.pointer, rows: n, width: d)
            if hooks.run(.mlpOutput(l), layout, delta.pointer, width: d) { return stopped() }
            Kernels.add(x.pointer, delta.pointer, count: n * d)
            if hooks.run(.residual(l), layout, x.pointer, width: d) { return stopped() }
        }
        if request == .none { return stopped() }
        finalNorm(x.pointer, rows: n, into: xn.pointer)
        return OutputHead.logits(xn.pointer, layout: layout, request: request, weight: outputWeight)
    }
}
