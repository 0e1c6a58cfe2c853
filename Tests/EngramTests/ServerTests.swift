import Engram
@testable import EngramServer
import Foundation
import XCTest

/// The server driven over real HTTP on an ephemeral loopback port, with the default model.
/// Numbers are checked against independent computations on the same model (a plain forward pass,
/// the generation loop called directly), and edits against exact equality after rollback.
final class ServerTests: XCTestCase {
    // MARK: Read-only routes

    func testHealthModelsPageAndUnknownRoutes() async throws {
        let s = try await TestServer()
        let health = try await s.get("/health")
        XCTAssertEqual(health.status, 200)
        let h = try health.json()
        XCTAssertEqual(h["status"] as? String, "ok")
        XCTAssertEqual(h["model"] as? String, "smollm2")
        XCTAssertEqual(h["editing_enabled"] as? Bool, true)

        let models = try await s.get("/v1/models").json()
        XCTAssertEqual(models["object"] as? String, "list")
        XCTAssertEqual((models["data"] as? [[String: Any]])?.first?["id"] as? String, "smollm2")
        let one = try await s.get("/v1/models/smollm2")
        XCTAssertEqual(one.status, 200)
        let r1 = try await s.get("/v1/models/gpt-4").status
        XCTAssertEqual(r1, 404)

        let page = try await s.get("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") ?? false)
        XCTAssertTrue(page.text.contains("<title>Engram</title>") && page.text.contains("/v1/probe"))

