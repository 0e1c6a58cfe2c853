import Foundation
import Logging

/// Builds the tokenizer a checkpoint ships: from GGUF metadata when the file has a vocabulary
/// (`tokenizer.ggml.model`), else from the Hugging Face files beside the weights.
public enum TokenizerLoader {
    public static func load(_ checkpoint: Checkpoint) throws -> Tokenizer {
        let m = checkpoint.metadata
        if let value = m["tokenizer.ggml.model"] {
            guard let model = value.string else {
                throw EngramError.metadata(file: m.file, key: "tokenizer.ggml.model", detail: "expected a string, found \(value.type)")
            }
            switch model {
            case "gpt2": return try BPETokenizer(gguf: m)
            case "llama": return try SentencePieceTokenizer(gguf: m)
            default:
                throw EngramError.metadata(file: m.file, key: "tokenizer.ggml.model",
                                           detail: "'\(model)' vocabularies are not supported (expected 'gpt2' for byte-level BPE or 'llama' for SentencePiece)")
            }
        }
        return try load(sidecars: checkpoint.sidecars, location: checkpoint.location)
    }

    /// From tokenizer.json (byte-level BPE) or tokenizer.model (SentencePiece), with tokenizer_config.json
    /// for BOS/EOS, `add_bos_token` and the chat template. When both files are there and tokenizer.json
    /// is not byte-level (LLaMA 2's is a SentencePiece-style BPE), tokenizer.model is used.
    public static func load(sidecars: [String: Data], location: String) throws -> Tokenizer {
        let config = sidecars["tokenizer_config.json"]
        func path(_ name: String) -> String { (location as NSString).appendingPathComponent(name) }
        if let json = sidecars["tokenizer.json"] {
            do {
                let vocabulary = try BPEVocabulary(tokenizerJSON: json, config: config, file: path("tokenizer.json"))
                return try BPETokenizer(vocabulary: vocabulary)
            } catch let error as EngramError where sidecars["tokenizer.model"] != nil {
                Logger(label: "engram.tokenizer").info("\(error); using tokenizer.model instead")
            }
        }
        if let model = sidecars["tokenizer.model"] {
            return try SentencePieceTokenizer(modelProto: model, config: config, file: path("tokenizer.model"))
        }
        throw EngramError.unsupported(file: location, detail: "no tokenizer: the checkpoint has no GGUF vocabulary (tokenizer.ggml.model) and no tokenizer files beside it; expected tokenizer.json or tokenizer.model")
    }
}
