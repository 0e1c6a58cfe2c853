import CDecodeKernels
import XCTest
@testable import Engram

/// The few-row float products (`engram_float_gemm_nt`, `engram_float_gemm_nn`) that the value search's
/// forward and backward passes use on AVX-512 CPUs: against double-precision sums, on the vector path
/// (where the CPU has it) and on the portable loops, for shapes that leave every kind of remainder (rows
/// of X beyond multiples of 16 and of the dY·W tiles, rows of W beyond the X·Wᵀ tiles of 6/8/12 and its
/// blocks of 48, columns beyond whole vectors), with and without accumulating, on one thread and split
/// over several; and the promises the callers rely on: an element does not depend on the other rows or
/// the split, a weight done in pieces gives what it gives in one call, and both paths give the same bits.
final class FewRowProductTests: XCTestCase {
    /// (rows of X, rows of W, columns). Those with rows × columns ≥ 2¹⁵ are large enough for the pool to split
    /// them over threads. From 17 rows of X on, the vector path's X·Wᵀ lays them across several vectors of
    /// 16, in groups of at most four, the narrower first (70: 2 + 3 vectors, 100: 3 + 4, 130: 3 + 3 + 3).
    static let shapes = [(1, 1, 1), (2, 3, 15), (5, 4, 16), (6, 5, 17), (7, 9, 33), (11, 37, 53), (13, 64, 100),
                         (21, 36, 576), (32, 130, 129), (7, 300, 130), (3, 130, 300), (70, 13, 40), (100, 9, 20),
                         (130, 25, 18)]

    /// More shapes for the comparison of the two paths: one group of three and of four vectors, the step
    /// from one group to two (65), two groups of four (128), each with several blocks of 48 rows of W and
    /// split over two threads.
    static let pathShapes = shapes + [(40, 101, 20), (48, 60, 30), (64, 100, 50), (65, 97, 40), (70, 300, 200),
                                      (128, 100, 40)]

    /// Runs `body` on the vector path (when this CPU has AVX-512) and on the portable loops.
    func onEveryPath(_ body: (String) throws -> Void) rethrows {
        let saved = QuantizedRows.vectorBits
        defer { QuantizedRows.vectorBits = saved }
        for vectorized in [true, false] {
            QuantizedRows.vectorized = vectorized
            let path = engram_float_products_vectorized() != 0 ? "AVX-512" : "portable"
            if vectorized && engram_cpu_vector_bits() >= 512 {
                XCTAssertEqual(path, "AVX-512", "the CPU has AVX-512 but the portable loops run")
            }
            if !vectorized { XCTAssertEqual(path, "portable") }
            try body(path)
        }
    }

    /// Whether `got` is `start` plus the terms, summed in double precision, to float rounding; and that sum.
    static func isSum(_ got: Float, start: Float, terms count: Int, _ term: (Int) -> Double) -> (Bool, Double) {
        var exact = Double(start), magnitude = abs(exact)
        for k in 0..<count {
            let t = term(k)
            exact += t
            magnitude += abs(t)
        }
        return (abs(Double(got) - exact) <= 1e-6 * (magnitude + 1), exact)
    }

    func testForwardProductAgainstDoubleSums() {
        var rng = SeededRandom(seed: 71)
        onEveryPath { path in
            for (n, rows, cols) in Self.shapes {
                let w = rng.values(rows * cols, scale: 1), x = rng.values(n * cols, scale: 1)
                // Y is wider than the product (leading dimension rows + 3): the columns beyond stay as they were.
                let ldy = rows + 3, start = rng.values(n * ldy, scale: 1)
                for accumulate in [false, true] {
                    for threads in [1, 2] {
                        var y = start
                        engram_float_gemm_nt(w, Int64(rows), Int64(cols), x, Int64(n), &y, Int64(ldy), accumulate ? 1 : 0, Int32(threads))
                        let label = "\(path) n \(n) W \(rows)×\(cols) accumulate \(accumulate) threads \(threads)"
                        for i in 0..<n {
                            for o in 0..<ldy {
                                guard o < rows else {
                                    XCTAssertEqual(y[i * ldy + o], start[i * ldy + o], "\(label): column \(o) is outside the product")
                                    continue
                                }
                                let (close, exact) = Self.isSum(y[i * ldy + o], start: accumulate ? start[i * ldy + o] : 0, terms: cols) {
                                    Double(x[i * cols + $0]) * Double(w[o * cols + $0])
                                }
                                if !close { return XCTFail("\(label): y[\(i), \(o)] = \(y[i * ldy + o]), expected \(exact)") }
                            }
                        }
                    }
                }
            }
        }
    }

