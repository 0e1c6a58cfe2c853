import Foundation

/// One prompt of a value search (spec §2.3): the tokens, the position where `δ` is added (the
/// subject's last token), and the labelled positions with their target ids (the logits at position
/// `t` score the token at `t + 1`). A KL ("essence") prompt has no targets.
public struct ValueSearchPrompt: Sendable, Equatable {
    public var tokens: [Int32]
    public var lookup: Int
    public var targets: [Int32]
    /// Where each target is scored; by default the last `targets.count` positions.
    public var targetPositions: [Int]

    public init(tokens: [Int32], lookup: Int, targets: [Int32] = [], targetPositions: [Int]? = nil) {
        self.tokens = tokens
        self.lookup = lookup
        self.targets = targets
        self.targetPositions = targetPositions ?? Array((tokens.count - targets.count)..<tokens.count)
    }

    /// One past the last position a search recomputes: the last label, or the lookup itself for a
    /// prompt without labels (an essence prompt: later positions cannot affect its lookup).
    var recomputedEnd: Int { (targetPositions.max() ?? lookup) + 1 }

    /// The reference layout: `context + prompt + target[:-1]`, the last `target.count` positions labelled.
    public init(prompt: [Int32], lookup: Int, target: [Int32]) {
        self.init(tokens: prompt + target.dropLast(), lookup: lookup, targets: target)
    }
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

/// One request's prompts in a value search. Requests searched together share the forward and backward
/// passes (their rows are stacked, which keeps the matrix products efficient), but each has its own
/// `δ`, loss, optimiser state and stopping step, so the result equals searching them one by one.
public struct ValueSearchGroup: Sendable, Equatable {
    public var rewriting: [ValueSearchPrompt]
    public var essence: [ValueSearchPrompt]
    /// The rewriting prompt whose lookup defines `target_init` (the reference uses the first, un-prefixed one).
    public var targetInitRow: Int

    public init(rewriting: [ValueSearchPrompt], essence: [ValueSearchPrompt], targetInitRow: Int = 0) {
        self.rewriting = rewriting
        self.essence = essence
        self.targetInitRow = targetInitRow
    }

    /// Tape rows the group's sequences take.
    var rows: Int { (rewriting + essence).reduce(0) { $0 + $1.recomputedEnd - $1.lookup } }
}

/// Optimises `δ ∈ R^d` added at one hook site of layer `l` (the MLP output for ROME, the block output
/// for MEMIT and AlphaEdit) at each prompt's lookup position, so that the model predicts the targets
/// while its "essence" prediction stays put. Spec §2.3 (ROME) and §3 step 1 (MEMIT `z`). Several
/// requests (groups) can be searched at once, each with its own `δ`.
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
    public let groups: [ValueSearchGroup]
    /// Per group: the hook site's original value at the lookup of its `targetInitRow` prompt.
    public let targetInits: [[Float]]
    /// The first group's `target_init`.
    public var targetInit: [Float] { targetInits[0] }

    /// The recomputed rows as contiguous runs of whole sequences, one tape each, run side by side
    /// (`BLAS.concurrently`) when OpenBLAS is allowed more than one thread.
    private let shards: [Shard]
    private let input: FloatBuffer        // residual stream after block l at the recomputed rows, δ = 0
    private let perturbed: FloatBuffer    // `input` with each group's δ added at its lookup rows
    private let lookupRows: [[Int]]       // per group, the tape row of each of its sequences' lookup
    private let labels: [(group: Int, output: Int, token: Int, weight: Float)]
    private let essenceOutputs: [(group: Int, output: Int)]
    private var initialLogProbs: [[Float]] = []   // per essence output
    private let head: Matrix              // the output head, run once for every shard's output rows
    private let normed: FloatBuffer       // every shard's output rows after the final norm, in output order
    private let dNormed: FloatBuffer
    private let outputCount: Int
    private let logits: FloatBuffer
    private let dLogits: FloatBuffer
    private let dInput: FloatBuffer       // ∂loss/∂input, all rows
    private var lastForwardDeltas: [[Float]]?
    private let d: Int
    private let vocab: Int

