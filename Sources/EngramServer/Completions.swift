import Engram
import Foundation

/// A parsed `/v1/completions` or `/v1/chat/completions` request.
struct CompletionRequest {
    enum Prompt {
        case text(String)
        case tokens([Int32])
    }

    enum Kind { case completion, chat }

    var kind: Kind
    /// Completions: one generation per prompt. Chat: empty.
    var prompts: [Prompt] = []
    var messages: [ChatMessage] = []
    var options: GenerationOptions
    var stream: Bool
    var includeUsage: Bool
    /// Completions: answer with the prompt before the completion (its tokens scored too, with `logprobs`).
    var echo = false
    /// Choices per prompt (OpenAI's `n`): choice j is sampled with seed + j, so n = 1 is the plain request.
    var n = 1

    /// OpenAI parameters accepted only at their neutral value (the server cannot honour others).
    private static func requireNeutral(_ r: FieldReader) throws {
        for key in ["presence_penalty", "frequency_penalty"] {
            if let v = try r.double(key, in: -2...2), v != 0 { throw APIError.unsupported(key, "penalties are not supported (only 0)") }
        }
        r.ignore("user", "service_tier", "store", "metadata")
    }

    private static func sampling(_ r: FieldReader, limits: ServerLimits, defaultMaxTokens: Int, vocab: Int) throws -> (GenerationOptions, Bool, Bool) {
        var maxTokens = try r.int("max_tokens", in: 0...limits.maxTokens)
        if let m = try r.int("max_completion_tokens", in: 0...limits.maxTokens) { maxTokens = m }
        let temperature = try r.double("temperature", in: 0...2) ?? 1
        let topP = try r.double("top_p", in: 0...1) ?? 1
        guard topP > 0 else { throw APIError.invalidField("top_p", "must be greater than 0") }
        let topK = try r.int("top_k", in: 0...vocab) ?? 0
        let seed = try r.uint64("seed") ?? UInt64.random(in: 0...UInt64.max)
        let stop = try r.strings("stop", maxCount: 4) ?? []
        if let i = stop.firstIndex(where: \.isEmpty) { throw APIError.invalidField("stop[\(i)]", "must not be empty") }
        let stream = try r.bool("stream") ?? false
        var includeUsage = false
        if let so = try r.object("stream_options") {
            includeUsage = try so.bool("include_usage") ?? false
            try so.finish()
        }
        var options = GenerationOptions(maxTokens: maxTokens ?? defaultMaxTokens,
                                        sampling: SamplingParameters(temperature: Float(temperature), topK: topK, topP: Float(topP), seed: seed),
                                        stop: stop)
        if let bias = try r.object("logit_bias") {
            // OpenAI's map of token id (as a string) to a bias in [-100, 100], at most 300 entries.
            guard bias.keys.count <= 300 else { throw APIError.invalidField("logit_bias", "at most 300 tokens, got \(bias.keys.count)") }
            for key in bias.keys {
                guard let id = Int32(key), id >= 0, Int(id) < vocab else {
                    throw APIError.invalidField(bias.fieldPath(key), "the key must be a token id in 0..<\(vocab)")
                }
                if let b = try bias.double(key, in: -100...100) { options.logitBias[id] = Float(b) }
            }
        }
        return (options, stream, includeUsage)
    }

    static func completion(_ data: Data, limits: ServerLimits, vocab: Int) throws -> CompletionRequest {
        let r = try FieldReader.body(data)
        _ = try r.string("model")
        guard let promptValue = r.value("prompt") else { throw APIError.missingField("prompt") }
        let prompts = try parsePrompts(promptValue, vocab: vocab, maxPrompts: limits.maxPromptsPerRequest)
        let echo = try r.bool("echo") ?? false
        let logprobs = try r.int("logprobs", in: 0...20)
        if let bestOf = try r.int("best_of", in: 1...Int.max), bestOf != 1 { throw APIError.unsupported("best_of", "only best_of = 1 is supported") }
        if let suffix = try r.string("suffix"), !suffix.isEmpty { throw APIError.unsupported("suffix", "suffix is not supported") }
        try requireNeutral(r)
        var (options, stream, includeUsage) = try sampling(r, limits: limits, defaultMaxTokens: min(16, limits.maxTokens), vocab: vocab)
        let n = try choicesPerPrompt(r, prompts: prompts.count, limits: limits)
        try r.finish()
        if stream && echo { throw APIError.unsupported("echo", "echo is returned with whole answers only (\"stream\": false)") }
        options.logprobs = logprobs
        options.promptLogprobs = echo
        return CompletionRequest(kind: .completion, prompts: prompts, options: options, stream: stream, includeUsage: includeUsage, echo: echo, n: n)
    }

