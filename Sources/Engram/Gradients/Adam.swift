import Foundation

/// Adam for one parameter tensor, with the same arithmetic as `torch.optim.Adam` at its defaults
/// (betas 0.9 / 0.999, eps 1e-8, bias correction, no amsgrad). `weightDecay` is torch's coupled L2
/// term (added to the gradient), not AdamW's decoupled decay.
///
/// Per element, at step t: g ← g + wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
/// p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps).
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public private(set) var step = 0
    public let count: Int
    private var m: [Float]
    private var v: [Float]

    public init(count: Int, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0) {
        self.count = count
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: count)
        v = [Float](repeating: 0, count: count)
    }

    /// Updates `count` parameters in place from their gradient.
    public mutating func update(_ parameters: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>) {
        step += 1
        // torch computes the corrections in Python floats (double), then applies them in float32.
        let correction1 = 1 - pow(Double(beta1), Double(step))
        let correction2Root = Float((1 - pow(Double(beta2), Double(step))).squareRoot())
        let stepSize = Float(Double(learningRate) / correction1)
        let b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        m.withUnsafeMutableBufferPointer { mp in
            v.withUnsafeMutableBufferPointer { vp in
                for i in 0..<count {
                    var g = gradient[i]
                    if wd != 0 { g += wd * parameters[i] }
                    mp[i] = b1 * mp[i] + (1 - b1) * g
                    vp[i] = b2 * vp[i] + (1 - b2) * g * g
                    let denominator = vp[i].squareRoot() / correction2Root + eps
                    parameters[i] -= stepSize * mp[i] / denominator
                }
            }
        }
    }

    /// Convenience for array parameters.
    public mutating func update(_ parameters: inout [Float], gradient: [Float]) throws {
        guard parameters.count == count, gradient.count == count else {
            throw EngramError.invalidArgument("Adam over \(count) values was given \(parameters.count) parameters and \(gradient.count) gradients")
        }
        parameters.withUnsafeMutableBufferPointer { p in
            gradient.withUnsafeBufferPointer { update(p.baseAddress!, gradient: $0.baseAddress!) }
        }
    }
}
