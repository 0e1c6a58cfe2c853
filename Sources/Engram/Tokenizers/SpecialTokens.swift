import Foundation

/// GGUF `tokenizer.ggml.token_type` values (the same numbers as SentencePiece's piece types).
public enum TokenKind: Int32, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6

    /// GGUF writes 0 ("undefined") for some vocabularies; those are ordinary tokens.
    public init(gguf value: Int) {
        self = TokenKind(rawValue: Int32(clamping: value)) ?? .normal
    }
}

/// A token that is matched in text as a whole before the text is split into words: control tokens
/// such as `<|im_start|>` (only when the caller asks for special tokens to be parsed) and user-defined
/// added tokens (always, as llama.cpp and Hugging Face tokenizers both do).
struct SpecialToken: Sendable {
    var text: [UInt8]
    var id: Int32
    /// Matched even when `parseSpecial` is false.
    var alwaysParsed: Bool
    /// Swallow the whitespace to the left / right of the match (tokenizer.json `lstrip` / `rstrip`).
    var lstrip = false
    var rstrip = false
}

/// A run of the input: ordinary text to pre-tokenize, or one special token.
enum TextSegment: Equatable {
    case text(Range<Int>)
    case token(Int32, Range<Int>)
}

/// Finds special tokens in UTF-8 text, leftmost first and then longest (`<|im_end|>` before `<|im`).
struct SpecialTokenMatcher: Sendable {
    private let tokens: [SpecialToken]
    /// Candidates by first byte, longest first, so that the usual byte is rejected by one lookup.
    private let byFirstByte: [[Int]]
    let isEmpty: Bool

    init(_ tokens: [SpecialToken]) {
        let usable = tokens.filter { !$0.text.isEmpty }
        self.tokens = usable
        var table = [[Int]](repeating: [], count: 256)
        for (i, t) in usable.enumerated() { table[Int(t.text[0])].append(i) }
        for b in 0..<256 { table[b].sort { usable[$0].text.count > usable[$1].text.count } }
        byFirstByte = table
        isEmpty = usable.isEmpty
    }

    @inline(__always) private static func isSpace(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C
    }

    func segments(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [TextSegment] {
        let n = bytes.count
        if isEmpty { return n == 0 ? [] : [.text(0..<n)] }
        var out: [TextSegment] = []
        var textStart = 0
        var pos = 0
        while pos < n {
            var matched: SpecialToken?
            for index in byFirstByte[Int(bytes[pos])] {
                let t = tokens[index]
                guard parseSpecial || t.alwaysParsed, pos + t.text.count <= n else { continue }
                var equal = true
                for k in 1..<t.text.count where bytes[pos + k] != t.text[k] {
                    equal = false
                    break
                }
                if equal { matched = t; break }
            }
            guard let t = matched else { pos += 1; continue }
            var start = pos
            var end = pos + t.text.count
            if t.lstrip { while start > textStart, Self.isSpace(bytes[start - 1]) { start -= 1 } }
            if t.rstrip { while end < n, Self.isSpace(bytes[end]) { end += 1 } }
            if start > textStart { out.append(.text(textStart..<start)) }
            out.append(.token(t.id, start..<end))
            textStart = end
            pos = end
        }
        if textStart < n { out.append(.text(textStart..<n)) }
        return out
    }
}