    static func chat(_ data: Data, limits: ServerLimits, vocab: Int) throws -> CompletionRequest {
        let r = try FieldReader.body(data)
        _ = try r.string("model")
        guard let items = try r.array("messages", maxCount: 1000) else { throw APIError.missingField("messages") }
        guard !items.isEmpty else { throw APIError.invalidField("messages", "must hold at least one message") }
        let messages = try items.enumerated().map { i, item in try parseMessage(item, path: "messages[\(i)]") }
        let logprobs = try r.bool("logprobs") ?? false
        let topLogprobs = try r.int("top_logprobs", in: 0...20)
        if topLogprobs != nil && !logprobs { throw APIError.invalidField("top_logprobs", "needs \"logprobs\": true") }
        if let format = try r.object("response_format") {
            let type = try format.requiredString("type")
            guard type == "text" else { throw APIError.unsupported("response_format.type", "only \"text\" is supported") }
            try format.finish()
        }
        for key in ["tools", "tool_choice", "functions", "function_call"] where r.has(key) {
            throw APIError.unsupported(key, "tool calling is not supported")
        }
        r.ignore("parallel_tool_calls")
        try requireNeutral(r)
        var (options, stream, includeUsage) = try sampling(r, limits: limits, defaultMaxTokens: limits.maxTokens, vocab: vocab)
        let n = try choicesPerPrompt(r, prompts: 1, limits: limits)
        try r.finish()
        options.logprobs = logprobs ? topLogprobs ?? 0 : nil
        options.isReply = true
        return CompletionRequest(kind: .chat, messages: messages, options: options, stream: stream, includeUsage: includeUsage, n: n)
    }

    /// `n`, bounded together with the prompts by the sequences one request may start (`maxPromptsPerRequest`).
    private static func choicesPerPrompt(_ r: FieldReader, prompts: Int, limits: ServerLimits) throws -> Int {
        let n = try r.int("n", in: 1...limits.maxPromptsPerRequest) ?? 1
        guard n * prompts <= limits.maxPromptsPerRequest else {
            throw APIError.invalidField("n", "\(prompts) prompts × n = \(n) is \(n * prompts) choices, more than the limit of \(limits.maxPromptsPerRequest) per request")
        }
        return n
    }

    /// A string, an array of strings, an array of token ids, or an array of such arrays.
    static func parsePrompts(_ value: JSONInput, vocab: Int, maxPrompts: Int) throws -> [Prompt] {
        func tokens(_ items: [JSONInput], path: String) throws -> [Int32] {
            try items.enumerated().map { i, item in
                guard case let .int(t) = item, t >= 0, t < vocab else {
                    let got: String
                    if case let .int(t) = item { got = "\(t)" } else { got = item.kind }
                    throw APIError.invalidField("\(path)[\(i)]", "expected a token id in 0..<\(vocab), got \(got)")
                }
                return Int32(t)
            }
        }
        switch value {
        case let .string(s): return [.text(s)]
        case let .array(items):
            guard !items.isEmpty else { throw APIError.invalidField("prompt", "must not be an empty array") }
            if case .int = items[0] { return [.tokens(try tokens(items, path: "prompt"))] }
            guard items.count <= maxPrompts else { throw APIError.invalidField("prompt", "at most \(maxPrompts) prompts per request, got \(items.count)") }
            return try items.enumerated().map { i, item in
                switch item {
                case let .string(s): return .text(s)
                case let .array(ids): return .tokens(try tokens(ids, path: "prompt[\(i)]"))
                default: throw APIError.invalidField("prompt[\(i)]", "expected a string or an array of token ids, got \(item.kind)")
                }
            }
        default:
            throw APIError.invalidField("prompt", "expected a string, an array of strings or token ids, got \(value.kind)")
        }
    }

    static func parseMessage(_ value: JSONInput, path: String) throws -> ChatMessage {
        let m = try FieldReader(value, path: path)
        let role = try m.requiredString("role")
        guard ["system", "user", "assistant", "developer"].contains(role) else {
            throw APIError.invalidField(m.fieldPath("role"), "expected system, developer, user or assistant, got '\(role)'")
        }
        var content = ""
        switch m.value("content") {
        case nil: throw APIError.missingField(m.fieldPath("content"))
        case let .string(s)?: content = s
        case let .array(parts)?:
            for (i, part) in parts.enumerated() {
                let p = try FieldReader(part, path: "\(m.fieldPath("content"))[\(i)]")
                let type = try p.requiredString("type")
                guard type == "text" else { throw APIError.unsupported(p.fieldPath("type"), "only text parts are supported, got '\(type)'") }
                content += try p.requiredString("text", nonEmpty: false)
                try p.finish()
            }
        case let other?: throw APIError.invalidField(m.fieldPath("content"), "expected a string or an array of text parts, got \(other.kind)")
        }
        m.ignore("name")
        try m.finish()
        return ChatMessage(role: role == "developer" ? "system" : role, content: content)
    }
}

