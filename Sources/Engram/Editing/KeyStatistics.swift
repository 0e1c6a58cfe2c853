import COpenBLAS
import Foundation

/// Uncentred second moment of MLP keys, `C = E[k kᵀ]` at one layer (editing-methods.md §8), kept as the
/// raw float64 sum `S = Σ k kᵀ` and the token count, so partial runs can be resumed and merged exactly.
public struct KeyStatistics: Sendable {
    public let layer: Int
    public let width: Int
    public internal(set) var tokens: Int
    public internal(set) var documents: Int
    /// Row-major `[width, width]` raw sum (full, symmetric).
    public internal(set) var sum: [Double]
    /// What the numbers were computed from: model and corpus hashes, max length, …
    public var info: [String: String]

    public init(layer: Int, width: Int, info: [String: String] = [:]) {
        self.layer = layer
        self.width = width
        tokens = 0
        documents = 0
        sum = [Double](repeating: 0, count: width * width)
        self.info = info
    }

    /// What a patch records about the statistics it was solved with.
    public var provenance: String {
        "layer \(layer): \(info["corpus"] ?? "unnamed corpus") (sha256 \(info["corpus_sha256"]?.prefix(16) ?? "unknown")), "
            + "\(documents) documents, \(tokens) tokens"
    }

    /// `C = S / count` as float64.
    public func moment() -> [Double] {
        let n = Double(max(tokens, 1))
        return sum.map { $0 / n }
    }

    // MARK: file format — a safetensors file (readable by any safetensors library) holding the raw sum
    // as F64 under "sum", with the count and provenance in __metadata__.

    public func write(to path: String) throws {
        var meta = info
        meta["layer"] = String(layer)
        meta["tokens"] = String(tokens)
        meta["documents"] = String(documents)
        meta["holds"] = "raw sum of k kᵀ over 'tokens' tokens; divide by tokens for E[k kᵀ]"
        meta["format"] = "engram-key-statistics-1"
        let byteCount = width * width * 8
        let header: [String: Any] = [
            "__metadata__": meta,
            "sum": ["dtype": "F64", "shape": [width, width], "data_offsets": [0, byteCount]] as [String: Any],
        ]
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        // AtomicFile creates the folder, and its temporary file is removed on Ctrl-C.
        try AtomicFile.write(to: path) { file in
            try file.write(littleEndian: UInt64(json.count))
            try file.write(json)
            try sum.withUnsafeBytes { try file.write($0) }
        }
    }

    public static func read(path: String) throws -> KeyStatistics {
        let file = try MappedFile(path: path)
        var r = ByteReader(base: file.pointer, length: file.length, file: path)
        let headerLength = try r.read(UInt64.self, "header length")
        guard headerLength <= UInt64(r.remaining) else { throw EngramError.format(file: path, detail: "header length \(headerLength) runs past the end") }
        let headerBytes = try r.bytes(Int(headerLength), "header")
        guard let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
              let meta = header["__metadata__"] as? [String: String],
              let entry = header["sum"] as? [String: Any], entry["dtype"] as? String == "F64",
              let shape = entry["shape"] as? [Int], shape.count == 2, shape[0] == shape[1], shape[0] > 0,
              let layer = meta["layer"].flatMap(Int.init), let tokens = meta["tokens"].flatMap(Int.init)
        else { throw EngramError.format(file: path, detail: "not an Engram key-statistics file (needs F64 'sum' [m, m] and layer/tokens metadata)") }
        let width = shape[0]
        let payload = try r.bytes(width * width * 8, "sum")
        var stats = KeyStatistics(layer: layer, width: width, info: meta)
        stats.tokens = tokens
        stats.documents = meta["documents"].flatMap(Int.init) ?? 0
        stats.sum = Array(payload.bindMemory(to: Double.self))
        // A damaged file would otherwise surface later as a zero key or a singular C at some layer.
        guard tokens > 0, stats.sum.allSatisfy(\.isFinite), (0..<width).allSatisfy({ stats.sum[$0 * width + $0] >= 0 }),
              (0..<width).contains(where: { stats.sum[$0 * width + $0] > 0 }) else {
            throw EngramError.format(file: path, detail: "the sum of k kᵀ is damaged (non-finite, a negative or all-zero diagonal, or no tokens); delete the file to recompute it")
        }
        for key in ["layer", "tokens", "documents", "holds", "format"] { stats.info[key] = nil }
        return stats
    }
}

