import Foundation

/// The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto) that a LLaMA-style vocabulary
/// needs, with a protobuf encoder and decoder small enough to read in one sitting. GGUF `llama`
/// vocabularies are turned into this proto and handed to libsentencepiece; tokenizer.model files are
/// read through it for conversion to GGUF.
public struct SentencePieceModel: Sendable, Equatable {
    public struct Piece: Sendable, Equatable {
        public var text: String
        public var score: Float
        public var kind: TokenKind
        public init(text: String, score: Float, kind: TokenKind) {
            self.text = text
            self.score = score
            self.kind = kind
        }
    }

    /// TrainerSpec.ModelType.
    public enum Algorithm: Int, Sendable { case unigram = 1, bpe = 2, word = 3, char = 4 }

    public var pieces: [Piece]
    public var algorithm: Algorithm = .bpe
    public var byteFallback = false
    /// NormalizerSpec: LLaMA prefixes "▁" to the text, keeps runs of spaces, writes spaces as "▁".
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = false
    public var escapeWhitespaces = true
    /// The normalization name ("identity", "nmt_nfkc", …) and its compiled table, kept as read so that a
    /// file re-encoded from this value normalizes as the original did.
    public var normalizerName = "identity"
    public var precompiledCharsmap = Data()
    public var unknownID: Int32 = 0
    public var bosID: Int32 = 1
    public var eosID: Int32 = 2
    public var padID: Int32 = -1

    public init(pieces: [Piece]) { self.pieces = pieces }

    // Field numbers of sentencepiece_model.proto.
    private enum Field {
        static let pieces = 1, trainerSpec = 2, normalizerSpec = 3
        static let pieceText = 1, pieceScore = 2, pieceType = 3
        static let modelType = 3, vocabSize = 4, byteFallback = 35
        static let unkID = 40, bosID = 41, eosID = 42, padID = 43
        static let unkPiece = 45, bosPiece = 46, eosPiece = 47, padPiece = 48
        static let normName = 1, charsmap = 2, dummyPrefix = 3, removeExtraWhitespaces = 4, escapeWhitespaces = 5
    }

    public func serialized() -> Data {
        var model = ProtobufWriter()
        for p in pieces {
            var piece = ProtobufWriter()
            piece.string(Field.pieceText, p.text)
            piece.float(Field.pieceScore, p.score)
            piece.varint(Field.pieceType, UInt64(p.kind.rawValue))
            model.message(Field.pieces, piece)
        }
        var trainer = ProtobufWriter()
        trainer.varint(Field.modelType, UInt64(algorithm.rawValue))
        trainer.varint(Field.vocabSize, UInt64(pieces.count))
        trainer.bool(Field.byteFallback, byteFallback)
        // libsentencepiece finds BOS/EOS/PAD by piece text, so the texts must name our ids.
        for (idField, pieceField, id) in [(Field.unkID, Field.unkPiece, unknownID), (Field.bosID, Field.bosPiece, bosID),
                                          (Field.eosID, Field.eosPiece, eosID), (Field.padID, Field.padPiece, padID)] {
            trainer.varint(idField, UInt64(bitPattern: Int64(id)))
            if id >= 0, Int(id) < pieces.count { trainer.string(pieceField, pieces[Int(id)].text) }
        }
        model.message(Field.trainerSpec, trainer)
        var normalizer = ProtobufWriter()
        normalizer.string(Field.normName, normalizerName)
        if !precompiledCharsmap.isEmpty { normalizer.bytes(Field.charsmap, precompiledCharsmap) }
        normalizer.bool(Field.dummyPrefix, addDummyPrefix)
        normalizer.bool(Field.removeExtraWhitespaces, removeExtraWhitespaces)
        normalizer.bool(Field.escapeWhitespaces, escapeWhitespaces)
        model.message(Field.normalizerSpec, normalizer)
        return model.data
    }

