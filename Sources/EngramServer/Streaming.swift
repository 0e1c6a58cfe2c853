import Engram
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Resumes a continuation at most once, from whichever thread gets there first.
final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    /// Runs `body` if nothing ran before; returns whether it ran.
    @discardableResult
    func run(_ body: () -> Void) -> Bool {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        if first { body() }
        return first
    }
}

/// Outcomes gathered on the worker thread as sequences end.
private final class Collected: @unchecked Sendable {
    var outcomes: [CompletionOutcome] = []
}

extension EngramServer {
    /// Completions and chat completions, whole or streamed as server-sent events in OpenAI's chunk format.
    func complete(_ request: CompletionRequest, client: ServerContext) async throws -> Response {
        let chat = request.kind == .chat
        let id = ResponseID.make(chat ? "chatcmpl" : "cmpl")
        let created = Int(Date().timeIntervalSince1970)
        let model = configuration.modelID
        let limits = configuration.limits

        guard request.stream else {
            let (outcomes, version) = try await onWorkerGenerating(client: client) { [state] control in
                let collected = Collected()
                let version = state.version
                let sequences = try state.startGeneration(request, limits: limits, control: control) { event in
                    if case let .finished(o) = event { collected.outcomes.append(o) }
                }
                return (sequences, { (collected.outcomes.sorted { $0.index < $1.index }, version) })
            }
            let fingerprint = "engram-state-\(version)"
            if chat {
                let choices = outcomes.map {
                    ChatBody.Choice(index: $0.index, message: .init(role: "assistant", content: $0.text), finishReason: $0.finishReason,
                                    logprobs: $0.scored.map { ChatBody.Logprobs($0, tokenizer: state.tokenizer) })
                }
                return JSONOutput.response(ChatBody(id: id, object: "chat.completion", created: created, model: model, systemFingerprint: fingerprint,
                                                    choices: choices, usage: Usage(outcomes)))
            }
            let choices = outcomes.map {
                CompletionBody.Choice(text: $0.text, index: $0.index, finishReason: $0.finishReason,
                                      logprobs: $0.scored.map { [text = $0.text] in CompletionBody.Logprobs($0, text: text, tokenizer: state.tokenizer) })
            }
            return JSONOutput.response(CompletionBody(id: id, created: created, model: model, systemFingerprint: fingerprint,
                                                      choices: choices, usage: Usage(outcomes)))
        }

        // Streaming. The job is queued now and the handler waits until the prompt is encoded and checked,
        // so that a full queue, a timeout while waiting or a prompt over the limit is a plain 4xx response.
        // After that the events flow to the client as the model produces them.
        enum Item: Sendable {
            case event(CompletionEvent)
            case failed(APIError)
        }
        let control = ModelWorker.JobControl(deadline: requestDeadline())
        let (events, sink) = AsyncStream<Item>.makeStream()
        sink.onTermination = { _ in control.cancel() }
        let version: Int = try await withCheckedThrowingContinuation { started in
            let once = Once()
            Task { [state] in
                do {
                    try await onWorkerGenerating(control: control, client: client) { control in
                        let sequences = try state.startGeneration(request, limits: limits, control: control,
                                                                  prepared: { once.run { started.resume(returning: state.version) } }) { event in sink.yield(.event(event)) }
                        return (sequences, {})
                    }
                } catch {
                    let apiError = error is CancellationError && control.isPastDeadline ? APIError.timeout(seconds: limits.timeoutSeconds) : APIError.engram(error)
                    if !once.run({ started.resume(throwing: apiError) }) { sink.yield(.failed(apiError)) }
                }
                sink.finish()
            }
        }

        let fingerprint = "engram-state-\(version)"
        @Sendable func chunk(_ choices: [ChatBody.Choice], usage: Usage? = nil) -> ByteBuffer {
            Self.sse(ChatBody(id: id, object: "chat.completion.chunk", created: created, model: model, systemFingerprint: fingerprint, choices: choices, usage: usage))
        }
        @Sendable func chunk(_ choices: [CompletionBody.Choice], usage: Usage? = nil) -> ByteBuffer {
            Self.sse(CompletionBody(id: id, created: created, model: model, systemFingerprint: fingerprint, choices: choices, usage: usage))
        }
        let includeUsage = request.includeUsage
        let scoring = request.options.logprobs != nil
        let tokenizer = state.tokenizer
        let body = ResponseBody { writer in
            var outcomes: [CompletionOutcome] = []
            var offsets: [Int: CompletionBody.TextOffsets] = [:] // per choice
            do {
                if chat {
                    try await writer.write(chunk((0..<request.n).map { ChatBody.Choice(index: $0, delta: .init(role: "assistant", content: "")) }))
                }
                for await item in events {
                    switch item {
                    case let .event(.text(index, piece)):
                        // Each chunk carries the scores of the tokens whose text begins in it.
                        let scored = scoring ? piece.logprobs.map { ($0.token, $0 as TokenLogprob?) } : nil
                        if chat {
                            let logprobs = scored.map { ChatBody.Logprobs($0, tokenizer: tokenizer) }
                            // (The end token's entry alone: not part of a chat answer.)
                            if piece.text.isEmpty && logprobs?.content.isEmpty != false { continue }
                            try await writer.write(chunk([ChatBody.Choice(index: index, delta: .init(content: piece.text), logprobs: logprobs)]))
                        } else {
                            offsets[index, default: CompletionBody.TextOffsets()].append(piece.text)
                            let logprobs = scored.map { CompletionBody.Logprobs($0, tokenizer: tokenizer, offsets: &offsets[index, default: CompletionBody.TextOffsets()]) }
                            try await writer.write(chunk([CompletionBody.Choice(text: piece.text, index: index, logprobs: logprobs)]))
                        }
                    case let .event(.finished(outcome)):
                        outcomes.append(outcome)
                        try await writer.write(chat ? chunk([ChatBody.Choice(index: outcome.index, delta: .init(), finishReason: outcome.finishReason)])
                                                    : chunk([CompletionBody.Choice(text: "", index: outcome.index, finishReason: outcome.finishReason)]))
                    case let .failed(error):
                        try await writer.write(Self.sse(APIError.Body(error: .init(message: error.message, type: error.type, param: error.param, code: error.code))))
                    }
                }
                if includeUsage {
                    try await writer.write(chat ? chunk([ChatBody.Choice](), usage: Usage(outcomes)) : chunk([CompletionBody.Choice](), usage: Usage(outcomes)))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            } catch {
                // The client went away: stop generating for it.
                control.cancel()
                throw error
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    private static func sse<T: Encodable>(_ value: T) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(JSONOutput.data(value))
        buffer.writeString("\n\n")
        return buffer
    }
}
