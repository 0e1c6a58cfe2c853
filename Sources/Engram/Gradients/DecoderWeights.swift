import Foundation

/// The weights of a decoder seen the same way for every architecture, so that one forward-with-saved-
/// activations and one backward serve LLaMA, Qwen2 and GPT-2. The matrices are the model's live
/// storage (views, no copies): a gradient step written into them changes the model.
///
/// GPT-2's fused `[3d, d]` QKV projection is split into three row-block views; its gradient is the
/// three blocks' gradients stacked, so nothing is lost by the split.
struct DecoderWeights {
    enum Norm {
        case rms(weight: Matrix)
        case layer(weight: Matrix, bias: Matrix)
    }

    enum MLP {
        /// `key = silu(gate x) * (up x)` (LLaMA family).
        case swiglu(gate: Matrix, up: Matrix)
        /// `key = gelu(up x + bias)` (GPT-2, tanh approximation).
        case gelu(up: Matrix, bias: Matrix)
    }

    struct Block {
        let norm1: Norm
        let wq: Matrix, wk: Matrix, wv: Matrix, wo: Matrix
        let bq: Matrix?, bk: Matrix?, bv: Matrix?, bo: Matrix?
        let norm2: Norm
        let mlp: MLP
        let wDown: Matrix
        let bDown: Matrix?
    }

    let config: ModelConfig
    let tokenEmbedding: Matrix
    /// Learned absolute positions (GPT-2); nil when positions come from RoPE.
    let positionEmbedding: Matrix?
    let blocks: [Block]
    let finalNorm: Norm
    let outputWeight: Matrix
    /// nil for GPT-2.
    let rope: Rope?

    init(_ model: LanguageModel) throws {
        if let m = model as? Llama {
            self.init(llama: m)
        } else if let m = model as? GPT2 {
            self.init(gpt2: m)
        } else {
            throw EngramError.unsupported(file: "\(type(of: model))",
                                          detail: "gradients are implemented for the Llama and GPT2 model classes only")
        }
    }

    init(llama m: Llama) {
        config = m.config
        tokenEmbedding = m.tokenEmbedding
        positionEmbedding = nil
        blocks = m.blocks.map { b in
            Block(norm1: .rms(weight: b.attnNorm), wq: b.wq, wk: b.wk, wv: b.wv, wo: b.wo,
                  bq: b.bq, bk: b.bk, bv: b.bv, bo: nil,
                  norm2: .rms(weight: b.ffnNorm), mlp: .swiglu(gate: b.wGate, up: b.wUp),
                  wDown: b.wDown, bDown: nil)
        }
        finalNorm = .rms(weight: m.outputNormWeight)
        outputWeight = m.outputWeight
        rope = m.rope
    }

    init(gpt2 m: GPT2) {
        config = m.config
        let d = m.config.hidden
        tokenEmbedding = m.tokenEmbedding
        positionEmbedding = m.positionEmbedding
        func rowBlock(_ w: Matrix, _ i: Int) -> Matrix {
            Matrix(rows: d, cols: w.cols, pointer: w.pointer + i * d * w.cols, owner: w.owner)
        }
        func slice(_ b: Matrix, _ i: Int) -> Matrix {
            Matrix(rows: 1, cols: d, pointer: b.pointer + i * d, owner: b.owner)
        }
        blocks = m.blocks.map { b in
            Block(norm1: .layer(weight: b.ln1w, bias: b.ln1b),
                  wq: rowBlock(b.wqkv, 0), wk: rowBlock(b.wqkv, 1), wv: rowBlock(b.wqkv, 2), wo: b.wo,
                  bq: slice(b.bqkv, 0), bk: slice(b.bqkv, 1), bv: slice(b.bqkv, 2), bo: b.bo,
                  norm2: .layer(weight: b.ln2w, bias: b.ln2b), mlp: .gelu(up: b.wUp, bias: b.bUp),
                  wDown: b.wDown, bDown: b.bDown)
        }
        finalNorm = .layer(weight: m.lnfw, bias: m.lnfb)
        outputWeight = m.outputWeight
        rope = nil
    }

    /// The live matrix of a weight the gradients know how to address, for reading (its shape): updates
    /// go through `LanguageModel.weight`, which retires the quantized blocks.
    func matrix(_ w: EditableWeight) -> Matrix {
        switch w { case let .mlpDown(l): return blocks[l].wDown }
    }

    /// Checks that a weight names an existing layer.
    func validate(_ w: EditableWeight) throws {
        switch w {
        case let .mlpDown(l):
            guard (0..<config.layers).contains(l) else {
                throw EngramError.invalidArgument("mlpDown(\(l)): layer is outside 0..<\(config.layers)")
            }
        }
    }
}

extension EditableWeight {
    /// The block the weight belongs to.
    var layer: Int {
        switch self { case let .mlpDown(l): return l }
    }
}
