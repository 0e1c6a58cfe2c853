import Foundation

/// One prompt of a value search (spec §2.3): the tokens, the position where `δ` is added (the
/// subject's last token), and the target ids, which label the last `targets.count` positions
/// (the logits at position `t` score the token at `t + 1`, so the tokens end with all but the last
/// target id). A KL ("essence") prompt has no targets.
public struct ValueSearchPrompt: Sendable, Equatable {
    public var tokens: [Int32]
    public var lookup: Int
    public var targets: [Int32]

    public init(tokens: [Int32], lookup: Int, targets: [Int32] = []) {
        self.tokens = tokens
        self.lookup = lookup
        self.targets = targets
    }

    /// `context + prompt + target[:-1]` with the last `target.count` positions labelled.
    public init(prompt: [Int32], lookup: Int, target: [Int32]) {
        self.init(tokens: prompt + target.dropLast(), lookup: lookup, targets: target)
    }

    /// The first labelled position.
    var firstTarget: Int { tokens.count - targets.count }
}

/// The knobs of the `v*` optimisation (spec §2.3, §2.5, §3.1). Defaults are EasyEdit's LLaMA ROME row.
public struct ValueSearchHyperparameters: Sendable, Equatable, Codable {
    public var steps: Int = 25               // v_num_grad_steps
    public var learningRate: Float = 0.5     // v_lr
    public var weightDecay: Float = 1e-3     // v_weight_decay
    public var klFactor: Float = 0.0625      // kl_factor
    public var clampNormFactor: Float = 4    // clamp_norm_factor
    /// The loop stops as soon as the loss falls below this.
    public var earlyStopLoss: Float = 5e-2

    public init(steps: Int = 25, learningRate: Float = 0.5, weightDecay: Float = 1e-3, klFactor: Float = 0.0625,
                clampNormFactor: Float = 4, earlyStopLoss: Float = 5e-2) {
        self.steps = steps
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.klFactor = klFactor
        self.clampNormFactor = clampNormFactor
        self.earlyStopLoss = earlyStopLoss
    }
}

/// The parts of the value-search objective at one `δ`.
public struct ValueSearchLoss: Sendable, Equatable, Codable {
    /// `nll + kl + weightDecay`.
    public var total: Float
    /// Mean over rewriting prompts of `−Σ log p(target) / n_targets`.
    public var nll: Float
    /// `kl_factor · KL(P_cur ‖ P_init)` at the essence prompts' lookups, averaged over them.
    public var kl: Float
    /// `v_weight_decay · ‖δ‖ / ‖target_init‖²`.
    public var weightDecay: Float
}

public struct ValueSearchResult: Sendable {
    /// `v* = target_init + δ`.
    public var value: [Float]
    public var delta: [Float]
    public var targetInit: [Float]
    /// The loss of every forward pass, the last one included (the one that stopped the loop).
    public var losses: [ValueSearchLoss]
    /// Whether the loop ended on the early-stop threshold rather than on the step budget.
    public var stoppedEarly: Bool
}

/// Optimises `δ ∈ R^d` added at one hook site of layer `l` (the MLP output for ROME, the block output
/// for MEMIT and AlphaEdit) at each prompt's lookup position, so that the model predicts the targets
/// while its "essence" prediction stays put. Spec §2.3 (ROME) and §3 step 1 (MEMIT `z`).
///
/// Why it is fast: `δ` only changes blocks above `l`, and only at positions from the lookup on.
/// The constructor runs the unchanged part once: every position before the lookup through all blocks
/// (their keys and values are what later positions attend to), and the lookup and later positions
/// up to block `l`. Each step then reruns blocks `l+1..<L` on the positions from the lookup to the
/// last labelled one, computes logits only at labelled positions and the essence lookups, and back-
/// propagates to `δ` without forming any weight gradient.
///
/// Adding `δ` to the MLP output of block `l` or to the block's output changes the same residual
/// stream, so both sites share the computation; they differ only in `target_init`.
public final class ValueSearch {
    public let site: HookSite
    public let layer: Int
    /// The hook site's original value at the first rewriting prompt's lookup.
    public let targetInit: [Float]
    public let rewriting: [ValueSearchPrompt]
    public let essence: [ValueSearchPrompt]

    private let tape: DecoderTape
    private let input: FloatBuffer        // residual stream after block l at the recomputed rows, δ = 0
    private let perturbed: FloatBuffer    // `input` with δ added at the lookup rows
    private let lookupRows: [Int]         // tape row of each sequence's lookup
    private let labels: [(output: Int, token: Int, weight: Float)]
    private let essenceOutputs: [Int]
    private var initialLogProbs: [[Float]] = []
    private let dLogits: FloatBuffer
    private var lastForwardDelta: [Float]?
    private let d: Int