    /// Reads a serialized ModelProto (a tokenizer.model file).
    public init(serialized data: Data, file: String) throws {
        var pieces: [Piece] = []
        var trainerBytes = Data(), normalizerBytes = Data()
        try ProtobufReader.fields(data, file: file, context: "ModelProto") { field, value in
            switch (field, value) {
            case let (Field.pieces, .bytes(b)):
                var piece = Piece(text: "", score: 0, kind: .normal)
                try ProtobufReader.fields(b, file: file, context: "ModelProto.pieces[\(pieces.count)]") { f, v in
                    switch (f, v) {
                    case let (Field.pieceText, .bytes(t)): piece.text = String(decoding: t, as: UTF8.self)
                    case let (Field.pieceScore, .fixed32(bits)): piece.score = Float(bitPattern: bits)
                    case let (Field.pieceType, .varint(t)): piece.kind = TokenKind(gguf: Int(truncatingIfNeeded: t))
                    default: break
                    }
                }
                pieces.append(piece)
            case let (Field.trainerSpec, .bytes(b)): trainerBytes = b
            case let (Field.normalizerSpec, .bytes(b)): normalizerBytes = b
            default: break
            }
        }
        guard !pieces.isEmpty else {
            throw EngramError.format(file: file, detail: "ModelProto has no pieces: not a SentencePiece tokenizer.model")
        }
        self.init(pieces: pieces)
        // proto2 defaults apply to fields the file leaves out.
        algorithm = .unigram
        unknownID = 0; bosID = 1; eosID = 2; padID = -1
        try ProtobufReader.fields(trainerBytes, file: file, context: "ModelProto.trainer_spec") { f, v in
            guard case let .varint(x) = v else { return }
            let signed = Int32(truncatingIfNeeded: Int64(bitPattern: x))
            switch f {
            case Field.modelType: algorithm = Algorithm(rawValue: Int(x)) ?? .unigram
            case Field.byteFallback: byteFallback = x != 0
            case Field.unkID: unknownID = signed
            case Field.bosID: bosID = signed
            case Field.eosID: eosID = signed
            case Field.padID: padID = signed
            default: break
            }
        }
        addDummyPrefix = true; removeExtraWhitespaces = true; escapeWhitespaces = true
        normalizerName = ""
        try ProtobufReader.fields(normalizerBytes, file: file, context: "ModelProto.normalizer_spec") { f, v in
            switch (f, v) {
            case let (Field.normName, .bytes(b)): normalizerName = String(decoding: b, as: UTF8.self)
            case let (Field.charsmap, .bytes(b)): precompiledCharsmap = b
            case let (Field.dummyPrefix, .varint(x)): addDummyPrefix = x != 0
            case let (Field.removeExtraWhitespaces, .varint(x)): removeExtraWhitespaces = x != 0
            case let (Field.escapeWhitespaces, .varint(x)): escapeWhitespaces = x != 0
            default: break
            }
        }
    }
}

/// Protobuf wire format, writing side: tags are (field << 3 | wire type), integers are varints.
struct ProtobufWriter {
    var data = Data()

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            data.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        data.append(UInt8(v))
    }

    private mutating func tag(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    mutating func varint(_ field: Int, _ value: UInt64) {
        tag(field, 0)
        rawVarint(value)
    }

    mutating func bool(_ field: Int, _ value: Bool) { varint(field, value ? 1 : 0) }

    mutating func float(_ field: Int, _ value: Float) {
        tag(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ value: Data) {
        tag(field, 2)
        rawVarint(UInt64(value.count))
        data.append(value)
    }

    mutating func string(_ field: Int, _ value: String) { bytes(field, Data(value.utf8)) }
    mutating func message(_ field: Int, _ value: ProtobufWriter) { bytes(field, value.data) }
}

/// Protobuf wire format, reading side: walks the fields of one message, bounds-checked.
enum ProtobufReader {
    enum Value {
        case varint(UInt64), fixed64(UInt64), bytes(Data), fixed32(UInt32)
    }

    static func fields(_ data: Data, file: String, context: String, _ visit: (Int, Value) throws -> Void) throws {
        let bytes = [UInt8](data)
        var i = 0
        func fail(_ why: String) -> EngramError {
            .format(file: file, detail: "\(context): \(why) at byte \(i) — not a valid SentencePiece model")
        }
        func readVarint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.count else { throw fail("truncated varint") }
                let b = bytes[i]
                i += 1
                guard shift < 64 else { throw fail("varint longer than 10 bytes") }
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return result }
                shift += 7
            }
        }
        while i < bytes.count {
            let key = try readVarint()
            let field = Int(truncatingIfNeeded: key >> 3)
            switch key & 7 {
            case 0:
                try visit(field, .varint(try readVarint()))
            case 1:
                guard i + 8 <= bytes.count else { throw fail("truncated fixed64") }
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
                i += 8
                try visit(field, .fixed64(v))
            case 2:
                let length = try readVarint()
                guard length <= UInt64(bytes.count - i) else { throw fail("length \(length) runs past the end") }
                let start = i
                i += Int(length)
                try visit(field, .bytes(Data(bytes[start..<i])))
            case 5:
                guard i + 4 <= bytes.count else { throw fail("truncated fixed32") }
                var v: UInt32 = 0
                for k in 0..<4 { v |= UInt32(bytes[i + k]) << (8 * UInt32(k)) }
                i += 4
                try visit(field, .fixed32(v))
            default:
                throw fail("wire type \(key & 7) is not used by SentencePiece")
            }
        }
    }
}
