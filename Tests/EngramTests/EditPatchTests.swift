import Foundation
import XCTest
@testable import Engram

final class EditPatchTests: XCTestCase {
    func randomMatrix(_ rows: Int, _ cols: Int, seed: UInt64, scale: Float = 0.1) -> Matrix {
        var rng = SplitMix64(seed: seed)
        return Matrix(rows: rows, cols: cols, values: (0..<(rows * cols)).map { _ in scale * Float(rng.nextUnit() * 2 - 1) })
    }

    func request(_ id: String) -> EditRequest {
        EditRequest(caseID: id, prompt: "The capital of France is", subject: "France", targetNew: "Rome", groundTruth: ["Paris"])
    }

    /// A patch with a rank-2 delta and a dense delta on layer 0 and a rank-1 delta on layer 1.
    func samplePatch(_ model: LanguageModel) -> EditPatch {
        let d = model.config.hidden, m = model.config.intermediate
        return EditPatch(method: "test", hyperParameters: ["layers": "0,1", "lr": "0.5"], requests: [request("1"), request("2")],
                         baseSHA256: String(repeating: "ab", count: 32),
                         deltas: [
                            WeightDelta(weight: .mlpDown(0), change: .lowRank(r: randomMatrix(2, d, seed: 1), u: randomMatrix(2, m, seed: 2))),
                            WeightDelta(weight: .mlpDown(0), change: .dense(randomMatrix(d, m, seed: 3))),
                            WeightDelta(weight: .mlpDown(1), change: .lowRank(r: randomMatrix(1, d, seed: 4), u: randomMatrix(1, m, seed: 5))),
                         ],
                         context: PromptContext(demonstrations: "demo\n", facts: ["fact one"]), metadata: ["seed": "42"])
    }

