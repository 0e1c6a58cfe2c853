import Foundation

/// Causal grouped-query attention over a sequence whose first `start` positions come from a cache,
/// keeping the softmax probabilities for the backward pass.
///
/// Per query head h (K/V head h / group), for new rows i and visible positions j ≤ start + i:
///   S = scale·Q Kᵀ,  P = softmax(S),  O = P V.
/// Backward, given dO:
///   dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ = scale·dS K,
///   dK[new] += scale·dSᵀ Q,  dV[new] += Pᵀ dO.
/// Gradients for the cached positions are not formed: they are constants of the tape.
enum AttentionOps {
    struct Span {
        let row0: Int     // first tape row of the sequence
        let count: Int    // new rows
        let start: Int    // cached positions before them
        var total: Int { start + count }
    }

    /// Probability floats needed for one layer.
    static func probabilityCount(_ spans: [Span], heads: Int) -> Int {
        spans.reduce(0) { $0 + heads * $1.count * $1.total }
    }

    static func forward(spans: [Span], keys: [UnsafePointer<Float>], values: [UnsafePointer<Float>], config c: ModelConfig,
                        q: UnsafePointer<Float>, probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        var offset = 0
        for (s, span) in spans.enumerated() {
            let n = span.count, total = span.total
            guard n > 0 else { continue }
            for h in 0..<c.heads {
                let p = probs + offset
                offset += n * total
                let kh = keys[s] + (h / group) * hd, vh = values[s] + (h / group) * hd
                BLAS.gemm(transA: false, transB: true, m: n, n: total, k: hd, alpha: scale,
                          a: q + span.row0 * qDim + h * hd, lda: qDim, b: kh, ldb: kvDim, c: p, ldc: total)
                for i in 0..<n {
                    let row = p + i * total, visible = span.start + i + 1
                    Kernels.softmax(row, count: visible)
                    for j in visible..<total { row[j] = 0 }
                }
                BLAS.gemm(transA: false, transB: false, m: n, n: hd, k: total,
                          a: p, lda: total, b: vh, ldb: kvDim, c: out + span.row0 * qDim + h * hd, ldc: qDim)
            }
        }
    }

    /// Writes dQ (all rows) and dK, dV (new rows only; zeroed here first).
    static func backward(spans: [Span], keys: [UnsafePointer<Float>], values: [UnsafePointer<Float>], config c: ModelConfig,
                         q: UnsafePointer<Float>, probs: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         rows: Int, scratch: UnsafeMutablePointer<Float>) {
        let hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        dk.update(repeating: 0, count: rows * kvDim)
        dv.update(repeating: 0, count: rows * kvDim)
        var offset = 0
        for (s, span) in spans.enumerated() {
            let n = span.count, total = span.total, start = span.start
            guard n > 0 else { continue }
            for h in 0..<c.heads {
                let p = probs + offset
                offset += n * total
                let kh = keys[s] + (h / group) * hd, vh = values[s] + (h / group) * hd
                let dOh = dOut + span.row0 * qDim + h * hd
                let qh = q + span.row0 * qDim + h * hd
                let dS = scratch
                // dP = dO Vᵀ, then dS in place.
                BLAS.gemm(transA: false, transB: true, m: n, n: total, k: hd,
                          a: dOh, lda: qDim, b: vh, ldb: kvDim, c: dS, ldc: total)
                for i in 0..<n {
                    let pr = p + i * total, dr = dS + i * total, visible = start + i + 1
                    var dot: Float = 0
                    for j in 0..<visible { dot += pr[j] * dr[j] }
                    for j in 0..<visible { dr[j] = pr[j] * (dr[j] - dot) }
                    for j in visible..<total { dr[j] = 0 }
                }
                BLAS.gemm(transA: false, transB: false, m: n, n: hd, k: total, alpha: scale,
                          a: dS, lda: total, b: kh, ldb: kvDim, c: dq + span.row0 * qDim + h * hd, ldc: qDim)
                let kvOffset = span.row0 * kvDim + (h / group) * hd
                // Only the columns j ≥ start (this tape's own positions) carry gradient anywhere.
                BLAS.gemm(transA: true, transB: false, m: n, n: hd, k: n, alpha: scale,
                          a: dS + start, lda: total, b: qh, ldb: qDim, beta: 1, c: dk + kvOffset, ldc: kvDim)
                BLAS.gemm(transA: true, transB: false, m: n, n: hd, k: n,
                          a: p + start, lda: total, b: dOh, ldb: qDim, beta: 1, c: dv + kvOffset, ldc: kvDim)
            }
        }
    }
}
