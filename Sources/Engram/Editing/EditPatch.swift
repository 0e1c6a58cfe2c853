import Foundation

extension EditableWeight {
    /// Stable text name used in patch files and reports, e.g. "mlp_down.5".
    public var name: String {
        switch self {
        case let .mlpDown(l): return "mlp_down.\(l)"
        }
    }

    /// The checkpoint tensor that holds this weight (canonical GGUF-style name).
    public var canonicalTensorName: String {
        switch self {
        case let .mlpDown(l): return "blk.\(l).ffn_down.weight"
        }
    }

    public init?(name: String) {
        let parts = name.split(separator: ".")
        guard parts.count == 2, let l = Int(parts[1]), l >= 0 else { return nil }
        switch parts[0] {
        case "mlp_down": self = .mlpDown(l)
        default: return nil
        }
    }

    /// The `[rows, cols]` shape of the live matrix in a model of this config, or nil when the model has
    /// no such weight (layer out of range). Checked before `LanguageModel.weight` is called, which traps.
    public func shape(in config: ModelConfig) -> (rows: Int, cols: Int)? {
        switch self {
        case let .mlpDown(l): return l < config.layers ? (config.hidden, config.intermediate) : nil
        }
    }
}

/// Prompt-side edits (in-context editing): text shown before every query instead of a weight change.
/// A query is rendered as `demonstrations + facts (each as factPrefix + fact + "\n") + queryPrefix + query`.
public struct PromptContext: Codable, Equatable, Sendable {
    public var demonstrations: String
    public var facts: [String]
    public var factPrefix: String
    public var queryPrefix: String

    public init(demonstrations: String, facts: [String], factPrefix: String = "New Fact: ", queryPrefix: String = "Prompt: ") {
        self.demonstrations = demonstrations
        self.facts = facts
        self.factPrefix = factPrefix
        self.queryPrefix = queryPrefix
    }

    public func render(_ query: String) -> String {
        demonstrations + facts.map { factPrefix + $0 + "\n" }.joined() + queryPrefix + query
    }

    /// Several prompt-side patches in force at once (batch or sequential in-context editing): the
    /// first one's demonstrations and markers, every fact in application order.
    public static func merged(_ contexts: [PromptContext]) -> PromptContext? {
        guard let first = contexts.first else { return nil }
        return PromptContext(demonstrations: first.demonstrations, facts: contexts.flatMap(\.facts),
                             factPrefix: first.factPrefix, queryPrefix: first.queryPrefix)
    }
}

/// A change to one weight matrix `W [rows, cols]`.
public struct WeightDelta: @unchecked Sendable {
    public enum Change {
        /// ΔW = Σₖ r[k] u[k]ᵀ, with `r [rank, rows]` (output side) and `u [rank, cols]` (input side).
        /// ROME is rank one; MEMIT/AlphaEdit deltas can be stored as their key/residual factors.
        case lowRank(r: Matrix, u: Matrix)
        /// ΔW stored in full, `[rows, cols]`.
        case dense(Matrix)
    }

    public var weight: EditableWeight
    public var change: Change

    public init(weight: EditableWeight, change: Change) {
        self.weight = weight
        self.change = change
    }

    public var rows: Int {
        switch change {
        case let .lowRank(r, _): return r.cols
        case let .dense(d): return d.rows
        }
    }

    public var cols: Int {
        switch change {
        case let .lowRank(_, u): return u.cols
        case let .dense(d): return d.cols
        }
    }

    /// ΔW as a dense matrix (for export and tests).
    public func denseDelta() -> Matrix {
        switch change {
        case let .dense(d): return d.copy()
        case let .lowRank(r, u):
            let out = Matrix(rows: r.cols, cols: u.cols)
            BLAS.gemm(transA: true, transB: false, m: r.cols, n: u.cols, k: r.rows,
                      a: r.pointer, lda: r.cols, b: u.pointer, ldb: u.cols, beta: 0, c: out.pointer, ldc: u.cols)
            return out
        }
    }

    /// Adds ΔW into `w` in place.
    func add(into w: Matrix) {
        switch change {
        case let .dense(d): Kernels.add(w.pointer, d.pointer, count: w.count)
        case let .lowRank(r, u):
            BLAS.gemm(transA: true, transB: false, m: r.cols, n: u.cols, k: r.rows,
                      a: r.pointer, lda: r.cols, b: u.pointer, ldb: u.cols, beta: 1, c: w.pointer, ldc: u.cols)
        }
    }