    func testBackwardProductAgainstDoubleSums() {
        var rng = SeededRandom(seed: 72)
        onEveryPath { path in
            for (n, rows, cols) in Self.shapes + [(9, 200, 70), (4, 3, 130)] {
                let w = rng.values(rows * cols, scale: 1)
                // dY wider than W has rows (leading dimension rows + 2), as a piece of a larger weight sees it.
                let lddy = rows + 2, dy = rng.values(n * lddy, scale: 1), start = rng.values(n * cols, scale: 1)
                for accumulate in [false, true] {
                    for threads in [1, 2] {
                        var dx = start
                        engram_float_gemm_nn(w, Int64(rows), Int64(cols), dy, Int64(lddy), Int64(n), &dx, accumulate ? 1 : 0, Int32(threads))
                        let label = "\(path) n \(n) W \(rows)×\(cols) accumulate \(accumulate) threads \(threads)"
                        for i in 0..<n {
                            for c in 0..<cols {
                                let (close, exact) = Self.isSum(dx[i * cols + c], start: accumulate ? start[i * cols + c] : 0, terms: rows) {
                                    Double(dy[i * lddy + $0]) * Double(w[$0 * cols + c])
                                }
                                if !close { return XCTFail("\(label): dx[\(i), \(c)] = \(dx[i * cols + c]), expected \(exact)") }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A row's results are the same bits whether it is multiplied alone or among others, on one thread or
    /// several; and the backward over a weight in two consecutive pieces of rows (the second accumulating)
    /// is the same bits as over the whole weight in one call (`BLAS.linearBackward` over blocks relies on it).
    func testRowsAloneSplitsAndPiecesGiveTheSameBits() {
        var rng = SeededRandom(seed: 73)
        onEveryPath { path in
            let n = 70, rows = 300, cols = 200 // 70 rows: two groups of vectors on the vector path
            let w = rng.values(rows * cols, scale: 1), x = rng.values(n * cols, scale: 1), dy = rng.values(n * rows, scale: 1)
            var y = [Float](repeating: 0, count: n * rows), dx = [Float](repeating: 0, count: n * cols)
            engram_float_gemm_nt(w, Int64(rows), Int64(cols), x, Int64(n), &y, Int64(rows), 0, 1)
            engram_float_gemm_nn(w, Int64(rows), Int64(cols), dy, Int64(rows), Int64(n), &dx, 0, 1)
            var split = y, splitDx = dx
            engram_float_gemm_nt(w, Int64(rows), Int64(cols), x, Int64(n), &split, Int64(rows), 0, 2)
            engram_float_gemm_nn(w, Int64(rows), Int64(cols), dy, Int64(rows), Int64(n), &splitDx, 0, 2)
            XCTAssertEqual(split, y, "\(path): forward split over two threads")
            XCTAssertEqual(splitDx, dx, "\(path): backward split over two threads")
            for i in [0, 7, 20, 48, 69] {
                var alone = [Float](repeating: 0, count: rows), aloneDx = [Float](repeating: 0, count: cols)
                Array(x[(i * cols)..<((i + 1) * cols)]).withUnsafeBufferPointer {
                    engram_float_gemm_nt(w, Int64(rows), Int64(cols), $0.baseAddress!, 1, &alone, Int64(rows), 0, 1)
                }
                Array(dy[(i * rows)..<((i + 1) * rows)]).withUnsafeBufferPointer {
                    engram_float_gemm_nn(w, Int64(rows), Int64(cols), $0.baseAddress!, Int64(rows), 1, &aloneDx, 0, 1)
                }
                XCTAssertEqual(alone, Array(y[(i * rows)..<((i + 1) * rows)]), "\(path): forward row \(i) alone")
                XCTAssertEqual(aloneDx, Array(dx[(i * cols)..<((i + 1) * cols)]), "\(path): backward row \(i) alone")
            }
            for cut in [1, 64, 100, 299] {
                var pieces = [Float](repeating: 0, count: n * cols)
                w.withUnsafeBufferPointer { wp in
                    dy.withUnsafeBufferPointer { dyp in
                        engram_float_gemm_nn(wp.baseAddress!, Int64(cut), Int64(cols), dyp.baseAddress!, Int64(rows), Int64(n), &pieces, 0, 1)
                        engram_float_gemm_nn(wp.baseAddress! + cut * cols, Int64(rows - cut), Int64(cols), dyp.baseAddress! + cut,
                                             Int64(rows), Int64(n), &pieces, 1, 2)
                    }
                }
                XCTAssertEqual(pieces, dx, "\(path): backward in pieces cut at row \(cut)")
            }
        }
    }

    /// Both paths make the same fused multiply-adds in the same order, so the vector path gives the
    /// portable loops' bits.
    func testVectorPathGivesThePortableBits() throws {
        try XCTSkipUnless(engram_cpu_vector_bits() >= 512, "no AVX-512 here: only the portable loops run")
        var rng = SeededRandom(seed: 75)
        for (n, rows, cols) in Self.pathShapes {
            let w = rng.values(rows * cols, scale: 1), x = rng.values(n * cols, scale: 1), dy = rng.values(n * rows, scale: 1)
            let startY = rng.values(n * rows, scale: 1), startDx = rng.values(n * cols, scale: 1)
            for accumulate in [false, true] {
                var results: [[[Float]]] = []
                onEveryPath { _ in
                    var y = startY, dx = startDx
                    engram_float_gemm_nt(w, Int64(rows), Int64(cols), x, Int64(n), &y, Int64(rows), accumulate ? 1 : 0, 2)
                    engram_float_gemm_nn(w, Int64(rows), Int64(cols), dy, Int64(rows), Int64(n), &dx, accumulate ? 1 : 0, 2)
                    results.append([y, dx])
                }
                let label = "n \(n) W \(rows)×\(cols) accumulate \(accumulate)"
                XCTAssertEqual(results[0][0], results[1][0], "\(label): X·Wᵀ differs between the paths")
                XCTAssertEqual(results[0][1], results[1][1], "\(label): dY·W differs between the paths")
            }
        }
    }

    /// `BLAS.linear` and `BLAS.linearBackward` over a float weight send a few rows to these kernels (where
    /// they run vector code) and more to sgemm: both give the double-precision sums to rounding, at the
    /// thresholds and on each side of them.
    func testBLASChoosesAndAgrees() {
        var rng = SeededRandom(seed: 74)
        let rows = 96, cols = 80, weight = Matrix(rows: rows, cols: cols, values: rng.values(rows * cols, scale: 1))
        let forward = BLAS.fewRowForwardRows, backward = BLAS.fewRowBackwardRows
        for n in [1, 2, forward, forward + 1, backward, backward + 1] {
            for limit in [forward, backward] {
                XCTAssertEqual(BLAS.fewRows(n, upTo: limit), n >= 2 && n <= limit && engram_float_products_vectorized() != 0)
            }
            let x = rng.values(n * cols, scale: 1), dy = rng.values(n * rows, scale: 1)
            var y = [Float](repeating: 0, count: n * rows), dx = [Float](repeating: 0, count: n * cols)
            BLAS.linear(x, rows: n, weight: weight, into: &y)
            BLAS.linearBackward(dy, rows: n, weight: weight, into: &dx)
            for i in 0..<n {
                for o in 0..<rows {
                    var exact = 0.0
                    for k in 0..<cols { exact += Double(x[i * cols + k]) * Double(weight.pointer[o * cols + k]) }
                    XCTAssertEqual(Double(y[i * rows + o]), exact, accuracy: 1e-4, "n \(n): y[\(i), \(o)]")
                }
                for c in 0..<cols {
                    var exact = 0.0
                    for o in 0..<rows { exact += Double(dy[i * rows + o]) * Double(weight.pointer[o * cols + c]) }
                    XCTAssertEqual(Double(dx[i * cols + c]), exact, accuracy: 1e-4, "n \(n): dx[\(i), \(c)]")
                }
            }
        }
    }
}
