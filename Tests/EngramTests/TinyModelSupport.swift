import Foundation
import XCTest
import Engram

/// Deterministic random numbers (SplitMix64), so every run builds the same tiny models.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }

    /// Uniform in [-1, 1), rounded to float before scaling (the in-memory gradient models were built
    /// with this one; their reference dumps depend on the exact bits).
    mutating func symmetric() -> Float { Float(Double(next() >> 11) / Double(1 << 53)) * 2 - 1 }

    mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }

    mutating func values(_ count: Int, scale: Float, offset: Float = 0) -> [Float] {
        (0..<count).map { _ in offset + scale * uniform() }
    }
}

/// A scratch folder removed when the test ends.
/// A tiny LLaMA GGUF, in its own temporary folder, whose named weights are stored as Q8_0 blocks
/// (by default every projection and the output head).
struct QuantizedTinyLlama {
    let tiny: TinyModel
    let folder = TemporaryFolder()
    var path: String { folder.file("q8.gguf") }

    init(seed: UInt64, quantizing names: [String]? = nil) throws {
        var tiny = TinyModel.llama(seed: seed)
        tiny.quantizeQ8(names ?? tiny.tensors.map(\.name).filter { $0.hasSuffix("proj.weight") || $0 == "lm_head.weight" })
        self.tiny = tiny
        try tiny.writeGGUF(to: folder.file("q8.gguf"))
    }

    func checkpoint(onDemand: Bool = false) throws -> Checkpoint {
        let ck = try ModelLoader.checkpoint(path)
        ck.dequantizesOnDemand = onDemand
        return ck
    }

    func model(onDemand: Bool = false) throws -> LanguageModel { try ModelLoader.build(checkpoint(onDemand: onDemand)) }

    /// A random rank-one change of layer `layer`'s MLP down projection, as a patch.
    func downProjectionPatch(layer: Int, rng: inout SeededRandom) -> EditPatch {
        let change = WeightDelta.Change.lowRank(r: Matrix(rows: 1, cols: tiny.hidden, values: rng.values(tiny.hidden, scale: 0.5)),
                                                u: Matrix(rows: 1, cols: tiny.intermediate, values: rng.values(tiny.intermediate, scale: 0.5)))
        return EditPatch(method: "test", requests: [], deltas: [WeightDelta(weight: .mlpDown(layer), change: change)])
    }
}

