import Foundation

/// Writes a checkpoint as a GGUF file or as a Hugging Face folder (config.json + model.safetensors),
/// optionally with some tensors replaced (an edited model). Tensors are streamed one at a time, and
/// the output appears atomically: a temporary sibling is renamed into place at the end.
public enum CheckpointConverter {
    /// - Parameters:
    ///   - ck: the source checkpoint (canonical names and layouts, whatever its file format).
    ///   - format: `.gguf` writes one file at `out`; `.safetensors` writes a folder at `out`.
    ///   - dtype: F32, F16 or BF16 for every tensor. Nil keeps each tensor's stored type where the
    ///     output format has it (quantized tensors stay quantized in GGUF and become F32 in safetensors).
    ///   - replacing: canonical tensor names → new values in the canonical layout; written as `dtype`,
    ///     or as the tensor's own type if that is F32/F16/BF16, else F32.
    ///   - restoring: canonical tensor names → stored bytes written back unchanged in their own type
    ///     (a patch's originals); safetensors gets their values in the output tensor's type.
    ///   - extraFiles: files written beside the safetensors (e.g. a generated tokenizer.json); they
    ///     override the checkpoint's own sidecars of the same name. Ignored for GGUF.
    ///   - extraMetadata: GGUF keys added to (or overriding) the checkpoint's metadata, e.g. the
    ///     `tokenizer.ggml.*` keys when converting a Hugging Face folder. Ignored for safetensors.
    public static func convert(_ ck: Checkpoint, to format: CheckpointFormat, out: String, dtype: DType? = nil,
                               replacing: [String: Matrix] = [:], restoring: [String: StoredOriginal] = [:],
                               extraFiles: [String: Data] = [:], extraMetadata: [(String, MetadataValue)] = []) throws {
        if let dtype, dtype.isQuantized {
            throw EngramError.invalidArgument("output type \(dtype) is not supported: conversion writes F32, F16 or BF16 (quantized tensors are copied unchanged when no type is given)")
        }
        try checkReplacements(ck, replacing)
        for (name, o) in restoring.sorted(by: { $0.key < $1.key }) {
            // Originals are recorded in the canonical layout, so the shape must match exactly (an equal
            // element count in another shape would write a malformed tensor).
            guard let t = ck.tensors[name], t.shape == o.shape else {
                throw EngramError.tensor(file: ck.location, tensor: name, detail: "cannot be restored: the checkpoint has no such tensor of shape \(o.shape)")
            }
        }
        try refuseOverwritingInput(ck, out: out, format: format)
        switch format {
        case .gguf: try writeGGUF(ck, out: out, dtype: dtype, replacing: replacing, restoring: restoring, extraMetadata: extraMetadata)
        case .safetensors:
            // Safetensors has no quantized blocks: originals go in as the values the base model computed
            // with, written in the output tensor's type.
            var replacing = replacing
            for (name, o) in restoring {
                let cols = ck.tensors[name]!.shape.last ?? 1
                let m = Matrix(rows: o.shape.reduce(1, *) / cols, cols: cols)
                o.values(into: m.pointer)
                replacing[name] = m
            }
            try writeHuggingFace(ck, out: out, dtype: dtype, replacing: replacing, extraFiles: extraFiles)
        }
    }

    static func checkReplacements(_ ck: Checkpoint, _ replacing: [String: Matrix]) throws {
        for (name, m) in replacing.sorted(by: { $0.key < $1.key }) {
            guard let t = ck.tensors[name] else {
                throw EngramError.tensor(file: ck.location, tensor: name, detail: "cannot be replaced: the checkpoint has no such tensor")
            }
            let cols = t.shape.last ?? 1
            guard m.count == t.elementCount, m.cols == cols || t.shape.count == 1 else {
                throw EngramError.tensor(file: ck.location, tensor: name, detail: "replacement is \(m.rows)×\(m.cols), the tensor has shape \(t.shape)")
            }
        }
    }

    /// The output must not be the input (or a file of it, or a folder containing it): the source is
    /// memory-mapped while it is being copied, and a failed write must never destroy it.
    static func refuseOverwritingInput(_ ck: Checkpoint, out: String, format: CheckpointFormat) throws {
        let target = resolved(out)
        var inputs = Set([resolved(ck.location)])
        for t in ck.tensors.values { inputs.insert(resolved(t.file)) }
        for input in inputs where input == target || (format == .safetensors && input.hasPrefix(target + "/")) {
            throw EngramError.invalidArgument("\(out): refusing to write the output onto the input checkpoint (\(input)); choose another path")
        }
    }

