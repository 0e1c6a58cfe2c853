import ArgumentParser
import Engram
import Foundation

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Apply an edit file to a checkpoint: writes a reversible patch and/or the edited checkpoint, and shows before/after.")

    /// The methods that edit (the evaluator's `none` baseline does not).
    static let methods = ["rome", "memit", "alphaedit", "ike"]

    @OptionGroup var model: ModelArgument
    @Option(help: "Edit file (JSON or JSONL: KnowEdit, CounterFact, zsRE or MQuAKE layout).") var edits: String
    @Option(help: "Method: rome, memit, alphaedit, ike.") var method = "rome"
    @Option(help: "Hyper-parameter YAML (default: hparams/<method>/smollm2.yaml, EasyEdit keys accepted).") var hparams: String?
    @Option(help: "Write the edited checkpoint here (input format unless --format).") var out: String?
    @Option(help: "Format of --out: gguf or safetensors.") var format: String?
    @Option(help: "Write the patch (low-rank factors, requests, method, base sha256) here.") var patch: String?
    @Option(parsing: .unconditional, help: "Edit only the first N requests.") var limit: Int?
    @Option(name: .customLong("value-cache"), help: "Folder where ROME/MEMIT/AlphaEdit keep searched target values for reuse.") var valueCache: String?

    /// Everything that can be checked without the model, so that a bad option fails before minutes of
    /// editing and before any file is written.
    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        guard Self.methods.contains(method.lowercased()) else {
            throw ValidationError("--method must be one of \(Self.methods.joined(separator: ", ")), got '\(method)'")
        }
        if hparams != nil, EditorRegistry.hyperParameterSource(method: method, path: hparams) == nil {
            throw ValidationError("--hparams: method \(method) takes no hyper-parameters")
        }
        if out != nil, method.lowercased() == "ike" {
            throw ValidationError("--out: ike edits the prompt, not the weights, so there is no checkpoint to write (use --patch)")
        }
        if format != nil, out == nil { throw ValidationError("--format applies to --out, which is not given") }
        try CheckpointOutput.checkOut(out, format: format, model: model)
        try OutputPaths.check(outputs: [("--out", out), ("--patch", patch)],
                              inputs: [("the model", model.path), ("the edit file", edits),
                                       ("the hyper-parameter file", hparams), ("the value cache", valueCache)])
    }

    func run() throws {
        let (ck, lm, tokenizer) = try model.load()
        let file = try EditFile.load(edits)
        var requests = file.requests
        if let limit { requests = Array(requests.prefix(limit)) }
        guard !requests.isEmpty else { throw ValidationError("\(edits): no edit requests") }
        do {
            for r in requests { try r.checkFits(tokenizer: tokenizer, context: lm.config.contextLength) }
        } catch { throw EngramError.invalidArgument("\(edits): \(error)") }
        let hash = try ck.contentHash()
        let cache = try valueCache.map { try ValueCache(directory: $0, modelID: hash) }
        let editor = try EditorRegistry.make(method: method, hyperParameters: hparams, pool: file.requests,
                                             model: lm, tokenizer: tokenizer, checkpointSHA256: hash, valueCache: cache,
                                             statisticsProgress: ProgressReporter("key statistics (documents)").update)
        if let source = EditorRegistry.hyperParameterSource(method: method, path: hparams) { printError("hyper-parameters: \(source)") }

        let before = try EditDemo.measure(requests, model: lm, tokenizer: tokenizer, context: nil)
        let clock = ContinuousClock(), start = clock.now
        var result = try editor.edit(requests, model: lm, tokenizer: tokenizer)
        let seconds = (clock.now - start).seconds
        result.baseSHA256 = hash
        let applied = try result.apply(to: lm)
        let after = try EditDemo.measure(requests, model: lm, tokenizer: tokenizer, context: result.context)
        EditDemo.printTable(requests, before: before, after: after)
        printError(String(format: "%@: %d request(s) in %.1f s (%.2f s per request)", editor.name, requests.count, seconds, seconds / Double(requests.count)))

        if let patch {
            // The base's stored bytes of the edited weights, so that `patch revert` on a file is exact.
            try result.keepOriginals(from: ck)
            try result.write(to: patch)
            printError("wrote patch \(patch)")
        }
        if let out {
            try CheckpointOutput.write(model: lm, checkpoint: ck, patch: result, to: out, format: format)
            printError("wrote edited checkpoint \(out)")
        }
        try applied.revert()
    }
}

