import Foundation
import XCTest
@testable import Engram

/// "Edits" the bigram model by adding a logit bias toward one token (through the editable weight, so
/// the patch path and the bit-exact revert are exercised).
final class BiasEditor: Editor {
    let token: Int32
    let amount: Float
    private(set) var calls: [[String]] = []
    /// "edit 1,2" and "reset", in order.
    private(set) var events: [String] = []
    init(token: Int32, amount: Float) {
        self.token = token
        self.amount = amount
    }
    var name: String { "bias" }
    var hyperParameters: [String: String] { ["token": String(token), "amount": String(amount)] }
    func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        calls.append(requests.map(\.caseID))
        events.append("edit " + requests.map(\.caseID).joined(separator: ","))
        if requests.contains(where: { $0.caseID == "fail" }) { throw EngramError.invalidArgument("cannot edit this one") }
        let delta = Matrix(rows: model.config.hidden, cols: model.config.intermediate)
        delta.pointer[Int(token)] = amount
        return EditPatch(method: name, hyperParameters: hyperParameters, requests: requests,
                         deltas: [WeightDelta(weight: .mlpDown(0), change: .dense(delta))])
    }
    func reset() { events.append("reset") }
}

final class EvalRunnerTests: XCTestCase {
    let tokenizer = TestTokenizer(pieces: ["France", "Germany", " is", " Paris", " New", " York", " Berlin", " Mitte", " capital", " of", " The", "Q", "A"])

    func id(_ piece: String) -> Int32 { tokenizer.id(ofPiece: piece)! }

    /// " is" → " Paris" (2), " New" → " York" (5), " Berlin" → " Mitte" (5), " Mitte" → " Paris" (5),
    /// " Paris" → "\n", " York" → "\n", ":" → " Paris" (2): the unedited model answers Paris. The editor's bias of 3 on " New" flips
    /// " is" and ":" to " New" but not " New" → " York" nor " Berlin" → " Mitte".
    func model() -> BigramModel {
        BigramModel(vocab: tokenizer.vocabularySize, table: {
            var t = [[Float]](repeating: [Float](repeating: 0, count: tokenizer.vocabularySize), count: tokenizer.vocabularySize)
            for (a, b, s) in [(" is", " Paris", 2), (" New", " York", 5), (" Berlin", " Mitte", 5), (" Paris", "\n", 4),
                              (" York", "\n", 4), (":", " Paris", 2), ("France", " is", 2), ("Germany", " is", 2),
                              (" Mitte", " Paris", 5)] as [(String, String, Float)] {
                t[Int(id(a))][Int(id(b))] = s
            }
            return t
        }())
    }

    let knowEditJSON = """
    [{"case_id": 1, "prompt": "France is", "subject": "France", "target_new": "New York", "ground_truth": "Paris",
      "rephrase_prompt": "The capital of France is",
      "locality": {"RS": [{"prompt": "Germany is", "ground_truth": "Berlin Mitte Paris"}]},
      "portability": {"R": [{"prompt": "France is", "ground_truth": [["New York", "NYC"]]}], "S": [{"prompt": "France is", "ground_truth": "Paris"}]}},
     {"case_id": 2, "prompt": "Germany is", "subject": "Germany", "target_new": "New York", "ground_truth": "Paris"}]
    """

    func options(_ configure: (inout EvaluationOptions) -> Void = { _ in }) -> EvaluationOptions {
        var o = EvaluationOptions()
        o.fluency = false
        o.suites = [.knowEdit, .counterFact, .zsRE]
        configure(&o)
        return o
    }

    func run(_ file: EditFile, _ editor: Editor, _ model: LanguageModel, _ options: EvaluationOptions,
             progress: ((EvaluationProgress) -> Void)? = nil) throws -> EvaluationRun {
        let runner = EvaluationRunner(model: model, tokenizer: tokenizer, editor: editor, file: file, modelSHA256: "m" + String(repeating: "0", count: 63), options: options)
        runner.progress = progress
        return try runner.run()
    }

