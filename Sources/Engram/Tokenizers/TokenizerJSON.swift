import Foundation

/// Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) for byte-level BPE vocabularies: reading
/// into a `BPEVocabulary`, and writing one back so that both libraries produce the same ids.
extension BPEVocabulary {
    public init(tokenizerJSON data: Data, config configData: Data? = nil, file: String) throws {
        let root = try Self.jsonObject(data, file: file)
        guard let model = root["model"] as? [String: Any] else {
            throw EngramError.metadata(file: file, key: "model", detail: "missing or not an object")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else {
            throw EngramError.unsupported(file: file, detail: "model.type '\(type)': only byte-level BPE tokenizer.json files are read; use tokenizer.model for SentencePiece vocabularies")
        }
        if model["byte_fallback"] as? Bool == true {
            throw EngramError.unsupported(file: file, detail: "model.byte_fallback is true: this is a SentencePiece-style BPE, not byte-level; use tokenizer.model")
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw EngramError.metadata(file: file, key: "model.vocab", detail: "missing or not an object")
        }

        // Ids of the model vocabulary and of added tokens together define the vocabulary size.
        var byID: [Int: String] = [:]
        byID.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0 else {
                throw EngramError.metadata(file: file, key: "model.vocab", detail: "entry '\(token)' has id \(value), expected a non-negative integer")
            }
            byID[id] = token
        }
        var kindByID: [Int: TokenKind] = [:]
        var strip: [Int32: (lstrip: Bool, rstrip: Bool)] = [:]
        if let added = root["added_tokens"] as? [[String: Any]] {
            for (i, entry) in added.enumerated() {
                guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, let content = entry["content"] as? String else {
                    throw EngramError.metadata(file: file, key: "added_tokens", detail: "entry \(i) lacks an integer id or a content string")
                }
                byID[id] = content
                kindByID[id] = (entry["special"] as? Bool ?? false) ? .control : .userDefined
                let l = entry["lstrip"] as? Bool ?? false, r = entry["rstrip"] as? Bool ?? false
                if l || r { strip[Int32(id)] = (l, r) }
            }
        }
        let size = (byID.keys.max() ?? -1) + 1
        guard size > 0 else { throw EngramError.metadata(file: file, key: "model.vocab", detail: "the vocabulary is empty") }
        guard size <= byID.count * 2 + 1024 else {
            throw EngramError.metadata(file: file, key: "model.vocab", detail: "ids reach \(size - 1) for \(byID.count) entries")
        }
        var tokens = [String](repeating: "", count: size)
        var kinds = [TokenKind](repeating: .normal, count: size)
        for id in 0..<size {
            if let t = byID[id] {
                tokens[id] = t
                kinds[id] = kindByID[id] ?? .normal
            } else {
                // A hole in the ids: keep positions aligned with the embedding; the entry is never produced.
                tokens[id] = "[UNUSED_\(id)]"
                kinds[id] = .unused
            }
        }

        var merges: [(String, String)] = []
        if let list = model["merges"] as? [Any] {
            merges.reserveCapacity(list.count)
            for (i, item) in list.enumerated() {
                if let line = item as? String, let pair = Self.splitMerge(line) {
                    merges.append(pair)
                } else if let pair = item as? [String], pair.count == 2 {
                    merges.append((pair[0], pair[1]))
                } else {
                    throw EngramError.metadata(file: file, key: "model.merges", detail: "entry \(i) is neither \"a b\" nor [\"a\", \"b\"]")
                }
            }
        } else if model["merges"] != nil {
            throw EngramError.metadata(file: file, key: "model.merges", detail: "not an array")
        }
        // Against model.vocab itself: an added token may take over a vocabulary id (Hugging Face checks the same).
        try Self.checkMerges(merges, tokens: Set(vocab.keys).union(tokens), file: file, key: "model.merges")

        let pre = try Self.preTokenizerKind(root["pre_tokenizer"], file: file)
        // Qwen2 composes text to NFC first; no other normalizer occurs with byte-level vocabularies.
        var nfc = false
        if let normalizer = root["normalizer"] as? [String: Any] {
            let steps = normalizer["type"] as? String == "Sequence" ? normalizer["normalizers"] as? [[String: Any]] ?? [] : [normalizer]
            guard !steps.isEmpty, steps.allSatisfy({ $0["type"] as? String == "NFC" }) else {
                throw EngramError.unsupported(file: file, detail: "normalizer \(Self.describe(normalizer)): byte-level tokenizers are read with no normalizer or NFC only")
            }
            nfc = true
        }
        if let decoder = root["decoder"] as? [String: Any], decoder["type"] as? String != "ByteLevel" {
            throw EngramError.unsupported(file: file, detail: "decoder \(Self.describe(decoder)): expected ByteLevel for a byte-level BPE vocabulary")
        }

        self.init(tokens: tokens, kinds: kinds, merges: merges, preTokenizer: pre, file: file)
        normalizesNFC = nfc
        stripOptions = strip
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        if let unk = model["unk_token"] as? String, let id = tokens.firstIndex(of: unk) { unknown = Int32(id) }
        func id(of token: String?) -> Int32? { token.flatMap { t in tokens.firstIndex(of: t).map { Int32($0) } } }

        // BOS/EOS the post-processor adds (e.g. Llama 3's TemplateProcessing "<|begin_of_text|> $A").
        let template = Self.templateSpecialTokens(root["post_processor"])
        if let b = template.bos, Int(b) < size { bos = b; addBOS = true }
        if let e = template.eos, Int(e) < size { eos = e; addEOS = true }

        if let configData {
            let configFile = (file as NSString).deletingLastPathComponent + "/tokenizer_config.json"
            let config = try Self.jsonObject(configData, file: configFile)
            if let t = Self.tokenText(config["bos_token"]) { bos = id(of: t) ?? bos }
            if let t = Self.tokenText(config["eos_token"]) { eos = id(of: t) ?? eos }
            if let t = Self.tokenText(config["unk_token"]) { unknown = id(of: t) ?? unknown }
            if let t = Self.tokenText(config["pad_token"]) { padding = id(of: t) ?? padding }
            if let b = config["add_bos_token"] as? Bool { addBOS = b && bos != nil }
            if let b = config["add_eos_token"] as? Bool { addEOS = b && eos != nil }
            chatTemplateSource = Self.chatTemplate(config["chat_template"])
        }
    }

