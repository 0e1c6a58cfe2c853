import Foundation

/// A continuation to score after a context, as token ids. The context must hold at least one token (the
/// first target token is predicted from the last context token).
public struct ScoringItem: Hashable, Sendable {
    public var context: [Int32]
    public var target: [Int32]
    public init(context: [Int32], target: [Int32]) {
        self.context = context
        self.target = target
    }
}

/// Teacher-forced result for one continuation: at each target position, the log-probability of the gold
/// token and the model's argmax, both predicted from the gold prefix.
public struct TargetScore: Equatable, Sendable {
    public var target: [Int32]
    public var predicted: [Int32]
    public var logProbs: [Double]

    /// −mean log P(a_j | x, a_<j): CounterFact's length-normalised score (lower is better).
    public var meanNLL: Double { -logProbs.reduce(0, +) / Double(max(logProbs.count, 1)) }
    /// exp(−meanNLL): the geometric mean of the token probabilities.
    public var meanProbability: Double { exp(-meanNLL) }
    /// Share of target tokens whose argmax equals the gold token (EasyEdit's token accuracy).
    public var accuracy: Double {
        Double(zip(predicted, target).filter { $0 == $1 }.count) / Double(max(target.count, 1))
    }
    /// Whether greedy decoding would produce the whole target.
    public var allCorrect: Bool { predicted == target }
}

/// Batched teacher forcing over `LanguageModel.forward`. Each context is run once (items sharing a
/// context branch a copy of its cache), and only the target positions compute logits, so long prompts
/// (in-context editing) cost no output-head work.
public struct TeacherForcing {
    public let model: LanguageModel
    /// Sequences per forward call.
    public var batchSize: Int

    public init(model: LanguageModel, batchSize: Int = 8) {
        self.model = model
        self.batchSize = max(1, batchSize)
    }

    public func score(_ items: [ScoringItem]) throws -> [TargetScore] {
        for (i, item) in items.enumerated() {
            guard !item.context.isEmpty else { throw EngramError.invalidArgument("scoring item \(i): the context is empty (add BOS or a prompt)") }
            guard !item.target.isEmpty else { throw EngramError.invalidArgument("scoring item \(i): the target has no tokens") }
        }
        // Identical items are scored once.
        var unique: [ScoringItem] = []
        var position: [ScoringItem: Int] = [:]
        let slots = items.map { item -> Int in
            if let p = position[item] { return p }
            position[item] = unique.count
            unique.append(item)
            return unique.count - 1
        }
        var results: [TargetScore] = []
        results.reserveCapacity(unique.count)
        var start = 0
        while start < unique.count {
            let chunk = Array(unique[start..<min(start + batchSize, unique.count)])
            results += try scoreChunk(chunk)
            start += chunk.count
        }
        return slots.map { results[$0] }
    }

    private func scoreChunk(_ items: [ScoringItem]) throws -> [TargetScore] {
        // 1. Run every distinct context except its last token, without logits.
        var contextCache: [[Int32]: KVCache] = [:]
        var distinct: [[Int32]] = []
        for item in items where contextCache[item.context] == nil {
            let longest = items.filter { $0.context == item.context }.map(\.target.count).max() ?? 0
            contextCache[item.context] = model.makeCache(capacity: item.context.count + longest)
            distinct.append(item.context)
        }
        let prefixes = distinct.filter { $0.count > 1 }.map { SequenceInput(tokens: Array($0.dropLast()), cache: contextCache[$0]!) }
        if !prefixes.isEmpty { _ = try model.forward(prefixes, hooks: nil, logits: .none) }

        // 2. Last context token + all target tokens but the last, with logits at every row.
        // The first item of a context advances its cache; the others branch a copy taken before the pass.
        var used = Set<[Int32]>()
        let inputs = items.map { item -> SequenceInput in
            let shared = contextCache[item.context]!
            let cache = used.contains(item.context) ? shared.copy() : shared
            used.insert(item.context)
            return SequenceInput(tokens: [item.context.last!] + item.target.dropLast(), cache: cache)
        }
        let logits = try model.forward(inputs, hooks: nil, logits: .all)

        let vocab = model.config.vocab
        let scratch = FloatBuffer(count: vocab, zeroed: false)
        return items.enumerated().map { s, item in
            let rows = logits[s]
            var predicted: [Int32] = [], logProbs: [Double] = []
            for j in 0..<item.target.count {
                let row = rows.row(j)
                Kernels.logSoftmax(row, count: vocab, into: scratch.pointer)
                logProbs.append(Double(scratch.pointer[Int(item.target[j])]))
                predicted.append(Int32(TeacherForcing.argmax(row, count: vocab)))
            }
            return TargetScore(target: item.target, predicted: predicted, logProbs: logProbs)
        }
    }

    /// Index of the largest value; the first one on ties (as torch.argmax on CPU).
    static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for i in 1..<count where x[i] > x[best] { best = i }
        return best
    }
}

/// A prompt and target encoded the way EasyEdit's `test_prediction_acc` slices them.
public struct EncodedTarget: Equatable, Sendable {
    public var item: ScoringItem
    /// Set when the prompt's tokens inside the joined text differ from the prompt tokenized alone
    /// (BPE merged across the boundary), which shifts EasyEdit's prompt_len slice.
    public var warning: String?
}

public enum TargetEncoding {
    /// `text = join(prompt, target)` is tokenized whole (with BOS if the vocabulary adds one) and split at
    /// `prompt_len` = the token count of the prompt tokenized alone, as EasyEdit does: the scored target
    /// is `text_ids[prompt_len...]`, each predicted from the gold prefix. Returns nil when nothing is
    /// left to score after the split.
    public static func encode(prompt: String, target: String, tokenizer: Tokenizer) -> EncodedTarget? {
        let text = EditRequest.join(prompt, target)
        let full = tokenizer.encodeWithOffsets(text, addSpecial: true, parseSpecial: false)
        let promptIDs = tokenizer.encode(prompt, addSpecial: true)
        let promptLength = promptIDs.count
        guard promptLength >= 1, promptLength < full.count else { return nil }
        let ids = full.map(\.id)
        var warning: String?
        let promptBytes = prompt.utf8.count
        if Array(ids[0..<promptLength]) != promptIDs || full[promptLength].bytes.lowerBound < promptBytes && !full[promptLength].bytes.isEmpty {
            warning = "prompt/target boundary: the prompt's \(promptLength) tokens differ inside \"\(text)\" (BPE merged across the boundary); the target slice is shifted as in EasyEdit"
        }
        return EncodedTarget(item: ScoringItem(context: Array(ids[0..<promptLength]), target: Array(ids[promptLength...])), warning: warning)
    }
}
