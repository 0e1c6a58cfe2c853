import Foundation
import XCTest
@testable import Engram

final class EditFileTests: XCTestCase {
    func dataFile(_ relative: String) throws -> String {
        let path = try TestSupport.sharedFile("data/\(relative)").path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is not available") }
        return path
    }

    // MARK: The data files the project ships

    func testFlattenedCounterFactFile() throws {
        let file = try EditFile.load(try dataFile("counterfact/counterfact-edit.dev-0-299.json"))
        XCTAssertEqual(file.format, .counterfactFlat)
        XCTAssertEqual(file.records.count, 300)
        guard case let .single(r) = file.records[0] else { return XCTFail("expected a single request") }
        XCTAssertEqual(r.caseID, "0")
        XCTAssertEqual(r.prompt, "The mother tongue of Danielle Darrieux is")
        XCTAssertEqual(r.subject, "Danielle Darrieux")
        XCTAssertEqual(r.targetNew, "English")
        XCTAssertEqual(r.groundTruth, ["French"])
        XCTAssertEqual(r.rephrasePrompts, ["Where Danielle Darrieux is from, people speak the language of"])
        XCTAssertEqual(r.locality, [PromptGroup(key: "neighborhood", items: [PromptAnswer(prompt: "Michel Rocard is a native speaker of", answers: ["French"])])])
        XCTAssertEqual(file.sha256.count, 64)
    }

    func testZsREFile() throws {
        let file = try EditFile.load(try dataFile("zsre/zsre_mend_train-1k.dev-0-299.json"))
        XCTAssertEqual(file.format, .zsreMEND)
        XCTAssertEqual(file.records.count, 300)
        guard case let .single(r) = file.records[0] else { return XCTFail() }
        XCTAssertEqual(r.caseID, "0")
        XCTAssertEqual(r.prompt, "What is the product made by UniFirst?")
        XCTAssertEqual(r.targetNew, "unmanned aircraft")
        XCTAssertEqual(r.groundTruth, ["uniform"])
        XCTAssertEqual(r.rephrasePrompts, ["What will be the product of UniFirst?"])
        XCTAssertEqual(r.locality.first?.items.first, PromptAnswer(prompt: "nq question: john goodman's character in the big lebowski", answers: ["Walter Sobchak"]))
        // Targets that begin with a space are kept as the file has them; the join rule handles them.
        XCTAssertTrue(file.requests.contains { $0.targetNew == " Dickens" })
    }

    func testMQuAKEFile() throws {
        let file = try EditFile.load(try dataFile("mquake/MQuAKE-hard.dev-0-199.json"))
        XCTAssertEqual(file.format, .mquake)
        XCTAssertEqual(file.records.count, 200)
        guard case let .multiHop(c) = file.records[0] else { return XCTFail("expected an MQuAKE case") }
        XCTAssertEqual(c.caseID, "7417")
        XCTAssertEqual(c.requests.count, 4)
        XCTAssertEqual(c.requests[0].prompt, "Hey Jude was performed by")
        XCTAssertEqual(c.requests[0].subject, "Hey Jude")
        XCTAssertEqual(c.requests[0].targetNew, "Madonna")
        XCTAssertEqual(c.requests[0].groundTruth, ["The Beatles"])
        XCTAssertEqual(c.requests[0].rephrasePrompts, ["Who performed Hey Jude?"])
        XCTAssertEqual(c.requests[0].caseID, "7417.0")
        XCTAssertEqual(c.questions.count, 3)
        XCTAssertEqual(c.newAnswer, "Arabic")
        XCTAssertEqual(c.newAnswers, ["Arabic", "ar", "Arabian language", "Arabic language"])
        XCTAssertEqual(c.newSingleHops.count, 4)
        XCTAssertEqual(c.newSingleHops[0].cloze, "Hey Jude was performed by")
        XCTAssertEqual(file.requests.count, 800)
    }

    // MARK: Layouts written by hand

