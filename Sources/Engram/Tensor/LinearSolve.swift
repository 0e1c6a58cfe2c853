import COpenBLAS
import Foundation

/// Dense float64 solves for the closed-form editors, through OpenBLAS's LAPACK.
/// Matrices are row-major `[n, n]`; symmetric inputs need no transpose for column-major LAPACK.
public enum LinearSolve {
    /// Solves `A X = B` for symmetric positive definite `A [n, n]` and `B [n, k]` (Cholesky).
    public static func symmetricPositiveDefinite(_ a: [Double], n: Int, _ b: [Double], columns k: Int) throws -> [Double] {
        var a = a
        var bt = transpose(b, rows: n, cols: k) // column-major B
        var info: Int32 = 0
        var nn = Int32(n), kk = Int32(k), lda = Int32(n)
        var uplo = CChar(UInt8(ascii: "U"))
        dposv_(&uplo, &nn, &kk, &a, &lda, &bt, &lda, &info)
        guard info == 0 else {
            throw EngramError.invalidArgument("the system is not positive definite (LAPACK dposv info \(info))")
        }
        return transpose(bt, rows: k, cols: n)
    }

    /// Solves `A X = B` for a general `A [n, n]` (row-major) and `B [n, k]` (LU with pivoting).
    public static func general(_ a: [Double], n: Int, _ b: [Double], columns k: Int) throws -> [Double] {
        var at = transpose(a, rows: n, cols: n)
        var bt = transpose(b, rows: n, cols: k)
        var pivots = [Int32](repeating: 0, count: n)
        var info: Int32 = 0
        var nn = Int32(n), kk = Int32(k), lda = Int32(n)
        dgesv_(&nn, &kk, &at, &lda, &pivots, &bt, &lda, &info)
        guard info == 0 else { throw EngramError.invalidArgument("singular system in the editor's solve (LAPACK dgesv info \(info))") }
        return transpose(bt, rows: k, cols: n)
    }

    /// Eigen-decomposition of a symmetric `A [n, n]`: eigenvalues ascending and eigenvectors as the
    /// rows of the returned `[n, n]` matrix.
    public static func symmetricEigen(_ a: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        var a = a // column-major symmetric == row-major
        var w = [Double](repeating: 0, count: n)
        var info: Int32 = 0
        var nn = Int32(n), lda = Int32(n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "U"))
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workSize = 0.0, iworkSize: Int32 = 0
        dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &workSize, &lwork, &iworkSize, &liwork, &info)
        lwork = Int32(workSize)
        liwork = iworkSize
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_(&jobz, &uplo, &nn, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else { throw EngramError.invalidArgument("eigen-decomposition failed (LAPACK dsyevd info \(info))") }
        // Column-major eigenvectors: column j is vector j, i.e. row j of `a` read row-major.
        return (w, a)
    }

    public static func transpose(_ x: [Double], rows: Int, cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = x[i * cols + j] } }
        return out
    }
}
