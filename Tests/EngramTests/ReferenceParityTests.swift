import Engram
import Foundation
import XCTest

/// The default model against Hugging Face transformers' outputs (shared/fixtures/smollm2-reference.json):
/// greedy tokens exactly, top-10 and last-position logits within 1e-2, hidden states layer by layer.
final class ReferenceParityTests: XCTestCase {
    struct Fixture: Decodable {
        struct Top: Decodable { let ids: [Int32]; let logits: [Float] }
        struct Hidden: Decodable { let first8: [[Float]]; let l2: [Float] }
        struct Case: Decodable {
            let prompt: String
            let token_ids: [Int32]
            let top10_per_position: [Top]
            let greedy20_ids: [Int32]
            let last_logits_full: [Float]?
            let hidden_states_last_pos: Hidden?
        }
        struct Dequant: Decodable {
            let name: String; let type: String; let first16_row0: [Float]; let sum: Double; let abs_sum: Double
        }
        let cases: [Case]
        let gguf_dequant_checks: [Dequant]
    }

    func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: TestSupport.sharedFile("fixtures/smollm2-reference.json")))
    }

    func testLogitsMatchReferenceAtEveryPosition() throws {
        let (_, model) = try TestSupport.sharedDefaultModel()
        for c in try fixture().cases {
            let logits = try model.forward(c.token_ids, cache: model.makeCache(), logits: .all)
            XCTAssertEqual(logits.rows, c.token_ids.count)
            for (t, top) in c.top10_per_position.enumerated() {
                let row = logits.row(t)
                // Our own top-10 must hold the same tokens (order may swap only between near-ties).
                let ours = (0..<logits.cols).sorted { row[$0] > row[$1] }.prefix(10).map(Int32.init)
                XCTAssertEqual(ours.first, top.ids.first, "\(c.prompt.prefix(20)) position \(t): argmax")
                for (id, expected) in zip(top.ids, top.logits) {
                    XCTAssertEqual(row[Int(id)], expected, accuracy: 1e-2, "\(c.prompt.prefix(20)) position \(t) token \(id)")
                }
                XCTAssertEqual(Set(ours), Set(top.ids), "\(c.prompt.prefix(20)) position \(t): top-10 set")
            }
            if let full = c.last_logits_full {
                let last = logits.row(logits.rows - 1)
                var maxDiff: Float = 0
                for i in 0..<full.count { maxDiff = max(maxDiff, abs(last[i] - full[i])) }
                XCTAssertLessThan(maxDiff, 1e-2, "\(c.prompt.prefix(20)): max |Δ| over all last-position logits")
            }
        }
    }

    func testGreedyTokensMatchReference() throws {
        let (_, model) = try TestSupport.sharedDefaultModel()
        for c in try fixture().cases {
            let cache = model.makeCache()
            var logits = try model.forward(c.token_ids, cache: cache)
            var generated: [Int32] = []
            for _ in 0..<c.greedy20_ids.count {
                let next = Sampler.argmax(logits.pointer, count: logits.cols)
                generated.append(next)
                logits = try model.forward([next], cache: cache)
            }
            XCTAssertEqual(generated, c.greedy20_ids, c.prompt)
        }
    }

    func testHiddenStatesMatchLayerByLayer() throws {
        let (_, model) = try TestSupport.sharedDefaultModel()
        let cases = try fixture().cases // throws XCTSkip without the shared fixtures (outside XCTUnwrap, which would fail)
        let c = try XCTUnwrap(cases.first { $0.hidden_states_last_pos != nil })
        let hidden = try XCTUnwrap(c.hidden_states_last_pos)
        var captured: [Int: [Float]] = [:] // 0 = embedding, k = after layer k-1
        var hooks = Hooks()
        let last = c.token_ids.count - 1
        hooks.on(.embedding) { captured[0] = $0.values(row: last) }
        for l in 0..<model.config.layers {
            hooks.on(.residual(l)) { captured[l + 1] = $0.values(row: last) }
        }
        _ = try model.forward(c.token_ids, cache: model.makeCache(), hooks: hooks)
        let finalResidual = try XCTUnwrap(captured[model.config.layers])
        var normed = [Float](repeating: 0, count: model.config.hidden)
        model.finalNorm(finalResidual, rows: 1, into: &normed)
        captured[model.config.layers] = normed // HF's last entry is after the final norm
        XCTAssertEqual(hidden.first8.count, model.config.layers + 1)
        for (k, expected) in hidden.first8.enumerated() {
            let ours = try XCTUnwrap(captured[k], "hidden state \(k)")
            let scale = max(1, hidden.l2[k] / Float(model.config.hidden).squareRoot())
            for (i, e) in expected.enumerated() {
                XCTAssertEqual(ours[i], e, accuracy: 2e-3 * scale, "hidden state \(k) element \(i)")
            }
            let l2 = ours.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertEqual(l2, hidden.l2[k], accuracy: 1e-3 * max(1, hidden.l2[k]), "hidden state \(k) L2 norm")
        }
    }

    func testDequantizedTensorsMatchReference() throws {
        let (ck, _) = try TestSupport.sharedDefaultModel()
        for check in try fixture().gguf_dequant_checks {
            let t = try ck.tensor(check.name)
            XCTAssertEqual(t.dtype.description, check.type, check.name)
            let m = t.matrix()
            for (i, e) in check.first16_row0.enumerated() {
                XCTAssertEqual(m.pointer[i], e, accuracy: 1e-6 * max(1, abs(e)), "\(check.name)[0][\(i)]")
            }
            var sum = 0.0, absSum = 0.0
            for i in 0..<m.count { sum += Double(m.pointer[i]); absSum += Double(abs(m.pointer[i])) }
            XCTAssertEqual(sum, check.sum, accuracy: 1e-4 * max(1, abs(check.abs_sum)), "\(check.name) sum")
            XCTAssertEqual(absSum, check.abs_sum, accuracy: 1e-5 * check.abs_sum, "\(check.name) abs sum")
        }
    }
}
