import Foundation

/// The results of one record: its metrics before editing, after (immediately, or in single/batch mode),
/// and after all edits (sequential, final timing).
public struct RecordResult: Equatable, Sendable {
    /// Position of the record in the edit file.
    public var index: Int
    public var caseID: String
    public var pre: [String: Double]
    public var post: [String: Double]?
    public var final: [String: Double]?
    public var warnings: [String]
    /// Set when the editor failed on this record (it then has no post metrics).
    public var error: String?
    /// Generated texts, keyed "<phase>.<name>" (fluency samples, MQuAKE answers).
    public var texts: [String: String]

    public init(index: Int, caseID: String, pre: [String: Double] = [:], post: [String: Double]? = nil,
                final: [String: Double]? = nil, warnings: [String] = [], error: String? = nil, texts: [String: String] = [:]) {
        self.index = index
        self.caseID = caseID
        self.pre = pre
        self.post = post
        self.final = final
        self.warnings = warnings
        self.error = error
        self.texts = texts
    }

    func metrics(_ phase: Phase) -> [String: Double]? {
        switch phase {
        case .pre: return pre
        case .post: return post
        case .final: return final
        }
    }
}

/// Evaluation phases: before any edit, after the record's edit, after all edits (sequential).
public enum Phase: String, CaseIterable, Sendable { case pre, post, final }

/// A dataset-level number: the mean over the records that have the metric, and how many those are.
public struct Aggregate: Equatable, Sendable {
    public var value: Double
    public var count: Int
}

/// What was run, on what: everything a reader needs to compare two result files.
public struct RunHeader: Equatable, Sendable {
    public var method: String
    public var hyperParameters: [String: String]
    public var modelSHA256: String
    public var modelDescription: String
    public var dataFile: String
    public var dataFormat: EditFileFormat
    public var dataSHA256: String
    public var recordsInFile: Int
    /// Records after `limit`, before sharding (what a complete merge must cover).
    public var recordsSelected: Int
    public var options: EvaluationOptions
    public var suites: [MetricSuite]

    public init(method: String, hyperParameters: [String: String], modelSHA256: String, modelDescription: String,
                dataFile: String, dataFormat: EditFileFormat, dataSHA256: String, recordsInFile: Int, recordsSelected: Int,
                options: EvaluationOptions, suites: [MetricSuite]) {
        self.method = method
        self.hyperParameters = hyperParameters
        self.modelSHA256 = modelSHA256
        self.modelDescription = modelDescription
        self.dataFile = dataFile
        self.dataFormat = dataFormat
        self.dataSHA256 = dataSHA256
        self.recordsInFile = recordsInFile
        self.recordsSelected = recordsSelected
        self.options = options
        self.suites = suites
    }

