import Foundation

/// One tensor entry of a safetensors header. `dtype` is nil for element types Engram does not
/// compute with (integers, F64, FP8); such entries are still validated so a reader can skip them.
public struct SafetensorsEntry: Sendable {
    public let name: String
    public let dtypeName: String
    public let dtype: DType?
    public let shape: [Int]
    /// Absolute byte offset of the data in the file.
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file whose header has been checked against the file.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    /// The `__metadata__` string map (e.g. `format: pt`).
    public let metadata: [String: String]
    /// Entries in header order.
    public let entries: [SafetensorsEntry]
    let mapping: MappedFile

    init(path: String, metadata: [String: String], entries: [SafetensorsEntry], mapping: MappedFile) {
        self.path = path
        self.metadata = metadata
        self.entries = entries
        self.mapping = mapping
    }

    public func entry(_ name: String) -> SafetensorsEntry? { entries.first { $0.name == name } }

    public func data(_ e: SafetensorsEntry) -> UnsafeRawPointer { UnsafeRawPointer(mapping.pointer + e.offset) }

    /// The entry as a mapped StoredTensor under `name` (defaults to its own name).
    public func storedTensor(_ e: SafetensorsEntry, name: String? = nil) throws -> StoredTensor {
        guard let dtype = e.dtype else {
            throw EngramError.tensor(file: path, tensor: e.name, detail: "element type \(e.dtypeName) is not supported (F32, F16, BF16)")
        }
        return StoredTensor(name: name ?? e.name, dtype: dtype, shape: e.shape, data: data(e), byteCount: e.byteCount,
                            file: path, owner: mapping)
    }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor
/// name to `{dtype, shape, data_offsets}` (offsets relative to the end of the header), then the data.
public enum Safetensors {
    /// The reference implementation refuses headers above 100 MB; a larger length means a corrupt file.
    public static let maxHeaderBytes = 100_000_000
    static let maxElements = 1 << 40

    /// Bytes per element of every dtype the format defines, so that entries we do not compute with
    /// can still be checked against the file.
    static let elementBytes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]

    public static func read(path: String) throws -> SafetensorsFile {
        let file = try MappedFile(path: path)
        var r = ByteReader(base: file.pointer, length: file.length, file: path)
        let headerLength = try r.read(UInt64.self, "header length")
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw EngramError.format(file: path, detail: "header length \(headerLength) is absurd (limit \(maxHeaderBytes) bytes); not a safetensors file or corrupt")
        }
        guard headerLength <= UInt64(r.remaining) else {
            throw EngramError.format(file: path, detail: "header length \(headerLength) runs past the end of the file (\(file.length) bytes)")
        }
        let headerBytes = try r.bytes(Int(headerLength), "header")
        let dataStart = r.offset
        let dataLength = file.length - dataStart

        let header: OrderedJSON
        do { header = try JSONParser.parse(headerBytes) } catch let failure as JSONParser.Failure {
            throw EngramError.format(file: path, detail: "header is not valid JSON: \(failure.message) at header byte \(failure.offset)")
        }
        guard case let .object(members) = header else {
            throw EngramError.format(file: path, detail: "header is \(header.kind), expected a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [SafetensorsEntry] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(items) = value else {
                    throw EngramError.metadata(file: path, key: "__metadata__", detail: "is \(value.kind), expected an object of strings")
                }
                for (key, item) in items {
                    guard let s = item.string else {
                        throw EngramError.metadata(file: path, key: "__metadata__.\(key)", detail: "is \(item.kind), expected a string")
                    }
                    metadata[key] = s
                }
                continue
            }
            entries.append(try entry(name: name, value: value, path: path, dataStart: dataStart, dataLength: dataLength))
        }

        // Two tensors may not share bytes: a writer bug or a crafted file would alias weights.
        let ordered = entries.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.offset < a.offset + a.byteCount {
            throw EngramError.tensor(file: path, tensor: b.name, detail: "data overlaps tensor '\(a.name)' (bytes \(b.offset - dataStart)..<\(b.offset - dataStart + b.byteCount) against \(a.offset - dataStart)..<\(a.offset - dataStart + a.byteCount))")
        }
        return SafetensorsFile(path: path, metadata: metadata, entries: entries, mapping: file)
    }

    private static func entry(name: String, value: OrderedJSON, path: String, dataStart: Int, dataLength: Int) throws -> SafetensorsEntry {
        func bad(_ detail: String) -> EngramError { .tensor(file: path, tensor: name, detail: detail) }
        guard case let .object(fields) = value else { throw bad("header entry is \(value.kind), expected an object") }
        func field(_ key: String) throws -> OrderedJSON {
            guard let v = fields.first(where: { $0.0 == key })?.1 else { throw bad("header entry has no '\(key)'") }
            return v
        }
        guard let dtypeName = try field("dtype").string else { throw bad("'dtype' is not a string") }
        guard let elementSize = elementBytes[dtypeName] else {
            throw bad("unknown dtype '\(dtypeName)'")
        }
        guard case let .array(dims) = try field("shape") else { throw bad("'shape' is not an array") }
        var shape: [Int] = []
        var elements = 1
        for (d, dim) in dims.enumerated() {
            guard let n = dim.nonNegativeInt, n <= maxElements else { throw bad("dimension \(d) of 'shape' is not an integer in 0...\(maxElements)") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: n)
            guard !overflow, product <= maxElements else { throw bad("shape \(dims.map { $0.nonNegativeInt ?? -1 }) has an absurd element count") }
            elements = product
            shape.append(n)
        }
        guard case let .array(offsets) = try field("data_offsets"), offsets.count == 2,
              let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt else {
            throw bad("'data_offsets' is not a pair of non-negative integers")
        }
        guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] end before they begin") }
        guard end <= dataLength else {
            throw bad("data_offsets [\(begin), \(end)] run past the end of the file (data section has \(dataLength) bytes)")
        }
        guard end - begin == elements * elementSize else {
            throw bad("data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but shape \(shape) of \(dtypeName) needs \(elements * elementSize)")
        }
        return SafetensorsEntry(name: name, dtypeName: dtypeName, dtype: DType(safetensorsName: dtypeName), shape: shape,
                                offset: dataStart + begin, byteCount: end - begin)
    }

    /// Writes tensors (F32, F16 or BF16) in the given order, atomically. The header is padded with
    /// spaces to a multiple of 8 bytes so that the data (and every 8-byte-multiple tensor) is aligned.
    public static func write(tensors: [WritableTensor], metadata: [String: String] = [:], to path: String) throws {
        try tensors.checkUniqueNames(file: path)
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(OrderedJSON.quote($0)):\(OrderedJSON.quote(metadata[$0] ?? ""))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            guard let dtypeName = t.isOpaqueBytes ? "U8" : t.dtype.safetensorsName else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "\(t.dtype) cannot be stored in safetensors (F32, F16, BF16); dequantize it first")
            }
            guard t.name != "__metadata__" else { throw EngramError.tensor(file: path, tensor: t.name, detail: "name is reserved") }
            guard t.byteCount == t.elementCount * (t.isOpaqueBytes ? 1 : t.dtype.blockBytes) else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "\(t.byteCount) bytes do not match shape \(t.shape) of \(t.dtype)")
            }
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(OrderedJSON.quote(t.name)):{\"dtype\":\"\(dtypeName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.byteCount)]}")
            offset += t.byteCount
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)
        try AtomicFile.write(to: path) { file in
            try file.write(littleEndian: UInt64(headerBytes.count))
            try headerBytes.withUnsafeBytes { try file.write($0) }
            for t in tensors { try t.emit(into: file) }
        }
    }
}
