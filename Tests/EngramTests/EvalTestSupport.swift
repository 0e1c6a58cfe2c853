import Foundation
import XCTest
@testable import Engram

/// A tiny tokenizer for tests: id 0 is BOS, 1 is EOS, then one token per printable ASCII character and
/// newline, then the given multi-character pieces. Encoding takes the longest piece at each position, so
/// a piece such as " is P" merges across a prompt/target boundary the way BPE can.
final class TestTokenizer: Tokenizer, @unchecked Sendable {
    let pieces: [String]
    let lookup: [String: Int32]
    let addsBOS: Bool

    init(pieces extra: [String], addsBOS: Bool = true) {
        var all = ["<s>", "</s>", "\n"]
        for v in 32...126 { all.append(String(UnicodeScalar(UInt8(v)))) }
        for p in extra where !all.contains(p) { all.append(p) }
        pieces = all
        var lookup: [String: Int32] = [:]
        for (i, p) in all.enumerated() { lookup[p] = Int32(i) }
        self.lookup = lookup
        self.addsBOS = addsBOS
    }

    var vocabularySize: Int { pieces.count }
    var bos: Int32? { 0 }
    var eos: Int32? { 1 }
    var chatTemplate: ChatTemplate? { nil }

    func encodeWithOffsets(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [TokenSpan] {
        var out: [TokenSpan] = addSpecial && addsBOS ? [TokenSpan(id: 0, bytes: 0..<0)] : []
        let chars = Array(text)
        var i = 0, byte = 0
        let longest = pieces.map(\.count).max() ?? 1
        while i < chars.count {
            var taken = 1
            var id = lookup["?"]!
            for len in stride(from: min(longest, chars.count - i), through: 1, by: -1) {
                if let found = lookup[String(chars[i..<(i + len)])] {
                    taken = len
                    id = found
                    break
                }
            }
            let bytes = String(chars[i..<(i + taken)]).utf8.count
            out.append(TokenSpan(id: id, bytes: byte..<(byte + bytes)))
            byte += bytes
            i += taken
        }
        return out
    }

    func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        ids.map { id -> String in
            guard id >= 0, Int(id) < pieces.count else { return "" }
            if skipSpecial && id < 2 { return "" }
            return pieces[Int(id)]
        }.joined()
    }

    func piece(_ id: Int32) -> String? { id >= 0 && Int(id) < pieces.count ? pieces[Int(id)] : nil }
    func bytes(of id: Int32) -> [UInt8] { Array((piece(id) ?? "").utf8) }
    func id(ofPiece piece: String) -> Int32? { lookup[piece] }
    func isEndOfGeneration(_ id: Int32) -> Bool { id == 1 }

    func ids(_ text: String) -> [Int32] { encode(text, addSpecial: false) }
}

/// A language model whose next-token logits depend only on the current token: row `t` of `table`.
/// Teacher-forced probabilities are then known in closed form, which the metric tests check against.
/// `bias` (added to every row) lets a test "edit" the model through the editable weight.
final class BigramModel: LanguageModel {
    let config: ModelConfig
    var table: [[Float]]
    let down: Matrix
    let outputWeight: Matrix
    var tokenEmbedding: Matrix { outputWeight }
    private(set) var forwardCalls = 0
    private(set) var largestBatch = 0

    init(vocab: Int, table: [[Float]]) {
        config = ModelConfig(architecture: .llama, layers: 1, hidden: 2, intermediate: vocab, heads: 1, kvHeads: 1, headDim: 2,
                             vocab: vocab, contextLength: 4096, tiedEmbeddings: true)
        self.table = table
        down = Matrix(rows: 2, cols: vocab)
        outputWeight = Matrix(rows: vocab, cols: 2)
    }

    /// Every token prefers `next[t]` with logit `strength` (others 0); unlisted tokens are uniform.
    convenience init(vocab: Int, next: [Int32: Int32], strength: Float = 2) {
        var table = [[Float]](repeating: [Float](repeating: 0, count: vocab), count: vocab)
        for (t, n) in next { table[Int(t)][Int(n)] = strength }
        self.init(vocab: vocab, table: table)
    }

