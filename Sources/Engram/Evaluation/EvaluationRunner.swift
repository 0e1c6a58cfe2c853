import Foundation

/// Where a run is, for a progress bar.
public struct EvaluationProgress: Equatable, Sendable {
    /// "pre" (unedited model), "edit" (editing and evaluating), "final" (sequential, after the last edit).
    public var phase: String
    /// 0 when the phase starts (so a reporter can time it from then), then after every record or group.
    public var completed: Int
    public var total: Int
}

/// Runs an editor over an edit file under one protocol and grades every record before and after.
///
///     let file = try EditFile.load("counterfact-edit.dev-0-299.json")
///     let runner = EvaluationRunner(model: model, tokenizer: tokenizer, editor: IKE(pool: file.requests),
///                                   file: file, modelSHA256: sha, options: options)
///     runner.progress = { print($0.phase, $0.completed, "/", $0.total) }
///     let run = try runner.run()
///     try run.write(to: "results.json")
///     print(run.markdownReport())
///
/// The model's weights are the same after `run()` as before it, bit for bit (every patch is reverted,
/// also when an error ends the run).
public final class EvaluationRunner {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let editor: Editor
    public let file: EditFile
    public let modelSHA256: String
    public let options: EvaluationOptions
    public var progress: ((EvaluationProgress) -> Void)?

    /// Records evaluated per group of probes when the model state allows sharing forward passes.
    public var recordsPerGroup = 16

    public init(model: LanguageModel, tokenizer: Tokenizer, editor: Editor, file: EditFile, modelSHA256: String,
                options: EvaluationOptions = EvaluationOptions()) {
        self.model = model
        self.tokenizer = tokenizer
        self.editor = editor
        self.file = file
        self.modelSHA256 = modelSHA256
        self.options = options
    }

    public var suites: [MetricSuite] { options.suites ?? MetricSuite.defaults(for: file.format) }

    /// The file positions this run evaluates: the first `limit` records, then shard i of n contiguous blocks.
    public var selectedIndices: [Int] {
        let selected = min(options.limit ?? file.records.count, file.records.count)
        let n = options.shardCount, i = options.shardIndex
        return Array((selected * i / n)..<(selected * (i + 1) / n))
    }

    public var header: RunHeader {
        let c = model.config
        return RunHeader(method: editor.name, hyperParameters: editor.hyperParameters, modelSHA256: modelSHA256,
                         modelDescription: "\(c.architecture.rawValue), \(c.layers) layers, d=\(c.hidden), m=\(c.intermediate), vocab \(c.vocab)",
                         dataFile: (file.path as NSString).lastPathComponent, dataFormat: file.format, dataSHA256: file.sha256,
                         recordsInFile: file.records.count, recordsSelected: min(options.limit ?? file.records.count, file.records.count),
                         options: options, suites: suites)
    }

    public func run() throws -> EvaluationRun {
        try options.validate()
        let indices = selectedIndices
        try checkLengths(indices)
        let planner = MetricPlanner(tokenizer: tokenizer, options: options, suites: suites, allRecords: file.records)
        var results: [Int: RecordResult] = [:]
        var references: [Int: [String: [[Int32]?]]] = [:]
        for i in indices { results[i] = RecordResult(index: i, caseID: file.records[i].caseID) }

        // 1. The unedited model: "before" metrics and the locality reference.
        var done = 0
        progress?(EvaluationProgress(phase: "pre", completed: 0, total: indices.count))
        for group in chunks(indices, recordsPerGroup) {
            let outcomes = try evaluate(group.map { PhaseInput(index: $0, record: file.records[$0], context: nil, phase: "pre", reference: nil) }, planner)
            for (i, o) in zip(group, outcomes) {
                results[i]!.pre = o.metrics
                results[i]!.warnings += o.warnings
                references[i] = o.localityReference
                for (k, t) in o.texts { results[i]!.texts["pre.\(k)"] = t }
            }
            done += group.count
            progress?(EvaluationProgress(phase: "pre", completed: done, total: indices.count))
        }

        // 2. Edit and evaluate under the protocol.
        let session = EditSession(model: model)
        // Every protocol ends with the model as it was, and the editor forgets the edits (AlphaEdit's
        // past keys) whenever they are reverted: single and batch edits each start from the unedited model.
        defer {
            try? session.revertAll()
            editor.reset()
        }
        func record(_ phase: String, _ inputs: [PhaseInput], _ outcomes: [PhaseOutcome]) {
            for (input, o) in zip(inputs, outcomes) {
                if phase == "final" { results[input.index]!.final = o.metrics } else { results[input.index]!.post = o.metrics }
                results[input.index]!.warnings += o.warnings
                for (k, t) in o.texts { results[input.index]!.texts["\(phase).\(k)"] = t }
            }
        }
        func inputs(_ group: [Int], _ context: PromptContext?, _ phase: String) -> [PhaseInput] {
            group.map { PhaseInput(index: $0, record: file.records[$0], context: context, phase: phase, reference: references[$0] ?? [:]) }
        }
        func failed(_ group: [Int], _ error: Error) {
            for i in group { results[i]!.error = "\(editor.name) failed: \(error)" }
        }

        done = 0
        progress?(EvaluationProgress(phase: "edit", completed: 0, total: indices.count))
        switch options.editingProtocol {
        case .single:
            // Prompt-only patches leave the weights alone, so several records can share forward passes.
            var pending: [PhaseInput] = []
            func flush() throws {
                guard !pending.isEmpty else { return }
                record("post", pending, try evaluate(pending, planner))
                done += pending.count
                pending = []
                progress?(EvaluationProgress(phase: "edit", completed: done, total: indices.count))
            }
            for i in indices {
                let patch: EditPatch
                do { patch = try editor.edit(file.records[i].requests, model: model, tokenizer: tokenizer) } catch {
                    failed([i], error)
                    done += 1
                    continue
                }
                if patch.deltas.isEmpty && patch.context == nil {
                    // Nothing changed (the unedited baseline): the model would answer exactly as before.
                    results[i]!.post = unchangedOutcome(results[i]!, references[i] ?? [:])
                    for (k, t) in results[i]!.texts where k.hasPrefix("pre.") { results[i]!.texts["post." + k.dropFirst(4)] = t }
                    done += 1
                    progress?(EvaluationProgress(phase: "edit", completed: done, total: indices.count))
                    continue
                }
                if patch.deltas.isEmpty {
                    pending += inputs([i], patch.context, "post")
                    if pending.count >= recordsPerGroup { try flush() }
                    continue
                }
                try flush()
                try session.apply(patch)
                let one = inputs([i], session.context, "post")
                record("post", one, try evaluate(one, planner))
                try session.revertAll()
                editor.reset()
                done += 1
                progress?(EvaluationProgress(phase: "edit", completed: done, total: indices.count))
            }
            try flush()

        case .batch, .sequential:
            let sequential = options.editingProtocol == .sequential
            for group in chunks(indices, options.editBatchSize) {
                do {
                    let patch = try editor.edit(group.flatMap { file.records[$0].requests }, model: model, tokenizer: tokenizer)
                    try session.apply(patch)
                } catch {
                    failed(group, error)
                    done += group.count
                    continue
                }
                if !sequential || options.sequentialTiming.immediate {
                    for part in chunks(group, recordsPerGroup) {
                        let ins = inputs(part, session.context, "post")
                        record("post", ins, try evaluate(ins, planner))
                    }
                }
                if !sequential {
                    try session.revertAll()
                    editor.reset()
                }
                done += group.count
                progress?(EvaluationProgress(phase: "edit", completed: done, total: indices.count))
            }
            if sequential && options.sequentialTiming.atEnd {
                done = 0
                progress?(EvaluationProgress(phase: "final", completed: 0, total: indices.count))
                for part in chunks(indices, recordsPerGroup) {
                    let ins = inputs(part, session.context, "final").filter { results[$0.index]!.error == nil }
                    record("final", ins, try evaluate(ins, planner))
                    done += part.count
                    progress?(EvaluationProgress(phase: "final", completed: done, total: indices.count))
                }
            }
            try session.revertAll()
        }

        return EvaluationRun(header: header, records: indices.map { i in
            var r = results[i]!
            r.warnings = Array(Set(r.warnings)).sorted()
            return r
        })
    }

