import Foundation

/// Renders a conversation as the prompt text a model family was trained on. Models ship their format
/// as a Jinja template (GGUF `tokenizer.chat_template`, tokenizer_config.json `chat_template`); rather
/// than run Jinja we recognise the family by its markers and reproduce what those templates print,
/// including the details that differ between models of one family (a default system message).
///
/// The rendered text contains the family's BOS text where the template prints `bos_token`, so encode it
/// with `parseSpecial: true` and `addSpecial: false`.
public struct ChatFormat: Sendable, Equatable {
    public var template: ChatTemplate
    /// The system message the template inserts when the conversation has none (SmolLM2, Qwen2.5).
    public var defaultSystemMessage: String?
    /// Llama 3.1+ templates always open with a system turn that states the knowledge cutoff and a date.
    public var knowledgeDateHeader: Bool
    public var bosText: String
    public var eosText: String

    public init(template: ChatTemplate, source: String? = nil, bosText: String? = nil, eosText: String? = nil) {
        self.template = template
        defaultSystemMessage = source.flatMap { Self.defaultSystemMessage(in: $0, template: template) }
        knowledgeDateHeader = template == .llama3 && (source?.contains("Cutting Knowledge Date") ?? false)
        switch template {
        case .chatml:
            self.bosText = bosText ?? ""
            self.eosText = eosText ?? "<|im_end|>"
        case .llama2:
            self.bosText = bosText ?? "<s>"
            self.eosText = eosText ?? "</s>"
        case .llama3:
            self.bosText = bosText ?? "<|begin_of_text|>"
            self.eosText = eosText ?? "<|eot_id|>"
        case .gemma:
            self.bosText = bosText ?? "<bos>"
            self.eosText = eosText ?? "<eos>"
        }
    }

    /// Control tokens that end an assistant turn in some family; generation stops at them.
    static let endOfTurnMarkers: Set<String> = [
        "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|endoftext|>", "<|end|>", "<|end_of_text|>",
    ]

    /// The family of a Jinja chat template, by the markers each family's turns are made of.
    public static func detect(_ source: String) -> ChatTemplate? {
        if source.contains("<|im_start|>") { return .chatml }
        if source.contains("<|start_header_id|>") { return .llama3 }
        if source.contains("<start_of_turn>") { return .gemma }
        if source.contains("[INST]") { return .llama2 }
        return nil
    }

    /// The date Llama 3.1's template prints when the caller gives none.
    public static let llama3DefaultDate = "26 Jul 2024"

    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        switch template {
        case .chatml: return renderChatML(messages, addGenerationPrompt)
        case .llama3: return renderLlama3(messages, addGenerationPrompt)
        case .llama2: return renderLlama2(messages)
        case .gemma: return renderGemma(messages, addGenerationPrompt)
        }
    }

    private func renderChatML(_ messages: [ChatMessage], _ generation: Bool) -> String {
        var out = ""
        if let system = defaultSystemMessage, let first = messages.first, first.role != "system" {
            out += "<|im_start|>system\n\(system)<|im_end|>\n"
        }
        for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
        if generation { out += "<|im_start|>assistant\n" }
        return out
    }

    private static func trim(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

    private func renderLlama3(_ messages: [ChatMessage], _ generation: Bool) -> String {
        var out = bosText
        var rest = messages[...]
        if knowledgeDateHeader {
            var system = ""
            if let first = rest.first, first.role == "system" {
                system = Self.trim(first.content)
                rest = rest.dropFirst()
            }
            out += "<|start_header_id|>system<|end_header_id|>\n\n"
            out += "Cutting Knowledge Date: December 2023\nToday Date: \(Self.llama3DefaultDate)\n\n"
            out += system + "<|eot_id|>"
        }
        for m in rest { out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(Self.trim(m.content))<|eot_id|>" }
        if generation { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        return out
    }

    /// Llama 2 chat: the system message goes inside the first user turn; each user turn is its own
    /// `<s>[INST] … [/INST]`, each answer ends with `</s>`. The template has no generation prompt: the
    /// prompt already ends where the answer begins.
    private func renderLlama2(_ messages: [ChatMessage]) -> String {
        var rest = messages[...]
        var system: String?
        if let first = rest.first, first.role == "system" {
            system = first.content
            rest = rest.dropFirst()
        }
        var out = ""
        for (i, m) in rest.enumerated() {
            var content = m.content
            if i == 0, let system { content = "<<SYS>>\n\(system)\n<</SYS>>\n\n" + content }
            if m.role == "user" {
                out += "\(bosText)[INST] \(Self.trim(content)) [/INST]"
            } else if m.role == "assistant" {
                out += " \(Self.trim(content)) \(eosText)"
            }
        }
        return out
    }

    /// Gemma: roles `user` and `model`; a system message is folded into the first user turn, as Gemma 3's
    /// template does (Gemma 1 and 2 reject it).
    private func renderGemma(_ messages: [ChatMessage], _ generation: Bool) -> String {
        var rest = messages[...]
        var prefix = ""
        if let first = rest.first, first.role == "system" {
            prefix = Self.trim(first.content) + "\n\n"
            rest = rest.dropFirst()
        }
        var out = bosText
        for (i, m) in rest.enumerated() {
            let role = m.role == "assistant" ? "model" : m.role
            let content = (i == 0 ? prefix : "") + Self.trim(m.content)
            out += "<start_of_turn>\(role)\n\(content)<end_of_turn>\n"
        }
        if generation { out += "<start_of_turn>model\n" }
        return out
    }

    /// A literal system message written into a ChatML template (`'<|im_start|>system\nYou are …<|im_end|>\n'`),
    /// as opposed to the variable one (`'<|im_start|>system\n' + message['content']`).
    static func defaultSystemMessage(in source: String, template: ChatTemplate) -> String? {
        guard template == .chatml else { return nil }
        let opener = "<|im_start|>system"
        var search = source.startIndex..<source.endIndex
        while let found = source.range(of: opener, range: search) {
            search = found.upperBound..<source.endIndex
            var rest = source[found.upperBound...]
            // The newline after the role, written either as a real newline or as the escape `\n`.
            if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else {
                continue
            }
            guard let close = rest.range(of: "<|im_end|>") else { continue }
            let literal = rest[..<close.lowerBound]
            // Anything that belongs to Jinja means the text is not a plain literal.
            if literal.isEmpty || literal.contains(where: { "'\"{}+".contains($0) }) { continue }
            return literal.replacingOccurrences(of: "\\n", with: "\n")
        }
        return nil
    }
}
