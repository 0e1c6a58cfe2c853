import ArgumentParser
import Engram
import Foundation

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Causal tracing: which hidden states carry a fact (writes PREFIX.json and PREFIX.svg).")

    @OptionGroup var model: ModelArgument
    @Option(help: "The prompt, e.g. 'The Eiffel Tower is located in the city of'.") var prompt: String
    @Option(help: "The subject inside the prompt, e.g. 'The Eiffel Tower'.") var subject: String
    @Option(help: "The answer to trace (default: the model's own top token).") var target: String?
    @Option(help: "Output prefix: writes PREFIX.json and PREFIX.svg.") var out: String
    @Option(parsing: .unconditional, help: "Noised copies of the prompt.") var samples = 10
    @Option(parsing: .unconditional, help: "Noise standard deviation (default: 3 × std of the token embeddings).") var noise: Float?
    @Option(parsing: .unconditional, help: "Layers restored together for the mlp and attention grids.") var window = 10
    @Option(help: "Kinds to trace: residual, mlp, attention (comma-separated).") var kinds = "residual,mlp,attention"

    /// Checked before the (minutes-long) trace, so that nothing fails only when the results are written.
    func validate() throws {
        if let target, target.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--target is empty") }
        if let noise, !(noise > 0) || !noise.isFinite { throw ValidationError("--noise must be a positive number, got \(noise)") }
        let name = (out as NSString).lastPathComponent
        guard !out.hasSuffix("/"), !name.isEmpty, name != ".", name != ".." else {
            throw ValidationError("--out \(out): give a file prefix (PREFIX.json and PREFIX.svg are written), not a folder")
        }
        let folder = AtomicFile.parentFolder(of: out)
        var isDirectory: ObjCBool = false
        guard folder == "." || (FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) && isDirectory.boolValue) else {
            throw ValidationError("--out \(out): the folder \(folder) does not exist")
        }
        for file in [out + ".json", out + ".svg"] where FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && isDirectory.boolValue {
            throw ValidationError("--out \(out): \(file) is a folder")
        }
        try OutputPaths.checkWritable(option: "--out", path: out + ".json")
        guard (1...1000).contains(samples) else { throw ValidationError("--samples must be in 1...1000, got \(samples)") }
        guard window >= 1 else { throw ValidationError("--window must be at least 1, got \(window)") }
        _ = try kindList()
    }

    func kindList() throws -> [CausalTrace.Kind] {
        guard !kinds.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--kinds: give at least one of residual, mlp, attention") }
        return try kinds.split(separator: ",").map {
            guard let kind = CausalTrace.Kind(rawValue: String($0)) else { throw ValidationError("--kinds: unknown kind '\($0)' (residual, mlp, attention)") }
            return kind
        }
    }

    func run() throws {
        let (_, lm, tokenizer) = try model.load()
        var options = CausalTrace.Options()
        options.samples = samples
        options.noise = noise
        options.window = window
        options.kinds = try kindList()
        let progress = ProgressReporter("tracing")
        let result = try CausalTrace(model: lm, tokenizer: tokenizer).run(prompt: prompt, subject: subject, target: target,
                                                                          options: options, progress: progress.update)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Both files are complete before either is renamed into place.
        let json = try AtomicFile(path: out + ".json"), svg = try AtomicFile(path: out + ".svg")
        do {
            try json.write(try encoder.encode(result))
            try svg.write(TraceHeatmap.svg(result))
            try AtomicFile.commit([json, svg])
        } catch {
            json.abort()
            svg.abort()
            throw error
        }
        printError(String(format: "answer '%@': p(clean) %.3f, p(corrupted) %.3f; wrote %@.json and %@.svg",
                          result.answer, result.cleanProbability, result.corruptedProbability, out, out))
    }
}
