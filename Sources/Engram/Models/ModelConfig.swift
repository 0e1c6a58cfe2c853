import Foundation

/// The architectures Engram runs. LLaMA covers SmolLM2, LLaMA-2/3 and Mistral (GGUF calls them
/// all "llama"); Qwen2 is LLaMA with Q/K/V biases and NeoX-layout RoPE; GPT-2 is its own file.
public enum Architecture: String, Codable, Sendable, CaseIterable {
    case llama, qwen2, gpt2
}

/// The numbers that shape a decoder. Read from GGUF metadata or from a Hugging Face config.json.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var architecture: Architecture
    public var layers: Int
    public var hidden: Int
    public var intermediate: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocab: Int
    public var contextLength: Int
    public var ropeTheta: Float
    public var normEps: Float
    public var tiedEmbeddings: Bool

    public init(architecture: Architecture, layers: Int, hidden: Int, intermediate: Int, heads: Int, kvHeads: Int,
                headDim: Int? = nil, vocab: Int, contextLength: Int, ropeTheta: Float = 10000, normEps: Float = 1e-5,
                tiedEmbeddings: Bool) {
        self.architecture = architecture
        self.layers = layers
        self.hidden = hidden
        self.intermediate = intermediate
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? hidden / max(heads, 1)
        self.vocab = vocab
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
    }

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }
    public var ropeStyle: RopeStyle { architecture == .qwen2 ? .neox : .interleaved }
    /// Width of the MLP key (input of the down projection).
    public var keyWidth: Int { intermediate }

    /// Checks the numbers against each other, so that a broken file fails here with the key named
    /// rather than later with a crash.
    public func validate(file: String) throws {
        func check(_ ok: Bool, _ key: String, _ detail: String) throws {
            if !ok { throw EngramError.metadata(file: file, key: key, detail: detail) }
        }
        let limit = 1 << 20
        try check((1...1024).contains(layers), "block_count", "\(layers) layers is outside 1...1024")
        try check((1...limit).contains(hidden), "embedding_length", "\(hidden) is outside 1...\(limit)")
        try check((1...limit).contains(intermediate), "feed_forward_length", "\(intermediate) is outside 1...\(limit)")
        try check((1...4096).contains(heads), "attention.head_count", "\(heads) is outside 1...4096")
        try check((1...heads).contains(kvHeads) && heads % kvHeads == 0, "attention.head_count_kv",
                  "\(kvHeads) must divide the head count \(heads)")
        try check(headDim > 0 && headDim % 2 == 0 && headDim <= 4096, "attention.key_length", "head size \(headDim) must be even and positive")
        try check((1...(1 << 24)).contains(vocab), "vocab_size", "\(vocab) is outside 1...16M")
        try check((1...(1 << 24)).contains(contextLength), "context_length", "\(contextLength) is outside 1...16M")
        try check(normEps > 0 && normEps < 1, "layer_norm_eps", "\(normEps) must be in (0, 1)")
        try check(ropeTheta > 0, "rope.freq_base", "\(ropeTheta) must be positive")
    }

    /// Reads the config from GGUF metadata keys (`<arch>.block_count`, …).
    public init(gguf metadata: Metadata, vocabFromEmbedding: Int?, hasOutputWeight: Bool) throws {
        let archName = try metadata.string("general.architecture")
        guard let arch = Architecture(rawValue: archName) else {
            throw EngramError.metadata(file: metadata.file, key: "general.architecture",
                                       detail: "architecture '\(archName)' is not supported (supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let p = archName + "."
        let hidden = try metadata.int(p + "embedding_length")
        let heads = try metadata.int(p + "attention.head_count")
        let vocab: Int
        if let v = metadata[p + "vocab_size"]?.int { vocab = v }
        else if let v = vocabFromEmbedding { vocab = v }
        else { vocab = try metadata.stringArray("tokenizer.ggml.tokens").count }
        let eps = arch == .gpt2 ? try metadata.float(p + "attention.layer_norm_epsilon", default: 1e-5)
                                : try metadata.float(p + "attention.layer_norm_rms_epsilon", default: 1e-5)
        self.init(architecture: arch,
                  layers: try metadata.int(p + "block_count"),
                  hidden: hidden,
                  intermediate: try metadata.int(p + "feed_forward_length"),
                  heads: heads,
                  kvHeads: try metadata.int(p + "attention.head_count_kv", default: heads),
                  headDim: heads > 0 ? try metadata.int(p + "attention.key_length", default: hidden / heads) : 0,
                  vocab: vocab,
                  contextLength: try metadata.int(p + "context_length", default: 2048),
                  ropeTheta: try metadata.float(p + "rope.freq_base", default: 10000),
                  normEps: eps,
                  tiedEmbeddings: !hasOutputWeight)
        try validate(file: metadata.file)
    }

    /// The GGUF metadata keys that describe this config (for writing GGUF files).
    public func ggufMetadata() -> [(String, MetadataValue)] {
        let p = architecture.rawValue + "."
        var out: [(String, MetadataValue)] = [
            ("general.architecture", .string(architecture.rawValue)),
            (p + "block_count", .uint32(UInt32(layers))),
            (p + "context_length", .uint32(UInt32(contextLength))),
            (p + "embedding_length", .uint32(UInt32(hidden))),
            (p + "feed_forward_length", .uint32(UInt32(intermediate))),
            (p + "attention.head_count", .uint32(UInt32(heads))),
        ]
        if architecture == .gpt2 {
            out.append((p + "attention.layer_norm_epsilon", .float32(normEps)))
        } else {
            out += [
                (p + "attention.head_count_kv", .uint32(UInt32(kvHeads))),
                (p + "rope.freq_base", .float32(ropeTheta)),
                (p + "attention.layer_norm_rms_epsilon", .float32(normEps)),
                (p + "rope.dimension_count", .uint32(UInt32(headDim))),
            ]
            if headDim != hidden / heads { out.append((p + "attention.key_length", .uint32(UInt32(headDim)))) }
            out.append((p + "vocab_size", .uint32(UInt32(vocab))))
        }
        return out
    }
}
