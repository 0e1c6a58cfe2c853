// `EngramBench --few-row-products [--rows 2,11,21,32,48] [--threads 1]`: seconds for one pass of a few
// rows through every weight matrix of the model's blocks, and through the output head, forward
// (`BLAS.linear`, Y = X·Wᵀ) and backward (`BLAS.linearBackward`, dX = dY·W), by sgemm and by the few-row
// kernels (`BLAS.fewRowForwardRows`, `fewRowBackwardRows`), on the float copies `engram edit` makes. Each
// product reads another matrix, so the weights come from memory as in the value search (whose shards run
// one thread each).
// Tells on a new CPU whether, and up to how many rows, the kernels beat its OpenBLAS core.
import Engram
import Foundation

func fewRowProductTimes(checkpoint ck: Checkpoint, rows: [Int], repeats: Int) throws -> [String: Any] {
    let blockNames = ck.tensorNames.filter { $0.hasPrefix("blk.") && $0.hasSuffix(".weight") && ck.tensors[$0]?.shape.count == 2 }
    let layers = try blockNames.map { try ck.tensor($0).matrix() }
    let head = try (ck.has("output.weight") ? ck.tensor("output.weight") : ck.tensor("token_embd.weight")).matrix()
    let widest = (layers + [head]).map { max($0.rows, $0.cols) }.max() ?? 0
    let clock = ContinuousClock()
    let saved = (BLAS.fewRowForwardRows, BLAS.fewRowBackwardRows)
    defer { (BLAS.fewRowForwardRows, BLAS.fewRowBackwardRows) = saved }

    var results: [String: Any] = [:]
    for n in rows {
        let x = (0..<(n * widest)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        var out = [Float](repeating: 0, count: n * widest)
        var byGroup: [String: Any] = [:]
        for (group, matrices) in [("layers", layers), ("head", [head])] {
            var byDirection: [String: Any] = [:]
            for direction in ["forward", "backward"] {
                var seconds: [String: [String: Double]] = [:]
                for path in ["sgemm", "few_row_kernels"] {
                    BLAS.fewRowForwardRows = path == "sgemm" ? 0 : Int.max
                    BLAS.fewRowBackwardRows = BLAS.fewRowForwardRows
                    var passes: [Double] = []
                    for _ in 0..<(repeats + 1) { // the first pass is not counted (page-ins)
                        let t = clock.now
                        for w in matrices {
                            if direction == "forward" {
                                BLAS.linear(x, rows: n, weight: w, into: &out)
                            } else {
                                BLAS.linearBackward(x, rows: n, weight: w, into: &out)
                            }
                        }
                        passes.append((clock.now - t).seconds)
                    }
                    seconds[path] = summary(Array(passes.dropFirst()))
                }
                byDirection[direction] = [
                    "seconds_per_pass": seconds,
                    "sgemm_over_kernels": (seconds["sgemm"]?["median"] ?? 0) / max(seconds["few_row_kernels"]?["median"] ?? 1, 1e-12),
                ]
            }
            byGroup[group] = byDirection
        }
        results["rows_\(n)"] = byGroup
    }
    return [
        "matrices": ["layers": layers.count, "head": "\(head.rows)x\(head.cols)"],
        "few_row_kernels_vectorized": BLAS.fewRowKernelsVectorized,
        "results": results,
    ]
}
