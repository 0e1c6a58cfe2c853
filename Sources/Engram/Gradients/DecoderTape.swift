import Foundation

/// One sequence as a tape sees it: positions `start..<end` are recomputed; the keys and values of
/// positions before `start` are read from `cache` (for every layer the tape runs) and do not change.
/// The tape writes its own positions' keys and values into the same cache.
struct TapeSequence {
    let start: Int
    let end: Int
    let cache: KVCache
}

/// What one block keeps from its forward pass for the backward pass.
final class BlockActivations {
    let input: FloatBuffer       // residual stream entering the block       [n, d]
    let stats1: FloatBuffer      // attention-norm (mean, rstd)               [n, 2]
    let q: FloatBuffer           // queries after RoPE                         [n, qDim]
    let probs: FloatBuffer       // softmax probabilities, per sequence and head
    let attention: FloatBuffer   // attention mix before the output projection [n, qDim]
    let middle: FloatBuffer      // residual stream after the attention sub-block [n, d]
    let stats2: FloatBuffer      // MLP-norm (mean, rstd)                      [n, 2]
    let gate: FloatBuffer        // LLaMA: gate pre-activation; GPT-2: up pre-activation incl. bias [n, m]
    let up: FloatBuffer?         // LLaMA: up projection                       [n, m]

    init(rows n: Int, config c: ModelConfig, probabilities: Int, gated: Bool) {
        input = FloatBuffer(count: n * c.hidden, zeroed: false)
        stats1 = FloatBuffer(count: 2 * n, zeroed: false)
        q = FloatBuffer(count: n * c.qDim, zeroed: false)
        probs = FloatBuffer(count: probabilities, zeroed: false)
        attention = FloatBuffer(count: n * c.qDim, zeroed: false)
        middle = FloatBuffer(count: n * c.hidden, zeroed: false)
        stats2 = FloatBuffer(count: 2 * n, zeroed: false)
        gate = FloatBuffer(count: n * c.intermediate, zeroed: false)
        up = gated ? FloatBuffer(count: n * c.intermediate, zeroed: false) : nil
    }
}

/// A forward pass over blocks `firstLayer..<L` and the output head, for a batch of row spans, that
/// keeps what its backward pass needs (llm.c style: explicit forward and backward per op, buffers
/// allocated once and reused at every optimisation step).
///
/// Its input is the residual stream entering `firstLayer` for every recomputed row. Its backward
/// takes `∂L/∂logits` at the output rows and returns `∂L/∂input`, adding weight gradients for the
/// weights it was asked about. Nothing is formed for what no gradient needs: rows before a
/// sequence's `start`, logits outside the output rows, and weight gradients not asked for.
final class DecoderTape {
    let net: DecoderWeights
    let firstLayer: Int
    let sequences: [TapeSequence]
    let spans: [AttentionOps.Span]
    let rows: Int
    /// Tape rows whose logits are computed, in the order of the logits rows.
    let outputs: [Int]
    /// Gradient accumulators, `[out, in]` like the weights; `zeroGradients()` clears them.
    let gradients: [EditableWeight: Matrix]
    /// When false the backward stops below the lowest weight it accumulates for.
    let needsInputGradient: Bool
    /// When false the tape ends at the final norm: `forward` returns the output rows' normed hidden
    /// states and `backward(dNormed:)` starts from their gradient, so that the caller can run the output
    /// head once for several tapes.
    let runsHead: Bool

    private let saved: [BlockActivations]
    private let rope: RopeTable?
    private let x, xn, kNew, vNew, key, delta: FloatBuffer
    private let dx, dXn, dKey, dUp, dAttention, dq, dk, dv, dScores: FloatBuffer
    private let xOut, statsOut, normedOut, dNormedOut, dXOut: FloatBuffer
    let logits: FloatBuffer

