import XCTest
@testable import Engram

/// One-row products read straight from blocks of every type (`QuantizedRows`) or float rows: the same
/// numbers as the products over the (dequantized) floats, on both the vector and the portable paths,
/// and never from blocks that an edit has made stale.
final class QuantizedDecodeTests: XCTestCase {
    /// Random blocks with moderate f16 scales (random bit patterns would include NaN and inf), or
    /// F16/BF16 rows of random values.
    static func blocks(_ dtype: DType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        if !dtype.isQuantized { return DType.halfBytes(dtype, rng.values(rows * cols, scale: 1)) } // F16/BF16 rows
        // Smaller for the K types, whose 6- and 8-bit sub-scales multiply d again.
        let largest: Float = dtype.blockSize == 256 ? 0.002 : 0.1
        return dtype.randomBlocks(rows * cols / dtype.blockSize, rng: &rng) { Float16($0.uniform() * largest).bitPattern }
    }

    func check(_ dtype: DType, rows: Int, cols: Int, threads: Int, accumulate: Bool, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) {
        let bytes = Self.blocks(dtype, rows: rows, cols: cols, seed: seed)
        let owner = FloatBuffer(count: 1)
        var rng = SeededRandom(seed: seed + 100)
        let x = rng.values(cols, scale: 1)
        let start = rng.values(rows, scale: 1)
        var weights = [Float](repeating: 0, count: rows * cols)
        bytes.withUnsafeBytes { src in
            weights.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: src.baseAddress!, count: rows * cols, into: $0.baseAddress!) }
        }
        var y = start
        bytes.withUnsafeBytes { src in
            let q = QuantizedRows(dtype: dtype, rows: rows, cols: cols, blocks: src.baseAddress!, owner: owner)
            y.withUnsafeMutableBufferPointer { q.multiply(x, into: $0.baseAddress!, accumulate: accumulate, threads: threads) }
        }
        Self.assertMatchesReference(y, weights: weights, x: x, start: accumulate ? start : nil,
                               "\(dtype) \(rows)×\(cols) threads \(threads) accumulate \(accumulate)", file: file, line: line)
    }

    /// `y` against `start + W x` computed in double (W row-major, `y.count` rows); the bound scales with
    /// Σ|w·x| of the row.
    static func assertMatchesReference(_ y: [Float], weights: UnsafePointer<Float>, x: [Float], start: [Float]?, _ label: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        let rows = y.count, cols = x.count
        for r in 0..<rows {
            var exact = start.map { Double($0[r]) } ?? 0, magnitude = 0.0
            for c in 0..<cols {
                exact += Double(weights[r * cols + c]) * Double(x[c])
                magnitude += abs(Double(weights[r * cols + c]) * Double(x[c]))
            }
            if abs(Double(y[r]) - exact) > 1e-5 * (magnitude + 1) {
                XCTFail("\(label) vector bits \(QuantizedRows.vectorBits): row \(r) got \(y[r]), expected \(exact)", file: file, line: line)
                return
            }
        }
    }

    func testProductsMatchTheDequantizedWeights() {
        // On a CPU with AVX2, FMA and F16C (and AVX-512 F) the widest vector paths must actually be chosen.
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        if flags.isSuperset(of: ["avx2", "fma", "f16c"]) {
            let saved = QuantizedRows.vectorBits
            QuantizedRows.vectorized = true
            XCTAssertEqual(QuantizedRows.vectorBits, flags.contains("avx512f") ? 512 : 256, "the CPU's widest vector paths do not run")
            QuantizedRows.vectorBits = saved
        }
        QuantizedRows.forEachVectorWidth { _ in
            for dtype in DType.storedTypes {
                for accumulate in [false, true] {
                    check(dtype, rows: 37, cols: dtype.blockSize == 256 ? 256 : 96, threads: 1, accumulate: accumulate, seed: 1)
                    // Large enough to be split over threads; an odd row count leaves uneven pieces.
                    check(dtype, rows: 601, cols: 512, threads: 2, accumulate: accumulate, seed: 2)
                    check(dtype, rows: 601, cols: 512, threads: 3, accumulate: accumulate, seed: 3)
                    // Rows of more than 1024 blocks of 32: the AVX-512 Q4_1 kernel hands them to the AVX2 one.
                    check(dtype, rows: 3, cols: 33_280, threads: 1, accumulate: accumulate, seed: 4)
                }
            }
        }
    }

    /// One-row float products (`BLAS.linear` with one row) against a double reference, with row
    /// lengths that leave a remainder after the vector steps, split over threads or not.
    func testFloatProductsMatch() {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        var rng = SeededRandom(seed: 7)
        QuantizedRows.forEachVectorWidth { _ in
            for (rows, cols) in [(5, 7), (33, 77), (700, 601), (40, 640)] { // 640: no remainder
                for threads in [1, 2] {
                    BLAS.threads = threads
                    let w = Matrix(rows: rows, cols: cols, values: rng.values(rows * cols, scale: 1))
                    let x = rng.values(cols, scale: 1), start = rng.values(rows, scale: 1)
                    for accumulate in [false, true] {
                        var y = start
                        y.withUnsafeMutableBufferPointer { BLAS.linear(x, rows: 1, weight: w, into: $0.baseAddress!, accumulate: accumulate) }
                        Self.assertMatchesReference(y, weights: w.pointer, x: x, start: accumulate ? start : nil,
                                               "\(rows)×\(cols) threads \(threads) accumulate \(accumulate)")
                    }
                }
            }
        }
    }

    /// Several threads decoding at once (the server's requests, evaluation workers): one holds the pool,
    /// the others compute alone; every result equals the one-thread product bit for bit (rows do not
    /// depend on how they are split).
    func testConcurrentProductsAgree() {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        var rng = SeededRandom(seed: 11)
        let w = Matrix(rows: 700, cols: 576, values: rng.values(700 * 576, scale: 1))
        let x = rng.values(576, scale: 1)
        BLAS.threads = 1
        var expected = [Float](repeating: 0, count: 700)
        expected.withUnsafeMutableBufferPointer { BLAS.linear(x, rows: 1, weight: w, into: $0.baseAddress!) }
        BLAS.threads = 2
        let mismatches = FloatBuffer(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            var y = [Float](repeating: 0, count: 700)
            for _ in 0..<300 {
                y.withUnsafeMutableBufferPointer { BLAS.linear(x, rows: 1, weight: w, into: $0.baseAddress!) }
                if y != expected { mismatches[caller] += 1 }
            }
        }
        XCTAssertEqual(mismatches.array, [0, 0, 0, 0])
    }

    /// The logits of one decoding step (token 3 after the prompt 1, 5, 9): the pass that reads blocks.
    func decodeStep(_ model: LanguageModel) throws -> [Float] {
        let cache = model.makeCache()
        _ = try model.forward([1, 5, 9], cache: cache)
        return try model.forward([3], cache: cache).values
    }

    /// A tiny LLaMA whose MLP down projection and output head are Q8_0 in the GGUF: one-token passes read
    /// the blocks; once `weight(_:)` hands the down projection out and it is changed, one-token passes
    /// follow the changed floats (checked against a prompt pass, which always reads the floats).
    func testAnEditedWeightIsNotReadFromItsBlocks() throws {
        let file = try QuantizedTinyLlama(seed: 31, quantizing: ["model.layers.0.mlp.down_proj.weight", "lm_head.weight"])
        let tiny = file.tiny, model = try file.model()
        XCTAssertEqual(model.outputWeight.quantized?.isCurrent, true)

        func stepAgainstPrompt() throws -> Double {
            let step = try decodeStep(model), whole = try model.forward([1, 5, 9, 3], cache: model.makeCache())
            return (0..<tiny.vocab).map { abs(Double(step[$0]) - Double(whole.pointer[$0])) }.max() ?? 0
        }
        XCTAssertLessThan(try stepAgainstPrompt(), 1e-4)

        // Reading (the value cache's fingerprint, shapes) keeps the blocks; handing out for writing does not.
        _ = ValueCache.weightsFingerprint(model)
        XCTAssertEqual(model.readWeight(.mlpDown(0)).quantized?.isCurrent, true)
        let down = model.weight(.mlpDown(0))
        XCTAssertEqual(down.quantized?.isCurrent, false)
        XCTAssertEqual(model.outputWeight.quantized?.isCurrent, true) // only the weight handed out
        for i in 0..<down.count { down.pointer[i] += 0.05 * Float(i % 7) - 0.15 }
        XCTAssertLessThan(try stepAgainstPrompt(), 1e-4)

        // Stale blocks would have given a different step: reading them on purpose shows the change is seen.
        let fresh = try decodeStep(model)
        let old = try decodeStep(try file.model())
        XCTAssertGreaterThan(zip(fresh, old).map { abs($0 - $1) }.max() ?? 0, 1e-2)
    }

    /// A patch applied to a weight decoded from its blocks moves decoding to the floats; reverting it
    /// (last-in first-out when stacked) puts the floats back bit for bit and the blocks back in use, so
    /// the one-token logits are those of before, to the bit.
    func testRevertingAPatchPutsTheBlocksBackInUse() throws {
        let file = try QuantizedTinyLlama(seed: 33, quantizing: ["model.layers.1.mlp.down_proj.weight"])
        let model = try file.model()
        let before = try decodeStep(model)
        let blocks = model.readWeight(.mlpDown(1)).quantized
        XCTAssertEqual(blocks?.isCurrent, true)
        var rng = SeededRandom(seed: 5)
        func patch() -> EditPatch { file.downProjectionPatch(layer: 1, rng: &rng) }
        let first = try patch().apply(to: model)
        XCTAssertEqual(blocks?.isCurrent, false)
        let second = try patch().apply(to: model)
        XCTAssertNotEqual(try decodeStep(model), before)
        try second.revert()
        XCTAssertEqual(blocks?.isCurrent, false) // the first patch is still in force
        try first.revert()
        XCTAssertEqual(blocks?.isCurrent, true)
        XCTAssertEqual(try decodeStep(model), before)
    }

    /// Switching the path off gives the float products (what the benchmark compares against).
    func testThePathCanBeSwitchedOff() throws {
        let file = try QuantizedTinyLlama(seed: 32, quantizing: ["lm_head.weight"])
        let model = try file.model()
        QuantizedRows.enabled = false
        defer { QuantizedRows.enabled = true }
        XCTAssertEqual(model.outputWeight.quantized?.isCurrent, false)
        try assertReferenceLogits(try file.checkpoint(), file.tiny, sequences: [[7]], label: "floats")
    }
}