    func validate(model config: ModelConfig, patch: String) throws {
        guard let shape = weight.shape(in: config) else {
            throw EngramError.invalidArgument("\(patch): weight '\(weight.name)' does not exist in this model (\(config.layers) layers)")
        }
        if case let .lowRank(r, u) = change, r.rows != u.rows {
            throw EngramError.invalidArgument("\(patch): weight '\(weight.name)': r has rank \(r.rows) but u has rank \(u.rows)")
        }
        guard rows == shape.rows, cols == shape.cols else {
            throw EngramError.invalidArgument("\(patch): weight '\(weight.name)': delta is [\(rows), \(cols)] but the model's matrix is [\(shape.rows), \(shape.cols)]")
        }
        let matrices: [Matrix]
        switch change {
        case let .lowRank(r, u): matrices = [r, u]
        case let .dense(d): matrices = [d]
        }
        for m in matrices where !UnsafeBufferPointer(start: m.pointer, count: m.count).allSatisfy(\.isFinite) {
            throw EngramError.invalidArgument("\(patch): weight '\(weight.name)': the delta holds NaN or infinite values")
        }
        // Finite factors can still multiply past float32's range; every entry of r uᵀ is at most
        // Σ_k max|r_k| · max|u_k|, and an edit never comes near 1e30.
        if case let .lowRank(r, u) = change {
            func largest(_ m: Matrix, _ k: Int) -> Double {
                (0..<m.cols).reduce(0) { max($0, Double(abs(m.pointer[k * m.cols + $1]))) }
            }
            let bound = (0..<r.rows).reduce(0.0) { $0 + largest(r, $1) * largest(u, $1) }
            guard bound < 1e30 else {
                throw EngramError.invalidArgument("\(patch): weight '\(weight.name)': the low-rank factors multiply to values up to \(bound), which no edit produces")
            }
        }
    }
}

/// What an editor produces: weight changes and/or prompt-side context, with everything needed to
/// reproduce and audit it. Applying, reverting, saving and loading are one code path for every method.
public struct EditPatch: @unchecked Sendable {
    public var method: String
    public var hyperParameters: [String: String]
    public var requests: [EditRequest]
    /// sha256 of the checkpoint file the patch was computed on (set by whoever knows the file).
    public var baseSHA256: String?
    public var deltas: [WeightDelta]
    public var context: PromptContext?
    /// Anything else needed to reproduce the patch (seed, cached context templates, statistics id…).
    public var metadata: [String: String]
    /// The base checkpoint's stored bytes of every edited weight, when the patch was made from a file:
    /// reverting an edited checkpoint file writes these back, so the weights come back bit for bit in
    /// their original type (subtracting ΔW in float32 would not, and a quantized tensor stays F32).
    public var originals: [StoredOriginal]

    public init(method: String, hyperParameters: [String: String] = [:], requests: [EditRequest], baseSHA256: String? = nil,
                deltas: [WeightDelta] = [], context: PromptContext? = nil, metadata: [String: String] = [:],
                originals: [StoredOriginal] = []) {
        self.method = method
        self.hyperParameters = hyperParameters
        self.requests = requests
        self.baseSHA256 = baseSHA256
        self.deltas = deltas
        self.context = context
        self.metadata = metadata
        self.originals = originals
    }

    /// A patch made on another checkpoint changes weights it never saw: applying it there takes the
    /// user's say-so. A patch without a base hash (made in memory, e.g. by a server) fits any checkpoint,
    /// and so does any patch when the checkpoint's hash is unknown.
    public func baseDiffers(from checkpointSHA256: String?) -> Bool {
        guard let baseSHA256, let checkpointSHA256 else { return false }
        return baseSHA256 != checkpointSHA256
    }

    /// Records the base checkpoint's stored bytes of every weight this patch changes.
    public mutating func keepOriginals(from ck: Checkpoint) throws {
        var seen = Set<EditableWeight>()
        originals = try deltas.compactMap { d in
            guard seen.insert(d.weight).inserted else { return nil }
            let t = try ck.tensor(d.weight.canonicalTensorName)
            return StoredOriginal(weight: d.weight, dtype: t.dtype, shape: t.shape,
                                  bytes: Data(bytes: t.data, count: t.byteCount))
        }
    }

