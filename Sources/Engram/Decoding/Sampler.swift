import Foundation

/// How the next token is chosen. Temperature 0 means greedy (argmax).
public struct SamplingParameters: Codable, Sendable, Equatable {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParameters()

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw EngramError.invalidArgument("temperature must be ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw EngramError.invalidArgument("top-k must be ≥ 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw EngramError.invalidArgument("top-p must be in (0, 1], got \(topP)") }
    }
}

/// A small, seedable generator (SplitMix64) so that sampled runs are reproducible across platforms.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Mixes several values into one seed (per-record, per-phase seeds).
    public static func mix(_ values: [UInt64]) -> UInt64 {
        var g = SplitMix64(seed: 0x5eed)
        var h: UInt64 = 0
        for v in values { g.state ^= v; h ^= g.next() }
        return h
    }
}

/// Picks tokens from logits: temperature, then top-k, then top-p (nucleus), then a draw.
/// Knows nothing about models or vocabularies.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    var rng: SplitMix64

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed)
    }

    public static func argmax(_ logits: UnsafePointer<Float>, count: Int) -> Int32 {
        var best = 0
        for i in 1..<count where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    /// The `k` largest logits in the order a stable sort by descending logit gives (ties: lower id
    /// first), found in one pass with a small insertion-sorted list: sorting the whole vocabulary for
    /// every sampled token was the bulk of short generations' time.
    static func topK(_ logits: UnsafePointer<Float>, count: Int, k: Int) -> [(id: Int32, logit: Float)] {
        var best: [(id: Int32, logit: Float)] = []
        best.reserveCapacity(k + 1)
        for i in 0..<count {
            let x = logits[i]
            if best.count == k && !(x > best[k - 1].logit) { continue }
            // After every equal logit already kept: a later id never overtakes an equal earlier one.
            var at = best.count
            while at > 0 && best[at - 1].logit < x { at -= 1 }
            best.insert((Int32(i), x), at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    public mutating func sample(_ logits: UnsafePointer<Float>, count: Int) -> Int32 {
        let p = parameters
        if p.temperature == 0 { return Sampler.argmax(logits, count: count) }
        // Candidates sorted by logit, cut to top-k.
        var candidates: [(id: Int32, logit: Float)]
        if p.topK > 0 && p.topK <= 64 && p.topK < count {
            candidates = Sampler.topK(logits, count: count, k: p.topK)
        } else if p.topK > 0 && p.topK < count {
            candidates = Array((0..<count).map { (id: Int32($0), logit: logits[$0]) }.sorted { $0.logit > $1.logit }.prefix(p.topK))
        } else {
            candidates = (0..<count).map { (id: Int32($0), logit: logits[$0]) }
            candidates.sort { $0.logit > $1.logit }
        }
        let maxLogit = candidates[0].logit
        var probs = candidates.map { Double(expf(($0.logit - maxLogit) / p.temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        // Nucleus: the smallest prefix whose mass reaches top-p.
        var keep = probs.count
        if p.topP < 1 {
            var mass = 0.0
            for (i, q) in probs.enumerated() {
                mass += q
                if mass >= Double(p.topP) { keep = i + 1; break }
            }
        }
        let kept = probs.prefix(keep)
        let draw = rng.nextUnit() * kept.reduce(0, +)
        var acc = 0.0
        for (i, q) in kept.enumerated() {
            acc += q
            if draw < acc { return candidates[i].id }
        }
        return candidates[keep - 1].id
    }
}
