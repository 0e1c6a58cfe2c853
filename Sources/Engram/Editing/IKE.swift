import Foundation

/// In-context knowledge editing (IKE, Zheng et al. 2023): the new fact and a few demonstrations are put in
/// the prompt; the weights are untouched. The patch carries only a `PromptContext`, and every query is
/// rendered as
///
///     <demonstrations>New Fact: <prompt> <target_new>
///     Prompt: <query>
///
/// Each demonstration is "New Fact: f\nPrompt: q a\n\n" for another record's fact f, of one of three kinds:
/// copy (q a = the fact itself), update (q = the record's paraphrase, a = its new target) and retain
/// (q a = one of its locality probes and that probe's answer, i.e. unrelated knowledge stays).
///
/// EasyEdit draws k demonstrations from a training split by sentence-embedding similarity. Ours are
/// deterministic and need no embedding model: they come from the other records of the same data file
/// (the `pool`), never from the record being edited. Starting after the record's own position in the
/// pool (or, for a record that is not in the pool, after a position given by a hash of its prompt), the
/// next k records in file order, wrapping around, are taken, skipping any record being edited. The
/// kinds cycle copy, update, retain; a record without a paraphrase (update) or a locality probe
/// (retain) gives a copy demonstration instead.
public final class IKE: Editor {
    public let pool: [EditRequest]
    public let k: Int

    public init(pool: [EditRequest], k: Int = 4) {
        self.pool = pool
        self.k = max(0, k)
    }

    public var name: String { "IKE" }

    public var hyperParameters: [String: String] {
        ["k": String(k), "pool_size": String(pool.count), "selection": "next-k-in-file-order", "kinds": "copy,update,retain"]
    }

    public enum Kind: String, Sendable { case copy, update, retain }

    /// One demonstration's text and which kind it is.
    public static func demonstration(_ r: EditRequest, kind: Kind) -> (text: String, kind: Kind) {
        let fact = r.statement
        switch kind {
        case .update:
            if let q = r.rephrasePrompts.first { return ("New Fact: \(fact)\nPrompt: \(EditRequest.join(q, r.targetNew))\n\n", .update) }
        case .retain:
            if let probe = r.locality.lazy.flatMap(\.items).first, let a = probe.gold {
                return ("New Fact: \(fact)\nPrompt: \(EditRequest.join(probe.prompt, a))\n\n", .retain)
            }
        case .copy: break
        }
        return ("New Fact: \(fact)\nPrompt: \(fact)\n\n", .copy)
    }

    /// The pool positions of the demonstrations for these requests (at most k, fewer if the pool is small).
    public func demonstrationIndices(for requests: [EditRequest]) -> [Int] {
        guard !pool.isEmpty, k > 0, let first = requests.first else { return [] }
        let anchor = pool.firstIndex(of: first) ?? Int(IKE.fnv1a(first.prompt + "\u{0}" + first.targetNew) % UInt64(pool.count))
        var chosen: [Int] = []
        var step = 1
        while chosen.count < k, step <= pool.count {
            let i = (anchor + step) % pool.count
            step += 1
            if requests.contains(pool[i]) { continue }
            chosen.append(i)
        }
        return chosen
    }

    public func context(for requests: [EditRequest]) -> PromptContext {
        let kinds: [Kind] = [.copy, .update, .retain]
        let demos = demonstrationIndices(for: requests).enumerated().map { IKE.demonstration(pool[$0.element], kind: kinds[$0.offset % 3]).text }
        return PromptContext(demonstrations: demos.joined(), facts: requests.map(\.statement))
    }

    public func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        guard !requests.isEmpty else { throw EngramError.invalidArgument("IKE: no edit requests given") }
        return EditPatch(method: name, hyperParameters: hyperParameters, requests: requests, context: context(for: requests),
                         metadata: ["demonstrations": demonstrationIndices(for: requests).map(String.init).joined(separator: ",")])
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }
}
