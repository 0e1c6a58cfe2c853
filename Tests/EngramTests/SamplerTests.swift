@testable import Engram
import XCTest

/// The one-pass top-k selection returns exactly what sorting the whole vocabulary (stable, by
/// descending logit) and cutting it returned, ties included, so sampled text does not change.
final class SamplerTests: XCTestCase {
    func testTopKSelectionEqualsStableSort() {
        var rng = SplitMix64(seed: 7)
        for trial in 0..<200 {
            let count = 1 + Int(rng.next() % 300)
            // Few distinct values so that ties are common.
            let logits = (0..<count).map { _ in Float(Int(rng.next() % 9)) - 4 + (trial % 2 == 0 ? 0 : 0.5) }
            for k in [1, 2, 5, 17, 64] where k < count {
                let selected = logits.withUnsafeBufferPointer { Sampler.topK($0.baseAddress!, count: count, k: k) }
                let sorted = (0..<count).map { (id: Int32($0), logit: logits[$0]) }.sorted { $0.logit > $1.logit }.prefix(k)
                XCTAssertEqual(selected.map(\.id), sorted.map(\.id), "trial \(trial), k \(k)")
            }
        }
    }
}
