import Foundation

/// The fields of a Hugging Face config.json that Engram reads or writes. Keys mirror transformers'
/// names (GPT-2 has its own: `n_embd`, `n_layer`, …); everything else in the file is ignored.
public struct HuggingFaceConfig: Codable, Sendable, Equatable {
    /// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
    public struct RopeParameters: Codable, Sendable, Equatable {
        public var ropeType: String?
        public var type: String?
        public var ropeTheta: Double?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, ropeTheta = "rope_theta"
        }
        public init(ropeType: String? = nil, ropeTheta: Double? = nil) {
            self.ropeType = ropeType
            self.ropeTheta = ropeTheta
        }
    }

    /// A token id that some configs write as a list (`"eos_token_id": [1, 2]`).
    public enum TokenIDs: Codable, Sendable, Equatable {
        case one(Int), many([Int])
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .many(try c.decode([Int].self)) }
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .one(v): try c.encode(v)
            case let .many(v): try c.encode(v)
            }
        }
    }

    public var modelType: String?
    public var architectures: [String]?
    public var hiddenSize: Int?
    public var intermediateSize: Int?
    public var numHiddenLayers: Int?
    public var numAttentionHeads: Int?
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var rmsNormEps: Double?
    public var layerNormEpsilon: Double?
    public var ropeTheta: Double?
    public var ropeParameters: RopeParameters?
    public var ropeScaling: RopeParameters?
    public var maxPositionEmbeddings: Int?
    public var vocabSize: Int?
    public var tieWordEmbeddings: Bool?
    public var hiddenAct: String?
    public var attentionBias: Bool?
    public var bosTokenID: TokenIDs?
    public var eosTokenID: TokenIDs?
    public var torchDtype: String?
    // GPT-2
    public var nEmbd: Int?
    public var nLayer: Int?
    public var nHead: Int?
    public var nPositions: Int?
    public var nCtx: Int?
    public var nInner: Int?
    public var activationFunction: String?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", architectures, hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", headDim = "head_dim", rmsNormEps = "rms_norm_eps"
        case layerNormEpsilon = "layer_norm_epsilon", ropeTheta = "rope_theta", ropeParameters = "rope_parameters"
        case ropeScaling = "rope_scaling", maxPositionEmbeddings = "max_position_embeddings", vocabSize = "vocab_size"
        case tieWordEmbeddings = "tie_word_embeddings", hiddenAct = "hidden_act", attentionBias = "attention_bias"
        case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", torchDtype = "torch_dtype"
        case nEmbd = "n_embd", nLayer = "n_layer", nHead = "n_head", nPositions = "n_positions", nCtx = "n_ctx"
        case nInner = "n_inner", activationFunction = "activation_function"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Integers go through Double: Foundation reports `1.5` for an Int field as invalid JSON
        // without naming the key, and the key is what the user needs.
        func int(_ key: CodingKeys) throws -> Int? {
            guard let v = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
            guard v.rounded() == v, abs(v) < 1e15 else {
                throw DecodingError.typeMismatch(Int.self, .init(codingPath: c.codingPath + [key], debugDescription: "\(v) is not an integer"))
            }
            return Int(v)
        }
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        hiddenSize = try int(.hiddenSize)
        intermediateSize = try int(.intermediateSize)
        numHiddenLayers = try int(.numHiddenLayers)
        numAttentionHeads = try int(.numAttentionHeads)
        numKeyValueHeads = try int(.numKeyValueHeads)
        headDim = try int(.headDim)
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps)
        layerNormEpsilon = try c.decodeIfPresent(Double.self, forKey: .layerNormEpsilon)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        ropeParameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        ropeScaling = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling)
        maxPositionEmbeddings = try int(.maxPositionEmbeddings)
        vocabSize = try int(.vocabSize)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias)
        bosTokenID = try c.decodeIfPresent(TokenIDs.self, forKey: .bosTokenID)
        eosTokenID = try c.decodeIfPresent(TokenIDs.self, forKey: .eosTokenID)
        torchDtype = try c.decodeIfPresent(String.self, forKey: .torchDtype)
        nEmbd = try int(.nEmbd)
        nLayer = try int(.nLayer)
        nHead = try int(.nHead)
        nPositions = try int(.nPositions)
        nCtx = try int(.nCtx)
        nInner = try int(.nInner)
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction)
    }

    /// config.json `model_type` values and the architecture that runs them.
    static let modelTypes: [String: Architecture] = ["llama": .llama, "mistral": .llama, "qwen2": .qwen2, "gpt2": .gpt2]
    static let architectureClasses: [String: Architecture] = [
        "LlamaForCausalLM": .llama, "MistralForCausalLM": .llama, "Qwen2ForCausalLM": .qwen2, "GPT2LMHeadModel": .gpt2,
    ]

    /// Reads and decodes config.json; a field of the wrong type is reported with its key.
    public static func read(path: String) throws -> HuggingFaceConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EngramError.io(file: path, detail: "missing: a Hugging Face checkpoint folder needs config.json")
        }
        return try decode(EngramError.readFile(path, what: "the file"), file: path)
    }

    public static func decode(_ data: Data, file: String) throws -> HuggingFaceConfig {
        do {
            return try JSONDecoder().decode(HuggingFaceConfig.self, from: data)
        } catch let error as DecodingError {
            switch error {
            case let .typeMismatch(_, context) where context.codingPath.isEmpty:
                throw EngramError.format(file: file, detail: "the top level is not a JSON object")
            case let .typeMismatch(type, context):
                throw EngramError.metadata(file: file, key: keyPath(context), detail: "has the wrong type (expected \(typeName(type)))")
            case let .valueNotFound(type, context):
                throw EngramError.metadata(file: file, key: keyPath(context), detail: "is null (expected \(typeName(type)))")
            case let .keyNotFound(key, context):
                throw EngramError.metadata(file: file, key: keyPath(context, key), detail: "missing")
            case let .dataCorrupted(context):
                if context.codingPath.isEmpty {
                    throw EngramError.format(file: file, detail: "not valid JSON (\(context.debugDescription))")
                }
                throw EngramError.metadata(file: file, key: keyPath(context), detail: "has an invalid value (\(context.debugDescription))")
            @unknown default:
                throw EngramError.format(file: file, detail: "cannot decode: \(error)")
            }
        }
    }

    private static func keyPath(_ context: DecodingError.Context, _ extra: CodingKey? = nil) -> String {
        (context.codingPath + (extra.map { [$0] } ?? [])).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }

    /// The architecture config.json names, from `model_type` or else `architectures`.
    public func architecture(file: String) throws -> Architecture {
        let supported = Self.modelTypes.keys.sorted().joined(separator: ", ")
        if let modelType {
            guard let arch = Self.modelTypes[modelType] else {
                throw EngramError.metadata(file: file, key: "model_type", detail: "'\(modelType)' is not supported (supported: \(supported))")
            }
            return arch
        }
        if let name = architectures?.first {
            guard let arch = Self.architectureClasses[name] else {
                throw EngramError.metadata(file: file, key: "architectures", detail: "'\(name)' is not supported (supported model_type: \(supported))")
            }
            return arch
        }
        throw EngramError.metadata(file: file, key: "model_type", detail: "missing (and no 'architectures' either)")
    }

    /// Translates into a ModelConfig, with transformers' defaults for absent optional fields.
    /// `hasOutputWeight` says whether the weights include a separate `lm_head`, for configs that do
    /// not say whether embeddings are tied.
    public func modelConfig(file: String) throws -> ModelConfig {
        let arch = try architecture(file: file)
        func required(_ value: Int?, _ key: String) throws -> Int {
            guard let value else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
            return value
        }
        let config: ModelConfig
        switch arch {
        case .llama, .qwen2:
            if let act = hiddenAct, act != "silu" {
                throw EngramError.metadata(file: file, key: "hidden_act", detail: "'\(act)' is not supported (silu)")
            }
            if attentionBias == true, arch == .llama {
                throw EngramError.metadata(file: file, key: "attention_bias", detail: "LLaMA models with attention biases are not supported")
            }
            for (key, rope) in [("rope_scaling", ropeScaling), ("rope_parameters", ropeParameters)] {
                if let kind = rope?.ropeType ?? rope?.type, kind != "default" {
                    throw EngramError.metadata(file: file, key: key, detail: "RoPE scaling '\(kind)' is not supported (only plain RoPE)")
                }
            }
            let heads = try required(numAttentionHeads, "num_attention_heads")
            let hidden = try required(hiddenSize, "hidden_size")
            config = ModelConfig(
                architecture: arch,
                layers: try required(numHiddenLayers, "num_hidden_layers"),
                hidden: hidden,
                intermediate: try required(intermediateSize, "intermediate_size"),
                heads: heads,
                kvHeads: numKeyValueHeads ?? heads,
                headDim: headDim ?? (heads > 0 ? hidden / heads : 0),
                vocab: try required(vocabSize, "vocab_size"),
                contextLength: maxPositionEmbeddings ?? (arch == .qwen2 ? 32768 : 2048),
                ropeTheta: Float(ropeTheta ?? ropeParameters?.ropeTheta ?? 10000),
                normEps: Float(rmsNormEps ?? 1e-6),
                // transformers' LlamaConfig and Qwen2Config default to untied.
                tiedEmbeddings: tieWordEmbeddings ?? false)
        case .gpt2:
            if let act = activationFunction, act != "gelu_new", act != "gelu_pytorch_tanh" {
                throw EngramError.metadata(file: file, key: "activation_function", detail: "'\(act)' is not supported (gelu_new)")
            }
            let hidden = try required(nEmbd ?? hiddenSize, "n_embd")
            let heads = try required(nHead ?? numAttentionHeads, "n_head")
            config = ModelConfig(
                architecture: .gpt2,
                layers: try required(nLayer ?? numHiddenLayers, "n_layer"),
                hidden: hidden,
                intermediate: nInner ?? 4 * hidden,
                heads: heads, kvHeads: heads,
                vocab: try required(vocabSize, "vocab_size"),
                contextLength: try required(nPositions ?? nCtx ?? maxPositionEmbeddings, "n_positions"),
                normEps: Float(layerNormEpsilon ?? 1e-5),
                tiedEmbeddings: tieWordEmbeddings ?? true)
        }
        do { try config.validate(file: file) } catch let EngramError.metadata(f, key, detail) {
            // validate() speaks GGUF; name the config.json key the user would edit.
            throw EngramError.metadata(file: f, key: Self.huggingFaceKey(forGGUF: key, arch), detail: detail)
        }
        return config
    }

    static func huggingFaceKey(forGGUF key: String, _ arch: Architecture) -> String {
        let gpt2 = arch == .gpt2
        switch key {
        case "block_count": return gpt2 ? "n_layer" : "num_hidden_layers"
        case "embedding_length": return gpt2 ? "n_embd" : "hidden_size"
        case "feed_forward_length": return gpt2 ? "n_inner" : "intermediate_size"
        case "attention.head_count": return gpt2 ? "n_head" : "num_attention_heads"
        case "attention.head_count_kv": return "num_key_value_heads"
        case "attention.key_length": return "head_dim"
        case "context_length": return gpt2 ? "n_positions" : "max_position_embeddings"
        case "layer_norm_eps": return gpt2 ? "layer_norm_epsilon" : "rms_norm_eps"
        case "rope.freq_base": return "rope_theta"
        default: return key
        }
    }

    /// The config.json describing a model, as transformers would write it.
    public init(_ c: ModelConfig, bos: Int? = nil, eos: Int? = nil, dtype: DType = .f32) {
        // Shortest decimal of the float, so 1e-5 is written as 1e-05 rather than 9.99999974e-06.
        func decimal(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }
        torchDtype = dtype == .f16 ? "float16" : dtype == .bf16 ? "bfloat16" : "float32"
        bosTokenID = bos.map(TokenIDs.one)
        eosTokenID = eos.map(TokenIDs.one)
        tieWordEmbeddings = c.tiedEmbeddings
        vocabSize = c.vocab
        switch c.architecture {
        case .llama, .qwen2:
            modelType = c.architecture.rawValue
            architectures = [c.architecture == .llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"]
            hiddenSize = c.hidden
            intermediateSize = c.intermediate
            numHiddenLayers = c.layers
            numAttentionHeads = c.heads
            numKeyValueHeads = c.kvHeads
            headDim = c.headDim
            rmsNormEps = decimal(c.normEps)
            ropeTheta = decimal(c.ropeTheta)
            maxPositionEmbeddings = c.contextLength
            hiddenAct = "silu"
        case .gpt2:
            modelType = "gpt2"
            architectures = ["GPT2LMHeadModel"]
            nEmbd = c.hidden
            nLayer = c.layers
            nHead = c.heads
            nPositions = c.contextLength
            nCtx = c.contextLength
            nInner = c.intermediate
            layerNormEpsilon = decimal(c.normEps)
            activationFunction = "gelu_new"
        }
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