    /// One request (the common case).
    public convenience init(model: LanguageModel, site: HookSite, rewriting: [ValueSearchPrompt], essence: [ValueSearchPrompt],
                            targetInitRow: Int = 0) throws {
        try self.init(model: model, site: site, groups: [ValueSearchGroup(rewriting: rewriting, essence: essence, targetInitRow: targetInitRow)])
    }

    /// The model's weights must not change while the search is in use: the unchanged part is cached.
    ///
    /// - Parameters:
    ///   - site: `.mlpOutput(l)` (ROME) or `.residual(l)` (MEMIT, AlphaEdit).
    ///   - groups: per request, the prompts with targets and the KL ("essence") prompts (ROME and MEMIT
    ///     use one, "{subject} is a"; the KL term is their mean).
    ///   - threads: how many threads run the steps, each on its own share of the sequences. By default
    ///     OpenBLAS's thread count, as long as each thread gets at least 16 rows.
    public init(model: LanguageModel, site: HookSite, groups: [ValueSearchGroup], threads: Int? = nil) throws {
        let weights = try DecoderWeights(model)
        let c = weights.config
        let l: Int
        switch site {
        case let .mlpOutput(x), let .residual(x): l = x
        default: throw EngramError.invalidArgument("value search adds δ at .mlpOutput(l) or .residual(l), not at \(site)")
        }
        guard (0..<c.layers).contains(l) else { throw EngramError.invalidArgument("value search layer \(l) is outside 0..<\(c.layers)") }
        guard !groups.isEmpty else { throw EngramError.invalidArgument("value search needs at least one request") }
        for (g, group) in groups.enumerated() {
            let request = groups.count > 1 ? "request \(g): " : ""
            guard !group.rewriting.isEmpty else { throw EngramError.invalidArgument("\(request)value search needs at least one rewriting prompt") }
            guard group.rewriting.indices.contains(group.targetInitRow) else {
                throw EngramError.invalidArgument("\(request)targetInitRow \(group.targetInitRow) is outside the \(group.rewriting.count) rewriting prompts")
            }
            for (i, p) in (group.rewriting + group.essence).enumerated() {
                let kind = request + (i < group.rewriting.count ? "rewriting prompt \(i)" : "essence prompt \(i - group.rewriting.count)")
                guard p.tokens.indices.contains(p.lookup) else {
                    throw EngramError.invalidArgument("\(kind): lookup \(p.lookup) is outside its \(p.tokens.count) tokens")
                }
                if i < group.rewriting.count {
                    guard !p.targets.isEmpty, p.targetPositions.count == p.targets.count else {
                        throw EngramError.invalidArgument("\(kind): \(p.targets.count) targets for \(p.targetPositions.count) labelled positions")
                    }
                    for t in p.targetPositions {
                        guard p.tokens.indices.contains(t) else {
                            throw EngramError.invalidArgument("\(kind): labelled position \(t) is outside its \(p.tokens.count) tokens")
                        }
                        // A label before the lookup would not depend on δ; the reference layout never has one.
                        guard t >= p.lookup else {
                            throw EngramError.invalidArgument("\(kind): labelled position \(t) precedes the lookup \(p.lookup)")
                        }
                    }
                }
                for t in p.targets where !(0..<Int32(c.vocab)).contains(t) {
                    throw EngramError.invalidArgument("\(kind): target id \(t) is outside the vocabulary (0..<\(c.vocab))")
                }
            }
        }
        self.site = site
        layer = l
        self.groups = groups
        d = c.hidden
        vocab = c.vocab

        // All sequences, group by group: each group's rewriting prompts, then its essence prompts.
        // Each is recomputed from its lookup to its last needed position: the last label for rewriting
        // prompts, the lookup itself for essence prompts (later positions cannot affect it).
        let all = groups.flatMap { $0.rewriting + $0.essence }
        let ends = all.map(\.recomputedEnd)
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
        var firstSequence: [Int] = [], s0 = 0
        for group in groups { firstSequence.append(s0); s0 += group.rewriting.count + group.essence.count }
        let captured = FloatBuffer(count: n * c.hidden, zeroed: false)
        var initValues = [[Float]](repeating: [], count: groups.count)
        var hooks = Hooks()
        hooks.stopAfter = .residual(l)
        hooks.on(site) { rows in
            for (g, group) in groups.enumerated() {
                let sequence = firstSequence[g] + group.targetInitRow
                if let r = rows.rowIndex(sequence: sequence, position: group.rewriting[group.targetInitRow].lookup) {
                    initValues[g] = rows.values(row: r)
                }
            }
        }
        hooks.on(.residual(l)) { rows in
            captured.pointer.update(from: rows.pointer, count: rows.rows * rows.width)
        }
        _ = try model.forward(zip(all.indices, ends).map { i, end in
            SequenceInput(tokens: Array(all[i].tokens[all[i].lookup..<end]), cache: caches[i])
        }, hooks: hooks, logits: .none)
        targetInits = initValues
        input = captured
        perturbed = FloatBuffer(count: n * c.hidden, zeroed: false)

        var outputs: [Int] = [], labels: [(group: Int, output: Int, token: Int, weight: Float)] = [], essenceOutputs: [(group: Int, output: Int)] = []
        var lookupRows: [[Int]] = []
        for (g, group) in groups.enumerated() {
            let first = firstSequence[g]
            lookupRows.append(Array(starts[first..<(first + group.rewriting.count + group.essence.count)]))
            for (i, p) in group.rewriting.enumerated() {
                // The reference divides each prompt's summed log-probabilities by the target length and
                // averages over prompts.
                let weight = 1 / (Float(p.targets.count) * Float(group.rewriting.count))
                for (t, position) in zip(p.targets, p.targetPositions) {
                    labels.append((g, outputs.count, Int(t), weight))
                    outputs.append(starts[first + i] + position - p.lookup)
                }
            }
            for j in group.essence.indices {
                essenceOutputs.append((g, outputs.count))
                outputs.append(starts[first + group.rewriting.count + j])
            }
        }
        self.lookupRows = lookupRows
        self.labels = labels
        self.essenceOutputs = essenceOutputs
        let sequences = all.indices.map { TapeSequence(start: all[$0].lookup, end: ends[$0], cache: caches[$0]) }
        shards = try Self.shards(weights: weights, firstLayer: l + 1, sequences: sequences, outputs: outputs,
                                 count: threads ?? min(BLAS.threads, n / 16))
        head = weights.outputWeight
        outputCount = outputs.count
        normed = FloatBuffer(count: outputs.count * c.hidden, zeroed: false)
        dNormed = FloatBuffer(count: outputs.count * c.hidden, zeroed: false)
        logits = FloatBuffer(count: outputs.count * c.vocab, zeroed: false)
        dLogits = FloatBuffer(count: outputs.count * c.vocab)
        dInput = FloatBuffer(count: n * c.hidden, zeroed: false)

        // P_init: the essence distributions with δ = 0.
        let logits = runForward(input.pointer)
        lastForwardDeltas = [[Float]](repeating: [Float](repeating: 0, count: d), count: groups.count)
        initialLogProbs = essenceOutputs.map { LossOps.logSoftmax(logits + $0.output * c.vocab, vocab: c.vocab) }
    }

