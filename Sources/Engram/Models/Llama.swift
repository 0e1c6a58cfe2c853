import Foundation

/// LLaMA-family decoder: SmolLM2, LLaMA-2/3, Mistral, and Qwen2 (which adds Q/K/V biases and
/// uses NeoX-layout RoPE). Pre-norm blocks with RMSNorm, grouped-query attention and a SwiGLU MLP.
public final class Llama: LanguageModel {
    public let config: ModelConfig

    struct Block {
        let attnNorm: Matrix
        let wq: Matrix, wk: Matrix, wv: Matrix, wo: Matrix
        let bq: Matrix?, bk: Matrix?, bv: Matrix?
        let ffnNorm: Matrix
        let wGate: Matrix, wUp: Matrix, wDown: Matrix
    }

    public let tokenEmbedding: Matrix
    let blocks: [Block]
    let outputNormWeight: Matrix
    public let outputWeight: Matrix
    let rope: Rope

    /// Builds the model from canonical tensor names, checking every shape against the config.
    public init(config c: ModelConfig, checkpoint ck: Checkpoint) throws {
        config = c
        let d = c.hidden, m = c.intermediate
        tokenEmbedding = try ck.matrix("token_embd.weight", shape: [c.vocab, d])
        blocks = try (0..<c.layers).map { l in
            let p = "blk.\(l)."
            let hasBias = c.architecture == .qwen2
            return Block(
                attnNorm: try ck.matrix(p + "attn_norm.weight", shape: [d]),
                wq: try ck.matrix(p + "attn_q.weight", shape: [c.qDim, d]),
                wk: try ck.matrix(p + "attn_k.weight", shape: [c.kvDim, d]),
                wv: try ck.matrix(p + "attn_v.weight", shape: [c.kvDim, d]),
                wo: try ck.matrix(p + "attn_output.weight", shape: [d, c.qDim]),
                bq: hasBias ? try ck.matrix(p + "attn_q.bias", shape: [c.qDim]) : nil,
                bk: hasBias ? try ck.matrix(p + "attn_k.bias", shape: [c.kvDim]) : nil,
                bv: hasBias ? try ck.matrix(p + "attn_v.bias", shape: [c.kvDim]) : nil,
                ffnNorm: try ck.matrix(p + "ffn_norm.weight", shape: [d]),
                wGate: try ck.matrix(p + "ffn_gate.weight", shape: [m, d]),
                wUp: try ck.matrix(p + "ffn_up.weight", shape: [m, d]),
                wDown: try ck.matrix(p + "ffn_down.weight", shape: [d, m]))
        }
        outputNormWeight = try ck.matrix("output_norm.weight", shape: [d])
        outputWeight = c.tiedEmbeddings ? tokenEmbedding : try ck.matrix("output.weight", shape: [c.vocab, d])
        rope = Rope(headDim: c.headDim, theta: c.ropeTheta, style: c.ropeStyle)
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
        Kernels.rmsNorm(x, weight: outputNormWeight.pointer, rows: rows, width: config.hidden, eps: config.normEps, into: out)
    }

    public func forward(_ batch: [SequenceInput], hooks: Hooks?, logits request: LogitRows) throws -> [Matrix] {
        let c = config, d = c.hidden, m = c.intermediate
        let layout = try BatchLayout(batch, config: c)
        let n = layout.totalRows
        Attention.reserve(batch, layout: layout)
        let hooks = hooks ?? Hooks()
        func stopped() -> [Matrix] { batch.map { _ in Matrix(rows: 0, cols: c.vocab) } } // no logits

        let x = FloatBuffer(count: n * d, zeroed: false)
        for r in 0..<n {
            let token = Int(batch[layout.rowSequence[r]].tokens[layout.rowPosition[r] - layout.past[layout.rowSequence[r]]])
            tokenEmbedding.copyRow(token, into: x.pointer + r * d)
        }
        if hooks.run(.embedding, layout, x.pointer, width: d) { return stopped() }

        let xn = FloatBuffer(count: n * d, zeroed: false)
        let q = FloatBuffer(count: n * c.qDim, zeroed: false)
        let k = FloatBuffer(count: n * c.kvDim, zeroed: false)
        let v = FloatBuffer(count: n * c.kvDim, zeroed: false)
        let attn = FloatBuffer(count: n * c.qDim, zeroed: false)
        let delta = FloatBuffer(count: n * d, zeroed: false)
        let gate = FloatBuffer(count: n * m, zeroed: false)
        let up = FloatBuffer(count: n * m, zeroed: false)
        let ropeTable = RopeTable(rope: rope, positions: layout.rowPosition) // every layer rotates the same positions

        for (l, b) in blocks.enumerated() {
            // Attention sub-block.
            Kernels.rmsNorm(x.pointer, weight: b.attnNorm.pointer, rows: n, width: d, eps: c.normEps, into: xn.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wq, into: q.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wk, into: k.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wv, into: v.pointer)
            if let bq = b.bq, let bk = b.bk, let bv = b.bv {
                Kernels.addBias(q.pointer, bias: bq.pointer, rows: n, width: c.qDim)
                Kernels.addBias(k.pointer, bias: bk.pointer, rows: n, width: c.kvDim)
                Kernels.addBias(v.pointer, bias: bv.pointer, rows: n, width: c.kvDim)
            }
            ropeTable.rotate(q.pointer, rows: n, heads: c.heads, stride: c.qDim)
            ropeTable.rotate(k.pointer, rows: n, heads: c.kvHeads, stride: c.kvDim)
            Attention.run(layout: layout, batch: batch, layer: l, config: c, q: q.pointer, k: k.pointer, v: v.pointer, out: attn.pointer)
            BLAS.linear(attn.pointer, rows: n, weight: b.wo, into: delta.pointer)
            if hooks.run(.attentionOutput(l), layout, delta.pointer, width: d) { return stopped() }
            Kernels.add(x.pointer, delta.pointer, count: n * d)

            // MLP sub-block: key = silu(gate) * up, value = W_down key.
            Kernels.rmsNorm(x.pointer, weight: b.ffnNorm.pointer, rows: n, width: d, eps: c.normEps, into: xn.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wGate, into: gate.pointer)
            BLAS.linear(xn.pointer, rows: n, weight: b.wUp, into: up.pointer)
            Kernels.swiglu(gate: gate.pointer, up: up.pointer, count: n * m)
            if hooks.run(.mlpKey(l), layout, gate.pointer, width: m) { return stopped() }
            BLAS.linear(gate.pointer, rows: n, weight: b.wDown, into: delta.pointer)
            if hooks.run(.mlpOutput(l), layout, delta.pointer, width: d) { return stopped() }
            Kernels.add(x.pointer, delta.pointer, count: n * d)
            if hooks.run(.residual(l), layout, x.pointer, width: d) { return stopped() }
        }
        if request == .none { return stopped() }
        finalNorm(x.pointer, rows: n, into: xn.pointer)
        return OutputHead.logits(xn.pointer, layout: layout, request: request, weight: outputWeight)
    }
}
