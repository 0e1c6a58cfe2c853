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
        inParts(count) { range in
            for i in range {
                let g = gate[i]
                gate[i] = g / (1 + expf(-g)) * up[i]
            }
        }
    }

    /// GPT-2's tanh approximation of GELU ("gelu_new"), in place.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let c: Float = 0.7978845608028654 // sqrt(2/pi)
        inParts(count) { range in
            for i in range {
                let v = x[i]
                x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
            }
        }
    }

    /// Runs `body` over `0..<count` in one contiguous part per BLAS thread when there is enough work
    /// (a batch of prompts), in one piece otherwise (a decoded token). The activation functions call
    /// `expf`/`tanhf` per element: over thousands of rows that was ~8% of a statistics pass on one core
    /// while the other waited. Each element is computed the same way either way.
    static func inParts(_ count: Int, minimumPart: Int = 1 << 16, _ body: (Range<Int>) -> Void) {
        let parts = min(BLAS.threads, count / minimumPart)
        guard parts > 1 else { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((count * p / parts)..<(count * (p + 1) / parts))
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
}

/// Rotary embedding for a fixed set of rows, with the angles computed once: a forward pass rotates
/// the same positions in every layer, and the gradient tape reruns them at every optimisation step.
struct RopeTable {
    let rope: Rope
    let half: Int
    let cosines: [Float]   // [rows, half]
    let sines: [Float]

    init(rope: Rope, positions: [Int]) {
        self.rope = rope
        half = rope.headDim / 2
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                // Angles in double: float32 loses precision for large positions.
                let angle = Double(p) * Double(rope.inverseFrequencies[i])
                c[r * half + i] = Float(cos(angle))
                s[r * half + i] = Float(sin(angle))
            }
        }
        cosines = c
        sines = s
    }

    /// Rotates the `heads` head vectors of each row by its position's angles; `inverse` rotates back
    /// (the transpose of the rotation), which is the backward of the rotation.
    func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, stride: Int, inverse: Bool = false) {
        let hd = rope.headDim
        let sign: Float = inverse ? -1 : 1
        cosines.withUnsafeBufferPointer { cp in
            sines.withUnsafeBufferPointer { sp in
                for r in 0..<rows {
                    let c = cp.baseAddress! + r * half, s = sp.baseAddress! + r * half
                    for h in 0..<heads {
                        let v = x + r * stride + h * hd
                        for i in 0..<half {
                            let (a, b) = rope.style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                            let x0 = v[a], x1 = v[b], si = sign * s[i]
                            v[a] = x0 * c[i] - x1 * si
                            v[b] = x0 * si + x1 * c[i]
                        }
                    }
                }
            }
        }
    }
}
