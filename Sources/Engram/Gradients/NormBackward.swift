import Foundation

/// RMSNorm and LayerNorm with the statistics the backward pass needs. The forward is the model's own
/// (`Kernels.rmsNorm` / `Kernels.layerNorm`), so a tape that starts from a hidden state produced by the
/// model's forward continues it without a seam.
///
/// Statistics layout: two floats per row, `(mean, rstd)`; RMSNorm stores mean = 0.
enum NormOps {
    static func forward(_ norm: DecoderWeights.Norm, _ x: UnsafePointer<Float>, rows: Int, width: Int, eps: Float,
                        into out: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>) {
        switch norm {
        case let .rms(w):
            Kernels.rmsNorm(x, weight: w.pointer, rows: rows, width: width, eps: eps, into: out, stats: stats)
        case let .layer(w, b):
            Kernels.layerNorm(x, weight: w.pointer, bias: b.pointer, rows: rows, width: width, eps: eps, into: out, stats: stats)
        }
    }

    /// Adds `∂L/∂x` to `dx`, given `dy = ∂L/∂(norm output)`, the norm's input `x` and its statistics.
    ///
    /// RMSNorm, with `g = dy ⊙ w` and `s = rstd`: `dx = s·g − s³·x·(g·x)/D`.
    /// LayerNorm, with `x̂ = (x − mean)·s`: `dx = s·(g − mean(g) − x̂·mean(g ⊙ x̂))`.
    static func backward(_ norm: DecoderWeights.Norm, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         stats: UnsafePointer<Float>, rows: Int, width: Int, addInto dx: UnsafeMutablePointer<Float>) {
        let n = Float(width)
        switch norm {
        case let .rms(w):
            for r in 0..<rows {
                let g = dy + r * width, xr = x + r * width, out = dx + r * width
                let s = stats[2 * r + 1]
                var gx: Float = 0
                for i in 0..<width { gx += g[i] * w.pointer[i] * xr[i] }
                let c = s * s * s * gx / n
                for i in 0..<width { out[i] += s * g[i] * w.pointer[i] - c * xr[i] }
            }
        case let .layer(w, _):
            for r in 0..<rows {
                let g = dy + r * width, xr = x + r * width, out = dx + r * width
                let mean = stats[2 * r], s = stats[2 * r + 1]
                var gMean: Float = 0, gxMean: Float = 0
                for i in 0..<width {
                    let gi = g[i] * w.pointer[i]
                    gMean += gi
                    gxMean += gi * (xr[i] - mean) * s
                }
                gMean /= n
                gxMean /= n
                for i in 0..<width {
                    let xhat = (xr[i] - mean) * s
                    out[i] += s * (g[i] * w.pointer[i] - gMean - xhat * gxMean)
                }
            }
        }
    }
}
