import Foundation

/// Byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2 vocabularies). Text is cut at special tokens, split
/// into words by the vocabulary's pre-tokenizer, and each word's bytes are merged pair by pair,
/// always the adjacent pair whose merge rule ranks highest (leftmost on ties) — the order Hugging Face
/// tokenizers and llama.cpp use. Words seen before come from a cache.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let vocabulary: BPEVocabulary
    public let preTokenizer: PreTokenizer
    private let specials: SpecialTokenMatcher
    private let idsByPiece: PieceTable
    /// The id of the one-character token for each byte, or -1 if the vocabulary lacks it.
    private let byteTokens: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Decoded bytes of every token: `tokenBytes[tokenStart[i]..<tokenStart[i+1]]`.
    private let tokenBytes: [UInt8]
    private let tokenStart: [Int]
    private let endOfGeneration: Set<Int32>
    private let cache = WordCache()
    /// Whether merged words are remembered (off to measure or test the merge loop alone).
    public let usesCache: Bool

    public var vocabularySize: Int { vocabulary.tokens.count }
    public var bos: Int32? { vocabulary.bos }
    public var eos: Int32? { vocabulary.eos }
    public var addsBOS: Bool { vocabulary.addBOS }
    public let chatTemplate: ChatTemplate?
    public var chatFormat: ChatFormat? {
        chatTemplate.map { ChatFormat(template: $0, source: vocabulary.chatTemplateSource, bosText: bos.flatMap(piece), eosText: eos.flatMap(piece)) }
    }

    public convenience init(gguf metadata: Metadata) throws {
        try self.init(vocabulary: BPEVocabulary(gguf: metadata))
    }

    public init(vocabulary v: BPEVocabulary, cachingWords: Bool = true) throws {
        vocabulary = v
        usesCache = cachingWords
        preTokenizer = PreTokenizer(kind: v.preTokenizer)
        guard v.kinds.count == v.tokens.count else {
            throw EngramError.format(file: v.file, detail: "tokenizer: \(v.kinds.count) token types for \(v.tokens.count) tokens")
        }
        let ids = PieceTable(v.tokens)
        idsByPiece = ids

        var bytesToken = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            bytesToken[b] = ids.id(ByteLevel.encode([UInt8(b)])) ?? -1
        }
        byteTokens = bytesToken

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(v.merges.count)
        var joined: [UInt8] = []
        for (rank, (a, b)) in v.merges.enumerated() {
            joined.removeAll(keepingCapacity: true)
            joined.append(contentsOf: a.utf8)
            let split = joined.count
            joined.append(contentsOf: b.utf8)
            // Rules whose parts or result are not tokens can never fire; both references skip them.
            let found = joined.withUnsafeBufferPointer { all -> (Int32, Int32, Int32)? in
                guard let l = ids.id(UnsafeBufferPointer(rebasing: all[..<split])),
                      let r = ids.id(UnsafeBufferPointer(rebasing: all[split...])),
                      let m = ids.id(all) else { return nil }
                return (l, r, m)
            }
            guard let (l, r, m) = found else { continue }
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m)) }
        }
        merges = table

        // Ordinary tokens spell bytes in the byte alphabet; added tokens (and any entry with a character
        // outside the alphabet) stand for their own UTF-8.
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        starts.reserveCapacity(v.tokens.count + 1)
        for (i, t) in v.tokens.enumerated() {
            let mark = bytes.count
            var spelled = v.kinds[i] != .control && v.kinds[i] != .userDefined && v.kinds[i] != .unknown
            if spelled {
                for scalar in t.unicodeScalars {
                    guard let b = ByteLevel.byte(for: scalar.value) else { spelled = false; break }
                    bytes.append(b)
                }
            }
            if !spelled {
                bytes.removeSubrange(mark...)
                bytes.append(contentsOf: t.utf8)
            }
            starts.append(bytes.count)
        }
        tokenBytes = bytes
        tokenStart = starts

        var stops = Set(v.endOfTurn)
        if let eos = v.eos { stops.insert(eos) }
        for (i, t) in v.tokens.enumerated() where v.kinds[i] == .control && ChatFormat.endOfTurnMarkers.contains(t) {
            stops.insert(Int32(i))
        }
        endOfGeneration = stops
        specials = SpecialTokenMatcher(v.specialTokens)
        chatTemplate = v.chatTemplateSource.flatMap(ChatFormat.detect)
    }

    // MARK: Tokenizer

    public func piece(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < vocabulary.tokens.count else { return nil }
        return vocabulary.tokens[Int(id)]
    }

    public func id(ofPiece piece: String) -> Int32? { idsByPiece.id(piece) }

    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < vocabulary.tokens.count else { return [] }
        return Array(tokenBytes[tokenStart[Int(id)]..<tokenStart[Int(id) + 1]])
    }

    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }

    public func isControl(_ id: Int32) -> Bool {
        guard id >= 0, Int(id) < vocabulary.kinds.count else { return false }
        return vocabulary.kinds[Int(id)] == .control
    }

    public func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0, Int(id) < vocabulary.tokens.count else { continue }
            if skipSpecial && vocabulary.kinds[Int(id)] == .control { continue }
            out.append(contentsOf: tokenBytes[tokenStart[Int(id)]..<tokenStart[Int(id) + 1]])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func encodeWithOffsets(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [TokenSpan] {
        let utf8 = Array(text.utf8)
        let n = utf8.count
        var out: [TokenSpan] = []
        out.reserveCapacity(n / 3 + 2)
        if addSpecial, vocabulary.addBOS, let bos { out.append(TokenSpan(id: bos, bytes: 0..<0)) }
        utf8.withUnsafeBufferPointer { bytes in
            var scratch = MergeScratch()
            var words: [Range<Int>] = []
            for segment in specials.segments(bytes, parseSpecial: parseSpecial) {
                switch segment {
                case let .token(id, range):
                    out.append(TokenSpan(id: id, bytes: range))
                case let .text(range):
                    if vocabulary.normalizesNFC, let composed = Self.composedIfChanged(bytes, range) {
                        encodeComposed(composed, &scratch, into: &out)
                        continue
                    }
                    words.removeAll(keepingCapacity: true)
                    preTokenizer.split(bytes, range, into: &words)
                    for w in words { encodeWord(bytes, w, &scratch, into: &out) }
                }
            }
        }
        if addSpecial, vocabulary.addEOS, let eos { out.append(TokenSpan(id: eos, bytes: n..<n)) }
        return out
    }

    // MARK: NFC

    /// Text composed to NFC, with where each grapheme cluster starts in the composed and in the original
    /// bytes, so that token spans can still point into the caller's text.
    private struct ComposedText {
        var bytes: [UInt8]
        var composedStarts: [Int]
        var originalStarts: [Int]
    }

    /// nil when `bytes[range]` is already NFC (always so for ASCII), which is nearly every text.
    private static func composedIfChanged(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> ComposedText? {
        guard bytes[range].contains(where: { $0 >= 0x80 }) else { return nil }
        let original = String(decoding: bytes[range], as: UTF8.self)
        guard !original.precomposedStringWithCanonicalMapping.utf8.elementsEqual(bytes[range]) else { return nil }
        // Composition never crosses a grapheme cluster, so clusters can be composed one by one.
        var composed = ComposedText(bytes: [], composedStarts: [], originalStarts: [])
        var at = range.lowerBound
        for cluster in original {
            composed.composedStarts.append(composed.bytes.count)
            composed.originalStarts.append(at)
            composed.bytes.append(contentsOf: String(cluster).precomposedStringWithCanonicalMapping.utf8)
            at += cluster.utf8.count
        }
        composed.composedStarts.append(composed.bytes.count)
        composed.originalStarts.append(at)
        return composed
    }

    private func encodeComposed(_ composed: ComposedText, _ scratch: inout MergeScratch, into out: inout [TokenSpan]) {
        var spans: [TokenSpan] = []
        composed.bytes.withUnsafeBufferPointer { bytes in
            var words: [Range<Int>] = []
            preTokenizer.split(bytes, 0..<bytes.count, into: &words)
            for w in words { encodeWord(bytes, w, &scratch, into: &spans) }
        }
        // A token's span is the original text of the clusters it touches.
        let starts = composed.composedStarts
        var lo = 0 // spans come in text order, so the search resumes where the last one ended
        for span in spans {
            while lo + 1 < starts.count, starts[lo + 1] <= span.bytes.lowerBound { lo += 1 }
            var hi = lo
            while hi < starts.count - 1, starts[hi] < span.bytes.upperBound { hi += 1 }
            out.append(TokenSpan(id: span.id, bytes: composed.originalStarts[lo]..<composed.originalStarts[hi]))
        }
    }

    // MARK: merging

    private func encodeWord(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>, _ scratch: inout MergeScratch, into out: inout [TokenSpan]) {
        let wordBytes = UnsafeBufferPointer(rebasing: bytes[word])
        if usesCache, let cached = cache.get(wordBytes) {
            var at = word.lowerBound
            var i = 0
            while i < cached.count {
                let length = Int(cached[i + 1])
                out.append(TokenSpan(id: cached[i], bytes: at..<(at + length)))
                at += length
                i += 2
            }
            return
        }
        let first = out.count
        merge(bytes, word, &scratch, into: &out)
        if usesCache {
            var packed: [Int32] = []
            packed.reserveCapacity(2 * (out.count - first))
            for span in out[first...] {
                packed.append(span.id)
                packed.append(Int32(span.bytes.count))
            }
            cache.set(wordBytes, packed)
        }
    }

    private func merge(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>, _ s: inout MergeScratch, into out: inout [TokenSpan]) {
        if vocabulary.ignoreMerges, let whole = wholeWord(bytes, word) {
            out.append(TokenSpan(id: whole, bytes: word))
            return
        }
        s.reset()
        for i in word {
            var id = byteTokens[Int(bytes[i])]
            if id < 0 {
                guard let unknown = vocabulary.unknown else { continue } // no way to spell the byte
                id = unknown
            }
            s.ids.append(id)
            s.starts.append(Int32(i))
        }
        let count = s.ids.count
        guard count > 0 else { return }
        for i in 0..<count {
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < count ? Int32(i + 1) : -1)
        }
        for i in 0..<(count - 1) {
            if let m = merges[pairKey(s.ids[i], s.ids[i + 1])] { s.push(rank: m >> 32, position: i) }
        }
        while let (rank, i) = s.pop() {
            // Stale entries: the left symbol was merged away, or the pair at i is no longer this rule.
            guard s.ids[i] >= 0 else { continue }
            let j = Int(s.next[i])
            guard j >= 0, let m = merges[pairKey(s.ids[i], s.ids[j])], m >> 32 == rank else { continue }
            s.ids[i] = Int32(truncatingIfNeeded: m)
            s.ids[j] = -1
            let after = s.next[j]
            s.next[i] = after
            if after >= 0 { s.prev[Int(after)] = Int32(i) }
            let before = Int(s.prev[i])
            if before >= 0, let m = merges[pairKey(s.ids[before], s.ids[i])] { s.push(rank: m >> 32, position: before) }
            if after >= 0, let m = merges[pairKey(s.ids[i], s.ids[Int(after)])] { s.push(rank: m >> 32, position: i) }
        }
        var i = 0
        while i >= 0 && i < count {
            let j = Int(s.next[i])
            let end = j >= 0 ? Int(s.starts[j]) : word.upperBound
            out.append(TokenSpan(id: s.ids[i], bytes: Int(s.starts[i])..<end))
            i = j
        }
    }

    private func wholeWord(_ bytes: UnsafeBufferPointer<UInt8>, _ word: Range<Int>) -> Int32? {
        var spelled: [UInt8] = []
        spelled.reserveCapacity(word.count * 2)
        for i in word {
            let c = ByteLevel.characters[Int(bytes[i])]
            if c < 0x80 {
                spelled.append(UInt8(c))
            } else { // U+0080…U+07FF: two UTF-8 bytes
                spelled.append(UInt8(0xC0 | (c >> 6)))
                spelled.append(UInt8(0x80 | (c & 0x3F)))
            }
        }
        return idsByPiece.id(spelled)
    }

    @inline(__always) private func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }
}

