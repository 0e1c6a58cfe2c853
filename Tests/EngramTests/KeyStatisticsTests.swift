@testable import Engram
import Foundation
import XCTest

final class KeyStatisticsTests: XCTestCase {
    /// The accumulated sum equals Σ k kᵀ computed directly from hooked keys, and the file round-trips.
    func testSumMatchesDirectComputationAndRoundTrips() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        let texts = ["The cat sat on the mat.", "Paris is the capital of France, and a large city."]
        var stats: [Int: KeyStatistics] = [2: KeyStatistics(layer: 2, width: model.config.keyWidth)]
        let collector = KeyStatisticsCollector(model: model, tokenizer: tokenizer, modelHash: "test")
        try collector.accumulate(texts, into: &stats)
        stats[2]!.symmetrize()
        let m = model.config.keyWidth
        var direct = [Double](repeating: 0, count: m * m)
        var tokens = 0
        for text in texts {
            var hooks = Hooks()
            hooks.on(.mlpKey(2)) { rows in
                for r in 0..<rows.rows {
                    let k = rows.values(row: r).map(Double.init)
                    for i in 0..<m { for j in 0..<m { direct[i * m + j] += k[i] * k[j] } }
                }
                tokens += rows.rows
            }
            _ = try model.forward(tokenizer.encode(text), cache: model.makeCache(), hooks: hooks, logits: .none)
        }
        XCTAssertEqual(stats[2]!.tokens, tokens)
        for i in stride(from: 0, to: m * m, by: 997) {
            XCTAssertEqual(stats[2]!.sum[i], direct[i], accuracy: 1e-4 * max(1, abs(direct[i])), "keys of a batched pass differ from single-sequence ones in the last float32 bits")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stats-\(UUID().uuidString).safetensors").path
        try stats[2]!.write(to: path)
        let back = try KeyStatistics.read(path: path)
        XCTAssertEqual(back.sum, stats[2]!.sum)
        XCTAssertEqual(back.tokens, tokens)
        XCTAssertEqual(back.layer, 2)
    }
}

final class TextCorpusTests: XCTestCase {
    /// Asking for more documents than the corpus has is an error naming the corpus and its size (it
    /// used to be capped silently, so mom2_n_samples described statistics that did not exist).
    func testAskingForMoreDocumentsThanTheCorpusHasIsAnError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(UUID().uuidString).txt").path
        try "One.\nTwo.\nThree.\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let collector = KeyStatisticsCollector(model: try InMemoryTinyModels.model(InMemoryTinyModels.llama),
                                               tokenizer: TestTokenizer(pieces: []), modelHash: "test")
        XCTAssertThrowsError(try collector.statistics(corpus: TextCorpus(path: path), layers: [1], documents: 4)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("has 3 documents"), "\($0)")
        }
    }

    /// WikiText ships with CRLF line ends; "\r\n" is one Swift Character, so each line must still
    /// become its own document (a single-document corpus made MEMIT's statistics rank-deficient).
    func testCRLFLinesAreSeparateDocuments() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(UUID().uuidString).txt").path
        try " = Title = \r\nFirst paragraph.\r\n\r\nSecond paragraph.\nThird paragraph.\r\n".write(toFile: path, atomically: true, encoding: .utf8)
        let corpus = try TextCorpus(path: path)
        XCTAssertEqual(corpus.documents.sorted(), ["First paragraph.", "Second paragraph.", "Third paragraph."])
    }
}
