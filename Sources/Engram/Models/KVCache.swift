import Foundation

/// Keys and values of every layer for one sequence, `[position, kvDim]` per layer.
/// Grows by doubling when a forward pass needs more room.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let kvDim: Int
    public private(set) var capacity: Int
    /// Number of positions already processed.
    public internal(set) var count: Int = 0
    var keys: [FloatBuffer]
    var values: [FloatBuffer]

    public init(layers: Int, kvDim: Int, capacity: Int = 256) {
        self.layers = layers
        self.kvDim = kvDim
        self.capacity = max(capacity, 1)
        keys = (0..<layers).map { _ in FloatBuffer(count: max(capacity, 1) * kvDim, zeroed: false) }
        values = (0..<layers).map { _ in FloatBuffer(count: max(capacity, 1) * kvDim, zeroed: false) }
    }

    public convenience init(config: ModelConfig, capacity: Int = 256) {
        self.init(layers: config.layers, kvDim: config.kvDim, capacity: capacity)
    }

    func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        func grow(_ old: FloatBuffer) -> FloatBuffer {
            let b = FloatBuffer(count: newCapacity * kvDim, zeroed: false)
            b.pointer.update(from: old.pointer, count: count * kvDim)
            return b
        }
        keys = keys.map(grow)
        values = values.map(grow)
        capacity = newCapacity
    }

    /// Forgets positions from `position` on (e.g. to re-run a prompt suffix).
    public func truncate(to position: Int) { count = min(count, max(0, position)) }

    /// A copy that shares nothing (to branch a shared prompt prefix).
    public func copy() -> KVCache {
        let c = KVCache(layers: layers, kvDim: kvDim, capacity: capacity)
        for l in 0..<layers {
            c.keys[l].pointer.update(from: keys[l].pointer, count: count * kvDim)
            c.values[l].pointer.update(from: values[l].pointer, count: count * kvDim)
        }
        c.count = count
        return c
    }
}
