import XCTest
import Engram

/// Dequantizers against values computed in the test from the GGML block definitions (element by
/// element, with the index arithmetic written out), plus a few numbers worked out by hand, plus gguf-py's
/// values for random blocks of every type, plus the real model's samples from the transformers-produced
/// fixture.
final class FormatDequantizeTests: XCTestCase {
    func half(_ bytes: [UInt8], _ at: Int) -> Double {
        Double(Float(Float16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)))
    }

    func setHalf(_ bytes: inout [UInt8], _ at: Int, _ value: Float16) {
        bytes[at] = UInt8(value.bitPattern & 0xFF)
        bytes[at + 1] = UInt8(value.bitPattern >> 8)
    }

    func run(_ dtype: DType, _ bytes: [UInt8]) -> [Float] {
        let count = bytes.count / dtype.blockBytes * dtype.blockSize
        var out = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { Dequantize.run(dtype, source: src.baseAddress!, count: count, into: $0.baseAddress!) } }
        return out
    }

    func randomBlocks(_ dtype: DType, blocks: Int, seed: UInt64, halves: [Int]) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        var bytes = (0..<(blocks * dtype.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for b in 0..<blocks {
            // Random bit patterns would include NaN/inf scales; use moderate ones.
            for at in halves { setHalf(&bytes, b * dtype.blockBytes + at, Float16(rng.uniform() * 2)) }
        }
        return bytes
    }

    func compare(_ got: [Float], _ expected: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        for (i, (g, e)) in zip(got, expected).enumerated() where abs(Double(g) - e) > 1e-6 * max(1, abs(e)) {
            XCTFail("\(label)[\(i)]: got \(g), expected \(e)", file: file, line: line)
            return
        }
    }

    /// The 6-bit scale and min of sub-block j (0..<8) of Q4_K/Q5_K: sub-blocks 0-3 use the low 6 bits
    /// of bytes j and j+4; 4-7 combine a nibble of byte j+4 with the top 2 bits of bytes j-4 / j.
    func kScaleMin(_ s: ArraySlice<UInt8>, _ j: Int) -> (Double, Double) {
        let q = Array(s)
        if j < 4 { return (Double(q[j] & 0x3F), Double(q[j + 4] & 0x3F)) }
        let scale = Int(q[j + 4] & 0x0F) + Int(q[j - 4] >> 6) * 16
        let min = Int(q[j + 4] >> 4) + Int(q[j] >> 6) * 16
        return (Double(scale), Double(min))
    }

    func testQ8_0() {
        var bytes = randomBlocks(.q8_0, blocks: 3, seed: 1, halves: [0])
        let got = run(.q8_0, bytes)
        var expected: [Double] = []
        for b in 0..<3 {
            let d = half(bytes, b * 34)
            for j in 0..<32 { expected.append(d * Double(Int8(bitPattern: bytes[b * 34 + 2 + j]))) }
        }
        compare(got, expected, "Q8_0")
        // By hand: d = 0.25, q = -128 → -32; q = 5 → 1.25.
        setHalf(&bytes, 0, 0.25); bytes[2] = 0x80; bytes[3] = 5
        XCTAssertEqual(run(.q8_0, bytes)[0], -32)
        XCTAssertEqual(run(.q8_0, bytes)[1], 1.25)
    }

    func testQ4_0() {
        var bytes = randomBlocks(.q4_0, blocks: 2, seed: 2, halves: [0])
        var expected: [Double] = []
        for b in 0..<2 {
            let d = half(bytes, b * 18)
            // Element i < 16 is the low nibble of byte i, element i ≥ 16 the high nibble of byte i - 16.
            for i in 0..<32 {
                let byte = bytes[b * 18 + 2 + i % 16]
                let q = i < 16 ? Int(byte & 0x0F) : Int(byte >> 4)
                expected.append(d * Double(q - 8))
            }
        }
        compare(run(.q4_0, bytes), expected, "Q4_0")
        // By hand: d = 2, byte 0x9F → element 0: (15 - 8)·2 = 14, element 16: (9 - 8)·2 = 2.
        setHalf(&bytes, 0, 2); bytes[2] = 0x9F
        XCTAssertEqual(run(.q4_0, bytes)[0], 14)
        XCTAssertEqual(run(.q4_0, bytes)[16], 2)
    }

    func testQ4_1() {
        var bytes = randomBlocks(.q4_1, blocks: 2, seed: 3, halves: [0, 2])
        var expected: [Double] = []
        for b in 0..<2 {
            let d = half(bytes, b * 20), m = half(bytes, b * 20 + 2)
            for i in 0..<32 {
                let byte = bytes[b * 20 + 4 + i % 16]
                expected.append(d * Double(i < 16 ? byte & 0x0F : byte >> 4) + m)
            }
        }
        compare(run(.q4_1, bytes), expected, "Q4_1")
        // By hand: d = 0.5, m = -1, byte 1 = 0x3C → element 1: 12·0.5 - 1 = 5, element 17: 3·0.5 - 1 = 0.5.
        setHalf(&bytes, 0, 0.5); setHalf(&bytes, 2, -1); bytes[5] = 0x3C
        XCTAssertEqual(run(.q4_1, bytes)[1], 5)
        XCTAssertEqual(run(.q4_1, bytes)[17], 0.5)
    }

    func testQ4_K() {
        var bytes = randomBlocks(.q4_K, blocks: 2, seed: 4, halves: [0, 2])
        var expected: [Double] = []
        for b in 0..<2 {
            let o = b * 144
            let d = half(bytes, o), dmin = half(bytes, o + 2)
            for i in 0..<256 {
                // 8 sub-blocks of 32; each 64-element group g reads 32 bytes: low nibbles, then high nibbles.
                let j = i / 32, g = i / 64, l = i % 32
                let byte = bytes[o + 16 + 32 * g + l]
                let q = j % 2 == 0 ? Int(byte & 0x0F) : Int(byte >> 4)
                let (sc, mn) = kScaleMin(bytes[(o + 4)..<(o + 16)], j)
                expected.append(d * sc * Double(q) - dmin * mn)
            }
        }
        compare(run(.q4_K, bytes), expected, "Q4_K")
        // By hand: d = 1, dmin = 0.5; scales[0] = 0x45 (scale0 = 5, top bits 1), scales[4] = 3 (min0 = 3),
        // scales[8] = 0x21 → scale4 = 1 + 16·1 = 17, min4 = 2 + 16·0 = 2.
        // Element 0 = low nibble of qs[0] = 7 → 1·5·7 - 0.5·3 = 33.5; element 128 = low nibble of qs[64] = 10 → 170 - 1 = 169.
        setHalf(&bytes, 0, 1); setHalf(&bytes, 2, 0.5)
        bytes[4] = 0x45; bytes[8] = 0x03; bytes[12] = 0x21; bytes[16] = 0x07; bytes[16 + 64] = 0x0A
        XCTAssertEqual(run(.q4_K, bytes)[0], 33.5)
        XCTAssertEqual(run(.q4_K, bytes)[128], 169)
    }

    func testQ5_K() {
        var bytes = randomBlocks(.q5_K, blocks: 2, seed: 5, halves: [0, 2])
        var expected: [Double] = []
        for b in 0..<2 {
            let o = b * 176
            let d = half(bytes, o), dmin = half(bytes, o + 2)
            for i in 0..<256 {
                let j = i / 32, g = i / 64, l = i % 32
                let byte = bytes[o + 48 + 32 * g + l]
                let low = j % 2 == 0 ? Int(byte & 0x0F) : Int(byte >> 4)
                // The fifth bit of sub-block j is bit j of qh[l].
                let high = Int(bytes[o + 16 + l] >> j) & 1
                let (sc, mn) = kScaleMin(bytes[(o + 4)..<(o + 16)], j)
                expected.append(d * sc * Double(low + 16 * high) - dmin * mn)
            }
        }
        compare(run(.q5_K, bytes), expected, "Q5_K")
        // By hand: d = 1, dmin = 0, scale0 = 2; qs[0] = 0x03, qh[0] bit 0 set → q = 3 + 16 = 19 → 38.
        setHalf(&bytes, 0, 1); setHalf(&bytes, 2, 0)
        bytes[4] = 2; bytes[48] = 0x03; bytes[16] = 0x01
        XCTAssertEqual(run(.q5_K, bytes)[0], 38)
    }

    func testQ6_K() {
        var bytes = randomBlocks(.q6_K, blocks: 2, seed: 6, halves: [208])
        var expected: [Double] = []
        for b in 0..<2 {
            let o = b * 210
            let d = half(bytes, o + 208)
            for i in 0..<256 {
                // Two halves of 128; in each, quarter t of 32 takes a nibble of ql and 2 bits of qh.
                let n = i / 128, t = (i % 128) / 32, l = i % 32
                let qlByte = bytes[o + 64 * n + l + (t % 2) * 32]
                let low = t < 2 ? Int(qlByte & 0x0F) : Int(qlByte >> 4)
                let high = Int(bytes[o + 128 + 32 * n + l] >> (2 * t)) & 3
                let scale = Double(Int8(bitPattern: bytes[o + 192 + 8 * n + l / 16 + 2 * t]))
                expected.append(d * scale * Double(low + 16 * high - 32))
            }
        }
        compare(run(.q6_K, bytes), expected, "Q6_K")
        // By hand: d = 0.5; ql[0] = 0xC5, qh[0] = 0x32; scales[0] = -3, scales[4] = 7.
        // Element 0: 5 + 16·2 - 32 = 5 → 0.5·(-3)·5 = -7.5. Element 64: 12 + 16·3 - 32 = 28 → 0.5·7·28 = 98.
        setHalf(&bytes, 208, 0.5)
        bytes[0] = 0xC5; bytes[128] = 0x32; bytes[192] = UInt8(bitPattern: -3); bytes[196] = 7
        XCTAssertEqual(run(.q6_K, bytes)[0], -7.5)
        XCTAssertEqual(run(.q6_K, bytes)[64], 98)
    }

    func testQ5_0AndQ5_1() {
        for dtype in [DType.q5_0, .q5_1] {
            let withMin = dtype == .q5_1, size = dtype.blockBytes, qsAt = withMin ? 8 : 6
            var bytes = randomBlocks(dtype, blocks: 2, seed: 7, halves: withMin ? [0, 2] : [0])
            var expected: [Double] = []
            for b in 0..<2 {
                let o = b * size
                let d = half(bytes, o), m = withMin ? half(bytes, o + 2) : 0
                for i in 0..<32 {
                    // Four nibbles as in Q4_0/Q4_1; the fifth bit of element i is bit i of the 4 bytes before qs.
                    let byte = bytes[o + qsAt + i % 16]
                    let low = i < 16 ? Int(byte & 0x0F) : Int(byte >> 4)
                    let fifth = Int(bytes[o + qsAt - 4 + i / 8] >> (i % 8)) & 1
                    let q = low + 16 * fifth
                    expected.append(withMin ? d * Double(q) + m : d * Double(q - 16))
                }
            }
            compare(run(dtype, bytes), expected, "\(dtype)")
            // By hand: d = 0.5 (m = 1); qs[0] = 0x2F, fifth bits of elements 0 and 16 set, of 1 and 17 clear.
            // Q5_0: element 0 = (15 + 16 - 16)·0.5 = 7.5, element 16 = (2 + 16 - 16)·0.5 = 1.
            // Q5_1: element 0 = 31·0.5 + 1 = 16.5, element 16 = 18·0.5 + 1 = 10.
            setHalf(&bytes, 0, 0.5)
            if withMin { setHalf(&bytes, 2, 1) }
            bytes[qsAt] = 0x2F; bytes[qsAt - 4] = 0x01; bytes[qsAt - 2] = 0x01
            XCTAssertEqual(run(dtype, bytes)[0], withMin ? 16.5 : 7.5, "\(dtype)")
            XCTAssertEqual(run(dtype, bytes)[16], withMin ? 10 : 1, "\(dtype)")
        }
    }

    func testQ2_K() {
        var bytes = randomBlocks(.q2_K, blocks: 2, seed: 8, halves: [80, 82])
        var expected: [Double] = []
        for b in 0..<2 {
            let o = b * 84
            let d = half(bytes, o + 80), dmin = half(bytes, o + 82)
            for i in 0..<256 {
                // Sub-block of 16 values s = i / 16 has scale byte s (scale: low nibble, min: high nibble).
                // Each half of 128 reads its 32 qs bytes four times, two bits further each time.
                let s = i / 16, part = i / 128, shift = (i % 128) / 32, l = i % 32
                let q = Int(bytes[o + 16 + 32 * part + l] >> (2 * shift)) & 3
                let sc = bytes[o + s]
                expected.append(d * Double(sc & 0x0F) * Double(q) - dmin * Double(sc >> 4))
            }
        }
        compare(run(.q2_K, bytes), expected, "Q2_K")
        // By hand: d = 2, dmin = 0.5; scales[0] = 0x13 (scale 3, min 1), qs[0] = 0b1110 → element 0 is
        // 2·3·2 - 0.5 = 11.5, element 32 (next two bits, scales[2] = 0x20: scale 0, min 2) is -1.
        setHalf(&bytes, 80, 2); setHalf(&bytes, 82, 0.5)
        bytes[0] = 0x13; bytes[2] = 0x20; bytes[16] = 0b1110
        XCTAssertEqual(run(.q2_K, bytes)[0], 11.5)
        XCTAssertEqual(run(.q2_K, bytes)[32], -1)
    }

    func testQ3_K() {
        var bytes = randomBlocks(.q3_K, blocks: 2, seed: 9, halves: [108])
        var expected: [Double] = []
        for b in 0..<2 {
            let o = b * 110
            let d = half(bytes, o + 108)
            for i in 0..<256 {
                let s = i / 16, part = i / 128, shift = (i % 128) / 32, l = i % 32
                let low2 = Int(bytes[o + 32 + 32 * part + l] >> (2 * shift)) & 3
                // The third bit: bit (4·part + shift) of hmask[l]; when clear, the value is 4 lower.
                let third = Int(bytes[o + l] >> (4 * part + shift)) & 1
                // Scale s (6 bits, offset 32): a nibble of byte s % 8 of the 12 (low for s < 8), and two
                // bits of byte 8 + s % 4, at 2·(s / 4).
                let sb = bytes[o + 96 + s % 8]
                let nibble = s < 8 ? Int(sb & 0x0F) : Int(sb >> 4)
                let top = Int(bytes[o + 96 + 8 + s % 4] >> (2 * (s / 4))) & 3
                let scale = nibble + 16 * top - 32
                expected.append(d * Double(scale) * Double(low2 - (third == 1 ? 0 : 4)))
            }
        }
        compare(run(.q3_K, bytes), expected, "Q3_K")
        // By hand: d = 0.25; scale 0 = 0x5 + 16·3 - 32 = 21 (byte 96 low nibble 5, byte 104 bits 0-1 = 3);
        // qs[0] = 0b10, hmask[0] bit 0 clear → q = 2 - 4 = -2 → 0.25·21·(-2) = -10.5.
        setHalf(&bytes, 108, 0.25)
        bytes[96] = (bytes[96] & 0xF0) | 0x05; bytes[104] = (bytes[104] & 0xFC) | 0x03
        bytes[32] = 0b10; bytes[0] &= 0xFE
        XCTAssertEqual(run(.q3_K, bytes)[0], -10.5)
    }

    func testIQ4() {
        // The nibble indexes ggml's fixed table of 16 values (a grid denser near zero).
        let table: [Double] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
        var nl = randomBlocks(.iq4_nl, blocks: 2, seed: 10, halves: [0])
        var expected: [Double] = []
        for b in 0..<2 {
            let d = half(nl, b * 18)
            for i in 0..<32 {
                let byte = nl[b * 18 + 2 + i % 16]
                expected.append(d * table[Int(i < 16 ? byte & 0x0F : byte >> 4)])
            }
        }
        compare(run(.iq4_nl, nl), expected, "IQ4_NL")
        var xs = randomBlocks(.iq4_xs, blocks: 2, seed: 11, halves: [0])
        expected = []
        for b in 0..<2 {
            let o = b * 136, d = half(xs, o)
            let high = Int(xs[o + 2]) | Int(xs[o + 3]) << 8
            for i in 0..<256 {
                // Sub-block j of 32: a 6-bit scale (nibble of scales_l[j / 2], two bits of scales_h), minus 32.
                let j = i / 32, l = i % 32
                let scale = Int(xs[o + 4 + j / 2] >> (4 * (j % 2))) & 0x0F | (high >> (2 * j) & 3) << 4
                let byte = xs[o + 8 + 16 * j + l % 16]
                expected.append(d * Double(scale - 32) * table[Int(l < 16 ? byte & 0x0F : byte >> 4)])
            }
        }
        compare(run(.iq4_xs, xs), expected, "IQ4_XS")
        // By hand. IQ4_NL: d = 0.5, byte 0x0F → element 0 = 0.5·113, element 16 = 0.5·(-127).
        setHalf(&nl, 0, 0.5); nl[2] = 0x0F
        XCTAssertEqual(run(.iq4_nl, nl)[0], 56.5)
        XCTAssertEqual(run(.iq4_nl, nl)[16], -63.5)
        // IQ4_XS: d = 0.25; sub-block 1's scale = high nibble of scales_l[0] (3) + 16·(bits 2-3 of scales_h: 2)
        // = 35 → 3; its first byte 0xA8 → element 32 = 0.25·3·1 = 0.75 (table[8]), element 48 = 0.25·3·25 = 18.75 (table[10]).
        setHalf(&xs, 0, 0.25); xs[2] = 0b1000; xs[3] = 0; xs[4] = 0x30; xs[8 + 16] = 0xA8
        XCTAssertEqual(run(.iq4_xs, xs)[32], 0.75)
        XCTAssertEqual(run(.iq4_xs, xs)[48], 18.75)
    }

    /// Every block type against gguf-py's numpy dequantizers (fixtures/quant-reference.json, written by
    /// fixtures/make_quant_reference.py): random blocks, float32 values, bit for bit on both paths.
    func testAgainstGGUFPy() throws {
        let url = TestSupport.packageRoot.appendingPathComponent("fixtures/quant-reference.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]])
        let types = DType.allCases.filter(\.isQuantized)
        XCTAssertEqual(Set(cases.compactMap { $0["type"] as? String }), Set(types.map(\.description)))
        for c in cases {
            let name = try XCTUnwrap(c["type"] as? String)
            let dtype = try XCTUnwrap(types.first { $0.description == name })
            let hex = try XCTUnwrap(c["blocks_hex"] as? String)
            let bytes = stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
                let start = hex.index(hex.startIndex, offsetBy: i)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
            }
            let expected = try XCTUnwrap(c["values"] as? [Double])
            QuantizedRows.forEachVectorWidth { _ in // the vector unpacking (where the CPU has it) and the portable one
                let got = run(dtype, bytes)
                XCTAssertEqual(got.count, expected.count, name)
                // Compared as float32: Foundation's JSON parser may miss a decimal's nearest double by an ulp.
                for (i, (g, e)) in zip(got, expected).enumerated() where g != Float(e) {
                    XCTFail("\(name)[\(i)] vector bits \(QuantizedRows.vectorBits): got \(g), gguf-py \(e)")
                    break
                }
            }
        }
    }

    func testHalfAndBFloat() {
        XCTAssertEqual(run(.f16, [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00]), [1, -2, Float(bitPattern: 0x3380_0000)]) // last: smallest subnormal 2^-24
        XCTAssertEqual(run(.bf16, [0x80, 0x3F, 0x49, 0x40]), [1, 3.140625])
    }

    /// The real model's dequantized samples, produced by transformers/gguf-py (fixture).
    func testRealModelAgainstFixture() throws {
        guard let shared = sharedFolder() else { throw XCTSkip("shared fixtures not found (set ENGRAM_SHARED)") }
        let fixture = (shared as NSString).appendingPathComponent("fixtures/smollm2-reference.json")
        guard FileManager.default.fileExists(atPath: fixture) else { throw XCTSkip("\(fixture) absent") }
        guard FileManager.default.fileExists(atPath: ModelRegistry.smollm2Path) else { throw XCTSkip("default model not installed") }
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture))) as? [String: Any])
        let checks = try XCTUnwrap(json["gguf_dequant_checks"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(checks.count, 8)
        let ck = try GGUFReader.read(path: ModelRegistry.smollm2Path)
        for check in checks {
            let name = try XCTUnwrap(check["name"] as? String)
            let t = try ck.tensor(name)
            XCTAssertEqual(t.dtype.description, check["type"] as? String, name)
            XCTAssertEqual(t.shape, check["numpy_shape"] as? [Int], name)
            let m = t.matrix()
            let first = try XCTUnwrap(check["first16_row0"] as? [Double])
            for (i, e) in first.enumerated() {
                XCTAssertEqual(Double(m.pointer[i]), e, accuracy: 1e-6 * max(1, abs(e)), "\(name)[\(i)]")
            }
            var sum = 0.0, absSum = 0.0
            for i in 0..<m.count { sum += Double(m.pointer[i]); absSum += abs(Double(m.pointer[i])) }
            let refSum = try XCTUnwrap(check["sum"] as? Double), refAbs = try XCTUnwrap(check["abs_sum"] as? Double)
            XCTAssertEqual(absSum, refAbs, accuracy: 1e-6 * refAbs, "\(name) abs sum")
            XCTAssertEqual(sum, refSum, accuracy: 1e-6 * refAbs, "\(name) sum")
        }
    }
}
