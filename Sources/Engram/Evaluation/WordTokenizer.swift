import Foundation

/// Word tokenization as NLTK's `word_tokenize` does it (sentence splitting with Punkt, then the improved
/// Penn Treebank rules of `NLTKWordTokenizer` on each sentence), reimplemented so that fluency (n-gram
/// entropy) needs no Python at run time.
///
/// Punkt normally loads a model trained on English text (abbreviations, collocations, sentence starters,
/// orthographic statistics). We do not ship that model. Our splitter applies the Punkt decision rules
/// with an abbreviation list of our own (`abbreviations`) and no learned collocations, sentence
/// starters or orthographic context. Sentences then end at '?', '!' and at a period after any word that
/// is not a listed abbreviation, an ellipsis, an initial followed by a capitalised word, or a number
/// or initial followed by a lower-case word or punctuation. The fixture in the tests was produced by NLTK
/// configured the same way; with the trained English model the result can differ where those learned
/// statistics would have decided a period.
public enum WordTokenizer {
    /// `nltk.word_tokenize(text)` under the Punkt configuration described above.
    public static func tokenize(_ text: String) -> [String] {
        PunktSplitter.sentences(text).flatMap { TreebankRules.tokenize($0) }
    }

    /// Abbreviations (lower case, without the final period) after which a period does not end a sentence.
    public static let abbreviations: Set<String> = [
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen", "col", "lt", "maj",
        "capt", "sgt", "adm", "inc", "ltd", "corp", "bros", "dept", "univ", "ave", "blvd", "vol", "vols", "pp",
        "fig", "figs", "approx", "etc", "vs", "cf", "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m", "jan", "feb",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    ]
}

/// A compiled substitution rule: ICU pattern and template (`$1` for group 1).
struct RegexRule {
    let regex: NSRegularExpression
    let template: String

    init(_ pattern: String, _ template: String, options: NSRegularExpression.Options = []) {
        // The patterns are constants of this file; a failure is a programming error caught by the tests.
        regex = try! NSRegularExpression(pattern: pattern, options: options)
        self.template = template
    }

    func apply(_ text: String) -> String {
        let ns = text as NSString
        return regex.stringByReplacingMatches(in: text, options: [], range: NSRange(location: 0, length: ns.length), withTemplate: template)
    }
}

/// The substitutions of NLTK's improved Treebank tokenizer, in its order. Each pads a token with spaces
/// so that the final whitespace split separates it.
enum TreebankRules {
    static let startingQuotes: [RegexRule] = [
        RegexRule("([«“‘„]|[`]+)", " $1 "),                    // opening quote characters
        RegexRule("^\"", "``"),                                  // a double quote at the very start opens
        RegexRule("(``)", " $1 "),
        RegexRule("([ (\\[{<])(\"|'{2})", "$1 `` "),            // a double quote after space/bracket opens
        RegexRule("(?i)(?<!\\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)", "$1 "), // opening single quote, not a clitic
    ]

    static let punctuation: [RegexRule] = [
        RegexRule("([^.])(\\.)([\\])}>\"'»”’ ]*+)\\s*$", "$1 $2 $3 "), // final period, before closing quotes/brackets
        RegexRule("([:,])([^\\d])", " $1 $2"),                   // colon or comma, unless inside a number
        RegexRule("([:,])$", " $1 "),
        RegexRule("\\.{2,}", " $0 "),                            // ellipsis
        RegexRule("[;@#\\$%\\&]", " $0 "),
        RegexRule("[\\u2012-\\u2015]", " $0 "),                  // figure, en and em dashes, horizontal bar
        RegexRule("([^.])(\\.)([\\])}>\"']*)\\s*$", "$1 $2$3 "),
        RegexRule("[?!]", " $0 "),
        RegexRule("([^'])' ", "$1 ' "),
        RegexRule("[*]", " $0 "),
    ]

    static let brackets = RegexRule("[\\]\\[(){}<>]", " $0 ")
    static let doubleDash = RegexRule("--", " -- ")