/// Before/after numbers for a set of requests: probability of the new target and of the old answer,
/// and the greedy completion.
enum EditDemo {
    struct Measure { let pNew: Double; let pOld: Double?; let completion: String }

    static func measure(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer, context: PromptContext?) throws -> [Measure] {
        let scorer = TeacherForcing(model: model)
        let generator = Generator(model: model, tokenizer: tokenizer)
        return try requests.map { r in
            let prompt = context?.render(r.prompt) ?? r.prompt
            let ids = tokenizer.encode(prompt, addSpecial: true)
            func p(_ answer: String) throws -> Double {
                let target = try LocateThenEdit.targetTokens(answer, tokenizer: tokenizer)
                return try scorer.score([ScoringItem(context: ids, target: target)])[0].meanProbability
            }
            let completion = try generator.generate(prompt: ids, options: GenerationOptions(maxTokens: 8, stop: ["\n"])).text
            return Measure(pNew: try p(r.targetNew), pOld: try r.groundTruth.first.map(p), completion: completion)
        }
    }

    static func printTable(_ requests: [EditRequest], before: [Measure], after: [Measure]) {
        print("| prompt | new target | P(new) before → after | P(old) before → after | completion before → after |")
        print("|---|---|---|---|---|")
        for (i, r) in requests.enumerated() {
            let b = before[i], a = after[i]
            let old = b.pOld.map { String(format: "%.3f → %.3f", $0, a.pOld ?? 0) } ?? "—"
            print(String(format: "| %@ | %@ | %.3f → %.3f | %@ | %@ → %@ |", r.prompt, r.targetNew, b.pNew, a.pNew, old,
                         b.completion.debugDescription, a.completion.debugDescription))
        }
    }
}

/// Writes a model's current weights for the patched tensors into a copy of its checkpoint.
enum CheckpointOutput {
    /// Before any work: the format is known, and a GGUF output is not an existing folder (the rename at
    /// the end would fail after the whole edit).
    static func checkOut(_ out: String?, format: String?, model: ModelArgument) throws {
        let target = try format.map(parseFormat)
        guard let out else { return }
        var isDirectory: ObjCBool = false
        let inputIsFolder = model.path.map { FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue } ?? false
        guard (target ?? (inputIsFolder ? .safetensors : .gguf)) == .gguf else { return }
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("--out \(out) is a folder; a GGUF checkpoint is one file (or use --format safetensors)")
        }
    }

    static func parseFormat(_ name: String) throws -> CheckpointFormat {
        guard let f = CheckpointFormat(rawValue: name) else { throw ValidationError("--format must be gguf or safetensors") }
        return f
    }

    /// A copy of the checkpoint with the model's current values of the patched weights.
    static func write(model: LanguageModel, checkpoint ck: Checkpoint, patch: EditPatch, to out: String, format: String?) throws {
        var replacing: [String: Matrix] = [:]
        for d in patch.deltas { replacing[d.weight.canonicalTensorName] = model.weight(d.weight) }
        try write(checkpoint: ck, to: out, format: format, replacing: replacing)
    }

    static func write(checkpoint ck: Checkpoint, to out: String, format: String?, replacing: [String: Matrix] = [:],
                      restoring: [String: StoredOriginal] = [:], extraMetadata: [(String, MetadataValue)] = []) throws {
        let target = try format.map(parseFormat) ?? ck.format
        var extraFiles: [String: Data] = [:]
        var metadata = extraMetadata
        if target == .safetensors && ck.format == .gguf { extraFiles = try TokenizerConversion.huggingFaceFiles(from: ck.metadata) }
        if target == .gguf && ck.format == .safetensors {
            metadata = try TokenizerConversion.ggufMetadata(fromSidecars: ck.sidecars, file: ck.location) + metadata
        }
        try CheckpointConverter.convert(ck, to: target, out: out, replacing: replacing, restoring: restoring,
                                        extraFiles: extraFiles, extraMetadata: metadata)
    }
}
