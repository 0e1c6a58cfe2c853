import Foundation

/// The GPT-2 byte ⇄ character alphabet: byte-level BPE vocabularies spell every byte as a printable
/// character so that tokens are readable strings. Printable Latin-1 bytes stand for themselves; the
/// other 68 bytes (controls, space, 0x7F–0xA0, soft hyphen) take the characters from U+0100 on, in
/// byte order — which is why a space shows as "Ġ" (U+0120) and a newline as "Ċ".
enum ByteLevel {
    /// `characters[b]` is the scalar that stands for byte b.
    static let characters: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 0x100
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The byte a scalar stands for, or nil when the scalar is not in the alphabet.
    static func byte(for scalar: UInt32) -> UInt8? {
        if scalar < 0x100 {
            return characters[Int(scalar)] == scalar ? UInt8(scalar) : nil
        }
        guard scalar < 0x100 + 68 else { return nil }
        return inverseHigh[Int(scalar - 0x100)]
    }

    private static let inverseHigh: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 68)
        for b in 0..<256 where characters[b] >= 0x100 { table[Int(characters[b] - 0x100)] = UInt8(b) }
        return table
    }()

    /// Bytes spelled in the alphabet ("Hello world" → "HelloĠworld").
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(characters[Int(b)]) ?? "?") } // every entry is a valid scalar
        return String(s)
    }
}
