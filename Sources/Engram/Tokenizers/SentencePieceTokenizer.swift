import CSentencePiece
import Foundation

/// SentencePiece vocabularies (LLaMA 1/2, Mistral, Gemma…) run by libsentencepiece: a tokenizer.model
/// file as it is, or a GGUF `llama` vocabulary rebuilt into the same ModelProto. Control tokens in the
/// text (`<s>`, `[INST]` in some vocabularies) are cut out first when asked; each run of text between
/// them is encoded on its own, with its own "▁" prefix, as llama.cpp does.
///
/// Spans are libsentencepiece's: when a character falls back to byte pieces, the last of them covers
/// the character and the others are empty; a separate "▁" dummy-prefix piece is empty too.
public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    private let handle: OpaquePointer
    public let model: SentencePieceModel
    public let file: String
    private let kinds: [TokenKind]
    private let specials: SpecialTokenMatcher
    private let endOfGeneration: Set<Int32>
    public let bos: Int32?
    public let eos: Int32?
    public let addsBOS: Bool
    public let addsEOS: Bool
    public let chatTemplateSource: String?
    public let chatTemplate: ChatTemplate?

    public var vocabularySize: Int { model.pieces.count }

    public var chatFormat: ChatFormat? {
        chatTemplate.map { ChatFormat(template: $0, source: chatTemplateSource, bosText: bos.flatMap(piece), eosText: eos.flatMap(piece)) }
    }

    /// Loads a serialized ModelProto. BOS/EOS default to the ids the proto names; tokenizer_config.json
    /// (when given) overrides them and says whether BOS is added (LLaMA's default: yes).
    public convenience init(modelProto data: Data, config: Data? = nil, file: String) throws {
        let model = try SentencePieceModel(serialized: data, file: file)
        func id(_ i: Int32) -> Int32? { i >= 0 && Int(i) < model.pieces.count ? i : nil }
        var bos = id(model.bosID), eos = id(model.eosID)
        var addBOS = true, addEOS = false
        var template: String?
        if let config {
            let configFile = (file as NSString).deletingLastPathComponent + "/tokenizer_config.json"
            let c = try BPEVocabulary.jsonObject(config, file: configFile)
            func lookup(_ key: String) -> Int32? {
                guard let text = BPEVocabulary.tokenText(c[key]) else { return nil }
                return model.pieces.firstIndex { $0.text == text }.map { Int32($0) }
            }
            bos = lookup("bos_token") ?? bos
            eos = lookup("eos_token") ?? eos
            if let b = c["add_bos_token"] as? Bool { addBOS = b }
            if let b = c["add_eos_token"] as? Bool { addEOS = b }
            template = BPEVocabulary.chatTemplate(c["chat_template"])
        }
        try self.init(model: model, serialized: data, bos: bos, eos: eos, addBOS: addBOS, addEOS: addEOS,
                      endOfTurn: [], chatTemplate: template, file: file)
    }

    /// Rebuilds a GGUF `llama` vocabulary (tokens, scores, token types) as a SentencePiece BPE model.
    public convenience init(gguf m: Metadata) throws {
        let model = try Self.model(gguf: m)
        func id(_ key: String) throws -> Int32? {
            guard m[key] != nil else { return nil }
            let v = try m.int(key)
            return v >= 0 && v < model.pieces.count ? Int32(v) : nil
        }
        try self.init(model: model, serialized: model.serialized(),
                      bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
                      addBOS: try BPEVocabulary.bool(m, "tokenizer.ggml.add_bos_token") ?? true,
                      addEOS: try BPEVocabulary.bool(m, "tokenizer.ggml.add_eos_token") ?? false,
                      endOfTurn: [try id("tokenizer.ggml.eot_token_id"), try id("tokenizer.ggml.eom_token_id")].compactMap { $0 },
                      chatTemplate: m["tokenizer.chat_template"]?.string, file: m.file)
    }

    private init(model: SentencePieceModel, serialized: Data, bos: Int32?, eos: Int32?, addBOS: Bool, addEOS: Bool,
                 endOfTurn: [Int32], chatTemplate: String?, file: String) throws {
        var message = [CChar](repeating: 0, count: 512)
        let loaded = serialized.withUnsafeBytes { raw in
            spm_load_bytes(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count, &message, message.count)
        }
        guard let loaded else {
            let why = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw EngramError.format(file: file, detail: "libsentencepiece rejects the vocabulary: \(why)")
        }
        handle = loaded
        self.model = model
        self.file = file
        kinds = model.pieces.map(\.kind)
        self.bos = bos
        self.eos = eos
        addsBOS = addBOS && bos != nil
        addsEOS = addEOS && eos != nil
        chatTemplateSource = chatTemplate
        self.chatTemplate = chatTemplate.flatMap(ChatFormat.detect)
        // libsentencepiece splits user-defined pieces itself; control pieces never come out of its
        // encoder, so those are the ones to cut out of the text first.
        var special: [SpecialToken] = []
        var stops = Set(endOfTurn)
        if let eos { stops.insert(eos) }
        for (i, p) in model.pieces.enumerated() where p.kind == .control {
            special.append(SpecialToken(text: Array(p.text.utf8), id: Int32(i), alwaysParsed: false))
            if ChatFormat.endOfTurnMarkers.contains(p.text) { stops.insert(Int32(i)) }
        }
        specials = SpecialTokenMatcher(special)
        endOfGeneration = stops
    }

    deinit { spm_free(handle) }

    static func model(gguf m: Metadata) throws -> SentencePieceModel {
        let file = m.file
        let tokens = try m.stringArray("tokenizer.ggml.tokens")
        guard !tokens.isEmpty else { throw EngramError.metadata(file: file, key: "tokenizer.ggml.tokens", detail: "the vocabulary is empty") }
        let scores = m["tokenizer.ggml.scores"] == nil ? [Float](repeating: 0, count: tokens.count) : try m.floatArray("tokenizer.ggml.scores")
        guard scores.count == tokens.count else {
            throw EngramError.metadata(file: file, key: "tokenizer.ggml.scores", detail: "has \(scores.count) entries for \(tokens.count) tokens")
        }
        var kinds: [TokenKind]
        if m["tokenizer.ggml.token_type"] != nil {
            let types = try m.intArray("tokenizer.ggml.token_type")
            guard types.count == tokens.count else {
                throw EngramError.metadata(file: file, key: "tokenizer.ggml.token_type", detail: "has \(types.count) entries for \(tokens.count) tokens")
            }
            kinds = types.map(TokenKind.init(gguf:))
        } else {
            // Without types, byte pieces are known by their spelling.
            kinds = tokens.map { Self.isBytePiece($0) ? .byte : .normal }
        }
        var model = SentencePieceModel(pieces: zip(tokens, zip(scores, kinds)).map { .init(text: $0, score: $1.0, kind: $1.1) })
        model.algorithm = .bpe
        model.byteFallback = kinds.contains(.byte)
        // libsentencepiece needs exactly one unknown piece; the GGUF key names it when types do not.
        if let unk = m["tokenizer.ggml.unknown_token_id"]?.int, unk >= 0, unk < tokens.count {
            for i in model.pieces.indices where model.pieces[i].kind == .unknown { model.pieces[i].kind = .normal }
            model.pieces[unk].kind = .unknown
        }
        guard let unk = model.pieces.firstIndex(where: { $0.kind == .unknown }) else {
            throw EngramError.metadata(file: file, key: "tokenizer.ggml.unknown_token_id", detail: "a SentencePiece vocabulary needs an unknown token; none is typed or named")
        }
        model.unknownID = Int32(unk)
        model.bosID = Int32(m["tokenizer.ggml.bos_token_id"]?.int ?? -1)
        model.eosID = Int32(m["tokenizer.ggml.eos_token_id"]?.int ?? -1)
        model.padID = Int32(m["tokenizer.ggml.padding_token_id"]?.int ?? -1)
        model.addDummyPrefix = try BPEVocabulary.bool(m, "tokenizer.ggml.add_space_prefix") ?? true
        model.removeExtraWhitespaces = try BPEVocabulary.bool(m, "tokenizer.ggml.remove_extra_whitespaces") ?? false
        model.escapeWhitespaces = true
        model.normalizerName = "identity"
        return model
    }

    static func isBytePiece(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return false } // <0x..>
        return u[3...4].allSatisfy { (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }
    }

    // MARK: Tokenizer

    public func piece(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < model.pieces.count else { return nil }
        return model.pieces[Int(id)].text
    }

    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < model.pieces.count else { return [] }
        let text = model.pieces[Int(id)].text
        if kinds[Int(id)] == .byte, Self.isBytePiece(text), let byte = UInt8(text.dropFirst(3).prefix(2), radix: 16) { return [byte] }
        return Array(text.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
    }

    public func id(ofPiece piece: String) -> Int32? {
        let bytes = Array(piece.utf8)
        let id = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { spm_piece_to_id(handle, $0.baseAddress, $0.count) }
        }
        // libsentencepiece answers unknown text with the unknown id; only an exact entry counts.
        guard id >= 0, Int(id) < model.pieces.count, model.pieces[Int(id)].text.utf8.elementsEqual(piece.utf8) else { return nil }
        return id
    }

    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }

    public func encodeWithOffsets(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [TokenSpan] {
        let utf8 = Array(text.utf8)
        var out: [TokenSpan] = []
        if addSpecial, addsBOS, let bos { out.append(TokenSpan(id: bos, bytes: 0..<0)) }
        utf8.withUnsafeBufferPointer { bytes in
            for segment in specials.segments(bytes, parseSpecial: parseSpecial) {
                switch segment {
                case let .token(id, range): out.append(TokenSpan(id: id, bytes: range))
                case let .text(range): encodeText(bytes, range, into: &out)
                }
            }
        }
        if addSpecial, addsEOS, let eos { out.append(TokenSpan(id: eos, bytes: utf8.count..<utf8.count)) }
        return out
    }

    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [TokenSpan]) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        let text = UnsafeRawPointer(base + range.lowerBound).assumingMemoryBound(to: CChar.self)
        // Every input byte can become up to three byte pieces (an escaped space), plus the dummy prefix.
        var capacity = 3 * range.count + 4
        while true {
            var ids = [Int32](repeating: 0, count: capacity)
            var begins = [UInt32](repeating: 0, count: capacity)
            var ends = [UInt32](repeating: 0, count: capacity)
            let n = Int(spm_encode_spans(handle, text, range.count, &ids, &begins, &ends, Int32(capacity)))
            if n > capacity { capacity = n; continue }
            for i in 0..<max(n, 0) {
                let lo = range.lowerBound + min(Int(begins[i]), range.count)
                let hi = range.lowerBound + min(max(Int(ends[i]), Int(begins[i])), range.count)
                out.append(TokenSpan(id: ids[i], bytes: lo..<hi))
            }
            return
        }
    }

    public func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        var text = ""
        var run: [Int32] = []
        func flush() {
            guard !run.isEmpty else { return }
            text += decodeRun(run)
            run.removeAll(keepingCapacity: true)
        }
        for id in ids {
            guard id >= 0, Int(id) < kinds.count else { continue }
            if kinds[Int(id)] == .control {
                // libsentencepiece renders control pieces as nothing; we show them unless told not to.
                flush()
                if !skipSpecial { text += model.pieces[Int(id)].text }
            } else {
                run.append(id)
            }
        }
        flush()
        return text
    }

    private func decodeRun(_ ids: [Int32]) -> String {
        var capacity = ids.count * 8 + 16
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            let n = Int(spm_decode(handle, ids, Int32(ids.count), &buffer, Int64(capacity)))
            if n < 0 { return "" }
            if n > capacity { capacity = n; continue }
            return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
