import COpenBLAS
import Foundation

/// AlphaEdit (editing-methods.md §4): MEMIT whose update is projected onto the null space of the
/// preserved keys' covariance, `P = Û Ûᵀ` over the eigenvectors of `C` with eigenvalues below
/// `nullspace_threshold`, so that `ΔW K₀ ≈ 0`. Keys of earlier edits (`Kp Kpᵀ`) stay in the solve
/// across sequential batches; `reset()` starts a new session.
public final class AlphaEdit: MEMIT {
    var projections: [Int: [Double]] = [:]
    var pastKeys: [Int: [Double]] = [:]

    public override var name: String { "AlphaEdit" }

    public override func reset() { pastKeys = [:] }

    func projection(_ layer: Int, m: Int) throws -> [Double] {
        if let p = projections[layer] { return p }
        let (values, vectors) = try LinearSolve.symmetricEigen(try moment(layer), n: m)
        // Eigenvectors are rows of `vectors`, eigenvalues ascending: the null space is a leading block.
        let kept = values.filter { $0 < hp.nullspace_threshold }.count
        guard kept > 0 else {
            throw EngramError.invalidArgument("AlphaEdit: no eigenvalue of C at layer \(layer) is below nullspace_threshold "
                + "\(hp.nullspace_threshold) (smallest \(values.first ?? 0)): the projection would be zero and the edit a no-op")
        }
        var p = [Double](repeating: 0, count: m * m)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(m), Int32(kept), 1,
                    vectors, Int32(m), vectors, Int32(m), 0, &p, Int32(m))
        projections[layer] = p
        return p
    }

    /// Solves `(P (K Kᵀ + Kp Kpᵀ) + α I) X = P K residᵀ`; since the right side is `(P K) residᵀ`, the
    /// update is `ΔW = Σ_i resid_i y_iᵀ` with `Y = A⁻¹ P K` — the same low-rank form as MEMIT.
    override func inputFactors(layer: Int, keys: [[Double]], model: LanguageModel) throws -> [[Double]] {
        let m = model.config.keyWidth, n = keys.count
        let p = try projection(layer, m: m)
        var s = pastKeys[layer] ?? [Double](repeating: 0, count: m * m)
        for k in keys { addOuter(&s, k, m) }
        var a = [Double](repeating: 0, count: m * m)
        for i in 0..<m { a[i * m + i] = hp.L2 }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(m), Int32(m), 1, p, Int32(m), s, Int32(m), 1, &a, Int32(m))
        let kMatrix = columns(keys, m) // [m, n]
        var pk = [Double](repeating: 0, count: m * n)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(m), 1, p, Int32(m), kMatrix, Int32(n), 0, &pk, Int32(n))
        let y = try LinearSolve.general(a, n: m, pk, columns: n)
        return (0..<n).map { j in (0..<m).map { y[$0 * n + j] } }
    }

    override func didEdit(keysAt: (Int) throws -> [[Double]]) throws {
        for layer in hp.layers { remember(layer: layer, keys: try keysAt(layer)) }
    }

    /// `Kp Kpᵀ += K Kᵀ` at the layer.
    func remember(layer: Int, keys: [[Double]]) {
        let m = keys.first?.count ?? 0
        var s = pastKeys[layer] ?? [Double](repeating: 0, count: m * m)
        for k in keys { addOuter(&s, k, m) }
        pastKeys[layer] = s
    }
}