    init(weights: DecoderWeights, firstLayer: Int, sequences: [TapeSequence], outputs: [Int],
         gradients weightsWanted: [EditableWeight] = [], needsInputGradient: Bool = true, head: Bool = true) throws {
        let c = weights.config
        guard (0...c.layers).contains(firstLayer) else {
            throw EngramError.invalidArgument("tape first layer \(firstLayer) is outside 0...\(c.layers)")
        }
        var spans: [AttentionOps.Span] = [], row0 = 0, positions: [Int] = []
        for (s, seq) in sequences.enumerated() {
            guard seq.start >= 0, seq.end >= seq.start, seq.cache.count >= seq.start else {
                throw EngramError.invalidArgument("tape sequence \(s): positions \(seq.start)..<\(seq.end) with \(seq.cache.count) cached")
            }
            seq.cache.reserve(seq.end)
            spans.append(.init(row0: row0, count: seq.end - seq.start, start: seq.start))
            positions += Array(seq.start..<seq.end)
            row0 += seq.end - seq.start
        }
        let n = row0
        for o in outputs where !(0..<n).contains(o) {
            throw EngramError.invalidArgument("tape output row \(o) is outside 0..<\(n)")
        }
        for w in weightsWanted {
            try weights.validate(w)
            guard w.layer >= firstLayer else {
                throw EngramError.invalidArgument("gradient for \(w) asked of a tape that starts at layer \(firstLayer)")
            }
        }
        net = weights
        self.firstLayer = firstLayer
        self.sequences = sequences
        self.spans = spans
        rows = n
        self.outputs = outputs
        self.needsInputGradient = needsInputGradient
        runsHead = head
        var g: [EditableWeight: Matrix] = [:]
        for w in weightsWanted { let m = weights.matrix(w); g[w] = Matrix(rows: m.rows, cols: m.cols) }
        gradients = g

        let d = c.hidden, m = c.intermediate, nOut = outputs.count
        let probabilities = AttentionOps.probabilityCount(spans, heads: c.heads)
        let gated: Bool
        if case .swiglu = weights.blocks.first?.mlp { gated = true } else { gated = false }
        saved = (firstLayer..<c.layers).map { _ in
            BlockActivations(rows: n, config: c, probabilities: probabilities, gated: gated)
        }
        rope = weights.rope.map { RopeTable(rope: $0, positions: positions) }
        x = FloatBuffer(count: n * d, zeroed: false)
        xn = FloatBuffer(count: n * d, zeroed: false)
        kNew = FloatBuffer(count: n * c.kvDim, zeroed: false)
        vNew = FloatBuffer(count: n * c.kvDim, zeroed: false)
        key = FloatBuffer(count: n * m, zeroed: false)
        delta = FloatBuffer(count: n * d, zeroed: false)
        dx = FloatBuffer(count: n * d, zeroed: false)
        dXn = FloatBuffer(count: n * d, zeroed: false)
        dKey = FloatBuffer(count: n * m, zeroed: false)
        dUp = FloatBuffer(count: gated ? n * m : 0, zeroed: false)
        dAttention = FloatBuffer(count: n * c.qDim, zeroed: false)
        dq = FloatBuffer(count: n * c.qDim, zeroed: false)
        dk = FloatBuffer(count: n * c.kvDim, zeroed: false)
        dv = FloatBuffer(count: n * c.kvDim, zeroed: false)
        dScores = FloatBuffer(count: spans.map { $0.count * $0.total }.max() ?? 0, zeroed: false)
        xOut = FloatBuffer(count: nOut * d, zeroed: false)
        statsOut = FloatBuffer(count: 2 * nOut, zeroed: false)
        normedOut = FloatBuffer(count: nOut * d, zeroed: false)
        dNormedOut = FloatBuffer(count: head ? nOut * d : 0, zeroed: false)
        dXOut = FloatBuffer(count: nOut * d, zeroed: false)
        logits = FloatBuffer(count: head ? nOut * c.vocab : 0, zeroed: false)
    }

    var vocab: Int { net.config.vocab }

    func zeroGradients() {
        for g in gradients.values { g.pointer.update(repeating: 0, count: g.count) }
    }

    // MARK: forward

