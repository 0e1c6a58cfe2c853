import Foundation

/// A token and the UTF-8 byte range of the input text it came from (empty for added BOS/EOS).
public struct TokenSpan: Equatable, Sendable {
    public let id: Int32
    public let bytes: Range<Int>
    public init(id: Int32, bytes: Range<Int>) {
        self.id = id
        self.bytes = bytes
    }
}

/// Text ⇄ token ids. Implementations: byte-level BPE (GGUF `gpt2` vocabularies and tokenizer.json),
/// SentencePiece (tokenizer.model and GGUF `llama` vocabularies).
public protocol Tokenizer: AnyObject, Sendable {
    var vocabularySize: Int { get }
    var bos: Int32? { get }
    var eos: Int32? { get }
    /// Whether `encode(_, addSpecial: true)` prepends BOS (GGUF `tokenizer.ggml.add_bos_token`).
    var addsBOS: Bool { get }
    /// Encodes text. `addSpecial` adds BOS/EOS as the vocabulary asks; `parseSpecial` turns special-token
    /// text such as `<|im_start|>` into its single id instead of splitting it.
    func encodeWithOffsets(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [TokenSpan]
    /// Decodes ids to text; special/control tokens are dropped when `skipSpecial`.
    func decode(_ ids: [Int32], skipSpecial: Bool) -> String
    /// The raw vocabulary entry of an id (e.g. "Ġworld"), or nil outside the vocabulary.
    func piece(_ id: Int32) -> String?
    /// The text bytes an id stands for (" world"; one byte of a character split across tokens); empty
    /// outside the vocabulary. Decoding a sequence joins these (SentencePiece drops a leading space).
    func bytes(of id: Int32) -> [UInt8]
    /// The id of an exact vocabulary entry, if any.
    func id(ofPiece piece: String) -> Int32?
    /// Whether generation should stop at this id (EOS, end-of-turn, …).
    func isEndOfGeneration(_ id: Int32) -> Bool
    /// The chat template the model ships, if any.
    var chatTemplate: ChatTemplate? { get }
    /// How to render a conversation for this model: the template family plus what the model's own
    /// template adds (default system message, BOS text).
    var chatFormat: ChatFormat? { get }
}

extension Tokenizer {
    public func encode(_ text: String, addSpecial: Bool = false, parseSpecial: Bool = false) -> [Int32] {
        encodeWithOffsets(text, addSpecial: addSpecial, parseSpecial: parseSpecial).map(\.id)
    }

    public func decode(_ ids: [Int32]) -> String { decode(ids, skipSpecial: false) }

    /// The text of tokens that continue a text (a completion after its prompt): their bytes joined, so
    /// a SentencePiece word keeps its leading space, which `decode` drops at the start of what it decodes.
    /// For byte-level BPE the same as `decode`.
    public func continuation(_ ids: [Int32]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }

    public var chatFormat: ChatFormat? {
        chatTemplate.map { ChatFormat(template: $0, bosText: bos.flatMap(piece), eosText: eos.flatMap(piece)) }
    }

    /// The conversation as prompt text in the model's chat format (ChatML when the model names none).
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        (chatFormat ?? ChatFormat(template: .chatml)).render(messages, addGenerationPrompt: addGenerationPrompt)
    }
}

/// One message of a conversation.
public struct ChatMessage: Codable, Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Chat prompt formats of the common model families.
public enum ChatTemplate: String, Codable, Sendable, CaseIterable {
    case chatml, llama2, llama3, gemma
}
