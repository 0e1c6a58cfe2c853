import XCTest
import Engram

/// Tiny random models written as GGUF and as Hugging Face folders, loaded through ModelLoader, must give
/// the logits of the naive Hugging Face-convention reference in TinyModelReference.
final class TinyModelTests: XCTestCase {
    static let sequences: [[Int]] = [[1, 5, 9, 3, 96, 0, 42], [7], [10, 20, 30, 40, 50, 60, 70, 80, 90, 11, 12, 13]]
    static let tolerance = referenceTolerance

    func assertLogits(_ ck: Checkpoint, _ model: TinyModel, label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertReferenceLogits(ck, model, sequences: Self.sequences, label: label, file: file, line: line)
    }

    func checkBothFormats(_ model: TinyModel) throws {
        let tmp = TemporaryFolder()
        let folder = tmp.file("hf-\(model.kind)")
        try model.writeHuggingFace(to: folder)
        let gguf = tmp.file("\(model.kind).gguf")
        try model.writeGGUF(to: gguf)
        try assertLogits(try ModelLoader.checkpoint(folder), model, label: "\(model.kind) safetensors")
        try assertLogits(try ModelLoader.checkpoint(gguf), model, label: "\(model.kind) GGUF")
    }

    func testTinyLlamaWithGQAFromBothFormats() throws { try checkBothFormats(.llama()) }
    func testTinyQwen2WithBiasesFromBothFormats() throws { try checkBothFormats(.qwen2()) }
    func testTinyGPT2FromBothFormats() throws { try checkBothFormats(.gpt2()) }

    /// The reference confirms the logits were not trivially equal (e.g. all zero): different sequences differ.
    func testReferenceLogitsAreNotDegenerate() {
        let m = TinyModel.llama()
        let a = TinyModelReference.logits(m, tokens: [1, 2])[1], b = TinyModelReference.logits(m, tokens: [3, 2])[1]
        XCTAssertGreaterThan(zip(a, b).map { abs($0 - $1) }.max() ?? 0, 0.01)
        XCTAssertGreaterThan(a.map(abs).max() ?? 0, 0.1)
    }

    /// BF16 folders: every tensor stays BF16, the reordered ones too (LLaMA's Q/K rows, GPT-2's transposed
    /// Conv1D weights: 2-byte elements moved), and the logits match the reference.
    func testBF16SafetensorsAndReorderedTensors() throws {
        for (label, original) in [("llama", TinyModel.llama(seed: 11)), ("gpt2", TinyModel.gpt2(seed: 12))] {
            var model = original
            model.roundToBF16()
            let tmp = TemporaryFolder()
            try model.writeHuggingFace(to: tmp.file("bf16"), bf16: true)
            let ck = try ModelLoader.checkpoint(tmp.file("bf16"))
            XCTAssertEqual(Set(ck.tensors.values.map(\.dtype)), [.bf16], label)
            try assertLogits(ck, model, label: "\(label) bf16")
        }
    }

    func testShardedSafetensors() throws {
        let model = TinyModel.qwen2(seed: 5)
        let tmp = TemporaryFolder()
        try model.writeHuggingFace(to: tmp.file("sharded"), shards: 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("sharded/model.safetensors")))
        try assertLogits(try ModelLoader.checkpoint(tmp.file("sharded")), model, label: "qwen2 sharded")
    }

    /// A cached continuation gives the same logits as the reference on the whole sequence.
    func testCachedContinuationFromSafetensors() throws {
        let model = TinyModel.llama(seed: 4)
        let tmp = TemporaryFolder()
        try model.writeHuggingFace(to: tmp.file("m"))
        let lm = try ModelLoader.build(try ModelLoader.checkpoint(tmp.file("m")))
        let tokens = [4, 8, 15, 16, 23, 42]
        let cache = lm.makeCache()
        _ = try lm.forward(tokens[0..<4].map(Int32.init), cache: cache, logits: .none)
        let tail = try lm.forward(tokens[4...].map(Int32.init), cache: cache, logits: .all)
        let expected = TinyModelReference.logits(model, tokens: tokens)
        var worst = 0.0
        for (r, t) in [4, 5].enumerated() {
            for v in 0..<model.vocab { worst = max(worst, abs(Double(tail.row(r)[v]) - expected[t][v])) }
        }
        XCTAssertLessThan(worst, Self.tolerance)
    }

    /// Q8_0 weights in GGUF, then the same model converted to a Hugging Face folder (dequantized to
    /// F32, Q/K un-permuted): both match the reference computed on the dequantized values.
    func testQuantizedGGUFAndItsSafetensorsConversion() throws {
        var model = TinyModel.llama(seed: 9)
        model.quantizeQ8(["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                          "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"])
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("q8.gguf"))
        let ck = try ModelLoader.checkpoint(tmp.file("q8.gguf"))
        XCTAssertEqual(ck.tensors["blk.0.attn_q.weight"]?.dtype, .q8_0)
        try assertLogits(ck, model, label: "llama Q8_0 GGUF")

        try CheckpointConverter.convert(ck, to: .safetensors, out: tmp.file("hf"))
        let hf = try ModelLoader.checkpoint(tmp.file("hf"))
        XCTAssertEqual(hf.tensors["blk.0.ffn_down.weight"]?.dtype, .f32)
        try assertLogits(hf, model, label: "llama Q8_0 → safetensors")
        // Converting back keeps the quantized tensors quantized only in the source; the copy is F32.
        try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("copy.gguf"))
        let copy = try ModelLoader.checkpoint(tmp.file("copy.gguf"))
        XCTAssertEqual(copy.tensors["blk.0.attn_q.weight"]?.dtype, .q8_0)
        try assertLogits(copy, model, label: "llama Q8_0 GGUF copy")
    }

    /// GPT-2 and Qwen2 through GGUF → safetensors → load: transposition and naming reversed correctly.
    func testConvertedFoldersOfEachArchitecture() throws {
        for model in [TinyModel.gpt2(seed: 21), TinyModel.qwen2(seed: 22), TinyModel.llama(seed: 23)] {
            let tmp = TemporaryFolder()
            try model.writeGGUF(to: tmp.file("m.gguf"))
            try CheckpointConverter.convert(try ModelLoader.checkpoint(tmp.file("m.gguf")), to: .safetensors, out: tmp.file("hf"))
            try assertLogits(try ModelLoader.checkpoint(tmp.file("hf")), model, label: "\(model.kind) GGUF → safetensors")
            // And the safetensors on disk hold the Hugging Face layout itself, value for value.
            let st = try Safetensors.read(path: tmp.file("hf/model.safetensors"))
            for t in model.tensors {
                guard let e = st.entry(t.name) else { XCTFail("\(model.kind): \(t.name) not written"); continue }
                XCTAssertEqual(e.shape, t.shape, t.name)
                let values = try st.storedTensor(e).matrix().values
                XCTAssertEqual(values, t.values, "\(model.kind) \(t.name)")
            }
        }
    }
}
