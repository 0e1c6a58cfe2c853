import Foundation

/// How a Hugging Face tensor's layout differs from the canonical (GGUF) layout of the same weight.
public enum LayoutTransform: Equatable, Sendable {
    case none
    /// GPT-2's Conv1D stores `[in, out]`; canonical weights are `[out, in]`.
    case transpose
    /// LLaMA Q/K rows: Hugging Face orders each head as [first half | second half] for `rotate_half`
    /// RoPE; llama.cpp interleaves the halves so that RoPE rotates adjacent pairs. `heads` is the
    /// head count of the projection (KV heads for K).
    case interleaveRotaryHalves(heads: Int)
}

/// What a Hugging Face tensor name stands for.
public enum HuggingFaceTensorRole: Equatable, Sendable {
    case tensor(canonical: String)
    /// A buffer that is not a weight (causal masks, cached RoPE frequencies): ignored on reading.
    case buffer
}

/// The name map between Hugging Face state-dict names and canonical GGUF names, one table per
/// architecture. Block tensors are listed once, by suffix after `model.layers.N.` / `h.N.` / `blk.N.`.
public enum TensorNames {
    struct Table {
        /// HF names outside the blocks (without the optional model prefix) ↔ canonical names.
        let global: [(hf: String, canonical: String)]
        /// HF suffix after the block prefix ↔ canonical suffix after `blk.N.`.
        let block: [(hf: String, canonical: String)]
        let blockPrefix: String          // "layers." or "h."
        let modelPrefix: String          // "model." or "transformer."
        /// Global names that live outside the model prefix (the output head).
        let unprefixed: Set<String>
        let blockBuffers: Set<String>
    }

    static let llamaTable = Table(
        global: [("embed_tokens.weight", "token_embd.weight"), ("norm.weight", "output_norm.weight"),
                 ("lm_head.weight", "output.weight")],
        block: [("input_layernorm.weight", "attn_norm.weight"),
                ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
                ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
                ("post_attention_layernorm.weight", "ffn_norm.weight"),
                ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"),
                ("mlp.down_proj.weight", "ffn_down.weight")],
        blockPrefix: "layers.", modelPrefix: "model.", unprefixed: ["lm_head.weight"],
        blockBuffers: ["self_attn.rotary_emb.inv_freq"])

    static let qwen2Table = Table(
        global: llamaTable.global,
        block: llamaTable.block + [("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
                                   ("self_attn.v_proj.bias", "attn_v.bias")],
        blockPrefix: "layers.", modelPrefix: "model.", unprefixed: ["lm_head.weight"],
        blockBuffers: ["self_attn.rotary_emb.inv_freq"])

    static let gpt2Table = Table(
        global: [("wte.weight", "token_embd.weight"), ("wpe.weight", "position_embd.weight"),
                 ("ln_f.weight", "output_norm.weight"), ("ln_f.bias", "output_norm.bias"),
                 ("lm_head.weight", "output.weight")],
        block: [("ln_1.weight", "attn_norm.weight"), ("ln_1.bias", "attn_norm.bias"),
                ("attn.c_attn.weight", "attn_qkv.weight"), ("attn.c_attn.bias", "attn_qkv.bias"),
                ("attn.c_proj.weight", "attn_output.weight"), ("attn.c_proj.bias", "attn_output.bias"),
                ("ln_2.weight", "ffn_norm.weight"), ("ln_2.bias", "ffn_norm.bias"),
                ("mlp.c_fc.weight", "ffn_up.weight"), ("mlp.c_fc.bias", "ffn_up.bias"),
                ("mlp.c_proj.weight", "ffn_down.weight"), ("mlp.c_proj.bias", "ffn_down.bias")],
        blockPrefix: "h.", modelPrefix: "transformer.", unprefixed: ["lm_head.weight"],
        blockBuffers: ["attn.bias", "attn.masked_bias"])

    static func table(_ architecture: Architecture) -> Table {
        switch architecture {
        case .llama: return llamaTable
        case .qwen2: return qwen2Table
        case .gpt2: return gpt2Table
        }
    }

    /// The canonical name of a Hugging Face tensor, `.buffer` for non-weights, nil if unknown.
    /// The model prefix (`model.` / `transformer.`) is optional, as checkpoints of the bare model omit it.
    public static func role(ofHuggingFace name: String, architecture: Architecture) -> HuggingFaceTensorRole? {
        let table = table(architecture)
        if table.unprefixed.contains(name), let hit = table.global.first(where: { $0.hf == name }) {
            return .tensor(canonical: hit.canonical)
        }
        let bare = name.hasPrefix(table.modelPrefix) ? String(name.dropFirst(table.modelPrefix.count)) : name
        if !table.unprefixed.contains(bare), let hit = table.global.first(where: { $0.hf == bare }) {
            return .tensor(canonical: hit.canonical)
        }
        guard bare.hasPrefix(table.blockPrefix) else { return nil }
        let rest = bare.dropFirst(table.blockPrefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[rest.startIndex..<dot]), layer >= 0,
              String(layer) == rest[rest.startIndex..<dot] else { return nil }
        let suffix = String(rest[rest.index(after: dot)...])
        if table.blockBuffers.contains(suffix) { return .buffer }
        guard let hit = table.block.first(where: { $0.hf == suffix }) else { return nil }
        return .tensor(canonical: "blk.\(layer).\(hit.canonical)")
    }

    /// The Hugging Face name (with the model prefix transformers writes) of a canonical tensor.
    public static func huggingFace(canonical name: String, architecture: Architecture) -> String? {
        let table = table(architecture)
        if let hit = table.global.first(where: { $0.canonical == name }) {
            return table.unprefixed.contains(hit.hf) ? hit.hf : table.modelPrefix + hit.hf
        }
        guard name.hasPrefix("blk.") else { return nil }
        let rest = name.dropFirst(4)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[rest.startIndex..<dot]), layer >= 0 else { return nil }
        let suffix = String(rest[rest.index(after: dot)...])
        guard let hit = table.block.first(where: { $0.canonical == suffix }) else { return nil }
        return "\(table.modelPrefix)\(table.blockPrefix)\(layer).\(hit.hf)"
    }