    /// Checks every delta and stored original against the model's matrices: a patch file is user input,
    /// and its weights and shapes must be known to fit before anything reads or writes through them.
    public func validate(model config: ModelConfig, patch file: String) throws {
        for d in deltas { try d.validate(model: config, patch: file) }
        for o in originals {
            guard let shape = o.weight.shape(in: config) else {
                throw EngramError.invalidArgument("\(file): original weight '\(o.weight.name)' does not exist in this model (\(config.layers) layers)")
            }
            guard o.shape.reduce(1, *) == shape.rows * shape.cols else {
                throw EngramError.invalidArgument("\(file): original weight '\(o.weight.name)' has shape \(o.shape), but the model's matrix is [\(shape.rows), \(shape.cols)]")
            }
            // Reverting writes these bytes back as the weight: a damaged copy must not become the model.
            var values = [Float](repeating: 0, count: shape.rows * shape.cols)
            o.values(into: &values)
            guard values.allSatisfy(\.isFinite) else {
                throw EngramError.invalidArgument("\(file): the stored original of weight '\(o.weight.name)' holds NaN or infinite values")
            }
        }
    }

    /// Checks that `model` holds this patch's stored originals plus ΔW: `patch revert` writes the originals
    /// back, which would silently discard anything else that changed those weights. `storedType` gives the
    /// type each weight has in the checkpoint the model was read from: an edited checkpoint stores original
    /// + ΔW rounded to that type (BF16 keeps 8 significant bits), so each element may differ from the float32
    /// sum by half a unit in its last place, on top of float32 rounding across the weight.
    public func checkHeld(by model: LanguageModel, storedType: (EditableWeight) -> DType?, checkpoint: String) throws {
        for o in originals {
            let w = model.weight(o.weight)
            guard o.shape.reduce(1, *) == w.count else {
                throw EngramError.invalidArgument("\(checkpoint): the patch's original \(o.weight.name) has shape \(o.shape), the checkpoint's weight has \(w.rows)×\(w.cols)")
            }
            var expected = [Float](repeating: 0, count: w.count)
            o.values(into: &expected)
            for d in deltas where d.weight == o.weight {
                let delta = d.denseDelta()
                for i in 0..<w.count { expected[i] += delta.pointer[i] }
            }
            let relative: Float
            switch storedType(o.weight) {
            case .bf16?: relative = 0x1p-8
            case .f16?: relative = 0x1p-11
            default: relative = 0
            }
            var scale: Float = 1e-12
            for e in expected { scale = max(scale, abs(e)) }
            var worst: Float = 0
            for i in 0..<w.count {
                let difference = abs(w.pointer[i] - expected[i])
                // NaN never compares greater: count it as infinitely far.
                let excess = difference.isNaN ? .infinity : difference - relative * abs(expected[i])
                worst = max(worst, excess)
            }
            if worst > 1e-4 * scale {
                throw EngramError.invalidArgument("\(checkpoint): \(o.weight.name) does not hold this patch's edit (largest difference \(worst) beyond the rounding of its stored type); use --force to write the originals anyway")
            }
        }
    }

    /// Writes the deltas into the model's live weights, remembering the exact values overwritten.
    /// Everything is checked before the first weight is touched.
    public func apply(to model: LanguageModel) throws -> AppliedPatch {
        for d in deltas { try d.validate(model: model.config, patch: "patch '\(method)'") }
        var originals: [(EditableWeight, FloatBuffer)] = []
        var seen = Set<EditableWeight>()
        // Weights whose quantized blocks still match their floats: restoring the floats restores that.
        var blocksMatched = Set<EditableWeight>()
        for d in deltas where !seen.contains(d.weight) {
            seen.insert(d.weight)
            if let q = model.readWeight(d.weight).quantized, !q.isRetired { blocksMatched.insert(d.weight) }
            let w = model.weight(d.weight)
            let saved = FloatBuffer(count: w.count, zeroed: false)
            saved.pointer.update(from: w.pointer, count: w.count)
            originals.append((d.weight, saved))
        }
        for d in deltas { d.add(into: model.weight(d.weight)) }
        // Finite deltas can still overflow once added to the weights: undo everything and say so.
        for weight in seen {
            let w = model.weight(weight)
            guard UnsafeBufferPointer(start: w.pointer, count: w.count).allSatisfy(\.isFinite) else {
                for (weight, saved) in originals { model.weight(weight).pointer.update(from: saved.pointer, count: saved.count) }
                for weight in blocksMatched { model.readWeight(weight).quantized?.reinstate() }
                throw EngramError.invalidArgument("patch '\(method)': adding the delta to weight '\(weight.name)' overflows float32; nothing was changed")
            }
        }
        let fingerprints = originals.map { AppliedPatch.fingerprint(model.weight($0.0)) }
        return AppliedPatch(model: model, patch: self, originals: originals, fingerprints: fingerprints,
                            blocksMatched: blocksMatched)
    }
}