    /// The "after" metrics of a record whose patch changed nothing: its "before" metrics, and locality 1
    /// for every locality group that has a reference (every prediction agrees with itself).
    func unchangedOutcome(_ r: RecordResult, _ reference: [String: [[Int32]?]]) -> [String: Double] {
        var metrics = r.pre
        var any = false
        for (key, refs) in reference where refs.contains(where: { !($0 ?? []).isEmpty }) {
            metrics["knowedit.locality.\(key)"] = 1
            any = true
        }
        if any { metrics["knowedit.locality"] = 1 }
        return metrics
    }

    /// Every probe of the selected records, with its answer, must fit the model's context; otherwise a
    /// batched pass fails deep inside the run without saying which record and field were too long.
    /// (Demonstrations and in-context facts add to this; those prompts are checked when they are run.)
    func checkLengths(_ indices: [Int]) throws {
        let context = model.config.contextLength
        func tokens(_ text: String) -> Int { tokenizer.encode(text, addSpecial: true).count }
        for i in indices {
            let record = file.records[i]
            var probes: [(field: String, text: String)] = []
            for (j, r) in record.requests.enumerated() {
                let at = record.requests.count > 1 ? "requests[\(j)]." : ""
                probes.append((at + "prompt", r.prompt + " " + r.targetNew))
                probes += r.rephrasePrompts.map { (at + "rephrase_prompt", $0 + " " + r.targetNew) }
                for group in r.locality + r.portability {
                    probes += group.items.map { (at + group.key, $0.prompt + " " + ($0.gold ?? "")) }
                }
            }
            if case let .multiHop(c) = record {
                probes += c.questions.map { ("questions", $0 + " " + c.answer) }
                probes += (c.singleHops + c.newSingleHops).map { ("single_hops", $0.question + " " + $0.answer) }
            }
            for (field, text) in probes where text.utf8.count >= context { // a token takes at least one byte
                let n = tokens(text)
                guard n - 1 <= context else { // teacher forcing feeds all but the last token
                    throw EngramError.invalidArgument("\(file.path): record \(i) (case \(record.caseID)), \(field): the probe and its answer take \(n) tokens, more than the model's context of \(context)")
                }
            }
        }
    }

    func evaluate(_ inputs: [PhaseInput], _ planner: MetricPlanner) throws -> [PhaseOutcome] {
        guard !inputs.isEmpty else { return [] }
        let probes = ProbeSet(model: model, tokenizer: tokenizer, batchSize: options.forwardBatchSize, topK: options.fluencyTopK)
        let finishers = inputs.map { planner.plan($0, probes) }
        try probes.run()
        return finishers.map { $0() }
    }

    func chunks(_ xs: [Int], _ size: Int) -> [[Int]] {
        stride(from: 0, to: xs.count, by: max(1, size)).map { Array(xs[$0..<min($0 + max(1, size), xs.count)]) }
    }
}
