import COpenBLAS
import CDecodeKernels
import Foundation

/// Matrix products through OpenBLAS. All matrices are row-major.
public enum BLAS {
    /// `Y[n, out] = X[n, in] · Wᵀ` for a weight `W[out, in]`; adds to Y when `accumulate`.
    /// One token is memory-bound: it reads the quantized blocks the weight came from when it has current
    /// ones (a fraction of the bytes), else the floats, through `CDecodeKernels`; several tokens use sgemm
    /// (compute-bound), on the floats; a weight opened on demand whose blocks are current is read from
    /// them whatever the row count: a few rows straight from the blocks, more through sgemm over rows
    /// dequantized for this product (the same floats, so the same numbers as its float copy would give).
    /// A few rows (`fewRowForwardRows`) times floats, a copy's or a piece's, go to `CDecodeKernels`' kernels
    /// that read them in place.
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, rows n: Int, weight w: Matrix,
                              into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        let beta: Float = accumulate ? 1 : 0
        guard n > 0 else { return }
        if n == 1, let q = w.quantized, q.isCurrent {
            q.multiply(x, into: y, accumulate: accumulate, threads: threads)
        } else if n == 1 {
            // Not sgemv: OpenBLAS wakes its threads for every call, which costs about as much as one of a
            // decoding step's small products; these kernels keep their threads spinning between products.
            engram_gemv(Int32(ENGRAM_F32), w.pointer, Int64(w.rows), Int64(w.cols), x, y, accumulate ? 1 : 0, Int32(threads))
        } else if let blocks = w.currentBlocks, n <= smallProductRows {
            blocks.multiply(x, rows: n, into: y, accumulate: accumulate, threads: threads)
        } else if let blocks = w.currentBlocks {
            linear(x, rows: n, blocks: blocks, into: y, beta: beta)
        } else if fewRows(n, upTo: fewRowForwardRows) {
            engram_float_gemm_nt(w.pointer, Int64(w.rows), Int64(w.cols), x, Int64(n), y, Int64(w.rows), accumulate ? 1 : 0, Int32(threads))
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(w.rows), Int32(w.cols), 1,
                        x, Int32(w.cols), w.pointer, Int32(w.cols), beta, y, Int32(w.rows))
        }
    }

    /// `dX[n, in] (+)= dY[n, out] · W` for a weight `W[out, in]` (the input gradient of `linear`). A weight
    /// kept as quantized blocks is read from them a piece at a time, so a gradient through it does not make
    /// its float copy.
    @inline(__always)
    public static func linearBackward(_ dy: UnsafePointer<Float>, rows n: Int, weight w: Matrix,
                                      into dx: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        guard n > 0 else { return }
        if let blocks = w.currentBlocks {
            linearBackward(dy, rows: n, blocks: blocks, into: dx, accumulate: accumulate)
        } else if n == 1 {
            gemv(trans: true, m: w.rows, n: w.cols, a: w.pointer, lda: w.cols, x: dy, beta: accumulate ? 1 : 0, y: dx)
        } else if fewRows(n, upTo: fewRowBackwardRows) {
            engram_float_gemm_nn(w.pointer, Int64(w.rows), Int64(w.cols), dy, Int64(w.rows), Int64(n), dx, accumulate ? 1 : 0, Int32(threads))
        } else {
            gemm(transA: false, transB: false, m: n, n: w.cols, k: w.rows, a: dy, lda: w.rows,
                 b: w.pointer, ldb: w.cols, beta: accumulate ? 1 : 0, c: dx, ldc: w.cols)
        }
    }

    /// Up to this many rows (and from two), a float weight's forward products (`linear`) go to
    /// `CDecodeKernels`' few-row kernels when they run vector code (AVX-512); up to `fewRowBackwardRows`,
    /// its backward ones (`linearBackward`). sgemm first copies the whole weight into its packed layout,
    /// which pays off over many rows; over the value search's 10-130 rows per thread it costs about as much
    /// as the arithmetic (Debian's OpenBLAS 0.3.21 packs with a plain C loop on its AVX-512 cores). The
    /// kernels read the weight in place. `EngramBench --few-row-products --threads 1` on the Intel machine
    /// (`benchmarks/results/editing-rome-9/few-row-products.json`), sgemm's time over the kernels' for a
    /// pass over every block matrix, at 11 / 22 / 43 / 66 / 85 / 106 / 127 / 150 rows: forward 2.24 / 1.58 /
    /// 1.83 / 1.25 / 1.28 / 1.26 / 1.33 / 1.11, backward 2.20 / 1.55 / 1.36 / 1.21 / 1.11 / 1.04 / 1.12 /
    /// 0.98 (with two threads on one product the backward stops winning from about 64 rows).
    nonisolated(unsafe) public static var fewRowForwardRows = 128
    nonisolated(unsafe) public static var fewRowBackwardRows = 96

    /// Whether the few-row kernels run vector code here (AVX-512), and so take the products above.
    public static var fewRowKernelsVectorized: Bool { engram_float_products_vectorized() != 0 }

    @inline(__always)
    static func fewRows(_ n: Int, upTo limit: Int) -> Bool {
        n >= 2 && n <= limit && engram_float_products_vectorized() != 0
    }

    /// Up to this many rows, a weight kept as blocks is multiplied straight from them (read once, as in
    /// decoding); more rows are compute-bound and go to sgemm over dequantized pieces. (SmolLM2 on two
    /// cores, EngramBench prompt tok/s straight from the blocks against through pieces: 450 against 350
    /// at 32 tokens, 447 against 493 at 48, 447 against 583 at 96.)
    nonisolated(unsafe) public static var smallProductRows = 32

    /// Floats dequantized per product: at most this many (4 MiB), so a layer's matrix is done in one
    /// piece (the same sgemm as over the float copy) and the output head of a large vocabulary in several.
    static let dequantizedPieceFloats = 1 << 20

    /// `dX[n, cols] (+)= dY[n, rows] · W` for a weight kept as blocks (the input gradient of `linear`):
    /// each piece of rows dequantized in turn and its share added. A weight of one piece (every layer
    /// matrix of a small model) gives the same call, and so the same numbers, as over its float copy; with
    /// the few-row kernel, whose sums run over the rows in order, so does a weight of several pieces.
    static func linearBackward(_ dy: UnsafePointer<Float>, rows n: Int, blocks: QuantizedRows,
                               into dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard n > 0 else { return }
        let cols = blocks.cols
        forEachPiece(of: blocks) { first, count, piece in
            let beta: Float = first > 0 || accumulate ? 1 : 0
            if n == 1 {
                gemv(trans: true, m: count, n: cols, a: piece, lda: cols, x: dy + first, beta: beta, y: dx)
            } else if fewRows(n, upTo: fewRowBackwardRows) {
                engram_float_gemm_nn(piece, Int64(count), Int64(cols), dy + first, Int64(blocks.rows), Int64(n), dx,
                                     beta != 0 ? 1 : 0, Int32(threads))
            } else {
                gemm(transA: false, transB: false, m: n, n: cols, k: count, a: dy + first, lda: blocks.rows,
                     b: piece, ldb: cols, beta: beta, c: dx, ldc: cols)
            }
        }
    }

    /// `linear` over quantized blocks without a float copy: dequantize a piece of rows, multiply, next.
    /// Dequantizing costs a fraction of the product it feeds (one pass over the weights against `n`).
    private static func linear(_ x: UnsafePointer<Float>, rows n: Int, blocks: QuantizedRows,
                               into y: UnsafeMutablePointer<Float>, beta: Float) {
        let cols = blocks.cols
        forEachPiece(of: blocks) { first, count, piece in
            // Columns first ..< first + count of Y[n, rows]: as the float copy's product would compute them.
            if fewRows(n, upTo: fewRowForwardRows) {
                engram_float_gemm_nt(piece, Int64(count), Int64(cols), x, Int64(n), y + first, Int64(blocks.rows), beta != 0 ? 1 : 0,
                                     Int32(threads))
                return
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(cols), 1,
                        x, Int32(cols), piece, Int32(cols), beta, y + first, Int32(blocks.rows))
        }
    }

    /// Calls `body(first row, row count, floats)` for consecutive pieces of the weight's rows, each
    /// dequantized into one reused buffer of at most `dequantizedPieceFloats`.
    private static func forEachPiece(of blocks: QuantizedRows, _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let cols = blocks.cols
        let pieceRows = max(1, min(blocks.rows, dequantizedPieceFloats / cols))
        let piece = pieceBuffers.take(count: pieceRows * cols)
        defer { pieceBuffers.give(piece) }
        var first = 0
        while first < blocks.rows {
            let count = min(pieceRows, blocks.rows - first)
            blocks.dequantize(rows: first..<(first + count), into: piece.pointer, threads: threads)
            body(first, count, piece.pointer)
            first += count
        }
    }

    /// Buffers for the dequantized pieces, reused: a fresh 4 MiB buffer per product would be new pages,
    /// and faulting them in costs about as much as dequantizing into them.
    private static let pieceBuffers = BufferPool()

    final class BufferPool: @unchecked Sendable {
        private let lock = NSLock()
        private var free: [FloatBuffer] = []

        func take(count: Int) -> FloatBuffer {
            lock.lock()
            defer { lock.unlock() }
            if let i = free.firstIndex(where: { $0.count >= count }) { return free.remove(at: i) }
            return FloatBuffer(count: max(count, dequantizedPieceFloats), zeroed: false)
        }

        func give(_ buffer: FloatBuffer) {
            lock.lock()
            if free.count < 4 { free.append(buffer) } // more only when that many products ran at once
            lock.unlock()
        }
    }

    /// General `C[m,n] = alpha · op(A) · op(B) + beta · C` with explicit leading dimensions.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[m] = alpha · op(A) · x + beta · y` for `A[m, n]` (row-major, leading dimension lda).
    @inline(__always)
    public static func gemv(trans: Bool, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, incx: Int = 1, beta: Float = 0,
                            y: UnsafeMutablePointer<Float>, incy: Int = 1) {
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, Int32(incx), beta, y, Int32(incy))
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// Runs `body(0)`, …, `body(count − 1)` at the same time, one thread each, with OpenBLAS single-
    /// threaded meanwhile (its thread count is restored after). For independent pieces of work whose
    /// matrix products are too small for OpenBLAS to split well: a product of 40–70 rows gains little
    /// from a second OpenBLAS thread, two such products side by side nearly twice.
    public static func concurrently(_ count: Int, _ body: (Int) -> Void) {
        guard count > 1 else { if count == 1 { body(0) }; return }
        let saved = threads
        threads = 1
        defer { threads = saved }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }

    /// The OpenBLAS build and the CPU core it selected (e.g. "OpenBLAS 0.3.21 ... Haswell").
    public static var configuration: String {
        let config = String(cString: openblas_get_config())
        let core = String(cString: openblas_get_corename())
        return "\(config) core=\(core)"
    }

    /// OpenBLAS's x86-64 cores that use no AVX2: its `DYNAMIC_ARCH` builds fall back to one of them
    /// (Prescott) on a CPU newer than their version knows.
    static let coresWithoutAVX2: Set<String> = ["unknown", "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2",
                                                "penryn", "dunnington", "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona",
                                                "nano", "sandybridge", "bobcat", "bulldozer", "piledriver", "steamroller"]

    /// The OpenBLAS core to ask for when the one running uses none of this CPU's AVX2 or AVX-512 units:
    /// SkylakeX for AVX-512, Haswell for AVX2; nil when the core fits the CPU. Debian 12's OpenBLAS
    /// (0.3.21) does not know Intel's Emerald Rapids (family 6, model 207) and runs its Prescott core
    /// there (README, "Speed": ROME edits took 2–3 times as long as with SkylakeX).
    public static func fittingCore(core: String = String(cString: openblas_get_corename()),
                                   vectorBits: Int = Int(engram_cpu_vector_bits())) -> String? {
        guard coresWithoutAVX2.contains(core.lowercased()) else { return nil }
        switch vectorBits {
        case 512: return "SkylakeX"
        case 256: return "Haswell"
        default: return nil
        }
    }

    /// A line of advice when OpenBLAS runs a core below the CPU (`fittingCore`), naming the core to ask
    /// for; nil when the core fits the CPU or is the one `OPENBLAS_CORETYPE` names.
    public static func coreAdvice(core: String = String(cString: openblas_get_corename()),
                                  vectorBits: Int = Int(engram_cpu_vector_bits()),
                                  requested: String? = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
                                  chosenByEngram: Bool = ProcessInfo.processInfo.environment[coreChosenVariable] != nil) -> String? {
        guard let better = fittingCore(core: core, vectorBits: vectorBits) else { return nil }
        if let requested, !requested.isEmpty {
            guard requested.lowercased() != core.lowercased() else { return nil }
            // The fitting core itself is missing (a build without AVX-512 kernels): Haswell's run on AVX-512 CPUs too.
            let instead = requested.lowercased() != better.lowercased() ? better : better == "SkylakeX" ? "Haswell" : nil
            return "OPENBLAS_CORETYPE=\(requested)\(chosenByEngram ? " (set by engram)" : "") is not a core this OpenBLAS has; it runs its "
                + "\(core) core instead, which uses none of this CPU's vector units: matrix products are several times slower. "
                + (instead.map { "OPENBLAS_CORETYPE=\($0) may choose a fast one." } ?? "A newer OpenBLAS would be faster.")
        }
        return "OpenBLAS does not know this CPU and runs its \(core) core, which uses none of its \(vectorBits == 512 ? "AVX-512" : "AVX2") units: "
            + "matrix products are several times slower. Set OPENBLAS_CORETYPE=\(better) to choose a fast one."
    }

    /// Set in the environment when `runAgainWithFittingCore` chose `OPENBLAS_CORETYPE`.
    public static let coreChosenVariable = "ENGRAM_CHOSE_OPENBLAS_CORETYPE"

    /// When `OPENBLAS_CORETYPE` is unset and OpenBLAS runs a core below the CPU, runs this program again
    /// with it set to `fittingCore()` (OpenBLAS reads it once, as it loads, so a process cannot switch in
    /// place). A value already set, even by this, is left as it is (the environment's choice).
    /// Returns when there is nothing to do or the program could not be run again.
    public static func runAgainWithFittingCore() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = fittingCore(),
              String(cString: openblas_get_config()).contains("DYNAMIC_ARCH") else { return } // else it has one core only
        // Started through the dynamic loader (`ld-linux… ./engram`), /proc/self/exe is the loader: leave it.
        let program = CommandLine.arguments.first ?? ""
        if program.contains("/"),
           URL(fileURLWithPath: program).resolvingSymlinksInPath().path != URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path {
            return
        }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(coreChosenVariable, "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE") // not run again: go on with the core there is
        unsetenv(coreChosenVariable)
    }
}
