import Foundation

/// Writes GGUF v3 files: metadata key/values (every value type, nested arrays), tensor infos, then
/// tensor data, each tensor starting at a multiple of the alignment (32, or `general.alignment`).
/// The file is written under a temporary name and renamed into place.
public enum GGUFWriter {
    static let version: UInt32 = 3
    /// llama.cpp refuses longer tensor names (GGML_MAX_NAME).
    static let maxNameBytes = 63

    public static func write(metadata: Metadata, tensors: [WritableTensor], to path: String) throws {
        try tensors.checkUniqueNames(file: path)
        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.int, a > 0, a % 8 == 0, a <= 1 << 20 else {
                throw EngramError.metadata(file: path, key: "general.alignment", detail: "must be a positive multiple of 8, found \(value.summary)")
            }
            alignment = a
        }
        for key in metadata.keys {
            if let value = metadata[key] { try checkTypes(value, key: key, file: path) }
        }

        var offsets: [Int] = []
        var offset = 0
        for t in tensors {
            guard !t.isOpaqueBytes else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "opaque bytes have no GGUF element type")
            }
            guard t.name.utf8.count <= maxNameBytes else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "name is longer than \(maxNameBytes) bytes, which llama.cpp refuses")
            }
            guard (1...4).contains(t.shape.count), t.shape.allSatisfy({ $0 > 0 }) else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "shape \(t.shape) must have 1 to 4 positive dimensions")
            }
            guard let innermost = t.shape.last, innermost % t.dtype.blockSize == 0,
                  t.dtype.byteCount(elements: t.elementCount) == t.byteCount else {
                throw EngramError.tensor(file: path, tensor: t.name, detail: "\(t.byteCount) bytes of \(t.dtype) do not fit shape \(t.shape) (rows must be whole \(t.dtype.blockSize)-element blocks)")
            }
            offsets.append(offset)
            offset += padded(t.byteCount, alignment)
        }

        try AtomicFile.write(to: path) { file in
            try file.write(littleEndian: GGUFReader.magic)
            try file.write(littleEndian: version)
            try file.write(littleEndian: UInt64(tensors.count))
            try file.write(littleEndian: UInt64(metadata.keys.count))
            for key in metadata.keys {
                guard let value = metadata[key] else { continue }
                try writeString(key, file)
                try file.write(littleEndian: value.type.rawValue)
                try writeValue(value, file)
            }
            for (t, offset) in zip(tensors, offsets) {
                try writeString(t.name, file)
                try file.write(littleEndian: UInt32(t.shape.count))
                // GGUF lists dimensions innermost first.
                for n in t.shape.reversed() { try file.write(littleEndian: UInt64(n)) }
                try file.write(littleEndian: t.dtype.rawValue)
                try file.write(littleEndian: UInt64(offset))
            }
            try file.writeZeros(padded(file.bytesWritten, alignment) - file.bytesWritten)
            for t in tensors {
                try t.emit(into: file)
                try file.writeZeros(padded(t.byteCount, alignment) - t.byteCount)
            }
        }
    }

    /// Convenience for metadata given as ordered pairs.
    public static func write(metadata pairs: [(String, MetadataValue)], tensors: [WritableTensor], to path: String) throws {
        var metadata = Metadata(file: path)
        for (key, value) in pairs { metadata[key] = value }
        try write(metadata: metadata, tensors: tensors, to: path)
    }

    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Arrays must hold items of their declared type, or the file would be unreadable.
    static func checkTypes(_ value: MetadataValue, key: String, file: String) throws {
        guard case let .array(itemType, items) = value else { return }
        for (i, item) in items.enumerated() {
            guard item.type == itemType else {
                throw EngramError.metadata(file: file, key: key, detail: "array declared as \(itemType) holds a \(item.type) at index \(i)")
            }
            try checkTypes(item, key: key, file: file)
        }
    }

    static func writeString(_ s: String, _ file: AtomicFile) throws {
        let bytes = Array(s.utf8)
        try file.write(littleEndian: UInt64(bytes.count))
        try bytes.withUnsafeBytes { try file.write($0) }
    }

    static func writeValue(_ value: MetadataValue, _ file: AtomicFile) throws {
        switch value {
        case let .uint8(v): try file.write(littleEndian: v)
        case let .int8(v): try file.write(littleEndian: v)
        case let .uint16(v): try file.write(littleEndian: v)
        case let .int16(v): try file.write(littleEndian: v)
        case let .uint32(v): try file.write(littleEndian: v)
        case let .int32(v): try file.write(littleEndian: v)
        case let .uint64(v): try file.write(littleEndian: v)
        case let .int64(v): try file.write(littleEndian: v)
        case let .float32(v): try file.write(littleEndian: v.bitPattern)
        case let .float64(v): try file.write(littleEndian: v.bitPattern)
        case let .bool(v): try file.write(littleEndian: UInt8(v ? 1 : 0))
        case let .string(s): try writeString(s, file)
        case let .array(itemType, items):
            try file.write(littleEndian: itemType.rawValue)
            try file.write(littleEndian: UInt64(items.count))
            for item in items { try writeValue(item, file) }
        }
    }
}
