import XCTest
import Engram

/// Broken files must fail with a typed EngramError naming the file and the tensor or key: never a
/// crash, a hang or a silently wrong model.
final class BadInputTests: XCTestCase {
    // MARK: GGUF

    /// Byte positions of one tensor's info fields in a GGUF header.
    struct InfoFields { let nDims: Int; let firstDim: Int; let type: Int; let offset: Int }

    func infoFields(_ bytes: [UInt8], tensor name: String) throws -> InfoFields {
        var pattern: [UInt8] = []
        withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian) { pattern += $0 }
        pattern += Array(name.utf8)
        guard let start = (0...(bytes.count - pattern.count)).first(where: { Array(bytes[$0..<($0 + pattern.count)]) == pattern }) else {
            throw XCTSkip("tensor \(name) not found")
        }
        let nDims = start + pattern.count
        let dims = Int(bytes[nDims])
        return InfoFields(nDims: nDims, firstDim: nDims + 4, type: nDims + 4 + 8 * dims, offset: nDims + 4 + 8 * dims + 4)
    }

    func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }

    func tinyGGUF(_ tmp: TemporaryFolder) throws -> (path: String, bytes: [UInt8]) {
        let path = tmp.file("tiny.gguf")
        try TinyModel.llama(seed: 41).writeGGUF(to: path)
        return (path, [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    func write(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    func testTruncatedGGUFAtManyOffsets() throws {
        let tmp = TemporaryFolder()
        let (path, bytes) = try tinyGGUF(tmp)
        let ck = try GGUFReader.read(path: path)
        let base = try XCTUnwrap(try ck.tensor("token_embd.weight").owner as? MappedFile).pointer
        var dataStart = Int.max, dataEnd = 0
        for t in ck.tensors.values {
            let at = UnsafeRawPointer(t.data) - UnsafeRawPointer(base)
            dataStart = min(dataStart, at)
            dataEnd = max(dataEnd, at + t.byteCount)
        }
        XCTAssertGreaterThan(dataStart, 1000)
        let cutPath = tmp.file("cut.gguf")
        var cuts = Array(0..<dataStart)                                   // every byte of the header
        cuts += Array(stride(from: dataStart, to: dataEnd, by: 4093)) + [dataEnd - 1]
        for cut in cuts {
            try write(Array(bytes[0..<cut]), cutPath)
            do {
                _ = try GGUFReader.read(path: cutPath)
                XCTFail("a GGUF cut at byte \(cut) of \(bytes.count) was accepted")
                return
            } catch let error as EngramError {
                guard error.description.contains(cutPath) else { XCTFail("error at cut \(cut) does not name the file: \(error)"); return }
            }
        }
    }

    func testGGUFWrongMagic() throws {
        let tmp = TemporaryFolder()
        var (path, bytes) = try tinyGGUF(tmp)
        bytes[3] = UInt8(ascii: "G")
        try write(bytes, path)
        assertEngramError([path, "not a GGUF file"]) { _ = try GGUFReader.read(path: path) }
        assertEngramError([path, "not a GGUF file"]) { _ = try ModelLoader.checkpoint(path) }
    }

    func testGGUFTensorDataPastTheEnd() throws {
        let tmp = TemporaryFolder()
        var (path, bytes) = try tinyGGUF(tmp)
        let f = try infoFields(bytes, tensor: "blk.1.ffn_down.weight")
        put(UInt64(bytes.count / 32 * 32), at: f.offset, in: &bytes)
        try write(bytes, path)
        assertEngramError([path, "blk.1.ffn_down.weight", "past the end"]) { _ = try GGUFReader.read(path: path) }
    }

    func testGGUFUnknownDataType() throws {
        let tmp = TemporaryFolder()
        var (path, bytes) = try tinyGGUF(tmp)
        let f = try infoFields(bytes, tensor: "blk.0.attn_k.weight")
        put(UInt32(99), at: f.type, in: &bytes)
        try write(bytes, path)
        assertEngramError([path, "blk.0.attn_k.weight", "data type 99"]) { _ = try GGUFReader.read(path: path) }
    }

    func testGGUFAbsurdDimension() throws {
        let tmp = TemporaryFolder()
        var (path, bytes) = try tinyGGUF(tmp)
        let f = try infoFields(bytes, tensor: "output.weight")
        put(UInt64(1) << 50, at: f.firstDim, in: &bytes)
        try write(bytes, path)
        assertEngramError([path, "output.weight", "dimension"]) { _ = try GGUFReader.read(path: path) }
        put(UInt64(1) << 30, at: f.firstDim, in: &bytes)
        put(UInt64(1) << 30, at: f.firstDim + 8, in: &bytes)
        try write(bytes, path)
        assertEngramError([path, "output.weight", "absurd"]) { _ = try GGUFReader.read(path: path) }
        put(UInt32(7), at: f.nDims, in: &bytes)
        try write(bytes, path)
        assertEngramError([path, "output.weight", "7 dimensions"]) { _ = try GGUFReader.read(path: path) }
    }

    func testGGUFDuplicateTensor() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("dup.gguf")
        let b = FloatBuffer([1, 2, 3, 4])
        try GGUFWriter.write(metadata: [("general.architecture", .string("llama"))], tensors: [
            try .floats(name: "t0.weight", shape: [4], as: .f32, values: b.pointer, owner: b),
            try .floats(name: "t1.weight", shape: [4], as: .f32, values: b.pointer, owner: b),
        ], to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let f = try infoFields(bytes, tensor: "t1.weight")
        bytes[f.nDims - 8] = UInt8(ascii: "0")   // "t1.weight" → "t0.weight"
        try write(bytes, path)
        assertEngramError([path, "t0.weight", "twice"]) { _ = try GGUFReader.read(path: path) }
    }

    func testGGUFAbsurdCounts() throws {
        let tmp = TemporaryFolder()
        var (path, bytes) = try tinyGGUF(tmp)
        put(UInt64(1) << 62, at: 8, in: &bytes)   // tensor count
        try write(bytes, path)
        assertEngramError([path, "more than the file can hold"]) { _ = try GGUFReader.read(path: path) }
    }

    // MARK: safetensors

    func safetensors(header: String, data: [UInt8] = [], length: UInt64? = nil, _ tmp: TemporaryFolder) throws -> String {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + data
        let path = tmp.file("bad-\(UUID().uuidString).safetensors")
        try write(bytes, path)
        return path
    }

    func testSafetensorsBadHeaders() throws {
        let tmp = TemporaryFolder()
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight = [UInt8](repeating: 0, count: 8)
        XCTAssertNoThrow(try Safetensors.read(path: try safetensors(header: ok, data: eight, tmp)))

        var p = try safetensors(header: ok, data: eight, length: 1 << 60, tmp)
        assertEngramError([p, "header length", "absurd"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: ok, data: eight, length: UInt64(ok.utf8.count + 9), tmp)
        assertEngramError([p, "runs past the end"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","#, tmp)
        assertEngramError([p, "not valid JSON"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: "[]", tmp)
        assertEngramError([p, "expected a JSON object"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: String(repeating: "[", count: 100_000), tmp)
        assertEngramError([p, "nested"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#, data: eight, tmp)
        assertEngramError([p, "'a'", "past the end"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight, tmp)
        assertEngramError([p, "'a'", "needs 12"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight, tmp)
        assertEngramError([p, "'a'", "shape"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: eight, tmp)
        assertEngramError([p, "'a'", "end before"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#, data: eight, tmp)
        assertEngramError([p, "'a'", "unknown dtype 'Q9'"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                            data: eight + eight, tmp)
        assertEngramError([p, "'b'", "overlaps tensor 'a'"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
                            data: eight + eight, tmp)
        assertEngramError([p, "duplicate key \"a\""]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"__metadata__":{"k":1}}"#, tmp)
        assertEngramError([p, "__metadata__.k"]) { _ = try Safetensors.read(path: p) }
        p = try safetensors(header: #"{"a":{"dtype":"F32","shape":[2]}}"#, tmp)
        assertEngramError([p, "'a'", "data_offsets"]) { _ = try Safetensors.read(path: p) }
        let tiny = tmp.file("tiny.safetensors")
        try write([1, 2, 3], tiny)
        assertEngramError([tiny, "truncated"]) { _ = try Safetensors.read(path: tiny) }
    }

    func testTruncatedSafetensorsAtEveryOffset() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("m.safetensors")
        try TinyModel.writeSafetensors([("a", [3, 4], (0..<12).map(Float.init)), ("b", [5], [1, 2, 3, 4, 5])], bf16: false, to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let cutPath = tmp.file("cut.safetensors")
        for cut in 0..<bytes.count {
            try write(Array(bytes[0..<cut]), cutPath)
            do {
                _ = try Safetensors.read(path: cutPath)
                XCTFail("cut at \(cut) accepted"); return
            } catch let error as EngramError {
                guard error.description.contains(cutPath) else { XCTFail("cut \(cut): \(error)"); return }
            }
        }
    }

    // MARK: Hugging Face folders

    func folder(_ tmp: TemporaryFolder, _ model: TinyModel = .llama(seed: 42), edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        var config = model.configJSON
        edit(&config)
        let path = tmp.file("hf-\(UUID().uuidString)")
        try model.writeHuggingFace(to: path, config: config)
        return path
    }

    func testConfigDisagreeingWithTensorShapes() throws {
        let tmp = TemporaryFolder()
        var p = try folder(tmp) { $0["intermediate_size"] = 96 }
        assertEngramError(["model.safetensors", "model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[96, 64]", "config.json"]) {
            _ = try ModelLoader.checkpoint(p)
        }
        p = try folder(tmp) { $0["num_key_value_heads"] = 4 }
        assertEngramError(["model.layers.0.self_attn.k_proj.weight", "[32, 64]", "[64, 64]"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp, .gpt2(seed: 3)) { $0["n_positions"] = 16 }
        assertEngramError(["transformer.wpe.weight", "[32, 64]", "[16, 64]"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["num_hidden_layers"] = 1 }
        assertEngramError(["model.layers.1.", "beyond"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["tie_word_embeddings"] = true }
        XCTAssertNoThrow(try ModelLoader.checkpoint(p), "a tied model ignores a stored lm_head, as transformers does")
    }

    func testBadConfigFields() throws {
        let tmp = TemporaryFolder()
        var p = try folder(tmp) { $0["hidden_size"] = "64" }
        assertEngramError(["config.json", "'hidden_size'", "wrong type"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["num_hidden_layers"] = 1.5 }
        assertEngramError(["config.json", "'num_hidden_layers'"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["tie_word_embeddings"] = "no" }
        assertEngramError(["config.json", "'tie_word_embeddings'"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["model_type"] = "mamba" }
        assertEngramError(["config.json", "'model_type'", "mamba"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["num_attention_heads"] = 0 }
        assertEngramError(["config.json", "'num_attention_heads'"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["num_key_value_heads"] = 3 }
        assertEngramError(["config.json", "'num_key_value_heads'"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0.removeValue(forKey: "vocab_size") }
        assertEngramError(["config.json", "'vocab_size'", "missing"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp) { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0] }
        assertEngramError(["config.json", "'rope_scaling'", "llama3"]) { _ = try ModelLoader.checkpoint(p) }
        p = try folder(tmp)
        try Data("{\"model_type\": ".utf8).write(to: URL(fileURLWithPath: p + "/config.json"))
        assertEngramError(["config.json", "not valid JSON"]) { _ = try ModelLoader.checkpoint(p) }
        try Data("[1, 2]".utf8).write(to: URL(fileURLWithPath: p + "/config.json"))
        assertEngramError(["config.json", "the top level is not a JSON object"]) { _ = try ModelLoader.checkpoint(p) }
        // A tokenizer.json that is not JSON: the position is given, not only "not in the correct format".
        p = try folder(tmp)
        try Data("{\"model\": {\"vocab\": x}}".utf8).write(to: URL(fileURLWithPath: p + "/tokenizer.json"))
        assertEngramError(["tokenizer.json", "not valid JSON", "around character 20"]) { _ = try TokenizerLoader.load(try ModelLoader.checkpoint(p)) }
    }

    func testMissingFiles() throws {
        let tmp = TemporaryFolder()
        var p = try folder(tmp)
        try FileManager.default.removeItem(atPath: p + "/config.json")
        assertEngramError([p + "/config.json", "missing"]) { _ = try ModelLoader.checkpoint(p) }

        p = try folder(tmp)
        try FileManager.default.removeItem(atPath: p + "/model.safetensors")
        assertEngramError(["model.safetensors", "missing"]) { _ = try ModelLoader.checkpoint(p) }

        // No tokenizer files: the checkpoint loads with no sidecars (the tokenizer loader reports it).
        p = try folder(tmp)
        XCTAssertTrue(try ModelLoader.checkpoint(p).sidecars.isEmpty)
    }

    /// A named pipe where a checkpoint file should be is refused at once (opening one for reading would
    /// wait for a writer forever): as the GGUF, as a folder's config.json and as its safetensors.
    func testNamedPipesAreRefused() throws {
        let tmp = TemporaryFolder()
        let done = expectation(description: "refused without waiting")
        DispatchQueue.global().async { [self] in
            defer { done.fulfill() }
            do {
                let pipe = tmp.file("pipe.gguf")
                XCTAssertEqual(mkfifo(pipe, 0o600), 0)
                assertEngramError([pipe, "not a regular file"]) { _ = try ModelLoader.checkpoint(pipe) }
                for name in ["config.json", "model.safetensors"] {
                    let p = try folder(tmp)
                    try FileManager.default.removeItem(atPath: p + "/" + name)
                    XCTAssertEqual(mkfifo(p + "/" + name, 0o600), 0)
                    assertEngramError([name, "not a regular file"]) { _ = try ModelLoader.checkpoint(p) }
                }
            } catch { XCTFail("\(error)") }
        }
        wait(for: [done], timeout: 30)
    }

    func testMissingAndUnknownTensors() throws {
        let tmp = TemporaryFolder()
        var model = TinyModel.llama(seed: 43)
        model.tensors.removeAll { $0.name == "model.layers.1.mlp.up_proj.weight" }
        var p = try folder(tmp, model)
        assertEngramError(["model.layers.1.mlp.up_proj.weight", "missing"]) { _ = try ModelLoader.checkpoint(p) }

        model = TinyModel.llama(seed: 43)
        model.tensors.append(HFTensor(name: "model.layers.0.mlp.extra.weight", shape: [2], values: [1, 2]))
        p = try folder(tmp, model)
        assertEngramError(["model.safetensors", "model.layers.0.mlp.extra.weight", "not a tensor"]) { _ = try ModelLoader.checkpoint(p) }

        // Buffers that are not weights are skipped.
        model = TinyModel.gpt2(seed: 44)
        model.tensors.append(HFTensor(name: "transformer.h.0.attn.bias", shape: [1, 1, 4, 4], values: Array(repeating: 1, count: 16)))
        model.tensors.append(HFTensor(name: "h.1.attn.masked_bias", shape: [1], values: [-1e4]))
        p = try folder(tmp, model)
        XCTAssertFalse(try ModelLoader.checkpoint(p).has("blk.0.attn.bias"))
    }

    func testBadShardIndex() throws {
        let tmp = TemporaryFolder()
        let model = TinyModel.llama(seed: 45)
        let p = tmp.file("sharded")
        try model.writeHuggingFace(to: p, shards: 2)
        let indexPath = p + "/model.safetensors.index.json"
        XCTAssertNoThrow(try ModelLoader.checkpoint(p))

        let original = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        var index = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
        var map = try XCTUnwrap(index["weight_map"] as? [String: String])
        map["model.norm.weight"] = "../outside.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        assertEngramError([indexPath, "weight_map.model.norm.weight", "plain file name"]) { _ = try ModelLoader.checkpoint(p) }

        map["model.norm.weight"] = "model-00009-of-00009.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        assertEngramError(["model-00009-of-00009.safetensors", "missing"]) { _ = try ModelLoader.checkpoint(p) }

        map["model.norm.weight"] = "model-00001-of-00002.safetensors"  // it is in shard 2
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        assertEngramError(["model-00001-of-00002.safetensors", "model.norm.weight", "does not hold it"]) { _ = try ModelLoader.checkpoint(p) }

        try Data("{".utf8).write(to: URL(fileURLWithPath: indexPath))
        assertEngramError([indexPath, "not valid JSON"]) { _ = try ModelLoader.checkpoint(p) }
    }

    // MARK: Command outputs

    /// What a command stopped by a signal removes (`removeTemporaryOutputsOnSignal` in the CLI): the
    /// temporary file or folder of every write still in progress, and nothing once it is committed.
    func testTemporaryOutputsInProgressCanBeRemoved() throws {
        let tmp = TemporaryFolder()
        let inProgress = try AtomicFile(path: tmp.file("out.gguf"))
        try inProgress.write("partial")
        let done = try AtomicFile(path: tmp.file("done.json"))
        try done.write("{}")
        try done.commit()
        var folderTemporary = ""
        try? AtomicFolder.write(to: tmp.file("folder")) { temporary in
            folderTemporary = temporary
            XCTAssertTrue(FileManager.default.fileExists(atPath: temporary))
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("done.json")))
            TemporaryOutputs.removeAll()
            // Removed by removeAll itself, not by AtomicFolder's own clean-up after the throw below.
            XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))
            throw EngramError.invalidArgument("stop")
        }
        XCTAssertFalse(folderTemporary.isEmpty)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted(), ["done.json"])
        inProgress.abort() // after the removal: nothing left to do, and no trap
    }

    /// Files committed together (a trace's JSON and SVG) replace the old pair; when a rename fails the
    /// error names that file and no temporary file stays behind.
    func testFilesCommittedTogether() throws {
        let tmp = TemporaryFolder()
        try "old".write(toFile: tmp.file("t.json"), atomically: false, encoding: .utf8)
        try "old".write(toFile: tmp.file("t.svg"), atomically: false, encoding: .utf8)
        let json = try AtomicFile(path: tmp.file("t.json")), svg = try AtomicFile(path: tmp.file("t.svg"))
        try json.write("{}")
        try svg.write("<svg/>")
        try AtomicFile.commit([json, svg])
        XCTAssertEqual(try String(contentsOfFile: tmp.file("t.json"), encoding: .utf8), "{}")
        XCTAssertEqual(try String(contentsOfFile: tmp.file("t.svg"), encoding: .utf8), "<svg/>")
        try AtomicFile.commit([json, svg]) // already committed: nothing to do

        let a = try AtomicFile(path: tmp.file("a.json")), b = try AtomicFile(path: tmp.file("b.svg"))
        try a.write("{}")
        try b.write("<svg/>")
        // A non-empty folder where the picture goes: its rename fails after the JSON's succeeded.
        try FileManager.default.createDirectory(atPath: tmp.file("b.svg/inside"), withIntermediateDirectories: true)
        assertEngramError([tmp.file("b.svg"), "cannot rename"]) { try AtomicFile.commit([a, b]) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted(),
                       ["a.json", "b.svg", "t.json", "t.svg"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.file("b.svg")), ["inside"])
        b.abort() // after the failure: nothing left to do, and no trap
    }

    /// The parent folder of an output path, including one-character names (NSString's
    /// deletingLastPathComponent traps on those here).
    func testParentFolderOfShortAndOddPaths() {
        XCTAssertEqual(AtomicFile.parentFolder(of: "t"), ".")
        XCTAssertEqual(AtomicFile.parentFolder(of: "a/b"), "a")
        XCTAssertEqual(AtomicFile.parentFolder(of: "/x"), "/")
        XCTAssertEqual(AtomicFile.parentFolder(of: "a/b/"), "a")
        XCTAssertEqual(AtomicFile.parentFolder(of: "/a/bc/d.json"), "/a/bc")
    }

    /// An output path that is one of the inputs (also through a symbolic link or inside a checkpoint
    /// folder) or another output is refused before anything runs; distinct paths pass.
    func testOutputsMayNotLandOnInputsOrEachOther() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("outputs-\(UUID().uuidString)")
        let folder = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let edits = dir.appendingPathComponent("edits.json").path
        try Data("[]".utf8).write(to: URL(fileURLWithPath: edits))
        try Data("{}".utf8).write(to: folder.appendingPathComponent("config.json"))
        let link = dir.appendingPathComponent("link.json").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: edits)
        let inputs: [(what: String, path: String?)] = [("the model", folder.path), ("the edit file", edits), ("the hyper-parameter file", nil)]

        func refused(_ outputs: [(option: String, path: String?)], _ expected: String) {
            XCTAssertThrowsError(try OutputPaths.check(outputs: outputs, inputs: inputs), expected) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        refused([("--patch", edits)], "that is the edit file")
        refused([("--patch", link)], "that is the edit file")
        refused([("--json", dir.appendingPathComponent("./hf/../edits.json").path)], "that is the edit file")
        refused([("--patch", folder.appendingPathComponent("config.json").path)], "that is the model (config.json)")
        refused([("--out", folder.path)], "that is the model")
        refused([("--out", dir.appendingPathComponent("x").path), ("--patch", dir.appendingPathComponent("x").path)],
                "that is the path given to --out")
        // A folder output replaces everything under it: inputs and other outputs must not be inside.
        refused([("--out", dir.path)], "is inside it")
        refused([("--out", dir.appendingPathComponent("x").path), ("--patch", dir.appendingPathComponent("x/p.patch").path)],
                "inside the path given to --out")
        refused([("--patch", dir.appendingPathComponent("x/p.patch").path), ("--out", dir.appendingPathComponent("x").path)],
                "the path given to --patch is inside it")
        // A destination where no file can be created is found out now, not after the work.
        refused([("--json", dir.appendingPathComponent("edits.json/r.json").path)], "cannot create files in \(edits)")
        if FileManager.default.fileExists(atPath: "/sys/kernel") {
            refused([("--out", "/sys/kernel/edited.gguf")], "cannot create files in /sys/kernel")
        }
        XCTAssertNoThrow(try OutputPaths.check(outputs: [("--out", dir.appendingPathComponent("new/folders/out.gguf").path)], inputs: inputs))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("new").path), "the check makes no folders")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".engram") }, [], "nor leaves files")
        XCTAssertNoThrow(try OutputPaths.check(outputs: [("--out", dir.appendingPathComponent("out.gguf").path),
                                                         ("--patch", dir.appendingPathComponent("p.patch").path),
                                                         ("--report", nil)], inputs: inputs))
    }
}
