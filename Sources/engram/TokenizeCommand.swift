import ArgumentParser
import Engram
import Foundation

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Show the token ids and pieces of a text.")

    @OptionGroup var model: ModelArgument
    @Argument(help: "The text to tokenize.") var text: String
    @Flag(name: .customLong("no-special"), help: "Treat special-token text like <|im_start|> as plain text.") var noSpecial = false
    @Flag(name: .customLong("add-special"), help: "Add BOS/EOS as the vocabulary asks.") var addSpecial = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ck = try model.checkpoint()
        let tokenizer = try TokenizerLoader.load(ck)
        let spans = tokenizer.encodeWithOffsets(text, addSpecial: addSpecial, parseSpecial: !noSpecial)
        let bytes = Array(text.utf8)
        let rows = spans.map { s in
            Row(id: s.id, piece: tokenizer.piece(s.id) ?? "", text: String(decoding: bytes[s.bytes], as: UTF8.self), start: s.bytes.lowerBound, end: s.bytes.upperBound)
        }
        if json {
            try printJSON(Output(ids: spans.map(\.id), tokens: rows, decoded: tokenizer.decode(spans.map(\.id))))
        } else {
            print(spans.map { String($0.id) }.joined(separator: " "))
            for r in rows { print(String(format: "%7d  %@", r.id, r.piece.debugDescription)) }
            printError("[\(spans.count) tokens]")
        }
    }

    struct Row: Encodable { let id: Int32; let piece: String; let text: String; let start: Int; let end: Int }
    struct Output: Encodable { let ids: [Int32]; let tokens: [Row]; let decoded: String }
}
