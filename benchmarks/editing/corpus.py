"""Engram's statistics corpus in Python: the documents of TextCorpus (Sources/Engram/Editing/KeyStatistics.swift)
in the same order, so that EasyEdit's layer_stats can be given exactly the documents Engram's key statistics
use (the first D of them).

TextCorpus: split the file on every newline form (Swift's Character.isNewline: LF, VT, FF, CR, CR LF, NEL,
LS, PS), trim spaces and tabs (CharacterSet.whitespaces: tab and the Unicode space separators), drop empty
lines and WikiText headings (lines that start and end with '='), then shuffle with Swift's Fisher-Yates
shuffle (MutableCollection.shuffle(using:)) driven by SplitMix64(seed: 1), drawing each index with the
standard library's Int.random(in: 0..<n, using:) (Lemire's multiply-shift with rejection).

  python corpus.py [PATH] [D]     prints the count, sha256 and the first D documents (checks)
"""
import hashlib
import os
import re
import sys
import unicodedata

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_PATH = os.path.join(REPO, "fixtures", "wikitext-2", "wiki.test.raw")
MASK = (1 << 64) - 1
_NEWLINES = re.compile("\r\n|[\n\x0b\x0c\r\x85\u2028\u2029]")


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        """RandomNumberGenerator.next(upperBound:) for UInt64."""
        m = self.next() * bound
        if (m & MASK) < bound:
            t = ((1 << 64) - bound) % bound
            while (m & MASK) < t:
                m = self.next() * bound
        return m >> 64


def _is_space(c):
    return c == "\t" or unicodedata.category(c) == "Zs"


def _trim(s):
    i, j = 0, len(s)
    while i < j and _is_space(s[i]):
        i += 1
    while j > i and _is_space(s[j - 1]):
        j -= 1
    return s[i:j]


def documents(path=DEFAULT_PATH):
    """All documents of the corpus in Engram's order."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    docs = [d for d in (_trim(line) for line in _NEWLINES.split(text))
            if d and not (d.startswith("=") and d.endswith("="))]
    rng = SplitMix64(1)
    n = len(docs)
    for i in range(n - 1):          # amount = n, n-1, ..., 2
        j = i + rng.below(n - i)
        docs[i], docs[j] = docs[j], docs[i]
    return docs


def sha256(path=DEFAULT_PATH):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    docs = documents(path)
    print(len(docs), "documents; sha256", sha256(path))
    for doc in docs[:d]:
        print("-", doc[:100])
