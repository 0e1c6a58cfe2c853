import Foundation

public struct GenerationOptions: Sendable {
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation ends when the text contains one of these; the stop string itself is not returned.
    public var stop: [String]
    /// End at the vocabulary's end-of-generation tokens (EOS, end of turn).
    public var stopAtEndOfGeneration: Bool
    /// Polled before every token; when it returns true, generation stops by throwing `CancellationError`
    /// (a server's time limit, a client that went away).
    public var isCancelled: (@Sendable () -> Bool)?
    /// nil: no log-probabilities. k ≥ 0: each generated token's (`GenerationResult.logprobs`) with the k
    /// most likely tokens at its position.
    public var logprobs: Int?
    /// With `logprobs`, the prompt's tokens' too (from the second on): the prompt's pass then computes
    /// logits at every position, and goes through even when nothing is to be generated.
    public var promptLogprobs = false
    /// Added to these tokens' logits before a token is chosen (OpenAI's `logit_bias`: -100 bans a token,
    /// +100 all but forces it). Log-probabilities stay the model's own.
    public var logitBias: [Int32: Float] = [:]
    /// The text is a reply of its own (a chat answer), not the rest of the prompt's text: a space its
    /// first token carries is dropped (SentencePiece's "▁Paris" after "[/INST]" reads "Paris").
    public var isReply = false

    public init(maxTokens: Int = 64, sampling: SamplingParameters = .greedy, stop: [String] = [], stopAtEndOfGeneration: Bool = true) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
    }
}

public enum FinishReason: String, Codable, Sendable { case length, stop, endOfGeneration = "eos" }

/// A piece of streamed text and, when `GenerationOptions.logprobs` asked for them, the scores of the
/// tokens whose text begins in it (a token that only finishes a character goes with that character; the
/// end-of-generation token that ended the text comes with the last piece, whose text may be empty).
/// Joined, the pieces give `GenerationResult.text` and `.logprobs`.
public struct StreamedText: Sendable {
    public var text: String
    public var logprobs: [TokenLogprob]
}

public struct GenerationResult: Sendable {
    public var promptTokens: [Int32]
    public var tokens: [Int32]
    public var text: String
    public var finishReason: FinishReason
    /// Per generated token, when `GenerationOptions.logprobs` asked for them, the end-of-generation
    /// token that ended it included (one more than `tokens` then); after a stop string, the tokens whose
    /// text begins before the cut (a token that finishes a character kept before it included).
    public var logprobs: [TokenLogprob]
    /// Per prompt token from the second on, when `promptLogprobs` asked for them.
    public var promptLogprobs: [TokenLogprob]
    public var promptSeconds: Double
    public var decodeSeconds: Double
}

/// The generation loop: prompt once through the model, then one token at a time with the KV cache.
/// Streams text as it becomes final: a piece is held back while it could still be the start of a
/// stop string or the first bytes of a multi-byte character.
public final class Generator {
    public let model: LanguageModel
    public let tokenizer: Tokenizer