    /// Runs the tape on `input` (`[rows, d]`, the residual stream entering `firstLayer`) and returns
    /// the logits of the output rows, `[outputs.count, vocab]`, or without the head their final-normed
    /// hidden states, `[outputs.count, d]` (valid until the next call).
    @discardableResult
    func forward(input: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let c = net.config, d = c.hidden, m = c.intermediate, n = rows, eps = c.normEps
        x.pointer.update(from: input, count: n * d)
        for l in firstLayer..<c.layers {
            let b = net.blocks[l], a = saved[l - firstLayer]
            a.input.pointer.update(from: x.pointer, count: n * d)

            NormOps.forward(b.norm1, x.pointer, rows: n, width: d, eps: eps, into: xn.pointer, stats: a.stats1.pointer)
            Self.linear(xn.pointer, rows: n, b.wq, b.bq, into: a.q.pointer)
            Self.linear(xn.pointer, rows: n, b.wk, b.bk, into: kNew.pointer)
            Self.linear(xn.pointer, rows: n, b.wv, b.bv, into: vNew.pointer)
            if let rope {
                rope.rotate(a.q.pointer, rows: n, heads: c.heads, stride: c.qDim, inverse: false)
                rope.rotate(kNew.pointer, rows: n, heads: c.kvHeads, stride: c.kvDim, inverse: false)
            }
            let (keys, values) = storeKeysValues(layer: l)
            AttentionOps.forward(spans: spans, keys: keys, values: values, config: c, q: a.q.pointer,
                                 probs: a.probs.pointer, out: a.attention.pointer)
            Self.linear(a.attention.pointer, rows: n, b.wo, b.bo, into: delta.pointer)
            Kernels.add(x.pointer, delta.pointer, count: n * d)
            a.middle.pointer.update(from: x.pointer, count: n * d)

            NormOps.forward(b.norm2, x.pointer, rows: n, width: d, eps: eps, into: xn.pointer, stats: a.stats2.pointer)
            switch b.mlp {
            case let .swiglu(gate, up):
                Self.linear(xn.pointer, rows: n, gate, nil, into: a.gate.pointer)
                Self.linear(xn.pointer, rows: n, up, nil, into: a.up!.pointer)
                ActivationOps.swiglu(gate: a.gate.pointer, up: a.up!.pointer, count: n * m, into: key.pointer)
            case let .gelu(up, bias):
                Self.linear(xn.pointer, rows: n, up, bias, into: a.gate.pointer)
                ActivationOps.gelu(a.gate.pointer, count: n * m, into: key.pointer)
            }
            Self.linear(key.pointer, rows: n, b.wDown, b.bDown, into: delta.pointer)
            Kernels.add(x.pointer, delta.pointer, count: n * d)
        }

        let nOut = outputs.count
        for (o, r) in outputs.enumerated() { (xOut.pointer + o * d).update(from: x.pointer + r * d, count: d) }
        NormOps.forward(net.finalNorm, xOut.pointer, rows: nOut, width: d, eps: eps, into: normedOut.pointer, stats: statsOut.pointer)
        guard runsHead else { return UnsafePointer(normedOut.pointer) }
        if nOut > 0 { BLAS.linear(normedOut.pointer, rows: nOut, weight: net.outputWeight, into: logits.pointer) }
        return UnsafePointer(logits.pointer)
    }

    /// The residual stream after the last block at the output rows (valid after `forward`).
    var finalHidden: UnsafePointer<Float> { UnsafePointer(xOut.pointer) }

    /// Writes this pass's keys and values behind each sequence's cached ones; returns the per-sequence
    /// key and value pointers of the layer.
    private func storeKeysValues(layer l: Int) -> ([UnsafePointer<Float>], [UnsafePointer<Float>]) {
        let kvDim = net.config.kvDim
        var keys: [UnsafePointer<Float>] = [], values: [UnsafePointer<Float>] = []
        keys.reserveCapacity(sequences.count)
        values.reserveCapacity(sequences.count)
        for (s, seq) in sequences.enumerated() {
            let span = spans[s]
            let kp = seq.cache.keys[l].pointer, vp = seq.cache.values[l].pointer
            (kp + span.start * kvDim).update(from: kNew.pointer + span.row0 * kvDim, count: span.count * kvDim)
            (vp + span.start * kvDim).update(from: vNew.pointer + span.row0 * kvDim, count: span.count * kvDim)
            keys.append(UnsafePointer(kp))
            values.append(UnsafePointer(vp))
        }
        return (keys, values)
    }

    // MARK: backward

    /// Back-propagates `dLogits` (`[outputs.count, vocab]`) through the pass last run by `forward`.
    /// Adds weight gradients into `gradients` and returns `∂L/∂input` (`[rows, d]`, valid until the
    /// next call; meaningless when `needsInputGradient` is false).
    @discardableResult
    func backward(dLogits: UnsafePointer<Float>) -> UnsafePointer<Float> {
        precondition(runsHead, "a tape without the output head starts its backward from backward(dNormed:)")
        Self.linearBackward(dLogits, rows: outputs.count, net.outputWeight, into: dNormedOut.pointer)
        return backward(dNormed: dNormedOut.pointer)
    }

