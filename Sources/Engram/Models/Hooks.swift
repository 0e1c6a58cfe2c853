import Foundation

/// Named places in the forward pass where a hidden state can be read or replaced.
/// Editors address weights and activations through these, never through module paths.
public enum HookSite: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Token (+ position) embeddings entering block 0, width d.
    case embedding
    /// Output of the attention output projection of a block, width d.
    case attentionOutput(Int)
    /// Input of the MLP down projection (ROME's "key"), width m.
    case mlpKey(Int)
    /// Output of the MLP (down projection), width d.
    case mlpOutput(Int)
    /// Residual stream after the block, width d.
    case residual(Int)

    public var description: String {
        switch self {
        case .embedding: return "embedding"
        case let .attentionOutput(l): return "attn_out.\(l)"
        case let .mlpKey(l): return "mlp_key.\(l)"
        case let .mlpOutput(l): return "mlp_out.\(l)"
        case let .residual(l): return "residual.\(l)"
        }
    }

    public var layer: Int? {
        switch self {
        case .embedding: return nil
        case let .attentionOutput(l), let .mlpKey(l), let .mlpOutput(l), let .residual(l): return l
        }
    }

    /// Where the site comes in the forward pass: the embedding, then per block attention output, MLP key,
    /// MLP output, residual (distinct for distinct sites, so `<` agrees with `==`).
    var passOrder: Int {
        switch self {
        case .embedding: return Int.min
        case let .attentionOutput(l): return 4 * l + 1
        case let .mlpKey(l): return 4 * l + 2
        case let .mlpOutput(l): return 4 * l + 3
        case let .residual(l): return 4 * l + 4
        }
    }

    /// Parses "residual.5", "mlp_key.3", "embedding", …
    public init?(_ text: String) {
        if text == "embedding" { self = .embedding; return }
        let parts = text.split(separator: ".")
        guard parts.count == 2, let l = Int(parts[1]), l >= 0 else { return nil }
        switch parts[0] {
        case "attn_out": self = .attentionOutput(l)
        case "mlp_key": self = .mlpKey(l)
        case "mlp_out": self = .mlpOutput(l)
        case "residual": self = .residual(l)
        default: return nil
        }
    }

    /// Forward-pass order: `sites.max()` is the last of them a pass reaches.
    public static func < (a: HookSite, b: HookSite) -> Bool { a.passOrder < b.passOrder }
}

/// The rows of one hidden state during a forward pass: `rows × width` floats, row-major.
/// Rows of all sequences in the batch are concatenated; `sequence[r]` and `position[r]` say whose
/// row `r` is and at which absolute token position. Writing through `pointer` replaces the state.
public struct ActivationRows {
    public let site: HookSite
    public let pointer: UnsafeMutablePointer<Float>
    public let rows: Int
    public let width: Int
    public let sequence: [Int]
    public let position: [Int]

    public func row(_ r: Int) -> UnsafeMutablePointer<Float> { pointer + r * width }
    public func values(row r: Int) -> [Float] { Array(UnsafeBufferPointer(start: row(r), count: width)) }
    /// The row index of (sequence, position), if that position is in this pass.
    public func rowIndex(sequence s: Int, position p: Int) -> Int? {
        (0..<rows).first { sequence[$0] == s && position[$0] == p }
    }
}

/// Handlers called at hook sites. A handler may read the rows or overwrite them in place.
public struct Hooks {
    public var handlers: [HookSite: (ActivationRows) -> Void] = [:]
    /// Stop the forward pass right after this site (its handlers have run; no logits are produced).
    /// Saves the rest of the pass when only earlier states are wanted, e.g. statistics of one key;
    /// `.residual(l)` stops after block l. The caches of a stopped pass hold keys and values only for
    /// the blocks it reached: they are for that pass, not to be continued.
    public var stopAfter: HookSite?

    public init() {}

    public mutating func on(_ site: HookSite, _ handler: @escaping (ActivationRows) -> Void) {
        if let previous = handlers[site] {
            handlers[site] = { previous($0); handler($0) }
        } else {
            handlers[site] = handler
        }
    }

    public var isEmpty: Bool { handlers.isEmpty && stopAfter == nil }
}
