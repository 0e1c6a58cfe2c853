import Foundation

/// A token's log-probability at its position and the most likely tokens there, under the model's own
/// distribution: the log-softmax of the raw logits, before temperature, top-k or top-p (what a client
/// scoring text with the model wants, whatever it sampled with).
public struct TokenLogprob: Sendable, Equatable {
    public struct Alternative: Sendable, Equatable {
        public var token: Int32
        public var logprob: Float
    }

    public var token: Int32
    public var logprob: Float
    /// The most likely tokens, most likely first (ties: lower id first); as many as asked for.
    public var top: [Alternative]

    /// `token`'s entry in one row of logits, with the `top` most likely tokens.
    public init(_ token: Int32, logits: UnsafePointer<Float>, count: Int, top: Int) {
        let logNormalizer = LossOps.normaliser(logits, vocab: count).1
        // A banned token (logit −∞) gets −9999, as vLLM reports it: JSON has no infinity.
        func finite(_ x: Double) -> Float { x == -.infinity ? -9999 : Float(x) }
        self.token = token
        logprob = finite(Double(logits[Int(token)]) - logNormalizer)
        self.top = top > 0 ? Sampler.topK(logits, count: count, k: min(top, count)).map {
            Alternative(token: $0.id, logprob: finite(Double($0.logit) - logNormalizer))
        } : []
    }
}