    static let endingQuotes: [RegexRule] = [
        RegexRule("([»”’])", " $1 "),
        RegexRule("''", " '' "),
        RegexRule("\"", " '' "),                                 // any remaining double quote closes
        RegexRule("\\s+", " "),
        RegexRule("([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),   // clitics 's 'm 'd and a bare closing '
        RegexRule("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
    ]

    /// Words the Treebank splits in two (cannot → can not, gonna → gon na, …).
    static let contractions: [RegexRule] = [
        RegexRule("(?i)\\b(can)(not)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(d)('ye)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(gim)(me)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(gon)(na)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(got)(ta)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(lem)(me)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(more)('n)\\b", " $1 $2 "),
        RegexRule("(?i)\\b(wan)(na)(?=\\s)", " $1 $2 "),
        RegexRule("(?i) ('t)(is)\\b", " $1 $2 "),
        RegexRule("(?i) ('t)(was)\\b", " $1 $2 "),
    ]

    /// Tokens of one sentence.
    static func tokenize(_ sentence: String) -> [String] {
        var text = sentence
        for rule in startingQuotes { text = rule.apply(text) }
        for rule in punctuation { text = rule.apply(text) }
        text = brackets.apply(text)
        text = doubleDash.apply(text)
        text = " " + text + " "
        for rule in endingQuotes { text = rule.apply(text) }
        for rule in contractions { text = rule.apply(text) }
        return text.split(whereSeparator: \.isWhitespace).map(String.init)
    }
}

/// Punkt sentence boundary detection (Kiss & Strunk 2006) with fixed parameters: an abbreviation list
/// and no learned statistics. Offsets are UTF-16 positions of an NSString throughout.
enum PunktSplitter {
    static let nonWord = "(?:[)\";}\\]*:@'({\\[\\u2018\\u2019\\u201c\\u201d\\u00ab\\u00bb?!])"
    static let multiChar = "(?:-{2,}|\\.{2,}|(?:\\.\\s){2,}\\.)"
    static let wordStart = "[^(\"`{\\[:;\\&#*@)}\\]\\-,]"

    /// Punkt's word splitter (it separates punctuation other than periods).
    static let words = try! NSRegularExpression(pattern:
        "(\(multiChar)|(?=\(wordStart))\\S+?(?=\\s|$|\(nonWord)|\(multiChar)|,(?=$|\\s|\(nonWord)|\(multiChar)))|\\S)")
    /// A candidate sentence end and what follows it.
    static let periodContext = try! NSRegularExpression(pattern: "[.?!](?=(\(nonWord)|\\s+(\\S+)))")
    /// Closing punctuation that belongs to the sentence before the break.
    static let realignment = try! NSRegularExpression(pattern: "[\"')\\]}\\u2018\\u2019\\u201c\\u201d\\u00ab\\u00bb]+?(?:\\s+|(?=--)|$)",
                                                      options: [.anchorsMatchLines])
    static let numeric = try! NSRegularExpression(pattern: "^-?[.,]?\\d[\\d,.-]*\\.?$")
    static let initial = try! NSRegularExpression(pattern: "^[^\\W\\d]\\.$")
    static let ellipsis = try! NSRegularExpression(pattern: "^\\.\\.+$")

    struct Token {
        let text: String
        var sentbreak = false
        var abbreviation = false
        var ellipsis = false

        init(_ text: String) { self.text = text }

        static func matches(_ re: NSRegularExpression, _ s: String) -> Bool {
            re.firstMatch(in: s, range: NSRange(location: 0, length: (s as NSString).length)) != nil
        }

        var type: String {
            let lower = text.lowercased()
            return Token.matches(PunktSplitter.numeric, lower) ? "##number##" : lower
        }
        var periodFinal: Bool { text.hasSuffix(".") }
        var typeNoPeriod: String {
            let t = type
            return t.count > 1 && t.hasSuffix(".") ? String(t.dropLast()) : t
        }
        var isInitial: Bool { Token.matches(PunktSplitter.initial, text) }
        var isEllipsis: Bool { Token.matches(PunktSplitter.ellipsis, text) }
        var firstUpper: Bool { text.first?.isUppercase ?? false }
        var firstLower: Bool { text.first?.isLowercase ?? false }
    }

    static func sentences(_ text: String) -> [String] {
        let ns = text as NSString
        return spans(ns).map { ns.substring(with: NSRange(location: $0.lowerBound, length: $0.count)) }
    }

    static func wordTokens(_ text: String) -> [Token] {
        var out: [Token] = []
        for line in text.components(separatedBy: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let ns = line as NSString
            for m in words.matches(in: line, range: NSRange(location: 0, length: ns.length)) {
                out.append(Token(ns.substring(with: m.range(at: 1))))
            }
        }
        return out
    }

    /// First pass: decisions from the token alone.
    static func annotateFirst(_ t: inout Token) {
        let s = t.text
        if s == "." || s == "?" || s == "!" { t.sentbreak = true }
        else if t.isEllipsis { t.ellipsis = true }
        else if t.periodFinal && !s.hasSuffix("..") {
            let stem = String(s.dropLast()).lowercased()
            let lastPart = stem.split(separator: "-", omittingEmptySubsequences: false).last.map(String.init) ?? stem
            if WordTokenizer.abbreviations.contains(stem) || WordTokenizer.abbreviations.contains(lastPart) {
                t.abbreviation = true
            } else {
                t.sentbreak = true
            }
        }
    }

    /// Orthographic evidence that `t` starts a sentence. With no learned statistics the answer is
    /// "no" for punctuation and lower-case words, otherwise unknown (nil).
    static func startsSentence(_ t: Token) -> Bool? {
        if [";", ":", ",", ".", "!", "?"].contains(t.text) { return false }
        if t.firstLower { return false }
        return nil
    }

    /// Second pass: initials and ordinals followed by non-sentence-starters are abbreviations.
    static func annotateSecond(_ a: inout Token, next b: Token) {
        guard a.periodFinal else { return }
        let isInitial = a.isInitial
        if isInitial || a.typeNoPeriod == "##number##" {
            let starter = startsSentence(b)
            if starter == false {
                a.sentbreak = false
                a.abbreviation = true
                return
            }
            if starter == nil, isInitial, b.firstUpper {
                a.sentbreak = false
                a.abbreviation = true
            }
        }
    }

    static func containsBreak(_ text: String) -> Bool {
        var tokens = wordTokens(text)
        for i in tokens.indices { annotateFirst(&tokens[i]) }
        for i in tokens.indices.dropLast() { annotateSecond(&tokens[i], next: tokens[i + 1]) }
        var found = false
        for t in tokens {
            if found { return true }
            if t.sentbreak { found = true }
        }
        return false
    }

    static func isASCIIWhitespace(_ c: unichar) -> Bool { c == 32 || (9...13).contains(c) }

    /// Candidate breaks with their context (the word before, the mark and what follows), dropping
    /// candidates whose word overlaps the previous one ("acting!!!" gives one candidate).
    static func candidates(_ ns: NSString) -> [(NSTextCheckingResult, String)] {
        var out: [(NSTextCheckingResult, String)] = []
        var previous: (NSTextCheckingResult, Range<Int>)?
        var previousSlice = 0..<0
        func context(_ m: NSTextCheckingResult, _ slice: Range<Int>) -> String {
            let after = m.range(at: 1)
            return ns.substring(with: NSRange(location: slice.lowerBound, length: slice.count))
                + ns.substring(with: m.range) + (after.location == NSNotFound ? "" : ns.substring(with: after))
        }
        for m in periodContext.matches(in: ns as String, range: NSRange(location: 0, length: ns.length)) {
            var lastSpace = 0
            var i = m.range.location - 1
            while i >= previousSlice.upperBound {
                if isASCIIWhitespace(ns.character(at: i)) { lastSpace = i - previousSlice.upperBound; break }
                i -= 1
            }
            let start = lastSpace != 0 ? previousSlice.upperBound + lastSpace + 1 : previousSlice.lowerBound
            let wordSlice = start..<m.range.location
            if let (pm, ps) = previous, ps.upperBound <= wordSlice.lowerBound { out.append((pm, context(pm, ps))) }
            previous = (m, wordSlice)
            previousSlice = wordSlice
        }
        if let (pm, ps) = previous { out.append((pm, context(pm, ps))) }
        return out
    }

    static func spans(_ ns: NSString) -> [Range<Int>] {
        var slices: [Range<Int>] = []
        var lastBreak = 0
        for (m, ctx) in candidates(ns) where containsBreak(ctx) {
            let end = m.range.location + m.range.length
            slices.append(lastBreak..<end)
            let next = m.range(at: 2)
            lastBreak = next.location != NSNotFound ? next.location : end
        }
        var stop = ns.length
        while stop > 0, let scalar = Unicode.Scalar(ns.character(at: stop - 1)), scalar.properties.isWhitespace { stop -= 1 }
        slices.append(lastBreak..<max(lastBreak, stop))

        // Realign closing quotes/brackets after a break onto the sentence they close.
        var out: [Range<Int>] = []
        var realign = 0
        for (i, s) in slices.enumerated() {
            let first = (s.lowerBound + realign)..<max(s.lowerBound + realign, s.upperBound)
            guard i + 1 < slices.count else {
                if !first.isEmpty { out.append(first) }
                continue
            }
            let second = slices[i + 1]
            let secondText = ns.substring(with: NSRange(location: second.lowerBound, length: second.count))
            if let m = realignment.firstMatch(in: secondText, options: [.anchored], range: NSRange(location: 0, length: (secondText as NSString).length)) {
                let matched = (secondText as NSString).substring(with: m.range)
                let trimmed = matched.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
                out.append(first.lowerBound..<(second.lowerBound + (trimmed as NSString).length))
                realign = m.range.location + m.range.length
            } else {
                realign = 0
                if !first.isEmpty { out.append(first) }
            }
        }
        return out
    }
}
