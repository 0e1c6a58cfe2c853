import Foundation
import XCTest
@testable import Engram

final class EvalEntropyTests: XCTestCase {
    /// mean(2/3 · H2, 4/3 · H3), written out independently of the code under test.
    func weighted(_ h2: Double, _ h3: Double) -> Double { (h2 * 2.0 / 3.0 + h3 * 4.0 / 3.0) / 2.0 }
    func plogp(_ p: Double) -> Double { p * log2(p) }

    // MARK: n-gram entropy on texts whose answer is known

    func testEntropyOfKnownWordSequences() {
        // "a b a b": bigrams (a,b)×2 (b,a)×1 → H2 = −(2/3 log2 2/3 + 1/3 log2 1/3); trigrams (a,b,a), (b,a,b) → H3 = 1.
        let third: Double = 1.0 / 3.0
        let h2: Double = -(2 * third * log2(2 * third) + third * log2(third))
        XCTAssertEqual(NGramEntropy.entropy(words: ["a", "b", "a", "b"], n: 2), h2, accuracy: 1e-12)
        XCTAssertEqual(NGramEntropy.entropy(words: ["a", "b", "a", "b"], n: 3), 1, accuracy: 1e-12)
        XCTAssertEqual(NGramEntropy.score(words: ["a", "b", "a", "b"]), weighted(h2, 1), accuracy: 1e-12)
        // Eight distinct words: 7 distinct bigrams and 6 distinct trigrams, uniform.
        let distinct = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"]
        XCTAssertEqual(NGramEntropy.score(words: distinct), weighted(log2(7.0), log2(6.0)), accuracy: 1e-12)
        // One repeated word carries no information; fewer words than n give 0.
        XCTAssertEqual(NGramEntropy.score(words: Array(repeating: "x", count: 20)), 0)
        XCTAssertEqual(NGramEntropy.score(words: ["only"]), 0)
        XCTAssertEqual(NGramEntropy.score(words: ["two", "words"]), 0, "one bigram has zero entropy and there is no trigram")
    }

    func testEntropyOfText() {
        // "Paris is the capital of France." ×3 → 21 words (periods split by the tokenizer).
        let text = "Paris is the capital of France. Paris is the capital of France. Paris is the capital of France."
        let words = WordTokenizer.tokenize(text)
        XCTAssertEqual(words.count, 21)
        // Bigrams: 20 in all, 7 distinct; (".", "Paris") twice, the other six three times each.
        let h2: Double = -(6 * plogp(3.0 / 20.0) + plogp(2.0 / 20.0))
        // Trigrams: 19 in all, 7 distinct; the two spanning "." "Paris" occur twice, the other five three times.
        let h3: Double = -(5 * plogp(3.0 / 19.0) + 2 * plogp(2.0 / 19.0))
        XCTAssertEqual(NGramEntropy.score(text), weighted(h2, h3), accuracy: 1e-12)
        XCTAssertLessThan(NGramEntropy.score(text), NGramEntropy.score("The quick brown fox jumps over the lazy dog near a quiet river bank."))
    }

    func testPrepareNormalisesLikeGenerateFast() {
        XCTAssertEqual(NGramEntropy.prepare("ﬁne\n\nnext"), "fine next")
    }

    // MARK: NLTK word_tokenize

    func testWordTokenizerMatchesNLTK() throws {
        let cases = try JSONSerialization.jsonObject(with: Data(EvalEntropyTests.nltkFixture.utf8)) as! [[String: Any]]
        XCTAssertEqual(cases.count, 20)
        for c in cases {
            let text = c["text"] as! String
            XCTAssertEqual(WordTokenizer.tokenize(text), c["tokens"] as! [String], "text: \(text)")
        }
    }

