import Foundation

/// Editors by name, with their hyper-parameters from a YAML file (or `hparams/<method>/smollm2.yaml`,
/// or the built-in defaults). One place that knows every method, so the CLI, the evaluator and the
/// server share it.
public enum EditorRegistry {
    public static let methods = ["none", "ike", "rome", "memit", "alphaedit"]

    /// The hyper-parameter file a method will read, or that the built-in defaults are in force
    /// (`HyperParameterFile.source`); nil for methods without hyper-parameters.
    public static func hyperParameterSource(method: String, path: String?) -> String? {
        let m = method.lowercased()
        return ["rome", "memit", "alphaedit"].contains(m) ? HyperParameterFile.source(method: m, path: path) : nil
    }

    /// - Parameters:
    ///   - pool: requests IKE may draw demonstrations from (the other records of the data file).
    ///   - statistics: key statistics for ROME (with mom2_adjustment), MEMIT and AlphaEdit.
    ///   - valueCache: where ROME, MEMIT and AlphaEdit keep their `v*`/`z` between runs.
    ///   - templateStore: where they keep their context templates between runs.
    public static func make(method: String, hyperParameters path: String?, pool: [EditRequest] = [],
                            statistics: StatisticsProvider?, valueCache: ValueCache? = nil,
                            templateStore: TemplateStore? = nil) throws -> Editor {
        func needStatistics() throws -> StatisticsProvider {
            guard let statistics else { throw EngramError.invalidArgument("method '\(method)' needs key statistics") }
            return statistics
        }
        switch method.lowercased() {
        case "none": return NoEditor()
        case "ike": return IKE(pool: pool)
        case "rome":
            let hp = try HyperParameterFile.resolve(ROMEHyperParameters.self, method: "rome", path: path)
            let rome = ROME(hp, statistics: statistics)
            rome.valueCache = valueCache
            rome.templateStore = templateStore
            rome.hyperParameterSource = path ?? HyperParameterFile.defaultPath(method: "rome")
            return rome
        case "memit":
            let hp = try HyperParameterFile.resolve(MEMITHyperParameters.self, method: "memit", path: path)
            let memit = MEMIT(hp, statistics: try needStatistics())
            memit.valueCache = valueCache
            memit.templateStore = templateStore
            memit.hyperParameterSource = path ?? HyperParameterFile.defaultPath(method: "memit")
            return memit
        case "alphaedit":
            let hp = try HyperParameterFile.resolve(MEMITHyperParameters.self, method: "alphaedit", path: path)
            let alphaEdit = AlphaEdit(hp, statistics: try needStatistics())
            alphaEdit.valueCache = valueCache
            alphaEdit.templateStore = templateStore
            alphaEdit.hyperParameterSource = path ?? HyperParameterFile.defaultPath(method: "alphaedit")
            return alphaEdit
        default:
            throw EngramError.invalidArgument("unknown method '\(method)' (known: \(methods.joined(separator: ", ")))")
        }
    }

    /// An editor for a loaded checkpoint, with everything it keeps between runs keyed by the checkpoint's
    /// sha256: key statistics and context templates under `$ENGRAM_HOME` (searched values in
    /// `valueCache` when given: make it with the same hash).
    public static func make(method: String, hyperParameters path: String?, pool: [EditRequest] = [],
                            model: LanguageModel, tokenizer: Tokenizer, checkpointSHA256 hash: String,
                            valueCache: ValueCache? = nil, statisticsProgress: ((Int, Int) -> Void)? = nil) throws -> Editor {
        let statistics = Self.statistics(model: model, tokenizer: tokenizer, modelHash: hash, progress: statisticsProgress)
        return try make(method: method, hyperParameters: path, pool: pool, statistics: statistics,
                        valueCache: valueCache, templateStore: .standard(modelID: hash))
    }

    /// Statistics from the shipped corpus (or `corpus`), cached on disk per model hash; the document
    /// count comes from the method's `mom2_n_samples`.
    public static func statistics(model: LanguageModel, tokenizer: Tokenizer, modelHash: String, corpus: String? = nil,
                                  progress: ((Int, Int) -> Void)? = nil) -> StatisticsProvider {
        var loaded: TextCorpus?
        return { layers, documents in
            guard let path = corpus ?? TextCorpus.defaultPath() else {
                throw EngramError.invalidArgument("no statistics corpus: fixtures/wikitext-2/wiki.test.raw is missing and none was given")
            }
            if loaded == nil { loaded = try TextCorpus(path: path) }
            let collector = KeyStatisticsCollector(model: model, tokenizer: tokenizer, modelHash: modelHash)
            return try collector.statistics(corpus: loaded!, layers: layers, documents: documents, progress: progress)
        }
    }
}