/// One weight as the base checkpoint stored it: element type, shape and raw bytes (quantized blocks
/// included), in the checkpoint's own layout.
public struct StoredOriginal: Sendable, Equatable {
    public var weight: EditableWeight
    public var dtype: DType
    public var shape: [Int]
    public var bytes: Data

    /// The stored values as float32 (dequantized if quantized): what the base model computed with.
    public func values(into out: UnsafeMutablePointer<Float>) {
        bytes.withUnsafeBytes { Dequantize.run(dtype, source: $0.baseAddress!, count: shape.reduce(1, *), into: out) }
    }
}

/// A patch in force on a model. `revert` copies back the saved original values, so the weights are
/// restored bit for bit (subtracting Δ again would not be exact in floating point).
public final class AppliedPatch {
    public let patch: EditPatch
    let model: LanguageModel
    private var originals: [(EditableWeight, FloatBuffer)]
    private let fingerprints: [UInt64]
    /// The weights whose quantized blocks were in use when the patch was applied.
    private let blocksMatched: Set<EditableWeight>
    public private(set) var isReverted = false

    init(model: LanguageModel, patch: EditPatch, originals: [(EditableWeight, FloatBuffer)], fingerprints: [UInt64],
         blocksMatched: Set<EditableWeight>) {
        self.model = model
        self.patch = patch
        self.originals = originals
        self.fingerprints = fingerprints
        self.blocksMatched = blocksMatched
    }

    /// Restores the overwritten values. Fails, changing nothing, when a weight was modified after this
    /// patch was applied (patches stacked on one weight must be reverted last-in first-out).
    public func revert() throws {
        guard !isReverted else { return }
        for (i, (weight, _)) in originals.enumerated() where AppliedPatch.fingerprint(model.readWeight(weight)) != fingerprints[i] {
            throw EngramError.invalidArgument("patch '\(patch.method)': weight '\(weight.name)' changed after the patch was applied; revert the later patches first")
        }
        for (weight, saved) in originals {
            let w = model.weight(weight)
            w.pointer.update(from: saved.pointer, count: w.count)
            // The floats are those the blocks matched when the patch was applied: decode from the blocks again.
            if blocksMatched.contains(weight) { w.quantized?.reinstate() }
        }
        originals = []
        isReverted = true
    }

    /// FNV-1a over the bit patterns: cheap, and any change of any value changes it with near certainty.
    static func fingerprint(_ m: Matrix) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        let bits = UnsafeRawPointer(m.pointer).assumingMemoryBound(to: UInt32.self)
        for i in 0..<m.count { h = (h ^ UInt64(bits[i])) &* 0x100000001b3 }
        return h
    }
}

/// A model with a stack of patches in force: what the evaluation protocols drive.
public final class EditSession {
    public let model: LanguageModel
    public private(set) var applied: [AppliedPatch] = []

    public init(model: LanguageModel) { self.model = model }

    @discardableResult
    public func apply(_ patch: EditPatch) throws -> AppliedPatch {
        let a = try patch.apply(to: model)
        applied.append(a)
        return a
    }

    /// The prompt-side context of every patch in force, merged in application order.
    public var context: PromptContext? { PromptContext.merged(applied.compactMap(\.patch.context)) }

    public func revertLast() throws {
        guard let last = applied.last else { return }
        try last.revert()
        applied.removeLast()
    }

    public func revertAll() throws {
        while !applied.isEmpty { try revertLast() }
    }
}

// MARK: - Patch files