    /// Produced by NLTK 3.10.4 (pip package `nltk`) configured as our tokenizer documents: Punkt with our
    /// abbreviation list and no learned statistics, then NLTKWordTokenizer on each sentence:
    ///
    // import json
    // from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktParameters
    // from nltk.tokenize.destructive import NLTKWordTokenizer
    // ABBREV = ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen", "col", "lt", "maj",
    //         "capt", "sgt", "adm", "inc", "ltd", "corp", "bros", "dept", "univ", "ave", "blvd", "vol", "vols", "pp",
    //         "fig", "figs", "approx", "etc", "vs", "cf", "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m", "jan", "feb",
    //         "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
    // params = PunktParameters()
    // params.abbrev_types = set(ABBREV)
    // punkt = PunktSentenceTokenizer(params)
    // words = NLTKWordTokenizer()
    // def word_tokenize(text):
    //     return [t for s in punkt.tokenize(text) for t in words.tokenize(s)]
    // texts = [
    //  "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.",
    //  "The mother tongue of Danielle Darrieux is French. She was born in Bordeaux, France.",
    //  "Mr. Smith went to Washington, D.C. in Jan. 1990. He met Dr. J. Watson there.",
    //  "\"I can't do it,\" she said. 'Tis true -- we're gonna win!",
    //  "Is it? Yes! It is... maybe (or not) [really] {no} <tag>.",
    //  "The U.S. economy grew 3.5% in 2019; exports rose e.g. to Canada.",
    //  "He said “hello” and left. ‘Quoted’ text « guillemets » here.",
    //  "Prices: 1,000 dollars, 2:30 p.m. on Sept. 5th. Call 555-1234.",
    //  "Wait... what? That's it. The end.\n\nA new paragraph starts here. It ends here",
    //  "The 3. item is here. Item no. 4 follows. In 1990. The war ended.",
    //  "She lives in St. Louis. J. R. R. Tolkien wrote it. A. b. c.",
    //  "Don't you think they'd've left? I'm sure we'll see. You're right, aren't you?",
    //  "Hey Jude was performed by Madonna, who is a citizen of Australia. The official language of Australia is Arabic.",
    //  "Paris is the capital of France. Paris is the capital of France. Paris is the capital of France.",
    //  "email me at a@b.com #hashtag & more * stars — dashes – here.",
    //  "(Sent1.) Sent2. \"Quoted sentence.\" Next one.",
    //  "Gimme that. Lemme see. I wanna go, more'n you.",
    //  "",
    //  "   ",
    //  "one",
    // ]
    // out = [{"text": t, "tokens": word_tokenize(t)} for t in texts]
    // print(json.dumps(out, ensure_ascii=False, indent=1))
    static let nltkFixture = #"""
[
 {
  "text": "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.",
  "tokens": [
   "Good",
   "muffins",
   "cost",
   "$",
   "3.88",
   "in",
   "New",
   "York",
   ".",
   "Please",
   "buy",
   "me",
   "two",
   "of",
   "them",
   ".",
   "Thanks",
   "."
  ]
 },
 {
  "text": "The mother tongue of Danielle Darrieux is French. She was born in Bordeaux, France.",
  "tokens": [
   "The",
   "mother",
   "tongue",
   "of",
   "Danielle",
   "Darrieux",
   "is",
   "French",
   ".",
   "She",
   "was",
   "born",
   "in",
   "Bordeaux",
   ",",
   "France",
   "."
  ]
 },
 {
  "text": "Mr. Smith went to Washington, D.C. in Jan. 1990. He met Dr. J. Watson there.",
  "tokens": [
   "Mr.",
   "Smith",
   "went",
   "to",
   "Washington",
   ",",
   "D.C",
   ".",
   "in",
   "Jan.",
   "1990",
   ".",
   "He",
   "met",
   "Dr.",
   "J.",
   "Watson",
   "there",
   "."
  ]
 },
 {
  "text": "\"I can't do it,\" she said. 'Tis true -- we're gonna win!",
  "tokens": [
   "``",
   "I",
   "ca",
   "n't",
   "do",
   "it",
   ",",
   "''",
   "she",
   "said",
   ".",
   "'",
   "Tis",
   "true",
   "--",
   "we",
   "'re",
   "gon",
   "na",
   "win",
   "!"
  ]
 },
 {
  "text": "Is it? Yes! It is... maybe (or not) [really] {no} <tag>.",
  "tokens": [
   "Is",
   "it",
   "?",
   "Yes",
   "!",
   "It",
   "is",
   "...",
   "maybe",
   "(",
   "or",
   "not",
   ")",
   "[",
   "really",
   "]",
   "{",
   "no",
   "}",
   "<",
   "tag",
   ">",
   "."
  ]
 },
 {
  "text": "The U.S. economy grew 3.5% in 2019; exports rose e.g. to Canada.",
  "tokens": [
   "The",
   "U.S.",
   "economy",
   "grew",
   "3.5",
   "%",
   "in",
   "2019",
   ";",
   "exports",
   "rose",
   "e.g.",
   "to",
   "Canada",
   "."
  ]
 },
 {
  "text": "He said “hello” and left. ‘Quoted’ text « guillemets » here.",
  "tokens": [
   "He",
   "said",
   "“",
   "hello",
   "”",
   "and",
   "left",
   ".",
   "‘",
   "Quoted",
   "’",
   "text",
   "«",
   "guillemets",
   "»",
   "here",
   "."
  ]
 },
 {
  "text": "Prices: 1,000 dollars, 2:30 p.m. on Sept. 5th. Call 555-1234.",
  "tokens": [
   "Prices",
   ":",
   "1,000",
   "dollars",
   ",",
   "2:30",
   "p.m.",
   "on",
   "Sept.",
   "5th",
   ".",
   "Call",
   "555-1234",
   "."
  ]
 },
 {
  "text": "Wait... what? That's it. The end.\n\nA new paragraph starts here. It ends here",
  "tokens": [
   "Wait",
   "...",
   "what",
   "?",
   "That",
   "'s",
   "it",
   ".",
   "The",
   "end",
   ".",
   "A",
   "new",
   "paragraph",
   "starts",
   "here",
   ".",
   "It",
   "ends",
   "here"
  ]
 },
 {
  "text": "The 3. item is here. Item no. 4 follows. In 1990. The war ended.",
  "tokens": [
   "The",
   "3.",
   "item",
   "is",
   "here",
   ".",
   "Item",
   "no",
   ".",
   "4",
   "follows",
   ".",
   "In",
   "1990",
   ".",
   "The",
   "war",
   "ended",
   "."
  ]
 },
 {
  "text": "She lives in St. Louis. J. R. R. Tolkien wrote it. A. b. c.",
  "tokens": [
   "She",
   "lives",
   "in",
   "St.",
   "Louis",
   ".",
   "J.",
   "R.",
   "R.",
   "Tolkien",
   "wrote",
   "it",
   ".",
   "A.",
   "b.",
   "c",
   "."
  ]
 },
 {
  "text": "Don't you think they'd've left? I'm sure we'll see. You're right, aren't you?",
  "tokens": [
   "Do",
   "n't",
   "you",
   "think",
   "they'd",
   "'ve",
   "left",
   "?",
   "I",
   "'m",
   "sure",
   "we",
   "'ll",
   "see",
   ".",
   "You",
   "'re",
   "right",
   ",",
   "are",
   "n't",
   "you",
   "?"
  ]
 },
 {
  "text": "Hey Jude was performed by Madonna, who is a citizen of Australia. The official language of Australia is Arabic.",
  "tokens": [
   "Hey",
   "Jude",
   "was",
   "performed",
   "by",
   "Madonna",
   ",",
   "who",
   "is",
   "a",
   "citizen",
   "of",
   "Australia",
   ".",
   "The",
   "official",
   "language",
   "of",
   "Australia",
   "is",
   "Arabic",
   "."
  ]
 },
 {
  "text": "Paris is the capital of France. Paris is the capital of France. Paris is the capital of France.",
  "tokens": [
   "Paris",
   "is",
   "the",
   "capital",
   "of",
   "France",
   ".",
   "Paris",
   "is",
   "the",
   "capital",
   "of",
   "France",
   ".",
   "Paris",
   "is",
   "the",
   "capital",
   "of",
   "France",
   "."
  ]
 },
 {
  "text": "email me at a@b.com #hashtag & more * stars — dashes – here.",
  "tokens": [
   "email",
   "me",
   "at",
   "a",
   "@",
   "b.com",
   "#",
   "hashtag",
   "&",
   "more",
   "*",
   "stars",
   "—",
   "dashes",
   "–",
   "here",
   "."
  ]
 },
 {
  "text": "(Sent1.) Sent2. \"Quoted sentence.\" Next one.",
  "tokens": [
   "(",
   "Sent1",
   ".",
   ")",
   "Sent2",
   ".",
   "``",
   "Quoted",
   "sentence",
   ".",
   "''",
   "Next",
   "one",
   "."
  ]
 },
 {
  "text": "Gimme that. Lemme see. I wanna go, more'n you.",
  "tokens": [
   "Gim",
   "me",
   "that",
   ".",
   "Lem",
   "me",
   "see",
   ".",
   "I",
   "wan",
   "na",
   "go",
   ",",
   "more",
   "'n",
   "you",
   "."
  ]
 },
 {
  "text": "",
  "tokens": []
 },
 {
  "text": "   ",
  "tokens": []
 },
 {
  "text": "one",
  "tokens": [
   "one"
  ]
 }
]
"""#
}
