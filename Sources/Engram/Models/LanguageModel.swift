import Foundation

/// Which rows of the output head to compute.
public enum LogitRows: Sendable { case none, last, all }

/// One sequence of a batch: the new tokens and the cache holding what came before them.
public struct SequenceInput {
    public var tokens: [Int32]
    public var cache: KVCache
    public init(tokens: [Int32], cache: KVCache) {
        self.tokens = tokens
        self.cache = cache
    }
}

/// A weight matrix that editors may change, addressed by role rather than by file name.
public enum EditableWeight: Hashable, Sendable {
    /// The MLP down projection of a block, as `[d, m]` (out × in) whatever the file stores.
    case mlpDown(Int)
}

/// A decoder-only language model. The generation loop, samplers and editors depend only on this.
public protocol LanguageModel: AnyObject {
    var config: ModelConfig { get }
    /// Runs the new tokens of every sequence through the model, appending to their caches, and returns
    /// logits per sequence (`[1, vocab]` for `.last`, `[tokens, vocab]` for `.all`, empty for `.none`).
    func forward(_ batch: [SequenceInput], hooks: Hooks?, logits: LogitRows) throws -> [Matrix]
    /// The live matrix behind an editable weight; writing into it changes the model. Its quantized
    /// blocks (if any) are retired, so that decoding reads the floats from then on.
    func weight(_ w: EditableWeight) -> Matrix
    /// The same matrix for reading only (fingerprints, shapes, products): its quantized blocks stay in
    /// use, so nothing may be written into it.
    func readWeight(_ w: EditableWeight) -> Matrix
    /// Output head and final norm, for code that computes logits from a hidden state itself.
    func finalNorm(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>)
    var outputWeight: Matrix { get }
    /// The token-embedding table `[vocab, d]` (without position embeddings).
    var tokenEmbedding: Matrix { get }
}

extension LanguageModel {
    public func makeCache(capacity: Int = 256) -> KVCache { KVCache(config: config, capacity: capacity) }

    /// Convenience: one sequence, fresh or continued.
    public func forward(_ tokens: [Int32], cache: KVCache, hooks: Hooks? = nil, logits: LogitRows = .last) throws -> Matrix {
        try forward([SequenceInput(tokens: tokens, cache: cache)], hooks: hooks, logits: logits)[0]
    }
}

/// Where each row of a batched forward pass comes from. Built once per pass.
struct BatchLayout {
    let totalRows: Int
    let rowStart: [Int]     // first row of each sequence
    let lengths: [Int]      // new tokens of each sequence
    let past: [Int]         // cached positions before this pass
    let rowSequence: [Int]
    let rowPosition: [Int]

    init(_ batch: [SequenceInput], config: ModelConfig) throws {
        var start = 0
        var rowStart: [Int] = [], rowSequence: [Int] = [], rowPosition: [Int] = []
        for (s, item) in batch.enumerated() {
            rowStart.append(start)
            for (i, t) in item.tokens.enumerated() {
                guard t >= 0, Int(t) < config.vocab else {
                    throw EngramError.invalidArgument("token id \(t) at index \(i) is outside the vocabulary (0..<\(config.vocab))")
                }
                rowSequence.append(s)
                rowPosition.append(item.cache.count + i)
            }
            // GPT-2 has no position embedding past its context; a rotary model would run on, untrained there.
            if item.cache.count + item.tokens.count > config.contextLength {
                throw EngramError.invalidArgument("a sequence of \(item.cache.count + item.tokens.count) tokens exceeds the model's context of \(config.contextLength) tokens")
            }
            start += item.tokens.count
        }
        totalRows = start
        self.rowStart = rowStart
        lengths = batch.map { $0.tokens.count }
        past = batch.map { $0.cache.count }
        self.rowSequence = rowSequence
        self.rowPosition = rowPosition
    }

    func rows(_ site: HookSite, _ pointer: UnsafeMutablePointer<Float>, width: Int) -> ActivationRows {
        ActivationRows(site: site, pointer: pointer, rows: totalRows, width: width, sequence: rowSequence, position: rowPosition)
    }
}

extension Hooks {
    /// Calls the site's handlers; true when the pass is to stop here (`stopAfter`).
    @inline(__always)
    func run(_ site: HookSite, _ layout: BatchLayout, _ pointer: UnsafeMutablePointer<Float>, width: Int) -> Bool {
        if let h = handlers[site] { h(layout.rows(site, pointer, width: width)) }
        return stopAfter == site
    }
}