/// A text corpus split into documents: one per non-empty paragraph line, WikiText headings skipped,
/// in a fixed pseudo-random order (seed 1) so that any prefix is a reproducible sample.
public struct TextCorpus: Sendable {
    public let path: String
    public let sha256: String
    public let documents: [String]

    public init(path: String) throws {
        let data = try EngramError.readFile(path, what: "the corpus")
        guard let text = String(data: data, encoding: .utf8) else {
            throw EngramError.format(file: path, detail: "the corpus is not UTF-8 text")
        }
        self.path = path
        sha256 = FileHash.sha256(data: data)
        // Split on every newline form: "\r\n" is one Character in Swift, so splitting on "\n" alone
        // would leave a CRLF file (like WikiText's) as a single document.
        var docs = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !($0.hasPrefix("=") && $0.hasSuffix("=")) }
        guard !docs.isEmpty else { throw EngramError.format(file: path, detail: "corpus has no text") }
        var rng = SplitMix64(seed: 1)
        docs.shuffle(using: &rng)
        documents = docs
    }

    /// The corpus shipped with Engram: WikiText-2 test text (CC BY-SA 3.0, see fixtures/wikitext-2/SOURCE.md).
    public static func defaultPath() -> String? {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 {
            dir = dir.deletingLastPathComponent()
            let candidate = dir.appendingPathComponent("fixtures/wikitext-2/wiki.test.raw").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        let installed = (ModelRegistry.home as NSString).appendingPathComponent("corpus/wiki.test.raw")
        return FileManager.default.fileExists(atPath: installed) ? installed : nil
    }

    /// Documents in the shipped corpus: the most a method's `mom2_n_samples` can ask of it (nil when
    /// the corpus is missing or unreadable, which the statistics provider reports when it is needed).
    public static let shippedDocumentCount: Int? = defaultPath().flatMap { try? TextCorpus(path: $0).documents.count }
}

/// Collects key statistics for several layers in one pass over a corpus: documents are tokenized,
/// truncated, batched, and run only up to the highest requested layer.
public struct KeyStatisticsCollector {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let modelHash: String
    public var maxLength = 256
    public var batchDocuments = 16

    public init(model: LanguageModel, tokenizer: Tokenizer, modelHash: String) {
        self.model = model
        self.tokenizer = tokenizer
        self.modelHash = modelHash
    }

    public func info(corpus: TextCorpus, documents: Int) -> [String: String] {
        ["model_sha256": modelHash, "corpus": (corpus.path as NSString).lastPathComponent, "corpus_sha256": corpus.sha256,
         "max_length": String(maxLength), "sample_documents": String(documents), "dtype": "float64"]
    }

    /// Where statistics for this model, corpus, layer and sample size are cached.
    public func cachePath(corpus: TextCorpus, layer: Int, documents: Int) -> String {
        let dir = "\(ModelRegistry.home)/stats/\(modelHash.prefix(16))/\(corpus.sha256.prefix(16))"
        return "\(dir)/layer\(layer)_docs\(documents)_len\(maxLength).safetensors"
    }