    // MARK: reading helpers

    static func jsonObject(_ data: Data, file: String) throws -> [String: Any] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw EngramError.format(file: file, detail: "not valid JSON: \(EngramError.jsonDetail(error))")
        }
        guard let dict = object as? [String: Any] else { throw EngramError.format(file: file, detail: "the top level is not a JSON object") }
        return dict
    }

    /// `"<s>"` or `{"content": "<s>", …}` (tokenizer_config.json writes both).
    static func tokenText(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let d = value as? [String: Any] { return d["content"] as? String }
        return nil
    }

    /// `chat_template` is a string, or a list of named templates of which "default" is the chat one.
    static func chatTemplate(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let list = value as? [[String: Any]] {
            let named = list.first { $0["name"] as? String == "default" } ?? list.first
            return named?["template"] as? String
        }
        return nil
    }

    static func describe(_ object: Any?) -> String {
        guard let object, !(object is NSNull) else { return "null" }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
              let text = String(data: data, encoding: .utf8) else { return "\(object)" }
        return text.count > 300 ? String(text.prefix(297)) + "..." : text
    }

    /// The ids a TemplateProcessing post-processor puts before and after a single sequence (BOS, EOS).
    static func templateSpecialTokens(_ value: Any?) -> (bos: Int32?, eos: Int32?) {
        guard let p = value as? [String: Any] else { return (nil, nil) }
        if p["type"] as? String == "Sequence", let list = p["processors"] as? [Any] {
            for item in list {
                let found = templateSpecialTokens(item)
                if found.bos != nil || found.eos != nil { return found }
            }
            return (nil, nil)
        }
        guard p["type"] as? String == "TemplateProcessing", let single = p["single"] as? [[String: Any]] else { return (nil, nil) }
        let table = p["special_tokens"] as? [String: Any] ?? [:]
        func id(_ piece: [String: Any]?) -> Int32? {
            guard let name = (piece?["SpecialToken"] as? [String: Any])?["id"] as? String,
                  let entry = table[name] as? [String: Any], let ids = entry["ids"] as? [Any],
                  let first = ids.first as? NSNumber else { return nil }
            return Int32(truncatingIfNeeded: first.intValue)
        }
        return (id(single.first), single.count > 1 ? id(single.last) : nil)
    }

    /// Maps a tokenizer.json pre_tokenizer onto one of the scanners.
    static func preTokenizerKind(_ value: Any?, file: String) throws -> PreTokenizerKind {
        func fail() -> EngramError {
            .metadata(file: file, key: "pre_tokenizer", detail: "\(describe(value)) is not a byte-level split Engram knows (ByteLevel with its GPT-2 regex; Digits(individual_digits) + ByteLevel; Split with the Llama 3, Qwen2 or GPT-2 pattern + ByteLevel(use_regex: false))")
        }
        guard let p = value as? [String: Any], let type = p["type"] as? String else { throw fail() }
        var steps: [[String: Any]] = [p]
        if type == "Sequence" {
            guard let list = p["pretokenizers"] as? [[String: Any]] else { throw fail() }
            steps = list
        }
        let types = steps.map { $0["type"] as? String ?? "" }
        guard let byteLevel = steps.last, types.last == "ByteLevel" else { throw fail() }
        if byteLevel["add_prefix_space"] as? Bool == true {
            throw EngramError.unsupported(file: file, detail: "pre_tokenizer ByteLevel.add_prefix_space is true; Engram reads byte-level vocabularies without a prefix space")
        }
        let usesRegex = byteLevel["use_regex"] as? Bool ?? true
        switch types {
        case ["ByteLevel"] where usesRegex:
            return .gpt2
        case ["Digits", "ByteLevel"] where usesRegex && steps[0]["individual_digits"] as? Bool == true:
            return .smollm
        case ["Split", "ByteLevel"] where !usesRegex:
            let split = steps[0]
            guard let pattern = (split["pattern"] as? [String: Any])?["Regex"] as? String,
                  split["behavior"] as? String ?? "Isolated" == "Isolated",
                  split["invert"] as? Bool ?? false == false else { throw fail() }
            // smollm shares GPT-2's pattern, so GPT-2 is the first match.
            guard let kind = PreTokenizerKind.allCases.first(where: { $0.pattern == pattern }) else { throw fail() }
            return kind
        default:
            throw fail()
        }
    }
}