    public init(model: LanguageModel, tokenizer: Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    public func generate(prompt: [Int32], options: GenerationOptions, hooks: Hooks? = nil,
                         onText: ((StreamedText) -> Void)? = nil) throws -> GenerationResult {
        let sequence = try DecodingSequence(generator: self, prompt: prompt, options: options, onText: onText)
        try sequence.prefill(hooks: hooks)
        while !sequence.isFinished { try advance([sequence], hooks: hooks) }
        return try sequence.outcome!.get()
    }

    /// One decoding step for several sequences: each unfinished one chooses its next token from its
    /// logits (or ends: end of generation, a stop string, its token limit, cancellation), and those that
    /// continue go through the model together, one row each. With weights read from quantized or 16-bit
    /// blocks (`Checkpoint.dequantizesOnDemand`), products of up to `BLAS.smallProductRows` rows form
    /// every row's sums as one row alone does, so a sequence's tokens do not depend on the others in its
    /// step; with float32 weights they agree to rounding. A failed pass ends every sequence in it.
    public func advance(_ sequences: [DecodingSequence], hooks: Hooks? = nil) throws {
        let continuing = sequences.compactMap { sequence in sequence.chooseNextToken().map { (sequence, $0) } }
        guard !continuing.isEmpty else { return }
        do {
            let logits = try model.forward(continuing.map { SequenceInput(tokens: [$0.1], cache: $0.0.cache) },
                                           hooks: hooks, logits: .last)
            for ((sequence, _), rows) in zip(continuing, logits) { sequence.logits = rows }
        } catch {
            for (sequence, _) in continuing { sequence.end(.failure(error)) }
            throw error
        }
    }

    static func firstStop(in text: String, stops: [String]) -> String.Index? {
        // Literal (scalar by scalar), as `streamableLength` holds text back: a canonically equivalent match
        // ("é" against "e" + U+0301) could cut text already streamed.
        stops.filter { !$0.isEmpty }.compactMap { text.range(of: $0, options: .literal)?.lowerBound }.min()
    }

    /// Unicode scalars of `text` that can be streamed now: everything except a trailing replacement
    /// character (an incomplete UTF-8 sequence) and a tail that is a prefix of some stop string. Counted
    /// in scalars, not characters: a later token can join a character already streamed (a combining
    /// mark, a vowel sign), and counting characters would then skip what it added.
    static func streamableLength(_ text: String, stops: [String]) -> Int {
        var scalars = Array(text.unicodeScalars)
        if scalars.last == "\u{FFFD}" { scalars.removeLast() }
        var hold = 0
        for stop in stops where !stop.isEmpty {
            let s = Array(stop.unicodeScalars)
            for n in stride(from: min(s.count - 1, scalars.count), to: 0, by: -1)
            where scalars.suffix(n).elementsEqual(s.prefix(n)) {
                hold = max(hold, n)
                break
            }
        }
        return scalars.count - hold
    }
}

/// One sequence being generated: its prompt's pass, then a token per `Generator.advance` step, streaming
/// its text. Finished when it reaches its end, with `outcome` set (and `onFinish` called).
public final class DecodingSequence {
    public let generator: Generator
    public let prompt: [Int32]
    let options: GenerationOptions
    let onText: ((StreamedText) -> Void)?
    /// Called once, when the sequence ends.
    public var onFinish: ((Result<GenerationResult, Error>) -> Void)?
    let cache: KVCache
    private let maxTokens: Int
    private var sampler: Sampler
    var logits: Matrix?
    public private(set) var tokens: [Int32] = []
    private var logprobs: [TokenLogprob] = []
    /// Per entry of `logprobs`: the scalar of `text` its token's text belongs to (where it begins, or the
    /// character it finishes), which decides the streamed piece and the stop-string cut it goes with.
    private var anchors: [Int] = []
    private var logprobsStreamed = 0
    private var promptLogprobs: [TokenLogprob] = []
    /// The generated tokens' bytes (`Tokenizer.continuation`, built a token at a time).
    private var textBytes: [UInt8] = []
    private var text = ""
    private var emitted = 0 // Unicode scalars of `text` already streamed
    private let clock = ContinuousClock()
    private var promptSeconds = 0.0
    private var decodeStart: ContinuousClock.Instant
    public private(set) var outcome: Result<GenerationResult, Error>?

    public var isFinished: Bool { outcome != nil }

    /// Checks the request; the prompt's pass is `prefill`.
    public init(generator: Generator, prompt: [Int32], options: GenerationOptions, onText: ((StreamedText) -> Void)? = nil) throws {
        try options.sampling.validate()
        guard !prompt.isEmpty else { throw EngramError.invalidArgument("the prompt is empty (no tokens)") }
        guard options.maxTokens >= 0 else { throw EngramError.invalidArgument("max tokens must be ≥ 0") }
        let context = generator.model.config.contextLength
        guard prompt.count <= context else {
            throw EngramError.invalidArgument("the prompt has \(prompt.count) tokens, more than the model's context of \(context) tokens")
        }
        self.generator = generator
        self.prompt = prompt
        self.options = options
        self.onText = onText
        // Every generated token but the last is fed back (prompt + k − 1 positions for k tokens), so the
        // context bounds how many can follow the prompt; the cache grows as needed, so a large
        // `maxTokens` reserves nothing up front.
        maxTokens = min(options.maxTokens, context - prompt.count + 1)
        sampler = Sampler(options.sampling)
        cache = generator.model.makeCache(capacity: prompt.count + min(maxTokens, 256) + 1)
        decodeStart = clock.now
    }

    /// Prompt tokens one pass takes at most. A longer prompt goes through in pieces, so a server that is
    /// decoding other sequences can give them a step between two pieces (`ModelWorker`), and a pass's
    /// activations stay bounded. Every generation cuts a prompt the same way (the server's and `engram
    /// generate`'s), so its tokens do not depend on who runs it; a single pass over a longer prompt (a
    /// probe, an evaluation) gives the same logits to rounding.
    public static let promptPiece = 128
    /// Prompt tokens already through the model.
    public private(set) var promptTokensDone = 0
    /// The whole prompt has been through the model (or the sequence ended first).
    public var isPrefilled: Bool { promptTokensDone == prompt.count || isFinished }

    /// The prompt's pass, piece by piece (the last piece's logits give the first token). A failure ends
    /// the sequence and is thrown.
    public func prefill(hooks: Hooks? = nil) throws {
        while !isPrefilled { try prefillPiece(hooks: hooks) }
    }