    /// How the Hugging Face layout of a canonical tensor differs from the canonical one.
    public static func transform(canonical name: String, config: ModelConfig) -> LayoutTransform {
        switch config.architecture {
        case .llama:
            // llama.cpp permutes Q/K of LLaMA only; Qwen2 GGUFs keep the HF order and use NeoX RoPE.
            if name.hasSuffix(".attn_q.weight") { return .interleaveRotaryHalves(heads: config.heads) }
            if name.hasSuffix(".attn_k.weight") { return .interleaveRotaryHalves(heads: config.kvHeads) }
            return .none
        case .qwen2:
            return .none
        case .gpt2:
            for suffix in [".attn_qkv.weight", ".attn_output.weight", ".ffn_up.weight", ".ffn_down.weight"] where name.hasSuffix(suffix) {
                return .transpose
            }
            return .none
        }
    }

    /// Every tensor a model with this config needs, canonical name and canonical shape, in file order.
    public static func expected(for c: ModelConfig) -> [(name: String, shape: [Int])] {
        let d = c.hidden, m = c.intermediate
        var out: [(String, [Int])] = [("token_embd.weight", [c.vocab, d])]
        switch c.architecture {
        case .llama, .qwen2:
            for l in 0..<c.layers {
                let p = "blk.\(l)."
                out += [(p + "attn_norm.weight", [d]),
                        (p + "attn_q.weight", [c.qDim, d]), (p + "attn_k.weight", [c.kvDim, d]),
                        (p + "attn_v.weight", [c.kvDim, d])]
                if c.architecture == .qwen2 {
                    out += [(p + "attn_q.bias", [c.qDim]), (p + "attn_k.bias", [c.kvDim]), (p + "attn_v.bias", [c.kvDim])]
                }
                out += [(p + "attn_output.weight", [d, c.qDim]), (p + "ffn_norm.weight", [d]),
                        (p + "ffn_gate.weight", [m, d]), (p + "ffn_up.weight", [m, d]), (p + "ffn_down.weight", [d, m])]
            }
            out.append(("output_norm.weight", [d]))
        case .gpt2:
            out.append(("position_embd.weight", [c.contextLength, d]))
            for l in 0..<c.layers {
                let p = "blk.\(l)."
                out += [(p + "attn_norm.weight", [d]), (p + "attn_norm.bias", [d]),
                        (p + "attn_qkv.weight", [3 * d, d]), (p + "attn_qkv.bias", [3 * d]),
                        (p + "attn_output.weight", [d, d]), (p + "attn_output.bias", [d]),
                        (p + "ffn_norm.weight", [d]), (p + "ffn_norm.bias", [d]),
                        (p + "ffn_up.weight", [m, d]), (p + "ffn_up.bias", [m]),
                        (p + "ffn_down.weight", [d, m]), (p + "ffn_down.bias", [d])]
            }
            out += [("output_norm.weight", [d]), ("output_norm.bias", [d])]
        }
        if !c.tiedEmbeddings { out.append(("output.weight", [c.vocab, d])) }
        return out
    }
}

