@testable import Engram
import Foundation
import XCTest

final class KeyStatisticsTests: XCTestCase {
    /// The accumulated sums equal Σ k kᵀ computed directly from hooked keys, at two layers of one pass
    /// (the pass stops at the last one's keys) and over more rows than one float64 chunk holds; the
    /// file round-trips.
    func testSumMatchesDirectComputationAndRoundTrips() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        let long = Array(repeating: "The river runs past the old mill, and the miller counts his sacks of grain.", count: 9)
            .joined(separator: " ")
        let texts = ["The cat sat on the mat.", "Paris is the capital of France, and a large city.", long, long + " Then he sleeps."]
        let layers = [1, 2]
        var stats = Dictionary(uniqueKeysWithValues: layers.map { ($0, KeyStatistics(layer: $0, width: model.config.keyWidth)) })
        let collector = KeyStatisticsCollector(model: model, tokenizer: tokenizer, modelHash: "test")
        try collector.accumulate(texts, into: &stats)
        let m = model.config.keyWidth
        var direct = Dictionary(uniqueKeysWithValues: layers.map { ($0, [Double](repeating: 0, count: m * m)) })
        var tokens = 0
        for text in texts {
            var hooks = Hooks()
            for l in layers {
                hooks.on(.mlpKey(l)) { rows in
                    for r in 0..<rows.rows {
                        let k = rows.values(row: r).map(Double.init)
                        direct[l]!.withUnsafeMutableBufferPointer { d in
                            for i in 0..<m { for j in i..<m { d[i * m + j] += k[i] * k[j] } }
                        }
                    }
                }
            }
            let ids = tokenizer.encode(text)
            tokens += ids.count
            _ = try model.forward(ids, cache: model.makeCache(), hooks: hooks, logits: .none)
        }
        XCTAssertGreaterThan(tokens, 300, "more rows than one chunk")
        for l in layers {
            stats[l]!.symmetrize()
            XCTAssertEqual(stats[l]!.tokens, tokens)
            for i in 0..<m { for j in stride(from: i, to: m, by: 97) {
                let want = direct[l]![i * m + j]
                XCTAssertEqual(stats[l]!.sum[i * m + j], want, accuracy: 1e-4 * max(1, abs(want)),
                               "layer \(l) [\(i), \(j)]: keys of a batched pass differ from single-sequence ones in the last float32 bits")
                XCTAssertEqual(stats[l]!.sum[j * m + i], stats[l]!.sum[i * m + j])
            } }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stats-\(UUID().uuidString).safetensors").path
        try stats[2]!.write(to: path)
        let back = try KeyStatistics.read(path: path)
        XCTAssertEqual(back.sum, stats[2]!.sum)
        XCTAssertEqual(back.tokens, tokens)
        XCTAssertEqual(back.layer, 2)
        defer { try? FileManager.default.removeItem(atPath: path) }

        // A damaged cache file is named when read, not met later as a zero key or a singular C.
        for (what, damage) in [("NaN", { (s: inout KeyStatistics) in s.sum[5] = .nan }),
                               ("negative diagonal", { (s: inout KeyStatistics) in s.sum[0] = -1 }),
                               ("all-zero", { (s: inout KeyStatistics) in s.sum = [Double](repeating: 0, count: s.sum.count) })] {
            var bad = stats[2]!
            damage(&bad)
            try bad.write(to: path)
            XCTAssertThrowsError(try KeyStatistics.read(path: path), what) {
                XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("is damaged"), "\($0)")
            }
        }
    }
}

final class HookStopTests: XCTestCase {
    /// A pass told to stop after a site gives that site the same rows as a full pass and runs no later
    /// handler; `max()` of sites is the one a pass reaches last.
    func testStoppingAfterASiteKeepsItsRowsAndSkipsTheRest() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        let ids = tokenizer.encode("The Eiffel Tower is located in the city of")
        func keys(stopAfter: HookSite?) throws -> (keys: [Float], later: Bool) {
            var hooks = Hooks()
            hooks.stopAfter = stopAfter
            var keys: [Float] = [], later = false
            hooks.on(.mlpKey(3)) { rows in keys = (0..<rows.rows).flatMap { rows.values(row: $0) } }
            hooks.on(.mlpOutput(3)) { _ in later = true }
            hooks.on(.residual(5)) { _ in later = true }
            _ = try model.forward(ids, cache: model.makeCache(), hooks: hooks, logits: .none)
            return (keys, later)
        }
        let full = try keys(stopAfter: nil), stopped = try keys(stopAfter: .mlpKey(3))
        XCTAssertTrue(full.later)
        XCTAssertFalse(stopped.later)
        XCTAssertEqual(stopped.keys, full.keys)
        XCTAssertEqual(stopped.keys.count, ids.count * model.config.keyWidth)
        XCTAssertEqual([HookSite.residual(1), .mlpKey(2), .embedding, .attentionOutput(2)].max(), .mlpKey(2))
        XCTAssertEqual([HookSite.mlpOutput(4), .residual(3)].max(), .mlpOutput(4))
        XCTAssertLessThan(HookSite.embedding, .residual(-1), "the order tells every pair of distinct sites apart")
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
        // Binary data is not a corpus (it decoded to replacement characters and counted as text).
        try Data([0x4f, 0x6e, 0x65, 0xff, 0xfe, 0x0a, 0x80]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TextCorpus(path: path)) { XCTAssertTrue("\($0)".contains("not UTF-8"), "\($0)") }
        XCTAssertThrowsError(try TextCorpus(path: FileManager.default.temporaryDirectory.path)) {
            XCTAssertTrue("\($0)".contains("it is a folder"), "\($0)")
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