    /// How each number was computed, in words (written into the results and the report).
    public var conventions: [String: String] {
        var c: [String: String] = [
            "token_accuracy": "EasyEdit teacher forcing: text = prompt + ' ' + target (one space; none added when the target starts with whitespace), tokenized with BOS as the vocabulary asks, split at the token count of the prompt alone; share of target tokens whose argmax equals the gold token; gold = first alias; sequences are not padded (each starts at position 0)",
            "locality": "KnowEdit: share of teacher-forced locality answer positions where the edited model's argmax equals the unedited model's (cached before any edit, no prompt context); mean over probes, then over keys",
            "portability": "KnowEdit: token accuracy against the first alias; mean over probes, then over keys (Reasoning, Subject_Aliasing, Logical_Generalization count equally); dataset mean over records that have any",
            "aggregation": "mean over the records that have the metric; reports show means × 100",
            "protocol": options.editingProtocol.summary,
            "prompts": "used as written (no chat template); an in-context patch renders each probe as demonstrations + 'New Fact: …' lines + 'Prompt: ' + probe",
            "batching": "\(options.forwardBatchSize) sequences per forward pass; with a real model the last bits of a score can depend on what was batched together, so compare runs made with the same batch size",
        ]
        if options.fluency {
            c["fluency"] = "weighted bigram/trigram entropy (2/3·H2, 4/3·H3, mean) of prompt + top-\(options.fluencyTopK) sampled continuation, \(options.fluencyMaxLength) tokens in total including the prompt; words from our NLTK word_tokenize reimplementation (Punkt with a fixed abbreviation list)"
        }
        if suites.contains(.counterFact) {
            c["counterfact"] = "mean NLL of ' target' after each prompt (length-normalised); score = share of prompts where the new target is more probable (neighborhood: the true one); magnitude = mean difference of exp(−NLL); neighborhood prompts = all locality probes; score S = harmonic mean of ES, PS, NS"
        }
        if suites.contains(.zsRE) {
            c["zsre"] = "token accuracy of the new target on the edit prompt and its paraphrases; specificity = token accuracy of the locality answer (ROME convention)"
        }
        if suites.contains(.mquake) {
            c["mquake"] = "greedy answers of up to \(options.maxAnswerTokens) tokens cut at the first newline; edit-wise: each edit's cloze, matcher \(options.clozeMatcher.rawValue) (\(options.clozeMatcher.summary)), over all edits; multi-hop: \(options.multiHopShots)-shot 'Q: … A:' prompts (demonstrations: the next cases of the file, original answers), a case is correct when any of its questions matches new_answer or an alias, matcher \(options.questionMatcher.rawValue) (\(options.questionMatcher.summary)); instance-wise: every new single-hop cloze matched (\(options.clozeMatcher.rawValue))"
        }
        if options.editingProtocol == .sequential {
            c["sequential_timing"] = "\(options.sequentialTiming.rawValue): 'post' is each edit right after it was applied, 'final' is every edit after the last one"
        }
        return c
    }

    var json: CanonicalJSON {
        .object([
            "method": .object(["name": .string(method), "hyper_parameters": .object(hyperParameters.mapValues { .string($0) })]),
            "model": .object(["sha256": .string(modelSHA256), "description": .string(modelDescription)]),
            "data": .object([
                "file": .string(dataFile), "format": .string(dataFormat.rawValue), "sha256": .string(dataSHA256),
                "records_in_file": .int(recordsInFile), "records_selected": .int(recordsSelected),
            ]),
            "options": options.json,
            "shard": .object(["index": .int(options.shardIndex), "count": .int(options.shardCount)]),
            "suites": .array(suites.map { .string($0.rawValue) }),
            "conventions": .object(conventions.mapValues { .string($0) }),
        ])
    }

    init(json: CanonicalJSON, file: String) throws {
        func need<T>(_ path: String, _ value: CanonicalJSON?, _ f: (CanonicalJSON) -> T?) throws -> T {
            guard let value, let t = f(value) else { throw EngramError.metadata(file: file, key: "header.\(path)", detail: "missing or of the wrong type") }
            return t
        }
        guard let formatName = json["data"]?["format"]?.string, let format = EditFileFormat(rawValue: formatName) else {
            throw EngramError.metadata(file: file, key: "header.data.format", detail: "missing or unknown")
        }
        var options = try EvaluationOptions(json: try need("options", json["options"]) { $0 }, file: file)
        options.shardIndex = try need("shard.index", json["shard"]?["index"], \.int)
        options.shardCount = try need("shard.count", json["shard"]?["count"], \.int)
        let hp = try need("method.hyper_parameters", json["method"]?["hyper_parameters"], \.object)
        self.init(method: try need("method.name", json["method"]?["name"], \.string),
                  hyperParameters: hp.compactMapValues(\.string),
                  modelSHA256: try need("model.sha256", json["model"]?["sha256"], \.string),
                  modelDescription: try need("model.description", json["model"]?["description"], \.string),
                  dataFile: try need("data.file", json["data"]?["file"], \.string),
                  dataFormat: format,
                  dataSHA256: try need("data.sha256", json["data"]?["sha256"], \.string),
                  recordsInFile: try need("data.records_in_file", json["data"]?["records_in_file"], \.int),
                  recordsSelected: try need("data.records_selected", json["data"]?["records_selected"], \.int),
                  options: options,
                  suites: try need("suites", json["suites"], \.array).compactMap { $0.string.flatMap(MetricSuite.init(rawValue:)) })
    }
}

