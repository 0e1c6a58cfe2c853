import Foundation

/// Moves a vocabulary between GGUF metadata and Hugging Face files (for `engram convert`), such that
/// the loaders on either side produce the same ids.
public enum TokenizerConversion {
    /// tokenizer.json + tokenizer_config.json from a GGUF byte-level BPE vocabulary, or tokenizer.model +
    /// tokenizer_config.json from a GGUF SentencePiece (`llama`) vocabulary.
    public static func huggingFaceFiles(from metadata: Metadata) throws -> [String: Data] {
        let model = try metadata.string("tokenizer.ggml.model")
        switch model {
        case "gpt2":
            let vocabulary = try BPEVocabulary(gguf: metadata)
            return ["tokenizer.json": vocabulary.tokenizerJSON(), "tokenizer_config.json": vocabulary.tokenizerConfigJSON()]
        case "llama":
            let tokenizer = try SentencePieceTokenizer(gguf: metadata)
            return ["tokenizer.model": tokenizer.model.serialized(), "tokenizer_config.json": configJSON(tokenizer)]
        default:
            throw EngramError.metadata(file: metadata.file, key: "tokenizer.ggml.model",
                                       detail: "'\(model)' vocabularies cannot be converted (expected 'gpt2' or 'llama')")
        }
    }

    /// The `tokenizer.ggml.*` (and `tokenizer.chat_template`) entries for the Hugging Face files of a
    /// checkpoint. `file` names the folder, for error messages.
    public static func ggufMetadata(fromSidecars sidecars: [String: Data], file: String) throws -> [(String, MetadataValue)] {
        let tokenizer = try TokenizerLoader.load(sidecars: sidecars, location: file)
        if let bpe = tokenizer as? BPETokenizer { return bpe.vocabulary.ggufMetadata() }
        guard let spm = tokenizer as? SentencePieceTokenizer else {
            throw EngramError.unsupported(file: file, detail: "no GGUF form for tokenizer \(type(of: tokenizer))")
        }
        return try ggufMetadata(spm)
    }

    static func ggufMetadata(_ t: SentencePieceTokenizer) throws -> [(String, MetadataValue)] {
        let m = t.model
        // llama.cpp's SentencePiece path merges by score like libsentencepiece's BPE; a unigram model would
        // segment differently there.
        guard m.algorithm == .bpe else {
            throw EngramError.unsupported(file: t.file, detail: "trainer_spec.model_type is \(m.algorithm), but GGUF 'llama' vocabularies are BPE; this tokenizer.model cannot be stored in GGUF")
        }
        guard m.normalizerName == "identity" || m.precompiledCharsmap.isEmpty else {
            throw EngramError.unsupported(file: t.file, detail: "normalizer_spec '\(m.normalizerName)' normalizes text, which GGUF 'llama' vocabularies cannot express")
        }
        var out: [(String, MetadataValue)] = [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(.string, m.pieces.map { .string($0.text) })),
            ("tokenizer.ggml.scores", .array(.float32, m.pieces.map { .float32($0.score) })),
            ("tokenizer.ggml.token_type", .array(.int32, m.pieces.map { .int32($0.kind.rawValue) })),
        ]
        if let bos = t.bos { out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = t.eos { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        out.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(m.unknownID))))
        if m.padID >= 0 { out.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(m.padID)))) }
        out.append(("tokenizer.ggml.add_bos_token", .bool(t.addsBOS)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(t.addsEOS)))
        out.append(("tokenizer.ggml.add_space_prefix", .bool(m.addDummyPrefix)))
        if m.removeExtraWhitespaces { out.append(("tokenizer.ggml.remove_extra_whitespaces", .bool(true))) }
        if let source = t.chatTemplateSource { out.append(("tokenizer.chat_template", .string(source))) }
        return out
    }

    static func configJSON(_ t: SentencePieceTokenizer) -> Data {
        var w = JSONText()
        w.raw("{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"add_bos_token\": \(t.addsBOS),\n  \"add_eos_token\": \(t.addsEOS)")
        for (name, id) in [("bos_token", t.bos), ("eos_token", t.eos), ("unk_token", t.model.unknownID)] {
            guard let id, let text = t.piece(id) else { continue }
            w.raw(",\n  \"\(name)\": ")
            w.string(text)
        }
        if let source = t.chatTemplateSource {
            w.raw(",\n  \"chat_template\": ")
            w.string(source)
        }
        w.raw("\n}\n")
        return w.data
    }
}
