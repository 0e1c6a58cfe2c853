import XCTest
import Engram

final class FormatGGUFWriterTests: XCTestCase {
    static let everyType: [(String, MetadataValue)] = [
        ("general.architecture", .string("llama")),
        ("t.u8", .uint8(200)), ("t.i8", .int8(-100)), ("t.u16", .uint16(60000)), ("t.i16", .int16(-30000)),
        ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(3.25)),
        ("t.bool", .bool(true)), ("t.false", .bool(false)), ("t.string", .string("héllo\n\u{0}x")),
        ("t.u64", .uint64(UInt64.max)), ("t.i64", .int64(Int64.min)), ("t.f64", .float64(-1e300)),
        ("t.empty", .array(.int32, [])),
        ("t.ints", .array(.int32, [.int32(1), .int32(-2), .int32(3)])),
        ("t.strings", .array(.string, [.string("a"), .string(""), .string("ü")])),
        ("t.floats", .array(.float32, [.float32(0.5), .float32(-Float.infinity)])),
        ("t.nested", .array(.array, [.array(.uint8, [.uint8(1)]), .array(.string, [.string("z")])])),
    ]

    func testMetadataOfEveryTypeAndTensorsRoundTrip() throws {
        let tmp = TemporaryFolder()
        let path = tmp.file("m.gguf")
        var rng = SeededRandom(seed: 3)
        let f32 = rng.values(3 * 5, scale: 2)
        let f16 = rng.values(7, scale: 2)
        let q8 = Data((0..<(34 * 2)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        let q4k = Data((0..<144).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        let b1 = FloatBuffer(f32), b2 = FloatBuffer(f16)
        try GGUFWriter.write(metadata: Self.everyType, tensors: [
            try .floats(name: "a", shape: [3, 5], as: .f32, values: b1.pointer, owner: b1),
            try .floats(name: "b", shape: [7], as: .f16, values: b2.pointer, owner: b2),
            .bytes(name: "c", dtype: .q8_0, shape: [2, 32], data: q8),
            .bytes(name: "d", dtype: .q4_K, shape: [256], data: q4k),
        ], to: path)

        let ck = try GGUFReader.read(path: path)
        XCTAssertEqual(ck.metadata.keys, Self.everyType.map(\.0), "keys kept in order")
        for (key, value) in Self.everyType { XCTAssertEqual(ck.metadata[key], value, key) }
        XCTAssertEqual(ck.tensorNames, ["a", "b", "c", "d"])
        XCTAssertEqual(try ck.tensor("a").shape, [3, 5])
        XCTAssertEqual(try ck.tensor("a").matrix().values, f32)
        XCTAssertEqual(try ck.tensor("b").dtype, .f16)
        XCTAssertEqual(try ck.tensor("b").matrix().values, f16.map { Float(Float16($0)) })
        let c = try ck.tensor("c"), d = try ck.tensor("d")
        XCTAssertEqual(c.shape, [2, 32])
        XCTAssertEqual(Data(bytes: c.data, count: c.byteCount), q8, "quantized blocks copied unchanged")
        XCTAssertEqual(Data(bytes: d.data, count: d.byteCount), q4k)

        // Layout: magic, version 3, every tensor at a multiple of 32 from the file start.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(bytes[0..<4]), Array("GGUF".utf8))
        XCTAssertEqual(bytes[4], 3)
        let base = try XCTUnwrap(c.owner as? MappedFile).pointer
        for name in ck.tensorNames {
            XCTAssertEqual((UnsafeRawPointer(try ck.tensor(name).data) - UnsafeRawPointer(base)) % 32, 0, name)
        }
        XCTAssertEqual(bytes.count % 32, 0, "last tensor padded too")
    }

    func testCustomAlignment() throws {
        let tmp = TemporaryFolder()
        let b = FloatBuffer([1, 2, 3])
        try GGUFWriter.write(metadata: [("general.alignment", .uint32(64))], tensors: [
            try .floats(name: "x", shape: [3], as: .f32, values: b.pointer, owner: b),
            try .floats(name: "y", shape: [3], as: .f32, values: b.pointer, owner: b),
        ], to: tmp.file("a.gguf"))
        let ck = try GGUFReader.read(path: tmp.file("a.gguf"))
        let base = try XCTUnwrap(try ck.tensor("x").owner as? MappedFile).pointer
        for name in ["x", "y"] {
            XCTAssertEqual((UnsafeRawPointer(try ck.tensor(name).data) - UnsafeRawPointer(base)) % 64, 0)
            XCTAssertEqual(try ck.tensor(name).matrix().values, [1, 2, 3])
        }
        XCTAssertEqual(UnsafeRawPointer(try ck.tensor("y").data) - UnsafeRawPointer(try ck.tensor("x").data), 64)
    }

    func testRefusesWhatCannotBeWritten() throws {
        let tmp = TemporaryFolder()
        let b = FloatBuffer([1, 2])
        let t = try WritableTensor.floats(name: "t", shape: [2], as: .f32, values: b.pointer, owner: b)
        assertEngramError(["'t'", "twice"]) { try GGUFWriter.write(metadata: [], tensors: [t, t], to: tmp.file("a.gguf")) }
        assertEngramError(["t.mixed", "index 1"]) {
            try GGUFWriter.write(metadata: [("t.mixed", .array(.int32, [.int32(1), .string("x")]))], tensors: [], to: tmp.file("b.gguf"))
        }
        assertEngramError(["general.alignment"]) {
            try GGUFWriter.write(metadata: [("general.alignment", .uint32(12))], tensors: [], to: tmp.file("c.gguf"))
        }
        let q = WritableTensor.bytes(name: "q", dtype: .q8_0, shape: [3, 16], data: Data(count: 34 * 3 / 2))
        assertEngramError(["'q'", "32-element blocks"]) { try GGUFWriter.write(metadata: [], tensors: [q], to: tmp.file("d.gguf")) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path), [], "nothing written, no temporary files")
    }
}
