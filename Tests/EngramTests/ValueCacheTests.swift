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

        // An entry whose key matches but whose value has the wrong width (hand-edited) is a miss too.
        for f in files {
            let url = URL(fileURLWithPath: "\(folder)/\(f)")
            var entry = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            entry["value"] = [1.0, 2.0]
            try JSONSerialization.data(withJSONObject: entry).write(to: url)
        }
        let short = try values(cache)
        XCTAssertEqual(cache.misses, 8)
        XCTAssertEqual(short.map(\.count), [model.config.hidden, model.config.hidden])
    }

    /// Context templates on disk: sampled once and written; a stored file is read instead of sampling
    /// (a hand-written one proves it); a damaged file, one whose templates are not templates, or one for
    /// another model, is sampled again and rewritten.
    func testContextTemplatesAreStoredPerModel() throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        let model = try ModelLoader.build(ck), tokenizer = try TokenizerLoader.load(ck)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("engram-templates-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = TemplateStore(directory: folder, modelID: ModelRegistry.smollm2SHA256)
        let groups = [LocateThenEdit.TemplateGroup(length: 4, count: 5)]
        // Seeds no other test uses: the in-memory cache is per process.
        func templates(seed: UInt64) throws -> [[String]] {
            try LocateThenEdit.contextTemplates(model: model, tokenizer: tokenizer, groups: groups, seed: seed, store: store)
        }
        func file(seed: UInt64) -> String { "\(folder)/\(ModelRegistry.smollm2SHA256)-4x5-seed\(seed).json" }
        func stored(seed: UInt64) throws -> [[String]] {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file(seed: seed)))) as! [String: Any]
            return json["templates"] as! [[String]]
        }
        func write(seed: UInt64, model id: String, templates: [[String]]) throws {
            let entry: [String: Any] = ["version": "engram-templates-1", "modelSHA256": id, "groups": [["length": 4, "count": 5]],
                                        "seed": seed, "templates": templates]
            try JSONSerialization.data(withJSONObject: entry).write(to: URL(fileURLWithPath: file(seed: seed)))
        }

        let sampled = try templates(seed: 9101)
        XCTAssertEqual(sampled.count, 2)
        XCTAssertEqual(sampled[1].count, 5)
        XCTAssertEqual(try stored(seed: 9101), sampled)

        let handWritten = [["{}"], ["Written by hand. {}"]]
        try write(seed: 9102, model: ModelRegistry.smollm2SHA256, templates: handWritten)
        XCTAssertEqual(try templates(seed: 9102), handWritten)

        try Data("{".utf8).write(to: URL(fileURLWithPath: file(seed: 9103)))
        let resampled = try templates(seed: 9103)
        XCTAssertEqual(resampled[1].count, 5)
        XCTAssertEqual(try stored(seed: 9103), resampled)

        try write(seed: 9104, model: "another model", templates: handWritten)
        XCTAssertNotEqual(try templates(seed: 9104), handWritten)
        XCTAssertNotEqual(try stored(seed: 9104), handWritten)

        // JSON that parses but is not templates: no lists, an empty one, a template without "{}".
        for (seed, bad) in [(UInt64(9105), [[String]]()), (9106, [["{}"], []]), (9107, [["{}"], ["No placeholder."]])] {
            try write(seed: seed, model: ModelRegistry.smollm2SHA256, templates: bad)
            let again = try templates(seed: seed)
            XCTAssertEqual(again[1].count, 5, "\(bad)")
            XCTAssertEqual(try stored(seed: seed), again, "\(bad)")
        }
    }
}