    func testApplyAddsTheDeltaAndRevertRestoresBitForBit() throws {
        let model = try TinyModels.llama(vocab: 40)
        let before0 = model.weight(.mlpDown(0)).copy(), before1 = model.weight(.mlpDown(1)).copy()
        let patch = samplePatch(model)
        let applied = try patch.apply(to: model)

        // Independent check: W + Σ r_k u_kᵀ + D computed with plain loops.
        let d = model.config.hidden, m = model.config.intermediate
        guard case let .lowRank(r, u) = patch.deltas[0].change, case let .dense(dense) = patch.deltas[1].change else { return XCTFail() }
        let w0 = model.weight(.mlpDown(0))
        var maxError: Float = 0
        for i in 0..<d {
            for j in 0..<m {
                var expected = before0.pointer[i * m + j] + dense.pointer[i * m + j]
                for k in 0..<2 { expected += r.pointer[k * d + i] * u.pointer[k * m + j] }
                maxError = max(maxError, abs(w0.pointer[i * m + j] - expected))
            }
        }
        XCTAssertLessThan(maxError, 1e-6)
        XCTAssertNotEqual(bits(model.weight(.mlpDown(1))), bits(before1))

        try applied.revert()
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(before0))
        XCTAssertEqual(bits(model.weight(.mlpDown(1))), bits(before1))
        XCTAssertTrue(applied.isReverted)
        XCTAssertNoThrow(try applied.revert(), "a second revert does nothing")
    }

    func testSubtractingTheDeltaWouldNotBeExact() throws {
        // Why patches keep the original values: W + Δ − Δ differs from W in the last bits for many entries.
        let w = randomMatrix(16, 32, seed: 11, scale: 1)
        let delta = randomMatrix(16, 32, seed: 12, scale: 0.37)
        let roundTrip = zip(w.values, delta.values).map { ($0 + $1) - $1 }
        XCTAssertNotEqual(roundTrip.map(\.bitPattern), bits(w))
    }

    func testStackedPatchesMustBeRevertedLastInFirstOut() throws {
        let model = try TinyModels.llama(vocab: 40)
        let original = model.weight(.mlpDown(0)).copy()
        let d = model.config.hidden, m = model.config.intermediate
        let p1 = EditPatch(method: "p1", requests: [], deltas: [WeightDelta(weight: .mlpDown(0), change: .dense(randomMatrix(d, m, seed: 21)))])
        let p2 = EditPatch(method: "p2", requests: [], deltas: [WeightDelta(weight: .mlpDown(0), change: .dense(randomMatrix(d, m, seed: 22)))])
        let session = EditSession(model: model)
        let a1 = try session.apply(p1)
        _ = try session.apply(p2)
        let stacked = model.weight(.mlpDown(0)).copy()
        XCTAssertThrowsError(try a1.revert()) { error in
            XCTAssertTrue("\(error)".contains("revert the later patches first"), "\(error)")
        }
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(stacked), "a refused revert changes nothing")
        try session.revertAll()
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(original))
    }

    func testInvalidPatchesTouchNothing() throws {
        let model = try TinyModels.llama(vocab: 40)
        let original = model.weight(.mlpDown(0)).copy()
        let d = model.config.hidden, m = model.config.intermediate
        let good = WeightDelta(weight: .mlpDown(0), change: .dense(randomMatrix(d, m, seed: 1)))
        let cases: [(WeightDelta, String)] = [
            (WeightDelta(weight: .mlpDown(2), change: .dense(randomMatrix(d, m, seed: 1))), "does not exist"),
            (WeightDelta(weight: .mlpDown(1), change: .dense(randomMatrix(m, d, seed: 1))), "delta is [32, 16]"),
            (WeightDelta(weight: .mlpDown(1), change: .lowRank(r: randomMatrix(2, d, seed: 1), u: randomMatrix(1, m, seed: 2))), "rank"),
            (WeightDelta(weight: .mlpDown(1), change: .dense(Matrix(rows: d, cols: m, values: [Float](repeating: .nan, count: d * m)))), "NaN"),
            // Finite factors whose product is not: r·u = 3e38 · 100.
            (WeightDelta(weight: .mlpDown(1), change: .lowRank(r: Matrix(rows: 1, cols: d, values: [Float](repeating: 3e38, count: d)),
                                                               u: Matrix(rows: 1, cols: m, values: [Float](repeating: 100, count: m)))), "multiply to values up to"),
        ]
        for (bad, message) in cases {
            let patch = EditPatch(method: "bad", requests: [], deltas: [good, bad])
            XCTAssertThrowsError(try patch.apply(to: model)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
            XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(original))
        }
        // Each delta finite and in range, but together they overflow float32 in the weight: undone, and said so.
        let largest = WeightDelta(weight: .mlpDown(1), change: .dense(Matrix(rows: d, cols: m, values: [Float](repeating: .greatestFiniteMagnitude, count: d * m))))
        let original1 = model.weight(.mlpDown(1)).copy()
        XCTAssertThrowsError(try EditPatch(method: "bad", requests: [], deltas: [good, largest, largest]).apply(to: model)) {
            XCTAssertTrue("\($0)".contains("adding the delta to weight 'mlp_down.1' overflows float32"), "\($0)")
        }
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(original))
        XCTAssertEqual(bits(model.weight(.mlpDown(1))), bits(original1))
        // Stored originals come from the file too: `validate` checks them before `patch revert` reads them.
        var withOriginal = EditPatch(method: "bad", requests: [], deltas: [good])
        for (o, message) in [(StoredOriginal(weight: .mlpDown(0), dtype: .f32, shape: [1, 1], bytes: Data(count: 4)), "has shape [1, 1]"),
                             (StoredOriginal(weight: .mlpDown(5), dtype: .f32, shape: [d, m], bytes: Data(count: 4 * d * m)), "does not exist"),
                             // Reverting writes the stored bytes back as the weight: NaN there is damage, not a weight.
                             (StoredOriginal(weight: .mlpDown(0), dtype: .f32, shape: [d, m], bytes: Data(repeating: 0xff, count: 4 * d * m)), "NaN or infinite")] {
            withOriginal.originals = [o]
            XCTAssertThrowsError(try withOriginal.validate(model: model.config, patch: "x.patch")) { error in
                XCTAssertTrue("\(error)".contains("x.patch") && "\(error)".contains(message), "\(error)")
            }
        }
    }

    func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("engram-patch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testRevertCheckAllowsTheRoundingOfTheStoredType() throws {
        // `patch revert` first checks that the checkpoint holds original + ΔW. An edited BF16 checkpoint
        // stores that sum rounded to 8 significant bits, which must pass; another change must not.
        let model = try TinyModels.llama(vocab: 40)
        let d = model.config.hidden, m = model.config.intermediate
        let w = model.weight(.mlpDown(0))
        let originalBytes = w.values.withUnsafeBufferPointer { Data(buffer: $0) }
        var patch = EditPatch(method: "test", requests: [], deltas: [
            WeightDelta(weight: .mlpDown(0), change: .lowRank(r: randomMatrix(1, d, seed: 21), u: randomMatrix(1, m, seed: 22)))])
        patch.originals = [StoredOriginal(weight: .mlpDown(0), dtype: .f32, shape: [d, m], bytes: originalBytes)]
        _ = try patch.apply(to: model)
        let sum = w.values
        for i in 0..<w.count { w.pointer[i] = Float(bitPattern: UInt32(Dequantize.floatToBF16(sum[i])) << 16) }
        XCTAssertGreaterThan(zip(w.values, sum).map { abs($0 - $1) }.max()!, 1e-4 * sum.map(abs).max()!,
                             "the rounding is larger than the float32 allowance alone")
        let bf16: (EditableWeight) -> DType? = { _ in .bf16 }
        XCTAssertNoThrow(try patch.checkHeld(by: model, storedType: bf16, checkpoint: "edited"))
        XCTAssertThrowsError(try patch.checkHeld(by: model, storedType: { _ in .f32 }, checkpoint: "edited")) {
            XCTAssertTrue("\($0)".contains("edited: mlp_down.0 does not hold this patch's edit"), "\($0)")
        }
        // One element moved by 1% of the largest weight: more than BF16 rounding can explain.
        let largest = sum.map(abs).max()!
        w.pointer[7] += 0.01 * largest
        XCTAssertThrowsError(try patch.checkHeld(by: model, storedType: bf16, checkpoint: "edited"))
        // The unedited weights do not hold the edit either.
        w.pointer.update(from: sum, count: w.count)
        XCTAssertNoThrow(try patch.checkHeld(by: model, storedType: { _ in .f32 }, checkpoint: "edited"))
        originalBytes.withUnsafeBytes { w.pointer.update(from: $0.bindMemory(to: Float.self).baseAddress!, count: w.count) }
        XCTAssertThrowsError(try patch.checkHeld(by: model, storedType: bf16, checkpoint: "base"))
    }

    func testSaveAndLoadRoundTrip() throws {
        let model = try TinyModels.llama(vocab: 40)
        let patch = samplePatch(model)
        let dir = try temporaryFolder()
        let path = dir.appendingPathComponent("edit.patch").path
        try patch.write(to: path)
        try patch.write(to: path) // overwriting goes through a temporary file and a rename
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["edit.patch"], "no temporary files left")
        let other = dir.appendingPathComponent("again.patch").path
        try patch.write(to: other)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(data, try Data(contentsOf: URL(fileURLWithPath: other)), "the same patch gives the same bytes")

        // It is a safetensors file: 8-byte header length, JSON header with F32 tensors, then the payload.
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(headerLength % 8, 0)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let r0 = header["delta.0.r"] as! [String: Any]
        XCTAssertEqual(r0["dtype"] as? String, "F32")
        XCTAssertEqual(r0["shape"] as? [Int], [2, 16])
        let last = header["delta.2.u"] as! [String: Any]
        XCTAssertEqual((last["data_offsets"] as! [Int])[1], data.count - 8 - headerLength)
        XCTAssertNotNil((header["__metadata__"] as? [String: String])?["engram.patch"])

        let loaded = try EditPatch.read(path)
        XCTAssertEqual(loaded.method, "test")
        XCTAssertEqual(loaded.hyperParameters, patch.hyperParameters)
        XCTAssertEqual(loaded.requests, patch.requests)
        XCTAssertEqual(loaded.baseSHA256, patch.baseSHA256)
        XCTAssertEqual(loaded.context, patch.context)
        XCTAssertEqual(loaded.metadata, patch.metadata)
        XCTAssertEqual(loaded.deltas.map(\.weight), patch.deltas.map(\.weight))
        for (a, b) in zip(loaded.deltas, patch.deltas) { XCTAssertEqual(bits(a.denseDelta()), bits(b.denseDelta())) }

        // The loaded patch does to the model exactly what the original does.
        let original = model.weight(.mlpDown(0)).copy()
        let viaOriginal = try patch.apply(to: model)
        let edited = model.weight(.mlpDown(0)).copy()
        try viaOriginal.revert()
        let viaLoaded = try loaded.apply(to: model)
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(edited))
        try viaLoaded.revert()
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(original))
    }

    func testCorruptPatchFiles() throws {
        let model = try TinyModels.llama(vocab: 40)
        let dir = try temporaryFolder()
        let goodPath = dir.appendingPathComponent("good.patch").path
        try samplePatch(model).write(to: goodPath)
        let good = try Data(contentsOf: URL(fileURLWithPath: goodPath))
        func read(_ bytes: Data) -> String {
            let path = dir.appendingPathComponent("bad-\(UUID().uuidString).patch").path
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: bytes))
            do {
                _ = try EditPatch.read(path)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(read(Data([1, 2, 3])).contains("header length"), read(Data([1, 2, 3])))
        var huge = good
        huge.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0, 0, 0, 0, 0])
        XCTAssertTrue(read(huge).contains("header length"), read(huge))
        let truncated = read(Data(good.prefix(good.count - 4)))
        XCTAssertTrue(truncated.contains("delta.2.u"), truncated)
        // A plain safetensors file (no Engram description) is refused with the key named.
        var plain = Data()
        let header = Data(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { plain.append(contentsOf: $0) }
        plain.append(header)
        plain.append(contentsOf: [0, 0, 0, 0])
        XCTAssertTrue(read(plain).contains("engram.patch"), read(plain))
        // An original whose element count overflows Int is an error naming the field, not a trap.
        var withOriginal = samplePatch(model)
        let d = model.config.hidden, m = model.config.intermediate
        withOriginal.originals = [StoredOriginal(weight: .mlpDown(0), dtype: .f32, shape: [d, m], bytes: Data(count: 4 * d * m))]
        let (tensors, description) = try withOriginal.fileContents()
        let overflowing = description.replacingOccurrences(of: "\"shape\":[\(d),\(m)]", with: "\"shape\":[4294967296,4294967296]")
        XCTAssertNotEqual(overflowing, description)
        let overflowPath = dir.appendingPathComponent("overflow.patch").path
        try Safetensors.write(tensors: try tensors.map { name, w in try WritableTensor.matrix(name: name, shape: [w.rows, w.cols], as: .f32, w) }
                                + [WritableTensor.opaqueBytes(name: "original.0", data: Data(count: 4))],
                              metadata: ["engram.patch": overflowing, "format": EditPatch.formatName], to: overflowPath)
        XCTAssertThrowsError(try EditPatch.read(overflowPath)) { XCTAssertTrue("\($0)".contains("originals[0].shape"), "\($0)") }
        XCTAssertThrowsError(try EditPatch.read(dir.appendingPathComponent("missing.patch").path))
        // A base that is no sha256 is named, not shown as if it were one.
        var badBase = samplePatch(model)
        badBase.baseSHA256 = "zz"
        let badBasePath = dir.appendingPathComponent("bad-base.patch").path
        try badBase.write(to: badBasePath)
        XCTAssertThrowsError(try EditPatch.read(badBasePath)) { XCTAssertTrue("\($0)".contains("baseSHA256") && "\($0)".contains("'zz'"), "\($0)") }
    }

    func testWeightNames() {
        XCTAssertEqual(EditableWeight.mlpDown(12).name, "mlp_down.12")
        XCTAssertEqual(EditableWeight(name: "mlp_down.3"), .mlpDown(3))
        XCTAssertNil(EditableWeight(name: "mlp_up.3"))
        XCTAssertNil(EditableWeight(name: "mlp_down.-1"))
    }

    func testPromptContextRenderingAndMerging() {
        let a = PromptContext(demonstrations: "D\n\n", facts: ["F1"])
        let b = PromptContext(demonstrations: "other", facts: ["F2", "F3"])
        XCTAssertEqual(a.render("Q"), "D\n\nNew Fact: F1\nPrompt: Q")
        XCTAssertEqual(PromptContext.merged([a, b])?.render("Q"), "D\n\nNew Fact: F1\nNew Fact: F2\nNew Fact: F3\nPrompt: Q")
        XCTAssertNil(PromptContext.merged([]))
    }
}