/// Patch files are safetensors files (written and read by `Safetensors`): each delta's float32 tensors
/// are named `delta.N.r` and `delta.N.u` (low rank) or `delta.N.dense`, the base checkpoint's stored
/// bytes of edited weights (if kept) are U8 tensors `original.N`, and the patch description
/// (method, hyper-parameters, requests, base checkpoint hash, context, metadata, delta list) is JSON in
/// `__metadata__["engram.patch"]`. Any safetensors tool can list the tensors.
extension EditPatch {
    public static let formatName = "engram-patch-1"

    struct Description: Codable {
        struct Delta: Codable {
            var weight: String
            var kind: String
            var rows: Int
            var cols: Int
            var rank: Int?
        }
        struct Original: Codable {
            var weight: String
            var dtype: String
            var shape: [Int]
        }
        var format: String
        var method: String
        var hyperParameters: [String: String]
        var requests: [EditRequest]
        var baseSHA256: String?
        var context: PromptContext?
        var metadata: [String: String]
        var deltas: [Delta]
        var originals: [Original]?
    }

    /// The tensors and the description text, in file order.
    func fileContents() throws -> (tensors: [(String, Matrix)], description: String) {
        var tensors: [(String, Matrix)] = []
        var described: [Description.Delta] = []
        for (i, d) in deltas.enumerated() {
            switch d.change {
            case let .lowRank(r, u):
                tensors += [("delta.\(i).r", r), ("delta.\(i).u", u)]
                described.append(.init(weight: d.weight.name, kind: "low_rank", rows: d.rows, cols: d.cols, rank: r.rows))
            case let .dense(m):
                tensors.append(("delta.\(i).dense", m))
                described.append(.init(weight: d.weight.name, kind: "dense", rows: d.rows, cols: d.cols, rank: nil))
            }
        }
        let description = Description(format: EditPatch.formatName, method: method, hyperParameters: hyperParameters, requests: requests,
                                      baseSHA256: baseSHA256, context: context, metadata: metadata, deltas: described,
                                      originals: originals.isEmpty ? nil : originals.map { .init(weight: $0.weight.name, dtype: $0.dtype.description, shape: $0.shape) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (tensors, String(decoding: try encoder.encode(description), as: UTF8.self))
    }

    /// Saves the patch; the file appears whole or not at all. Equal patches give equal bytes.
    public func write(to path: String) throws {
        let (tensors, description) = try fileContents()
        let raw = originals.enumerated().map { i, o in
            WritableTensor.opaqueBytes(name: "original.\(i)", data: o.bytes)
        }
        try Safetensors.write(tensors: try tensors.map { name, m in try WritableTensor.matrix(name: name, shape: [m.rows, m.cols], as: .f32, m) } + raw,
                              metadata: ["engram.patch": description, "format": EditPatch.formatName], to: path)
    }

    /// The patch file's bytes (what `write` stores).
    public func fileData() throws -> Data {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("engram-patch-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: temporary) }
        try write(to: temporary.path)
        return try Data(contentsOf: temporary)
    }

    /// Parses patch bytes (e.g. an upload); `file` names them in errors. The safetensors reader maps
    /// files, so the bytes go through a private temporary file.
    public static func parse(_ data: Data, file: String) throws -> EditPatch {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("engram-patch-\(UUID().uuidString).safetensors")
        try data.write(to: temporary)
        defer { try? FileManager.default.removeItem(at: temporary) }
        do { return try read(temporary.path) } catch let error as EngramError {
            // The error names the temporary file first; name `file` once instead.
            var detail = error.description
            if detail.hasPrefix(temporary.path + ": ") { detail.removeFirst(temporary.path.count + 2) }
            throw EngramError.format(file: file, detail: detail.replacingOccurrences(of: temporary.path, with: file))
        }
    }

    public static func read(_ path: String) throws -> EditPatch {
        let file = try Safetensors.read(path: path)
        guard let text = file.metadata["engram.patch"] else {
            throw EngramError.metadata(file: path, key: "__metadata__.engram.patch", detail: "missing: this safetensors file is not an Engram patch")
        }
        let description: Description
        do { description = try JSONDecoder().decode(Description.self, from: Data(text.utf8)) } catch {
            throw EngramError.metadata(file: path, key: "__metadata__.engram.patch", detail: "cannot decode the patch description: \(error)")
        }
        guard description.format == formatName else {
            throw EngramError.metadata(file: path, key: "format", detail: "expected \(formatName), found \(description.format)")
        }

        func tensor(_ name: String, rows: Int, cols: Int) throws -> Matrix {
            guard let entry = file.entry(name) else { throw EngramError.tensor(file: path, tensor: name, detail: "missing") }
            guard entry.dtype == .f32 else { throw EngramError.tensor(file: path, tensor: name, detail: "dtype \(entry.dtypeName) is not F32") }
            guard entry.shape == [rows, cols] else {
                throw EngramError.tensor(file: path, tensor: name, detail: "shape \(entry.shape) disagrees with [\(rows), \(cols)] in the description")
            }
            // Copied out of the mapping, so the patch outlives the file.
            let m = Matrix(rows: rows, cols: cols)
            Dequantize.run(.f32, source: file.data(entry), count: m.count, into: m.pointer)
            return m
        }

        var deltas: [WeightDelta] = []
        for (i, d) in description.deltas.enumerated() {
            guard let weight = EditableWeight(name: d.weight) else {
                throw EngramError.metadata(file: path, key: "deltas[\(i)].weight", detail: "unknown weight '\(d.weight)'")
            }
            guard d.rows > 0, d.cols > 0 else { throw EngramError.metadata(file: path, key: "deltas[\(i)]", detail: "empty shape [\(d.rows), \(d.cols)]") }
            switch d.kind {
            case "low_rank":
                guard let rank = d.rank, rank > 0 else { throw EngramError.metadata(file: path, key: "deltas[\(i)].rank", detail: "missing or not positive") }
                let r = try tensor("delta.\(i).r", rows: rank, cols: d.rows)
                let u = try tensor("delta.\(i).u", rows: rank, cols: d.cols)
                deltas.append(WeightDelta(weight: weight, change: .lowRank(r: r, u: u)))
            case "dense":
                deltas.append(WeightDelta(weight: weight, change: .dense(try tensor("delta.\(i).dense", rows: d.rows, cols: d.cols))))
            default:
                throw EngramError.metadata(file: path, key: "deltas[\(i)].kind", detail: "unknown kind '\(d.kind)' (expected low_rank or dense)")
            }
        }
        var originals: [StoredOriginal] = []
        for (i, o) in (description.originals ?? []).enumerated() {
            let key = "originals[\(i)]"
            guard let weight = EditableWeight(name: o.weight) else { throw EngramError.metadata(file: path, key: "\(key).weight", detail: "unknown weight '\(o.weight)'") }
            guard let dtype = DType.allCases.first(where: { $0.description == o.dtype }) else { throw EngramError.metadata(file: path, key: "\(key).dtype", detail: "unknown type '\(o.dtype)'") }
            // The shape comes from the file: its product must not overflow (a trap, not an error).
            let elements = o.shape.reduce(Optional(1)) { product, n in
                product.flatMap { p in let (r, overflow) = p.multipliedReportingOverflow(by: n); return overflow ? nil : r }
            }
            guard !o.shape.isEmpty, o.shape.allSatisfy({ $0 > 0 }), let elements, let byteCount = dtype.byteCount(elements: elements) else {
                throw EngramError.metadata(file: path, key: "\(key).shape", detail: "\(o.shape) is not a valid \(o.dtype) shape")
            }
            let name = "original.\(i)"
            guard let entry = file.entry(name) else { throw EngramError.tensor(file: path, tensor: name, detail: "missing") }
            guard entry.dtypeName == "U8", entry.byteCount == byteCount else {
                throw EngramError.tensor(file: path, tensor: name, detail: "\(entry.dtypeName), \(entry.byteCount) bytes: expected U8 holding \(o.shape) of \(o.dtype)")
            }
            originals.append(StoredOriginal(weight: weight, dtype: dtype, shape: o.shape, bytes: Data(bytes: file.data(entry), count: entry.byteCount)))
        }
        // The base is compared with checkpoint hashes: a value that is no sha256 could never match.
        if let base = description.baseSHA256, base.count != 64 || !base.allSatisfy(\.isHexDigit) {
            throw EngramError.metadata(file: path, key: "baseSHA256", detail: "'\(base)' is not a sha256 (64 hexadecimal digits)")
        }
        return EditPatch(method: description.method, hyperParameters: description.hyperParameters, requests: description.requests,
                         baseSHA256: description.baseSHA256, deltas: deltas, context: description.context, metadata: description.metadata,
                         originals: originals)
    }
}
