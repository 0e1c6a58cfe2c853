import Foundation

/// Runs many contexts through the model, computing a prefix that several of them share only once.
/// In-context editing puts the same demonstrations and new fact before every probe of a record, so the
/// probes of one record mostly differ in their last few tokens.
enum PrefixSharing {
    /// Shorter common prefixes are not worth a separate pass.
    static let minimumShared = 8

    /// Items ordered so that contexts with common prefixes are neighbours (and land in the same batch).
    static func order(_ contexts: [[Int32]]) -> [Int] {
        contexts.indices.sorted { a, b in
            contexts[a].lexicographicallyPrecedes(contexts[b]) || (contexts[a] == contexts[b] && a < b)
        }
    }

    /// A cache per context holding its first `count - keep` tokens (the rest is left for the caller's
    /// pass with logits). Every returned cache is the item's own.
    static func prefill(_ model: LanguageModel, contexts: [[Int32]], keep: Int, capacity: [Int]) throws -> [KVCache] {
        let lengths = contexts.map { max(0, $0.count - keep) }
        // Greedy clusters: an item joins the first earlier leader it shares enough tokens with.
        var leaders: [Int] = [], shared: [Int] = []
        var cluster = [Int](repeating: -1, count: contexts.count)
        for i in contexts.indices where lengths[i] >= minimumShared {
            for (c, leader) in leaders.enumerated() {
                var n = 0
                let limit = min(lengths[i], shared[c])
                while n < limit, contexts[i][n] == contexts[leader][n] { n += 1 }
                if n >= minimumShared {
                    cluster[i] = c
                    shared[c] = n
                    break
                }
            }
            if cluster[i] < 0 {
                cluster[i] = leaders.count
                leaders.append(i)
                shared.append(lengths[i])
            }
        }
        let members = (0..<leaders.count).map { c in contexts.indices.filter { cluster[$0] == c } }
        // 1. Each shared prefix once (clusters of one item just run their own prefix in step 2).
        var prefixCaches: [Int: KVCache] = [:]
        var prefixInputs: [SequenceInput] = []
        for (c, leader) in leaders.enumerated() where members[c].count > 1 {
            let cache = model.makeCache(capacity: members[c].map { capacity[$0] }.max() ?? capacity[leader])
            prefixCaches[c] = cache
            prefixInputs.append(SequenceInput(tokens: Array(contexts[leader][0..<shared[c]]), cache: cache))
        }
        if !prefixInputs.isEmpty { _ = try model.forward(prefixInputs, hooks: nil, logits: .none) }
        // 2. The rest of every context, each in its own cache.
        var caches: [KVCache] = []
        var rest: [SequenceInput] = []
        for i in contexts.indices {
            let start: Int
            let cache: KVCache
            if cluster[i] >= 0, let base = prefixCaches[cluster[i]] {
                cache = base.copy()
                start = shared[cluster[i]]
            } else {
                cache = model.makeCache(capacity: capacity[i])
                start = 0
            }
            caches.append(cache)
            if start < lengths[i] { rest.append(SequenceInput(tokens: Array(contexts[i][start..<lengths[i]]), cache: cache)) }
        }
        if !rest.isEmpty { _ = try model.forward(rest, hooks: nil, logits: .none) }
        return caches
    }
}
