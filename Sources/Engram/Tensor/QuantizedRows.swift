import CDecodeKernels
import Foundation

/// The GGML blocks of a quantized weight matrix, or its F16/BF16 rows (mapped from its file), and, once
/// made, its float32 copy.
/// Decoding one token is bound by reading the weights, and Q4_1 blocks are a seventh of the float32 bytes
/// (Q8_0 a little over a quarter, Q4_K/Q6_K an eighth/a fifth, F16/BF16 half), so `BLAS.linear` reads
/// the blocks when it multiplies a single row.
/// Loaded normally, every weight's float copy is made at load and everything else (prompts, batches,
/// gradients, edits) uses it. For a checkpoint opened with `Checkpoint.dequantizesOnDemand` (generation
/// and serving), products and input gradients read the blocks while they are current (a few rows
/// straight from them, more through pieces dequantized per product), and the copy is made only when
/// something asks for the matrix's memory (`Matrix.pointer`: an edit writing it, a weight gradient).
///
/// Once made, the float copy is the truth: a matrix handed out to be changed (`LanguageModel.weight`)
/// retires its blocks first, so an edited weight is never read from stale blocks. Reverting a patch that
/// was applied to unchanged weights puts their floats back exactly and their blocks back in use.
public final class QuantizedRows: @unchecked Sendable {
    public let dtype: DType
    public let rows: Int
    public let cols: Int
    let blocks: UnsafeRawPointer
    /// Keeps the memory map (or buffer) holding the blocks alive.
    let owner: AnyObject
    private let lock = NSLock()
    private var retired = false
    private var floatCopy: FloatBuffer?

    /// Turns the quantized path off for the whole process (to compare against the float products).
    nonisolated(unsafe) public static var enabled = true

    /// Every stored type but F32 has kernels: the block types (Q4_1 and Q8_0 their own, the others as
    /// groups of 32 values) and F16/BF16 rows (32 values at a time). Rows must be whole blocks.
    public static func supports(_ dtype: DType, cols: Int) -> Bool {
        guard dtype != .f32, cols > 0 else { return false }
        return cols % (dtype.isQuantized ? dtype.blockSize : 32) == 0
    }

    init(dtype: DType, rows: Int, cols: Int, blocks: UnsafeRawPointer, owner: AnyObject) {
        precondition(QuantizedRows.supports(dtype, cols: cols))
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.blocks = blocks
        self.owner = owner
    }

    /// The float32 values, dequantized on first use and kept from then on.
    public func floats() -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        if let floatCopy { return floatCopy.pointer }
        let copy = FloatBuffer(count: rows * cols, zeroed: false)
        dequantize(rows: 0..<rows, into: copy.pointer, threads: BLAS.threads)
        floatCopy = copy
        return copy.pointer
    }

    /// Drops the float copy if it still equals the blocks (not retired: nothing was handed out to change
    /// it, or what was changed has been put back), so memory returns to the blocks' size; the next use
    /// makes it again. Only for the weights of a checkpoint opened on demand (no matrix keeps a raw
    /// pointer to these floats), and only when no pass is running: a pointer taken earlier would dangle.
    func releaseFloats() {
        lock.lock()
        if !retired { floatCopy = nil }
        lock.unlock()
    }

    /// Whether the float copy has been made.
    public var hasFloats: Bool {
        lock.lock()
        defer { lock.unlock() }
        return floatCopy != nil
    }

    /// Rows of the matrix as float32 into `out` (`rows.count · cols` floats), from the blocks: the same
    /// values as the float copy holds until it is changed.
    public func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, threads: Int) {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        guard !range.isEmpty else { return }
        let rowBytes = cols / dtype.blockSize * dtype.blockBytes
        engram_dequantize(kernelType, blocks + range.lowerBound * rowBytes, Int64(range.count), Int64(cols), out, Int32(threads))
    }

    /// The kernels' type numbers are GGML's, as `DType`'s are.
    private var kernelType: Int32 { Int32(dtype.rawValue) }

    /// Whether single-row products may read the blocks (not retired, and the path is on).
    public var isCurrent: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !retired && QuantizedRows.enabled
    }

    /// Stops using the blocks: the float copy is about to be changed.
    public func retire() {
        lock.lock()
        retired = true
        lock.unlock()
    }

    /// Whether `retire` was called (and not undone by `reinstate`), whatever `enabled` says.
    var isRetired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return retired
    }

    /// Uses the blocks again: only for a caller that has put back, bit for bit, the floats it changed
    /// while they still matched the blocks (`AppliedPatch.revert` of a patch applied to such a weight).
    func reinstate() {
        lock.lock()
        retired = false
        lock.unlock()
    }

    /// Whether the vectorised kernels (AVX2, FMA, F16C; AVX-512 where the CPU has it) run or the
    /// portable loops. Setting it to true takes effect only on a CPU that has them (tests set it to false
    /// to check the loops).
    public static var vectorized: Bool {
        get { engram_decode_kernels_vectorized() != 0 }
        set { engram_decode_kernels_set_vectorized(newValue ? 1 : 0) }
    }

    /// The widest vectors the kernels use: 512, 256 or 0 (the portable loops). Setting it caps them
    /// within what the CPU has (tests check the AVX2 paths on an AVX-512 CPU with 256).
    public static var vectorBits: Int {
        get { Int(engram_decode_kernels_vector_bits()) }
        set { engram_decode_kernels_set_vector_bits(Int32(newValue)) }
    }

    /// `y[rows] = W · x` (added to y when `accumulate`), split over `threads` threads (the kernels'
    /// own pool: a dispatch per product would cost as much as the product).
    public func multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool, threads: Int) {
        engram_gemv(kernelType, blocks, Int64(rows), Int64(cols), x, y, accumulate ? 1 : 0, Int32(threads))
    }

    /// `Y[n, rows] = X[n, cols] · Wᵀ` for a few rows of X, reading the blocks once for all of them; each
    /// row of Y is bit for bit what `multiply` gives for that row of X alone.
    public func multiply(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool, threads: Int) {
        engram_small_gemm(kernelType, blocks, Int64(rows), Int64(cols), x, Int64(n), y, accumulate ? 1 : 0, Int32(threads))
    }
}
