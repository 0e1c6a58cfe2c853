import Foundation

/// Everything a byte-level BPE tokenizer is made of, whichever file it came from (GGUF metadata or a
/// Hugging Face tokenizer.json). Conversion between the formats goes through this value.
public struct BPEVocabulary: Sendable {
    /// Vocabulary entries by id, in the byte-level alphabet ("Ġworld"); added tokens in plain text.
    public var tokens: [String]
    public var kinds: [TokenKind]
    /// Merge rules, highest priority first.
    public var merges: [(String, String)]
    public var preTokenizer: PreTokenizerKind
    /// Compose text to Unicode NFC before splitting it (tokenizer.json `normalizer` NFC, as Qwen2's).
    /// GGUF has no such key (llama.cpp does not normalize), so this does not survive conversion to GGUF.
    public var normalizesNFC = false
    /// Take a word that is itself a vocabulary entry whole, without merging (Llama 3's tokenizer).
    public var ignoreMerges = false
    public var bos: Int32?
    public var eos: Int32?
    public var unknown: Int32?
    public var padding: Int32?
    /// Further end-of-generation ids (GGUF `eot_token_id`, `eom_token_id`).
    public var endOfTurn: [Int32] = []
    public var addBOS = false
    public var addEOS = false
    /// Special-token options from tokenizer.json (`lstrip`, `rstrip`) by id.
    var stripOptions: [Int32: (lstrip: Bool, rstrip: Bool)] = [:]
    public var chatTemplateSource: String?
    /// The GGUF `tokenizer.ggml.pre` name the vocabulary was read with, kept for writing it back.
    public var preTokenizerName: String?
    /// Where the vocabulary came from, for error messages.
    public var file: String

    public init(tokens: [String], kinds: [TokenKind], merges: [(String, String)], preTokenizer: PreTokenizerKind, file: String) {
        self.tokens = tokens
        self.kinds = kinds
        self.merges = merges
        self.preTokenizer = preTokenizer
        self.file = file
    }

    /// A merge of tokens the vocabulary lacks, or whose result it lacks, can never apply (Hugging Face
    /// refuses such a file): it points at a damaged or mismatched vocabulary.
    static func checkMerges(_ merges: [(String, String)], tokens known: Set<String>, file: String, key: String) throws {
        for (i, (a, b)) in merges.enumerated() {
            for t in [a, b, a + b] where !known.contains(t) {
                throw EngramError.metadata(file: file, key: key, detail: "entry \(i) '\(a) \(b)' names '\(t)', which is not in the vocabulary")
            }
        }
    }

    /// The tokens matched whole in text before splitting: control tokens (when asked) and user-defined ones.
    var specialTokens: [SpecialToken] {
        var out: [SpecialToken] = []
        for (i, kind) in kinds.enumerated() where kind == .control || kind == .userDefined {
            let id = Int32(i)
            let strip = stripOptions[id]
            out.append(SpecialToken(text: Array(tokens[i].utf8), id: id, alwaysParsed: kind == .userDefined,
                                    lstrip: strip?.lstrip ?? false, rstrip: strip?.rstrip ?? false))
        }
        return out
    }
}

// MARK: GGUF

extension BPEVocabulary {
    /// Reads a GGUF `gpt2`-model vocabulary (`tokenizer.ggml.*`).
    public init(gguf m: Metadata) throws {
        let file = m.file
        let tokens = try m.stringArray("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else {
            throw EngramError.metadata(file: file, key: "tokenizer.ggml.tokens", detail: "the vocabulary is empty")
        }
        var kinds = [TokenKind](repeating: .normal, count: tokens.count)
        if m["tokenizer.ggml.token_type"] != nil {
            let types = try m.intArray("tokenizer.ggml.token_type")
            guard types.count == tokens.count else {
                throw EngramError.metadata(file: file, key: "tokenizer.ggml.token_type",
                                           detail: "has \(types.count) entries for \(tokens.count) tokens")
            }
            kinds = types.map(TokenKind.init(gguf:))
        }
        let mergeStrings = try m.stringArray("tokenizer.ggml.merges")
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeStrings.count)
        for (i, line) in mergeStrings.enumerated() {
            guard let pair = Self.splitMerge(line) else {
                throw EngramError.metadata(file: file, key: "tokenizer.ggml.merges",
                                           detail: "entry \(i) '\(line)' is not two tokens separated by a space")
            }
            merges.append(pair)
        }
        let preName = m["tokenizer.ggml.pre"]?.string
        self.init(tokens: tokens, kinds: kinds, merges: merges,
                  preTokenizer: PreTokenizer(ggufName: preName, file: file).kind, file: file)
        preTokenizerName = preName
        // llama.cpp takes whole-word vocabulary entries for Llama 3 vocabularies and adds BOS by default.
        let llama3 = preTokenizer == .llamaBPE
        ignoreMerges = llama3
        func id(_ key: String) throws -> Int32? {
            guard m[key] != nil else { return nil }
            let v = try m.int(key)
            guard v >= 0, v < tokens.count else {
                // -1 (and out-of-range ids) mean "none" in files written by some converters.
                return nil
            }
            return Int32(v)
        }
        bos = try id("tokenizer.ggml.bos_token_id")
        eos = try id("tokenizer.ggml.eos_token_id")
        unknown = try id("tokenizer.ggml.unknown_token_id")
        padding = try id("tokenizer.ggml.padding_token_id")
        endOfTurn = [try id("tokenizer.ggml.eot_token_id"), try id("tokenizer.ggml.eom_token_id")].compactMap { $0 }
        addBOS = try Self.bool(m, "tokenizer.ggml.add_bos_token") ?? llama3
        addEOS = try Self.bool(m, "tokenizer.ggml.add_eos_token") ?? false
        chatTemplateSource = m["tokenizer.chat_template"]?.string
    }

    static func bool(_ m: Metadata, _ key: String) throws -> Bool? {
        guard let v = m[key] else { return nil }
        if let b = v.bool { return b }
        if let i = v.int { return i != 0 }
        throw EngramError.metadata(file: m.file, key: key, detail: "expected a boolean, found \(v.type)")
    }

    /// "Ġ t" → ("Ġ", "t"). The separator is the first space after the first character, so that a token
    /// that is itself a space (possible outside the byte-level alphabet) still parses.
    static func splitMerge(_ line: String) -> (String, String)? {
        let u = Array(line.utf8)
        guard u.count >= 3 else { return nil }
        // Skip the whole first scalar, not just its first byte.
        var start = 1
        while start < u.count, u[start] & 0xC0 == 0x80 { start += 1 }
        guard let space = u[start...].firstIndex(of: 0x20), space + 1 < u.count else { return nil }
        return (String(decoding: u[..<space], as: UTF8.self), String(decoding: u[(space + 1)...], as: UTF8.self))
    }

    /// The `tokenizer.ggml.*` entries that describe this vocabulary (what a GGUF writer stores).
    public func ggufMetadata() -> [(String, MetadataValue)] {
        var out: [(String, MetadataValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(preTokenizerName ?? preTokenizer.rawValue)),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, kinds.map { .int32($0.rawValue) })),
            ("tokenizer.ggml.merges", .array(.string, merges.map { .string("\($0.0) \($0.1)") })),
        ]
        if let bos { out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let unknown { out.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
        if let padding { out.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(padding)))) }
        out.append(("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(addEOS)))
        if let chatTemplateSource { out.append(("tokenizer.chat_template", .string(chatTemplateSource))) }
        return out
    }
}