// MARK: - Running

/// One generation's outcome, as the wire types need it.
struct CompletionOutcome: Sendable {
    var index: Int
    var text: String
    var finishReason: String
    var promptTokens: Int
    var completionTokens: Int
    /// With `logprobs`: the answer's tokens (the echoed prompt's first) and their scores; nil for the
    /// first token of a prompt, which nothing precedes.
    var scored: [(token: Int32, logprob: TokenLogprob?)]? = nil
}

/// Streamed pieces of a generation, in order.
enum CompletionEvent: Sendable {
    case text(index: Int, StreamedText)
    case finished(CompletionOutcome)
}

extension ModelState {
    /// The token ids of one prompt, with the prompt-side edits in force, and where the client's own
    /// prompt starts among them (after the rendered facts; for a text prompt, after the tokens it shares
    /// with the facts alone, since its first word may join the last marker's token).
    func encode(_ prompt: CompletionRequest.Prompt, limit: Int, param: String) throws -> (ids: [Int32], ownFrom: Int, startsText: Bool) {
        var ids: [Int32]
        var ownFrom = 0
        let prefix = context == nil ? [] : tokenizer.encode(render(""), addSpecial: true)
        switch prompt {
        case let .text(text):
            ids = tokenizer.encode(render(text), addSpecial: true)
            if !prefix.isEmpty { ownFrom = zip(prefix, ids).prefix { $0 == $1 }.count }
            if ownFrom == 0, tokenizer.addsBOS, ids.first == tokenizer.bos { ownFrom = 1 } // the BOS the server added
        case let .tokens(t):
            ids = prefix + t
            ownFrom = prefix.count
        }
        try checkPromptLength(ids.count, limit: limit, param: param)
        return (ids, ownFrom, prefix.isEmpty)
    }

    /// A chat rendered in the model's template; prompt-side edits are put into the last user message.
    func encodeChat(_ messages: [ChatMessage], limit: Int) throws -> [Int32] {
        var messages = messages
        if let last = messages.lastIndex(where: { $0.role == "user" }) {
            messages[last].content = render(messages[last].content)
        }
        let text = tokenizer.renderChat(messages, addGenerationPrompt: true)
        let ids = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
        try checkPromptLength(ids.count, limit: limit, param: "messages")
        return ids
    }

    func checkPromptLength(_ count: Int, limit: Int, param: String) throws {
        guard count > 0 else { throw APIError.invalidField(param, "the prompt has no tokens") }
        guard count <= limit else {
            throw APIError(.badRequest, "the prompt has \(count) tokens, more than the limit of \(limit) (server option --max-prompt-tokens)",
                           param: param, code: "context_length_exceeded")
        }
        // Otherwise a model with a shorter context than the limit fails inside the pass, as a 500.
        guard count <= model.config.contextLength else {
            throw APIError(.badRequest, "the prompt has \(count) tokens, more than the model's context of \(model.config.contextLength)",
                           param: param, code: "context_length_exceeded")
        }
    }