    func testKnowEditLayoutBothProbeShapes() throws {
        let json = """
        [{"subject": "Ray Charles", "prompt": "Ray Charles plays the", "target_new": "violin", "ground_truth": ["piano", "keyboard"],
          "rephrase_prompt": "The instrument Ray Charles plays is",
          "portability": {"Subject_Aliasing": [{"prompt": "The Genius plays the", "ground_truth": [["violin", "fiddle"]]}],
                          "Reasoning": [{"prompt": "Ray Charles's instrument has", "ground_truth": "strings"}]},
          "locality": {"Relation_Specificity": {"prompt": ["Ray Charles was born in", "Ray Charles died in"], "ground_truth": [["Albany"], "Beverly Hills"]}}}]
        """
        let file = try fixture(json)
        XCTAssertEqual(file.format, .easyEdit)
        guard case let .single(r) = file.records[0] else { return XCTFail() }
        XCTAssertEqual(r.caseID, "0")
        XCTAssertEqual(r.groundTruth, ["piano", "keyboard"])
        XCTAssertEqual(r.rephrasePrompts, ["The instrument Ray Charles plays is"])
        // Groups are sorted by key; nested alias lists are flattened with the first alias first.
        XCTAssertEqual(r.portability.map(\.key), ["Reasoning", "Subject_Aliasing"])
        XCTAssertEqual(r.portability[1].items[0].answers, ["violin", "fiddle"])
        XCTAssertEqual(r.portability[1].items[0].gold, "violin")
        XCTAssertEqual(r.portability[0].items[0].answers, ["strings"])
        XCTAssertEqual(r.locality[0].items, [PromptAnswer(prompt: "Ray Charles was born in", answers: ["Albany"]),
                                             PromptAnswer(prompt: "Ray Charles died in", answers: ["Beverly Hills"])])
    }

