import Foundation

/// Reads GGUF v2/v3 files (the format of llama.cpp). The file is memory-mapped; tensors point into
/// the mapping. Every count, length and offset is checked against the file size before use.
public enum GGUFReader {
    static let magic: UInt32 = 0x4655_4747 // "GGUF" little-endian
    static let maxDimension = 1 << 40

    public static func read(path: String) throws -> Checkpoint {
        let file = try MappedFile(path: path)
        var r = ByteReader(base: file.pointer, length: file.length, file: path)
        let fileMagic = try r.read(UInt32.self, "magic")
        guard fileMagic == magic else {
            throw EngramError.format(file: path, detail: "not a GGUF file (magic 0x\(String(fileMagic, radix: 16)), expected 0x46554747 'GGUF')")
        }
        let version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw EngramError.format(file: path, detail: "GGUF version \(version) is not supported (2 or 3)")
        }
        let tensorCount = try r.read(UInt64.self, "tensor count")
        let kvCount = try r.read(UInt64.self, "metadata count")
        // Each entry needs at least a few bytes, so a count larger than the file is corrupt.
        guard tensorCount <= UInt64(r.remaining / 8), kvCount <= UInt64(r.remaining / 8) else {
            throw EngramError.format(file: path, detail: "header claims \(tensorCount) tensors and \(kvCount) metadata entries, more than the file can hold")
        }

        var metadata = Metadata(file: path)
        for i in 0..<Int(kvCount) {
            let key = try readString(&r, "metadata key #\(i)")
            let typeRaw = try r.read(UInt32.self, "type of '\(key)'")
            guard let type = MetadataType(rawValue: typeRaw) else {
                throw EngramError.metadata(file: path, key: key, detail: "unknown value type \(typeRaw)")
            }
            metadata[key] = try readValue(&r, type: type, key: key, depth: 0)
        }

        struct Info { let name: String; let dtype: DType; let shape: [Int]; let offset: Int; let bytes: Int }
        var infos: [Info] = []
        for i in 0..<Int(tensorCount) {
            let name = try readString(&r, "name of tensor #\(i)")
            let nDims = try r.read(UInt32.self, "dimension count of '\(name)'")
            guard (1...4).contains(nDims) else {
                throw EngramError.tensor(file: path, tensor: name, detail: "has \(nDims) dimensions (1 to 4 allowed)")
            }
            var ne: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let n = try r.read(UInt64.self, "dimension \(d) of '\(name)'")
                guard n > 0, n <= UInt64(maxDimension) else {
                    throw EngramError.tensor(file: path, tensor: name, detail: "dimension \(d) is \(n), outside 1...\(maxDimension)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(n))
                guard !overflow, product <= maxDimension else {
                    throw EngramError.tensor(file: path, tensor: name, detail: "has an absurd element count (dimensions \(ne + [Int(n)]))")
                }
                elements = product
                ne.append(Int(n))
            }
            let typeRaw = try r.read(UInt32.self, "type of '\(name)'")
            guard let dtype = DType(rawValue: typeRaw) else {
                throw EngramError.tensor(file: path, tensor: name, detail: "unsupported data type \(typeRaw) (supported: \(DType.allCases.map(\.description).joined(separator: ", ")))")
            }
            guard ne[0] % dtype.blockSize == 0, let bytes = dtype.byteCount(elements: elements) else {
                throw EngramError.tensor(file: path, tensor: name, detail: "row length \(ne[0]) is not a multiple of the \(dtype) block size \(dtype.blockSize)")
            }
            let offset = try r.read(UInt64.self, "offset of '\(name)'")
            guard offset <= UInt64(maxDimension) else {
                throw EngramError.tensor(file: path, tensor: name, detail: "data offset \(offset) is absurd")
            }
            infos.append(Info(name: name, dtype: dtype, shape: ne.reversed(), offset: Int(offset), bytes: bytes))
        }

        let alignment = try metadata.int("general.alignment", default: 32)
        guard alignment > 0, alignment % 8 == 0, alignment <= 1 << 20 else {
            throw EngramError.metadata(file: path, key: "general.alignment", detail: "must be a positive multiple of 8, found \(alignment)")
        }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        let checkpoint = Checkpoint(location: path, format: .gguf, metadata: metadata)
        for info in infos {
            let start = dataStart + info.offset
            guard info.offset % alignment == 0 else {
                throw EngramError.tensor(file: path, tensor: info.name, detail: "data offset \(info.offset) is not aligned to \(alignment)")
            }
            guard start <= file.length, info.bytes <= file.length - start else {
                throw EngramError.tensor(file: path, tensor: info.name, detail: "data runs past the end of the file (bytes \(start)..<\(start + info.bytes), file has \(file.length))")
            }
            guard !checkpoint.has(info.name) else {
                throw EngramError.tensor(file: path, tensor: info.name, detail: "appears twice")
            }
            checkpoint.add(StoredTensor(name: info.name, dtype: info.dtype, shape: info.shape,
                                        data: UnsafeRawPointer(file.pointer + start), byteCount: info.bytes,
                                        file: path, owner: file))
        }
        return checkpoint
    }

    static func readString(_ r: inout ByteReader, _ what: String) throws -> String {
        let length = try r.read(UInt64.self, "length of \(what)")
        guard length <= UInt64(r.remaining) else {
            throw EngramError.format(file: r.file, detail: "\(what): string length \(length) runs past the end of the file")
        }
        let raw = try r.bytes(Int(length), what)
        // GGUF strings are UTF-8; invalid sequences are repaired rather than rejected.
        return String(decoding: raw, as: UTF8.self)
    }

    static func readValue(_ r: inout ByteReader, type: MetadataType, key: String, depth: Int) throws -> MetadataValue {
        switch type {
        case .uint8: return .uint8(try r.read(UInt8.self, key))
        case .int8: return .int8(try r.read(Int8.self, key))
        case .uint16: return .uint16(try r.read(UInt16.self, key))
        case .int16: return .int16(try r.read(Int16.self, key))
        case .uint32: return .uint32(try r.read(UInt32.self, key))
        case .int32: return .int32(try r.read(Int32.self, key))
        case .float32: return .float32(try r.readFloat(key))
        case .uint64: return .uint64(try r.read(UInt64.self, key))
        case .int64: return .int64(try r.read(Int64.self, key))
        case .float64: return .float64(try r.readDouble(key))
        case .bool:
            let b = try r.read(UInt8.self, key)
            guard b <= 1 else { throw EngramError.metadata(file: r.file, key: key, detail: "bool value \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case .string: return .string(try readString(&r, "value of '\(key)'"))
        case .array:
            guard depth < 4 else { throw EngramError.metadata(file: r.file, key: key, detail: "arrays nested too deeply") }
            let itemRaw = try r.read(UInt32.self, "array type of '\(key)'")
            guard let itemType = MetadataType(rawValue: itemRaw) else {
                throw EngramError.metadata(file: r.file, key: key, detail: "unknown array item type \(itemRaw)")
            }
            let count = try r.read(UInt64.self, "array length of '\(key)'")
            guard count <= UInt64(r.remaining) else {
                throw EngramError.metadata(file: r.file, key: key, detail: "array of \(count) items runs past the end of the file")
            }
            var items: [MetadataValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try readValue(&r, type: itemType, key: key, depth: depth + 1)) }
            return .array(itemType, items)
        }
    }
}
