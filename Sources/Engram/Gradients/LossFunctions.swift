import Foundation

/// Losses over logit rows, each returning its value and adding its gradient with respect to the
/// logits. Sums run in Double: the vocabulary is tens of thousands wide.
enum LossOps {
    /// `−weight · log softmax(logits)[token]`; adds `weight · (softmax − onehot)` to `dLogits`.
    static func crossEntropy(_ logits: UnsafePointer<Float>, vocab: Int, token: Int, weight: Float,
                             dLogits: UnsafeMutablePointer<Float>?) -> Double {
        let (maxValue, logZ) = normaliser(logits, vocab: vocab)
        let logp = Double(logits[token]) - logZ
        if let dLogits {
            // softmax_v = exp(l_v − max) / Σ, with Σ = exp(logZ − max).
            let scale = weight / Float(exp(logZ - Double(maxValue)))
            for v in 0..<vocab { dLogits[v] += scale * expf(logits[v] - maxValue) }
            dLogits[token] -= weight
        }
        return -Double(weight) * logp
    }

    /// The log-probabilities of a logits row.
    static func logSoftmax(_ logits: UnsafePointer<Float>, vocab: Int) -> [Float] {
        let (_, logZ) = normaliser(logits, vocab: vocab)
        return (0..<vocab).map { Float(Double(logits[$0]) - logZ) }
    }

    /// `weight · KL(P_cur ‖ P_init) = weight · Σ p (log p − log p_init)` with `p = softmax(logits)`.
    /// This is the direction `kl_div(log_p_init, log_p_cur, log_target=True)` computes in the
    /// reference editors (spec §2.3). Its gradient with respect to logit u is
    /// `weight · p_u · ((log p_u − log p_init,u) − KL)`.
    static func klFromInitial(_ logits: UnsafePointer<Float>, initialLogProbs: UnsafePointer<Float>, vocab: Int,
                              weight: Float, dLogits: UnsafeMutablePointer<Float>?) -> Double {
        let (_, logZ) = normaliser(logits, vocab: vocab)
        var kl: Double = 0
        for v in 0..<vocab {
            let logp = Double(logits[v]) - logZ
            kl += exp(logp) * (logp - Double(initialLogProbs[v]))
        }
        if let dLogits {
            for v in 0..<vocab {
                let logp = Double(logits[v]) - logZ
                dLogits[v] += weight * Float(exp(logp) * ((logp - Double(initialLogProbs[v])) - kl))
            }
        }
        return Double(weight) * kl
    }

    /// (max logit, log Σ exp logits).
    static func normaliser(_ logits: UnsafePointer<Float>, vocab: Int) -> (Float, Double) {
        var maxValue = -Float.infinity
        for v in 0..<vocab where logits[v] > maxValue { maxValue = logits[v] }
        var sum: Double = 0
        for v in 0..<vocab { sum += Double(expf(logits[v] - maxValue)) }
        return (maxValue, Double(maxValue) + log(sum))
    }
}
