import Foundation

/// A tensor about to be written to a GGUF or safetensors file: name, element type, shape (outermost
/// dimension first) and a closure that streams exactly `byteCount` bytes when its turn comes. Producing
/// bytes lazily means a converted or transformed tensor exists in memory only while it is written, and
/// mapped tensors are copied straight from the mapping.
public struct WritableTensor {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let byteCount: Int
    /// Set for bytes that safetensors stores as a plain U8 vector (e.g. quantized blocks kept in a
    /// patch); `dtype` is then not what the bytes are.
    public private(set) var isOpaqueBytes = false
    let produce: (AtomicFile) throws -> Void

    public var elementCount: Int { shape.reduce(1, *) }

    /// `produce` must write exactly `byteCount` bytes; the writers check this.
    public init(name: String, dtype: DType, shape: [Int], byteCount: Int, produce: @escaping (AtomicFile) throws -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteCount = byteCount
        self.produce = produce
    }

    /// Bytes written unchanged (a mapped tensor, quantized blocks). `owner` keeps them alive.
    public static func bytes(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer, byteCount: Int,
                             owner: AnyObject) -> WritableTensor {
        WritableTensor(name: name, dtype: dtype, shape: shape, byteCount: byteCount) { file in
            try withExtendedLifetime(owner) { try file.write(UnsafeRawBufferPointer(start: data, count: byteCount)) }
        }
    }

    public static func bytes(name: String, dtype: DType, shape: [Int], data: Data) -> WritableTensor {
        WritableTensor(name: name, dtype: dtype, shape: shape, byteCount: data.count) { file in try file.write(data) }
    }

    /// Bytes stored as a U8 vector in safetensors, whatever they encode (GGUF refuses them).
    public static func opaqueBytes(name: String, data: Data) -> WritableTensor {
        var t = bytes(name: name, dtype: .f32, shape: [data.count], data: data)
        t.isOpaqueBytes = true
        return t
    }

    /// Float32 values converted to `dtype` (F32, F16 or BF16) while they are written.
    public static func floats(name: String, shape: [Int], as dtype: DType, values: UnsafePointer<Float>,
                              owner: AnyObject) throws -> WritableTensor {
        let count = shape.reduce(1, *)
        guard !dtype.isQuantized else {
            throw EngramError.tensor(file: "(output)", tensor: name, detail: "cannot write floats as \(dtype); only F32, F16 and BF16 are written from floats")
        }
        return WritableTensor(name: name, dtype: dtype, shape: shape, byteCount: count * dtype.blockBytes) { file in
            try withExtendedLifetime(owner) { try file.writeFloats(values, count: count, as: dtype) }
        }
    }

    /// A matrix written with the given shape (its element count must match) as F32, F16 or BF16.
    public static func matrix(name: String, shape: [Int], as dtype: DType, _ m: Matrix) throws -> WritableTensor {
        guard m.count == shape.reduce(1, *) else {
            throw EngramError.tensor(file: "(output)", tensor: name, detail: "matrix of \(m.rows)×\(m.cols) values does not fill shape \(shape)")
        }
        return try floats(name: name, shape: shape, as: dtype, values: m.pointer, owner: m.owner)
    }

    /// A stored tensor under `name`: bytes copied unchanged when `dtype` is nil or its own type,
    /// otherwise dequantized and converted (to F32, F16 or BF16) while it is written.
    public static func stored(_ t: StoredTensor, name: String? = nil, as dtype: DType? = nil) throws -> WritableTensor {
        let target = dtype ?? t.dtype
        if target == t.dtype {
            return bytes(name: name ?? t.name, dtype: t.dtype, shape: t.shape, data: t.data, byteCount: t.byteCount, owner: t.owner)
        }
        guard !target.isQuantized else {
            throw EngramError.tensor(file: t.file, tensor: t.name, detail: "cannot convert \(t.dtype) to \(target): only F32, F16 and BF16 are written from floats")
        }
        let count = t.elementCount
        return WritableTensor(name: name ?? t.name, dtype: target, shape: t.shape, byteCount: count * target.blockBytes) { file in
            let m = t.matrix()
            try file.writeFloats(m.pointer, count: count, as: target)
        }
    }
}

extension Array where Element == WritableTensor {
    /// Throws if two tensors share a name (both writers refuse that).
    func checkUniqueNames(file: String) throws {
        var seen = Set<String>()
        for t in self where !seen.insert(t.name).inserted {
            throw EngramError.tensor(file: file, tensor: t.name, detail: "appears twice in the tensors to write")
        }
    }
}

extension WritableTensor {
    /// Runs the producer and checks it wrote what it promised, so a bad producer cannot silently
    /// corrupt every offset after it.
    func emit(into file: AtomicFile) throws {
        let before = file.bytesWritten
        try produce(file)
        let written = file.bytesWritten - before
        guard written == byteCount else {
            throw EngramError.tensor(file: file.path, tensor: name, detail: "producer wrote \(written) bytes, expected \(byteCount)")
        }
    }
}
