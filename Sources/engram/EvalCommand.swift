import ArgumentParser
import Engram
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Grade knowledge edits on a data set (KnowEdit, CounterFact, zsRE, MQuAKE metrics).",
        subcommands: [Run.self, Merge.self], defaultSubcommand: Run.self)

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Evaluate a method on an edit file (the default).")

        @OptionGroup var model: ModelArgument
        @Option(help: "Edit file (JSON/JSONL).") var data: String
        @Option(help: "Layout: auto, easyedit (KnowEdit), counterfact, zsre, mquake.") var format = "auto"
        @Option(help: "Method: \(EditorRegistry.methods.joined(separator: ", ")).") var method = "none"
        @Option(help: "Hyper-parameter YAML (default: hparams/<method>/smollm2.yaml).") var hparams: String?
        @Option(name: .customLong("protocol"), help: "single, batch or sequential.") var editingProtocol = EditingProtocol.single
        @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Edits applied together (batch and sequential).") var batchSize: Int?
        @Option(help: "Sequential: evaluate immediate, final or both (default both).") var timing: SequentialTiming?
        @Option(name: .customLong("forward-batch"), parsing: .unconditional, help: "Sequences per forward pass when scoring (1: no batching).") var forwardBatch = 8
        @Option(parsing: .unconditional, help: "Evaluate only the first N records.") var limit: Int?
        @Option(parsing: .unconditional, help: "Evaluate shard i of n, written i/n.") var shard: String?
        @Option(name: .customLong("value-cache"), help: "Folder where ROME/MEMIT/AlphaEdit keep searched target values for reuse.") var valueCache: String?
        @Flag(name: .customLong("no-fluency"), help: "Skip the 100-token fluency generations.") var noFluency = false
        @Option(help: "Write the results (deterministic JSON) here.") var json: String?
        @Option(help: "Write the Markdown report here.") var report: String?

        func validate() throws {
            guard EditorRegistry.methods.contains(method.lowercased()) else {
                throw ValidationError("--method must be one of \(EditorRegistry.methods.joined(separator: ", ")), got '\(method)'")
            }
            _ = try layout()
            _ = try shardParts()
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
            if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
            guard forwardBatch >= 1 else { throw ValidationError("--forward-batch must be at least 1, got \(forwardBatch)") }
            if editingProtocol == .single, let batchSize, batchSize != 1 {
                throw ValidationError("--batch-size \(batchSize) needs --protocol batch or sequential (single edits one record at a time)")
            }
            if hparams != nil, EditorRegistry.hyperParameterSource(method: method, path: hparams) == nil {
                throw ValidationError("--hparams: method \(method) takes no hyper-parameters")
            }
            if timing != nil, editingProtocol != .sequential {
                throw ValidationError("--timing applies to --protocol sequential only")
            }
            try OutputPaths.check(outputs: [("--json", json), ("--report", report)],
                                  inputs: [("the model", model.path), ("the data file", data),
                                           ("the hyper-parameter file", hparams), ("the value cache", valueCache)])
        }

        /// The edit-file layout `--format` names (nil: detect it).
        func layout() throws -> EditFileFormat? {
            switch format {
            case "auto": return nil
            case "knowedit", "easyedit": return .easyEdit
            case "counterfact": return .counterfactFlat
            case "zsre": return .zsreMEND
            case "mquake": return .mquake
            default: throw ValidationError("--format must be auto, knowedit (or easyedit), counterfact, zsre or mquake, got '\(format)'")
            }
        }

        /// `--shard i/n` as (i, n), checked: 0 ≤ i < n.
        func shardParts() throws -> (Int, Int)? {
            guard let shard else { return nil }
            let parts = shard.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let index = parts[0], let count = parts[1] else {
                throw ValidationError("--shard must look like 0/4 (shard i of n), got '\(shard)'")
            }
            guard count >= 1 else { throw ValidationError("--shard \(shard): n must be at least 1") }
            guard (0..<count).contains(index) else { throw ValidationError("--shard \(shard): i must be in 0..<\(count)") }
            return (index, count)
        }

        func run() throws {
            let (ck, lm, tokenizer) = try model.load()
            let file = try EditFile.load(data, format: try layout())
            var o = EvaluationOptions()
            o.editingProtocol = editingProtocol
            o.sequentialTiming = timing ?? .both
            o.editBatchSize = editingProtocol == .single ? 1 : batchSize ?? 1
            o.limit = limit
            o.forwardBatchSize = forwardBatch
            o.fluency = !noFluency
            if let (index, count) = try shardParts() {
                o.shardIndex = index
                o.shardCount = count
            }
            try o.validate()
            let hash = try ck.contentHash()
            let cache = try valueCache.map { try ValueCache(directory: $0, modelID: hash) }
            let editor = try EditorRegistry.make(method: method, hyperParameters: hparams, pool: file.requests,
                                                 model: lm, tokenizer: tokenizer, checkpointSHA256: hash, valueCache: cache,
                                                 statisticsProgress: ProgressReporter("key statistics (documents)").update)
            if let source = EditorRegistry.hyperParameterSource(method: method, path: hparams) { printError("hyper-parameters: \(source)") }
            let runner = EvaluationRunner(model: lm, tokenizer: tokenizer, editor: editor, file: file, modelSHA256: hash, options: o)
            var bars: [String: ProgressReporter] = [:]
            runner.progress = { p in
                let bar = bars[p.phase] ?? ProgressReporter(p.phase)
                bars[p.phase] = bar
                bar.update(p.completed, p.total)
            }
            let result = try runner.run()
            if let json { try result.write(to: json) }
            if let cache { FileHandle.standardError.write(Data("value cache \(cache.directory): \(cache.hits) reused, \(cache.misses) searched\n".utf8)) }
            let markdown = result.markdownReport()
            if let report { try AtomicFile.write(to: report) { try $0.write(markdown) } }
            print(markdown)
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "merge", abstract: "Combine shard results into one.")
        @Argument(help: "Shard result files (JSON from --json).") var shards: [String]
        @Option(help: "Write the merged results here.") var json: String?
        @Option(help: "Write the Markdown report here.") var report: String?
        @Flag(help: "Merge the shards given even if some are missing (the report says how many records were evaluated).")
        var allowMissing = false

        func validate() throws {
            try OutputPaths.check(outputs: [("--json", json), ("--report", report)],
                                  inputs: shards.map { ("the shard file \($0)", $0) })
        }

        func run() throws {
            let merged = try EvaluationRun.merge(shards.map(EvaluationRun.read), allowMissing: allowMissing)
            if let json { try merged.write(to: json) }
            let markdown = merged.markdownReport()
            if let report { try AtomicFile.write(to: report) { try $0.write(markdown) } }
            print(markdown)
        }
    }
}

extension EditingProtocol: ExpressibleByArgument {}
extension SequentialTiming: ExpressibleByArgument {}