    /// The objective at `δ` and, when asked, its gradient with respect to `δ` (one-request searches).
    public func evaluate(delta: [Float], klFactor: Float, weightDecay: Float, gradient: Bool = true) throws -> (loss: ValueSearchLoss, gradient: [Float]?) {
        guard groups.count == 1 else { throw EngramError.invalidArgument("evaluate(delta:) is for a one-request search; this one has \(groups.count)") }
        let active = [true]
        let loss = try forwardLoss(deltas: [delta], active: active, klFactor: klFactor, weightDecay: weightDecay)[0]
        return (loss, gradient ? backwardDeltas(deltas: [delta], active: active, weightDecay: weightDecay)[0] : nil)
    }

    /// Runs the forward at every group's `δ` (skipped when the tape already holds them), returns each
    /// group's loss and leaves `∂loss/∂logits` of the active groups in `dLogits` for `backwardDeltas`.
    private func forwardLoss(deltas: [[Float]], active: [Bool], klFactor: Float, weightDecay: Float) throws -> [ValueSearchLoss] {
        for delta in deltas where delta.count != d {
            throw EngramError.invalidArgument("δ has \(delta.count) values, the model's hidden width is \(d)")
        }
        let vocab = self.vocab
        let logits: UnsafePointer<Float>
        if lastForwardDeltas == deltas {
            logits = UnsafePointer(self.logits.pointer)
        } else {
            perturbed.pointer.update(from: input.pointer, count: input.count)
            for (g, delta) in deltas.enumerated() {
                for r in lookupRows[g] { for i in 0..<d { perturbed.pointer[r * d + i] += delta[i] } }
            }
            logits = runForward(perturbed.pointer)
            lastForwardDeltas = deltas
        }
        dLogits.pointer.update(repeating: 0, count: dLogits.count)
        var nll = [Double](repeating: 0, count: groups.count), kl = nll
        for (g, o, token, w) in labels where active[g] {
            nll[g] += LossOps.crossEntropy(logits + o * vocab, vocab: vocab, token: token, weight: w, dLogits: dLogits.pointer + o * vocab)
        }
        for (j, (g, o)) in essenceOutputs.enumerated() where active[g] {
            let klWeight = klFactor / Float(groups[g].essence.count)
            kl[g] += initialLogProbs[j].withUnsafeBufferPointer {
                LossOps.klFromInitial(logits + o * vocab, initialLogProbs: $0.baseAddress!, vocab: vocab, weight: klWeight,
                                      dLogits: dLogits.pointer + o * vocab)
            }
        }
        return groups.indices.map { g in
            let initNorm = Self.norm(targetInits[g])
            let wd = weightDecay * Self.norm(deltas[g]) / (initNorm * initNorm)
            return ValueSearchLoss(total: Float(nll[g] + kl[g]) + wd, nll: Float(nll[g]), kl: Float(kl[g]), weightDecay: wd)
        }
    }