    /// Back-propagates the gradient of the output rows' final-normed hidden states (`[outputs.count, d]`):
    /// the backward below the output head, for a tape without it.
    @discardableResult
    func backward(dNormed: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let c = net.config, d = c.hidden, m = c.intermediate, n = rows, nOut = outputs.count
        dx.pointer.update(repeating: 0, count: n * d)
        if nOut > 0 {
            dXOut.pointer.update(repeating: 0, count: nOut * d)
            NormOps.backward(net.finalNorm, dy: dNormed, x: xOut.pointer, stats: statsOut.pointer,
                             rows: nOut, width: d, addInto: dXOut.pointer)
            for (o, r) in outputs.enumerated() { Kernels.add(dx.pointer + r * d, dXOut.pointer + o * d, count: d) }
        }
        let lowestWanted = gradients.keys.map(\.layer).min() ?? firstLayer

        for l in stride(from: c.layers - 1, through: firstLayer, by: -1) {
            let b = net.blocks[l], a = saved[l - firstLayer]

            // MLP sub-block: out = middle + W_down key.
            Self.linearBackward(dx.pointer, rows: n, b.wDown, into: dKey.pointer)
            if let g = gradients[.mlpDown(l)] {
                switch b.mlp {
                case .swiglu: ActivationOps.swiglu(gate: a.gate.pointer, up: a.up!.pointer, count: n * m, into: key.pointer)
                case .gelu: ActivationOps.gelu(a.gate.pointer, count: n * m, into: key.pointer)
                }
                Self.accumulateWeightGradient(dy: dx.pointer, x: key.pointer, rows: n, into: g)
            }
            if !needsInputGradient && l <= lowestWanted { break }
            switch b.mlp {
            case let .swiglu(gate, up):
                ActivationOps.swigluBackward(dKey: dKey.pointer, gate: a.gate.pointer, up: a.up!.pointer, count: n * m, dUp: dUp.pointer)
                Self.linearBackward(dKey.pointer, rows: n, gate, into: dXn.pointer)
                Self.linearBackward(dUp.pointer, rows: n, up, into: dXn.pointer, accumulate: true)
            case let .gelu(up, _):
                ActivationOps.geluBackward(dy: dKey.pointer, x: a.gate.pointer, count: n * m)
                Self.linearBackward(dKey.pointer, rows: n, up, into: dXn.pointer)
            }
            NormOps.backward(b.norm2, dy: dXn.pointer, x: a.middle.pointer, stats: a.stats2.pointer, rows: n, width: d, addInto: dx.pointer)

            // Attention sub-block: middle = input + W_o attention.
            Self.linearBackward(dx.pointer, rows: n, b.wo, into: dAttention.pointer)
            let keys = sequences.map { UnsafePointer($0.cache.keys[l].pointer) }
            let values = sequences.map { UnsafePointer($0.cache.values[l].pointer) }
            AttentionOps.backward(spans: spans, keys: keys, values: values, config: c, q: a.q.pointer, probs: a.probs.pointer,
                                  dOut: dAttention.pointer, dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, rows: n,
                                  scratch: dScores.pointer)
            if let rope {
                rope.rotate(dq.pointer, rows: n, heads: c.heads, stride: c.qDim, inverse: true)
                rope.rotate(dk.pointer, rows: n, heads: c.kvHeads, stride: c.kvDim, inverse: true)
            }
            Self.linearBackward(dq.pointer, rows: n, b.wq, into: dXn.pointer)
            Self.linearBackward(dk.pointer, rows: n, b.wk, into: dXn.pointer, accumulate: true)
            Self.linearBackward(dv.pointer, rows: n, b.wv, into: dXn.pointer, accumulate: true)
            NormOps.backward(b.norm1, dy: dXn.pointer, x: a.input.pointer, stats: a.stats1.pointer, rows: n, width: d, addInto: dx.pointer)
        }
        return UnsafePointer(dx.pointer)
    }

    // MARK: linear maps

    /// `y[n, out] = x[n, in] Wᵀ + b`.
    @inline(__always)
    static func linear(_ x: UnsafePointer<Float>, rows n: Int, _ w: Matrix, _ bias: Matrix?, into y: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        BLAS.linear(x, rows: n, weight: w, into: y)
        if let bias { Kernels.addBias(y, bias: bias.pointer, rows: n, width: w.rows) }
    }

    /// `dx[n, in] (+)= dy[n, out] W`.
    @inline(__always)
    static func linearBackward(_ dy: UnsafePointer<Float>, rows n: Int, _ w: Matrix, into dx: UnsafeMutablePointer<Float>,
                               accumulate: Bool = false) {
        BLAS.linearBackward(dy, rows: n, weight: w, into: dx, accumulate: accumulate)
    }

    /// `dW[out, in] += dyᵀ x` for `dy[n, out]`, `x[n, in]`.
    @inline(__always)
    static func accumulateWeightGradient(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows n: Int, into g: Matrix) {
        guard n > 0 else { return }
        BLAS.gemm(transA: true, transB: false, m: g.rows, n: g.cols, k: n, a: dy, lda: g.rows,
                  b: x, ldb: g.cols, beta: 1, c: g.pointer, ldc: g.cols)
    }
}