/// The row and axis shuffles between Hugging Face and canonical layouts. They only move elements, so
/// they work on the stored bytes of any unquantized type (F32, F16, BF16) and never change a value.
public enum LayoutTransforms {
    /// Hugging Face → canonical.
    public static func toCanonical(_ source: UnsafePointer<Float>, shape: [Int], _ transform: LayoutTransform) -> FloatBuffer {
        floats(source, shape: shape, transform, inverse: false)
    }

    /// Canonical → Hugging Face.
    public static func toHuggingFace(_ source: UnsafePointer<Float>, shape: [Int], _ transform: LayoutTransform) -> FloatBuffer {
        floats(source, shape: shape, transform, inverse: true)
    }

    /// The shape a tensor has on the Hugging Face side given its canonical shape (and conversely:
    /// both transforms are their own shape inverse).
    public static func otherShape(_ shape: [Int], _ transform: LayoutTransform) -> [Int] {
        transform == .transpose && shape.count == 2 ? [shape[1], shape[0]] : shape
    }

    static func floats(_ source: UnsafePointer<Float>, shape: [Int], _ transform: LayoutTransform, inverse: Bool) -> FloatBuffer {
        let out = FloatBuffer(count: shape.reduce(1, *), zeroed: false)
        move(UnsafeRawPointer(source), into: UnsafeMutableRawPointer(out.pointer), elementBytes: 4, shape: shape, transform, inverse: inverse)
        return out
    }

    /// Moves the elements of `source` (a tensor of `shape` on the side `inverse` says) into `out`, each
    /// `elementBytes` (2 or 4) wide.
    static func move(_ source: UnsafeRawPointer, into out: UnsafeMutableRawPointer, elementBytes: Int, shape: [Int],
                     _ transform: LayoutTransform, inverse: Bool) {
        let count = shape.reduce(1, *)
        let rows = shape.first ?? 1, cols = rows == 0 ? 0 : count / rows
        switch transform {
        case .none:
            out.copyMemory(from: source, byteCount: count * elementBytes)
        case .transpose:
            // [rows, cols] → [cols, rows]; the same loop serves both directions. Elements are moved as
            // 16- or 32-bit words (a copy call per element would be far slower); safetensors does not
            // promise aligned data, hence unaligned loads.
            func transpose<Word: FixedWidthInteger>(_: Word.Type) {
                for r in 0..<rows {
                    for c in 0..<cols {
                        let word = source.loadUnaligned(fromByteOffset: (r * cols + c) * elementBytes, as: Word.self)
                        out.storeBytes(of: word, toByteOffset: (c * rows + r) * elementBytes, as: Word.self)
                    }
                }
            }
            switch elementBytes {
            case 2: transpose(UInt16.self)
            case 4: transpose(UInt32.self)
            default: preconditionFailure("layout transforms move 2- or 4-byte elements, not \(elementBytes)")
            }
        case let .interleaveRotaryHalves(heads):
            // Per head of `headDim` rows: HF row (half j, index i) ↔ llama.cpp row (pair i, member j),
            // i.e. the [heads, 2, headDim/2] → [heads, headDim/2, 2] axis swap of llama.cpp's converter.
            let headDim = rows / heads, half = headDim / 2, rowBytes = cols * elementBytes
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let hfRow = h * headDim + j * half + i
                        let ggufRow = h * headDim + 2 * i + j
                        let (from, to) = inverse ? (ggufRow, hfRow) : (hfRow, ggufRow)
                        (out + to * rowBytes).copyMemory(from: source + from * rowBytes, byteCount: rowBytes)
                    }
                }
            }
        }
    }
}