    func testKnowEditCounterFactAndZsREMetricsOnHandMadeRecords() throws {
        let m = model()
        let file = try fixture(knowEditJSON, name: "hand.json")
        let result = try run(file, BiasEditor(token: id(" New"), amount: 3), m, options())
        XCTAssertEqual(m.down.values, [Float](repeating: 0, count: m.down.count), "the run restores the weights")
        let r0 = result.records[0], r1 = result.records[1]

        // "New York" = " New" " York": before, " is" → " Paris" (miss) and " New" → " York" (hit).
        XCTAssertEqual(r0.pre["knowedit.reliability"], 0.5)
        XCTAssertEqual(r0.post?["knowedit.reliability"], 1)
        XCTAssertEqual(r0.pre["knowedit.generalization"], 0.5)
        XCTAssertEqual(r0.post?["knowedit.generalization"], 1)
        // Locality "Germany is" → " Berlin Mitte Paris": the first position flips (Paris → New), the other two
        // stay (Mitte, Paris): 2 of 3 positions agree.
        XCTAssertNil(r0.pre["knowedit.locality"], "locality is a comparison with the unedited model, so only after editing")
        XCTAssertEqual(r0.post!["knowedit.locality.RS"]!, 2.0 / 3.0, accuracy: 1e-6)
        XCTAssertEqual(r0.post!["knowedit.locality"]!, 2.0 / 3.0, accuracy: 1e-6)
        // Portability: R (first alias "New York") 0.5 → 1, S ("Paris") 1 → 0; the mean over keys.
        XCTAssertEqual(r0.pre["knowedit.portability.R"], 0.5)
        XCTAssertEqual(r0.pre["knowedit.portability.S"], 1)
        XCTAssertEqual(r0.pre["knowedit.portability"], 0.75)
        XCTAssertEqual(r0.post?["knowedit.portability"], 0.5)
        // A record without rephrase, locality or portability has none of those metrics (not zeros).
        XCTAssertNil(r1.post?["knowedit.generalization"])
        XCTAssertNil(r1.post?["knowedit.locality"])
        XCTAssertNil(r1.post?["knowedit.portability"])
        XCTAssertEqual(result.aggregates[.post]?["knowedit.locality"], Aggregate(value: 0.666667, count: 1))
        XCTAssertEqual(result.aggregates[.post]?["knowedit.reliability"], Aggregate(value: 1, count: 2))

        // CounterFact in closed form: log-probabilities from the bigram table, with and without the bias.
        func nll(_ bias: Float, _ pairs: [(String, String)]) -> Double {
            m.down.pointer[Int(id(" New"))] = bias
            defer { m.down.pointer[Int(id(" New"))] = 0 }
            return -pairs.map { m.logProb(id($0.1), after: id($0.0)) }.reduce(0, +) / Double(pairs.count)
        }
        for (phase, bias) in [("pre", Float(0)), ("post", Float(3))] {
            let newNLL = nll(bias, [(" is", " New"), (" New", " York")])
            let trueNLL = nll(bias, [(" is", " Paris")])
            let metrics = phase == "pre" ? r0.pre : r0.post!
            XCTAssertEqual(metrics["counterfact.efficacy_score"], trueNLL > newNLL ? 1 : 0, phase)
            XCTAssertEqual(metrics["counterfact.efficacy_magnitude"]!, exp(-newNLL) - exp(-trueNLL), accuracy: 2e-6, phase)
            XCTAssertEqual(metrics["counterfact.paraphrase_magnitude"]!, exp(-newNLL) - exp(-trueNLL), accuracy: 2e-6, phase)
            XCTAssertEqual(metrics["counterfact.neighborhood_score"], newNLL > trueNLL ? 1 : 0, phase)
            XCTAssertEqual(metrics["counterfact.neighborhood_magnitude"]!, exp(-trueNLL) - exp(-newNLL), accuracy: 2e-6, phase)
        }
        // Length normalisation at work: " York" after " New" is so likely that "New York" already has the
        // higher geometric-mean probability before the edit; the edit widens the gap.
        XCTAssertEqual(r0.pre["counterfact.efficacy_score"], 1)
        XCTAssertGreaterThan(r0.post!["counterfact.efficacy_magnitude"]!, r0.pre["counterfact.efficacy_magnitude"]!)
        XCTAssertEqual(r0.pre["counterfact.neighborhood_score"], 0)
        XCTAssertNil(result.aggregates[.pre]?["counterfact.score"], "NS is 0, so the harmonic mean S is undefined")

        // zsRE: accuracy on the edit and the paraphrase; specificity against the locality answer itself.
        XCTAssertEqual(r0.pre["zsre.efficacy"], 0.5)
        XCTAssertEqual(r0.post?["zsre.paraphrase"], 1)
        XCTAssertEqual(r0.pre["zsre.specificity"], 0.666667, "' Berlin' is missed (Paris), ' Mitte' and ' Paris' are hit")
        XCTAssertEqual(r0.post?["zsre.specificity"], 0.666667)
    }

