import Engram
import Foundation
import XCTest

/// The value cache on the default model: a second search of the same requests reads the stored values
/// bit for bit; once a weight has changed, the same requests miss (their values depend on the weights);
/// an unreadable entry is searched again and rewritten, never trusted.
final class ValueCacheTests: XCTestCase {
    let requests = [
        EditRequest(caseID: "eiffel", prompt: "The Eiffel Tower is located in the city of", subject: "Eiffel Tower", targetNew: "Rome"),
        EditRequest(caseID: "louvre", prompt: "The Louvre is located in the city of", subject: "Louvre", targetNew: "London"),
    ]

    func testValuesAreReusedOnlyForTheSameWeights() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("engram-values-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cache = try ValueCache(directory: folder, modelID: ModelRegistry.smollm2SHA256)
        let templates = ["{}", "Because of this. {}"]
        let hp = ValueSearchHyperparameters(steps: 3)
        func values(_ cache: ValueCache?) throws -> [[Float]] {
            try LocateThenEdit.targetValues(model: model, tokenizer: tokenizer, requests: requests, templates: templates,
                                            site: .residual(5), hyperParameters: hp, cache: cache)
        }
        let first = try values(cache)
        XCTAssertEqual(cache.misses, 2)
        XCTAssertEqual(cache.hits, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }
        XCTAssertEqual(files.count, 2)

        let second = try values(cache)
        XCTAssertEqual(cache.hits, 2)
        XCTAssertEqual(second.map { $0.map(\.bitPattern) }, first.map { $0.map(\.bitPattern) })
        // Without the cache the search gives the same values (up to batching's rounding).
        for (a, b) in zip(try values(nil).joined(), first.joined()) { XCTAssertEqual(a, b, accuracy: 1e-3) }

        // A changed edited weight (here layer 2's down projection) makes every entry stale.
        let w = model.weight(.mlpDown(2))
        let saved = w.values
        w.pointer[0] += 0.5
        _ = try values(cache)
        XCTAssertEqual(cache.misses, 4)
        w.pointer.update(from: saved, count: saved.count)
        _ = try values(cache)
        XCTAssertEqual(cache.hits, 4, "the original weights find their entries again")

        // A damaged entry is searched again and rewritten.
        for f in files { try Data("{".utf8).write(to: URL(fileURLWithPath: "\(folder)/\(f)")) }
        let again = try values(cache)
        XCTAssertEqual(cache.misses, 6)
        for (a, b) in zip(again.joined(), first.joined()) { XCTAssertEqual(a, b, accuracy: 1e-3) }
        _ = try values(cache)
        XCTAssertEqual(cache.hits, 6)
    }
}
