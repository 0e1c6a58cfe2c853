import XCTest
import Engram

final class FormatSafetensorsTests: XCTestCase {
    func floats(_ name: String, _ shape: [Int], _ values: [Float], as dtype: DType) throws -> WritableTensor {
        let b = FloatBuffer(values)
        return try .floats(name: name, shape: shape, as: dtype, values: b.pointer, owner: b)
    }

    /// The bytes on disk, checked field by field against the format's definition.
    func testWriterLayout() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("a.safetensors")
        // BF16 rounding by hand: 1 + 2^-8 is half-way between 1 (0x3F80) and 1 + 2^-7 (0x3F81): ties to
        // even → 0x3F80; 1 + 3·2^-8 is half-way between 0x3F81 and 0x3F82 → 0x3F82.
        try Safetensors.write(tensors: [
            try floats("w", [2, 3], [1, 2, 3, -4, 0.5, 1e-3], as: .f32),
            try floats("h", [3], [1, -2, 0.333251953125], as: .f16),
            try floats("b", [2], [1.00390625, 1.01171875], as: .bf16),
        ], metadata: ["format": "pt"], to: path)

        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0, "header padded to 8 bytes")
        XCTAssertEqual(bytes.count, 8 + n + 24 + 6 + 4)
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["format": "pt"])
        let w = try XCTUnwrap(header["w"] as? [String: Any]), h = try XCTUnwrap(header["h"] as? [String: Any])
        let b = try XCTUnwrap(header["b"] as? [String: Any])
        XCTAssertEqual(w["dtype"] as? String, "F32"); XCTAssertEqual(w["shape"] as? [Int], [2, 3]); XCTAssertEqual(w["data_offsets"] as? [Int], [0, 24])
        XCTAssertEqual(h["dtype"] as? String, "F16"); XCTAssertEqual(h["data_offsets"] as? [Int], [24, 30])
        XCTAssertEqual(b["dtype"] as? String, "BF16"); XCTAssertEqual(b["data_offsets"] as? [Int], [30, 34])
        let data = Array(bytes[(8 + n)...])
        func u16(_ at: Int) -> UInt16 { UInt16(data[at]) | UInt16(data[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        XCTAssertEqual(u32(0), Float(1).bitPattern)
        XCTAssertEqual(u32(12), Float(-4).bitPattern)
        XCTAssertEqual(u16(24), 0x3C00)                     // f16 1.0
        XCTAssertEqual(u16(26), 0xC000)                     // f16 -2.0
        XCTAssertEqual(u16(28), 0x3555)                     // f16 0.333251953125 (exact)
        XCTAssertEqual(u16(30), 0x3F80)
        XCTAssertEqual(u16(32), 0x3F82)
    }

    func testRoundTripThroughReader() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("r.safetensors")
        var rng = SeededRandom(seed: 7)
        let values = rng.values(60, scale: 3)
        try Safetensors.write(tensors: [try floats("a.weight", [6, 10], values, as: .f32),
                                        try floats("weird \"name\" é\n", [4], [1, 2, 3, 4], as: .f16)],
                              metadata: ["k": "v \"quoted\""], to: path)
        let file = try Safetensors.read(path: path)
        XCTAssertEqual(file.metadata, ["k": "v \"quoted\""])
        XCTAssertEqual(file.entries.map(\.name), ["a.weight", "weird \"name\" é\n"])
        let a = try file.storedTensor(XCTUnwrap(file.entry("a.weight")))
        XCTAssertEqual(a.shape, [6, 10])
        XCTAssertEqual(a.matrix().values, values)
        XCTAssertEqual(try file.storedTensor(XCTUnwrap(file.entry("weird \"name\" é\n"))).matrix().values, [1, 2, 3, 4])
        XCTAssertEqual(Int(bitPattern: a.data) % 8, 0, "first tensor aligned after the padded header")
    }

    /// A file composed by hand: unpadded header, members in arbitrary order, escapes, an integer tensor.
    func testReadsHandWrittenFile() throws {
        let header = #"{"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"__metadata__":{"x":"y"},"a\u00e9":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(header.utf8))
        for v: Float in [2.5, -1] { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        withUnsafeBytes(of: Int64(42).littleEndian) { bytes.append(contentsOf: $0) }
        let tmp = TemporaryFolder()
        try bytes.write(to: URL(fileURLWithPath: tmp.file("h.safetensors")))
        let file = try Safetensors.read(path: tmp.file("h.safetensors"))
        XCTAssertEqual(file.metadata, ["x": "y"])
        let a = try XCTUnwrap(file.entry("aé"))
        XCTAssertEqual(a.dtype, .f32)
        XCTAssertEqual(try file.storedTensor(a).matrix().values, [2.5, -1])
        let b = try XCTUnwrap(file.entry("b"))
        XCTAssertNil(b.dtype, "integer tensors are listed but not computed with")
        XCTAssertEqual(b.byteCount, 8)
        assertEngramError(["h.safetensors", "'b'", "I64"]) { _ = try file.storedTensor(b) }
    }

    func testFailedWriteLeavesNothingBehind() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("x.safetensors")
        try Safetensors.write(tensors: [try floats("a", [1], [1], as: .f32)], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        struct Boom: Error {}
        let failing = WritableTensor(name: "b", dtype: .f32, shape: [2], byteCount: 8) { _ in throw Boom() }
        XCTAssertThrowsError(try Safetensors.write(tensors: [failing], to: path))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before, "old file untouched")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["x.safetensors"], "no temporary file left")
        // A producer that writes the wrong number of bytes is caught too.
        let short = WritableTensor(name: "c", dtype: .f32, shape: [2], byteCount: 8) { try $0.write(Data(count: 4)) }
        assertEngramError(["'c'", "wrote 4 bytes, expected 8"]) { try Safetensors.write(tensors: [short], to: path) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), ["x.safetensors"])
    }

    func testWriterRefusesQuantizedAndDuplicates() throws {
        let tmp = TemporaryFolder()
        let q = WritableTensor.bytes(name: "q", dtype: .q8_0, shape: [32], data: Data(count: 34))
        assertEngramError(["'q'", "Q8_0"]) { try Safetensors.write(tensors: [q], to: tmp.file("q.safetensors")) }
        let a = try floats("a", [1], [1], as: .f32)
        assertEngramError(["'a'", "twice"]) { try Safetensors.write(tensors: [a, a], to: tmp.file("d.safetensors")) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [])
    }
}
