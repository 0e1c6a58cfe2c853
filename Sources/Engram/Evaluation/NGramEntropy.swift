import Foundation

/// Fluency as ROME and EasyEdit measure it: the weighted entropy of a text's word bigrams and trigrams.
/// For n in {2, 3}: the n-gram frequency distribution is normalised to p and H_n = −Σ p log2 p; the score
/// is mean(2/3 · H_2, 4/3 · H_3). Repetitive text has low entropy. Reports show the mean × 100.
public enum NGramEntropy {
    /// The score of one text, tokenized with `WordTokenizer` (NLTK `word_tokenize`).
    public static func score(_ text: String) -> Double {
        score(words: WordTokenizer.tokenize(text))
    }

    /// The score of an already tokenized text. A text with fewer than n words contributes H_n = 0.
    public static func score(words: [String]) -> Double {
        let weighted = [(2, 2.0 / 3.0), (3, 4.0 / 3.0)].map { n, w in w * entropy(words: words, n: n) }
        return weighted.reduce(0, +) / Double(weighted.count)
    }

    /// Entropy in bits of the n-gram distribution.
    public static func entropy(words: [String], n: Int) -> Double {
        guard words.count >= n, n > 0 else { return 0 }
        var counts: [[String]: Int] = [:]
        for i in 0...(words.count - n) { counts[Array(words[i..<(i + n)]), default: 0] += 1 }
        let total = Double(words.count - n + 1)
        // Summed in a fixed order so the value does not depend on dictionary layout.
        return counts.values.sorted().reduce(0.0) { h, c in
            let p = Double(c) / total
            return h - p * log2(p)
        }
    }

    /// The text ROME's `generate_fast` scores: NFKD-normalised, blank lines joined with a space.
    public static func prepare(_ text: String) -> String {
        text.decomposedStringWithCompatibilityMapping.replacingOccurrences(of: "\n\n", with: " ")
    }
}
