import ArgumentParser
import Engram
import Foundation

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Collect (or show cached) second-moment statistics E[k kᵀ] of MLP keys, for ROME/MEMIT/AlphaEdit.")

    @OptionGroup var model: ModelArgument
    @Option(help: "Layers, comma-separated (e.g. 4,5,6).") var layers: String
    @Option(help: "Text corpus (default: the shipped WikiText-2 test text).") var corpus: String?
    @Option(parsing: .unconditional, help: "Documents (paragraphs) to sample (default: 2000, or all of a smaller corpus).") var documents: Int?
    @Option(name: .customLong("max-length"), parsing: .unconditional, help: "Tokens per document at most.") var maxLength = 256

    func validate() throws {
        guard maxLength >= 1 else { throw ValidationError("--max-length must be at least 1, got \(maxLength)") }
        if let documents, documents < 1 { throw ValidationError("--documents must be at least 1, got \(documents)") }
        _ = try layerList()
    }

    func layerList() throws -> [Int] {
        let list = try layers.split(separator: ",").map {
            guard let l = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--layers: '\($0)' is not a number") }
            return l
        }
        guard !list.isEmpty else { throw ValidationError("--layers: no layers given") }
        guard Set(list).count == list.count else { throw ValidationError("--layers: a layer is given twice (\(layers))") }
        return list
    }

    func run() throws {
        let layerList = try layerList()
        guard let corpusPath = corpus ?? TextCorpus.defaultPath() else {
            throw ValidationError("no corpus given and the default corpus (fixtures/wikitext-2/wiki.test.raw) was not found")
        }
        let (ck, lm, tokenizer) = try model.load()
        let text = try TextCorpus(path: corpusPath)
        var collector = KeyStatisticsCollector(model: lm, tokenizer: tokenizer, modelHash: try ck.contentHash())
        collector.maxLength = maxLength
        let documents = self.documents ?? min(2000, text.documents.count)
        let progress = ProgressReporter("documents")
        let stats = try collector.statistics(corpus: text, layers: layerList, documents: documents, progress: progress.update)
        for l in layerList.sorted() {
            guard let s = stats[l] else { continue }
            let trace = (0..<s.width).reduce(0.0) { $0 + s.sum[$1 * s.width + $1] } / Double(max(s.tokens, 1))
            print("layer \(l): \(s.tokens) tokens from \(s.documents) documents, trace(C) = \(String(format: "%.4g", trace)) -> \(collector.cachePath(corpus: text, layer: l, documents: documents))")
        }
    }
}
