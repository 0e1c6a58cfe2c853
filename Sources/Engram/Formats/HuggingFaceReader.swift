import Foundation

/// Reads a Hugging Face checkpoint folder: config.json plus `model.safetensors`, or a sharded
/// `model.safetensors.index.json` and its shards. The config is translated into GGUF metadata keys
/// and tensors into canonical names and layouts, so the models never know which format they came from.
/// Tensors whose layout differs (LLaMA Q/K, GPT-2 Conv1D) become owned reordered copies in their stored
/// type; the others stay mapped.
public enum HuggingFaceReader {
    /// Files kept beside the weights for the tokenizer and generation defaults.
    public static let sidecarFiles = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json",
                                      "special_tokens_map.json", "vocab.json", "merges.txt"]
    public static let singleFile = "model.safetensors"
    public static let indexFile = "model.safetensors.index.json"

    public static func read(folder: String) throws -> Checkpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw EngramError.io(file: folder, detail: "not a folder (a Hugging Face checkpoint is a folder with config.json and safetensors files)")
        }
        let configPath = path(folder, "config.json")
        let hfConfig = try HuggingFaceConfig.read(path: configPath)
        let config = try hfConfig.modelConfig(file: configPath)
        let files = try weightFiles(folder: folder)

        // Every tensor of every file, by Hugging Face name.
        var found: [String: (file: SafetensorsFile, entry: SafetensorsEntry)] = [:]
        for file in files {
            for entry in file.entries {
                if let other = found[entry.name] {
                    throw EngramError.tensor(file: file.path, tensor: entry.name, detail: "also present in \(other.file.path)")
                }
                found[entry.name] = (file, entry)
            }
        }

        // Map names, rejecting tensors this architecture does not have rather than ignoring them.
        var byCanonical: [String: (hfName: String, file: SafetensorsFile, entry: SafetensorsEntry)] = [:]
        for (name, item) in found.sorted(by: { $0.key < $1.key }) {
            switch TensorNames.role(ofHuggingFace: name, architecture: config.architecture) {
            case .buffer?:
                continue
            case let .tensor(canonical)?:
                // With tied embeddings transformers uses the embedding as the head, whatever lm_head holds.
                if canonical == "output.weight", config.tiedEmbeddings { continue }
                byCanonical[canonical] = (name, item.file, item.entry)
            case nil:
                throw EngramError.tensor(file: item.file.path, tensor: name, detail: "is not a tensor of a \(config.architecture.rawValue) model (config.json model_type); unsupported checkpoint layout")
            }
        }

        let checkpoint = Checkpoint(location: folder, format: .safetensors, metadata: metadata(config, folder: folder))
        checkpoint.sourceConfig = hfConfig
        var offsets: [String: (Int, Int)] = [:]  // file index, byte offset
        for (canonical, canonicalShape) in TensorNames.expected(for: config) {
            let transform = TensorNames.transform(canonical: canonical, config: config)
            guard let item = byCanonical.removeValue(forKey: canonical) else {
                let hfName = TensorNames.huggingFace(canonical: canonical, architecture: config.architecture) ?? canonical
                throw EngramError.tensor(file: folder, tensor: hfName, detail: "missing: config.json (\(config.architecture.rawValue), \(config.layers) layers) needs it")
            }
            let expectedShape = LayoutTransforms.otherShape(canonicalShape, transform)
            guard item.entry.shape == expectedShape else {
                throw EngramError.tensor(file: item.file.path, tensor: item.hfName,
                                         detail: "shape \(item.entry.shape) disagrees with config.json, which implies \(expectedShape)")
            }
            let stored = try item.file.storedTensor(item.entry, name: canonical)
            if transform == .none {
                checkpoint.add(stored)
            } else {
                // The stored elements moved as they are (safetensors tensors here are F32, F16 or BF16):
                // a BF16 tensor stays BF16, for writing and for memory, with the same values.
                let bytes = NSMutableData(length: stored.byteCount)!
                LayoutTransforms.move(stored.data, into: bytes.mutableBytes, elementBytes: stored.dtype.blockBytes,
                                      shape: item.entry.shape, transform, inverse: false)
                checkpoint.add(StoredTensor(name: canonical, dtype: stored.dtype, shape: canonicalShape, data: UnsafeRawPointer(bytes.bytes),
                                            byteCount: stored.byteCount, file: item.file.path, owner: bytes))
            }
            offsets[canonical] = (files.firstIndex { $0 === item.file } ?? 0, item.entry.offset)
        }
        checkpoint.storedOrder = checkpoint.tensorNames.sorted { offsets[$0]! < offsets[$1]! }
        if let (canonical, item) = byCanonical.first {
            // Only reachable for tensors of layers beyond num_hidden_layers.
            throw EngramError.tensor(file: item.file.path, tensor: item.hfName,
                                     detail: "is not part of the model config.json describes (\(canonical) beyond its \(config.layers) layers)")
        }

        for name in sidecarFiles {
            let p = path(folder, name)
            if FileManager.default.fileExists(atPath: p) {
                checkpoint.sidecars[name] = try EngramError.readFile(p, what: "the file")
            }
        }
        return checkpoint
    }

    /// The GGUF keys of the config plus a name, so that the checkpoint reads like a GGUF file.
    static func metadata(_ config: ModelConfig, folder: String) -> Metadata {
        var m = Metadata(file: path(folder, "config.json"))
        m["general.name"] = .string((folder as NSString).lastPathComponent)
        for (key, value) in config.ggufMetadata() { m[key] = value }
        if config.architecture == .gpt2 { m["gpt2.vocab_size"] = .uint32(UInt32(config.vocab)) }
        return m
    }

    /// Opens the safetensors files: the shards an index names, or the single `model.safetensors`.
    static func weightFiles(folder: String) throws -> [SafetensorsFile] {
        let fm = FileManager.default
        let indexPath = path(folder, indexFile)
        if fm.fileExists(atPath: indexPath) {
            let data = try EngramError.readFile(indexPath, what: "the file")
            let index: OrderedJSON
            do { index = try data.withUnsafeBytes { try JSONParser.parse($0) } } catch let failure as JSONParser.Failure {
                throw EngramError.format(file: indexPath, detail: "not valid JSON: \(failure.message) at byte \(failure.offset)")
            }
            guard case let .object(top) = index, let mapValue = top.first(where: { $0.0 == "weight_map" })?.1,
                  case let .object(map) = mapValue else {
                throw EngramError.metadata(file: indexPath, key: "weight_map", detail: "missing or not an object")
            }
            var shardNames: [String] = []
            for (tensor, value) in map {
                guard let shard = value.string else {
                    throw EngramError.metadata(file: indexPath, key: "weight_map.\(tensor)", detail: "is \(value.kind), expected a file name")
                }
                // Shards live beside the index; a path would let a crafted index read arbitrary files.
                guard !shard.contains("/"), shard != "..", shard != ".", !shard.isEmpty else {
                    throw EngramError.metadata(file: indexPath, key: "weight_map.\(tensor)", detail: "'\(shard)' is not a plain file name in the folder")
                }
                if !shardNames.contains(shard) { shardNames.append(shard) }
            }
            let shards = try shardNames.sorted().map { name -> SafetensorsFile in
                let p = path(folder, name)
                guard fm.fileExists(atPath: p) else { throw EngramError.io(file: p, detail: "shard named in \(indexFile) is missing") }
                return try Safetensors.read(path: p)
            }
            for (tensor, value) in map {
                let shard = value.string ?? ""
                guard let file = shards.first(where: { ($0.path as NSString).lastPathComponent == shard }), file.entry(tensor) != nil else {
                    throw EngramError.tensor(file: path(folder, shard), tensor: tensor, detail: "\(indexFile) places it in this shard, which does not hold it")
                }
            }
            return shards
        }
        let single = path(folder, singleFile)
        if fm.fileExists(atPath: single) { return [try Safetensors.read(path: single)] }
        let others = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        if others.count == 1 { return [try Safetensors.read(path: path(folder, others[0]))] }
        let hint = fm.fileExists(atPath: path(folder, "pytorch_model.bin")) ? " (pytorch_model.bin is not supported; convert it to safetensors)" : ""
        throw EngramError.io(file: single, detail: "missing, and no \(indexFile) either\(hint)")
    }

    static func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
}
