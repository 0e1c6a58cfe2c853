import Foundation
import XCTest
@testable import Engram

/// Scoring primitives: teacher forcing, EasyEdit slicing, generation, answer matching.
final class EvalScoringTests: XCTestCase {
    func testTeacherForcedScoresInClosedForm() throws {
        // Vocabulary of 8; 3 → 4 and 4 → 5 are preferred with logit 2; 5 prefers 2, so the last target
        // token (6) is not the argmax.
        let model = BigramModel(vocab: 8, next: [3: 4, 4: 5, 5: 2])
        let score = try TeacherForcing(model: model).score([ScoringItem(context: [0, 3], target: [4, 5, 6])])[0]
        let z = log(exp(2.0) + 7)
        XCTAssertEqual(score.logProbs[0], 2 - z, accuracy: 1e-6)
        XCTAssertEqual(score.logProbs[1], 2 - z, accuracy: 1e-6)
        XCTAssertEqual(score.logProbs[2], -z, accuracy: 1e-6)
        XCTAssertEqual(score.meanNLL, (3 * z - 4) / 3, accuracy: 1e-6)
        XCTAssertEqual(score.predicted, [4, 5, 2])
        XCTAssertEqual(score.accuracy, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertFalse(score.allCorrect)
        XCTAssertEqual(score.meanProbability, exp(-(3 * z - 4) / 3), accuracy: 1e-6)
    }

    func testEmptyContextOrTargetIsAnError() {
        let model = BigramModel(vocab: 8, next: [:])
        XCTAssertThrowsError(try TeacherForcing(model: model).score([ScoringItem(context: [], target: [1])]))
        XCTAssertThrowsError(try TeacherForcing(model: model).score([ScoringItem(context: [1], target: [])]))
    }

    func testBatchingAndPrefixSharingMatchAPlainForward() throws {
        let model = try TinyModels.llama(vocab: 50)
        let items = [
            ScoringItem(context: [1, 7, 9, 11], target: [3, 4]),
            ScoringItem(context: [1, 7, 9, 11], target: [30, 2, 5]),   // same context: shares its cache
            ScoringItem(context: [2], target: [8]),
            ScoringItem(context: [5, 6, 7, 8, 9, 10, 12], target: [13, 14, 15, 16]),
            ScoringItem(context: [1, 7, 9, 11], target: [3, 4]),        // duplicate
        ]
        // Reference: each sequence alone, whole, all logits, log-softmax in double.
        func reference(_ item: ScoringItem) throws -> [Double] {
            let tokens = item.context + item.target
            let logits = try model.forward(tokens, cache: model.makeCache(), logits: .all)
            return item.target.enumerated().map { j, gold in
                let row = (0..<logits.cols).map { Double(logits.row(item.context.count - 1 + j)[$0]) }
                let m = row.max()!
                return row[Int(gold)] - m - log(row.map { exp($0 - m) }.reduce(0, +))
            }
        }
        let expected = try items.map(reference)
        for batch in [1, 2, 8] {
            let scores = try TeacherForcing(model: model, batchSize: batch).score(items)
            for (s, e) in zip(scores, expected) {
                for (a, b) in zip(s.logProbs, e) { XCTAssertEqual(a, b, accuracy: 1e-4, "batch \(batch)") }
            }
            XCTAssertEqual(scores[0], scores[4])
        }
    }

    func testEasyEditSlicingAndTargetsWithALeadingSpace() {
        let tokenizer = TestTokenizer(pieces: ["France", " is", " Paris", " New", " York"])
        let plain = TargetEncoding.encode(prompt: "France is", target: "Paris", tokenizer: tokenizer)!
        let spaced = TargetEncoding.encode(prompt: "France is", target: " Paris", tokenizer: tokenizer)!
        XCTAssertEqual(plain, spaced, "a target that starts with a space is not given a second one")
        XCTAssertEqual(plain.item.context, [0] + tokenizer.ids("France is"))
        XCTAssertEqual(plain.item.target, tokenizer.ids(" Paris"))
        XCTAssertNil(plain.warning)
        let multi = TargetEncoding.encode(prompt: "France is", target: "New York", tokenizer: tokenizer)!
        XCTAssertEqual(multi.item.target, tokenizer.ids(" New York"))
        XCTAssertEqual(multi.item.target.count, 2)
        // Nothing left after the prompt: no item.
        XCTAssertNil(TargetEncoding.encode(prompt: "France is", target: "", tokenizer: tokenizer))
    }

    func testBoundaryMergeIsDetected() {
        // " is P" is one piece: inside "France is Paris" the prompt's last token merges with the target.
        let tokenizer = TestTokenizer(pieces: ["France", " is", " is P", "aris"])
        let e = TargetEncoding.encode(prompt: "France is", target: "Paris", tokenizer: tokenizer)!
        XCTAssertNotNil(e.warning)
        // EasyEdit's slice: prompt_len = 3 (BOS, "France", " is"), applied to the joined text's ids.
        let joined = tokenizer.encode("France is Paris", addSpecial: true)
        XCTAssertEqual(e.item.context, Array(joined[0..<3]))
        XCTAssertEqual(e.item.target, Array(joined[3...]))
    }

    func testGreedyGenerationStopsAndBatchesIndependently() throws {
        // 3 → 4 → 5 → 2 ("\n" in the test tokenizer) → 3 …
        let model = BigramModel(vocab: 8, next: [3: 4, 4: 5, 5: 2, 2: 3, 6: 7])
        let gen = BatchGenerator(model: model, batchSize: 2)
        let jobs = [GenerationJob(context: [0, 3], maxNewTokens: 6), GenerationJob(context: [6], maxNewTokens: 1),
                    GenerationJob(context: [4], maxNewTokens: 5)]
        let out = try gen.generate(jobs, decoding: .greedy)
        XCTAssertEqual(out, [[4, 5, 2, 3, 4, 5], [7], [5, 2, 3, 4, 5]])
        let stopped = try gen.generate(jobs, decoding: .greedy) { _, ids in ids.last == 2 }
        XCTAssertEqual(stopped, [[4, 5, 2], [7], [5, 2]])
        // Top-1 sampling is greedy; sampling with a seed is reproducible and independent of the batch.
        XCTAssertEqual(try gen.generate(jobs, decoding: .topK(1)), out)
        let seeded = jobs.enumerated().map { GenerationJob(context: $0.element.context, maxNewTokens: 12, seed: UInt64($0.offset + 1)) }
        let a = try BatchGenerator(model: model, batchSize: 3).generate(seeded, decoding: .topK(5))
        let b = try BatchGenerator(model: model, batchSize: 1).generate(seeded, decoding: .topK(5))
        XCTAssertEqual(a, b)
        XCTAssertEqual(try BatchGenerator(model: model, batchSize: 1).generate([seeded[2]], decoding: .topK(5)), [a[2]])
    }

    func testTopKSamplesOnlyTheKMostLikely() {
        var rng = SplitMix64(seed: 9)
        let logits: [Float] = [0, 5, 1, 4, 3, 2, 4.5]
        var seen = Set<Int>()
        for _ in 0..<2000 { seen.insert(logits.withUnsafeBufferPointer { BatchGenerator.choose($0.baseAddress!, count: 7, decoding: .topK(3), rng: &rng) }) }
        XCTAssertEqual(seen, [1, 3, 6])
    }

    func testAnswerMatchers() {
        let gold = ["United Kingdom", "UK", "U.K."]
        XCTAssertTrue(AnswerMatcher.exact.matches(" The United Kingdom.", anyOf: gold))
        XCTAssertTrue(AnswerMatcher.exact.matches("uk", anyOf: gold))
        XCTAssertFalse(AnswerMatcher.exact.matches("the United Kingdom of Great Britain", anyOf: gold))
        XCTAssertTrue(AnswerMatcher.prefix.matches("United Kingdom, which is", anyOf: gold))
        XCTAssertFalse(AnswerMatcher.prefix.matches("UKRAINE", anyOf: gold), "prefix matches whole words only")
        XCTAssertTrue(AnswerMatcher.contains.matches("It is in the UK today", anyOf: gold))
        XCTAssertFalse(AnswerMatcher.contains.matches("Ukraine", anyOf: gold))
        XCTAssertFalse(AnswerMatcher.exact.matches("", anyOf: [""]), "an empty gold never matches")
        XCTAssertEqual(AnswerMatcher.normalize("  The Beatles!  "), "beatles")
        XCTAssertEqual(AnswerMatcher.firstLine(" Arabic\nQ: next"), "Arabic")
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(FileHash.sha256(data: Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(FileHash.sha256(data: Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(FileHash.sha256(data: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(FileHash.sha256(data: Data(repeating: 0x61, count: 1_000_000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testCanonicalJSONFormatting() {
        let value = JSONValue.object(["b": .number(2.0 / 3.0), "a": .array([.int(1), .number(-0.0000001), .null]), "c": .string("x\"\n")])
        XCTAssertEqual(value.serialized(), "{\n  \"a\": [\n    1,\n    0.000000,\n    null\n  ],\n  \"b\": 0.666667,\n  \"c\": \"x\\\"\\n\"\n}\n")
        XCTAssertEqual(JSONValue.quantize(2.0 / 3.0), 0.666667)
        XCTAssertEqual(try JSONValue.parse(value.data, file: "t"), JSONValue.object(["b": .number(0.666667), "a": .array([.int(1), .number(0), .null]), "c": .string("x\"\n")]))
    }
}