    func testTemplatePromptIsFilledWithTheSubject() throws {
        let file = try fixture(#"{"case_id": "x1", "prompt": "{} is a citizen of", "subject": "Narendra Modi", "target_new": {"str": "Australia"}}"#)
        XCTAssertEqual(file.requests, [EditRequest(caseID: "x1", prompt: "Narendra Modi is a citizen of", subject: "Narendra Modi", targetNew: "Australia")])
    }

    func testSubjectRangeIsTheFirstOccurrence() {
        let r = EditRequest(caseID: "1", prompt: "Paris Hilton was born in Paris", subject: "Paris", targetNew: "x")
        XCTAssertEqual(r.subjectRange.map { r.prompt.distance(from: r.prompt.startIndex, to: $0.lowerBound) }, 0)
        XCTAssertNil(EditRequest(caseID: "2", prompt: "A is", subject: "B", targetNew: "x").subjectRange)
    }

    func testROMECounterFactLayout() throws {
        let json = """
        [{"case_id": 7, "requested_rewrite": {"prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
          "target_new": {"str": "English", "id": "Q1860"}, "target_true": {"str": "French", "id": "Q150"}, "relation_id": "P103"},
          "paraphrase_prompts": ["Shayna does this. Danielle Darrieux speaks", "Danielle Darrieux's mother tongue is"],
          "neighborhood_prompts": ["Michel Rocard is a native speaker of", "Robert Schuman, speaker of"],
          "attribute_prompts": ["J.R.R. Tolkien is a native speaker of"], "generation_prompts": ["Danielle Darrieux's mother tongue is"]}]
        """
        let file = try fixture(json)
        XCTAssertEqual(file.format, .counterfactROME)
        let r = file.requests[0]
        XCTAssertEqual(r.caseID, "7")
        XCTAssertEqual(r.prompt, "The mother tongue of Danielle Darrieux is")
        XCTAssertEqual(r.targetNew, "English")
        XCTAssertEqual(r.groundTruth, ["French"])
        XCTAssertEqual(r.rephrasePrompts.count, 2)
        XCTAssertEqual(r.locality[0].items.map(\.answers), [["French"], ["French"]])
    }

    func testJSONLWithBlankLines() throws {
        let text = """
        {"prompt": "A is", "subject": "A", "target_new": "x"}

        {"prompt": "B is", "subject": "B", "target_new": "y", "case_id": 12}
        """
        let file = try fixture(text, name: "edits.jsonl")
        XCTAssertEqual(file.requests.map(\.caseID), ["0", "12"])
        XCTAssertEqual(file.requests.map(\.targetNew), ["x", "y"])
    }

    func testCanonicalJSONLRoundTrip() throws {
        let original = try fixture("""
        [{"prompt": "Ray Charles plays the", "subject": "Ray Charles", "target_new": "violin", "ground_truth": ["piano"],
          "rephrase_prompt": ["p1", "p2"], "locality": {"K": [{"prompt": "q", "ground_truth": ["a", "b"]}]},
          "portability": {"R": [{"prompt": "r", "ground_truth": "s"}]}}]
        """)
        let data = EditFile.encodeJSONL(original.requests)
        let back = try EditFile.parse(data, name: "out.jsonl")
        XCTAssertEqual(back.requests, original.requests)
        XCTAssertEqual(EditFile.encodeJSONL(back.requests), data, "canonical writing is byte-stable")
    }

    // MARK: Malformed files: every problem is reported with record, field and reason, and nothing is read

    func issues(_ json: String, format: EditFileFormat? = nil, file: StaticString = #filePath, line: UInt = #line) -> [EditFileIssue] {
        do {
            _ = try fixture(json, name: "bad.json", format: format)
            XCTFail("expected the file to be rejected", file: file, line: line)
            return []
        } catch let e as EditFileError {
            XCTAssertEqual(e.file, "bad.json", file: file, line: line)
            XCTAssertTrue(e.description.contains("bad.json"), file: file, line: line)
            return e.issues
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return []
        }
    }

    func testMissingSubject() {
        let found = issues(#"[{"prompt": "A is", "target_new": "x"}]"#)
        XCTAssertEqual(found, [EditFileIssue(record: 0, line: nil, field: "subject", message: "missing (expected a string)")])
    }

    func testSubjectNotInPrompt() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x"}, {"prompt": "The sky is", "subject": "grass", "target_new": "x"}]"#)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found[0].record, 1)
        XCTAssertEqual(found[0].field, "subject")
        XCTAssertTrue(found[0].message.contains("does not occur in the prompt"), found[0].message)
    }

    func testEmptyTarget() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "  "}]"#)
        XCTAssertEqual(found, [EditFileIssue(record: 0, line: nil, field: "target_new", message: "is empty")])
    }

    func testWrongTypes() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": 5, "case_id": [1], "ground_truth": [true]}]"#)
        let fields = Set(found.compactMap(\.field))
        XCTAssertEqual(fields, ["target_new", "case_id", "ground_truth[0]"])
        XCTAssertTrue(found.contains { $0.field == "target_new" && $0.message == "expected a string, found a number" })
        XCTAssertTrue(found.contains { $0.field == "ground_truth[0]" && $0.message.contains("found a boolean") })
    }

    func testBadLocalityProbe() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality": {"RS": [{"ground_truth": "y"}, 3], "F": {"prompt": ["p", "q"], "ground_truth": ["only one"]}}}]"#)
        XCTAssertTrue(found.contains { $0.field == "locality.RS[0].prompt" && $0.message.hasPrefix("missing") }, "\(found)")
        XCTAssertTrue(found.contains { $0.field == "locality.RS[1]" }, "\(found)")
        XCTAssertTrue(found.contains { $0.field == "locality.F.ground_truth" && $0.message.contains("one answer per prompt") }, "\(found)")
    }

    /// A nameless probe group, or answers that match no prompt, would silently misname or misgrade a metric.
    func testEmptyProbeGroupsAndMismatchedAnswers() {
        var found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality": {"RS": [], "": [{"prompt": "p", "ground_truth": "y"}], "F": {"prompt": [], "ground_truth": []}}}]"#)
        XCTAssertEqual(found, [EditFileIssue(record: 0, line: nil, field: "locality.", message: "the probe group has no name")])
        // Empty groups count as absent: EasyEdit's request dicts carry them for unused keys.
        XCTAssertNoThrow(try fixture(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality": {"RS": [], "F": {"prompt": [], "ground_truth": []}}}]"#, name: "ok.json"))
        found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality_prompt": [], "locality_ground_truth": "y"}]"#)
        XCTAssertEqual(found.map(\.field), ["locality_prompt"])
        XCTAssertEqual(found.first?.message, "is an empty list")
        found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality_prompt": ["p", "q"], "locality_ground_truth": ["y", "z", "w"]}]"#)
        XCTAssertEqual(found.map(\.field), ["locality_ground_truth"])
        XCTAssertTrue(found.first?.message.contains("3 answers for 2 prompts") ?? false, "\(found)")
        // A bad prompt entry is reported as itself, not as a count mismatch.
        found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality_prompt": ["p", 3, "q"], "locality_ground_truth": ["y", "z", "w"]}]"#)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertFalse(found.contains { $0.message.contains("answers for") }, "\(found)")
        // One prompt with a list of aliases, and one answer per prompt, stay valid.
        XCTAssertNoThrow(try fixture(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality_prompt": "p", "locality_ground_truth": ["y", "z"]}]"#, name: "ok.json"))
        XCTAssertNoThrow(try fixture(#"[{"prompt": "A is", "subject": "A", "target_new": "x", "locality_prompt": ["p", "q"], "locality_ground_truth": ["y", "z"]}]"#, name: "ok.json"))
    }

    func testErrorsAreCollectedAcrossRecords() {
        let found = issues(#"[{"prompt": "A is", "target_new": "x"}, {"prompt": "B is", "subject": "B", "target_new": "y"}, {"prompt": "C is", "subject": "C"}]"#)
        XCTAssertEqual(found.map(\.record), [0, 2])
        XCTAssertEqual(found.map(\.field), ["subject", "target_new"])
    }

    func testJSONLSyntaxErrorNamesTheLine() {
        let found = issues("{\"prompt\": \"A is\", \"subject\": \"A\", \"target_new\": \"x\"}\n\n{\"prompt\": \"B is\", \n")
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found[0].line, 3)
        XCTAssertTrue(found[0].message.hasPrefix("not valid JSON"), found[0].message)
    }

    func testBrokenJSONList() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x"},"#)
        XCTAssertEqual(found.count, 1)
        XCTAssertTrue(found[0].message.contains("not valid JSON"), found[0].message)
    }

    func testEmptyFileAndNonObjects() {
        XCTAssertEqual(issues("  \n").first?.message, "the file holds no records")
        XCTAssertEqual(issues("[]").first?.message, "the file holds no records")
        XCTAssertEqual(issues(#"[1, 2]"#).first?.message, "records must be JSON objects")
        let mixed = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x"}, "text"]"#)
        XCTAssertEqual(mixed, [EditFileIssue(record: 1, line: nil, field: nil, message: "records must be JSON objects, found a string")])
    }

    func testUnknownLayout() {
        let found = issues(#"[{"question": "Who?", "answer": "me"}]"#)
        XCTAssertEqual(found.count, 1)
        XCTAssertTrue(found[0].message.hasPrefix("cannot tell the layout from the keys [\"answer\", \"question\"]"), found[0].message)
    }

    func testMixedLayouts() {
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x"}, {"src": "What is B?", "subject": "B", "alt": "y"}]"#)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found[0].record, 1)
        XCTAssertTrue(found[0].message.contains("zsre-mend layout"), found[0].message)
    }

    func testMQuAKETemplateProblems() {
        let json = """
        [{"case_id": 1, "requested_rewrite": [{"prompt": "Hey Jude was performed by", "subject": "Hey Jude", "target_new": {"str": "Madonna"}},
                                              {"prompt": "{} and {} are", "subject": "Madonna", "target_new": {"str": "x"}}],
          "questions": [], "answer": "English", "new_answer": ""}]
        """
        let found = issues(json)
        XCTAssertTrue(found.contains { $0.field == "requested_rewrite[0].prompt" && $0.message.contains("no '{}' placeholder") }, "\(found)")
        XCTAssertTrue(found.contains { $0.field == "requested_rewrite[1].prompt" && $0.message.contains("2 '{}' placeholders") }, "\(found)")
        XCTAssertTrue(found.contains { $0.field == "questions" }, "\(found)")
        XCTAssertTrue(found.contains { $0.field == "new_answer" && $0.message == "is empty" }, "\(found)")
    }

    func testZsREMissingLocalityAnswer() {
        let found = issues(#"[{"src": "What is B?", "subject": "B", "alt": "y", "loc": "nq question: z"}]"#)
        XCTAssertEqual(found, [EditFileIssue(record: 0, line: nil, field: "loc_ans", message: "missing (expected a string or a list of strings)")])
    }

    func testExplicitFormatOverridesDetection() {
        // The same record read as zsRE must have src/alt; the override makes the reader say so.
        let found = issues(#"[{"prompt": "A is", "subject": "A", "target_new": "x"}]"#, format: .zsreMEND)
        XCTAssertEqual(Set(found.compactMap(\.field)), ["src", "alt"])
    }

    func testMissingFileIsAnIOError() {
        XCTAssertThrowsError(try EditFile.load("/nonexistent/edits.json")) { error in
            guard case let EngramError.io(file, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "/nonexistent/edits.json")
        }
    }
}
