import Foundation

/// A labelled position: the logits at `position` score `token`, adding `weight · −log p(token)` to
/// the loss. Weights express the reduction (mean over tokens, over prompts, …) of the caller's method.
public struct TokenLabel: Sendable, Equatable {
    public var position: Int
    public var token: Int32
    public var weight: Float
    public init(position: Int, token: Int32, weight: Float = 1) {
        self.position = position
        self.token = token
        self.weight = weight
    }
}

/// A sequence of a teacher-forced batch and its labels.
public struct LabelledSequence: Sendable, Equatable {
    public var tokens: [Int32]
    public var labels: [TokenLabel]
    public init(tokens: [Int32], labels: [TokenLabel]) {
        self.tokens = tokens
        self.labels = labels
    }
}

/// Teacher-forced cross-entropy over a fixed batch and its gradient with respect to chosen weight
/// matrices (for fine-tuning editors: FT-L, FT-M, …). Gradients are `[out, in]`, like
/// `LanguageModel.weight(_:)`.
///
/// The blocks below the lowest chosen weight's layer do not depend on the weights being trained, so
/// they are run once, at construction; each `evaluate()` reruns the blocks from that layer up with
/// the weights as they are then (an optimiser may have changed them in place), and the backward stops
/// as soon as the lowest chosen weight has its gradient.
///
/// New trainable weights are added by giving `EditableWeight` a case and the tape's backward one
/// gradient product at the place the weight is used.
public final class WeightGradient {
    public let weights: [EditableWeight]
    public let batch: [LabelledSequence]
    private let tape: DecoderTape
    private let input: FloatBuffer
    private let labels: [(output: Int, token: Int, weight: Float)]
    private let dLogits: FloatBuffer

    public init(model: LanguageModel, weights wanted: [EditableWeight], batch: [LabelledSequence]) throws {
        let net = try DecoderWeights(model)
        let c = net.config
        guard !wanted.isEmpty else { throw EngramError.invalidArgument("no weights to differentiate") }
        for w in wanted { try net.validate(w) }
        for (s, item) in batch.enumerated() {
            for t in item.tokens where !(0..<Int32(c.vocab)).contains(t) {
                throw EngramError.invalidArgument("sequence \(s): token id \(t) is outside the vocabulary (0..<\(c.vocab))")
            }
            for label in item.labels {
                guard item.tokens.indices.contains(label.position), (0..<Int32(c.vocab)).contains(label.token) else {
                    throw EngramError.invalidArgument("sequence \(s): label (position \(label.position), token \(label.token)) is outside its \(item.tokens.count) tokens or the vocabulary")
                }
            }
        }
        weights = Array(Set(wanted)).sorted { $0.layer < $1.layer }
        self.batch = batch
        let first = weights[0].layer

        // Only positions up to each sequence's last label matter (attention is causal).
        let used = batch.indices.filter { !batch[$0].labels.isEmpty }
        let ends = used.map { (batch[$0].labels.map(\.position).max() ?? 0) + 1 }
        let caches = ends.map { KVCache(config: c, capacity: $0) }
        var rowStart: [Int] = [], n = 0
        for e in ends { rowStart.append(n); n += e }
        let captured = FloatBuffer(count: n * c.hidden, zeroed: false)
        if first == 0 {
            for (k, s) in used.enumerated() {
                for p in 0..<ends[k] {
                    let row = captured.pointer + (rowStart[k] + p) * c.hidden
                    net.tokenEmbedding.copyRow(Int(batch[s].tokens[p]), into: row)
                    if let pe = net.positionEmbedding {
                        guard p < pe.rows else { throw EngramError.invalidArgument("sequence \(s) is longer than the model's \(pe.rows) positions") }
                        Kernels.add(row, pe.row(p), count: c.hidden)
                    }
                }
            }
        } else if n > 0 {
            var hooks = Hooks()
            hooks.stopAfter = .residual(first - 1)
            hooks.on(.residual(first - 1)) { rows in captured.pointer.update(from: rows.pointer, count: rows.rows * rows.width) }
            _ = try model.forward(used.indices.map { k in SequenceInput(tokens: Array(batch[used[k]].tokens[..<ends[k]]), cache: caches[k]) },
                                  hooks: hooks, logits: .none)
        }
        input = captured

        var outputs: [Int] = [], labels: [(Int, Int, Float)] = []
        for (k, s) in used.enumerated() {
            for label in batch[s].labels {
                labels.append((outputs.count, Int(label.token), label.weight))
                outputs.append(rowStart[k] + label.position)
            }
        }
        self.labels = labels
        tape = try DecoderTape(weights: net, firstLayer: first,
                               sequences: used.indices.map { TapeSequence(start: 0, end: ends[$0], cache: caches[$0]) },
                               outputs: outputs, gradients: weights, needsInputGradient: false)
        dLogits = FloatBuffer(count: outputs.count * c.vocab)
    }

    /// The loss with the weights as they are now, and its gradient for each chosen weight (fresh copies).
    public func evaluate(gradient: Bool = true) -> (loss: Float, gradients: [EditableWeight: Matrix]) {
        let vocab = tape.vocab
        let logits = tape.forward(input: input.pointer)
        dLogits.pointer.update(repeating: 0, count: dLogits.count)
        var loss: Double = 0
        for (o, token, w) in labels {
            loss += LossOps.crossEntropy(logits + o * vocab, vocab: vocab, token: token, weight: w,
                                         dLogits: gradient ? dLogits.pointer + o * vocab : nil)
        }
        guard gradient else { return (Float(loss), [:]) }
        tape.zeroGradients()
        tape.backward(dLogits: dLogits.pointer)
        return (Float(loss), tape.gradients.mapValues { $0.copy() })
    }
}