    /// `∂loss/∂δ` of every active group for the `δ`s of the last `forwardLoss` (zeros for inactive ones).
    private func backwardDeltas(deltas: [[Float]], active: [Bool], weightDecay: Float) -> [[Float]] {
        runBackward()
        let dInput = self.dInput.pointer
        return groups.indices.map { g in
            var grad = [Float](repeating: 0, count: d)
            guard active[g] else { return grad }
            for r in lookupRows[g] { for i in 0..<d { grad[i] += dInput[r * d + i] } }
            // ‖δ‖ has no gradient at 0; torch's norm backward gives 0 there, and so do we.
            let deltaNorm = Self.norm(deltas[g]), initNorm = Self.norm(targetInits[g])
            if deltaNorm > 0 {
                let s = weightDecay / (deltaNorm * initNorm * initNorm)
                for i in 0..<d { grad[i] += s * deltas[g][i] }
            }
            return grad
        }
    }

    /// The one-request loop (see `runAll`).
    public func run(_ hp: ValueSearchHyperparameters) throws -> ValueSearchResult {
        try runAll(hp)[0]
    }

    /// The reference loop, per group: Adam on δ from zero; stop when the loss is below the threshold or
    /// at the last step (before its backward); after each step, clamp ‖δ‖ to
    /// `clamp_norm_factor·‖target_init‖`. A group that has stopped keeps its δ while the others go on.
    public func runAll(_ hp: ValueSearchHyperparameters) throws -> [ValueSearchResult] {
        let count = groups.count
        var deltas = [[Float]](repeating: [Float](repeating: 0, count: d), count: count)
        var adams = (0..<count).map { _ in Adam(count: d, learningRate: hp.learningRate) }
        let maxNorms = targetInits.map { hp.clampNormFactor * Self.norm($0) }
        var losses = [[ValueSearchLoss]](repeating: [], count: count)
        var stoppedEarly = [Bool](repeating: false, count: count)
        var active = [Bool](repeating: true, count: count)
        for step in 0..<max(hp.steps, 1) {
            let stepLosses = try forwardLoss(deltas: deltas, active: active, klFactor: hp.klFactor, weightDecay: hp.weightDecay)
            for g in 0..<count where active[g] {
                losses[g].append(stepLosses[g])
                if stepLosses[g].total < hp.earlyStopLoss { stoppedEarly[g] = true; active[g] = false }
            }
            if step >= hp.steps - 1 || !active.contains(true) { break }
            let gradients = backwardDeltas(deltas: deltas, active: active, weightDecay: hp.weightDecay)
            for g in 0..<count where active[g] {
                deltas[g].withUnsafeMutableBufferPointer { p in
                    gradients[g].withUnsafeBufferPointer { adams[g].update(p.baseAddress!, gradient: $0.baseAddress!) }
                }
                let n = Self.norm(deltas[g])
                if n > maxNorms[g] { for i in 0..<d { deltas[g][i] *= maxNorms[g] / n } }
            }
        }
        return (0..<count).map { g in
            ValueSearchResult(value: zip(targetInits[g], deltas[g]).map { $0 + $1 }, delta: deltas[g], targetInit: targetInits[g],
                              losses: losses[g], stoppedEarly: stoppedEarly[g])
        }
    }