    /// Encodes the request's prompts into one sequence per prompt, for the worker to prefill and decode
    /// together with those of other requests (`ModelWorker.generate`). Text is reported as it becomes
    /// final and each sequence's outcome when it ends (the sequences of one request interleave).
    func startGeneration(_ request: CompletionRequest, limits: ServerLimits, control: ModelWorker.JobControl,
                         prepared: (() -> Void)? = nil, onEvent: @escaping (CompletionEvent) -> Void) throws -> [DecodingSequence] {
        let inputs: [(ids: [Int32], ownFrom: Int, startsText: Bool)]
        switch request.kind {
        case .chat: inputs = [(try encodeChat(request.messages, limit: limits.maxPromptTokens), 0, true)]
        case .completion:
            inputs = try request.prompts.enumerated().map { i, p in
                try encode(p, limit: limits.maxPromptTokens, param: request.prompts.count == 1 ? "prompt" : "prompt[\(i)]")
            }
        }
        prepared?()
        let generator = Generator(model: model, tokenizer: tokenizer)
        // Prompt-major, as OpenAI orders choices: prompt p's choice j has index p * n + j.
        let choices = inputs.flatMap { input in (0..<request.n).map { j in (input: input, j: j) } }
        return try choices.enumerated().map { i, choice in
            let input = choice.input
            let ids = input.ids
            var options = request.options
            options.sampling.seed &+= UInt64(choice.j)
            options.isCancelled = { control.isCancelled }
            let sequence = try DecodingSequence(generator: generator, prompt: ids, options: options,
                                                onText: { piece in onEvent(.text(index: i, piece)) })
            sequence.onFinish = { [tokenizer] result in
                guard case let .success(r) = result else { return }
                // A prompt's tokens are counted once, with its first choice (OpenAI's usage).
                var outcome = CompletionOutcome(index: i, text: r.text, finishReason: r.finishReason == .length ? "length" : "stop",
                                                promptTokens: choice.j == 0 ? ids.count : 0, completionTokens: r.tokens.count)
                // Echo: the client's own prompt, as its tokens decode (the facts of prompt-side edits left out;
                // decoded as the start of a text when it is one, where SentencePiece drops a space).
                let echoed = request.echo ? Array(ids[input.ownFrom...]) : []
                if request.echo {
                    outcome.text = (input.startsText ? tokenizer.decode(echoed) : tokenizer.continuation(echoed)) + r.text
                }
                if options.logprobs != nil {
                    // promptLogprobs[j] scores prompt token j + 1.
                    let prompt = echoed.enumerated().map { j, token in
                        (token, input.ownFrom + j == 0 ? nil : r.promptLogprobs[input.ownFrom + j - 1] as TokenLogprob?)
                    }
                    // Generated: every token scored, the end-of-generation token that ended it included;
                    // after a stop string only those that begin before the cut.
                    outcome.scored = prompt + r.logprobs.map { ($0.token, $0 as TokenLogprob?) }
                }
                onEvent(.finished(outcome))
            }
            return sequence
        }
    }
}

// MARK: - Wire types (OpenAI)

struct Usage: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int

    init(_ outcomes: [CompletionOutcome]) {
        promptTokens = outcomes.reduce(0) { $0 + $1.promptTokens }
        completionTokens = outcomes.reduce(0) { $0 + $1.completionTokens }
        totalTokens = promptTokens + completionTokens
    }
}

/// `text_completion` objects, whole or as stream chunks (where `finish_reason` is null until the end).
struct CompletionBody: Encodable {
    struct Choice: Encodable {
        var text: String
        var index: Int
        var finishReason: String?
        var logprobs: Logprobs? = nil

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(logprobs, forKey: .logprobs) // null when not asked for
            try c.encode(finishReason, forKey: .finishReason)
        }

