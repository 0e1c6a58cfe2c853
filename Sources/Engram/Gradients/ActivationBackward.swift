import Foundation

/// The MLP non-linearities: forward from saved pre-activations, and backward.
enum ActivationOps {
    /// `key = silu(gate) * up` from the saved pre-activations (the tape keeps gate and up, not key).
    static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, into key: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let g = gate[i]
            key[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// Given `dKey`, writes `dGate` over `dKey` and `dUp` into `dUp`.
    /// With σ the logistic function: silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
    static func swigluBackward(dKey: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               count: Int, dUp: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let g = gate[i], sigma = 1 / (1 + expf(-g))
            let dk = dKey[i]
            dUp[i] = dk * g * sigma
            dKey[i] = dk * up[i] * sigma * (1 + g * (1 - sigma))
        }
    }

    static let geluC: Float = 0.7978845608028654 // sqrt(2/pi)

    /// GPT-2's tanh-approximated GELU, same expression as `Kernels.gelu`.
    static func gelu(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let v = x[i]
            y[i] = 0.5 * v * (1 + tanhf(geluC * (v + 0.044715 * v * v * v)))
        }
    }

    /// `dx = dy · gelu'(x)` in place over `dy`, for `u = c(x + 0.044715x³)`:
    /// gelu'(x) = ½(1 + tanh u) + ½x(1 − tanh²u)·c(1 + 3·0.044715x²).
    static func geluBackward(dy: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let t = tanhf(geluC * (v + 0.044715 * v * v * v))
            let derivative = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * geluC * (1 + 3 * 0.044715 * v * v)
            dy[i] *= derivative
        }
    }
}
