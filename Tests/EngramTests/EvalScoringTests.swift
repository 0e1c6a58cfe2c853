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
            // Long contexts with a common 12-token prefix (as in-context editing makes them): the prefix runs once.
            ScoringItem(context: Array(20..<32) + [40, 41], target: [42, 43]),
            ScoringItem(context: Array(20..<32) + [44], target: [45]),
            ScoringItem(context: Array(20..<32) + [40, 41, 46, 47, 48], target: [49, 3]),
            ScoringItem(context: Array(20..<30), target: [1, 2, 3]),     // shares 10 tokens
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

    func testBatchedGenerationWithSharedPrefixesMatchesOneAtATime() throws {
        let model = try TinyModels.llama(vocab: 50)
        let contexts: [[Int32]] = [Array(20..<32) + [40], Array(20..<32) + [41, 42], [5, 6], Array(20..<29)]
        // Reference: plain greedy loop, one sequence, whole-sequence recompute at every step.
        func reference(_ context: [Int32], _ n: Int) throws -> [Int32] {
            var tokens = context
            for _ in 0..<n {
                let logits = try model.forward(tokens, cache: model.makeCache(), logits: .last)
                tokens.append(Sampler.argmax(logits.pointer, count: logits.cols))
            }
            return Array(tokens[context.count...])
        }
        let expected = try contexts.map { try reference($0, 6) }
        for batch in [1, 4] {
            let out = try BatchGenerator(model: model, batchSize: batch).generate(contexts.map { GenerationJob(context: $0, maxNewTokens: 6) })
            XCTAssertEqual(out, expected, "batch \(batch)")
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
        let out = try gen.generate(jobs)
        XCTAssertEqual(out, [[4, 5, 2, 3, 4, 5], [7], [5, 2, 3, 4, 5]])
        let stopped = try gen.generate(jobs) { _, ids in ids.last == 2 }
        XCTAssertEqual(stopped, [[4, 5, 2], [7], [5, 2]])
        // Top-1 sampling is greedy; sampling with a seed is reproducible and independent of the batch.
        XCTAssertEqual(try gen.generate(jobs, sampling: BatchGenerator.topK(1)), out)
        let seeded = jobs.enumerated().map { GenerationJob(context: $0.element.context, maxNewTokens: 12, seed: UInt64($0.offset + 1)) }
        let a = try BatchGenerator(model: model, batchSize: 3).generate(seeded, sampling: BatchGenerator.topK(5))
        let b = try BatchGenerator(model: model, batchSize: 1).generate(seeded, sampling: BatchGenerator.topK(5))
        XCTAssertEqual(a, b)
        XCTAssertEqual(try BatchGenerator(model: model, batchSize: 1).generate([seeded[2]], sampling: BatchGenerator.topK(5)), [a[2]])
        // Top-3 sampling draws only the three most likely tokens of a row, all of them eventually.
        var table = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 8)
        table[3] = [0, 5, 1, 4, 3, 2, 4.5, -1]
        let distinct = BigramModel(vocab: 8, table: table)
        let sampled = try BatchGenerator(model: distinct, batchSize: 16).generate((1...300).map { GenerationJob(context: [3], maxNewTokens: 1, seed: UInt64($0)) },
                                                                                 sampling: BatchGenerator.topK(3))
        XCTAssertEqual(Set(sampled.map { $0[0] }), [1, 6, 3])
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

    func testCanonicalJSONFormatting() {
        let value = CanonicalJSON.object(["b": .number(2.0 / 3.0), "a": .array([.int(1), .number(-0.0000001), .null]), "c": .string("x\"\n")])
        XCTAssertEqual(value.serialized(), "{\n  \"a\": [\n    1,\n    0.000000,\n    null\n  ],\n  \"b\": 0.666667,\n  \"c\": \"x\\\"\\n\"\n}\n")
        XCTAssertEqual(CanonicalJSON.quantize(2.0 / 3.0), 0.666667)
        XCTAssertEqual(try CanonicalJSON.parse(value.data, file: "t"), CanonicalJSON.object(["b": .number(0.666667), "a": .array([.int(1), .number(0), .null]), "c": .string("x\"\n")]))
    }
}
