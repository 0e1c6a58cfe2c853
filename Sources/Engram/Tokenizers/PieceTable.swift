import Foundation

/// Vocabulary entry bytes → id, as an open-addressing hash table over one flat byte buffer. Looking up a
/// byte slice needs no allocation, which matters when building a 50k-entry merge table at every load
/// and when checking whole words against the vocabulary while encoding. Byte equality (not Swift's
/// canonical String equality) is what a vocabulary means by "the same piece".
struct PieceTable: Sendable {
    private let bytes: [UInt8]
    private let starts: [Int]
    private let slots: [Int32]
    private let mask: Int

    init<S: Sequence>(_ pieces: S) where S.Element == String {
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        for p in pieces {
            bytes.append(contentsOf: p.utf8)
            starts.append(bytes.count)
        }
        let count = starts.count - 1
        var capacity = 16
        while capacity < 2 * count { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        bytes.withUnsafeBufferPointer { all in
            for id in 0..<count {
                let piece = UnsafeBufferPointer(rebasing: all[starts[id]..<starts[id + 1]])
                var slot = Int(truncatingIfNeeded: Self.hash(piece)) & mask
                while true {
                    let occupant = slots[slot]
                    if occupant < 0 { slots[slot] = Int32(id); break }
                    // A repeated entry keeps its first id.
                    if Self.equal(piece, UnsafeBufferPointer(rebasing: all[starts[Int(occupant)]..<starts[Int(occupant) + 1]])) { break }
                    slot = (slot + 1) & mask
                }
            }
        }
        self.bytes = bytes
        self.starts = starts
        self.slots = slots
        self.mask = mask
    }

    @inline(__always)
    static func hash(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for b in p { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h ^ (h >> 29)
    }

    @inline(__always)
    private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        guard let pa = a.baseAddress, let pb = b.baseAddress else { return true }
        return memcmp(pa, pb, a.count) == 0
    }

    func id(_ piece: UnsafeBufferPointer<UInt8>) -> Int32? {
        bytes.withUnsafeBufferPointer { all in
            var slot = Int(truncatingIfNeeded: Self.hash(piece)) & mask
            while true {
                let occupant = slots[slot]
                if occupant < 0 { return nil }
                if Self.equal(piece, UnsafeBufferPointer(rebasing: all[starts[Int(occupant)]..<starts[Int(occupant) + 1]])) { return occupant }
                slot = (slot + 1) & mask
            }
        }
    }

    func id(_ piece: [UInt8]) -> Int32? { piece.withUnsafeBufferPointer { id($0) } }
    func id(_ piece: String) -> Int32? { id(Array(piece.utf8)) }
}