/// Per-call working memory of the merge loop: the word's symbols as a linked list and a min-heap of
/// candidate merges keyed by (rank, position).
private struct MergeScratch {
    var ids: [Int32] = []
    var starts: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap: [UInt64] = []

    mutating func reset() {
        ids.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
    }

    mutating func push(rank: UInt64, position: Int) {
        heap.append(rank << 32 | UInt64(position))
        var c = heap.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if heap[p] <= heap[c] { break }
            heap.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() -> (UInt64, Int)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var p = 0
            let n = heap.count
            while true {
                let l = 2 * p + 1
                if l >= n { break }
                let r = l + 1
                let c = (r < n && heap[r] < heap[l]) ? r : l
                if heap[p] <= heap[c] { break }
                heap.swapAt(p, c)
                p = c
            }
        }
        return (top >> 32, Int(top & 0xFFFF_FFFF))
    }
}

/// Word → merged tokens (id, byte length pairs), keyed by a hash of the word's bytes so that a hit
/// allocates nothing; the word is kept to rule out collisions. Bounded: cleared when it grows past
/// `limit`, so that a long-running server does not grow without end.
private final class WordCache: @unchecked Sendable {
    private struct Entry {
        var word: [UInt8]
        var tokens: [Int32]
    }

    private var table: [UInt64: Entry] = [:]
    private let lock = NSLock()
    private let limit = 1 << 17

    func get(_ word: UnsafeBufferPointer<UInt8>) -> [Int32]? {
        let key = PieceTable.hash(word)
        lock.lock()
        defer { lock.unlock() }
        guard let entry = table[key], entry.word.elementsEqual(word) else { return nil }
        return entry.tokens
    }

    func set(_ word: UnsafeBufferPointer<UInt8>, _ tokens: [Int32]) {
        let key = PieceTable.hash(word)
        lock.lock()
        defer { lock.unlock() }
        if table.count >= limit { table.removeAll(keepingCapacity: true) }
        table[key] = Entry(word: Array(word), tokens: tokens)
    }
}