final class TemporaryFolder {
    let path: String
    init() {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("engram-formats-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// One weight of a tiny model in Hugging Face naming and layout (the truth the reference forward uses).
struct HFTensor {
    let name: String
    let shape: [Int]
    var values: [Float]
    /// Blocks of the rows (Hugging Face row order) when the GGUF copy should be quantized, and their type.
    var blocks: [UInt8]? = nil
    var blockType = DType.q8_0
}

/// A tiny random model of one architecture: its config as config.json keys and as GGUF keys, and its
/// weights. Writers here are the test's own (safetensors by hand, GGUF through GGUFWriter with
/// canonical names and llama.cpp's Q/K order computed here), independent of the readers under test.
struct TinyModel {
    enum Kind: String { case llama, qwen2, gpt2 }
    let kind: Kind
    let layers: Int, hidden: Int, intermediate: Int, heads: Int, kvHeads: Int, vocab: Int, context: Int
    let ropeTheta: Float, eps: Float
    let tied: Bool
    var tensors: [HFTensor]

    var headDim: Int { hidden / heads }

    func tensor(_ name: String) -> HFTensor {
        guard let t = tensors.first(where: { $0.name == name }) else { fatalError("test model has no \(name)") }
        return t
    }

    static func llama(seed: UInt64 = 1) -> TinyModel {
        make(.llama, seed: seed, layers: 2, hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, vocab: 97, context: 64,
             ropeTheta: 10000, eps: 1e-5, tied: false)
    }

    static func qwen2(seed: UInt64 = 2) -> TinyModel {
        make(.qwen2, seed: seed, layers: 2, hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, vocab: 97, context: 64,
             ropeTheta: 1_000_000, eps: 1e-6, tied: true)
    }

    static func gpt2(seed: UInt64 = 3) -> TinyModel {
        make(.gpt2, seed: seed, layers: 2, hidden: 64, intermediate: 256, heads: 4, kvHeads: 4, vocab: 97, context: 32,
             ropeTheta: 10000, eps: 1e-5, tied: true)
    }

    static func make(_ kind: Kind, seed: UInt64, layers: Int, hidden d: Int, intermediate m: Int, heads: Int, kvHeads: Int,
                     vocab: Int, context: Int, ropeTheta: Float, eps: Float, tied: Bool) -> TinyModel {
        var rng = SeededRandom(seed: seed)
        var ts: [HFTensor] = []
        func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
            ts.append(HFTensor(name: name, shape: shape, values: rng.values(shape.reduce(1, *), scale: scale, offset: offset)))
        }
        let hd = d / heads
        switch kind {
        case .llama, .qwen2:
            add("model.embed_tokens.weight", [vocab, d], scale: 0.5)
            for l in 0..<layers {
                let p = "model.layers.\(l)."
                add(p + "input_layernorm.weight", [d], scale: 0.2, offset: 1)
                add(p + "self_attn.q_proj.weight", [heads * hd, d], scale: 0.25)
                add(p + "self_attn.k_proj.weight", [kvHeads * hd, d], scale: 0.25)
                add(p + "self_attn.v_proj.weight", [kvHeads * hd, d], scale: 0.2)
                if kind == .qwen2 {
                    add(p + "self_attn.q_proj.bias", [heads * hd], scale: 0.2)
                    add(p + "self_attn.k_proj.bias", [kvHeads * hd], scale: 0.2)
                    add(p + "self_attn.v_proj.bias", [kvHeads * hd], scale: 0.2)
                }
                add(p + "self_attn.o_proj.weight", [d, heads * hd], scale: 0.15)
                add(p + "post_attention_layernorm.weight", [d], scale: 0.2, offset: 1)
                add(p + "mlp.gate_proj.weight", [m, d], scale: 0.2)
                add(p + "mlp.up_proj.weight", [m, d], scale: 0.2)
                add(p + "mlp.down_proj.weight", [d, m], scale: 0.15)
            }
            add("model.norm.weight", [d], scale: 0.2, offset: 1)
            if !tied { add("lm_head.weight", [vocab, d], scale: 0.2) }
        case .gpt2:
            add("transformer.wte.weight", [vocab, d], scale: 0.5)
            add("transformer.wpe.weight", [context, d], scale: 0.3)
            for l in 0..<layers {
                let p = "transformer.h.\(l)."
                add(p + "ln_1.weight", [d], scale: 0.2, offset: 1)
                add(p + "ln_1.bias", [d], scale: 0.1)
                add(p + "attn.c_attn.weight", [d, 3 * d], scale: 0.2)   // Conv1D: [in, out]
                add(p + "attn.c_attn.bias", [3 * d], scale: 0.1)
                add(p + "attn.c_proj.weight", [d, d], scale: 0.15)
                add(p + "attn.c_proj.bias", [d], scale: 0.1)
                add(p + "ln_2.weight", [d], scale: 0.2, offset: 1)
                add(p + "ln_2.bias", [d], scale: 0.1)
                add(p + "mlp.c_fc.weight", [d, m], scale: 0.2)
                add(p + "mlp.c_fc.bias", [m], scale: 0.1)
                add(p + "mlp.c_proj.weight", [m, d], scale: 0.1)
                add(p + "mlp.c_proj.bias", [d], scale: 0.1)
            }
            add("transformer.ln_f.weight", [d], scale: 0.2, offset: 1)
            add("transformer.ln_f.bias", [d], scale: 0.1)
        }
        return TinyModel(kind: kind, layers: layers, hidden: d, intermediate: m, heads: heads, kvHeads: kvHeads, vocab: vocab,
                         context: context, ropeTheta: ropeTheta, eps: eps, tied: tied, tensors: ts)
    }

    // MARK: value transformations

    /// Rounds every weight to bfloat16 so that a BF16 file holds exactly the reference's values.
    mutating func roundToBF16() {
        for i in tensors.indices {
            tensors[i].values = tensors[i].values.map { Float(bitPattern: UInt32(Self.bf16Bits($0)) << 16) }
        }
    }

    static func bf16Bits(_ v: Float) -> UInt16 {
        let bits = v.bitPattern
        return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// Quantizes the named 2-D weights to Q8_0 (per 32 values: d = max|x| / 127 stored as f16,
    /// q = round(x / d)) and replaces their values by the dequantized ones.
    mutating func quantizeQ8(_ names: [String]) {
        for i in tensors.indices where names.contains(tensors[i].name) {
            var bytes: [UInt8] = []
            var values: [Float] = []
            let v = tensors[i].values
            for start in stride(from: 0, to: v.count, by: 32) {
                let block = v[start..<(start + 32)]
                let amax = block.map(abs).max() ?? 0
                let d = Float16(amax / 127)
                let scale = Float(d)
                let bits = d.bitPattern
                bytes += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
                for x in block {
                    let q = scale == 0 ? 0 : Int8(max(-127, min(127, (x / scale).rounded())))
                    bytes.append(UInt8(bitPattern: q))
                    values.append(Float(q) * scale)
                }
            }
            tensors[i].values = values
            tensors[i].blocks = bytes
            tensors[i].blockType = .q8_0
        }
    }

    /// Stores the named weights as random blocks of the given types (moderate scales, chosen so values
    /// stay of order one), their floats being what those blocks dequantize to; F16/BF16 weights keep
    /// their values, rounded to the type.
    mutating func useRandomBlocks(_ types: [String: DType], seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for i in tensors.indices {
            guard let dtype = types[tensors[i].name] else { continue }
            let count = tensors[i].values.count
            if dtype == .f16 || dtype == .bf16 { // the weight's own values, rounded
                let bytes = DType.halfBytes(dtype, tensors[i].values)
                bytes.withUnsafeBytes { raw in
                    tensors[i].values.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: raw.baseAddress!, count: count, into: $0.baseAddress!) }
                }
                tensors[i].blocks = bytes
                tensors[i].blockType = dtype
                continue
            }
            precondition(count % dtype.blockSize == 0 && tensors[i].shape.last! % dtype.blockSize == 0)
            // The largest integer a scale multiplies: 31 (Q5), 15·63 (Q4_K's 4-bit value by a 6-bit scale), …
            let reach: Float = [.q4_0: 8, .q4_1: 15, .q5_0: 16, .q5_1: 31, .q8_0: 127, .q2_K: 45, .q3_K: 128,
                                .q4_K: 945, .q5_K: 1953, .q6_K: 4064, .iq4_nl: 127, .iq4_xs: 4064][dtype]!
            let bytes = dtype.randomBlocks(count / dtype.blockSize, rng: &rng) { Float16($0.symmetric() * 0.4 / reach).bitPattern }
            bytes.withUnsafeBytes { raw in
                tensors[i].values.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: raw.baseAddress!, count: count, into: $0.baseAddress!) }
            }
            tensors[i].blocks = bytes
            tensors[i].blockType = dtype
        }
    }

    // MARK: config files

    var configJSON: [String: Any] {
        switch kind {
        case .llama, .qwen2:
            return ["model_type": kind.rawValue,
                    "architectures": [kind == .llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"],
                    "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
                    "num_attention_heads": heads, "num_key_value_heads": kvHeads, "rms_norm_eps": Double(eps),
                    "rope_theta": Double(ropeTheta), "max_position_embeddings": context, "vocab_size": vocab,
                    "tie_word_embeddings": tied, "hidden_act": "silu", "rope_scaling": NSNull(), "torch_dtype": "float32"]
        case .gpt2:
            return ["model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": hidden, "n_layer": layers,
                    "n_head": heads, "n_positions": context, "n_ctx": context, "n_inner": NSNull(),
                    "layer_norm_epsilon": Double(eps), "vocab_size": vocab, "activation_function": "gelu_new"]
        }
    }

    /// GGUF keys written by hand here (not through ModelConfig.ggufMetadata).
    var ggufMetadata: [(String, MetadataValue)] {
        let a = kind.rawValue
        var out: [(String, MetadataValue)] = [
            ("general.architecture", .string(a)), ("general.name", .string("tiny-\(a)")),
            ("\(a).block_count", .uint32(UInt32(layers))), ("\(a).context_length", .uint32(UInt32(context))),
            ("\(a).embedding_length", .uint32(UInt32(hidden))), ("\(a).feed_forward_length", .uint32(UInt32(intermediate))),
            ("\(a).attention.head_count", .uint32(UInt32(heads))),
        ]
        if kind == .gpt2 {
            out.append(("gpt2.attention.layer_norm_epsilon", .float32(eps)))
        } else {
            out += [("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads))), ("\(a).rope.freq_base", .float32(ropeTheta)),
                    ("\(a).attention.layer_norm_rms_epsilon", .float32(eps)), ("\(a).rope.dimension_count", .uint32(UInt32(headDim)))]
        }
        // A little tokenizer metadata, to see it pass through conversions.
        out += [("tokenizer.ggml.model", .string("gpt2")),
                ("tokenizer.ggml.tokens", .array(.string, (0..<vocab).map { .string("t\($0)") })),
                ("tokenizer.ggml.bos_token_id", .uint32(1)), ("tokenizer.ggml.eos_token_id", .uint32(2))]
        return out
    }

    // MARK: writers

    /// Writes config.json and safetensors by hand: header JSON from JSONSerialization, padded to 8 bytes.
    /// With `shards > 1` the tensors are split over several files plus model.safetensors.index.json.
    func writeHuggingFace(to folder: String, bf16: Bool = false, shards: Int = 1, config: [String: Any]? = nil,
                          extraFiles: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let configData = try JSONSerialization.data(withJSONObject: config ?? configJSON, options: [.sortedKeys])
        try configData.write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("config.json")))
        for (name, text) in extraFiles {
            try Data(text.utf8).write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(name)))
        }
        let perShard = (tensors.count + shards - 1) / shards
        var weightMap: [String: String] = [:]
        for s in 0..<shards {
            let part = Array(tensors[min(s * perShard, tensors.count)..<min((s + 1) * perShard, tensors.count)])
            let fileName = shards == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)
            for t in part { weightMap[t.name] = fileName }
            try Self.writeSafetensors(part.map { ($0.name, $0.shape, $0.values) }, bf16: bf16,
                                      to: (folder as NSString).appendingPathComponent(fileName))
        }
        if shards > 1 {
            let index: [String: Any] = ["metadata": ["total_size": 0], "weight_map": weightMap]
            try JSONSerialization.data(withJSONObject: index).write(
                to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("model.safetensors.index.json")))
        }
    }

    static func writeSafetensors(_ items: [(String, [Int], [Float])], bf16: Bool, to path: String) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var data = Data()
        for (name, shape, values) in items {
            let begin = data.count
            if bf16 {
                for v in values { let b = bf16Bits(v); data.append(contentsOf: [UInt8(b & 0xFF), UInt8(b >> 8)]) }
            } else {
                for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            }
            header[name] = ["dtype": bf16 ? "BF16" : "F32", "shape": shape, "data_offsets": [begin, data.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        try file.write(to: URL(fileURLWithPath: path))
    }

    /// llama.cpp's row order for LLaMA Q/K, computed from its definition: view the rows as
    /// [heads, 2, headDim/2] and swap the last two axes. Returns, for each GGUF row, its HF row.
    static func ggufRowSources(rows: Int, heads: Int) -> [Int] {
        let hd = rows / heads, half = hd / 2
        var sources = [Int](repeating: 0, count: rows)
        for hfRow in 0..<rows {
            let h = hfRow / hd, within = hfRow % hd
            let (j, i) = (within / half, within % half)   // index in the [heads, 2, half] view
            sources[h * hd + i * 2 + j] = hfRow            // its place in the [heads, half, 2] view
        }
        return sources
    }

    /// The weights under canonical GGUF names and layouts: (name, shape, floats, and blocks if quantized).
    func canonicalTensors() -> [(name: String, shape: [Int], values: [Float], blocks: [UInt8]?, blockType: DType)] {
        var out: [(String, [Int], [Float], [UInt8]?, DType)] = []
        func rowsPermuted<T>(_ v: [T], rows: Int, heads: Int) -> [T] {
            let width = v.count / rows
            return Self.ggufRowSources(rows: rows, heads: heads).flatMap { v[($0 * width)..<(($0 + 1) * width)] }
        }
        for t in tensors {
            var name = t.name, shape = t.shape, values = t.values, blocks = t.blocks
            switch kind {
            case .llama, .qwen2:
                name = name.replacingOccurrences(of: "model.layers.", with: "blk.")
                for (hf, gguf) in [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                                   ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
                                   ("input_layernorm", "attn_norm"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
                                   ("mlp.down_proj", "ffn_down")] {
                    name = name.replacingOccurrences(of: hf, with: gguf)
                }
                name = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                        "lm_head.weight": "output.weight"][name] ?? name
                if kind == .llama, name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_k.weight") {
                    let h = name.hasSuffix("attn_q.weight") ? heads : kvHeads
                    values = rowsPermuted(values, rows: shape[0], heads: h)
                    blocks = blocks.map { rowsPermuted($0, rows: shape[0], heads: h) }
                }
            case .gpt2:
                name = name.replacingOccurrences(of: "transformer.", with: "").replacingOccurrences(of: "h.", with: "blk.")
                for (hf, gguf) in [("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
                                   ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down")] {
                    name = name.replacingOccurrences(of: hf, with: gguf)
                }
                name = ["wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                        "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"][name] ?? name
                if name.hasPrefix("blk."), name.hasSuffix(".weight"), shape.count == 2 {
                    let (r, c) = (shape[0], shape[1])
                    values = (0..<(r * c)).map { k in values[(k % r) * c + k / r] }   // out[j][i] = in[i][j]
                    shape = [c, r]
                }
            }
            out.append((name, shape, values, blocks, t.blockType))
        }
        return out
    }

    func writeGGUF(to path: String) throws {
        let items = try canonicalTensors().map { t -> WritableTensor in
            if let blocks = t.blocks { return .bytes(name: t.name, dtype: t.blockType, shape: t.shape, data: Data(blocks)) }
            let buffer = FloatBuffer(t.values)
            return try .floats(name: t.name, shape: t.shape, as: .f32, values: buffer.pointer, owner: buffer)
        }
        try GGUFWriter.write(metadata: ggufMetadata, tensors: items, to: path)
    }
}

/// Locates /work/shared-style fixtures: $ENGRAM_SHARED, else ../shared (or ../../shared, for worktrees)
/// from the package root.
func sharedFolder() -> String? {
    if let env = ProcessInfo.processInfo.environment["ENGRAM_SHARED"], !env.isEmpty { return env }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for candidate in ["../shared", "../../shared"] {
        let p = root.appendingPathComponent(candidate).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: (p as NSString).appendingPathComponent("fixtures")) { return p }
    }
    return nil
}

/// Asserts that `body` throws an EngramError whose message names every string in `mentions`.
func assertEngramError(_ mentions: [String], file: StaticString = #filePath, line: UInt = #line,
                       _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an EngramError mentioning \(mentions)", file: file, line: line)
    } catch let error as EngramError {
        for m in mentions where !error.description.contains(m) {
            XCTFail("error '\(error)' does not mention '\(m)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected an EngramError, got \(error)", file: file, line: line)
    }
}

/// Logits may differ from the Double reference by float32 rounding only.
let referenceTolerance = 1e-4

/// Builds the model of a checkpoint and compares its logits at every position of each sequence with
/// the naive reference on the tiny model's Hugging Face weights.
func assertReferenceLogits(_ ck: Checkpoint, _ model: TinyModel, sequences: [[Int]] = [[1, 5, 9, 3, 96, 0, 42], [7]],
                           label: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let lm = try ModelLoader.build(ck)
    for tokens in sequences {
        let expected = TinyModelReference.logits(model, tokens: tokens)
        let got = try lm.forward(tokens.map(Int32.init), cache: lm.makeCache(), logits: .all)
        XCTAssertEqual(got.rows, tokens.count, file: file, line: line)
        XCTAssertEqual(got.cols, model.vocab, file: file, line: line)
        guard got.rows == tokens.count, got.cols == model.vocab else { return }
        var worst = 0.0
        for t in tokens.indices {
            for v in 0..<model.vocab { worst = max(worst, abs(Double(got.row(t)[v]) - expected[t][v])) }
        }
        XCTAssertLessThan(worst, referenceTolerance, "\(label) tokens \(tokens): max |Δlogit| \(worst)", file: file, line: line)
    }
}

extension DType {
    /// Byte offsets of the float16 scale (and min/offset) fields in one block (GGML's layouts): where
    /// tests put moderate values, since random bit patterns would include NaN and infinity.
    static func scaleFields(_ dtype: DType) -> [Int] {
        switch dtype {
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q2_K: return [80, 82]
        case .q3_K: return [108]
        case .q6_K: return [208]
        case .f32, .f16, .bf16: return []
        default: return [0] // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS
        }
    }

    /// The block types.
    static let blockTypes = DType.allCases.filter(\.isQuantized)
    /// `count` blocks of random bytes whose float16 scale fields (`scaleFields`) hold `scale(&rng)`'s
    /// bits instead: random bit patterns there would include NaN and infinity.
    func randomBlocks(_ count: Int, rng: inout SeededRandom, scale: (inout SeededRandom) -> UInt16) -> [UInt8] {
        var bytes = (0..<(count * blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for b in 0..<count {
            for at in DType.scaleFields(self) {
                let bits = scale(&rng)
                bytes[b * blockBytes + at] = UInt8(bits & 0xFF)
                bytes[b * blockBytes + at + 1] = UInt8(bits >> 8)
            }
        }
        return bytes
    }

    /// Every type `QuantizedRows` multiplies from: the block types and 16-bit float rows.
    static let storedTypes = blockTypes + [.f16, .bf16]

    /// `values` as this 16-bit float type's little-endian bytes (rounded to nearest).
    static func halfBytes(_ dtype: DType, _ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let bits = dtype == .f16 ? Float16(v).bitPattern : Dequantize.floatToBF16(v)
            return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
    }
}
