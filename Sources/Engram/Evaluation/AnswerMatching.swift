import Foundation

/// How a generated answer is compared with the gold answer and its aliases. Both sides are normalised
/// first (SQuAD style: lower case, punctuation dropped, the articles a/an/the dropped, whitespace
/// collapsed), so "The Beatles." matches "Beatles".
public enum AnswerMatcher: String, Codable, Sendable, CaseIterable {
    /// The whole answer equals a gold string (MQuAKE's MeLLo notebook; the answer is the text before
    /// the first newline).
    case exact
    /// The answer starts with a gold string, at a word boundary (cloze continuations such as
    /// "Madonna, who was born…").
    case prefix
    /// A gold string occurs in the answer as whole words (CaKE / CK-PLUG style containment).
    case contains

    public var summary: String {
        switch self {
        case .exact: return "exact match after SQuAD normalisation, against the answer or any alias"
        case .prefix: return "normalised answer starts with the answer or any alias (word boundary)"
        case .contains: return "normalised answer contains the answer or any alias as whole words"
        }
    }

    public func matches(_ generated: String, anyOf answers: [String]) -> Bool {
        let g = AnswerMatcher.normalize(generated)
        for a in answers {
            let n = AnswerMatcher.normalize(a)
            if n.isEmpty { continue }
            switch self {
            case .exact: if g == n { return true }
            case .prefix: if g == n || g.hasPrefix(n + " ") { return true }
            case .contains: if (" " + g + " ").contains(" " + n + " ") { return true }
            }
        }
        return false
    }

    public static func normalize(_ text: String) -> String {
        var kept = ""
        for ch in text.lowercased() {
            if !(ch.isPunctuation || ch.isSymbol) { kept.append(ch) }
        }
        let words = kept.split(whereSeparator: \.isWhitespace).filter { $0 != "a" && $0 != "an" && $0 != "the" }
        return words.joined(separator: " ")
    }

    /// The answer part of a generation: the text before the first newline, trimmed.
    public static func firstLine(_ text: String) -> String {
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return line.trimmingCharacters(in: .whitespaces)
    }
}