// MARK: writing

extension BPEVocabulary {
    /// The vocabulary as a Hugging Face tokenizer.json. Written by hand so that `vocab` keeps id order
    /// and the file diffs cleanly.
    public func tokenizerJSON() -> Data {
        var w = JSONText()
        w.raw("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
        var firstAdded = true
        for (i, kind) in kinds.enumerated() where kind == .control || kind == .userDefined {
            let strip = stripOptions[Int32(i)]
            w.raw(firstAdded ? "\n    " : ",\n    ")
            firstAdded = false
            w.raw("{\"id\": \(i), \"content\": ")
            w.string(tokens[i])
            w.raw(", \"single_word\": false, \"lstrip\": \(strip?.lstrip ?? false), \"rstrip\": \(strip?.rstrip ?? false), \"normalized\": false, \"special\": \(kind == .control)}")
        }
        w.raw(firstAdded ? "],\n" : "\n  ],\n")
        w.raw(normalizesNFC ? "  \"normalizer\": {\"type\": \"NFC\"},\n" : "  \"normalizer\": null,\n")
        w.raw("  \"pre_tokenizer\": ")
        let byteLevel = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": %@}"
        switch preTokenizer {
        case .gpt2:
            w.raw(byteLevel.replacingOccurrences(of: "%@", with: "true"))
        case .smollm:
            w.raw("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true}, ")
            w.raw(byteLevel.replacingOccurrences(of: "%@", with: "true") + "]}")
        case .llamaBPE, .qwen2:
            w.raw("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": ")
            w.string(preTokenizer.pattern)
            w.raw("}, \"behavior\": \"Isolated\", \"invert\": false}, ")
            w.raw(byteLevel.replacingOccurrences(of: "%@", with: "false") + "]}")
        }
        w.raw(",\n  \"post_processor\": ")
        if (addBOS && bos != nil) || (addEOS && eos != nil) {
            var single: [String] = []
            var table: [String] = []
            for (flag, id) in [(addBOS, bos), (addEOS, eos)] {
                guard flag, let id else { single.append(""); continue }
                var name = JSONText()
                name.string(tokens[Int(id)])
                single.append("{\"SpecialToken\": {\"id\": \(name.text), \"type_id\": 0}}")
                table.append("\(name.text): {\"id\": \(name.text), \"ids\": [\(id)], \"tokens\": [\(name.text)]}")
            }
            let a = "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}"
            let b = "{\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}"
            let singleItems = [single[0], a, single[1]].filter { !$0.isEmpty }
            let pairItems = [single[0], a, single[1], single[0].replacingOccurrences(of: "\"type_id\": 0", with: "\"type_id\": 1"), b,
                             single[1].replacingOccurrences(of: "\"type_id\": 0", with: "\"type_id\": 1")].filter { !$0.isEmpty }
            w.raw("{\"type\": \"TemplateProcessing\", \"single\": [\(singleItems.joined(separator: ", "))], \"pair\": [\(pairItems.joined(separator: ", "))], \"special_tokens\": {\(Array(Set(table)).sorted().joined(separator: ", "))}}")
        } else {
            w.raw("{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true}")
        }
        w.raw(",\n  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n")
        w.raw("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ")
        if let unknown { w.string(tokens[Int(unknown)]) } else { w.raw("null") }
        w.raw(",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n")
        w.raw("    \"ignore_merges\": \(ignoreMerges),\n    \"vocab\": {")
        // Added tokens are listed in the vocabulary too, as Hugging Face's own files do; a string that
        // occurs twice keeps its first id (JSON object keys are unique).
        var firstEntry = true
        var seen = Set<[UInt8]>()
        for (i, t) in tokens.enumerated() where seen.insert(Array(t.utf8)).inserted {
            w.raw(firstEntry ? "\n      " : ",\n      ")
            firstEntry = false
            w.string(t)
            w.raw(": \(i)")
        }
        w.raw("\n    },\n    \"merges\": [")
        // Pairs as two-element arrays whenever a token contains a space, since "a b" would be ambiguous.
        let asPairs = merges.contains { $0.0.contains(" ") || $0.1.contains(" ") }
        for (i, (a, b)) in merges.enumerated() {
            w.raw(i == 0 ? "\n      " : ",\n      ")
            if asPairs {
                w.raw("[")
                w.string(a)
                w.raw(", ")
                w.string(b)
                w.raw("]")
            } else {
                w.string("\(a) \(b)")
            }
        }
        w.raw("\n    ]\n  }\n}\n")
        return w.data
    }

    /// tokenizer_config.json: the special tokens by text, whether BOS/EOS are added, the chat template.
    public func tokenizerConfigJSON() -> Data {
        var w = JSONText()
        w.raw("{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"clean_up_tokenization_spaces\": false,\n")
        w.raw("  \"add_bos_token\": \(addBOS),\n  \"add_eos_token\": \(addEOS)")
        for (name, id) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unknown), ("pad_token", padding)] {
            guard let id else { continue }
            w.raw(",\n  \"\(name)\": ")
            w.string(tokens[Int(id)])
        }
        if let chatTemplateSource {
            w.raw(",\n  \"chat_template\": ")
            w.string(chatTemplateSource)
        }
        w.raw("\n}\n")
        return w.data
    }
}

/// Builds JSON text piece by piece, escaping strings as RFC 8259 asks. Bytes, not String appends:
/// a vocabulary file is a few megabytes.
struct JSONText {
    private(set) var bytes: [UInt8] = []

    var text: String { String(decoding: bytes, as: UTF8.self) }
    var data: Data { Data(bytes) }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func string(_ s: String) {
        bytes.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default:
                bytes.append(b) // UTF-8 passes through unescaped
            }
        }
        bytes.append(0x22)
    }
}