/// Causal multi-head attention with grouped K/V heads over a KV cache, shared by every architecture.
/// Q/K already carry their position encoding; this stores K and V and mixes values.
enum Attention {
    static func run(layout: BatchLayout, batch: [SequenceInput], layer: Int, config: ModelConfig,
                    q: UnsafeMutablePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                    out: UnsafeMutablePointer<Float>) {
        let hd = config.headDim, qDim = config.qDim, kvDim = config.kvDim
        let group = config.heads / config.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        for (s, item) in batch.enumerated() {
            let cache = item.cache, n = layout.lengths[s], past = layout.past[s], r0 = layout.rowStart[s]
            guard n > 0 else { continue }
            let total = past + n
            let keys = cache.keys[layer].pointer, values = cache.values[layer].pointer
            (keys + past * kvDim).update(from: k + r0 * kvDim, count: n * kvDim)
            (values + past * kvDim).update(from: v + r0 * kvDim, count: n * kvDim)
            let scores = FloatBuffer(count: n * total, zeroed: false)
            for h in 0..<config.heads {
                let kvHead = h / group
                let qh = q + r0 * qDim + h * hd
                let kh = keys + kvHead * hd, vh = values + kvHead * hd
                let oh = out + r0 * qDim + h * hd
                if n == 1 {
                    BLAS.gemv(trans: false, m: total, n: hd, alpha: scale, a: kh, lda: kvDim, x: qh, y: scores.pointer)
                    Kernels.softmax(scores.pointer, count: total)
                    BLAS.gemv(trans: true, m: total, n: hd, a: vh, lda: kvDim, x: scores.pointer, y: oh)
                } else {
                    // scores[i, j] = q_i · k_j / sqrt(hd), for i in new rows, j in all positions.
                    BLAS.gemm(transA: false, transB: true, m: n, n: total, k: hd, alpha: scale,
                              a: qh, lda: qDim, b: kh, ldb: kvDim, c: scores.pointer, ldc: total)
                    for i in 0..<n {
                        let row = scores.pointer + i * total
                        let visible = past + i + 1
                        for j in visible..<total { row[j] = -Float.infinity }
                        Kernels.softmax(row, count: visible)
                        for j in visible..<total { row[j] = 0 }
                    }
                    BLAS.gemm(transA: false, transB: false, m: n, n: hd, k: total,
                              a: scores.pointer, lda: total, b: vh, ldb: kvDim, c: oh, ldc: qDim)
                }
            }
            cache.count = total
        }
    }

    static func reserve(_ batch: [SequenceInput], layout: BatchLayout) {
        for (s, item) in batch.enumerated() { item.cache.reserve(layout.past[s] + layout.lengths[s]) }
    }
}

/// Computes the requested logit rows from the final hidden states (already normalised).
enum OutputHead {
    /// Logits of the requested rows of every sequence, from one matrix product over all of them: the
    /// head (vocab × d, the largest matrix of a small model) is read once per pass rather than once per
    /// sequence, which made batched generation memory-bound. Each sequence's matrix is a view into
    /// the shared result.
    static func logits(_ normed: UnsafePointer<Float>, layout: BatchLayout, request: LogitRows,
                       weight: Matrix, bias: Matrix? = nil) -> [Matrix] {
        let d = weight.cols, vocab = weight.rows
        var rows: [Int] = [], counts: [Int] = []
        for s in layout.lengths.indices {
            let n = layout.lengths[s], r0 = layout.rowStart[s]
            switch request {
            case .none: counts.append(0)
            case .last where n > 0: rows.append(r0 + n - 1); counts.append(1)
            case .all: rows += r0..<(r0 + n); counts.append(n)
            default: counts.append(0)
            }
        }
        let total = rows.count
        let result = FloatBuffer(count: total * vocab, zeroed: false)
        if total > 0 {
            if rows[total - 1] - rows[0] + 1 == total { // rows ascend: a contiguous block
                BLAS.linear(normed + rows[0] * d, rows: total, weight: weight, into: result.pointer)
            } else {
                let gathered = FloatBuffer(count: total * d, zeroed: false)
                for (i, r) in rows.enumerated() { (gathered.pointer + i * d).update(from: normed + r * d, count: d) }
                BLAS.linear(gathered.pointer, rows: total, weight: weight, into: result.pointer)
            }
            if let bias { Kernels.addBias(result.pointer, bias: bias.pointer, rows: total, width: vocab) }
        }
        var offset = 0
        return counts.map { count in
            defer { offset += count }
            return Matrix(rows: count, cols: vocab, pointer: result.pointer + offset * vocab, owner: result)
        }
    }
}
