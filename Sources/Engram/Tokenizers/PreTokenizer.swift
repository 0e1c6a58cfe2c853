import Foundation
import Logging

/// The split patterns of byte-level BPE vocabularies, named as GGUF's `tokenizer.ggml.pre` names them.
/// Each is a hand-written scanner that yields exactly the pieces the tokenizer's regular expression
/// would (leftmost alternative first, greedy, with backtracking where the pattern needs it); a regex
/// engine is too slow for evaluating thousands of prompts.
public enum PreTokenizerKind: String, Sendable, CaseIterable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Every `\p{N}` scalar on its own first, then the GPT-2 pattern on the rest (SmolLM, StarCoder).
    case smollm
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llamaBPE = "llama-bpe"
    /// Qwen2: the Llama 3 pattern with single digits (`\p{N}` instead of `\p{N}{1,3}`).
    case qwen2

    /// The regular expression of the pattern as tokenizer.json spells it (for `Split` pre-tokenizers).
    public var pattern: String {
        switch self {
        case .gpt2, .smollm: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llamaBPE: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }
}

/// Splits text into the words that BPE merges never cross.
public struct PreTokenizer: Sendable {
    public let kind: PreTokenizerKind

    public init(kind: PreTokenizerKind) { self.kind = kind }

    /// The scanner for a GGUF `tokenizer.ggml.pre` name. Names we have no scanner for fall back to GPT-2
    /// with a warning: most byte-level vocabularies were trained with a close variant of it, and refusing
    /// to load would be worse than a few differently split words.
    public init(ggufName: String?, file: String) {
        switch ggufName {
        case nil, "default", "gpt2", "gpt-2": kind = .gpt2
        case "smollm", "starcoder", "refact", "codeshell": kind = .smollm
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral": kind = .llamaBPE
        case "qwen2", "deepseek-r1-qwen": kind = .qwen2
        case let name?:
            Logger(label: "engram.tokenizer").warning("\(file): tokenizer.ggml.pre '\(name)' has no scanner here; splitting words with the GPT-2 pattern")
            kind = .gpt2
        }
    }

    /// The words of `text` as strings (for tests and inspection).
    public func words(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            var ranges: [Range<Int>] = []
            split(buffer, 0..<buffer.count, into: &ranges)
            return ranges.map { String(decoding: buffer[$0], as: UTF8.self) }
        }
    }

    /// Appends the byte ranges of the words of `bytes[range]` (valid UTF-8) to `words`. The range is
    /// scanned as a string of its own: `(?!\S)` sees its end as the end of text.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into words: inout [Range<Int>]) {
        guard !range.isEmpty else { return }
        // Pure ASCII and Latin text is the common case; the scalar arrays cost little next to BPE.
        let text = ScalarText(bytes, range)
        var pieces: [Range<Int>] = []
        pieces.reserveCapacity(text.count / 3 + 1)
        switch kind {
        case .gpt2:
            Self.scanGPT2(text, 0, text.count, into: &pieces)
        case .smollm:
            // Each number scalar alone, then GPT-2 on the runs between them.
            var start = 0
            for i in 0..<text.count where text.classes[i] == .number {
                Self.scanGPT2(text, start, i, into: &pieces)
                pieces.append(i..<(i + 1))
                start = i + 1
            }
            Self.scanGPT2(text, start, text.count, into: &pieces)
        case .llamaBPE:
            Self.scanLlama3(text, maxDigits: 3, into: &pieces)
        case .qwen2:
            Self.scanLlama3(text, maxDigits: 1, into: &pieces)
        }
        words.reserveCapacity(words.count + pieces.count)
        for p in pieces { words.append(text.offsets[p.lowerBound]..<text.offsets[p.upperBound]) }
    }

    // MARK: scanners (ranges are scalar indices)

    @inline(__always) private static func lowerASCII(_ v: UInt32) -> UInt32 {
        (v >= 0x41 && v <= 0x5A) ? v + 0x20 : v
    }

    /// Length of a contraction `'s 't 're 've 'm 'll 'd` at i (0 if none).
    @inline(__always)
    private static func contraction(_ s: [UInt32], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == 0x27, i + 1 < end else { return 0 }
        let a = caseInsensitive ? lowerASCII(s[i + 1]) : s[i + 1]
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return 2 // s t m d
        default: break
        }
        guard i + 2 < end else { return 0 }
        let b = caseInsensitive ? lowerASCII(s[i + 2]) : s[i + 2]
        switch (a, b) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3 // re ve ll
        default: return 0
        }
    }

    /// The end of the whitespace run after a run starting at i that stops at `runEnd`, per
    /// `\s+(?!\S)|\s+`: the whole run at the end of text, else all but its last scalar (which then
    /// prefixes the next word), else the single scalar.
    @inline(__always)
    private static func whitespaceEnd(_ i: Int, runEnd: Int, end: Int) -> Int {
        if runEnd == end { return runEnd }
        if runEnd - i >= 2 { return runEnd - 1 }
        return i + 1
    }

    static func scanGPT2(_ t: ScalarText, _ start: Int, _ end: Int, into out: inout [Range<Int>]) {
        let s = t.scalars, c = t.classes
        var i = start
        while i < end {
            let n = contraction(s, i, end, caseInsensitive: false)
            if n > 0 {
                out.append(i..<(i + n)); i += n; continue
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space then a run of one class.
            var j = i
            if s[i] == 0x20, i + 1 < end, c[i + 1] != .whitespace { j = i + 1 }
            let k = c[j]
            if k != .whitespace {
                j += 1
                while j < end, c[j] == k { j += 1 }
                out.append(i..<j); i = j; continue
            }
            var r = i + 1
            while r < end, c[r] == .whitespace { r += 1 }
            let e = whitespaceEnd(i, runEnd: r, end: end)
            out.append(i..<e); i = e
        }
    }

    static func scanLlama3(_ t: ScalarText, maxDigits: Int, into out: inout [Range<Int>]) {
        let s = t.scalars, c = t.classes
        let end = t.count
        @inline(__always) func isNewline(_ v: UInt32) -> Bool { v == 0x0A || v == 0x0D }
        var i = 0
        while i < end {
            let n = contraction(s, i, end, caseInsensitive: true)
            if n > 0 {
                out.append(i..<(i + n)); i += n; continue
            }
            let k = c[i]
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if k == .letter || (k != .number && !isNewline(s[i]) && i + 1 < end && c[i + 1] == .letter) {
                var j = i + 1
                while j < end, c[j] == .letter { j += 1 }
                out.append(i..<j); i = j; continue
            }
            // `\p{N}{1,3}` (or `\p{N}`)
            if k == .number {
                var j = i + 1
                while j < end, j - i < maxDigits, c[j] == .number { j += 1 }
                out.append(i..<j); i = j; continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            if k == .other || (s[i] == 0x20 && i + 1 < end && c[i + 1] == .other) {
                var j = i + 1
                while j < end, c[j] == .other { j += 1 }
                while j < end, isNewline(s[j]) { j += 1 }
                out.append(i..<j); i = j; continue
            }
            // Whitespace from here on. `\s*[\r\n]+`: up to the last line break of the run.
            var r = i + 1
            while r < end, c[r] == .whitespace { r += 1 }
            var lastBreak = -1
            var p = r - 1
            while p >= i {
                if isNewline(s[p]) { lastBreak = p; break }
                p -= 1
            }
            if lastBreak >= 0 {
                out.append(i..<(lastBreak + 1)); i = lastBreak + 1; continue
            }
            let e = whitespaceEnd(i, runEnd: r, end: end)
            out.append(i..<e); i = e
        }
    }
}