    func testMQuAKEMetrics() throws {
        let json = """
        [{"case_id": 5, "requested_rewrite": [{"prompt": "{} is", "subject": "France", "target_new": {"str": "New York"}, "target_true": {"str": "Paris"}, "question": "What is France?"}],
          "questions": ["Q1?", "Q2?"], "answer": "Paris", "answer_alias": ["City of Light"], "new_answer": "NYC", "new_answer_alias": ["New York"],
          "single_hops": [{"question": "What is France?", "cloze": "France is", "answer": "Paris", "answer_alias": []}],
          "new_single_hops": [{"question": "What is France?", "cloze": "France is", "answer": "New York", "answer_alias": ["NY"]}]},
         {"case_id": 6, "requested_rewrite": [{"prompt": "{} is", "subject": "Germany", "target_new": {"str": "Paris"}}],
          "questions": ["Q3?"], "answer": "Berlin", "new_answer": "Paris"}]
        """
        let file = try fixture(json, name: "mquake.json")
        var o = options { $0.suites = nil; $0.multiHopShots = 1 }
        let result = try run(file, BiasEditor(token: id(" New"), amount: 3), model(), o)
        let c0 = result.records[0], c1 = result.records[1]
        // Before: cloze "France is" → " Paris\n"; the few-shot question prompt ends in "A:" → " Paris\n".
        XCTAssertEqual(c0.pre["mquake.edit_wise"], 0)
        XCTAssertEqual(c0.pre["mquake.multihop"], 0)
        XCTAssertEqual(c0.pre["mquake.multihop_original"], 1)
        XCTAssertEqual(c0.pre["mquake.instance_wise"], 0)
        XCTAssertEqual(c0.texts["pre.mquake.answer.0"], "Paris")
        // After: " New York\n" everywhere; "New York" is an alias of the new answer.
        XCTAssertEqual(c0.post?["mquake.edit_wise"], 1)
        XCTAssertEqual(c0.post?["mquake.multihop"], 1)
        XCTAssertEqual(c0.post?["mquake.instance_wise"], 1)
        XCTAssertEqual(c0.texts["post.mquake.answer.1"], "New York")
        // Case 6 wants Paris: right before the edit, wrong after; it has no hops, so no instance-wise value.
        XCTAssertEqual(c1.pre["mquake.multihop"], 1)
        XCTAssertEqual(c1.post?["mquake.multihop"], 0)
        XCTAssertNil(c1.post?["mquake.instance_wise"])
        // Aggregates: edit-wise over edits, multi-hop among instance-wise-correct cases.
        XCTAssertEqual(result.aggregates[.post]?["mquake.edit_wise"], Aggregate(value: 0.5, count: 2))
        XCTAssertEqual(result.aggregates[.post]?["mquake.multihop"], Aggregate(value: 0.5, count: 2))
        XCTAssertEqual(result.aggregates[.post]?["mquake.multihop_given_instance"], Aggregate(value: 1, count: 1))
        XCTAssertNil(result.aggregates[.post]?["mquake.edits_total"])
        // The matchers in force are part of the results.
        o.questionMatcher = .contains
        let text = String(decoding: try run(file, BiasEditor(token: id(" New"), amount: 3), model(), o).jsonData, as: UTF8.self)
        XCTAssertTrue(text.contains("\"question_matcher\": \"contains\""))
        XCTAssertTrue(text.contains("matcher contains"))
    }

    func testMultiHopDemonstrationsComeFromOtherCases() throws {
        let json = """
        [{"case_id": 1, "requested_rewrite": [{"prompt": "{} is", "subject": "A", "target_new": "x"}], "questions": ["QA?"], "answer": "a", "new_answer": "x"},
         {"case_id": 2, "requested_rewrite": [{"prompt": "{} is", "subject": "B", "target_new": "y"}], "questions": ["QB?"], "answer": "b", "new_answer": "y"},
         {"case_id": 3, "requested_rewrite": [{"prompt": "{} is", "subject": "C", "target_new": "z"}], "questions": ["QC?"], "answer": "c", "new_answer": "z"}]
        """
        let file = try fixture(json)
        var o = EvaluationOptions()
        o.multiHopShots = 5
        let planner = MetricPlanner(tokenizer: tokenizer, options: o, suites: [.mquake], allRecords: file.records)
        XCTAssertEqual(planner.multiHopDemonstrations(for: 1), "Q: QC?\nA: c\n\nQ: QA?\nA: a\n\n")
        o.multiHopShots = 1
        XCTAssertEqual(MetricPlanner(tokenizer: tokenizer, options: o, suites: [.mquake], allRecords: file.records).multiHopDemonstrations(for: 2), "Q: QA?\nA: a\n\n")
    }