    /// The next piece of the prompt (at most `promptPiece` tokens) through the model. Cancellation is
    /// checked first, as before every token. A failure ends the sequence and is thrown.
    public func prefillPiece(hooks: Hooks? = nil) throws {
        guard !isPrefilled else { return }
        if maxTokens == 0 && !(options.promptLogprobs && options.logprobs != nil) { // nothing to generate: the prompt need not go through
            _ = finish(.length)
            return
        }
        if let isCancelled = options.isCancelled, isCancelled() {
            end(.failure(CancellationError()))
            throw CancellationError()
        }
        let start = clock.now
        let upTo = min(promptTokensDone + Self.promptPiece, prompt.count)
        let last = upTo == prompt.count
        let scoresPrompt = options.promptLogprobs && options.logprobs != nil
        do {
            let rows = try generator.model.forward(Array(prompt[promptTokensDone..<upTo]), cache: cache, hooks: hooks,
                                                   logits: scoresPrompt ? .all : last ? .last : .none)
            if scoresPrompt {
                // Row j predicts the token after position promptTokensDone + j.
                for j in 0..<rows.rows where promptTokensDone + j + 1 < prompt.count {
                    promptLogprobs.append(TokenLogprob(prompt[promptTokensDone + j + 1], logits: rows.row(j), count: rows.cols, top: options.logprobs ?? 0))
                }
            }
            if last { logits = scoresPrompt ? Matrix(rows: 1, cols: rows.cols, pointer: rows.row(rows.rows - 1), owner: rows.owner) : rows }
        } catch {
            end(.failure(error))
            throw error
        }
        promptTokensDone = upTo
        promptSeconds += (clock.now - start).seconds
        decodeStart = clock.now
    }

    /// Chooses the next token from the current logits and streams the text it completes. Returns the
    /// token if the sequence continues (it must then go through the model); nil when it has ended.
    func chooseNextToken() -> Int32? {
        guard !isFinished, let logits else { return nil }
        guard tokens.count < maxTokens else { return finish(.length) }
        if let isCancelled = options.isCancelled, isCancelled() {
            end(.failure(CancellationError()))
            return nil
        }
        let next = chooseWithBias(logits)
        let tokenizer = generator.tokenizer
        let bytes = tokenizer.bytes(of: next)
        if let top = options.logprobs {
            logprobs.append(TokenLogprob(next, logits: logits.pointer, count: logits.cols, top: top))
            // The text so far ends with a replacement character while a character is incomplete, so a
            // token of continuation bytes belongs to the scalar before its start.
            let start = text.unicodeScalars.count
            anchors.append(start > 0 && bytes.first.map { $0 & 0xC0 == 0x80 } == true ? start - 1 : start)
        }
        // The end token is scored too (a client summing a text's log-likelihood counts it), not kept.
        if options.stopAtEndOfGeneration && tokenizer.isEndOfGeneration(next) { return finish(.endOfGeneration) }
        tokens.append(next)
        textBytes += bytes
        text = String(decoding: textBytes, as: UTF8.self)
        if options.isReply && text.hasPrefix(" ") { text.removeFirst() }
        if let cut = Generator.firstStop(in: text, stops: options.stop) {
            text = String(text[..<cut])
            return finish(.stop)
        }
        if onText != nil {
            let safe = Generator.streamableLength(text, stops: options.stop)
            if safe > emitted { stream(upTo: safe) }
        }
        if tokens.count == maxTokens { return finish(.length) }
        return next
    }

    /// The sampler's choice from the logits with `logitBias` added, which are then restored, so that
    /// log-probabilities are read from the model's own.
    private func chooseWithBias(_ logits: Matrix) -> Int32 {
        let row = logits.pointer
        let biased = options.logitBias.filter { Int($0.key) < logits.cols && $0.key >= 0 }.map { (id: Int($0.key), saved: row[Int($0.key)], bias: $0.value) }
        for b in biased { row[b.id] += b.bias }
        defer { for b in biased { row[b.id] = b.saved } }
        return sampler.sample(row, count: logits.cols)
    }

    /// Streams the text up to scalar `end` that was not streamed yet, with the scores of the tokens
    /// belonging to it (`last`: of every token left, the end token's too).
    private func stream(upTo end: Int, last: Bool = false) {
        guard let onText else { return }
        let scalars = text.unicodeScalars
        let piece = String(scalars[scalars.index(scalars.startIndex, offsetBy: emitted)..<scalars.index(scalars.startIndex, offsetBy: end)])
        let from = logprobsStreamed
        while logprobsStreamed < logprobs.count && (last || anchors[logprobsStreamed] < end) { logprobsStreamed += 1 }
        emitted = end
        onText(StreamedText(text: piece, logprobs: Array(logprobs[from..<logprobsStreamed])))
    }

    /// Streams what is left of the text and ends with a result. Returns nil (no token to feed).
    private func finish(_ reason: FinishReason) -> Int32? {
        let length = text.unicodeScalars.count
        if reason == .stop {
            // Tokens of the cut stop string (and after it) are not part of the answer.
            let kept = anchors.prefix { $0 < length }.count
            logprobs.removeLast(logprobs.count - kept)
            anchors.removeLast(anchors.count - kept)
        }
        if length > emitted || logprobsStreamed < logprobs.count { stream(upTo: length, last: true) }
        end(.success(GenerationResult(promptTokens: prompt, tokens: tokens, text: text, finishReason: reason,
                                      logprobs: logprobs, promptLogprobs: promptLogprobs, promptSeconds: promptSeconds, decodeSeconds: (clock.now - decodeStart).seconds)))
        return nil
    }

    func end(_ result: Result<GenerationResult, Error>) {
        guard outcome == nil else { return }
        outcome = result
        logits = nil
        onFinish?(result)
    }
}

extension Duration {
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
