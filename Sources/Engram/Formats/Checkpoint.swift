import CDecodeKernels
import Foundation

public enum CheckpointFormat: String, Sendable { case gguf, safetensors }

/// One stored tensor: its canonical name, element type, shape (outermost dimension first,
/// so a `[out, in]` weight is row-major) and where its bytes are.
public struct StoredTensor: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// The file the bytes live in (for error messages).
    public let file: String
    /// Keeps the mapping (or owned buffer) alive.
    public let owner: AnyObject

    public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer, byteCount: Int, file: String, owner: AnyObject) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.byteCount = byteCount
        self.file = file
        self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// The tensor as float32 `[rows, cols]`, where cols is the innermost dimension. F32 data is used in
    /// place (the mapping is private, so writes never reach the file); other types are dequantized (or
    /// converted) now, or with `onDemand`, for the types with kernels, when the floats are first asked
    /// for (until then products read the stored values).
    public func matrix(onDemand: Bool = false) -> Matrix {
        let cols = shape.last ?? 1
        let rows = cols == 0 ? 0 : elementCount / cols
        if dtype == .f32, Int(bitPattern: data) % 4 == 0 {
            return Matrix(rows: rows, cols: cols, pointer: UnsafeMutablePointer(mutating: data.assumingMemoryBound(to: Float.self)), owner: owner)
        }
        // F16/BF16 vectors (norms, biases) are converted now: too small to gain, and read on every token.
        if rows > 0, QuantizedRows.supports(dtype, cols: cols), dtype.isQuantized || shape.count >= 2 && rows > 1 {
            let blocks = QuantizedRows(dtype: dtype, rows: rows, cols: cols, blocks: data, owner: owner)
            if onDemand { return Matrix(dequantizingOnDemand: blocks) }
            var m = Matrix(rows: rows, cols: cols, pointer: blocks.floats(), owner: blocks)
            m.quantized = blocks
            return m
        }
        let m = Matrix(rows: rows, cols: cols)
        Dequantize.run(dtype, source: data, count: elementCount, into: m.pointer)
        return m
    }
}

/// A loaded checkpoint: metadata in GGUF's vocabulary (Hugging Face config.json is translated into it)
/// and tensors under canonical GGUF names (`blk.N.attn_q.weight`), whatever the file format.
public final class Checkpoint: @unchecked Sendable {
    public let location: String
    public let format: CheckpointFormat
    public var metadata: Metadata
    public private(set) var tensorNames: [String] = []
    public private(set) var tensors: [String: StoredTensor] = [:]
    /// Extra files that came with the checkpoint (e.g. tokenizer.json bytes of a Hugging Face folder).
    public var sidecars: [String: Data] = [:]
    /// A Hugging Face folder's config.json as read: writing the folder again keeps what the GGUF-style
    /// metadata has no place for (a list of EOS ids).
    public var sourceConfig: HuggingFaceConfig?
    /// A Hugging Face folder's tensor names in the order its files hold them, so that writing the folder
    /// again (an edit's --out, a revert) lays them out the same way: edited and reverted, it is the same file.
    public var storedOrder: [String]?
    /// Set by `contentHash()`.
    var cachedHash: String?
    /// Whether quantized weights (of the block types, every one of which has kernels) get their float32 copies only when
    /// something asks for their memory: for generating and serving, where products can read the blocks.
    /// Memory then stays near the file's size until an edit or a gradient needs a weight's floats.
    public var dequantizesOnDemand = false
    /// The weights handed out dequantized on demand (their floats can be released again).
    private var onDemandWeights: [QuantizedRows] = []

    public init(location: String, format: CheckpointFormat, metadata: Metadata) {
        self.location = location
        self.format = format
        self.metadata = metadata
    }

    public func add(_ tensor: StoredTensor) {
        if tensors[tensor.name] == nil { tensorNames.append(tensor.name) }
        tensors[tensor.name] = tensor
    }

    public func has(_ name: String) -> Bool { tensors[name] != nil }

    public func tensor(_ name: String) throws -> StoredTensor {
        guard let t = tensors[name] else { throw EngramError.tensor(file: location, tensor: name, detail: "missing from checkpoint") }
        return t
    }

    /// Loads a tensor as float32 after checking its shape (outermost first) against what the
    /// architecture expects.
    public func matrix(_ name: String, shape expected: [Int]) throws -> Matrix {
        let t = try tensor(name)
        guard t.shape == expected else {
            // A 1-D expectation matches a [1, n] tensor too.
            if !(expected.count == 1 && t.shape == [1, expected[0]]) {
                throw EngramError.tensor(file: t.file, tensor: name, detail: "shape \(t.shape) disagrees with the model config, which expects \(expected)")
            }
            return floatMatrix(t)
        }
        return floatMatrix(t)
    }

    /// The tensor as a float matrix, its floats made now or on demand as `dequantizesOnDemand` says; the
    /// on-demand ones are remembered for `releaseUnchangedFloatCopies`.
    private func floatMatrix(_ t: StoredTensor) -> Matrix {
        let m = t.matrix(onDemand: dequantizesOnDemand)
        if dequantizesOnDemand, let blocks = m.quantized { onDemandWeights.append(blocks) }
        return m
    }

    /// Drops the float copies that something made of weights opened on demand and that still equal their
    /// blocks (edited weights keep theirs until reverted), and returns freed heap pages to the system.
    /// For a server between jobs: no pass may be running.
    public func releaseUnchangedFloatCopies() {
        for w in onDemandWeights { w.releaseFloats() }
        // glibc keeps freed blocks of these sizes in its heap (its mmap threshold rises after the first
        // such free): hand the pages back, those of the copies and of the job's own large buffers (an
        // edit's activations), or the process would stay at its high-water mark.
        engram_return_free_memory()
    }

    public func optionalMatrix(_ name: String, shape: [Int]) throws -> Matrix? {
        has(name) ? try matrix(name, shape: shape) : nil
    }

    /// Total bytes of tensor data.
    public var tensorBytes: Int { tensors.values.reduce(0) { $0 + $1.byteCount } }

    public var architecture: String? { metadata["general.architecture"]?.string }
}