    func testFluencyIsTheEntropyOfPromptPlusSample() throws {
        let file = try fixture(knowEditJSON)
        // Top-1 sampling is greedy: "France is" + " Paris" "\n" then uniform rows whose argmax is id 0 (BOS, dropped).
        let result = try run(file, NoEditor(), model(), options { $0.fluency = true; $0.fluencyTopK = 1; $0.fluencyMaxLength = 8; $0.suites = [.knowEdit] })
        let text = result.records[0].texts["pre.fluency"]
        XCTAssertEqual(text, "France is Paris\n")
        XCTAssertEqual(result.records[0].pre["knowedit.fluency"]!, CanonicalJSON.quantize(NGramEntropy.score("France is Paris\n")), accuracy: 1e-12)
        XCTAssertEqual(result.records[0].pre["knowedit.fluency"], result.records[0].post?["knowedit.fluency"])
    }

    func testSameInputsGiveByteIdenticalJSON() throws {
        let file = try fixture(knowEditJSON)
        let o = options { $0.fluency = true }
        let a = try run(file, BiasEditor(token: id(" New"), amount: 3), model(), o).jsonData
        let b = try run(file, BiasEditor(token: id(" New"), amount: 3), model(), o).jsonData
        XCTAssertEqual(a, b)
        let parsed = try EvaluationRun.parse(a, file: "a.json")
        XCTAssertEqual(parsed.jsonData, a, "reading and writing again gives the same bytes")
        let text = String(decoding: a, as: UTF8.self)
        XCTAssertTrue(text.contains("\"knowedit.reliability\": 1.000000"), text)
        XCTAssertTrue(text.contains("\"sha256\": \"\(file.sha256)\""))
    }

