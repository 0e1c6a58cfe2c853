import Foundation
import XCTest
@testable import Engram

/// The unedited model's scores on the first 20 records of each dev file, against an independent
/// computation (fixtures/eval-reference/make_eval_reference.py: transformers forward, llama.cpp
/// tokenizer, the metrics written from the spec in Python). Record by record, metric by metric.
final class EvalReferenceTests: XCTestCase {
    struct Dataset {
        let name: String
        let file: String
        let sha256: String
        let records: [[String: Any]]
    }

    func reference() throws -> (String, [Dataset]) {
        let url = TestSupport.packageRoot.appendingPathComponent("fixtures/eval-reference/smollm2-unedited.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let sets = (root["datasets"] as! [String: [String: Any]]).sorted { $0.key < $1.key }.map { name, d in
            Dataset(name: name, file: d["file"] as! String, sha256: d["sha256"] as! String, records: d["records"] as! [[String: Any]])
        }
        return (root["model_sha256"] as! String, sets)
    }

    func run(_ dataset: Dataset) throws -> EvaluationRun {
        let (checkpoint, model) = try TestSupport.sharedDefaultModel()
        let tokenizer = try TokenizerLoader.load(checkpoint)
        let path = try TestSupport.sharedFile(dataset.file).path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is not available") }
        let file = try EditFile.load(path)
        XCTAssertEqual(file.sha256, dataset.sha256, "\(dataset.file) is not the file the reference was computed on")
        var options = EvaluationOptions()
        options.limit = dataset.records.count
        options.fluency = false
        return try EvaluationRunner(model: model, tokenizer: tokenizer, editor: NoEditor(), file: file,
                                    modelSHA256: ModelRegistry.smollm2SHA256, options: options).run()
    }

    func testUneditedScoresMatchTheIndependentComputation() throws {
        let (modelHash, datasets) = try reference()
        XCTAssertEqual(modelHash, ModelRegistry.smollm2SHA256)
        XCTAssertEqual(datasets.map(\.name), ["counterfact", "mquake", "zsre"])
        for dataset in datasets {
            XCTAssertGreaterThanOrEqual(dataset.records.count, 20)
            let run = try run(dataset)
            XCTAssertEqual(run.records.count, dataset.records.count)
            var compared = 0
            for (ours, theirs) in zip(run.records, dataset.records) {
                let at = "\(dataset.name) record \(ours.index)"
                XCTAssertNil(ours.error, at)
                for (key, value) in theirs {
                    guard let expected = value as? Double, !key.hasPrefix("margin.") else { continue }
                    guard let got = ours.pre[key] else { XCTFail("\(at): no \(key)"); continue }
                    if key.hasSuffix("_magnitude") {
                        XCTAssertEqual(got, expected, accuracy: 2e-3, "\(at): \(key)")
                    } else if key.hasSuffix("_score"), let margin = theirs["margin." + key.split(separator: ".")[1].replacingOccurrences(of: "_score", with: "")] as? Double, margin < 1e-3 {
                        continue // a near tie: float32 summation order may decide it either way
                    } else {
                        XCTAssertEqual(got, expected, accuracy: 1e-6, "\(at): \(key)")
                    }
                    compared += 1
                }
                if let texts = theirs["texts"] as? [String: [String]] {
                    for (i, answer) in (texts["answers"] ?? []).enumerated() {
                        XCTAssertEqual(ours.texts["pre.mquake.answer.\(i)"], answer, "\(at): answer \(i)")
                    }
                    for (i, answer) in (texts["edits"] ?? []).enumerated() {
                        XCTAssertEqual(ours.texts["pre.mquake.edit.\(i)"], answer, "\(at): edit cloze \(i)")
                    }
                }
            }
            XCTAssertGreaterThan(compared, dataset.records.count * 3, dataset.name)
        }
    }
}
