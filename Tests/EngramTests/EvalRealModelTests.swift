import Foundation
import XCTest
@testable import Engram

/// The scoring primitives on the real default model, driven with token ids and checked against the
/// Hugging Face reference fixture (greedy tokens, last-position logits).
final class EvalRealModelTests: XCTestCase {
    struct Case {
        let ids: [Int32]
        let greedy: [Int32]
        let maxLogit: Double
        let logSumExp: Double
    }

    func cases() throws -> [Case] {
        let root = try TestSupport.json("fixtures/smollm2-reference.json") as! [String: Any]
        return (root["cases"] as! [[String: Any]]).map { c in
            let stats = c["last_logits_stats"] as! [String: Any]
            return Case(ids: (c["token_ids"] as! [Int]).map(Int32.init), greedy: (c["greedy20_ids"] as! [Int]).map(Int32.init),
                        maxLogit: stats["max"] as! Double, logSumExp: stats["logsumexp"] as! Double)
        }
    }

    func testTeacherForcingAndGenerationReproduceTheReference() throws {
        let (_, model) = try TestSupport.sharedDefaultModel()
        let cases = try cases()
        // Teacher forcing on the reference's own greedy continuation: every argmax is the gold token.
        let items = cases.map { ScoringItem(context: $0.ids, target: $0.greedy) }
        let scores = try TeacherForcing(model: model, batchSize: 4).score(items)
        for (c, s) in zip(cases, scores) {
            XCTAssertEqual(s.predicted, c.greedy)
            XCTAssertEqual(s.accuracy, 1)
            // log P(first greedy token) = its logit − logsumexp of the reference's last-position logits.
            XCTAssertEqual(s.logProbs[0], c.maxLogit - c.logSumExp, accuracy: 5e-3)
        }
        // One at a time gives the same numbers as the batch.
        let single = try TeacherForcing(model: model, batchSize: 1).score(items)
        for (a, b) in zip(scores, single) {
            for (x, y) in zip(a.logProbs, b.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-3) }
        }
        // Batched greedy generation from the prompts reproduces the reference tokens.
        let generated = try BatchGenerator(model: model, batchSize: 4).generate(cases.map { GenerationJob(context: $0.ids, maxNewTokens: 20) })
        XCTAssertEqual(generated, cases.map(\.greedy))
    }
}

extension EvalRealModelTests {
    func counterFact() throws -> EditFile {
        let path = try TestSupport.sharedFile("data/counterfact/counterfact-edit.dev-0-299.json").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is not available") }
        return try EditFile.load(path)
    }

    /// The whole path with the real tokenizer: with no edit, "after" equals "before" and locality is
    /// perfect; the weights are untouched; IKE's prompt raises the new target's token accuracy.
    func testRunnerWithTheRealTokenizer() throws {
        let (checkpoint, model) = try TestSupport.sharedDefaultModel()
        let tokenizer = try TokenizerLoader.load(checkpoint)
        let file = try counterFact()
        var options = EvaluationOptions()
        options.limit = 3
        options.fluency = false
        let before = bits(model.weight(.mlpDown(5)))
        let none = try EvaluationRunner(model: model, tokenizer: tokenizer, editor: NoEditor(), file: file,
                                        modelSHA256: ModelRegistry.smollm2SHA256, options: options).run()
        for r in none.records {
            XCTAssertEqual(r.post?.filter { !$0.key.contains("locality") }, r.pre)
            XCTAssertEqual(r.post?["knowedit.locality"], 1)
            XCTAssertNil(r.error)
        }
        let ike = try EvaluationRunner(model: model, tokenizer: tokenizer, editor: IKE(pool: file.requests, k: 4), file: file,
                                       modelSHA256: ModelRegistry.smollm2SHA256, options: options).run()
        let pre = ike.aggregates[.pre]!["knowedit.reliability"]!.value, post = ike.aggregates[.post]!["knowedit.reliability"]!.value
        XCTAssertGreaterThan(post, pre)
        XCTAssertEqual(bits(model.weight(.mlpDown(5))), before)
    }

    /// Times the runner end to end on the real model and data. Opt-in (set ENGRAM_EVAL_SMOKE=N for N
    /// records; ENGRAM_EVAL_FLUENCY=1 adds fluency), because it takes minutes; it prints the Markdown
    /// report and the time per record.
    func testRunnerSmokeOnCounterFact() throws {
        guard let n = ProcessInfo.processInfo.environment["ENGRAM_EVAL_SMOKE"].flatMap(Int.init) else {
            throw XCTSkip("set ENGRAM_EVAL_SMOKE=N to run the runner on N CounterFact records with SmolLM2")
        }
        let (checkpoint, model) = try TestSupport.sharedDefaultModel()
        let tokenizer = try TokenizerLoader.load(checkpoint)
        let file = try counterFact()
        var options = EvaluationOptions()
        options.limit = n
        options.fluency = ProcessInfo.processInfo.environment["ENGRAM_EVAL_FLUENCY"] == "1"
        let before = bits(model.weight(.mlpDown(3)))
        for editor in [IKE(pool: file.requests, k: 4) as Editor, NoEditor()] {
            let clock = ContinuousClock()
            let start = clock.now
            let cpuStart = clock_gettime_nsec_np_compat()
            let run = try EvaluationRunner(model: model, tokenizer: tokenizer, editor: editor, file: file,
                                           modelSHA256: ModelRegistry.smollm2SHA256, options: options).run()
            let seconds = (clock.now - start).seconds
            let cpu = Double(clock_gettime_nsec_np_compat() - cpuStart) / 1e9
            print(run.markdownReport())
            print(String(format: "%@: %d records in %.1f s wall, %.1f s CPU (%.2f s wall per record)", editor.name, n, seconds, cpu, seconds / Double(n)))
            XCTAssertEqual(run.records.count, n)
        }
        XCTAssertEqual(bits(model.weight(.mlpDown(3))), before)
    }
}

/// CPU time of the process in nanoseconds.
func clock_gettime_nsec_np_compat() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
