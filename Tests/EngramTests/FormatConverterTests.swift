import XCTest
import Engram

final class FormatConverterTests: XCTestCase {
    func bytes(_ t: StoredTensor) -> Data { Data(bytes: t.data, count: t.byteCount) }

    /// GGUF → safetensors folder → GGUF: every F32 tensor bit-exact, every metadata key kept (the
    /// tokenizer keys travel as extraMetadata, as the integrator passes them).
    func testGGUFToSafetensorsToGGUFIsBitExact() throws {
        let model = TinyModel.llama(seed: 31)
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("a.gguf"))
        let original = try ModelLoader.checkpoint(tmp.file("a.gguf"))
        try CheckpointConverter.convert(original, to: .safetensors, out: tmp.file("hf"))

        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.file("hf/config.json")))) as? [String: Any])
        XCTAssertEqual(config["model_type"] as? String, "llama")
        XCTAssertEqual(config["num_key_value_heads"] as? Int, 2)
        XCTAssertEqual(config["num_attention_heads"] as? Int, 4)
        XCTAssertEqual(config["hidden_size"] as? Int, 64)
        XCTAssertEqual(config["intermediate_size"] as? Int, 128)
        XCTAssertEqual(config["vocab_size"] as? Int, 97)
        XCTAssertEqual(config["tie_word_embeddings"] as? Bool, false)
        XCTAssertEqual(config["rms_norm_eps"] as? Double, 1e-5)
        XCTAssertEqual(config["bos_token_id"] as? Int, 1)

        let hf = try ModelLoader.checkpoint(tmp.file("hf"))
        let keep = original.metadata.keys.filter { $0.hasPrefix("tokenizer.") || $0 == "general.name" }
        try CheckpointConverter.convert(hf, to: .gguf, out: tmp.file("b.gguf"),
                                        extraMetadata: keep.map { ($0, original.metadata[$0]!) })
        let back = try ModelLoader.checkpoint(tmp.file("b.gguf"))
        XCTAssertEqual(Set(back.tensorNames), Set(original.tensorNames))
        for name in original.tensorNames {
            let a = try original.tensor(name), b = try back.tensor(name)
            XCTAssertEqual(b.dtype, .f32, name)
            XCTAssertEqual(b.shape, a.shape, name)
            XCTAssertEqual(bytes(b), bytes(a), "\(name) bytes")
        }
        for key in original.metadata.keys {
            XCTAssertEqual(back.metadata[key], original.metadata[key], key)
        }
        try assertReferenceLogits(back, model, label: "round trip")
    }

    /// Hugging Face folder → GGUF: canonical names, llama.cpp Q/K order, config keys, extra tokenizer keys.
    func testSafetensorsToGGUF() throws {
        let model = TinyModel.llama(seed: 32)
        let tmp = TemporaryFolder()
        try model.writeHuggingFace(to: tmp.file("hf"), extraFiles: ["tokenizer.json": "{\"tok\": 1}"])
        let hf = try ModelLoader.checkpoint(tmp.file("hf"))
        XCTAssertEqual(hf.sidecars["tokenizer.json"], Data("{\"tok\": 1}".utf8))
        try CheckpointConverter.convert(hf, to: .gguf, out: tmp.file("m.gguf"),
                                        extraMetadata: [("tokenizer.ggml.model", .string("gpt2")), ("llama.vocab_size", .uint32(97))])
        let g = try GGUFReader.read(path: tmp.file("m.gguf"))
        XCTAssertEqual(g.metadata["tokenizer.ggml.model"], .string("gpt2"))
        XCTAssertEqual(try g.metadata.int("llama.attention.head_count_kv"), 2)
        XCTAssertEqual(try g.metadata.float("llama.rope.freq_base"), 10000)
        // The GGUF holds exactly what the test's own canonical conversion computes.
        for t in model.canonicalTensors() {
            XCTAssertEqual(try g.tensor(t.name).shape, t.shape, t.name)
            XCTAssertEqual(try g.tensor(t.name).matrix().values, t.values, t.name)
        }
        try assertReferenceLogits(g, model, label: "safetensors → GGUF")
    }

    /// Edit a quantized GGUF, write the edited checkpoint and a patch that keeps the originals, then
    /// revert from the patch file: the edited weight comes back as the same Q8_0 bytes.
    func testRevertingAnEditedFileRestoresTheQuantizedOriginal() throws {
        var tiny = TinyModel.llama(seed: 35)
        tiny.quantizeQ8(["model.layers.1.mlp.down_proj.weight"])
        let tmp = TemporaryFolder()
        try tiny.writeGGUF(to: tmp.file("base.gguf"))
        let base = try ModelLoader.checkpoint(tmp.file("base.gguf"))
        let model = try ModelLoader.build(base)
        var rng = SeededRandom(seed: 7)
        var patch = EditPatch(method: "test", requests: [], deltas: [
            WeightDelta(weight: .mlpDown(1), change: .lowRank(r: Matrix(rows: 1, cols: 64, values: rng.values(64, scale: 0.1)),
                                                              u: Matrix(rows: 1, cols: 128, values: rng.values(128, scale: 0.1)))),
        ])
        try patch.keepOriginals(from: base)
        XCTAssertEqual(patch.originals.map(\.dtype), [.q8_0])
        try patch.write(to: tmp.file("edit.patch"))
        let applied = try patch.apply(to: model)
        try CheckpointConverter.convert(base, to: .gguf, out: tmp.file("edited.gguf"), replacing: ["blk.1.ffn_down.weight": model.weight(.mlpDown(1))])
        try applied.revert()

        let loaded = try EditPatch.read(tmp.file("edit.patch"))
        XCTAssertEqual(loaded.originals, patch.originals)
        var restoring: [String: StoredOriginal] = [:]
        for o in loaded.originals { restoring[o.weight.canonicalTensorName] = o }
        let edited = try ModelLoader.checkpoint(tmp.file("edited.gguf"))
        XCTAssertEqual(try edited.tensor("blk.1.ffn_down.weight").dtype, .f32)
        try CheckpointConverter.convert(edited, to: .gguf, out: tmp.file("reverted.gguf"), restoring: restoring)
        let reverted = try ModelLoader.checkpoint(tmp.file("reverted.gguf"))
        for name in base.tensorNames {
            XCTAssertEqual(try reverted.tensor(name).dtype, try base.tensor(name).dtype, name)
            XCTAssertEqual(bytes(try reverted.tensor(name)), bytes(try base.tensor(name)), name)
        }
        // Into safetensors the quantized original becomes the values the base model computed with.
        try CheckpointConverter.convert(edited, to: .safetensors, out: tmp.file("reverted-hf"), restoring: restoring)
        let st = try Safetensors.read(path: tmp.file("reverted-hf/model.safetensors"))
        let down = try st.storedTensor(XCTUnwrap(st.entry("model.layers.1.mlp.down_proj.weight"))).matrix().values
        XCTAssertEqual(down, try base.tensor("blk.1.ffn_down.weight").matrix().values)
    }

    /// An editor's output: replaced tensors written from floats, the rest copied byte for byte
    /// (quantized stay quantized in GGUF).
    func testReplacingTensors() throws {
        var model = TinyModel.llama(seed: 33)
        model.quantizeQ8(["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight",
                          "model.layers.0.self_attn.q_proj.weight"])
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("q.gguf"))
        let ck = try ModelLoader.checkpoint(tmp.file("q.gguf"))
        var rng = SeededRandom(seed: 99)
        let edited = Matrix(rows: 64, cols: 128, values: rng.values(64 * 128, scale: 0.1))
        let editedQ = Matrix(rows: 64, cols: 64, values: rng.values(64 * 64, scale: 0.1))
        let replacing = ["blk.0.ffn_down.weight": edited, "blk.0.attn_q.weight": editedQ]

        try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("edited.gguf"), replacing: replacing)
        let out = try GGUFReader.read(path: tmp.file("edited.gguf"))
        XCTAssertEqual(try out.tensor("blk.0.ffn_down.weight").dtype, .f32, "a replaced quantized tensor becomes F32")
        XCTAssertEqual(try out.tensor("blk.0.ffn_down.weight").matrix().values, edited.values)
        XCTAssertEqual(try out.tensor("blk.0.attn_q.weight").matrix().values, editedQ.values)
        XCTAssertEqual(try out.tensor("blk.1.ffn_down.weight").dtype, .q8_0)
        XCTAssertEqual(bytes(try out.tensor("blk.1.ffn_down.weight")), bytes(try ck.tensor("blk.1.ffn_down.weight")))
        for name in ck.tensorNames where replacing[name] == nil {
            XCTAssertEqual(bytes(try out.tensor(name)), bytes(try ck.tensor(name)), name)
        }

        // To safetensors the replacement goes through the same un-permutation as any Q weight.
        try CheckpointConverter.convert(ck, to: .safetensors, out: tmp.file("edited-hf"), replacing: replacing)
        let st = try Safetensors.read(path: tmp.file("edited-hf/model.safetensors"))
        let down = try st.storedTensor(XCTUnwrap(st.entry("model.layers.0.mlp.down_proj.weight"))).matrix().values
        XCTAssertEqual(down, edited.values)
        let q = try st.storedTensor(XCTUnwrap(st.entry("model.layers.0.self_attn.q_proj.weight"))).matrix().values
        let sources = TinyModel.ggufRowSources(rows: 64, heads: 4)
        for (ggufRow, hfRow) in sources.enumerated() {
            XCTAssertEqual(Array(q[(hfRow * 64)..<((hfRow + 1) * 64)]), Array(editedQ.values[(ggufRow * 64)..<((ggufRow + 1) * 64)]))
        }

        assertEngramError(["blk.9.ffn_down.weight", "no such tensor"]) {
            try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("x.gguf"), replacing: ["blk.9.ffn_down.weight": edited])
        }
        assertEngramError(["blk.0.ffn_up.weight", "shape"]) {
            try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("x.gguf"), replacing: ["blk.0.ffn_up.weight": edited])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("x.gguf")))
    }

    func testOutputTypes() throws {
        let model = TinyModel.gpt2(seed: 34)
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("g.gguf"))
        let ck = try ModelLoader.checkpoint(tmp.file("g.gguf"))
        try CheckpointConverter.convert(ck, to: .safetensors, out: tmp.file("f16"), dtype: .f16)
        let st = try Safetensors.read(path: tmp.file("f16/model.safetensors"))
        XCTAssertEqual(Set(st.entries.map(\.dtypeName)), ["F16"])
        XCTAssertEqual(st.metadata["format"], "pt")
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.file("f16/config.json")))) as? [String: Any])
        XCTAssertEqual(config["torch_dtype"] as? String, "float16")
        XCTAssertEqual(config["n_embd"] as? Int, 64)
        let fc = model.tensor("transformer.h.1.mlp.c_fc.weight")
        XCTAssertEqual(try st.storedTensor(XCTUnwrap(st.entry(fc.name))).matrix().values, fc.values.map { Float(Float16($0)) })

        try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("bf16.gguf"), dtype: .bf16)
        let g = try GGUFReader.read(path: tmp.file("bf16.gguf"))
        XCTAssertEqual(Set(g.tensors.values.map(\.dtype)), [.bf16])
        assertEngramError(["Q4_K"]) { try CheckpointConverter.convert(ck, to: .gguf, out: tmp.file("q.gguf"), dtype: .q4_K) }
    }

    /// A 16-bit Hugging Face folder written again as a folder (what an edit's --out does with the
    /// untouched tensors): every tensor keeps its type, bytes and place in the file, Q/K and GPT-2's
    /// transposed weights included, and config.json keeps its token ids (EOS as a list too).
    func testSixteenBitFolderRoundTripKeepsTypesAndTokenIDs() throws {
        for (label, model) in [("llama", TinyModel.llama(seed: 36)), ("gpt2", TinyModel.gpt2(seed: 37))] {
            let tmp = TemporaryFolder()
            try model.writeGGUF(to: tmp.file("m.gguf"))
            try CheckpointConverter.convert(ModelLoader.checkpoint(tmp.file("m.gguf")), to: .safetensors, out: tmp.file("a"), dtype: .bf16)
            let configPath = tmp.file("a/config.json")
            var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
            config["bos_token_id"] = 3
            config["eos_token_id"] = [2, 5]
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))

            let a = try ModelLoader.checkpoint(tmp.file("a"))
            XCTAssertEqual(Set(a.tensors.values.map(\.dtype)), [.bf16], "\(label): read as stored")
            try CheckpointConverter.convert(a, to: .safetensors, out: tmp.file("b"))
            let first = try Safetensors.read(path: tmp.file("a/model.safetensors"))
            let second = try Safetensors.read(path: tmp.file("b/model.safetensors"))
            XCTAssertEqual(Set(second.entries.map(\.name)), Set(first.entries.map(\.name)), label)
            for e in first.entries {
                let f = try XCTUnwrap(second.entry(e.name), e.name)
                XCTAssertEqual(f.dtypeName, "BF16", "\(label) \(e.name)")
                XCTAssertEqual(f.shape, e.shape, "\(label) \(e.name)")
                XCTAssertEqual(bytes(try second.storedTensor(f)), bytes(try first.storedTensor(e)), "\(label) \(e.name) bytes")
            }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("b/model.safetensors"))),
                           try Data(contentsOf: URL(fileURLWithPath: tmp.file("a/model.safetensors"))), "\(label): the same file, tensors in its order")
            let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.file("b/config.json")))) as? [String: Any])
            XCTAssertEqual(written["bos_token_id"] as? Int, 3, label)
            XCTAssertEqual(written["eos_token_id"] as? [Int], [2, 5], label)
            XCTAssertEqual(written["torch_dtype"] as? String, "bfloat16", label)
        }
    }

    func testRefusesToOverwriteItsInput() throws {
        let model = TinyModel.qwen2(seed: 35)
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("in.gguf"))
        try model.writeHuggingFace(to: tmp.file("hf"))
        let g = try ModelLoader.checkpoint(tmp.file("in.gguf"))
        let h = try ModelLoader.checkpoint(tmp.file("hf"))
        let before = try Data(contentsOf: URL(fileURLWithPath: tmp.file("in.gguf")))
        assertEngramError(["refusing"]) { try CheckpointConverter.convert(g, to: .gguf, out: tmp.file("in.gguf")) }
        assertEngramError(["refusing"]) { try CheckpointConverter.convert(g, to: .gguf, out: tmp.file("./sub/../in.gguf")) }
        assertEngramError(["refusing"]) { try CheckpointConverter.convert(g, to: .safetensors, out: tmp.path) }
        assertEngramError(["refusing"]) { try CheckpointConverter.convert(h, to: .safetensors, out: tmp.file("hf")) }
        assertEngramError(["refusing"]) { try CheckpointConverter.convert(h, to: .gguf, out: tmp.file("hf/model.safetensors")) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tmp.file("in.gguf"))), before)
        // Writing a GGUF into the folder of a Hugging Face checkpoint is fine.
        try CheckpointConverter.convert(h, to: .gguf, out: tmp.file("hf/model.gguf"))
        try assertReferenceLogits(try ModelLoader.checkpoint(tmp.file("hf/model.gguf")), model, label: "qwen2 GGUF beside")
    }

    /// The output folder appears whole or not at all; an existing checkpoint folder is replaced, an
    /// unrelated folder is not.
    func testFolderOutputIsAtomic() throws {
        let model = TinyModel.llama(seed: 36)
        let tmp = TemporaryFolder()
        try model.writeGGUF(to: tmp.file("m.gguf"))
        let ck = try ModelLoader.checkpoint(tmp.file("m.gguf"))
        let out = tmp.file("out/hf")
        try CheckpointConverter.convert(ck, to: .safetensors, out: out, extraFiles: ["tokenizer.json": Data("{}".utf8)])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: out)), ["config.json", "model.safetensors", "tokenizer.json"])
        try CheckpointConverter.convert(ck, to: .safetensors, out: out, dtype: .bf16)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: out)), ["config.json", "model.safetensors"], "replaced whole")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.file("out")), ["hf"], "no temporary siblings left")

        try FileManager.default.createDirectory(atPath: tmp.file("precious"), withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: tmp.file("precious/notes.txt")))
        assertEngramError(["precious", "not a checkpoint folder"]) { try CheckpointConverter.convert(ck, to: .safetensors, out: tmp.file("precious")) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.file("precious")), ["notes.txt"])

        // A failure midway (a tensor with no Hugging Face name) leaves no folder behind.
        let odd = try ModelLoader.checkpoint(tmp.file("m.gguf"))
        let e = try odd.tensor("output_norm.weight")
        odd.add(StoredTensor(name: "rope_freqs.weight", dtype: .f32, shape: e.shape, data: e.data, byteCount: e.byteCount, file: e.file, owner: e.owner))
        assertEngramError(["rope_freqs.weight"]) { try CheckpointConverter.convert(odd, to: .safetensors, out: tmp.file("never")) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("never")))
        struct Interrupted: Error {}
        XCTAssertThrowsError(try AtomicFolder.write(to: tmp.file("half")) { folder in
            try Data("x".utf8).write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("config.json")))
            throw Interrupted()
        })
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: tmp.path)), ["m.gguf", "out", "precious"])
    }

    /// The real model (Q4_1) converted to a float32 Hugging Face folder and loaded back reproduces the
    /// transformers reference logits. Slow (writes ~540 MB), so only with ENGRAM_SLOW_TESTS=1.
    func testRealModelThroughSafetensors() throws {
        guard ProcessInfo.processInfo.environment["ENGRAM_SLOW_TESTS"] == "1" else { throw XCTSkip("set ENGRAM_SLOW_TESTS=1") }
        guard let shared = sharedFolder(), FileManager.default.fileExists(atPath: ModelRegistry.smollm2Path) else {
            throw XCTSkip("fixtures or default model absent")
        }
        let fixture = (shared as NSString).appendingPathComponent("fixtures/smollm2-reference.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture))) as? [String: Any])
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]])
        let tmp = TemporaryFolder()
        let start = Date()
        try CheckpointConverter.convert(try ModelLoader.checkpoint("smollm2"), to: .safetensors, out: tmp.file("hf"))
        let seconds = Date().timeIntervalSince(start)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print("smollm2 → safetensors F32: \(String(format: "%.1f", seconds)) s, peak RSS \(usage.ru_maxrss / 1024) MB")
        let lm = try ModelLoader.build(try ModelLoader.checkpoint(tmp.file("hf")))
        var checked = 0
        for c in cases {
            guard let ids = c["token_ids"] as? [Int], let full = c["last_logits_full"] as? [Double] else { continue }
            let logits = try lm.forward(ids.map(Int32.init), cache: lm.makeCache(), logits: .last)
            var worst = 0.0
            for v in 0..<full.count { worst = max(worst, abs(Double(logits.pointer[v]) - full[v])) }
            XCTAssertLessThan(worst, 5e-3, "max |Δlogit| vs transformers for \(ids.prefix(5))")
            print("smollm2 via safetensors, \(ids.count) tokens: max |Δlogit| vs transformers \(worst)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0)
    }
}
