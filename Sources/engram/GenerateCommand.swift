import ArgumentParser
import Engram
import Foundation

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Complete a prompt.")

    @OptionGroup var model: ModelArgument
    @Option(help: "The prompt text.") var prompt: String
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate at most.") var maxTokens = 64
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = all).") var topK = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Stop when this text appears (repeatable).") var stop: [String] = []
    @Flag(help: "Wrap the prompt as a user message in the model's chat template.") var chat = false
    @Option(help: "System message for --chat (default: the template's own).") var system: String?
    @Flag(help: "Print one JSON object instead of streaming text.") var json = false

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system applies to --chat, which is not given") }
    }

    func run() throws {
        let (_, lm, tokenizer) = try model.load(dequantizingOnDemand: true)
        let text: String
        if chat {
            guard let format = tokenizer.chatFormat else {
                throw EngramError.invalidArgument("--chat: the model ships no chat template it can render")
            }
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            text = format.render(messages, addGenerationPrompt: true)
        } else {
            text = prompt
        }
        // Chat text carries its own BOS text where the template prints one.
        let ids = tokenizer.encode(text, addSpecial: !chat, parseSpecial: chat)
        var options = GenerationOptions(maxTokens: maxTokens,
                                        sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed),
                                        stop: stop)
        options.isReply = chat
        let generator = Generator(model: lm, tokenizer: tokenizer)
        if json {
            let r = try generator.generate(prompt: ids, options: options)
            try printJSON(GenerateOutput(prompt: text, prompt_tokens: r.promptTokens, tokens: r.tokens, text: r.text,
                                         finish_reason: r.finishReason.rawValue,
                                         prompt_tokens_per_second: Double(r.promptTokens.count) / max(r.promptSeconds, 1e-9),
                                         decode_tokens_per_second: Double(r.tokens.count) / max(r.decodeSeconds, 1e-9)))
        } else {
            let r = try generator.generate(prompt: ids, options: options) { piece in
                FileHandle.standardOutput.write(Data(piece.text.utf8))
            }
            print("")
            printError(String(format: "[%d prompt tokens, %d generated, %.1f tok/s, finish: %@]", r.promptTokens.count, r.tokens.count,
                              Double(r.tokens.count) / max(r.decodeSeconds, 1e-9), r.finishReason.rawValue))
        }
    }

    struct GenerateOutput: Encodable {
        let prompt: String
        let prompt_tokens: [Int32]
        let tokens: [Int32]
        let text: String
        let finish_reason: String
        let prompt_tokens_per_second: Double
        let decode_tokens_per_second: Double
    }
}
