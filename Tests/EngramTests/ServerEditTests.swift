@testable import Engram
@testable import EngramServer
import Foundation
import XCTest

/// Live editing over HTTP: IKE edits, weight patches stacked, toggled, rolled back and uploaded, with
/// exact equality of the probe numbers (their JSON text) wherever a state is revisited.
final class ServerEditTests: XCTestCase {
    let prompt = "The Eiffel Tower is located in the city of"
    let candidates = ["Paris", "Rome"]

    /// The probe's numbers as canonical JSON text, so "equal" means bit-equal floats.
    func probe(_ s: TestServer, compare: Bool = false) async throws -> (current: String, unedited: String?, body: [String: Any]) {
        let r = try await s.post("/v1/probe", ["prompt": prompt, "candidates": candidates, "top_k": 5, "compare_unedited": compare])
        XCTAssertEqual(r.status, 200, r.text)
        let body = try r.json()
        func text(_ key: String) throws -> String? {
            guard let v = body[key] else { return nil }
            return String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]), as: UTF8.self)
        }
        return (try XCTUnwrap(text("current")), try text("unedited"), body)
    }

    func probability(_ numbers: String, candidate: Int) throws -> Double {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(numbers.utf8)) as? [String: Any])
        return try XCTUnwrap(((object["candidates"] as? [[String: Any]])?[candidate]["probability"] as? NSNumber)?.doubleValue)
    }

    func addEdit(_ s: TestServer, method: String, target: String, hyper: [String: Any] = [:]) async throws -> String {
        let r = try await s.post("/v1/edits", ["method": method, "hyper_parameters": hyper,
                                               "requests": [["prompt": prompt, "subject": "The Eiffel Tower", "target_new": target]]], headers: s.auth)
        XCTAssertEqual(r.status, 201, r.text)
        return try XCTUnwrap((try r.json()["edit"] as? [String: Any])?["id"] as? String)
    }

    /// With a prompt-side edit in force, an echoed prompt is the client's own: the facts shown before it
    /// are left out of the text and the scores, and its first token is scored given them. (A text prompt
    /// is encoded together with the facts, so its first token carries the space that ends their marker.)
    func testEchoLeavesOutTheFactsOfPromptSideEdits() async throws {
        let s = try await TestServer()
        let (_, _, tokenizer) = try TestServer.defaultModel()
        func echo(_ prompt: Any) async throws -> (text: String, tokens: [String], scores: [Any]) {
            let r = try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": true])
            XCTAssertEqual(r.status, 200, r.text)
            let choice = try XCTUnwrap((try r.json()["choices"] as? [[String: Any]])?.first)
            let lp = try XCTUnwrap(choice["logprobs"] as? [String: Any])
            return (try XCTUnwrap(choice["text"] as? String), try XCTUnwrap(lp["tokens"] as? [String]), try XCTUnwrap(lp["token_logprobs"] as? [Any]))
        }
        let plain = try await echo(prompt)
        XCTAssertTrue(plain.scores[0] is NSNull)
        _ = try await addEdit(s, method: "ike", target: "Rome", hyper: ["k": 0])
        let ids = tokenizer.encode(prompt).map(Int.init)
        for (edited, lead) in [(try await echo(prompt), " "), (try await echo(ids), "")] {
            XCTAssertTrue(edited.text.hasPrefix(lead + prompt), edited.text)
            XCTAssertFalse(edited.text.contains("New Fact"), edited.text)
            XCTAssertEqual(edited.tokens.count, edited.scores.count)
            XCTAssertEqual(Array(edited.tokens.prefix(ids.count)), [lead + plain.tokens[0]] + plain.tokens[1..<ids.count])
            XCTAssertNotNil(edited.scores[0] as? NSNumber, "the first token follows the facts")
            XCTAssertNotEqual((edited.scores[ids.count] as? NSNumber)?.doubleValue, (plain.scores[ids.count] as? NSNumber)?.doubleValue,
                              "the facts change what follows the prompt")
        }
        try await s.stop()
    }

    func testIKEEditTogglesAndRollsBackExactly() async throws {
        let s = try await TestServer()
        let before = try await probe(s)

        let r = try await s.post("/v1/edits", ["method": "ike", "hyper_parameters": ["k": 0],
                                               "requests": [["prompt": prompt, "subject": "The Eiffel Tower", "target_new": "Rome"]]], headers: s.auth)
        XCTAssertEqual(r.status, 201, r.text)
        let created = try r.json()
        let edit = try XCTUnwrap(created["edit"] as? [String: Any])
        let id = try XCTUnwrap(edit["id"] as? String)
        XCTAssertEqual(edit["method"] as? String, "IKE")
        XCTAssertEqual(edit["changes_weights"] as? Bool, false)
        XCTAssertEqual(((edit["patch"] as? [String: Any])?["context"] as? [String: Any])?["facts"] as? [String],
                       ["The Eiffel Tower is located in the city of Rome"])
        XCTAssertEqual(created["edits_in_force"] as? [String], [id])

        let after = try await probe(s, compare: true)
        XCTAssertNotEqual(after.current, before.current)
        XCTAssertEqual(after.unedited, before.current, "compare_unedited gives the unedited numbers in the same call")
        XCTAssertGreaterThan(try probability(after.current, candidate: 1), try probability(before.current, candidate: 1),
                             "showing the new fact makes Rome more likely")
        XCTAssertTrue(((after.body["current"] as? [String: Any])?["rendered_prompt"] as? String)?.hasPrefix("New Fact: ") == true)

        let list = try await s.get("/v1/edits").json()
        XCTAssertEqual((list["data"] as? [[String: Any]])?.map { $0["id"] as? String }, [id])

        let r1 = try await s.post("/v1/edits/\(id)/disable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r1, 200)
        let r2 = try await probe(s).current
        XCTAssertEqual(r2, before.current)
        let r3 = try await s.post("/v1/edits/\(id)/enable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r3, 200)
        let r4 = try await probe(s).current
        XCTAssertEqual(r4, after.current)

        // The patch file is a real patch: parse it back.
        let file = try await s.get("/v1/edits/\(id)/patch")
        XCTAssertEqual(file.status, 200)
        XCTAssertEqual(file.headers["content-type"], "application/octet-stream")
        let patch = try EditPatch.parse(file.body, file: "download")
        XCTAssertEqual(patch.method, "IKE")
        XCTAssertEqual(patch.requests.first?.targetNew, "Rome")
        XCTAssertEqual(patch.context?.facts, ["The Eiffel Tower is located in the city of Rome"])

        // Completions see the edit too.
        let completion = try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 3, "temperature": 0]).json()
        XCTAssertEqual(completion["system_fingerprint"] as? String, "engram-state-3")

        let deleted = try await s.delete("/v1/edits/\(id)")
        XCTAssertEqual(deleted.status, 200)
        XCTAssertEqual(try deleted.json()["edits_in_force"] as? [String], [])
        let r5 = try await probe(s).current
        XCTAssertEqual(r5, before.current)
        let r6 = try await s.get("/v1/edits/\(id)").status
        XCTAssertEqual(r6, 404)
        try await s.stop()
    }

    /// Weight patches: stacked on one matrix, the middle one toggled, rolled back in any order, uploaded
    /// as a file; every revisited state gives bit-identical numbers and the weights end bit-identical.
    func testWeightPatchesRollBackToTheExactPreEditNumbers() async throws {
        let (_, lm, _) = try TestServer.defaultModel()
        let original = lm.weight(.mlpDown(3)).copy()
        let s = try await TestServer { c in c.methods.register(RankOneTestEditor.method) }

        let p0 = try await probe(s)
        let a = try await addEdit(s, method: "TestRankOne", target: "Rome")
        let pA = try await probe(s, compare: true)
        XCTAssertNotEqual(pA.current, p0.current)
        XCTAssertEqual(pA.unedited, p0.current, "weights reverted inside the call give the pre-edit numbers exactly")
        let r7 = try await probe(s).current
        XCTAssertEqual(r7, pA.current, "and are put back afterwards")

        let b = try await addEdit(s, method: "TestRankOne", target: "London", hyper: ["scale": 0.25])
        let pAB = try await probe(s)
        XCTAssertNotEqual(pAB.current, pA.current)

        // Disable the lower patch on the same weight: the upper one is re-stacked on the base.
        let r8 = try await s.post("/v1/edits/\(a)/disable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r8, 200)
        let pB = try await probe(s)
        XCTAssertNotEqual(pB.current, pAB.current)
        let r9 = try await s.post("/v1/edits/\(a)/enable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r9, 200)
        let r10 = try await probe(s).current
        XCTAssertEqual(r10, pAB.current, "re-enabled, A is stacked in list order again: exactly A then B")

        // Download B's patch, delete everything, upload the file: exactly the "B only" state.
        let bFile = try await s.get("/v1/edits/\(b)/patch").body
        let r11 = try await s.delete("/v1/edits/\(a)").status
        XCTAssertEqual(r11, 200)
        let r12 = try await probe(s).current
        XCTAssertEqual(r12, pB.current, "deleting A leaves exactly B")
        let r13 = try await s.delete("/v1/edits/\(b)").status
        XCTAssertEqual(r13, 200)
        let r14 = try await probe(s).current
        XCTAssertEqual(r14, p0.current, "rollback restores the exact pre-edit numbers")
        XCTAssertEqual(lm.weight(.mlpDown(3)).values, original.values, "and the exact weights")

        let upload = try await s.postRaw("/v1/edits", bFile, headers: s.auth.merging(["Content-Type": "application/octet-stream"]) { $1 })
        XCTAssertEqual(upload.status, 201, upload.text)
        let uploaded = try XCTUnwrap((try upload.json()["edit"] as? [String: Any])?["id"] as? String)
        let r15 = try await probe(s).current
        XCTAssertEqual(r15, pB.current)
        // The same file again would add its deltas twice: refused while the first is in force.
        let twice = try await s.postRaw("/v1/edits", bFile, headers: s.auth.merging(["Content-Type": "application/octet-stream"]) { $1 })
        XCTAssertEqual(twice.status, 409, twice.text)
        XCTAssertTrue(twice.text.contains("patch_already_applied") && twice.text.contains(uploaded), twice.text)
        // A patch that changes nothing (no weights, no prompt context) is refused.
        var empty = try EditPatch.parse(bFile, file: "b.patch")
        empty.deltas = []
        let nothing = try await s.postRaw("/v1/edits", try empty.fileData(), headers: s.auth.merging(["Content-Type": "application/octet-stream"]) { $1 })
        XCTAssertEqual(nothing.status, 400, nothing.text)
        XCTAssertTrue(nothing.text.contains("empty_patch"), nothing.text)
        let r15b = try await probe(s).current
        XCTAssertEqual(r15b, pB.current, "neither changed anything")
        let r16 = try await s.delete("/v1/edits/\(uploaded)").status
        XCTAssertEqual(r16, 200)
        XCTAssertEqual(lm.weight(.mlpDown(3)).values, original.values)

        // The same patch said to be made on another checkpoint is refused, as `engram patch apply` does.
        var foreign = try EditPatch.parse(bFile, file: "b.patch")
        foreign.baseSHA256 = String(repeating: "0", count: 64)
        let refused = try await s.postRaw("/v1/edits", try foreign.fileData(), headers: s.auth.merging(["Content-Type": "application/octet-stream"]) { $1 })
        XCTAssertEqual(refused.status, 409, refused.text)
        XCTAssertTrue(refused.text.contains("patch_base_mismatch") && refused.text.contains("this server runs"), refused.text)
        XCTAssertEqual(lm.weight(.mlpDown(3)).values, original.values)
        try await s.stop()
    }

    /// A live MEMIT edit made while another weight edit is in force: it takes the edit (the target's
    /// probability rises) and its key statistics describe the unedited model, not the edited one.
    func testMEMITLiveEditUsesStatisticsOfTheUneditedModel() async throws {
        let (ck, lm, tokenizer) = try TestServer.defaultModel()
        let documents = 64, layer = 5 // an edited MEMIT layer above the test edit's layer 3
        let collector = KeyStatisticsCollector(model: lm, tokenizer: tokenizer, modelHash: try ck.contentHash())
        let corpus = try TextCorpus(path: try XCTUnwrap(TextCorpus.defaultPath()))
        for l in 0..<lm.config.layers { // a cached file would hide where the statistics came from
            let path = collector.cachePath(corpus: corpus, layer: l, documents: documents)
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + ".partial")
        }
        func collect() throws -> [Double] {
            var stats = [layer: KeyStatistics(layer: layer, width: lm.config.keyWidth, info: [:])]
            for start in stride(from: 0, to: documents, by: collector.batchDocuments) { // the collector's batches
                try collector.accumulate(Array(corpus.documents[start..<min(start + collector.batchDocuments, documents)]), into: &stats)
            }
            stats[layer]!.symmetrize()
            return stats[layer]!.sum
        }
        let unedited = try collect()
        let rankOne = try RankOneTestEditor(layer: 3, scale: 0.3).edit([EditRequest(caseID: "x", prompt: prompt, subject: "The Eiffel Tower", targetNew: "London")],
                                                                       model: lm, tokenizer: tokenizer)
        let applied = try rankOne.apply(to: lm)
        let edited = try collect()
        try applied.revert()
        XCTAssertNotEqual(edited, unedited, "the test edit changes the keys at layer \(layer), so the check below can fail")

        let s = try await TestServer { c in c.methods.register(RankOneTestEditor.method) }
        let methods = try await s.get("/v1/methods").json()
        XCTAssertEqual((methods["data"] as? [[String: Any]])?.map { $0["name"] as? String }, ["IKE", "ROME", "MEMIT", "AlphaEdit", "TestRankOne"])
        _ = try await addEdit(s, method: "TestRankOne", target: "London")
        let before = try await probe(s)
        _ = try await addEdit(s, method: "memit", target: "Rome", hyper: ["mom2_n_samples": documents, "v_num_grad_steps": 10])
        let after = try await probe(s)
        XCTAssertGreaterThan(try probability(after.current, candidate: 1), try probability(before.current, candidate: 1) + 0.1,
                             "P(Rome) rises: \(before.current) → \(after.current)")
        let cached = try KeyStatistics.read(path: collector.cachePath(corpus: corpus, layer: layer, documents: documents))
        XCTAssertEqual(cached.documents, documents)
        func gap(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }
        XCTAssertTrue(cached.sum == unedited, "statistics collected on the unedited weights: max |Δ| \(gap(cached.sum, unedited)) (edited: \(gap(cached.sum, edited)), tokens \(cached.tokens))")
        try await s.stop()
    }

    /// Probes racing edits: every answer is exactly the before or the after state, and says which.
    func testConcurrentProbesNeverSeeAHalfAppliedEdit() async throws {
        let s = try await TestServer { c in
            c.methods.register(RankOneTestEditor.method)
            c.limits.queueDepth = 64
        }
        let before = try await probe(s).current
        let id = try await addEdit(s, method: "TestRankOne", target: "Rome")
        let after = try await probe(s).current
        let r17 = try await s.post("/v1/edits/\(id)/disable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r17, 200)

        let results = try await withThrowingTaskGroup(of: [(String, [String])].self) { group in
            for _ in 0..<3 {
                group.addTask {
                    var seen: [(String, [String])] = []
                    for _ in 0..<6 {
                        let r = try await self.probe(s)
                        seen.append((r.current, r.body["edits_in_force"] as? [String] ?? ["?"]))
                    }
                    return seen
                }
            }
            group.addTask {
                for i in 0..<6 {
                    let action = i % 2 == 0 ? "enable" : "disable"
                    let r = try await s.post("/v1/edits/\(id)/\(action)", [:] as [String: Any], headers: s.auth)
                    XCTAssertEqual(r.status, 200)
                }
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(results.count, 18)
        for (numbers, active) in results {
            XCTAssertTrue(numbers == (active.isEmpty ? before : after), "a probe answered with numbers of neither state (edits \(active))")
        }
        try await s.stop()
    }

    func testPatchGivenAtStartAndGracefulShutdown() async throws {
        let (_, lm, tokenizer) = try TestServer.defaultModel()
        let patch = try RankOneTestEditor(layer: 5, scale: 0.3).edit([EditRequest(caseID: "0", prompt: prompt, subject: "The Eiffel Tower", targetNew: "Rome")],
                                                                      model: lm, tokenizer: tokenizer)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("engram-server-\(UUID().uuidString).patch.safetensors").path
        try patch.write(to: file)
        defer { try? FileManager.default.removeItem(atPath: file) }

        let s = try await TestServer()
        let before = try await probe(s).current
        try await s.server.loadPatch(file: file)
        let list = try await s.get("/v1/edits").json()
        let edit = try XCTUnwrap((list["data"] as? [[String: Any]])?.first)
        XCTAssertEqual(edit["source"] as? String, file)
        XCTAssertEqual(edit["method"] as? String, "TestRankOne")
        let r18 = try await probe(s).current
        XCTAssertNotEqual(r18, before)
        let downloaded = try await s.get("/v1/edits/\(edit["id"] as? String ?? "")/patch").body
        XCTAssertEqual(downloaded, try Data(contentsOf: URL(fileURLWithPath: file)), "the saved patch file bytes")

        // A generation in flight when shutdown starts still completes.
        async let streamed = s.post("/v1/completions", ["prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "stream": true])
        try await Task.sleep(nanoseconds: 200_000_000)
        try await s.stop()
        let finished = try await streamed
        XCTAssertEqual(finished.status, 200)
        XCTAssertEqual(finished.events.last, "[DONE]")
        XCTAssertEqual(lm.weight(.mlpDown(5)).values, try TestServer.freshWeights(.mlpDown(5)))
        do {
            _ = try await s.get("/health")
            XCTFail("the server still answers after shutdown")
        } catch {}
    }
}

extension TestServer {
    /// The weights of a freshly loaded copy of the default model (to check that edits left none behind).
    static func freshWeights(_ w: EditableWeight) throws -> [Float] {
        let (ck, _) = try TestSupport.sharedDefaultModel()
        return try ModelLoader.build(ck).weight(w).values
    }
}
