import Foundation

/// Families of metrics. Which ones apply by default depends on the edit file's layout.
public enum MetricSuite: String, Codable, Sendable, CaseIterable {
    /// EasyEdit/KnowEdit token-level metrics: reliability, generalization, locality, portability, fluency.
    case knowEdit = "knowedit"
    /// ROME/MEMIT probability comparisons: efficacy, paraphrase and neighborhood scores and magnitudes.
    case counterFact = "counterfact"
    /// ROME's zsRE harness: token accuracy on the edit, its paraphrases and the locality question.
    case zsRE = "zsre"
    /// MQuAKE: edit-wise, multi-hop and instance-wise accuracy.
    case mquake

    public static func defaults(for format: EditFileFormat) -> [MetricSuite] {
        switch format {
        case .easyEdit: return [.knowEdit]
        case .counterfactFlat, .counterfactROME: return [.knowEdit, .counterFact]
        case .zsreMEND: return [.knowEdit, .zsRE]
        case .mquake: return [.mquake]
        }
    }
}

/// When edits are applied and undone.
public enum EditingProtocol: String, Codable, Sendable, CaseIterable {
    /// Each record is edited on the original weights, evaluated, then rolled back (EasyEdit's default).
    case single
    /// `editBatchSize` records are edited in one call, evaluated together, then rolled back.
    case batch
    /// Edits accumulate (in calls of `editBatchSize` records) without rollback until the end.
    case sequential

    public var summary: String {
        switch self {
        case .single: return "single: each edit applied to the original model, evaluated, then rolled back"
        case .batch: return "batch: each group of edits applied in one update, evaluated, then rolled back"
        case .sequential: return "sequential: edits accumulate without rollback; locality against the original model"
        }
    }
}

/// When sequential editing evaluates (the literature uses both; EasyEdit issue #590).
public enum SequentialTiming: String, Codable, Sendable, CaseIterable {
    /// Each edit right after it is applied (EasyEdit `edit_requests` with `sequential_edit`).
    case immediate
    /// Every edit after the last one (WISE, AlphaEdit, GRACE and the lifelong-editing papers).
    case final
    case both

    var immediate: Bool { self != .final }
    var atEnd: Bool { self != .immediate }
}

/// Everything that shapes an evaluation run besides the model, editor and data. Recorded in the results.
public struct EvaluationOptions: Equatable, Sendable {
    public var editingProtocol: EditingProtocol = .single
    /// Records per edit call (batch and sequential protocols; single always uses 1).
    public var editBatchSize: Int = 1
    /// Sequences per forward pass.
    public var forwardBatchSize: Int = 8
    /// Evaluate only the first `limit` records of the file.
    public var limit: Int?
    /// Evaluate only shard `shardIndex` of `shardCount` contiguous blocks of the selected records.
    public var shardIndex: Int = 0
    public var shardCount: Int = 1
    public var sequentialTiming: SequentialTiming = .both
    /// nil: the defaults for the file's layout.
    public var suites: [MetricSuite]?
    /// Generate and score fluency (KnowEdit suite); costs a 100-token generation per record and phase.
    public var fluency: Bool = true
    /// Total length of the fluency generation in tokens, the query prompt included (ROME's `max_out_len`).
    public var fluencyMaxLength: Int = 100
    public var fluencyTopK: Int = 5
    /// Seed of the fluency sampler (mixed with the record index and phase).
    public var seed: UInt64 = 0
    /// MQuAKE: few-shot "Q: … A: …" demonstrations, taken from the other cases of the file.
    public var multiHopShots: Int = 4
    /// MQuAKE: tokens generated for an answer (generation also stops at a newline).
    public var maxAnswerTokens: Int = 16
    public var questionMatcher: AnswerMatcher = .exact
    public var clozeMatcher: AnswerMatcher = .prefix
    /// Keep generated texts (fluency samples, MQuAKE answers) in the per-record results.
    public var keepTexts: Bool = true

    public init() {}

    public func validate() throws {
        guard editBatchSize >= 1 else { throw EngramError.invalidArgument("edit batch size must be at least 1 (got \(editBatchSize))") }
        guard forwardBatchSize >= 1 else { throw EngramError.invalidArgument("forward batch size must be at least 1 (got \(forwardBatchSize))") }
        if let limit, limit < 1 { throw EngramError.invalidArgument("limit must be at least 1 (got \(limit))") }
        guard shardCount >= 1, (0..<shardCount).contains(shardIndex) else {
            throw EngramError.invalidArgument("shard \(shardIndex)/\(shardCount) is not valid: need 0 ≤ index < count")
        }
        guard fluencyMaxLength >= 1, fluencyTopK >= 1 else { throw EngramError.invalidArgument("fluency length and top-k must be positive") }
        guard maxAnswerTokens >= 1, multiHopShots >= 0 else { throw EngramError.invalidArgument("answer tokens must be positive and shots non-negative") }
    }

    /// The options as recorded in results (shard excluded: it is a property of the run, see RunHeader).
    var json: JSONValue {
        var o: [String: JSONValue] = [
            "editing_protocol": .string(editingProtocol.rawValue),
            "edit_batch_size": .int(editingProtocol == .single ? 1 : editBatchSize),
            "forward_batch_size": .int(forwardBatchSize),
            "limit": limit.map { .int($0) } ?? .null,
            "fluency": .bool(fluency),
            "fluency_max_length": .int(fluencyMaxLength),
            "fluency_top_k": .int(fluencyTopK),
            "seed": .string(String(seed)),
            "multihop_shots": .int(multiHopShots),
            "max_answer_tokens": .int(maxAnswerTokens),
            "question_matcher": .string(questionMatcher.rawValue),
            "cloze_matcher": .string(clozeMatcher.rawValue),
            "keep_texts": .bool(keepTexts),
        ]
        o["sequential_timing"] = editingProtocol == .sequential ? .string(sequentialTiming.rawValue) : .null
        o["suites"] = suites.map { .array($0.map { .string($0.rawValue) }) } ?? .null
        return .object(o)
    }

    init(json: JSONValue, file: String) throws {
        func need<T>(_ key: String, _ f: (JSONValue) -> T?) throws -> T {
            guard let v = json[key], let t = f(v) else { throw EngramError.metadata(file: file, key: "header.options.\(key)", detail: "missing or of the wrong type") }
            return t
        }
        self.init()
        guard let p = EditingProtocol(rawValue: try need("editing_protocol", \.string)) else {
            throw EngramError.metadata(file: file, key: "header.options.editing_protocol", detail: "unknown protocol")
        }
        editingProtocol = p
        editBatchSize = try need("edit_batch_size", \.int)
        forwardBatchSize = try need("forward_batch_size", \.int)
        limit = json["limit"]?.int
        fluency = try need("fluency", \.bool)
        fluencyMaxLength = try need("fluency_max_length", \.int)
        fluencyTopK = try need("fluency_top_k", \.int)
        seed = UInt64(try need("seed", \.string)) ?? 0
        multiHopShots = try need("multihop_shots", \.int)
        maxAnswerTokens = try need("max_answer_tokens", \.int)
        questionMatcher = AnswerMatcher(rawValue: try need("question_matcher", \.string)) ?? .exact
        clozeMatcher = AnswerMatcher(rawValue: try need("cloze_matcher", \.string)) ?? .prefix
        keepTexts = try need("keep_texts", \.bool)
        if let t = json["sequential_timing"]?.string { sequentialTiming = SequentialTiming(rawValue: t) ?? .both }
        suites = json["suites"]?.array?.compactMap { $0.string.flatMap(MetricSuite.init(rawValue:)) }
    }
}
