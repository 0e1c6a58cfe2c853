import Foundation

/// Element-wise and row-wise kernels. Plain loops over raw pointers: with -Ounchecked the
/// compiler vectorizes them; they are a small share of the time next to the matrix products.
public enum Kernels {
    /// `out[i] = x[i] / rms(x) * weight[i]`, row by row. eps as in the model config. With `stats`, each
    /// row's `(mean, 1/rms)` is stored there (mean = 0), for the backward pass.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, width: Int,
                               eps: Float, into out: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>? = nil) {
        for r in 0..<rows {
            let xr = x + r * width, yr = out + r * width
            var sum: Float = 0
            for i in 0..<width { sum += xr[i] * xr[i] }
            let scale = 1 / (sum / Float(width) + eps).squareRoot()
            for i in 0..<width { yr[i] = xr[i] * scale * weight[i] }
            if let stats { stats[2 * r] = 0; stats[2 * r + 1] = scale }
        }
    }

    /// LayerNorm with affine weight and bias (GPT-2). With `stats`, each row's `(mean, 1/std)`.
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 rows: Int, width: Int, eps: Float, into out: UnsafeMutablePointer<Float>,
                                 stats: UnsafeMutablePointer<Float>? = nil) {
        for r in 0..<rows {
            let xr = x + r * width, yr = out + r * width
            var mean: Float = 0
            for i in 0..<width { mean += xr[i] }
            mean /= Float(width)
            var variance: Float = 0
            for i in 0..<width { let d = xr[i] - mean; variance += d * d }
            variance /= Float(width)
            let scale = 1 / (variance + eps).squareRoot()
            for i in 0..<width { yr[i] = (xr[i] - mean) * scale * weight[i] + bias[i] }
            if let stats { stats[2 * r] = mean; stats[2 * r + 1] = scale }
        }
    }

    /// In-place softmax over `count` values; returns nothing, leaves probabilities.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maxValue = -Float.infinity
        for i in 0..<count where x[i] > maxValue { maxValue = x[i] }
        var sum: Float = 0
        for i in 0..<count { let e = expf(x[i] - maxValue); x[i] = e; sum += e }
        let inv = 1 / sum
        for i in 0..<count { x[i] *= inv }
    }

    /// log-softmax of a row into `out` (double accumulation for the normaliser).
    public static func logSoftmax(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        var maxValue = -Float.infinity
        for i in 0..<count where x[i] > maxValue { maxValue = x[i] }
        var sum: Double = 0
        for i in 0..<count { sum += Double(expf(x[i] - maxValue)) }
        let logZ = maxValue + Float(log(sum))
        for i in 0..<count { out[i] = x[i] - logZ }
    }

    /// `gate[i] = silu(gate[i]) * up[i]` — the LLaMA MLP key.
    public static func swiglu(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// GPT-2's tanh approximation of GELU ("gelu_new"), in place.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let c: Float = 0.7978845608028654 // sqrt(2/pi)
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
        }
    }

    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }

    /// Adds a bias row to each of `rows` rows.
    public static func addBias(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows { add(x + r * width, bias, count: width) }
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var s: Float = 0
        for i in 0..<count { s += a[i] * b[i] }
        return s
    }
}

/// Rotary position embedding. Two layouts exist for the same maths:
/// - `interleaved`: rotate adjacent pairs (x0,x1),(x2,x3)… — llama.cpp's layout for LLaMA, whose
///   converters permute the Q/K rows of Hugging Face checkpoints into it;
/// - `neox`: rotate (x_i, x_{i+half}) — Hugging Face's `rotate_half`, used as-is by Qwen2 GGUFs.
public enum RopeStyle: String, Sendable, Codable { case interleaved, neox }

public struct Rope: Sendable {
    public let headDim: Int
    public let style: RopeStyle
    let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Float, style: RopeStyle) {
        self.headDim = headDim
        self.style = style
        inverseFrequencies = (0..<headDim / 2).map { i in
            Float(1.0 / pow(Double(theta), Double(2 * i) / Double(headDim)))
        }
    }

    /// Rotates `heads` consecutive head vectors of one token at `position`, in place.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = headDim / 2
        var cosines = [Float](repeating: 0, count: half), sines = cosines
        for i in 0..<half {
            // Angles in double: float32 loses precision for large positions.
            let angle = Double(position) * Double(inverseFrequencies[i])
            cosines[i] = Float(cos(angle)); sines[i] = Float(sin(angle))
        }
        for h in 0..<heads {
            let v = x + h * headDim
            for i in 0..<half {
                let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = v[a], x1 = v[b]
                v[a] = x0 * cosines[i] - x1 * sines[i]
                v[b] = x0 * sines[i] + x1 * cosines[i]
            }
        }
    }
}