    // MARK: shards

    private struct Shard {
        let tape: DecoderTape
        let rows: Range<Int>
        let outputs: Range<Int>
    }

    /// Splits the sequences into at most `count` contiguous runs of about equal work (their rows
    /// through the blocks above the search layer), one tape each, without the output head. Outputs are
    /// listed in row order, so each run's outputs are contiguous too.
    private static func shards(weights: DecoderWeights, firstLayer: Int, sequences: [TapeSequence], outputs: [Int],
                               count: Int) throws -> [Shard] {
        var rowStarts: [Int] = [], row0 = 0
        for s in sequences { rowStarts.append(row0); row0 += s.end - s.start }
        let cost = sequences.map { Double($0.end - $0.start) }
        let total = cost.reduce(0, +)
        let k = max(1, min(count, sequences.count))
        // Cut at the sequence boundary nearest to each multiple of total/k.
        var cuts = [0], running = 0.0
        for (i, w) in cost.enumerated() where cuts.count < k {
            let target = total * Double(cuts.count) / Double(k)
            if running + w >= target {
                let cut = target - running < running + w - target && i > cuts.last! ? i : i + 1
                if cut < sequences.count { cuts.append(cut) }
            }
            running += w
        }
        cuts.append(sequences.count)
        var shards: [Shard] = []
        for (a, b) in zip(cuts, cuts.dropFirst()) where a < b {
            let rows = rowStarts[a]..<(b < sequences.count ? rowStarts[b] : row0)
            let first = outputs.firstIndex { $0 >= rows.lowerBound } ?? outputs.count
            let end = outputs.firstIndex { $0 >= rows.upperBound } ?? outputs.count
            let tape = try DecoderTape(weights: weights, firstLayer: firstLayer, sequences: Array(sequences[a..<b]),
                                       outputs: outputs[first..<end].map { $0 - rows.lowerBound }, head: false)
            shards.append(Shard(tape: tape, rows: rows, outputs: first..<end))
        }
        return shards
    }

    /// Every shard's forward on its rows of `input`, then the output head on all their output rows;
    /// returns the logits. The head is the largest matrix (49152 × 576 for SmolLM2, eight times all of a
    /// block's): run by each shard it would be read from memory once per shard, here once, split over
    /// the threads.
    private func runForward(_ input: UnsafePointer<Float>) -> UnsafePointer<Float> {
        BLAS.concurrently(shards.count) { i in
            let s = shards[i]
            let out = s.tape.forward(input: input + s.rows.lowerBound * d)
            (normed.pointer + s.outputs.lowerBound * d).update(from: out, count: s.outputs.count * d)
        }
        BLAS.linear(normed.pointer, rows: outputCount, weight: head, into: logits.pointer)
        return UnsafePointer(logits.pointer)
    }

    /// The head's backward from `dLogits`, then every shard's backward into `dInput`.
    private func runBackward() {
        BLAS.linearBackward(dLogits.pointer, rows: outputCount, weight: head, into: dNormed.pointer)
        BLAS.concurrently(shards.count) { i in
            let s = shards[i]
            let dx = s.tape.backward(dNormed: dNormed.pointer + s.outputs.lowerBound * d)
            (dInput.pointer + s.rows.lowerBound * d).update(from: dx, count: s.rows.count * d)
        }
    }

    static func norm(_ v: [Float]) -> Float {
        var s: Double = 0
        for x in v { s += Double(x) * Double(x) }
        return Float(s.squareRoot())
    }
}