        let missing = try await s.get("/v1/nothing")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.errorCode, "route_not_found")
        let methods = try await s.get("/v1/methods").json()
        XCTAssertEqual((methods["data"] as? [[String: Any]])?.map { $0["name"] as? String }, ["IKE", "ROME", "MEMIT", "AlphaEdit"])

        // One structured log line per request, with method, path and status.
        let lines = s.logs.all.filter { $0.message == "request" }
        XCTAssertTrue(lines.contains { $0.metadata["path"]?.description == "/v1/nothing" && $0.metadata["status"]?.description == "404" })
        XCTAssertTrue(lines.contains { $0.metadata["path"]?.description == "/health" && $0.metadata["method"]?.description == "GET" })
        try await s.stop()
    }

    // MARK: Completions

    func testCompletionsMatchTheGenerationLoop() async throws {
        let (_, lm, tokenizer) = try TestServer.defaultModel()
        let prompt = "The capital of France is"
        let reference = try Generator(model: lm, tokenizer: tokenizer)
            .generate(prompt: tokenizer.encode(prompt, addSpecial: true), options: GenerationOptions(maxTokens: 8))

        let s = try await TestServer()
        let r = try await s.post("/v1/completions", ["model": "smollm2", "prompt": prompt, "max_tokens": 8, "temperature": 0])
        XCTAssertEqual(r.status, 200, r.text)
        let body = try r.json()
        XCTAssertEqual(body["object"] as? String, "text_completion")
        let choice = try XCTUnwrap((body["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["text"] as? String, reference.text)
        XCTAssertEqual(choice["finish_reason"] as? String, reference.finishReason == .length ? "length" : "stop")
        let usage = try XCTUnwrap(body["usage"] as? [String: Any])
        XCTAssertEqual(usage["prompt_tokens"] as? Int, reference.promptTokens.count)
        XCTAssertEqual(usage["completion_tokens"] as? Int, reference.tokens.count)

        // Streamed: the pieces add up to the same text; OpenAI's chunk shape; ends with [DONE].
        let streamed = try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 8, "temperature": 0, "stream": true,
                                                            "stream_options": ["include_usage": true]])
        XCTAssertEqual(streamed.status, 200)
        XCTAssertEqual(streamed.headers["content-type"], "text/event-stream")
        let events = streamed.events
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = try events.dropLast().map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "text_completion" && $0["id"] as? String == chunks[0]["id"] as? String })
        let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
        XCTAssertEqual(choices.map { $0["text"] as? String ?? "" }.joined(), reference.text)
        XCTAssertEqual(choices.last?["finish_reason"] as? String, choice["finish_reason"] as? String)
        XCTAssertTrue(choices.dropLast().allSatisfy { $0["finish_reason"] is NSNull })
        XCTAssertEqual((chunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int, reference.tokens.count)

        // Stop strings are honoured and not returned.
        let stopAt = String(reference.text.dropFirst(2).prefix(2))
        if !stopAt.trimmingCharacters(in: .whitespaces).isEmpty {
            let stopped = try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 8, "temperature": 0, "stop": [stopAt]]).json()
            let text = (stopped["choices"] as? [[String: Any]])?.first?["text"] as? String
            XCTAssertEqual(text, String(reference.text[..<reference.text.range(of: stopAt)!.lowerBound]))
        }
        try await s.stop()
    }

    /// `logit_bias` moves the choice (a ban, a push) while the reported log-probabilities stay the model's.
    func testLogitBias() async throws {
        let s = try await TestServer()
        let (_, _, tokenizer) = try TestServer.defaultModel()
        let prompt = "The capital of France is"
        func first(_ extra: [String: Any]) async throws -> (token: String, logprob: Double, top: [String: Any]) {
            var body: [String: Any] = ["prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 2]
            body.merge(extra) { $1 }
            let r = try await s.post("/v1/completions", body)
            XCTAssertEqual(r.status, 200, r.text)
            let lp = try XCTUnwrap((try r.json()["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])
            return (try XCTUnwrap((lp["tokens"] as? [String])?.first), try XCTUnwrap((lp["token_logprobs"] as? [NSNumber])?.first?.doubleValue),
                    try XCTUnwrap((lp["top_logprobs"] as? [[String: Any]])?.first))
        }
        let plain = try await first([:])
        let probe = try await s.post("/v1/probe", ["prompt": prompt, "candidates": ["Rome"]]).json()
        let rome = try XCTUnwrap((((probe["current"] as? [String: Any])?["candidates"] as? [[String: Any]])?.first?["logprob"] as? NSNumber)?.doubleValue)
        let paris = try XCTUnwrap(tokenizer.encode(plain.token).first), romeID = try XCTUnwrap(tokenizer.encode(" Rome").first)
        XCTAssertEqual(tokenizer.encode(" Rome").count, 1)

        let banned = try await first(["logit_bias": ["\(paris)": -100]])
        XCTAssertNotEqual(banned.token, plain.token, "a bias of -100 bans the token")
        XCTAssertLessThanOrEqual(banned.logprob, plain.logprob)
        let pushed = try await first(["logit_bias": ["\(romeID)": 100]])
        XCTAssertEqual(pushed.token, " Rome")
        XCTAssertEqual(pushed.top.count, 3, "the chosen token is listed beside the two likeliest")
        XCTAssertEqual(pushed.logprob, rome, accuracy: 1e-4, "the model's own log-probability, not the biased one")
        let again = try await first([:])
        XCTAssertEqual(again.token, plain.token)
        XCTAssertEqual(again.logprob, plain.logprob, "the bias is not left in the logits")

        for (bias, param) in [(["abc": 1], "logit_bias.abc"), (["\(romeID)": 101], "logit_bias.\(romeID)"), (["49152": 1], "logit_bias.49152"),
                              (["-1": 1], "logit_bias.-1")] as [([String: Any], String)] {
            let refused = try await s.post("/v1/completions", ["prompt": prompt, "logit_bias": bias])
            XCTAssertEqual(refused.status, 400, refused.text)
            XCTAssertEqual(((try? refused.json())?["error"] as? [String: Any])?["param"] as? String, param)
        }
        try await s.stop()
    }

    /// `n` choices per prompt: choice j of prompt p is index p·n + j and is what the same request with
    /// n = 1 and seed + j gives alone; a prompt's tokens are counted once in the usage.
    func testSeveralChoicesPerPrompt() async throws {
        let s = try await TestServer()
        let prompts = ["Once upon a time", "The best thing about summer is"]
        let request: [String: Any] = ["prompt": prompts, "n": 3, "max_tokens": 10, "temperature": 1.0, "seed": 11]
        let r = try await s.post("/v1/completions", request)
        XCTAssertEqual(r.status, 200, r.text)
        let body = try r.json()
        let choices = try XCTUnwrap(body["choices"] as? [[String: Any]])
        XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1, 2, 3, 4, 5])
        var completionTokens = 0
        for (p, prompt) in prompts.enumerated() {
            for j in 0..<3 {
                let alone = try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 10, "temperature": 1.0, "seed": 11 + j]).json()
                XCTAssertEqual(choices[p * 3 + j]["text"] as? String, (alone["choices"] as? [[String: Any]])?.first?["text"] as? String, "prompt \(p) choice \(j)")
                completionTokens += (alone["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0
            }
            XCTAssertGreaterThan(Set((0..<3).map { choices[p * 3 + $0]["text"] as? String ?? "" }).count, 1, "different seeds, different samples")
        }
        let usage = try XCTUnwrap(body["usage"] as? [String: Any])
        let (_, _, tokenizer) = try TestServer.defaultModel()
        XCTAssertEqual(usage["prompt_tokens"] as? Int, prompts.map { tokenizer.encode($0, addSpecial: true).count }.reduce(0, +))
        XCTAssertEqual(usage["completion_tokens"] as? Int, completionTokens)

        // Chat, whole and streamed: the same texts per index; the stream opens every choice with its role.
        let chat: [String: Any] = ["messages": [["role": "user", "content": "Name a fruit."]], "n": 2, "max_tokens": 8, "temperature": 1.0, "seed": 5]
        let wholeBody = try await s.post("/v1/chat/completions", chat).json()
        let whole = try XCTUnwrap(wholeBody["choices"] as? [[String: Any]])
        XCTAssertEqual(whole.map { $0["index"] as? Int }, [0, 1])
        var streamedChat = chat
        streamedChat["stream"] = true
        let events = try await s.post("/v1/chat/completions", streamedChat).events.dropLast()
        var texts = ["", ""], roles: [Int] = []
        for event in events {
            let chunk = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            for c in chunk["choices"] as? [[String: Any]] ?? [] {
                let index = try XCTUnwrap(c["index"] as? Int)
                let delta = c["delta"] as? [String: Any]
                if delta?["role"] as? String == "assistant" { roles.append(index) }
                texts[index] += delta?["content"] as? String ?? ""
            }
        }
        XCTAssertEqual(roles, [0, 1])
        XCTAssertEqual(texts, whole.map { ($0["message"] as? [String: Any])?["content"] as? String ?? "" })

        // n is bounded together with the prompts (8 choices per request by default).
        for (body, param) in [(["prompt": ["a", "b", "c"], "n": 3], "n"), (["prompt": "a", "n": 0], "n"), (["prompt": "a", "n": 9], "n")] as [([String: Any], String)] {
            let refused = try await s.post("/v1/completions", body)
            XCTAssertEqual(refused.status, 400, refused.text)
            XCTAssertEqual(((try? refused.json())?["error"] as? [String: Any])?["param"] as? String, param)
        }
        try await s.stop()
    }

    /// Completions arriving together are decoded together (one batched pass per step), and each gets
    /// exactly the text it gets alone: greedy or sampled with a seed, several prompts in one request, a
    /// stop string, different lengths. The model is opened as `engram serve` opens it (weights read from
    /// their blocks), where a step's products form every sequence's sums as for that sequence alone.
    func testConcurrentCompletionsAreDecodedTogether() async throws {
        let ck = try ModelLoader.checkpoint("smollm2")
        ck.dequantizesOnDemand = true
        let idle = FloatBuffer(count: 1) // calls of the hook `engram serve` uses to drop copies and return memory
        let s = try await TestServer(model: (ck, try ModelLoader.build(ck), try TestServer.defaultModel().2),
                                     afterEachJobCount: idle) { c in c.limits.maxPromptsPerRequest = 20 }
        let requests: [[String: Any]] = [
            ["prompt": "The capital of France is", "max_tokens": 12, "temperature": 0],
            ["prompt": "Once upon a time", "max_tokens": 24, "temperature": 0.8, "seed": 7],
            ["prompt": "The Eiffel Tower is located in", "max_tokens": 6, "temperature": 0],
            ["prompt": ["Water boils at", "The largest planet in the solar system is"], "max_tokens": 10, "temperature": 0],
            ["prompt": "My favourite colour is", "max_tokens": 16, "temperature": 1, "top_k": 20, "seed": 3, "stop": ["."]],
            ["prompt": "def fibonacci(n):", "max_tokens": 20, "temperature": 0],
            ["prompt": "The mother tongue of Danielle Darrieux is", "max_tokens": 3, "temperature": 0],
            ["prompt": "In 1969, the first person to walk on the Moon was", "max_tokens": 18, "temperature": 0.5, "top_p": 0.9, "seed": 11],
        ]
        func texts(_ r: RawHTTPResponse) throws -> [String] {
            XCTAssertEqual(r.status, 200, r.text)
            return try XCTUnwrap(try r.json()["choices"] as? [[String: Any]]).map { "\($0["index"] ?? "")|\($0["finish_reason"] ?? "")|\($0["text"] ?? "")" }
        }
        var alone: [[String]] = []
        for r in requests { alone.append(try texts(try await s.post("/v1/completions", r))) }
        XCTAssertEqual(s.server.worker.largestStep, 2, "one at a time, only a two-prompt request shares its steps")
        let together = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
            for (i, r) in requests.enumerated() { group.addTask { (i, try texts(try await s.post("/v1/completions", r))) } }
            return try await group.reduce(into: [[String]](repeating: [], count: requests.count)) { $0[$1.0] = $1.1 }
        }
        XCTAssertEqual(together, alone)
        XCTAssertGreaterThan(s.server.worker.largestStep, 2, "the requests were not decoded together")
        XCTAssertGreaterThan(idle[0], 0, "completions alone never ran the after-job hook")

        // A request of more prompts than one pass takes (16): its steps are split, each prompt gets its solo text.
        let many = (0..<20).map { "Fact number \($0) about the Moon:" }
        var solo: [Substring] = []
        for prompt in many {
            solo.append(try texts(try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 5, "temperature": 0]))[0].split(separator: "|", maxSplits: 1)[1])
        }
        let batch = try texts(try await s.post("/v1/completions", ["prompt": many, "max_tokens": 5, "temperature": 0]))
        XCTAssertEqual(batch.map { $0.split(separator: "|", maxSplits: 1)[1] }, solo)
        XCTAssertEqual(s.server.worker.largestStep, 20)
        try await s.stop()
    }

    /// A long prompt arriving while a completion is being decoded goes through the model a piece at a
    /// time, with the running completion's steps in between, instead of holding it up for its whole pass;
    /// both get the texts they get alone.
    func testALongPromptTakesTurnsWithTheCompletionsBeingDecoded() async throws {
        let s = try await TestServer()
        let running: [String: Any] = ["prompt": "The Eiffel Tower, the Colosseum, the Louvre", "max_tokens": 200, "temperature": 0]
        let sentences = (0..<40).map { "Fact \($0): the city number \($0) has a tower." }.joined(separator: " ")
        let long: [String: Any] = ["prompt": sentences + " The tallest tower is in", "max_tokens": 5, "temperature": 0]
        func completion(_ r: RawHTTPResponse) throws -> (text: String, promptTokens: Int) {
            XCTAssertEqual(r.status, 200, r.text)
            let body = try r.json()
            return (try XCTUnwrap((body["choices"] as? [[String: Any]])?.first?["text"] as? String),
                    try XCTUnwrap((body["usage"] as? [String: Any])?["prompt_tokens"] as? Int))
        }
        let runningAlone = try completion(try await s.post("/v1/completions", running))
        let longAlone = try completion(try await s.post("/v1/completions", long))
        XCTAssertGreaterThan(longAlone.promptTokens, 4 * DecodingSequence.promptPiece)
        XCTAssertEqual(s.server.worker.promptSharing.sharedSteps, 0, "one request at a time shares no steps")

        try await s.untilIdle()
        async let first = s.post("/v1/completions", running)
        try await s.untilDecoding() // the first completion (2–4 s) has started
        let second = try completion(try await s.post("/v1/completions", long))
        let firstResponse = try await first
        XCTAssertEqual(try completion(firstResponse).text, runningAlone.text)
        XCTAssertEqual(second.text, longAlone.text)
        let sharing = s.server.worker.promptSharing
        XCTAssertLessThanOrEqual(sharing.largest, DecodingSequence.promptPiece)
        let pieces = (longAlone.promptTokens + DecodingSequence.promptPiece - 1) / DecodingSequence.promptPiece
        XCTAssertEqual(sharing.sharedSteps, pieces, "every piece of the long prompt took a step beside the running completion")
        try await s.stop()
    }

    /// A probe only reads the model: one sent while a completion is being decoded is answered between two
    /// of its steps, long before the completion ends, with the numbers it gets alone. A probe comparing with
    /// the unedited model takes the edits out for a moment, so it waits for the completion as an edit does,
    /// and so does a probe of more tokens than a step gives prompts (it would hold the streams up).
    func testAProbeIsAnsweredBetweenDecodingSteps() async throws {
        let s = try await TestServer()
        let running: [String: Any] = ["prompt": "The Eiffel Tower, the Colosseum, the Louvre", "max_tokens": 200, "temperature": 0]
        let probe: [String: Any] = ["prompt": "The Eiffel Tower is located in the city of", "candidates": ["Paris", "Rome"], "top_k": 3]
        var comparing = probe
        comparing["compare_unedited"] = true
        // More prompt tokens than a decoding step gives prompts (128): it waits for the model alone.
        let heavy: [String: Any] = ["prompt": (0..<20).map { "Fact \($0): the city number \($0) has a tower." }.joined(separator: " ")
                                        + " The tallest tower is in", "candidates": ["Paris"], "top_k": 3]
        @Sendable func current(_ r: RawHTTPResponse) throws -> String {
            XCTAssertEqual(r.status, 200, r.text)
            let data = try JSONSerialization.data(withJSONObject: try XCTUnwrap(try r.json()["current"]), options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
        let probeAlone = try current(try await s.post("/v1/probe", probe))
        let heavyAlone = try current(try await s.post("/v1/probe", heavy))
        @Sendable func text(_ r: RawHTTPResponse) throws -> String {
            XCTAssertEqual(r.status, 200, r.text)
            return try XCTUnwrap((try r.json()["choices"] as? [[String: Any]])?.first?["text"] as? String)
        }
        let runningAlone = try text(try await s.post("/v1/completions", running))

        let clock = ContinuousClock()
        /// Starts the long completion and returns once it is being decoded.
        func startCompletion() async throws -> Task<(String, ContinuousClock.Instant), Error> {
            try await s.untilIdle()
            let task = Task {
                let r = try await s.post("/v1/completions", running)
                return (try text(r), clock.now)
            }
            try await s.untilDecoding() // the completion (2–4 s) has started
            return task
        }
        // Sends `body` while the completion is being decoded: the probe's numbers, and whether it was
        // answered before the completion ended.
        func probeDuringCompletion(_ body: [String: Any]) async throws -> (numbers: String, beforeTheEnd: Bool) {
            let completion = try await startCompletion()
            let r = try await s.post("/v1/probe", body)
            let answered = clock.now
            let (completionText, ended) = try await completion.value
            XCTAssertEqual(completionText, runningAlone)
            return (try current(r), answered < ended)
        }
        let light = try await probeDuringCompletion(probe)
        XCTAssertEqual(light.numbers, probeAlone)
        XCTAssertTrue(light.beforeTheEnd, "the probe waited for the completion")
        let compared = try await probeDuringCompletion(comparing)
        XCTAssertEqual(compared.numbers, probeAlone)
        XCTAssertFalse(compared.beforeTheEnd, "the comparing probe ran while the completion was decoded")
        let heavyDuring = try await probeDuringCompletion(heavy)
        XCTAssertEqual(heavyDuring.numbers, heavyAlone)
        XCTAssertFalse(heavyDuring.beforeTheEnd, "the heavy probe ran while the completion was decoded")
        try await s.stop()
    }

    /// An edit waits for the completions being decoded when it arrives and holds back those queued after
    /// it: a completion sent before the edit is generated entirely without it, one sent after entirely with it.
    func testAnEditSeparatesTheCompletionsAroundIt() async throws {
        let s = try await TestServer()
        let prompt = "The Eiffel Tower is located in the city of"
        // 200 tokens (no end of text before): still being decoded when the edit arrives.
        let long: [String: Any] = ["prompt": "The Eiffel Tower, the Colosseum, the Louvre", "max_tokens": 200, "temperature": 0]
        func text(_ r: RawHTTPResponse) throws -> String {
            XCTAssertEqual(r.status, 200, r.text)
            return try XCTUnwrap((try r.json()["choices"] as? [[String: Any]])?.first?["text"] as? String)
        }
        let before = try text(try await s.post("/v1/completions", long))
        // A weight edit (ROME): were it applied between two decoding steps, the first completion would change.
        let edit: [String: Any] = ["method": "rome", "requests": [["prompt": prompt, "subject": "The Eiffel Tower", "target_new": "Rome"]]]
        async let first = s.post("/v1/completions", long)
        try await Task.sleep(for: .milliseconds(400)) // the first completion (1–2 s) is being decoded
        async let created = s.post("/v1/edits", edit, headers: s.auth)
        try await Task.sleep(for: .milliseconds(100))
        async let second = s.post("/v1/completions", long)
        let (a, e, b) = try await (first, created, second)
        XCTAssertEqual(e.status, 201, e.text)
        XCTAssertEqual(try text(a), before)
        let after = try text(try await s.post("/v1/completions", long))
        XCTAssertNotEqual(after, before, "the edit changes the completion")
        XCTAssertEqual(try text(b), after)
        try await s.stop()
    }

    func testCompletionLogprobsAndEchoedPrompts() async throws {
        let s = try await TestServer()
        let (_, model, tokenizer) = try TestServer.defaultModel()
        let prompt = "The Eiffel Tower is located in the city of"
        let ids = tokenizer.encode(prompt, addSpecial: true)
        let logits = try model.forward(ids, cache: model.makeCache(), logits: .all)
        let expected = (0..<logits.rows).map { GradientReferenceMaths.logSoftmax(logits.row($0), count: logits.cols) }
        func choice(_ r: RawHTTPResponse) throws -> [String: Any] {
            XCTAssertEqual(r.status, 200, r.text)
            return try XCTUnwrap((try r.json()["choices"] as? [[String: Any]])?.first)
        }

        // Echo with logprobs (what lm-evaluation-harness asks to score a text): every prompt token but the
        // first is scored given those before it, then the generated tokens, each with its alternatives.
        let echoed = try choice(try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 3, "temperature": 0, "logprobs": 4, "echo": true]))
        let lp = try XCTUnwrap(echoed["logprobs"] as? [String: Any])
        let tokens = try XCTUnwrap(lp["tokens"] as? [String])
        let scores = try XCTUnwrap(lp["token_logprobs"] as? [Any])
        let tops = try XCTUnwrap(lp["top_logprobs"] as? [Any])
        let offsets = try XCTUnwrap(lp["text_offset"] as? [Int])
        let text = try XCTUnwrap(echoed["text"] as? String)
        XCTAssertEqual(tokens.count, ids.count + 3)
        XCTAssertEqual([scores.count, tops.count, offsets.count], [tokens.count, tokens.count, tokens.count])
        XCTAssertTrue(text.hasPrefix(prompt), text)
        XCTAssertEqual(tokens.joined(), text)
        XCTAssertTrue(scores[0] is NSNull, "nothing precedes the first token")
        XCTAssertTrue(tops[0] is NSNull)
        for j in 1..<ids.count {
            let got = try XCTUnwrap((scores[j] as? NSNumber)?.doubleValue)
            XCTAssertEqual(got, expected[j - 1][Int(ids[j])], accuracy: 1e-4, "prompt token \(j)")
            let top = try XCTUnwrap(tops[j] as? [String: NSNumber])
            let best = expected[j - 1].indices.max { expected[j - 1][$0] < expected[j - 1][$1] }!
            XCTAssertEqual(top[tokenizer.decode([Int32(best)])]?.doubleValue ?? .nan, expected[j - 1][best], accuracy: 1e-4)
        }
        for (k, offset) in offsets.enumerated() {
            XCTAssertTrue(text.unicodeScalars.dropFirst(offset).starts(with: tokens[k].unicodeScalars), "token \(k) at \(offset)")
        }
        // The first generated token is the greedy one, scored from the prompt's last position.
        let first = ids.count
        let greedy = expected[ids.count - 1].indices.max { expected[ids.count - 1][$0] < expected[ids.count - 1][$1] }!
        XCTAssertEqual(tokens[first], tokenizer.decode([Int32(greedy)]))
        XCTAssertEqual(try XCTUnwrap((scores[first] as? NSNumber)?.doubleValue), expected[ids.count - 1][greedy], accuracy: 1e-4)
        XCTAssertEqual((tops[first] as? [String: Any])?.count, 4)

        // Without echo only the generated tokens are scored; the same numbers. Without logprobs, null.
        let plain = try choice(try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 3, "temperature": 0, "logprobs": 0]))
        let plainLp = try XCTUnwrap(plain["logprobs"] as? [String: Any])
        XCTAssertEqual(plainLp["tokens"] as? [String], Array(tokens[first...]))
        // (To rounding: echo's prompt pass computes the logits of every position in one product.)
        let plainScores = try XCTUnwrap((plainLp["token_logprobs"] as? [NSNumber])?.map(\.doubleValue))
        for (a, b) in zip(plainScores, scores[first...].map { ($0 as! NSNumber).doubleValue }) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        XCTAssertEqual((plainLp["top_logprobs"] as? [[String: Any]])?.map(\.count), [1, 1, 1], "logprobs 0: the chosen token alone")
        XCTAssertEqual(plainLp["text_offset"] as? [Int], offsets[first...].map { $0 - offsets[first] })
        let unscored = try choice(try await s.post("/v1/completions", ["prompt": prompt, "max_tokens": 1]))
        XCTAssertTrue(unscored["logprobs"] is NSNull)

        // Scoring only: max_tokens 0 still puts the prompt through; token ids in, token ids scored.
        let scoring = try choice(try await s.post("/v1/completions", ["prompt": ids.map(Int.init), "max_tokens": 0, "logprobs": 1, "echo": true]))
        let scoringLp = try XCTUnwrap(scoring["logprobs"] as? [String: Any])
        XCTAssertEqual(scoringLp["tokens"] as? [String], Array(tokens[..<first]))
        XCTAssertEqual((scoringLp["token_logprobs"] as? [Any])?.dropFirst().map { ($0 as! NSNumber).doubleValue }, scores[1..<first].map { ($0 as! NSNumber).doubleValue },
                       "the same pass as echo's above: the same numbers")
        XCTAssertEqual(scoring["text"] as? String, prompt)

        // An answer that ends at the end-of-generation token scores it too (lm-eval drops the last entry
        // as the generated one), and leaves it out of the text.
        let chatIDs = tokenizer.encode(tokenizer.renderChat([ChatMessage(role: "user", content: "What is the capital of France?")])
                                       + "The capital of France is Paris.", parseSpecial: true)
        let chatLogits = try model.forward(chatIDs, cache: model.makeCache(), logits: .all)
        let chatLast = GradientReferenceMaths.logSoftmax(chatLogits.row(chatIDs.count - 1), count: chatLogits.cols)
        let eos = try XCTUnwrap(tokenizer.eos)
        XCTAssertEqual(chatLast.indices.max { chatLast[$0] < chatLast[$1] }, Int(eos), "the model ends its answer here")
        let ended = try choice(try await s.post("/v1/completions", ["prompt": chatIDs.map(Int.init), "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": true]))
        XCTAssertEqual(ended["finish_reason"] as? String, "stop")
        let endedLp = try XCTUnwrap(ended["logprobs"] as? [String: Any])
        XCTAssertEqual((endedLp["tokens"] as? [String])?.count, chatIDs.count + 1)
        XCTAssertEqual((endedLp["tokens"] as? [String])?.last, tokenizer.decode([eos]))
        XCTAssertEqual(((endedLp["token_logprobs"] as? [Any])?.last as? NSNumber)?.doubleValue ?? .nan, chatLast[Int(eos)], accuracy: 1e-4)
        XCTAssertEqual(ended["text"] as? String, tokenizer.decode(chatIDs))

        // After a stop string only the tokens that begin before the cut are listed; a character split
        // across tokens is listed as OpenAI's "bytes:" strings.
        let stopped = try choice(try await s.post("/v1/completions", ["prompt": "1, 2, 3, 4,", "max_tokens": 20, "temperature": 0, "logprobs": 0, "stop": [" 7"]]))
        let stoppedText = try XCTUnwrap(stopped["text"] as? String)
        let stoppedLp = try XCTUnwrap(stopped["logprobs"] as? [String: Any])
        XCTAssertEqual((stoppedLp["tokens"] as? [String])?.joined(), stoppedText)
        XCTAssertTrue((stoppedLp["text_offset"] as? [Int] ?? [99]).allSatisfy { $0 < stoppedText.unicodeScalars.count })
        let split = try choice(try await s.post("/v1/completions", ["prompt": "鼻", "max_tokens": 0, "logprobs": 0, "echo": true]))
        XCTAssertEqual((split["logprobs"] as? [String: Any])?["tokens"] as? [String], ["bytes:\\xe9", "bytes:\\xbc", "bytes:\\xbb"])
        XCTAssertEqual(split["text"] as? String, "鼻")
        // Streamed, each chunk carries the scores of the tokens whose text begins in it, offsets counted in
        // the whole text: joined, the whole answer's lists (cut at the same stop string; the end token too).
        let streamedCases: [[String: Any]] = [
            ["prompt": "1, 2, 3, 4,", "max_tokens": 20, "temperature": 0, "logprobs": 2, "stop": [" 7"]],
            ["prompt": chatIDs.map(Int.init), "max_tokens": 3, "temperature": 0, "logprobs": 0],
            ["prompt": "鼻", "max_tokens": 4, "temperature": 0, "logprobs": 1],
        ]
        for body in streamedCases {
            let wholeResponse = try await s.post("/v1/completions", body)
            let whole = try XCTUnwrap(try choice(wholeResponse)["logprobs"] as? [String: Any])
            var streaming = body
            streaming["stream"] = true
            let streamed = try await s.post("/v1/completions", streaming)
            XCTAssertEqual(streamed.status, 200, streamed.text)
            var joined: [String: [Any]] = [:]
            for event in streamed.events.dropLast() {
                let chunk = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
                guard let lp = (chunk["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any] else { continue }
                for key in ["tokens", "token_logprobs", "top_logprobs", "text_offset"] { joined[key, default: []] += lp[key] as? [Any] ?? [] }
            }
            XCTAssertGreaterThan(joined["tokens"]?.count ?? 0, 0, "\(body)")
            for key in ["tokens", "token_logprobs", "top_logprobs", "text_offset"] {
                XCTAssertEqual(joined[key].map { $0 as NSArray }, whole[key] as? NSArray, "\(key) of \(body)")
            }
        }

        // A prompt longer than a piece (128 tokens) is scored across its pieces as in one pass.
        let long = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 30)
        let longIDs = tokenizer.encode(long, addSpecial: true)
        XCTAssertGreaterThan(longIDs.count, 2 * DecodingSequence.promptPiece)
        let longLogits = try model.forward(longIDs, cache: model.makeCache(), logits: .all)
        let longChoice = try choice(try await s.post("/v1/completions", ["prompt": long, "max_tokens": 0, "logprobs": 0, "echo": true]))
        let longScores = try XCTUnwrap((longChoice["logprobs"] as? [String: Any])?["token_logprobs"] as? [Any])
        XCTAssertEqual(longScores.count, longIDs.count)
        for j in 1..<longIDs.count {
            let row = GradientReferenceMaths.logSoftmax(longLogits.row(j - 1), count: longLogits.cols)
            XCTAssertEqual((longScores[j] as? NSNumber)?.doubleValue ?? .nan, row[Int(longIDs[j])], accuracy: 1e-3, "long prompt token \(j)")
        }

        // Chat: one entry per generated token, its bytes and the alternatives asked for.
        let chat = try choice(try await s.post("/v1/chat/completions", ["messages": [["role": "user", "content": "What is the capital of France?"]],
                                                                         "max_tokens": 5, "temperature": 0, "logprobs": true, "top_logprobs": 3]))
        let content = try XCTUnwrap((chat["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
        XCTAssertEqual(content.count, 5)
        XCTAssertEqual(content.map { $0["token"] as? String ?? "" }.joined(), (chat["message"] as? [String: Any])?["content"] as? String)
        for entry in content {
            let top = try XCTUnwrap(entry["top_logprobs"] as? [[String: Any]])
            XCTAssertEqual(top.count, 3)
            XCTAssertEqual(top.first?["token"] as? String, entry["token"] as? String, "greedy: the chosen token is the likeliest")
            XCTAssertEqual((top.first?["logprob"] as? NSNumber)?.doubleValue, (entry["logprob"] as? NSNumber)?.doubleValue)
            XCTAssertEqual((entry["bytes"] as? [Int])?.map(UInt8.init), Array((entry["token"] as? String ?? "").utf8))
        }
        // Streamed: the same entries, spread over the chunks that carry their text.
        let chatStream = try await s.post("/v1/chat/completions", ["messages": [["role": "user", "content": "What is the capital of France?"]],
                                                                   "max_tokens": 5, "temperature": 0, "logprobs": true, "top_logprobs": 3, "stream": true])
        var streamedContent: [Any] = []
        for event in chatStream.events.dropLast() {
            let chunk = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            let choice = try XCTUnwrap((chunk["choices"] as? [[String: Any]])?.first)
            streamedContent += (choice["logprobs"] as? [String: Any])?["content"] as? [Any] ?? []
        }
        XCTAssertEqual(streamedContent as NSArray, content as NSArray)

        // What cannot be honoured is refused, naming the field.
        let refusals: [(String, [String: Any], String)] = [
            ("/v1/completions", ["prompt": prompt, "echo": true, "stream": true], "echo"),
            ("/v1/completions", ["prompt": prompt, "logprobs": 21], "logprobs"),
            ("/v1/chat/completions", ["messages": [["role": "user", "content": "Hi"]], "top_logprobs": 2], "top_logprobs"),
        ]
        for (path, body, param) in refusals {
            let r = try await s.post(path, body)
            XCTAssertEqual(r.status, 400, "\(body): \(r.text)")
            XCTAssertEqual(((try? r.json())?["error"] as? [String: Any])?["param"] as? String, param, r.text)
        }
        try await s.stop()
    }

    /// `text_offset` follows the text a client sees, also where a SentencePiece decode drops the first
    /// word's space and where a control token (BOS) shows as its piece.
    func testLogprobOffsetsFollowTheText() throws {
        let tokenizer = try SentencePieceTokenizer(modelProto: TokenizerSentencePieceFixture.model, file: "tiny/tokenizer.model")
        let bos = try XCTUnwrap(tokenizer.bos)
        var checked = 0
        for c in TokenizerSentencePieceFixture.cases where c.ids.count > 2 && !c.text.hasPrefix(" ") {
            for ids in [c.ids, [bos] + c.ids] {
                let text = tokenizer.decode(ids)
                let lp = CompletionBody.Logprobs(ids.map { ($0, nil) }, text: text, tokenizer: tokenizer)
                let scalars = Array(text.unicodeScalars)
                for (k, offset) in lp.textOffset.enumerated() {
                    let rest = String(String.UnicodeScalarView(scalars[offset...]))
                    let token = lp.tokens[k]
                    XCTAssertTrue(token.hasPrefix("bytes:") || rest.hasPrefix(token) || (token.hasPrefix(" ") && rest.hasPrefix(String(token.dropFirst()))),
                                  "\(text.debugDescription): token \(k) \(token.debugDescription) at \(offset)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 2)
    }

    /// Streamed `text_offset`s are the whole answer's also where a token's text is split over two pieces
    /// (held back at a stop string's start, or part of a character).
    func testStreamedOffsetsAreTheWholeAnswers() throws {
        typealias Pieces = DecodingStreamTests.BytePieces
        let tokenizer = Pieces([Array("Hello\n".utf8), Array(" world".utf8), Array("!".utf8), Array("a".utf8) + [0xE2], [0x82, 0xAC], Array("b".utf8)])
        for (chain, stop) in [([Int32(7), 2, 3, 4, 7], ["\n\n"]), ([7, 5, 6, 7], [])] {
            var next: [Int32: Int32] = [:]
            for (a, b) in zip(chain, chain.dropFirst()) { next[a] = b }
            var options = GenerationOptions(maxTokens: chain.count - 1, stop: stop)
            options.logprobs = 0
            options.stopAtEndOfGeneration = false
            var pieces: [StreamedText] = []
            let result = try Generator(model: BigramModel(vocab: tokenizer.vocabularySize, next: next, strength: 5), tokenizer: tokenizer)
                .generate(prompt: [chain[0]], options: options) { pieces.append($0) }
            XCTAssertGreaterThan(pieces.count, 1)
            var offsets = CompletionBody.TextOffsets()
            let streamed = pieces.flatMap { piece in
                offsets.append(piece.text)
                return CompletionBody.Logprobs(piece.logprobs.map { ($0.token, $0) }, tokenizer: tokenizer, offsets: &offsets).textOffset
            }
            let whole = CompletionBody.Logprobs(result.logprobs.map { ($0.token, $0) }, text: result.text, tokenizer: tokenizer).textOffset
            XCTAssertEqual(streamed, whole, "pieces \(pieces.map(\.text))")
        }
    }

    /// The server's log-probabilities against Hugging Face transformers' logits for the same file
    /// (shared/fixtures/smollm2-reference.json, last position in full).
    func testLogprobsMatchTheReference() async throws {
        struct Case: Decodable { let token_ids: [Int32]; let last_logits_full: [Float]? }
        struct Fixture: Decodable { let cases: [Case] }
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: TestSupport.sharedFile("fixtures/smollm2-reference.json")))
        let s = try await TestServer()
        let (_, _, tokenizer) = try TestServer.defaultModel()
        var checked = 0
        for c in fixture.cases {
            guard let full = c.last_logits_full else { continue }
            let reference = full.withUnsafeBufferPointer { GradientReferenceMaths.logSoftmax($0.baseAddress!, count: $0.count) }
            let order = reference.indices.sorted { reference[$0] > reference[$1] }
            let r = try await s.post("/v1/completions", ["prompt": c.token_ids.map(Int.init), "max_tokens": 1, "temperature": 0, "logprobs": 5])
            XCTAssertEqual(r.status, 200, r.text)
            let lp = try XCTUnwrap(((try r.json()["choices"] as? [[String: Any]])?.first)?["logprobs"] as? [String: Any])
            XCTAssertEqual(lp["tokens"] as? [String], [tokenizer.decode([Int32(order[0])])])
            XCTAssertEqual(try XCTUnwrap((lp["token_logprobs"] as? [NSNumber])?.first?.doubleValue), reference[order[0]], accuracy: 2e-2)
            let top = try XCTUnwrap((lp["top_logprobs"] as? [[String: NSNumber]])?.first)
            for id in order.prefix(3) { // the top two or three are far apart; 4th and 5th may be near-ties
                // (A token ending inside a character is listed as "bytes:\\x..".)
                XCTAssertEqual(top[tokenString(tokenizer.bytes(of: Int32(id)))]?.doubleValue ?? .nan, reference[id], accuracy: 2e-2)
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0)
        try await s.stop()
    }

    func testChatCompletionsWholeAndStreamed() async throws {
        let (_, lm, tokenizer) = try TestServer.defaultModel()
        let messages = [ChatMessage(role: "user", content: "What is the capital of France?")]
        let ids = tokenizer.encode(tokenizer.renderChat(messages), addSpecial: false, parseSpecial: true)
        let reference = try Generator(model: lm, tokenizer: tokenizer).generate(prompt: ids, options: GenerationOptions(maxTokens: 12))

        let s = try await TestServer()
        let request: [String: Any] = ["model": "smollm2", "messages": [["role": "user", "content": "What is the capital of France?"]],
                                      "max_tokens": 12, "temperature": 0]
        let whole = try await s.post("/v1/chat/completions", request)
        XCTAssertEqual(whole.status, 200, whole.text)
        let body = try whole.json()
        XCTAssertEqual(body["object"] as? String, "chat.completion")
        let message = try XCTUnwrap(((body["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])
        XCTAssertEqual(message["role"] as? String, "assistant")
        XCTAssertEqual(message["content"] as? String, reference.text)

        var streaming = request
        streaming["stream"] = true
        let streamed = try await s.post("/v1/chat/completions", streaming)
        let chunks = try streamed.events.dropLast().map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(streamed.events.last, "[DONE]")
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        let deltas = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first)?["delta"] as? [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), reference.text)
        let finish = (chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String
        XCTAssertEqual(finish, reference.finishReason == .length ? "length" : "stop")

        // Content given as text parts is the same conversation.
        let parts = try await s.post("/v1/chat/completions", ["messages": [["role": "user", "content": [
            ["type": "text", "text": "What is the capital "], ["type": "text", "text": "of France?"]]]], "max_tokens": 12, "temperature": 0]).json()
        XCTAssertEqual(((parts["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String, reference.text)
        try await s.stop()
    }

    // MARK: Probe and trace

    /// The probe's numbers against one plain forward pass over prompt + candidate, read naively.
    func testProbeMatchesAPlainForwardPass() async throws {
        let (_, lm, tokenizer) = try TestServer.defaultModel()
        let prompt = "The Eiffel Tower is located in the city of"
        let candidates = ["Paris", "Rome", "New York City"]
        var expected: [(logprobs: [Float], rank: Int)] = []
        var nextLogProbs: [Float] = []
        for c in candidates {
            let e = try XCTUnwrap(TargetEncoding.encode(prompt: prompt, target: c, tokenizer: tokenizer)).item
            let all = e.context + e.target
            let logits = try lm.forward(all, cache: lm.makeCache(capacity: all.count), logits: .all)
            var logprobs: [Float] = []
            var rank = 0
            for (j, t) in e.target.enumerated() {
                let row = Array(UnsafeBufferPointer(start: logits.row(e.context.count - 1 + j), count: logits.cols))
                let m = row.max()!
                let logZ = log(row.reduce(Float(0)) { $0 + exp($1 - m) }) + m
                logprobs.append(row[Int(t)] - logZ)
                if j == 0 {
                    rank = 1 + row.filter { $0 > row[Int(t)] }.count
                    nextLogProbs = row.map { $0 - logZ }
                }
            }
            expected.append((logprobs, rank))
        }

        let s = try await TestServer()
        let r = try await s.post("/v1/probe", ["prompt": prompt, "candidates": candidates, "top_k": 5])
        XCTAssertEqual(r.status, 200, r.text)
        let body = try r.json()
        XCTAssertNil(body["unedited"])
        let current = try XCTUnwrap(body["current"] as? [String: Any])
        let got = try XCTUnwrap(current["candidates"] as? [[String: Any]])
        XCTAssertEqual(got.count, 3)
        for (i, c) in got.enumerated() {
            let tokens = try XCTUnwrap(c["tokens"] as? [[String: Any]])
            let logprobs = tokens.compactMap { ($0["logprob"] as? NSNumber)?.floatValue }
            XCTAssertEqual(logprobs.count, expected[i].logprobs.count)
            for (a, b) in zip(logprobs, expected[i].logprobs) { XCTAssertEqual(a, b, accuracy: 2e-3) }
            let sum = try XCTUnwrap((c["logprob"] as? NSNumber)?.floatValue)
            XCTAssertEqual(sum, expected[i].logprobs.reduce(0, +), accuracy: 5e-3)
            XCTAssertEqual(c["first_token_rank"] as? Int, expected[i].rank)
        }
        let top = try XCTUnwrap(current["top_k"] as? [[String: Any]])
        let naiveTop = nextLogProbs.indices.sorted { nextLogProbs[$0] > nextLogProbs[$1] }.prefix(5)
        XCTAssertEqual(top.compactMap { ($0["id"] as? NSNumber)?.intValue }, Array(naiveTop))
        XCTAssertEqual(got[0]["first_token_rank"] as? Int, 1, "the model's top answer is Paris")
        try await s.stop()
    }

    func testTraceMatchesADirectRun() async throws {
        let (_, lm, tokenizer) = try TestServer.defaultModel()
        var options = CausalTrace.Options()
        options.samples = 1
        options.kinds = [.residual]
        options.noise = 0.1 // given, so neither run spends time measuring the embedding spread
        // The subject is the last token, so one position is restored per layer: a quick trace.
        let direct = try CausalTrace(model: lm, tokenizer: tokenizer).run(prompt: "The capital city of France", subject: "France", options: options)

        let s = try await TestServer()
        let r = try await s.post("/v1/trace", ["prompt": "The capital city of France", "subject": "France", "samples": 1, "kinds": ["residual"], "noise": 0.1])
        XCTAssertEqual(r.status, 200, r.text)
        let trace = try XCTUnwrap(try r.json()["trace"] as? [String: Any])
        XCTAssertEqual(trace["subject_range"] as? [Int], direct.subjectRange)
        XCTAssertEqual(trace["answer_id"] as? Int, Int(direct.answerId))
        let grid = try XCTUnwrap((trace["grids"] as? [[String: Any]])?.first?["scores"] as? [[NSNumber]])
        XCTAssertEqual(grid.count, direct.tokenIds.count)
        XCTAssertEqual(grid.map { $0.map(\.floatValue) }, direct.grids[0].scores)

        let badSubject = try await s.post("/v1/trace", ["prompt": "The capital of France is", "subject": "Spain"])
        XCTAssertEqual(badSubject.status, 400)
        XCTAssertEqual(badSubject.errorParam, "subject")
        let tooMany = try await s.post("/v1/trace", ["prompt": "The capital of France is", "subject": "France", "samples": 50])
        XCTAssertEqual(tooMany.status, 400)
        XCTAssertEqual(tooMany.errorParam, "samples")
        try await s.stop()
    }

    // MARK: Access control

    func testEditingNeedsAConfiguredToken() async throws {
        let open = try await TestServer(token: nil)
        let refused = try await open.post("/v1/edits", ["method": "IKE", "requests": [["prompt": "A B", "subject": "A", "target_new": "C"]]])
        XCTAssertEqual(refused.status, 403)
        XCTAssertEqual(refused.errorCode, "no_token_configured")
        XCTAssertTrue(refused.errorMessage?.contains("--token-file") == true && refused.errorMessage?.contains("ENGRAM_SERVER_TOKEN") == true)
        let r2 = try await RawHTTP.request(port: open.port, "DELETE", "/v1/edits/edit-1").status
        XCTAssertEqual(r2, 403)
        // Read-only routes stay open on loopback.
        let r3 = try await open.post("/v1/probe", ["prompt": "Hello", "top_k": 1]).status
        XCTAssertEqual(r3, 200)
        let r4 = try await open.get("/v1/edits").status
        XCTAssertEqual(r4, 200)
        try await open.stop()

        let s = try await TestServer()
        let edit: [String: Any] = ["method": "IKE", "requests": [["prompt": "The Eiffel Tower is in", "subject": "The Eiffel Tower", "target_new": "Rome"]]]
        let missing = try await s.post("/v1/edits", edit)
        XCTAssertEqual(missing.status, 401)
        XCTAssertEqual(missing.errorCode, "missing_token")
        XCTAssertEqual(missing.headers["www-authenticate"], "Bearer")
        let wrong = try await s.post("/v1/edits", edit, headers: ["Authorization": "Bearer not-the-token-at-all"])
        XCTAssertEqual(wrong.status, 401)
        XCTAssertEqual(wrong.errorCode, "invalid_token")
        let r5 = try await s.post("/v1/edits/edit-1/disable", [:] as [String: Any]).status
        XCTAssertEqual(r5, 401)
        let ok = try await s.post("/v1/edits", edit, headers: s.auth)
        XCTAssertEqual(ok.status, 201, ok.text)
        // A request addressed to another host name (DNS rebinding) is refused.
        let rebound = try await RawHTTP.request(port: s.port, "GET", "/v1/edits", host: "evil.example:\(s.port)")
        XCTAssertEqual(rebound.status, 403)
        XCTAssertEqual(rebound.errorCode, "host_not_allowed")
        let r6 = try await RawHTTP.request(port: s.port, "GET", "/health", host: "localhost:\(s.port)").status
        XCTAssertEqual(r6, 200)
        try await s.stop()
    }

    func testTokenForReadsAndSavedPatchFiles() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("engram-patches-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // An earlier run's patch under the name this run's first edit gets: kept, not replaced.
        let earlier = Data("earlier run".utf8)
        try earlier.write(to: dir.appendingPathComponent("edit-1.patch.safetensors"))
        let s = try await TestServer { c in
            c.requireTokenForReads = true
            c.patchDirectory = dir.path
        }
        let anonymous = try await s.post("/v1/probe", ["prompt": "Hello", "top_k": 1])
        XCTAssertEqual(anonymous.status, 401)
        let listed = try await s.get("/v1/models")
        XCTAssertEqual(listed.status, 401)
        let health = try await s.get("/health")
        XCTAssertEqual(health.status, 200, "liveness stays open")
        let probed = try await s.post("/v1/probe", ["prompt": "Hello", "top_k": 1], headers: s.auth)
        XCTAssertEqual(probed.status, 200)

        let created = try await s.post("/v1/edits", ["method": "IKE", "requests": [["prompt": "The Eiffel Tower is in", "subject": "The Eiffel Tower",
                                                                                      "target_new": "Rome", "case_id": 7]]], headers: s.auth)
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap((try created.json()["edit"] as? [String: Any])?["id"] as? String)
        let one = try await s.get("/v1/edits/\(id)", headers: s.auth)
        XCTAssertEqual(one.status, 200)
        let request = try XCTUnwrap(((try one.json()["edit"] as? [String: Any])?["requests"] as? [[String: Any]])?.first)
        XCTAssertEqual(request["case_id"] as? String, "7")
        XCTAssertEqual(request["target_new"] as? String, "Rome")
        let download = try await s.get("/v1/edits/\(id)/patch", headers: s.auth)
        XCTAssertEqual(id, "edit-1")
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("edit-1.patch.safetensors")), earlier)
        let saved = try Data(contentsOf: dir.appendingPathComponent("edit-1.2.patch.safetensors"))
        XCTAssertEqual(saved, download.body, "the saved file holds the patch bytes the route serves")
        try await s.stop()
    }

    func testLoopbackNamesAndTokenSources() throws {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "LOCALHOST"] {
            XCTAssertTrue(ServerConfiguration.isLoopback(host), host)
        }
        for host in ["0.0.0.0", "192.168.1.10", "127.0.0.300", "example.com", "::", "10.0.0.1", "127.0.0"] {
            XCTAssertFalse(ServerConfiguration.isLoopback(host), host)
        }
        for host in ["127.0.0.1", "0.0.0.0", "::", "[::1]", "fe80::1", "fe80::1%eth0", "localhost", "my-host.example.com",
                     "host.example.", "engram_server", "h1"] {
            XCTAssertNil(ServerConfiguration.hostProblem(host), host)
        }
        XCTAssertEqual(ServerConfiguration.bareHost("[::1]"), "::1", "the listener takes IPv6 without brackets")
        XCTAssertEqual(ServerConfiguration.bareHost("127.0.0.1"), "127.0.0.1")
        for (host, problem) in [("999.1.1.1", "not a valid IPv4 address"), ("127.0.0", "not a valid IPv4 address"),
                                ("1::2::3", "not a valid IPv6 address"), ("", "is empty"), ("bad host", "neither"),
                                ("-x.com", "neither"), ("a..b", "neither"), ("fe80::1%", "not a valid IPv6")] {
            XCTAssertTrue(ServerConfiguration.hostProblem(host)?.contains(problem) == true, "\(host): \(String(describing: ServerConfiguration.hostProblem(host)))")
        }
        XCTAssertNil(try ServerConfiguration.loadToken(file: nil, environment: [:]))
        XCTAssertEqual(try ServerConfiguration.loadToken(file: nil, environment: ["ENGRAM_SERVER_TOKEN": " abcdefghijklmnop\n"]), "abcdefghijklmnop")
        XCTAssertThrowsError(try ServerConfiguration.loadToken(file: nil, environment: ["ENGRAM_SERVER_TOKEN": "short"]))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("engram-token-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "  0123456789abcdef0123  \nsecond line\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ServerConfiguration.loadToken(file: file, environment: ["ENGRAM_SERVER_TOKEN": "ignored-because-a-file-is-given"]),
                       "0123456789abcdef0123")
        try "tiny\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ServerConfiguration.loadToken(file: file, environment: [:]))
        XCTAssertThrowsError(try ServerConfiguration.loadToken(file: file + ".missing", environment: [:]))
    }

    // MARK: Bad input

    func testMalformedBodiesAreRejectedNamingTheField() async throws {
        let s = try await TestServer()
        func check(_ path: String, _ body: String, status: Int = 400, code: String? = nil, param: String? = nil,
                   file: StaticString = #filePath, line: UInt = #line) async throws {
            let r = try await s.postRaw(path, Data(body.utf8), headers: s.auth)
            XCTAssertEqual(r.status, status, "\(body) → \(r.text)", file: file, line: line)
            if let code { XCTAssertEqual(r.errorCode, code, r.text, file: file, line: line) }
            if let param { XCTAssertEqual(r.errorParam, param, r.text, file: file, line: line) }
        }
        try await check("/v1/completions", "{\"prompt\": \"x\",", code: "invalid_json")
        try await check("/v1/completions", "", code: "invalid_json")
        try await check("/v1/completions", "[1, 2]", code: "invalid_json")
        try await check("/v1/completions", "\u{FF}\u{FE}garbage")
        try await check("/v1/completions", String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000))
        try await check("/v1/completions", #"{"prompt": "x", "max_tokenz": 3}"#, code: "unknown_field", param: "max_tokenz")
        try await check("/v1/completions", #"{"prompt": "x", "max_tokens": "ten"}"#, code: "invalid_field", param: "max_tokens")
        try await check("/v1/completions", #"{"prompt": "x", "max_tokens": 2.5}"#, param: "max_tokens")
        try await check("/v1/completions", #"{"prompt": "x", "temperature": true}"#, param: "temperature")
        try await check("/v1/completions", #"{"prompt": "x", "temperature": 9}"#, param: "temperature")
        try await check("/v1/completions", #"{"prompt": 42}"#, param: "prompt")
        try await check("/v1/completions", #"{"prompt": [1, 99999999]}"#, param: "prompt[1]")
        try await check("/v1/completions", #"{"max_tokens": 3}"#, code: "missing_field", param: "prompt")
        try await check("/v1/completions", #"{"prompt": "x", "n": 2.5}"#, code: "invalid_field", param: "n")
        try await check("/v1/completions", #"{"prompt": "x", "best_of": 2}"#, code: "unsupported_value", param: "best_of")
        try await check("/v1/completions", #"{"prompt": "x", "stop": ["a", 1]}"#, param: "stop[1]")
        try await check("/v1/completions", #"{"prompt": "x", "stream_options": {"include_usage": 1}}"#, param: "stream_options.include_usage")
        try await check("/v1/chat/completions", #"{"messages": [{"role": "user", "content": 5}]}"#, param: "messages[0].content")
        try await check("/v1/chat/completions", #"{"messages": [{"role": "robot", "content": "hi"}]}"#, param: "messages[0].role")
        try await check("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi", "mood": "happy"}]}"#, param: "messages[0].mood")
        try await check("/v1/chat/completions", #"{"messages": []}"#, param: "messages")
        try await check("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}], "tools": []}"#, param: "tools")
        try await check("/v1/probe", #"{"prompt": "x", "candidates": "Paris"}"#, param: "candidates")
        try await check("/v1/probe", #"{"prompt": "x", "candidates": [""]}"#, param: "candidates[0]")
        try await check("/v1/probe", #"{"prompt": "x", "top_k": -1}"#, param: "top_k")
        try await check("/v1/probe", #"{"prompt": "x", "compare_unedited": "yes"}"#, param: "compare_unedited")
        try await check("/v1/trace", #"{"prompt": "The capital of France is", "subject": "France", "kinds": ["mlp", "ffn"]}"#, param: "kinds[1]")
        try await check("/v1/edits", #"{"method": "IKE"}"#, code: "missing_field", param: "requests")
        try await check("/v1/edits", #"{"method": "MAGIC", "requests": []}"#, param: "method")
        try await check("/v1/edits", #"{"method": "IKE", "requests": [{"prompt": "A B", "subject": "A"}]}"#, code: "missing_field", param: "requests[0].target_new")
        try await check("/v1/edits", #"{"method": "IKE", "requests": [{"prompt": "A B", "subject": "Z", "target_new": "C"}]}"#, param: "requests[0].subject")
        try await check("/v1/edits", #"{"method": "IKE", "requests": [{"prompt": "A B", "subject": "A", "target_new": "C", "colour": 1}]}"#,
                        code: "unknown_field", param: "requests[0].colour")
        try await check("/v1/edits", #"{"method": "IKE", "requests": [{"prompt": "A B", "subject": "A", "target_new": "C"}], "hyper_parameters": {"k": 99}}"#,
                        param: "hyper_parameters.k")
        try await check("/v1/edits", #"{"method": "IKE", "requests": [{"prompt": "A B", "subject": "A", "target_new": "C"}], "hyper_parameters": {"layers": [5]}}"#,
                        code: "unknown_field", param: "hyper_parameters.layers")
        // A layer inside the declared range but past the model's last layer: refused naming the field.
        try await check("/v1/edits", #"{"method": "ROME", "requests": [{"prompt": "A B", "subject": "A", "target_new": "C"}], "hyper_parameters": {"layer": 1023}}"#,
                        param: "hyper_parameters.layer")
        // The statistics corpus is the shipped one, so asking for more documents than it holds is refused
        // before any statistics or edit work starts.
        let corpusSize = try XCTUnwrap(TextCorpus.shippedDocumentCount)
        try await check("/v1/edits", #"{"method": "MEMIT", "requests": [{"prompt": "A B", "subject": "A", "target_new": "C"}], "hyper_parameters": {"mom2_n_samples": \#(corpusSize + 1)}}"#,
                        param: "hyper_parameters.mom2_n_samples")
        try await check("/v1/edits", "not a patch file", code: "invalid_json")
        let upload = try await s.postRaw("/v1/edits", Data("not a patch file".utf8), headers: s.auth.merging(["Content-Type": "application/octet-stream"]) { $1 })
        XCTAssertEqual(upload.status, 400)
        XCTAssertEqual(upload.errorCode, "invalid_patch")
        XCTAssertTrue(upload.text.contains("patch file: request body: header length") && !upload.text.contains("request body: request body"), upload.text)
        let r7 = try await s.post("/v1/edits/edit-77/enable", [:] as [String: Any], headers: s.auth).status
        XCTAssertEqual(r7, 404)
        let r8 = try await s.delete("/v1/edits/edit-77").status
        XCTAssertEqual(r8, 404)
        let r9 = try await s.get("/v1/edits/edit-77/patch").status
        XCTAssertEqual(r9, 404)
        // Still serving.
        let r10 = try await s.get("/health").status
        XCTAssertEqual(r10, 200)
        try await s.stop()
    }

    // MARK: Limits

    func testLimitsAreEnforcedWithClearErrors() async throws {
        let s = try await TestServer { c in
            c.limits.maxBodyBytes = 2048
            c.limits.maxPromptTokens = 16
            c.limits.maxTokens = 64
        }
        let big = try await s.post("/v1/completions", ["prompt": String(repeating: "word ", count: 1000)])
        XCTAssertEqual(big.status, 413)
        XCTAssertEqual(big.errorCode, "body_too_large")
        // A Content-Length over the limit is refused before the body is read.
        let announced = try await RawHTTP.send(port: s.port, raw: Data("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{".utf8))
        XCTAssertEqual(announced.status, 413)
        // Chunked bodies are counted as they arrive.
        var chunked = Data("POST /v1/probe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        for _ in 0..<4 { chunked.append(Data("400\r\n".utf8) + Data(repeating: 0x20, count: 1024) + Data("\r\n".utf8)) }
        chunked.append(Data("0\r\n\r\n".utf8))
        let r11 = try await RawHTTP.send(port: s.port, raw: chunked).status
        XCTAssertEqual(r11, 413)

        let long = try await s.post("/v1/completions", ["prompt": String(repeating: "one two three ", count: 20), "max_tokens": 1])
        XCTAssertEqual(long.status, 400)
        XCTAssertEqual(long.errorCode, "context_length_exceeded")
        XCTAssertTrue(long.errorMessage?.contains("--max-prompt-tokens") == true)
        let streamedLong = try await s.post("/v1/completions", ["prompt": String(repeating: "one two three ", count: 20), "stream": true])
        XCTAssertEqual(streamedLong.status, 400, "errors found before the first token are plain responses, not streams")
        let tooMany = try await s.post("/v1/completions", ["prompt": "Hi", "max_tokens": 65])
        XCTAssertEqual(tooMany.status, 400)
        XCTAssertEqual(tooMany.errorParam, "max_tokens")
        let tooManyChat = try await s.post("/v1/chat/completions", ["messages": [["role": "user", "content": "Hi"]], "max_completion_tokens": 1000])
        XCTAssertEqual(tooManyChat.errorParam, "max_completion_tokens")
        try await s.stop()
    }

    func testQueueDepthAndTimeLimit() async throws {
        // A time limit far below a long generation: whole requests get 408, streams end with an error event.
        let slow = try await TestServer { c in
            c.limits.timeoutSeconds = 0.4
            c.limits.maxTokens = 2000
        }
        let timedOut = try await slow.post("/v1/completions", ["prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0])
        XCTAssertEqual(timedOut.status, 408)
        XCTAssertEqual(timedOut.errorCode, "request_timeout")
        let stream = try await slow.post("/v1/completions", ["prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0, "stream": true])
        XCTAssertEqual(stream.status, 200)
        XCTAssertTrue(stream.events.contains { $0.contains("\"request_timeout\"") }, stream.text)
        XCTAssertEqual(stream.events.last, "[DONE]")
        try await slow.stop()

        // One job may wait: of five requests sent while the worker is busy (held here by a job of the
        // test's own), one waits its turn and the others are turned away with 429 at once.
        let s = try await TestServer { c in c.limits.queueDepth = 1 }
        let gate = DispatchSemaphore(value: 0)
        let holder = Task { try await s.server.worker.run(deadline: nil, timeoutSeconds: 60) { _ in gate.wait() } }
        try await s.untilDecoding()
        let answered = FloatBuffer(count: 1)
        let lock = NSLock()
        let requests = (0..<5).map { _ in
            Task { () async throws -> Int in
                let status = try await s.post("/v1/completions", ["prompt": "Once upon a time", "max_tokens": 24, "temperature": 0]).status
                lock.withLock { answered[0] += 1 }
                return status
            }
        }
        let end = ContinuousClock.now + .seconds(30)
        while lock.withLock({ answered[0] }) < 4 && ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(5)) }
        gate.signal()
        try await holder.value
        var statuses: [Int] = []
        for request in requests { statuses.append(try await request.value) }
        XCTAssertEqual(statuses.sorted(), [200, 429, 429, 429, 429])
        let busy = try await s.post("/v1/completions", ["prompt": "Hi", "max_tokens": 1])
        XCTAssertEqual(busy.status, 200, "the queue drains")
        try await s.stop()
    }

    func testAClientThatLeavesIsNoLongerServed() async throws {
        let s = try await TestServer { c in
            c.limits.queueDepth = 3
            c.limits.maxTokens = 4000
            c.limits.maxPromptTokens = 4096
        }
        func cancelledCompletions() -> Int {
            s.logs.all.filter { $0.message == "request" && $0.metadata["path"]?.description == "/v1/completions"
                && $0.metadata["error"]?.description == "client_left" && $0.metadata["status"]?.description == "499" }.count
        }
        // Greedy counting goes on for thousands of tokens: the completion ends only if it is stopped.
        let counting: [String: Any] = ["prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4000, "temperature": 0]

        // A whole completion, a probe and a trace waiting behind another job leave the queue when their
        // clients close the connection, and their places are free at once (the queue holds three jobs).
        let gate = DispatchSemaphore(value: 0)
        let holder = Task { try await s.server.worker.run(deadline: nil, timeoutSeconds: 60) { _ in gate.wait() } }
        try await s.untilDecoding()
        var waiting: [Int32] = []
        for (path, body) in [("/v1/completions", counting), ("/v1/probe", ["prompt": "The capital of France is", "candidates": ["Paris"]]),
                             ("/v1/trace", ["prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower"])] as [(String, [String: Any])] {
            waiting.append(try RawHTTP.sendAndLeaveOpen(port: s.port, "POST", path, body))
            try await s.until("\(path) to be queued") { s.server.worker.load.waiting == waiting.count }
        }
        for fd in waiting { close(fd) }
        try await s.until("the requests to leave the queue while the worker is busy") { s.server.worker.load.waiting == 0 }
        let next = (0..<3).map { _ in Task { try await s.post("/v1/completions", ["prompt": "Hi", "max_tokens": 1]) } }
        try await s.until("the next requests to be queued") { s.server.worker.load.waiting == 3 }
        gate.signal()
        try await holder.value
        for request in next {
            let status = try await request.value.status
            XCTAssertEqual(status, 200, "the places the departed clients held went to the next requests")
        }
        for path in ["/v1/probe", "/v1/trace"] {
            let logged = s.logs.all.contains { $0.message == "request" && $0.metadata["path"]?.description == path && $0.metadata["status"]?.description == "499" }
            XCTAssertTrue(logged, "\(path) of a client that left is logged 499")
        }

        // A whole completion being decoded stops when its client leaves, rather than running to its end.
        try await s.untilIdle()
        let decoding = try RawHTTP.sendAndLeaveOpen(port: s.port, "POST", "/v1/completions", counting)
        try await s.untilDecoding()
        close(decoding)
        try await s.until("the worker to stop decoding for a client that left") { !s.server.worker.load.running }
        try await s.until("two cancelled completions in the log") { cancelledCompletions() == 2 }

        // A keep-alive connection still carries one request after another (the watch stays quiet).
        let fd = try RawHTTP.sendAndLeaveOpen(port: s.port, "POST", "/v1/completions", ["prompt": "Hi", "max_tokens": 2, "temperature": 0])
        defer { close(fd) }
        for _ in 0..<2 {
            let answer = try RawHTTP.readResponse(fd)
            XCTAssertEqual(answer.status, 200, answer.text)
            RawHTTP.sendAll(fd, try RawHTTP.requestBytes(port: s.port, "POST", "/v1/completions", ["prompt": "Hi", "max_tokens": 2, "temperature": 0]))
        }
        XCTAssertEqual(try RawHTTP.readResponse(fd).status, 200)

        // So does a stream still in its prompt (about 3,000 tokens, put through 128 at a time), before any
        // token has been written to it: the rest of its prompt is not run.
        try await s.untilIdle()
        let longPrompt = String(repeating: "one two three four ", count: 750)
        let promptLength = s.server.state.tokenizer.encode(longPrompt).count
        let promptTokensBefore = s.server.worker.promptTokensRun
        let streaming = try RawHTTP.sendAndLeaveOpen(port: s.port, "POST", "/v1/completions",
                                                      ["prompt": longPrompt, "max_tokens": 4000, "temperature": 0, "stream": true])
        try await s.untilDecoding()
        close(streaming)
        try await s.until("the worker to drop the prompt of a stream whose client left") { !s.server.worker.load.running }
        let promptTokensRun = s.server.worker.promptTokensRun - promptTokensBefore
        XCTAssertGreaterThan(promptLength, 2500)
        XCTAssertLessThan(promptTokensRun, promptLength / 2, "the prompt of a client that left stops being run")
        try await s.stop()
    }
}
