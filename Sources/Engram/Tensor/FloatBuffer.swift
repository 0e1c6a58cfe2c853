import Foundation

/// A heap block of floats owned by Swift; the unit of activation and weight storage.
/// A class so that views can share it without copying, and so that memory is freed deterministically.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        // 64-byte alignment keeps SIMD loads and BLAS kernels on their fast paths.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: count) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

/// A row-major float matrix `[rows, cols]` whose memory belongs to `owner`
/// (a FloatBuffer, or a private memory map of a checkpoint file), or, for a quantized weight opened to
/// be dequantized on demand, whose floats are made the first time `pointer` is asked for.
/// Weights follow the nn.Linear convention: `[out, in]`, so `y = W x`.
public struct Matrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// nil while the floats are those of `quantized`, made on demand.
    private let storage: UnsafeMutablePointer<Float>?
    public let owner: AnyObject
    /// The quantized blocks these floats were dequantized from, if any: one-row products read them.
    /// Copies of a matrix share them (and their retirement); `copy()` does not carry them.
    public var quantized: QuantizedRows?

    public init(rows: Int, cols: Int, pointer: UnsafeMutablePointer<Float>, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.storage = pointer
        self.owner = owner
    }

    /// A quantized weight whose float copy is made on first use of `pointer`; until then products
    /// read the blocks (`BLAS.linear`, `copyRow`).
    public init(dequantizingOnDemand blocks: QuantizedRows) {
        rows = blocks.rows
        cols = blocks.cols
        storage = nil
        owner = blocks
        quantized = blocks
    }

    /// A zero-filled matrix with its own storage.
    public init(rows: Int, cols: Int) {
        let buffer = FloatBuffer(count: rows * cols)
        self.init(rows: rows, cols: cols, pointer: buffer.pointer, owner: buffer)
    }

    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols)
        let buffer = FloatBuffer(values)
        self.init(rows: rows, cols: cols, pointer: buffer.pointer, owner: buffer)
    }

    /// The floats (made now, from the blocks, for a matrix opened to be dequantized on demand).
    @inline(__always)
    public var pointer: UnsafeMutablePointer<Float> {
        if let storage { return storage }
        return unsafeDowncast(owner, to: QuantizedRows.self).floats()
    }

    /// The blocks that products of an on-demand matrix read: while they are current (not retired by an
    /// edit), whether or not a float copy has been made meanwhile, so that the numbers a pass gives
    /// depend on which edits are in force, not on which copies a gradient happened to leave.
    var currentBlocks: QuantizedRows? {
        guard storage == nil else { return nil }
        let blocks = unsafeDowncast(owner, to: QuantizedRows.self)
        return blocks.isCurrent ? blocks : nil
    }

    /// Row `r` as floats into `out` (`cols` floats), without making the float copy of an on-demand matrix.
    public func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        if let blocks = currentBlocks {
            blocks.dequantize(rows: r..<(r + 1), into: out, threads: 1)
        } else {
            out.update(from: row(r), count: cols)
        }
    }

    public var count: Int { rows * cols }
    public func row(_ r: Int) -> UnsafeMutablePointer<Float> { pointer + r * cols }
    public var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// A deep copy with its own storage.
    public func copy() -> Matrix {
        let m = Matrix(rows: rows, cols: cols)
        m.pointer.update(from: pointer, count: count)
        return m
    }
}

/// A vector with its own storage (used for norms and biases).
public typealias Vector = Matrix
extension Matrix {
    public init(vector values: [Float]) { self.init(rows: 1, cols: values.count, values: values) }
}
