import Foundation
import XCTest
import Engram

/// Chat rendering against the output of the Jinja templates themselves (rendered with Python jinja2 3.x:
/// SmolLM2's template read from its GGUF, and small templates written in the style of each family).
final class TokenizerChatFormatTests: XCTestCase {
    private let conversation = [
        ChatMessage(role: "system", content: "Be brief."),
        ChatMessage(role: "user", content: " What is 2+2? "),
        ChatMessage(role: "assistant", content: "4"),
        ChatMessage(role: "user", content: "And 3+3?"),
    ]
    private var withoutSystem: [ChatMessage] { Array(conversation.dropFirst()) }

    func testSmolLM2TemplateFromGGUF() throws {
        let tokenizer = try TokenizerFixtures.smollm2Tokenizer()
        XCTAssertEqual(tokenizer.chatTemplate, .chatml)
        let format = try XCTUnwrap(tokenizer.chatFormat)
        XCTAssertEqual(format.defaultSystemMessage, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        XCTAssertEqual(format.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(format.render([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                                      ChatMessage(role: "assistant", content: " Hello! ")], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n Hello! <|im_end|>\n")
        XCTAssertEqual(format.render([], addGenerationPrompt: true), "<|im_start|>assistant\n")
        XCTAssertEqual(format.render([ChatMessage(role: "user", content: "  spaced  ")], addGenerationPrompt: false),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n  spaced  <|im_end|>\n")
        // The rendered prompt tokenizes with the turn markers as single tokens.
        let ids = tokenizer.encode(tokenizer.renderChat([ChatMessage(role: "user", content: "Hi")]), parseSpecial: true)
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 3)
        XCTAssertEqual(ids.filter { $0 == 2 }.count, 2)
        XCTAssertTrue(tokenizer.isEndOfGeneration(2))
    }

    func testPlainChatML() throws {
        let source = #"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#
        XCTAssertEqual(ChatFormat.detect(source), .chatml)
        let format = ChatFormat(template: .chatml, source: source)
        XCTAssertNil(format.defaultSystemMessage)
        XCTAssertEqual(format.render(withoutSystem, addGenerationPrompt: true),
                       "<|im_start|>user\n What is 2+2? <|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n")
    }

    func testChatMLDefaultSystemWrittenWithEscapes() {
        // Written with `\n` escapes inside the Jinja literal, as tokenizer_config.json files often are.
        let source = #"{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a careful assistant.<|im_end|>\n' }}{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#
        let format = ChatFormat(template: .chatml, source: source)
        XCTAssertEqual(format.defaultSystemMessage, "You are a careful assistant.")
        XCTAssertEqual(format.render(withoutSystem, addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a careful assistant.<|im_end|>\n<|im_start|>user\n What is 2+2? <|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(format.render(conversation, addGenerationPrompt: true),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n What is 2+2? <|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n")
    }

    func testLlama3() {
        let source = #"{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"#
        XCTAssertEqual(ChatFormat.detect(source), .llama3)
        let format = ChatFormat(template: .llama3, source: source)
        XCTAssertEqual(format.render(conversation, addGenerationPrompt: true),
                       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertEqual(format.render(withoutSystem, addGenerationPrompt: true),
                       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    func testLlama31DateHeader() {
        let format = ChatFormat(template: .llama3, source: "… Cutting Knowledge Date: December 2023 … <|start_header_id|> …")
        XCTAssertTrue(format.knowledgeDateHeader)
        XCTAssertEqual(format.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true),
                       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    func testLlama2() {
        let source = #"{% if messages[0]['role'] == 'system' %}…{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% endif %}"#
        XCTAssertEqual(ChatFormat.detect(source), .llama2)
        let format = ChatFormat(template: .llama2, source: source)
        XCTAssertEqual(format.render(conversation, addGenerationPrompt: true),
                       "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n What is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]")
        XCTAssertEqual(format.render(withoutSystem, addGenerationPrompt: true),
                       "<s>[INST] What is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]")
    }

    func testGemma() {
        let source = #"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"#
        XCTAssertEqual(ChatFormat.detect(source), .gemma)
        let format = ChatFormat(template: .gemma, source: source)
        XCTAssertEqual(format.render(withoutSystem, addGenerationPrompt: true),
                       "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n")
        // A system message joins the first user turn (Gemma 3's behaviour).
        XCTAssertEqual(format.render(Array(conversation.prefix(2)), addGenerationPrompt: false),
                       "<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>\n")
    }

    func testUnknownTemplateIsNil() {
        XCTAssertNil(ChatFormat.detect("{{ messages }}"))
    }
}
