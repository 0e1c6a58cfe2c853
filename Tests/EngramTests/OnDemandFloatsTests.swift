import XCTest
@testable import Engram

/// Quantized weights opened to be dequantized on demand (`Checkpoint.dequantizesOnDemand`, what
/// `engram generate` and `engram serve` use): products read the blocks, prompts through rows
/// dequantized per product, and give the same logits, bit for bit, as the weights dequantized at load;
/// the float copy of a weight is made only when something asks for its memory (an edit).
final class OnDemandFloatsTests: XCTestCase {
    /// Blocks whose f16 scales and offsets are any finite pattern (normal, subnormal, zero, negative).
    func blocks(_ dtype: DType, count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        if !dtype.isQuantized { // F16/BF16: any finite bit pattern
            return (0..<count).flatMap { _ -> [UInt8] in
                var bits = UInt16(truncatingIfNeeded: rng.next())
                if dtype == .f16, bits & 0x7C00 == 0x7C00 { bits &= 0xBFFF }
                if dtype == .bf16, bits & 0x7F80 == 0x7F80 { bits &= 0xBFFF }
                return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            }
        }
        return dtype.randomBlocks(count, rng: &rng) { rng in
            let bits = UInt16(truncatingIfNeeded: rng.next())
            return bits & 0x7C00 == 0x7C00 ? bits & 0xBFFF : bits // inf/NaN exponent → a finite one
        }
    }

    /// Runs `body` for every block type on the vector path (where the CPU has one) and the portable loops.
    func forEachKernelPath(_ body: (DType) -> Void) {
        QuantizedRows.forEachVectorWidth { _ in
            for dtype in DType.storedTypes { body(dtype) }
        }
    }