        enum CodingKeys: String, CodingKey { case text, index, logprobs, finishReason }
    }

    /// `text_offset`s: where each token's text starts in the answer, in Unicode scalars. Each token is found
    /// at the running position (without its leading space where decoding dropped it); a token that is not
    /// there as written (part of a character, `<unk>`, the end token) takes the position and moves it by
    /// the scalars it starts. Fed the text as it grows and the tokens in order, so that a stream gets the
    /// whole answer's offsets: a token's offset needs only the tokens before it, whose text is all there by
    /// the time it is listed (a token is listed with the piece its text begins in).
    struct TextOffsets {
        private var scalars: [Unicode.Scalar] = []
        private var at = 0
        /// The last token listed: where it moves the position is known once the next one comes.
        private var pending: (string: String, bytes: [UInt8])?

        mutating func append(_ text: String) { scalars += text.unicodeScalars }

        mutating func offset(of string: String, bytes: [UInt8]) -> Int {
            if let p = pending { advance(past: p.string, bytes: p.bytes) }
            pending = (string, bytes)
            return min(at, scalars.count)
        }

        private mutating func advance(past string: String, bytes: [UInt8]) {
            func found(_ piece: String.UnicodeScalarView.SubSequence) -> Bool {
                !piece.isEmpty && at + piece.count <= scalars.count && scalars[at..<(at + piece.count)].elementsEqual(piece)
            }
            let piece = string.unicodeScalars[...]
            if found(piece) {
                at += piece.count
            } else if piece.first == " ", piece.count == 1 || found(piece.dropFirst()) { // a dropped space
                at += piece.count - 1
            } else {
                at += scalarsStarted(bytes)
            }
        }
    }

    /// The legacy completions format: parallel lists over the answer's tokens (`TextOffsets` for
    /// `text_offset`).
    struct Logprobs: Encodable {
        var tokens: [String] = []
        var tokenLogprobs: [Float?] = []
        var topLogprobs: [[String: Float]?] = []
        var textOffset: [Int] = []

        /// A whole answer's lists.
        init(_ scored: [(token: Int32, logprob: TokenLogprob?)], text: String, tokenizer: Tokenizer) {
            var offsets = TextOffsets()
            offsets.append(text)
            self.init(scored, tokenizer: tokenizer, offsets: &offsets)
        }

        /// The lists of the tokens of one streamed piece, whose text `offsets` has been given.
        init(_ scored: [(token: Int32, logprob: TokenLogprob?)], tokenizer: Tokenizer, offsets: inout TextOffsets) {
            for (token, score) in scored {
                let bytes = tokenizer.bytes(of: token)
                let string = tokenString(bytes)
                tokens.append(string)
                textOffset.append(offsets.offset(of: string, bytes: bytes))
                tokenLogprobs.append(score?.logprob)
                // The likeliest tokens, and the chosen one if it is not among them (as OpenAI lists them, also
                // with `logprobs: 0`);
                // alternatives with the same text keep the likelier one (listed first).
                topLogprobs.append(score.map { s in
                    var entries = s.top.map { (tokenString(tokenizer.bytes(of: $0.token)), $0.logprob) }
                    if !s.top.contains(where: { $0.token == token }) { entries.append((string, s.logprob)) }
                    return Dictionary(entries) { first, _ in first }
                })
            }
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var systemFingerprint: String
    var choices: [Choice]
    var usage: Usage?
}

/// `chat.completion` and `chat.completion.chunk` objects.
struct ChatBody: Encodable {
    struct Message: Encodable {
        var role: String?
        var content: String?
    }

    struct Choice: Encodable {
        var index: Int
        var message: Message?
        var delta: Message?
        var finishReason: String?
        var logprobs: Logprobs? = nil

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encodeIfPresent(message, forKey: .message)
            try c.encodeIfPresent(delta, forKey: .delta)
            try c.encode(logprobs, forKey: .logprobs) // null when not asked for
            try c.encode(finishReason, forKey: .finishReason)
        }

        enum CodingKeys: String, CodingKey { case index, message, delta, logprobs, finishReason }
    }

    /// The chat format: one entry per generated token, with its bytes and the most likely alternatives.
    struct Logprobs: Encodable {
        struct Alternative: Encodable {
            var token: String
            var logprob: Float
            var bytes: [UInt8]
        }

        struct Entry: Encodable {
            var token: String
            var logprob: Float
            var bytes: [UInt8]
            var topLogprobs: [Alternative]
        }

        var content: [Entry]

        init(_ scored: [(token: Int32, logprob: TokenLogprob?)], tokenizer: Tokenizer) {
            func alternative(_ token: Int32, _ logprob: Float) -> Alternative {
                let bytes = tokenizer.bytes(of: token)
                return Alternative(token: tokenString(bytes), logprob: logprob, bytes: bytes)
            }
            // The end-of-generation token that ended the answer is not part of the message.
            content = scored.compactMap { token, score in
                guard let score, !tokenizer.isEndOfGeneration(token) else { return nil }
                let own = alternative(token, score.logprob)
                return Entry(token: own.token, logprob: own.logprob, bytes: own.bytes, topLogprobs: score.top.map { alternative($0.token, $0.logprob) })
            }
        }
    }

    var id: String
    var object: String
    var created: Int
    var model: String
    var systemFingerprint: String
    var choices: [Choice]
    var usage: Usage?
}

/// A token's text for log-probability listings: its bytes as UTF-8, or OpenAI's `bytes:\xNN…` when they
/// are part of a character split across tokens (so such tokens stay apart as `top_logprobs` keys).
func tokenString(_ bytes: [UInt8]) -> String {
    String(bytes: bytes, encoding: .utf8) ?? "bytes:" + bytes.map { String(format: "\\x%02x", $0) }.joined()
}

/// Unicode scalars that begin in these UTF-8 bytes: one per byte that is not a continuation byte.
func scalarsStarted(_ bytes: [UInt8]) -> Int { bytes.filter { $0 & 0xC0 != 0x80 }.count }

enum ResponseID {
    static func make(_ prefix: String) -> String {
        prefix + "-" + (0..<12).map { _ in String("0123456789abcdefghijklmnopqrstuvwxyz".randomElement()!) }.joined()
    }
}