    /// Absolute path with symbolic links resolved as far as the path exists.
    public static func resolved(_ path: String) -> String {
        let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath).standardizedFileURL
        if FileManager.default.fileExists(atPath: url.path) { return url.resolvingSymlinksInPath().path }
        let parent = url.deletingLastPathComponent()
        return parent.resolvingSymlinksInPath().appendingPathComponent(url.lastPathComponent).path
    }

    /// The type a tensor is written in. `allowQuantized` says whether the format can hold GGML blocks.
    static func outputType(_ t: StoredTensor, dtype: DType?, replaced: Bool, allowQuantized: Bool) -> DType {
        if let dtype { return dtype }
        if t.dtype.isQuantized { return replaced || !allowQuantized ? .f32 : t.dtype }
        return t.dtype
    }

    // MARK: GGUF

    static func writeGGUF(_ ck: Checkpoint, out: String, dtype: DType?, replacing: [String: Matrix],
                          restoring: [String: StoredOriginal], extraMetadata: [(String, MetadataValue)]) throws {
        var metadata = Metadata(file: out)
        for key in ck.metadata.keys { metadata[key] = ck.metadata[key] }
        for (key, value) in extraMetadata { metadata[key] = value }
        if ck.format == .gguf, dtype != nil {
            // The file type no longer describes the tensors; llama.cpp only uses it for display. An edit
            // keeps it: like any "mostly Q4_1" file, it then holds a few F32 tensors, and reverting the
            // edit gives back the original file byte for byte.
            metadata["general.file_type"] = nil
        }
        let tensors = try ck.tensorNames.map { name -> WritableTensor in
            let t = try ck.tensor(name)
            if let m = replacing[name] {
                let type = outputType(t, dtype: dtype, replaced: true, allowQuantized: true)
                return try WritableTensor.matrix(name: name, shape: t.shape, as: type, m)
            }
            if let o = restoring[name] { return WritableTensor.bytes(name: name, dtype: o.dtype, shape: o.shape, data: o.bytes) }
            return try WritableTensor.stored(t, as: outputType(t, dtype: dtype, replaced: false, allowQuantized: true))
        }
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: out)
    }

    // MARK: Hugging Face

    static func writeHuggingFace(_ ck: Checkpoint, out: String, dtype: DType?, replacing: [String: Matrix],
                                 extraFiles: [String: Data]) throws {
        let config = try ModelLoader.config(ck)
        let tensors = try (ck.storedOrder ?? ck.tensorNames).map { name -> WritableTensor in
            let t = try ck.tensor(name)
            guard let hfName = TensorNames.huggingFace(canonical: name, architecture: config.architecture) else {
                throw EngramError.tensor(file: t.file, tensor: name, detail: "has no Hugging Face \(config.architecture.rawValue) equivalent; cannot convert to safetensors")
            }
            let transform = TensorNames.transform(canonical: name, config: config)
            let replacement = replacing[name]
            let type = outputType(t, dtype: dtype, replaced: replacement != nil, allowQuantized: false)
            let hfShape = LayoutTransforms.otherShape(t.shape, transform)
            if transform == .none {
                if let replacement { return try WritableTensor.matrix(name: hfName, shape: t.shape, as: type, replacement) }
                return try WritableTensor.stored(t, name: hfName, as: type)
            }
            try checkTransformable(t, transform, config: config)
            // Computed when written, so only one transformed tensor is in memory at a time.
            return WritableTensor(name: hfName, dtype: type, shape: hfShape, byteCount: t.elementCount * type.blockBytes) { file in
                let canonical = replacement ?? t.matrix()
                let hf = LayoutTransforms.toHuggingFace(canonical.pointer, shape: t.shape, transform)
                try file.writeFloats(hf.pointer, count: hf.count, as: type)
            }
        }
        var hfConfig = HuggingFaceConfig(config, bos: ck.metadata["tokenizer.ggml.bos_token_id"]?.int,
                                         eos: ck.metadata["tokenizer.ggml.eos_token_id"]?.int,
                                         dtype: Set(tensors.map(\.dtype)).count == 1 ? tensors[0].dtype : .f32)
        if let source = ck.sourceConfig {
            hfConfig.bosTokenID = source.bosTokenID ?? hfConfig.bosTokenID
            hfConfig.eosTokenID = source.eosTokenID ?? hfConfig.eosTokenID
        }
        var files = ck.sidecars
        for (name, data) in extraFiles { files[name] = data }
        for name in files.keys {
            guard !name.contains("/"), !name.isEmpty, name != ".", name != "..",
                  name != "config.json", name != HuggingFaceReader.singleFile, name != HuggingFaceReader.indexFile else {
                throw EngramError.invalidArgument("extra file name '\(name)' is not a plain file name or would overwrite the checkpoint itself")
            }
        }
        try AtomicFolder.write(to: out) { folder in
            try AtomicFile.write(to: HuggingFaceReader.path(folder, "config.json")) { try $0.write(try hfConfig.encoded()) }
            try Safetensors.write(tensors: tensors, metadata: ["format": "pt"], to: HuggingFaceReader.path(folder, HuggingFaceReader.singleFile))
            for (name, data) in files.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(to: HuggingFaceReader.path(folder, name)) { try $0.write(data) }
            }
        }
    }

    static func checkTransformable(_ t: StoredTensor, _ transform: LayoutTransform, config: ModelConfig) throws {
        switch transform {
        case .none: return
        case .transpose:
            guard t.shape.count == 2 else { throw EngramError.tensor(file: t.file, tensor: t.name, detail: "shape \(t.shape) is not a matrix") }
        case let .interleaveRotaryHalves(heads):
            guard t.shape.count == 2, t.shape[0] == heads * config.headDim else {
                throw EngramError.tensor(file: t.file, tensor: t.name, detail: "shape \(t.shape) does not hold \(heads) heads of \(config.headDim) rows")
            }
        }
    }
}