    func testShardsMergeIntoTheUnshardedRun() throws {
        var records: [String] = []
        for i in 0..<7 {
            records.append(#"{"case_id": \#(i), "prompt": "\#(i % 2 == 0 ? "France" : "Germany") is", "subject": "\#(i % 2 == 0 ? "France" : "Germany")", "target_new": "New York", "ground_truth": "Paris", "locality": {"RS": [{"prompt": "Germany is", "ground_truth": "Berlin Mitte"}]}}"#)
        }
        let file = try fixture("[" + records.joined(separator: ",") + "]")
        let editor = BiasEditor(token: id(" New"), amount: 3)
        let whole = try run(file, editor, model(), options { $0.limit = 6; $0.fluency = true })
        XCTAssertEqual(whole.records.count, 6)
        let shards = try (0..<3).map { i in try run(file, editor, model(), options { $0.limit = 6; $0.fluency = true; $0.shardIndex = i; $0.shardCount = 3 }) }
        XCTAssertEqual(shards.map { $0.records.map(\.index) }, [[0, 1], [2, 3], [4, 5]])
        let merged = try EvaluationRun.merge(shards.reversed())
        XCTAssertEqual(merged.jsonData, whole.jsonData)
        // Reading shard files back first changes nothing.
        let reread = try shards.map { try EvaluationRun.parse($0.jsonData, file: "shard.json") }
        XCTAssertEqual(try EvaluationRun.merge(reread).jsonData, whole.jsonData)

        XCTAssertThrowsError(try EvaluationRun.merge([shards[0], shards[1]])) { XCTAssertTrue("\($0)".contains("a shard is missing"), "\($0)") }
        // Asked for, the shards at hand merge into a run that says how many records it holds.
        let partial = try EvaluationRun.merge([shards[2], shards[0]], allowMissing: true)
        XCTAssertEqual(partial.records.map(\.index), [0, 1, 4, 5])
        XCTAssertEqual(partial.records.map(\.pre), [0, 1, 4, 5].map { whole.records[$0].pre })
        XCTAssertTrue(partial.markdownReport().contains("| records | 4 evaluated of 6 selected"), partial.markdownReport())
        XCTAssertEqual(partial.aggregates[.post]?["knowedit.reliability"]?.count, 4)
        XCTAssertThrowsError(try EvaluationRun.merge([shards[0], shards[0], shards[1], shards[2]])) { XCTAssertTrue("\($0)".contains("more than one shard"), "\($0)") }
        let other = try run(file, BiasEditor(token: id(" York"), amount: 3), model(), options { $0.limit = 6; $0.fluency = true; $0.shardIndex = 1; $0.shardCount = 3 })
        XCTAssertThrowsError(try EvaluationRun.merge([shards[0], other, shards[2]])) { XCTAssertTrue("\($0)".contains("different run"), "\($0)") }

        // Shard files are user input: a record outside its shard's block, a metric that is not a number or
        // an impossible shard header is an error naming the key, not a silently different merge.
        func parseError(_ edit: (inout [String: Any]) -> Void) throws -> String {
            var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: shards[1].jsonData) as? [String: Any])
            edit(&json)
            do { _ = try EvaluationRun.parse(try JSONSerialization.data(withJSONObject: json), file: "shard.json"); return "no error" } catch { return "\(error)" }
        }
        func editRecord(_ i: Int, _ json: inout [String: Any], _ change: (inout [String: Any]) -> Void) {
            var records = json["records"] as! [[String: Any]]
            change(&records[i])
            json["records"] = records
        }
        var message = try parseError { editRecord(0, &$0) { $0["index"] = 5 } }
        XCTAssertTrue(message.contains("records[0].index': 5 is outside shard 1/3 of 6 records (2..<4)"), message)
        message = try parseError { editRecord(1, &$0) { $0["index"] = -1 } }
        XCTAssertTrue(message.contains("records[1].index'"), message)
        message = try parseError { editRecord(0, &$0) { r in
            var pre = r["pre"] as! [String: Any]
            pre["knowedit.reliability"] = "abc"
            r["pre"] = pre
        } }
        XCTAssertTrue(message.contains("records[0].pre.knowedit.reliability': not a number"), message)
        message = try parseError { json in
            var header = json["header"] as! [String: Any]
            header["shard"] = ["index": 5, "count": 2]
            json["header"] = header
        }
        XCTAssertTrue(message.contains("shard 5/2 is not valid"), message)
        XCTAssertEqual(try parseError { _ in }, "no error")
    }

    func testSequentialEditsAccumulateAndLocalityUsesTheOriginalModel() throws {
        let file = try fixture(knowEditJSON)
        let m = model()
        // Each edit adds a bias of 2: after one edit " is" ties Paris (first index wins), after two it flips.
        let editor = BiasEditor(token: id(" New"), amount: 2)
        var steps: [EvaluationProgress] = []
        let result = try run(file, editor, m, options { $0.editingProtocol = .sequential; $0.sequentialTiming = .both }) { steps.append($0) }
        XCTAssertEqual(editor.calls, [["1"], ["2"]])
        let r0 = result.records[0]
        XCTAssertEqual(r0.post?["knowedit.reliability"], 0.5, "immediately after its own edit: bias 2 only ties")
        XCTAssertEqual(r0.final?["knowedit.reliability"], 1, "after both edits: bias 4")
        XCTAssertEqual(r0.final?["knowedit.locality"], 0.666667)
        XCTAssertEqual(m.down.values, [Float](repeating: 0, count: m.down.count))
        // Every phase announces its start (0 done, so a progress bar can time it from there) and ends
        // with all records done, in order.
        let phases = steps.map(\.phase).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        XCTAssertEqual(phases, ["pre", "edit", "final"])
        for phase in phases {
            let events = steps.filter { $0.phase == phase }
            XCTAssertEqual(events.first, EvaluationProgress(phase: phase, completed: 0, total: 2))
            XCTAssertEqual(events.last, EvaluationProgress(phase: phase, completed: 2, total: 2))
        }
        XCTAssertNotNil(result.aggregates[.final])

        let finalOnly = try run(file, BiasEditor(token: id(" New"), amount: 2), model(), options { $0.editingProtocol = .sequential; $0.sequentialTiming = .final })
        XCTAssertNil(finalOnly.records[0].post)
        XCTAssertEqual(finalOnly.records[0].final, r0.final)
    }

    func testBatchProtocolEditsGroupsTogether() throws {
        let file = try fixture(knowEditJSON)
        let editor = BiasEditor(token: id(" New"), amount: 3)
        let result = try run(file, editor, model(), options { $0.editingProtocol = .batch; $0.editBatchSize = 2 })
        XCTAssertEqual(editor.calls, [["1", "2"]])
        XCTAssertEqual(result.records.map { $0.post?["knowedit.reliability"] }, [1, 1])
        XCTAssertNil(result.records[0].final)
    }

    /// Single and batch edits each start from the unedited model, so the editor forgets each one when it
    /// is reverted (AlphaEdit's past keys); sequential edits keep them until the run ends.
    func testEditorIsResetWheneverItsEditsAreReverted() throws {
        let file = try fixture(knowEditJSON)
        let expected: [(EditingProtocol, [String])] = [
            (.single, ["edit 1", "reset", "edit 2", "reset", "reset"]),
            (.batch, ["edit 1", "reset", "edit 2", "reset", "reset"]),
            (.sequential, ["edit 1", "edit 2", "reset"]),
        ]
        for (editingProtocol, events) in expected {
            let editor = BiasEditor(token: id(" New"), amount: 3)
            _ = try run(file, editor, model(), options { $0.editingProtocol = editingProtocol; $0.editBatchSize = 1 })
            XCTAssertEqual(editor.events, events, "\(editingProtocol)")
        }
    }

    func testEditorFailuresAreRecordedAndTheRunGoesOn() throws {
        let json = #"[{"case_id": "fail", "prompt": "France is", "subject": "France", "target_new": "New York"}, {"case_id": "ok", "prompt": "France is", "subject": "France", "target_new": "New York"}]"#
        let result = try run(try fixture(json), BiasEditor(token: id(" New"), amount: 3), model(), options())
        XCTAssertNotNil(result.records[0].error)
        XCTAssertNil(result.records[0].post)
        XCTAssertEqual(result.records[1].post?["knowedit.reliability"], 1)
        XCTAssertTrue(result.markdownReport().contains("1 records where the editor failed"))
    }

    /// A probe longer than the model's context (4096 for the bigram model) is named with its record and
    /// field before any work, instead of failing a batched pass halfway through the run.
    func testAProbeLongerThanTheContextIsNamedBeforeTheRun() throws {
        let long = String(repeating: "a", count: 5000)
        let json = #"[{"case_id": "ok", "prompt": "France is", "subject": "France", "target_new": "New York"}, {"case_id": "long", "prompt": "France is", "subject": "France", "target_new": "New York", "rephrase_prompt": "\#(long)"}]"#
        let m = model()
        XCTAssertThrowsError(try run(try fixture(json), BiasEditor(token: id(" New"), amount: 3), m, options())) {
            XCTAssertTrue("\($0)".contains("record 1 (case long), rephrase_prompt: the probe and its answer take 5003 tokens, more than the model's context of 4096"), "\($0)")
        }
        XCTAssertEqual(m.forwardCalls, 0)
    }

    func testIKEThroughTheRunnerOnTheBigramModel() throws {
        // The bigram model only sees the last token, so the in-context prefix changes nothing: post = pre.
        let file = try fixture(knowEditJSON)
        let result = try run(file, IKE(pool: file.requests, k: 1), model(), options())
        XCTAssertEqual(result.records[0].post?["knowedit.reliability"], result.records[0].pre["knowedit.reliability"])
        XCTAssertEqual(result.records[0].post?["knowedit.locality"], 1)
        XCTAssertEqual(result.header.method, "IKE")
        XCTAssertEqual(result.header.hyperParameters["k"], "1")
    }

    func testMarkdownReport() throws {
        let file = try fixture(knowEditJSON, name: "/some/dir/hand.json")
        let report = try run(file, BiasEditor(token: id(" New"), amount: 3), model(), options()).markdownReport()
        XCTAssertTrue(report.contains("| Reliability (Edit Succ.) | 50.00 | 100.00 | 2 |"), report)
        XCTAssertTrue(report.contains("| Locality | – | 66.67 | 1 |"), report)
        XCTAssertTrue(report.contains("| Locality · RS | – | 66.67 | 1 |"), report)
        XCTAssertTrue(report.contains("| Portability | 75.00 | 50.00 | 1 |"), report)
        XCTAssertTrue(report.contains(file.sha256))
        XCTAssertTrue(report.contains("hand.json (easyedit)"))
        XCTAssertTrue(report.contains("amount=3.0, token=\(id(" New"))"))
        XCTAssertTrue(report.contains("single: each edit applied to the original model"))
        XCTAssertTrue(report.contains("**token_accuracy**"))
    }

    func testInvalidOptions() throws {
        let file = try fixture(knowEditJSON)
        XCTAssertThrowsError(try run(file, NoEditor(), model(), options { $0.shardIndex = 3; $0.shardCount = 3 }))
        XCTAssertThrowsError(try run(file, NoEditor(), model(), options { $0.editBatchSize = 0 }))
        XCTAssertThrowsError(try run(file, NoEditor(), model(), options { $0.limit = 0 }))
    }
}
