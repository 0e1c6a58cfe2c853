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

    public init(maxTokens: Int = 64, sampling: SamplingParameters = .greedy, stop: [String] = [], stopAtEndOfGeneration: Bool = true) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
    }
}

public enum FinishReason: String, Codable, Sendable { case length, stop, endOfGeneration = "eos" }

public struct GenerationResult: Sendable {
    public var promptTokens: [Int32]
    public var tokens: [Int32]
    public var text: String
    public var finishReason: FinishReason
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
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        try options.sampling.validate()
        guard !prompt.isEmpty else { throw EngramError.invalidArgument("the prompt is empty (no tokens)") }
        guard options.maxTokens >= 0 else { throw EngramError.invalidArgument("max tokens must be ≥ 0") }
        let context = model.config.contextLength
        guard prompt.count <= context else {
            throw EngramError.invalidArgument("the prompt has \(prompt.count) tokens, more than the model's context of \(context) tokens")
        }
        // Every generated token but the last is fed back (prompt + k − 1 positions for k tokens), so the
        // context bounds how many can follow the prompt; the cache grows as needed, so a large
        // `maxTokens` reserves nothing up front.
        let maxTokens = min(options.maxTokens, context - prompt.count + 1)
        var sampler = Sampler(options.sampling)
        let cache = model.makeCache(capacity: prompt.count + min(maxTokens, 256) + 1)
        let clock = ContinuousClock()
        let start = clock.now
        var logits = try model.forward(prompt, cache: cache, hooks: hooks, logits: .last)
        let promptSeconds = (clock.now - start).seconds

        var tokens: [Int32] = []
        var emitted = 0 // characters of `text` already streamed
        var text = ""
        var finish = FinishReason.length
        let decodeStart = clock.now
        while tokens.count < maxTokens {
            if let isCancelled = options.isCancelled, isCancelled() { throw CancellationError() }
            let next = sampler.sample(logits.pointer, count: logits.cols)
            if options.stopAtEndOfGeneration && tokenizer.isEndOfGeneration(next) { finish = .endOfGeneration; break }
            tokens.append(next)
            text = tokenizer.decode(tokens, skipSpecial: false)
            if let cut = Self.firstStop(in: text, stops: options.stop) {
                text = String(text[..<cut])
                finish = .stop
                break
            }
            if let onText {
                let safe = Self.streamableLength(text, stops: options.stop)
                if safe > emitted {
                    onText(String(text.dropFirst(emitted).prefix(safe - emitted)))
                    emitted = safe
                }
            }
            if tokens.count == maxTokens { break }
            logits = try model.forward([next], cache: cache, hooks: hooks, logits: .last)
        }
        if let onText, text.count > emitted { onText(String(text.dropFirst(emitted))) }
        return GenerationResult(promptTokens: prompt, tokens: tokens, text: text, finishReason: finish,
                                promptSeconds: promptSeconds, decodeSeconds: (clock.now - decodeStart).seconds)
    }

    static func firstStop(in text: String, stops: [String]) -> String.Index? {
        stops.filter { !$0.isEmpty }.compactMap { text.range(of: $0)?.lowerBound }.min()
    }

    /// Characters that can be streamed now: everything except a trailing replacement character
    /// (an incomplete UTF-8 sequence) and a tail that is a prefix of some stop string.
    static func streamableLength(_ text: String, stops: [String]) -> Int {
        var length = text.count
        if text.hasSuffix("\u{FFFD}") { length -= 1 }
        let characters = Array(text.prefix(length))
        var hold = 0
        for stop in stops where !stop.isEmpty {
            let s = Array(stop)
            for n in stride(from: min(s.count - 1, characters.count), to: 0, by: -1)
            where Array(characters.suffix(n)) == Array(s.prefix(n)) {
                hold = max(hold, n)
                break
            }
        }
        return length - hold
    }
}

extension Duration {
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