/// A whole evaluation: header, per-record results (in file order) and the aggregates derived from them.
public struct EvaluationRun: Equatable, Sendable {
    public var header: RunHeader
    public var records: [RecordResult]

    public init(header: RunHeader, records: [RecordResult]) {
        self.header = header
        self.records = records.sorted { $0.index < $1.index }
    }

    /// Dataset-level metrics per phase. Always recomputed from the records, so a merge of shards gives
    /// the same numbers as one run over all records.
    public var aggregates: [Phase: [String: Aggregate]] {
        var out: [Phase: [String: Aggregate]] = [:]
        for phase in Phase.allCases {
            let rows = records.compactMap { $0.metrics(phase) }
            guard !rows.isEmpty else { continue }
            var sums: [String: (Double, Int)] = [:]
            for row in rows {
                for (k, v) in row where v.isFinite { sums[k, default: (0, 0)] = (sums[k, default: (0, 0)].0 + v, sums[k, default: (0, 0)].1 + 1) }
            }
            // Sums over records in index order: the order above is the record order, so this is deterministic.
            var table: [String: Aggregate] = [:]
            for (k, (s, n)) in sums { table[k] = Aggregate(value: CanonicalJSON.quantize(s / Double(n)), count: n) }
            // Edit-wise accuracy is over edits, not cases.
            if let correct = sums["mquake.edits_correct"], let total = sums["mquake.edits_total"], total.0 > 0 {
                table["mquake.edit_wise"] = Aggregate(value: CanonicalJSON.quantize(correct.0 / total.0), count: Int(total.0))
            }
            table["mquake.edits_correct"] = nil
            table["mquake.edits_total"] = nil
            // Multi-hop accuracy among the cases whose every new single hop is known.
            let known = rows.filter { $0["mquake.instance_wise"] == 1 }.compactMap { $0["mquake.multihop"] }
            if !known.isEmpty {
                table["mquake.multihop_given_instance"] = Aggregate(value: CanonicalJSON.quantize(known.reduce(0, +) / Double(known.count)), count: known.count)
            }
            if let es = table["counterfact.efficacy_score"]?.value, let ps = table["counterfact.paraphrase_score"]?.value,
               let ns = table["counterfact.neighborhood_score"]?.value, es > 0, ps > 0, ns > 0 {
                table["counterfact.score"] = Aggregate(value: CanonicalJSON.quantize(3 / (1 / es + 1 / ns + 1 / ps)), count: table["counterfact.efficacy_score"]!.count)
            }
            out[phase] = table
        }
        return out
    }

    public var json: CanonicalJSON {
        var aggregateJSON: [String: CanonicalJSON] = [:]
        for (phase, table) in aggregates {
            aggregateJSON[phase.rawValue] = .object(table.mapValues { .object(["mean": .number($0.value), "n": .int($0.count)]) })
        }
        let recordJSON: [CanonicalJSON] = records.map { r in
            func metrics(_ m: [String: Double]?) -> CanonicalJSON { m.map { .object($0.mapValues { .number($0) }) } ?? .null }
            return .object([
                "index": .int(r.index), "case_id": .string(r.caseID),
                "pre": metrics(r.pre), "post": metrics(r.post), "final": metrics(r.final),
                "warnings": .array(r.warnings.map { .string($0) }),
                "error": r.error.map { .string($0) } ?? .null,
                "texts": .object(r.texts.mapValues { .string($0) }),
            ])
        }
        return .object(["format": .string("engram-eval-1"), "header": header.json, "aggregates": .object(aggregateJSON), "records": .array(recordJSON)])
    }

    /// Canonical bytes: same run, same bytes.
    public var jsonData: Data { json.data }

    public func write(to path: String) throws {
        let data = jsonData
        try AtomicFile.write(to: path) { try $0.write(data) }
    }

    public static func read(_ path: String) throws -> EvaluationRun {
        let data = try EngramError.readFile(path, what: "the results")
        return try parse(data, file: path)
    }