    /// - Parameters:
    ///   - site: `.mlpOutput(l)` (ROME) or `.residual(l)` (MEMIT, AlphaEdit).
    ///   - rewriting: the prompts with targets (the first is the un-prefixed one unless `targetInitRow` says otherwise).
    ///   - essence: the KL prompts (ROME and MEMIT use one, "{subject} is a").
    public init(model: LanguageModel, site: HookSite, rewriting: [ValueSearchPrompt], essence: [ValueSearchPrompt],
                targetInitRow: Int = 0) throws {
        let weights = try DecoderWeights(model)
        let c = weights.config
        let l: Int
        switch site {
        case let .mlpOutput(x), let .residual(x): l = x
        default: throw EngramError.invalidArgument("value search adds δ at .mlpOutput(l) or .residual(l), not at \(site)")
        }
        guard (0..<c.layers).contains(l) else { throw EngramError.invalidArgument("value search layer \(l) is outside 0..<\(c.layers)") }
        guard !rewriting.isEmpty else { throw EngramError.invalidArgument("value search needs at least one rewriting prompt") }
        guard rewriting.indices.contains(targetInitRow) else {
            throw EngramError.invalidArgument("targetInitRow \(targetInitRow) is outside the \(rewriting.count) rewriting prompts")
        }
        for (i, p) in (rewriting + essence).enumerated() {
            let kind = i < rewriting.count ? "rewriting prompt \(i)" : "essence prompt \(i - rewriting.count)"
            guard p.tokens.indices.contains(p.lookup) else {
                throw EngramError.invalidArgument("\(kind): lookup \(p.lookup) is outside its \(p.tokens.count) tokens")
            }
            if i < rewriting.count {
                guard !p.targets.isEmpty, p.targets.count <= p.tokens.count else {
                    throw EngramError.invalidArgument("\(kind): \(p.targets.count) targets for \(p.tokens.count) tokens")
                }
                // Labels before the lookup would not depend on δ; the reference layout never has them.
                guard p.firstTarget >= p.lookup else {
                    throw EngramError.invalidArgument("\(kind): labelled position \(p.firstTarget) precedes the lookup \(p.lookup)")
                }
            }
            for t in p.targets where !(0..<Int32(c.vocab)).contains(t) {
                throw EngramError.invalidArgument("\(kind): target id \(t) is outside the vocabulary (0..<\(c.vocab))")
            }
        }
        self.site = site
        layer = l
        self.rewriting = rewriting
        self.essence = essence
        d = c.hidden

        // Each sequence is recomputed from its lookup to its last needed position: the last label for
        // rewriting prompts, the lookup itself for essence prompts (later positions cannot affect it).
        let all = rewriting + essence
        let ends = rewriting.map(\.tokens.count) + essence.map { $0.lookup + 1 }
        let caches = zip(all, ends).map { p, end in KVCache(config: c, capacity: max(end, 1)) }

        // Positions before each lookup, through every block: their keys and values stay fixed.
        let prefixes = all.indices.filter { all[$0].lookup > 0 }
        if !prefixes.isEmpty {
            _ = try model.forward(prefixes.map { SequenceInput(tokens: Array(all[$0].tokens[..<all[$0].lookup]), cache: caches[$0]) },
                                  hooks: nil, logits: .none)
        }
        // From the lookup on, up to block l: capture the residual stream after block l and target_init.
        var starts = [Int](), row0 = 0
        for (p, end) in zip(all, ends) { starts.append(row0); row0 += end - p.lookup }
        let n = row0
        let captured = FloatBuffer(count: n * c.hidden, zeroed: false)
        var initValue: [Float] = []
        var hooks = Hooks()
        hooks.stopAfterLayer = l
        let initSequence = targetInitRow, initPosition = rewriting[targetInitRow].lookup
        hooks.on(site) { rows in
            if let r = rows.rowIndex(sequence: initSequence, position: initPosition) { initValue = rows.values(row: r) }
        }
        hooks.on(.residual(l)) { rows in
            captured.pointer.update(from: rows.pointer, count: rows.rows * rows.width)
        }
        _ = try model.forward(zip(all.indices, ends).map { i, end in
            SequenceInput(tokens: Array(all[i].tokens[all[i].lookup..<end]), cache: caches[i])
        }, hooks: hooks, logits: .none)
        targetInit = initValue
        input = captured
        perturbed = FloatBuffer(count: n * c.hidden, zeroed: false)
        lookupRows = starts

        var outputs: [Int] = [], labels: [(Int, Int, Float)] = []
        for (i, p) in rewriting.enumerated() {
            // The reference divides each prompt's summed log-probabilities by the target length and
            // averages over prompts.
            let weight = 1 / (Float(p.targets.count) * Float(rewriting.count))
            for (k, t) in p.targets.enumerated() {
                labels.append((outputs.count, Int(t), weight))
                outputs.append(starts[i] + p.firstTarget + k - p.lookup)
            }
        }
        var essenceOutputs: [Int] = []
        for j in essence.indices {
            essenceOutputs.append(outputs.count)
            outputs.append(starts[rewriting.count + j])
        }
        self.labels = labels
        self.essenceOutputs = essenceOutputs
        tape = try DecoderTape(weights: weights, firstLayer: l + 1,
                               sequences: all.indices.map { TapeSequence(start: all[$0].lookup, end: ends[$0], cache: caches[$0]) },
                               outputs: outputs)
        dLogits = FloatBuffer(count: outputs.count * c.vocab)

        // P_init: the essence distributions with δ = 0.
        let logits = tape.forward(input: input.pointer)
        lastForwardDelta = [Float](repeating: 0, count: d)
        initialLogProbs = essenceOutputs.map { LossOps.logSoftmax(logits + $0 * c.vocab, vocab: c.vocab) }
    }