    func weight(_ w: EditableWeight) -> Matrix { down }
    func readWeight(_ w: EditableWeight) -> Matrix { down }
    func finalNorm(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {}

    func forward(_ batch: [SequenceInput], hooks: Hooks?, logits: LogitRows) throws -> [Matrix] {
        forwardCalls += 1
        largestBatch = max(largestBatch, batch.count)
        return batch.map { item in
            item.cache.count += item.tokens.count
            let rows: [Int32]
            switch logits {
            case .none: rows = []
            case .last: rows = item.tokens.last.map { [$0] } ?? []
            case .all: rows = item.tokens
            }
            let m = Matrix(rows: rows.count, cols: config.vocab)
            for (r, t) in rows.enumerated() {
                for v in 0..<config.vocab {
                    // Row 0 of the editable weight acts as a logit bias, so weight patches change predictions.
                    m.pointer[r * config.vocab + v] = table[Int(t)][v] + down.pointer[v]
                }
            }
            return m
        }
    }

    /// log P(next | current) in closed form.
    func logProb(_ next: Int32, after current: Int32) -> Double {
        let row = (0..<config.vocab).map { Double(table[Int(current)][$0] + down.pointer[$0]) }
        let z = log(row.map { exp($0) }.reduce(0, +))
        return row[Int(next)] - z
    }

    func argmax(after current: Int32) -> Int32 {
        let row = (0..<config.vocab).map { table[Int(current)][$0] + down.pointer[$0] }
        var best = 0
        for i in 1..<row.count where row[i] > row[best] { best = i }
        return Int32(best)
    }
}

enum TinyModels {
    /// A 2-layer LLaMA with seeded random weights (float32, built in memory).
    static func llama(vocab: Int, seed: UInt64 = 7) throws -> LanguageModel {
        let config = ModelConfig(architecture: .llama, layers: 2, hidden: 16, intermediate: 32, heads: 2, kvHeads: 1,
                                 vocab: vocab, contextLength: 512, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true)
        var rng = SplitMix64(seed: seed)
        let ck = Checkpoint(location: "tiny-llama", format: .gguf, metadata: Metadata(file: "tiny-llama"))
        func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
            let count = shape.reduce(1, *)
            let buffer = FloatBuffer(count: count)
            for i in 0..<count { buffer.pointer[i] = offset + scale * Float(rng.nextUnit() * 2 - 1) }
            ck.add(StoredTensor(name: name, dtype: .f32, shape: shape, data: UnsafeRawPointer(buffer.pointer),
                                byteCount: count * 4, file: "tiny-llama", owner: buffer))
        }
        let d = config.hidden, m = config.intermediate
        add("token_embd.weight", [vocab, d], scale: 1)
        for l in 0..<config.layers {
            let p = "blk.\(l)."
            add(p + "attn_norm.weight", [d], scale: 0.1, offset: 1)
            add(p + "attn_q.weight", [config.qDim, d], scale: 0.3)
            add(p + "attn_k.weight", [config.kvDim, d], scale: 0.3)
            add(p + "attn_v.weight", [config.kvDim, d], scale: 0.3)
            add(p + "attn_output.weight", [d, config.qDim], scale: 0.3)
            add(p + "ffn_norm.weight", [d], scale: 0.1, offset: 1)
            add(p + "ffn_gate.weight", [m, d], scale: 0.3)
            add(p + "ffn_up.weight", [m, d], scale: 0.3)
            add(p + "ffn_down.weight", [d, m], scale: 0.3)
        }
        add("output_norm.weight", [d], scale: 0.1, offset: 1)
        return try Llama(config: config, checkpoint: ck)
    }
}

/// Bit patterns of a matrix, for exact comparisons.
func bits(_ m: Matrix) -> [UInt32] { m.values.map(\.bitPattern) }

func fixture(_ json: String, name: String = "test.json", format: EditFileFormat? = nil) throws -> EditFile {
    try EditFile.parse(Data(json.utf8), name: name, format: format)
}