    /// The dequantizer gives the same floats on the vector and the portable path, split over threads or
    /// not, from any first row, as `Dequantize` (checked against gguf-py) gives on the portable path:
    /// on-demand rows and the copy made at load agree bit for bit.
    func testTheDequantizerGivesTheSameFloatsOnEveryPath() {
        let owner = FloatBuffer(count: 1)
        forEachKernelPath { dtype in
            let rows = 301, cols = 256 // 77k values: split over the pool's threads
            let bytes = blocks(dtype, count: rows * cols / dtype.blockSize, seed: 3) // F16/BF16: count values
            bytes.withUnsafeBytes { raw in
                var expected = [Float](repeating: 0, count: rows * cols)
                let bits = QuantizedRows.vectorBits
                QuantizedRows.vectorBits = 0
                expected.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: raw.baseAddress!, count: rows * cols, into: $0.baseAddress!) }
                QuantizedRows.vectorBits = bits
                let q = QuantizedRows(dtype: dtype, rows: rows, cols: cols, blocks: raw.baseAddress!, owner: owner)
                for (range, threads) in [(0..<rows, 1), (0..<rows, 2), (17..<18, 1), (100..<301, 2)] {
                    var got = [Float](repeating: .nan, count: range.count * cols)
                    got.withUnsafeMutableBufferPointer { q.dequantize(rows: range, into: $0.baseAddress!, threads: threads) }
                    let want = expected[(range.lowerBound * cols)..<(range.upperBound * cols)]
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                   "\(dtype) rows \(range) threads \(threads) vector bits \(QuantizedRows.vectorBits)")
                }
            }
        }
    }

    func smollm2(onDemand: Bool) throws -> (Checkpoint, LanguageModel) {
        guard FileManager.default.fileExists(atPath: ModelRegistry.smollm2Path) else {
            throw XCTSkip("\(ModelRegistry.smollm2Path) is not installed (scripts/setup.sh)")
        }
        let ck = try ModelLoader.checkpoint("smollm2")
        ck.dequantizesOnDemand = onDemand
        return (ck, try ModelLoader.build(ck))
    }

    /// Every weight of the model that is kept as blocks (Q4_1 layers, the Q8_0 embedding/head).
    func blockWeights(_ model: LanguageModel) -> [QuantizedRows] {
        var found: [ObjectIdentifier: QuantizedRows] = [:]
        if let q = model.tokenEmbedding.quantized { found[ObjectIdentifier(q)] = q }
        if let q = model.outputWeight.quantized { found[ObjectIdentifier(q)] = q }
        for l in 0..<model.config.layers {
            if let q = model.readWeight(.mlpDown(l)).quantized { found[ObjectIdentifier(q)] = q }
        }
        return Array(found.values)
    }

    /// Passes of SmolLM2 opened on demand against the model dequantized at load. A prompt longer than
    /// `BLAS.smallProductRows` (32) goes through the same product over the same floats in every layer (its KV
    /// cache agrees bit for bit) and decoding after it reads the same blocks (logits bit for bit). The
    /// output head over several rows is multiplied in pieces, where OpenBLAS picks its kernel by size,
    /// and a short prompt or batch straight from the blocks (other order of sums): those agree to
    /// rounding. No weight's float copy is made on the way.
    func testSmolLM2OnDemandGivesTheLogitsOfTheLoadedFloats() throws {
        let (_, eager) = try smollm2(onDemand: false)
        let (_, lazy) = try smollm2(onDemand: true)
        XCTAssertFalse(blockWeights(lazy).isEmpty)
        XCTAssertTrue(blockWeights(eager).allSatisfy(\.hasFloats))
        let sentence: [Int32] = [504, 3575, 282, 4649, 314, 253, 3528, 30, 378, 6766, 282, 4649, 314, 1300, 2212, 30]
        let long = sentence + sentence + sentence // 48 tokens: through the dequantized pieces
        let short = Array(long.prefix(7))
        XCTAssertGreaterThan(long.count, BLAS.smallProductRows)
        func run(_ model: LanguageModel) throws -> (several: [[Float]], cache: [[Float]], steps: [[Float]]) {
            var several = [try model.forward(long, cache: model.makeCache(), logits: .all).values,
                           try model.forward(short, cache: model.makeCache(), logits: .all).values]
            let batch = try model.forward([SequenceInput(tokens: short, cache: model.makeCache()),
                                           SequenceInput(tokens: Array(short.prefix(3)), cache: model.makeCache())],
                                          hooks: nil, logits: .last)
            several += batch.map(\.values)
            let cache = model.makeCache()
            var logits = try model.forward(long, cache: cache, logits: .none)
            let stored = (0..<model.config.layers).flatMap { l in
                [Array(cache.keys[l].array.prefix(long.count * model.config.kvDim)),
                 Array(cache.values[l].array.prefix(long.count * model.config.kvDim))]
            }
            var steps: [[Float]] = []
            var next = long.last!
            for _ in 0..<4 {
                logits = try model.forward([next], cache: cache)
                steps.append(logits.values)
                next = Sampler.argmax(logits.pointer, count: logits.cols)
            }
            return (several, stored, steps)
        }
        let want = try run(eager), got = try run(lazy)
        XCTAssertTrue(got.cache.map { $0.map(\.bitPattern) } == want.cache.map { $0.map(\.bitPattern) }, "the KV caches differ")
        for (i, (g, w)) in zip(got.steps, want.steps).enumerated() {
            XCTAssertTrue(g.map(\.bitPattern) == w.map(\.bitPattern), "decoding step \(i) differs")
        }
        XCTAssertEqual(got.several.count, 4)
        for (i, (g, w)) in zip(got.several, want.several).enumerated() {
            let worst = zip(g, w).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-4, "prompt logits \(i)")
        }
        XCTAssertTrue(blockWeights(lazy).allSatisfy { !$0.hasFloats }, "a float copy was made while generating")
    }

    /// A tiny LLaMA (hidden 256) whose weights are blocks of every type and F16/BF16 rows, one type per
    /// weight as llama.cpp's mixes combine them. Opened on demand, a 40-token prompt's KV cache and the decoding after it are
    /// bit for bit those of the same file loaded with floats (40 rows: the few-row kernel over the same floats, where it
    /// runs vector code, else sgemm), and a short prompt agrees to rounding; both
    /// agree to rounding with the F32 GGUF of the same values. No float copy is made.
    func testEveryBlockTypeInOneModel() throws {
        var tiny = TinyModel.make(.llama, seed: 51, layers: 2, hidden: 256, intermediate: 512, heads: 4, kvHeads: 2,
                                  vocab: 97, context: 64, ropeTheta: 10000, eps: 1e-5, tied: false)
        let types: [String: DType] = [
            "model.embed_tokens.weight": .q8_0, "lm_head.weight": .q6_K,
            "model.layers.0.self_attn.q_proj.weight": .q4_0, "model.layers.0.self_attn.k_proj.weight": .q5_0,
            "model.layers.0.self_attn.v_proj.weight": .q5_1, "model.layers.0.self_attn.o_proj.weight": .bf16,
            "model.layers.0.mlp.gate_proj.weight": .q4_1, "model.layers.0.mlp.up_proj.weight": .q2_K,
            "model.layers.0.mlp.down_proj.weight": .q3_K,
            "model.layers.1.self_attn.q_proj.weight": .q4_K, "model.layers.1.self_attn.k_proj.weight": .q5_K,
            "model.layers.1.self_attn.v_proj.weight": .q6_K, "model.layers.1.self_attn.o_proj.weight": .f16,
            "model.layers.1.mlp.gate_proj.weight": .iq4_nl, "model.layers.1.mlp.up_proj.weight": .iq4_xs,
            "model.layers.1.mlp.down_proj.weight": .q5_0,
        ]
        XCTAssertEqual(Set(types.values), Set(DType.storedTypes))
        tiny.useRandomBlocks(types, seed: 52)
        var floats = tiny
        for i in floats.tensors.indices { floats.tensors[i].blocks = nil }
        let folder = TemporaryFolder()
        try tiny.writeGGUF(to: folder.file("mixed.gguf"))
        try floats.writeGGUF(to: folder.file("f32.gguf"))
        func model(_ file: String, onDemand: Bool) throws -> LanguageModel {
            let ck = try ModelLoader.checkpoint(folder.file(file))
            ck.dequantizesOnDemand = onDemand
            return try ModelLoader.build(ck)
        }
        let lazy = try model("mixed.gguf", onDemand: true), eager = try model("mixed.gguf", onDemand: false)
        let truth = try model("f32.gguf", onDemand: false)
        let long = (0..<40).map { Int32(($0 * 7 + 3) % 97) }, short = Array(long.prefix(5))
        XCTAssertGreaterThan(long.count, BLAS.smallProductRows)
        func run(_ model: LanguageModel) throws -> (cache: [Float], steps: [Float], short: [Float]) {
            let cache = model.makeCache()
            var logits = try model.forward(long, cache: cache, logits: .last)
            let stored = (0..<model.config.layers).flatMap { l in
                Array(cache.keys[l].array.prefix(long.count * model.config.kvDim)) + Array(cache.values[l].array.prefix(long.count * model.config.kvDim))
            }
            var steps = logits.values
            for _ in 0..<3 {
                logits = try model.forward([Sampler.argmax(logits.pointer, count: logits.cols)], cache: cache)
                steps += logits.values
            }
            return (stored, steps, try model.forward(short, cache: model.makeCache(), logits: .all).values)
        }
        func assertClose(_ a: [Float], _ b: [Float], _ label: String) {
            XCTAssertEqual(a.count, b.count, label)
            let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-4, label)
        }
        let got = try run(lazy), loaded = try run(eager), want = try run(truth)
        XCTAssertTrue(got.steps.allSatisfy(\.isFinite))
        XCTAssertEqual(got.cache.map(\.bitPattern), loaded.cache.map(\.bitPattern), "KV cache, on demand against loaded")
        XCTAssertEqual(got.steps.map(\.bitPattern), loaded.steps.map(\.bitPattern), "decoding, on demand against loaded")
        assertClose(got.short, loaded.short, "short prompt, on demand against loaded")
        assertClose(got.cache, want.cache, "KV cache against the float model")
        assertClose(got.steps, want.steps, "decoding against the float model")
        assertClose(got.short, want.short, "short prompt against the float model")
        let llama = try XCTUnwrap(lazy as? Llama)
        let weights = [llama.tokenEmbedding, llama.outputWeight] + llama.blocks.flatMap { [$0.wq, $0.wk, $0.wv, $0.wo, $0.wGate, $0.wUp, $0.wDown] }
        XCTAssertEqual(weights.count, 16)
        for w in weights {
            let blocks = try XCTUnwrap(w.quantized, "a weight not kept as blocks")
            XCTAssertFalse(blocks.hasFloats, "\(blocks.dtype): a float copy was made")
        }
    }

    /// Products of a few rows straight from the blocks against a double reference over the dequantized
    /// weights, on both paths, with row counts around the four-row sweep, accumulating or not; every row
    /// the bits of the one-row product of that row alone, however the rows are split over threads.
    func testSmallProductsFromBlocks() {
        let owner = FloatBuffer(count: 1)
        forEachKernelPath { dtype in
            // 17 blocks of 32 in a row: the AVX-512 kernels take blocks in pairs, and one is left over.
            let rows = 203, cols = dtype.blockSize == 256 ? 512 : 544
            let bytes = QuantizedDecodeTests.blocks(dtype, rows: rows, cols: cols, seed: 21)
            bytes.withUnsafeBytes { raw in
                var w = [Float](repeating: 0, count: rows * cols)
                w.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: raw.baseAddress!, count: rows * cols, into: $0.baseAddress!) }
                let q = QuantizedRows(dtype: dtype, rows: rows, cols: cols, blocks: raw.baseAddress!, owner: owner)
                var rng = SeededRandom(seed: 22)
                for n in [2, 3, 4, 5, 9] {
                    let x = rng.values(n * cols, scale: 1), start = rng.values(n * rows, scale: 1)
                    for accumulate in [false, true] {
                        var one = start, two = start
                        one.withUnsafeMutableBufferPointer { q.multiply(x, rows: n, into: $0.baseAddress!, accumulate: accumulate, threads: 1) }
                        two.withUnsafeMutableBufferPointer { q.multiply(x, rows: n, into: $0.baseAddress!, accumulate: accumulate, threads: 2) }
                        XCTAssertEqual(one.map(\.bitPattern), two.map(\.bitPattern), "\(dtype) n \(n): split over threads")
                        var alone = start
                        alone.withUnsafeMutableBufferPointer { y in
                            for i in 0..<n { q.multiply(Array(x[(i * cols)..<((i + 1) * cols)]), into: y.baseAddress! + i * rows, accumulate: accumulate, threads: 1) }
                        }
                        XCTAssertEqual(one.map(\.bitPattern), alone.map(\.bitPattern), "\(dtype) n \(n): not the one-row products")
                        for i in 0..<n {
                            QuantizedDecodeTests.assertMatchesReference(Array(one[(i * rows)..<((i + 1) * rows)]), weights: w, x: Array(x[(i * cols)..<((i + 1) * cols)]),
                                                                         start: accumulate ? Array(start[(i * rows)..<((i + 1) * rows)]) : nil,
                                                                         "\(dtype) n \(n) row \(i) accumulate \(accumulate)")
                        }
                    }
                }
            }
        }
    }

    /// The bits of a four-token pass's logits (every position) and of one decoding step after it.
    func logits(_ model: LanguageModel) throws -> [UInt32] {
        let cache = model.makeCache()
        var out = try model.forward([1, 5, 9, 2], cache: cache, logits: .all).values
        out += try model.forward([3], cache: cache).values
        return out.map(\.bitPattern)
    }

    /// An edit on a model opened on demand makes the float copy of the weight it changes (only that one),
    /// gives the logits the same edit gives on the loaded floats (to rounding: a pass of four tokens is
    /// multiplied straight from the blocks), and reverting it restores the logits of before bit for bit,
    /// reading the blocks again.
    func testAPatchOnDemandMakesOnlyItsWeightsFloats() throws {
        let file = try QuantizedTinyLlama(seed: 41)
        let eager = try file.model(), lazy = try file.model(onDemand: true)
        func assertClose(_ a: [UInt32], _ b: [UInt32], _ label: String) {
            let worst = zip(a, b).map { abs(Float(bitPattern: $0) - Float(bitPattern: $1)) / max(1, abs(Float(bitPattern: $1))) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-5, label)
        }
        let before = try logits(lazy)
        assertClose(before, try logits(eager), "unedited")

        var rng = SeededRandom(seed: 8)
        let patch = file.downProjectionPatch(layer: 1, rng: &rng)
        _ = try patch.apply(to: eager)
        let applied = try patch.apply(to: lazy)
        let down1 = lazy.readWeight(.mlpDown(1)).quantized!, down0 = lazy.readWeight(.mlpDown(0)).quantized!
        XCTAssertTrue(down1.hasFloats)
        XCTAssertFalse(down0.hasFloats, "a weight the patch does not change got a float copy")
        let edited = try logits(lazy)
        XCTAssertNotEqual(edited, before)
        assertClose(edited, try logits(eager), "edited")

        try applied.revert()
        XCTAssertTrue(down1.isCurrent)
        XCTAssertEqual(try logits(lazy), before)
    }

    /// Between a server's jobs the float copies that an edit made are dropped, except those of weights
    /// the edits in force changed. The logits do not depend on which copies exist (a weight whose blocks
    /// are current is read from them), and the next use makes a copy again.
    func testReleasingKeepsEditedWeightsAndTheLogits() throws {
        let file = try QuantizedTinyLlama(seed: 42)
        let ck = try file.checkpoint(onDemand: true)
        let model = try ModelLoader.build(ck)
        func logits() throws -> [UInt32] { try self.logits(model) }
        let before = try logits()
        let down0 = model.readWeight(.mlpDown(0)), down1 = model.readWeight(.mlpDown(1))
        _ = down0.pointer // what a gradient through layer 0 does
        XCTAssertTrue(down0.quantized!.hasFloats)
        var rng = SeededRandom(seed: 9)
        let applied = try file.downProjectionPatch(layer: 1, rng: &rng).apply(to: model)
        let edited = try logits()
        ck.releaseUnchangedFloatCopies()
        XCTAssertFalse(down0.quantized!.hasFloats)
        XCTAssertTrue(down1.quantized!.hasFloats, "the edited weight lost its floats")
        XCTAssertEqual(try logits(), edited)
        try applied.revert()
        ck.releaseUnchangedFloatCopies()
        XCTAssertFalse(down1.quantized!.hasFloats)
        XCTAssertEqual(try logits(), before)
        XCTAssertEqual(down0.values, try file.checkpoint().matrix("blk.0.ffn_down.weight", shape: [file.tiny.hidden, file.tiny.intermediate]).values)
    }

    /// The input gradient through a weight kept as blocks, in several pieces (1.3M values), for one and
    /// for several rows, accumulating or not, against a double reference; no float copy made. Where the
    /// few-row kernel runs, the pieces give the bits of the whole float weight in one call.
    func testInputGradientFromBlocks() {
        let rows = 4099, cols = 320
        withQ8_0Weight(rows: rows, cols: cols, seed: 31) { q, w in
            var rng = SeededRandom(seed: 32)
            for n in [1, 5] {
                let dy = rng.values(n * rows, scale: 1), start = rng.values(n * cols, scale: 1)
                for accumulate in [false, true] {
                    var dx = start
                    dx.withUnsafeMutableBufferPointer { BLAS.linearBackward(dy, rows: n, blocks: q, into: $0.baseAddress!, accumulate: accumulate) }
                    for i in 0..<n {
                        for c in 0..<cols {
                            var exact = accumulate ? Double(start[i * cols + c]) : 0, magnitude = 0.0
                            for r in 0..<rows {
                                exact += Double(dy[i * rows + r]) * Double(w[r * cols + c])
                                magnitude += abs(Double(dy[i * rows + r]) * Double(w[r * cols + c]))
                            }
                            if abs(Double(dx[i * cols + c]) - exact) > 1e-5 * (magnitude + 1) {
                                XCTFail("n \(n) accumulate \(accumulate): dx[\(i), \(c)] = \(dx[i * cols + c]), expected \(exact)")
                                return
                            }
                        }
                    }
                    if BLAS.fewRows(n, upTo: BLAS.fewRowBackwardRows) {
                        var whole = start
                        whole.withUnsafeMutableBufferPointer {
                            BLAS.linearBackward(dy, rows: n, weight: Matrix(rows: rows, cols: cols, values: w), into: $0.baseAddress!, accumulate: accumulate)
                        }
                        XCTAssertEqual(dx, whole, "n \(n) accumulate \(accumulate): pieces of blocks against the whole float weight")
                    }
                }
            }
        }
    }

    /// Runs `body` with random Q8_0 blocks of `rows × cols` kept as blocks, and their floats; then checks
    /// that no float copy of the blocks was made.
    func withQ8_0Weight(rows: Int, cols: Int, seed: UInt64, _ body: (QuantizedRows, [Float]) -> Void) {
        let owner = FloatBuffer(count: 1)
        let bytes = QuantizedDecodeTests.blocks(.q8_0, rows: rows, cols: cols, seed: seed)
        bytes.withUnsafeBytes { raw in
            var w = [Float](repeating: 0, count: rows * cols)
            w.withUnsafeMutableBufferPointer { Dequantize.run(.q8_0, source: raw.baseAddress!, count: rows * cols, into: $0.baseAddress!) }
            let q = QuantizedRows(dtype: .q8_0, rows: rows, cols: cols, blocks: raw.baseAddress!, owner: owner)
            body(q, w)
            XCTAssertFalse(q.hasFloats, "a float copy of the blocks was made")
        }
    }

    /// More rows than `BLAS.smallProductRows` (up to `fewRowForwardRows`) times a weight kept as blocks in
    /// several pieces (1.3M values): where the few-row kernel runs, the bits of the whole float weight's
    /// product (a prompt's numbers do not depend on how its weights were opened); no float copy made.
    func testForwardInPiecesGivesTheFloatWeightsBits() throws {
        try XCTSkipUnless(BLAS.fewRowKernelsVectorized, "the few-row kernels run vector code only with AVX-512")
        let rows = 4099, cols = 320, n = BLAS.smallProductRows + 3
        XCTAssertLessThanOrEqual(n, BLAS.fewRowForwardRows)
        withQ8_0Weight(rows: rows, cols: cols, seed: 33) { q, w in
            var rng = SeededRandom(seed: 34)
            let x = rng.values(n * cols, scale: 1)
            var fromBlocks = [Float](repeating: 0, count: n * rows), fromFloats = fromBlocks
            BLAS.linear(x, rows: n, weight: Matrix(dequantizingOnDemand: q), into: &fromBlocks)
            BLAS.linear(x, rows: n, weight: Matrix(rows: rows, cols: cols, values: w), into: &fromFloats)
            XCTAssertEqual(fromBlocks, fromFloats)
        }
    }

    /// ROME's value search (loss and gradient with respect to δ at a hook site, through every block
    /// above it and the head) on a model kept as blocks: the numbers of the model dequantized at load,
    /// to rounding, and not one float copy made.
    func testValueSearchOnBlocksMakesNoFloatCopy() throws {
        let file = try QuantizedTinyLlama(seed: 43)
        let tiny = file.tiny, eager = try file.model(), lazy = try file.model(onDemand: true)
        let rewriting = [ValueSearchPrompt(prompt: [4, 8, 15, 16, 23], lookup: 1, target: [42, 7]),
                         ValueSearchPrompt(prompt: [9, 9, 4, 8, 15, 16, 23], lookup: 3, target: [42, 7])]
        let essence = [ValueSearchPrompt(tokens: [8, 30, 31], lookup: 0)]
        var rng = SeededRandom(seed: 44)
        let delta = (0..<tiny.hidden).map { _ in 0.3 * rng.symmetric() }
        func evaluate(_ model: LanguageModel) throws -> (Float, [Float]) {
            let search = try ValueSearch(model: model, site: .mlpOutput(0), rewriting: rewriting, essence: essence)
            let (loss, gradient) = try search.evaluate(delta: delta, klFactor: 0.0625, weightDecay: 1e-3)
            return (loss.total, gradient!)
        }
        let (wantLoss, want) = try evaluate(eager), (gotLoss, got) = try evaluate(lazy)
        XCTAssertEqual(gotLoss, wantLoss, accuracy: 1e-5 * abs(wantLoss))
        XCTAssertLessThan(GradientCompare.relativeError(got.map(Double.init), want.map(Double.init)), 1e-5)
        for l in 0..<tiny.layers { XCTAssertFalse(lazy.readWeight(.mlpDown(l)).quantized!.hasFloats, "layer \(l)") }
        XCTAssertFalse(lazy.outputWeight.quantized!.hasFloats, "the head")
    }
}