    /// The objective at `δ` and, when asked, its gradient with respect to `δ`.
    public func evaluate(delta: [Float], klFactor: Float, weightDecay: Float, gradient: Bool = true) throws -> (loss: ValueSearchLoss, gradient: [Float]?) {
        let loss = try forwardLoss(delta: delta, klFactor: klFactor, weightDecay: weightDecay)
        return (loss, gradient ? backwardDelta(delta: delta, weightDecay: weightDecay) : nil)
    }

    /// Runs the forward at `δ` (skipped when the tape already holds it), returns the loss and leaves
    /// `∂loss/∂logits` in `dLogits` for `backwardDelta`.
    private func forwardLoss(delta: [Float], klFactor: Float, weightDecay: Float) throws -> ValueSearchLoss {
        guard delta.count == d else { throw EngramError.invalidArgument("δ has \(delta.count) values, the model's hidden width is \(d)") }
        let vocab = tape.vocab
        let logits: UnsafePointer<Float>
        if lastForwardDelta == delta {
            logits = UnsafePointer(tape.logits.pointer)
        } else {
            perturbed.pointer.update(from: input.pointer, count: input.count)
            for r in lookupRows { for i in 0..<d { perturbed.pointer[r * d + i] += delta[i] } }
            logits = tape.forward(input: perturbed.pointer)
            lastForwardDelta = delta
        }
        dLogits.pointer.update(repeating: 0, count: dLogits.count)
        var nll: Double = 0
        for (o, token, w) in labels {
            nll += LossOps.crossEntropy(logits + o * vocab, vocab: vocab, token: token, weight: w, dLogits: dLogits.pointer + o * vocab)
        }
        var kl: Double = 0
        let klWeight = essence.isEmpty ? 0 : klFactor / Float(essence.count)
        for (j, o) in essenceOutputs.enumerated() {
            kl += initialLogProbs[j].withUnsafeBufferPointer {
                LossOps.klFromInitial(logits + o * vocab, initialLogProbs: $0.baseAddress!, vocab: vocab, weight: klWeight,
                                      dLogits: dLogits.pointer + o * vocab)
            }
        }
        let wd = weightDecay * Self.norm(delta) / (Self.norm(targetInit) * Self.norm(targetInit))
        return ValueSearchLoss(total: Float(nll + kl) + wd, nll: Float(nll), kl: Float(kl), weightDecay: wd)
    }

    /// `∂loss/∂δ` for the `δ` of the last `forwardLoss`.
    private func backwardDelta(delta: [Float], weightDecay: Float) -> [Float] {
        let dInput = tape.backward(dLogits: dLogits.pointer)
        var g = [Float](repeating: 0, count: d)
        for r in lookupRows { for i in 0..<d { g[i] += dInput[r * d + i] } }
        // ‖δ‖ has no gradient at 0; torch's norm backward gives 0 there, and so do we.
        let deltaNorm = Self.norm(delta)
        if deltaNorm > 0 {
            let s = weightDecay / (deltaNorm * Self.norm(targetInit) * Self.norm(targetInit))
            for i in 0..<d { g[i] += s * delta[i] }
        }
        return g
    }

    /// The reference loop: Adam on δ from zero; stop when the loss is below the threshold or at the
    /// last step (before its backward); after each step, clamp ‖δ‖ to `clamp_norm_factor·‖target_init‖`.
    public func run(_ hp: ValueSearchHyperparameters) throws -> ValueSearchResult {
        var delta = [Float](repeating: 0, count: d)
        var adam = Adam(count: d, learningRate: hp.learningRate)
        let maxNorm = hp.clampNormFactor * Self.norm(targetInit)
        var losses: [ValueSearchLoss] = []
        var stoppedEarly = false
        for step in 0..<max(hp.steps, 1) {
            let loss = try forwardLoss(delta: delta, klFactor: hp.klFactor, weightDecay: hp.weightDecay)
            losses.append(loss)
            if loss.total < hp.earlyStopLoss { stoppedEarly = true; break }
            if step >= hp.steps - 1 { break }
            let g = backwardDelta(delta: delta, weightDecay: hp.weightDecay)
            delta.withUnsafeMutableBufferPointer { p in
                g.withUnsafeBufferPointer { adam.update(p.baseAddress!, gradient: $0.baseAddress!) }
            }
            let n = Self.norm(delta)
            if n > maxNorm { for i in 0..<d { delta[i] *= maxNorm / n } }
        }
        return ValueSearchResult(value: zip(targetInit, delta).map { $0 + $1 }, delta: delta, targetInit: targetInit,
                                 losses: losses, stoppedEarly: stoppedEarly)
    }

    static func norm(_ v: [Float]) -> Float {
        var s: Double = 0
        for x in v { s += Double(x) * Double(x) }
        return Float(s.squareRoot())
    }
}