    public static func parse(_ data: Data, file: String) throws -> EvaluationRun {
        let json = try CanonicalJSON.parse(data, file: file)
        guard json["format"]?.string == "engram-eval-1" else {
            throw EngramError.metadata(file: file, key: "format", detail: "expected engram-eval-1")
        }
        guard let headerJSON = json["header"] else { throw EngramError.metadata(file: file, key: "header", detail: "missing") }
        let header = try RunHeader(json: headerJSON, file: file)
        guard let list = json["records"]?.array else { throw EngramError.metadata(file: file, key: "records", detail: "missing") }
        let o = header.options
        do { try o.validate() } catch { throw EngramError.metadata(file: file, key: "header.options", detail: "\(error)") }
        // The records a shard can hold: its contiguous block of the selected records (`selectedIndices`).
        let n = header.recordsSelected
        let block = (n * o.shardIndex / o.shardCount)..<(n * (o.shardIndex + 1) / o.shardCount)
        let records = try list.enumerated().map { i, r -> RecordResult in
            guard let index = r["index"]?.int, let caseID = r["case_id"]?.string, let pre = r["pre"]?.object else {
                throw EngramError.metadata(file: file, key: "records[\(i)]", detail: "index, case_id or pre missing")
            }
            guard block.contains(index) else {
                throw EngramError.metadata(file: file, key: "records[\(i)].index",
                                           detail: "\(index) is outside shard \(o.shardIndex)/\(o.shardCount) of \(n) records (\(block.lowerBound)..<\(block.upperBound))")
            }
            func metrics(_ v: CanonicalJSON?, _ phase: String) throws -> [String: Double]? {
                guard let v, v != .null else { return nil }
                guard let object = v.object else { throw EngramError.metadata(file: file, key: "records[\(i)].\(phase)", detail: "not an object") }
                var values: [String: Double] = [:]
                for (key, value) in object where value != .null { // null: a value that was not finite when written
                    guard let d = value.double else {
                        throw EngramError.metadata(file: file, key: "records[\(i)].\(phase).\(key)", detail: "not a number")
                    }
                    values[key] = d
                }
                return values
            }
            return RecordResult(index: index, caseID: caseID, pre: try metrics(.object(pre), "pre") ?? [:], post: try metrics(r["post"], "post"),
                                final: try metrics(r["final"], "final"),
                                warnings: r["warnings"]?.array?.compactMap(\.string) ?? [], error: r["error"]?.string,
                                texts: r["texts"]?.object?.compactMapValues(\.string) ?? [:])
        }
        return EvaluationRun(header: header, records: records)
    }

    /// Joins the shards of one evaluation. The headers must agree on everything but the shard, and the
    /// shards together must cover every selected record exactly once; the result is what one unsharded
    /// run writes. With `allowMissing`, shards may be absent (a long run cut short): the result holds
    /// the records at hand, and its report says how many of those selected were evaluated.
    public static func merge(_ runs: [EvaluationRun], allowMissing: Bool = false) throws -> EvaluationRun {
        guard var header = runs.first?.header else { throw EngramError.invalidArgument("merge: no results given") }
        header.options.shardIndex = 0
        header.options.shardCount = 1
        for (i, run) in runs.enumerated() {
            var h = run.header
            h.options.shardIndex = 0
            h.options.shardCount = 1
            guard h == header else {
                throw EngramError.invalidArgument("merge: results \(i) come from a different run (method, model, data, options or suites differ)")
            }
        }
        let records = runs.flatMap(\.records).sorted { $0.index < $1.index }
        for (a, b) in zip(records, records.dropFirst()) where a.index == b.index {
            throw EngramError.invalidArgument("merge: record \(a.index) appears in more than one shard")
        }
        guard records.count == header.recordsSelected || allowMissing else {
            throw EngramError.invalidArgument("merge: the shards hold \(records.count) records but the run selected \(header.recordsSelected); a shard is missing")
        }
        return EvaluationRun(header: header, records: records)
    }
}