    /// Cached statistics when present, otherwise computed (resuming a `.partial` file if one exists)
    /// and cached. `progress(done, total)` is called when collecting starts (done may be a resumed count)
    /// and after every batch.
    public func statistics(corpus: TextCorpus, layers: [Int], documents requested: Int,
                           progress: ((Int, Int) -> Void)? = nil) throws -> [Int: KeyStatistics] {
        // Asking for more documents than the corpus holds is an error rather than a silent cap: the
        // method's mom2_n_samples (or --documents) would otherwise describe statistics it does not have.
        guard requested > 0, requested <= corpus.documents.count else {
            throw EngramError.invalidArgument("statistics corpus \(corpus.path) has \(corpus.documents.count) documents; "
                + "\(requested) were asked for (mom2_n_samples or --documents must be 1...\(corpus.documents.count))")
        }
        let documents = requested
        guard maxLength >= 1 else { throw EngramError.invalidArgument("max length \(maxLength) must be at least 1") }
        for l in layers where !(0..<model.config.layers).contains(l) {
            throw EngramError.invalidArgument("layer \(l) is outside 0..<\(model.config.layers)")
        }
        var result: [Int: KeyStatistics] = [:]
        var missing: [Int] = []
        for l in Set(layers).sorted() {
            let path = cachePath(corpus: corpus, layer: l, documents: documents)
            if FileManager.default.fileExists(atPath: path) { result[l] = try KeyStatistics.read(path: path) } else { missing.append(l) }
        }
        guard !missing.isEmpty else { return result }

        // Resume: every missing layer's partial file must agree on how far it got.
        var partial: [Int: KeyStatistics] = [:]
        for l in missing {
            let path = cachePath(corpus: corpus, layer: l, documents: documents) + ".partial"
            partial[l] = FileManager.default.fileExists(atPath: path) ? try KeyStatistics.read(path: path)
                : KeyStatistics(layer: l, width: model.config.keyWidth, info: info(corpus: corpus, documents: documents))
        }
        var done = partial.values.map(\.documents).min() ?? 0
        if partial.values.contains(where: { $0.documents != done }) {
            done = 0
            for l in missing { partial[l] = KeyStatistics(layer: l, width: model.config.keyWidth, info: info(corpus: corpus, documents: documents)) }
        }
        var lastSave = Date()
        progress?(done, documents)
        while done < documents {
            let batch = Array(corpus.documents[done..<min(done + batchDocuments, documents)])
            try accumulate(batch, into: &partial)
            done += batch.count
            for l in missing { partial[l]!.documents = done }
            progress?(done, documents)
            if Date().timeIntervalSince(lastSave) > 30 && done < documents { // checkpoint for resume
                for l in missing { try partial[l]!.write(to: cachePath(corpus: corpus, layer: l, documents: documents) + ".partial") }
                lastSave = Date()
            }
        }
        for l in missing {
            var s = partial[l]!
            s.symmetrize()
            let path = cachePath(corpus: corpus, layer: l, documents: documents)
            try s.write(to: path)
            try? FileManager.default.removeItem(atPath: path + ".partial")
            result[l] = s
        }
        return result
    }

    /// Runs one batch of documents and adds `Kᵀ K` (upper triangle, float64) for each layer. Each layer's
    /// keys are added while the pass is at that layer, `chunkRows` rows at a time through one small
    /// float64 buffer (converting a whole batch per layer took ~100 MB of fresh pages per batch), and
    /// the pass stops at the last layer's keys.
    func accumulate(_ texts: [String], into stats: inout [Int: KeyStatistics]) throws {
        let m = model.config.keyWidth
        let layers = stats.keys.sorted()
        let inputs = texts.map { text -> SequenceInput in
            let ids = Array(tokenizer.encode(text, addSpecial: true).prefix(maxLength))
            return SequenceInput(tokens: ids, cache: model.makeCache(capacity: ids.count))
        }.filter { !$0.tokens.isEmpty }
        guard !inputs.isEmpty, let last = layers.last else { return }
        // The sums are moved out of `stats` (no copy) so the handlers can add to them in place.
        var sums = layers.map { l -> [Double] in
            var sum: [Double] = []
            swap(&sum, &stats[l]!.sum)
            return sum
        }
        defer { for (i, l) in layers.enumerated() { swap(&sums[i], &stats[l]!.sum) } }
        let chunkRows = 256
        let chunk = UnsafeMutablePointer<Double>.allocate(capacity: chunkRows * m)
        defer { chunk.deallocate() }
        var hooks = Hooks()
        hooks.stopAfter = .mlpKey(last)
        for (i, l) in layers.enumerated() {
            hooks.on(.mlpKey(l)) { rows in
                sums[i].withUnsafeMutableBufferPointer { s in
                    for r0 in stride(from: 0, to: rows.rows, by: chunkRows) {
                        let n = min(chunkRows, rows.rows - r0)
                        let keys = rows.row(r0)
                        for j in 0..<(n * m) { chunk[j] = Double(keys[j]) }
                        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(m), Int32(n), 1, chunk, Int32(m), 1, s.baseAddress, Int32(m))
                    }
                }
            }
        }
        _ = try model.forward(inputs, hooks: hooks, logits: .none)
        let tokens = inputs.reduce(0) { $0 + $1.tokens.count }
        for l in layers { stats[l]!.tokens += tokens }
    }
}

extension KeyStatistics {
    /// Copies the upper triangle (what dsyrk fills) into the lower one.
    mutating func symmetrize() {
        let m = width
        sum.withUnsafeMutableBufferPointer { s in
            for i in 0..<m { for j in 0..<i { s[i * m + j] = s[j * m + i] } }
        }
    }
}
