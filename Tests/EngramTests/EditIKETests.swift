import Foundation
import XCTest
@testable import Engram

final class EditIKETests: XCTestCase {
    let pool: [EditRequest] = [
        EditRequest(caseID: "a", prompt: "A lives in", subject: "A", targetNew: "Paris",
                    rephrasePrompts: ["The home of A is"], locality: [PromptGroup(key: "n", items: [PromptAnswer(prompt: "Z lives in", answers: ["Oslo", "Christiania"])])]),
        EditRequest(caseID: "b", prompt: "B plays", subject: "B", targetNew: "chess", rephrasePrompts: ["The game of B is"]),
        EditRequest(caseID: "c", prompt: "C speaks", subject: "C", targetNew: "Welsh",
                    locality: [PromptGroup(key: "n", items: [PromptAnswer(prompt: "Y speaks", answers: ["Dutch"])])]),
        EditRequest(caseID: "d", prompt: "D owns", subject: "D", targetNew: "a boat"),
    ]

    func testDemonstrationsAreTheNextRecordsAndNeverTheRecordItself() {
        let ike = IKE(pool: pool, k: 3)
        XCTAssertEqual(ike.demonstrationIndices(for: [pool[0]]), [1, 2, 3])
        XCTAssertEqual(ike.demonstrationIndices(for: [pool[2]]), [3, 0, 1])
        // k larger than the pool: every other record once.
        XCTAssertEqual(IKE(pool: pool, k: 10).demonstrationIndices(for: [pool[1]]), [2, 3, 0])
        // A batch excludes all of its records.
        XCTAssertEqual(IKE(pool: pool, k: 3).demonstrationIndices(for: [pool[0], pool[1]]), [2, 3])
        // A record outside the pool gets a stable, hash-chosen start.
        let stranger = EditRequest(caseID: "x", prompt: "X is", subject: "X", targetNew: "y")
        XCTAssertEqual(ike.demonstrationIndices(for: [stranger]), ike.demonstrationIndices(for: [stranger]))
        XCTAssertEqual(ike.demonstrationIndices(for: [stranger]).count, 3)
        XCTAssertEqual(IKE(pool: pool, k: 0).demonstrationIndices(for: [pool[0]]), [])
    }

    func testPromptConstruction() throws {
        let ike = IKE(pool: pool, k: 3)
        let context = ike.context(for: [pool[0]])
        // Kinds cycle copy, update, retain: record b as a copy, c as an update (no paraphrase → copy),
        // d as a retain (no locality probe → copy).
        let expected = "New Fact: B plays chess\nPrompt: B plays chess\n\n"
            + "New Fact: C speaks Welsh\nPrompt: C speaks Welsh\n\n"
            + "New Fact: D owns a boat\nPrompt: D owns a boat\n\n"
            + "New Fact: A lives in Paris\nPrompt: Where does A live?"
        XCTAssertEqual(context.render("Where does A live?"), expected)

        let fromD = IKE(pool: pool, k: 3).context(for: [pool[3]])
        // d → a (copy), b (update with its paraphrase), c (retain with its locality probe and first answer).
        XCTAssertEqual(fromD.demonstrations,
                       "New Fact: A lives in Paris\nPrompt: A lives in Paris\n\n"
                       + "New Fact: B plays chess\nPrompt: The game of B is chess\n\n"
                       + "New Fact: C speaks Welsh\nPrompt: Y speaks Dutch\n\n")
        XCTAssertEqual(fromD.facts, ["D owns a boat"])
    }

    func testRetainUsesFirstAlias() {
        XCTAssertEqual(IKE.demonstration(pool[0], kind: .retain).text, "New Fact: A lives in Paris\nPrompt: Z lives in Oslo\n\n")
        XCTAssertEqual(IKE.demonstration(pool[0], kind: .update).kind, .update)
        XCTAssertEqual(IKE.demonstration(pool[3], kind: .update).kind, .copy)
    }

    func testEditLeavesWeightsAloneAndRecordsItsChoices() throws {
        let model = try TinyModels.llama(vocab: 200)
        let before = model.weight(.mlpDown(0)).copy()
        let tokenizer = TestTokenizer(pieces: [])
        let patch = try IKE(pool: pool, k: 2).edit([pool[1]], model: model, tokenizer: tokenizer)
        XCTAssertEqual(patch.method, "IKE")
        XCTAssertTrue(patch.deltas.isEmpty)
        XCTAssertEqual(patch.hyperParameters["k"], "2")
        XCTAssertEqual(patch.metadata["demonstrations"], "2,3")
        XCTAssertEqual(patch.requests, [pool[1]])
        XCTAssertEqual(patch.context?.facts, ["B plays chess"])
        XCTAssertEqual(bits(model.weight(.mlpDown(0))), bits(before))
        XCTAssertThrowsError(try IKE(pool: pool).edit([], model: model, tokenizer: tokenizer))
    }

    func testJoinInsertsExactlyOneSpace() {
        XCTAssertEqual(EditRequest.join("The capital is", "Paris"), "The capital is Paris")
        XCTAssertEqual(EditRequest.join("The capital is", " Paris"), "The capital is Paris")
        XCTAssertEqual(EditRequest.join("The capital is ", "Paris"), "The capital is Paris")
        XCTAssertEqual(EditRequest.join("Q: x\nA:", "y"), "Q: x\nA: y")
    }
}
