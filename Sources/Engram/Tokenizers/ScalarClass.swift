import Foundation

/// The classes that the byte-level split patterns tell apart: `\p{L}`, `\p{N}`, `\s`, and the rest.
/// (`\s` in the Oniguruma/PCRE patterns of those tokenizers is the Unicode White_Space set.)
enum ScalarClass: UInt8 {
    case letter = 0, number, whitespace, other

    /// Looking the general category up for every scalar of a megabyte of text is far slower than a
    /// table, so the Basic Multilingual Plane is classified once; the rare astral scalars are looked up.
    private static let bmp: [UInt8] = {
        var table = [UInt8](repeating: ScalarClass.other.rawValue, count: 0x10000)
        for v in 0..<0x10000 {
            guard let s = Unicode.Scalar(UInt32(v)) else { continue } // surrogates stay `other`
            table[v] = classify(s).rawValue
        }
        return table
    }()

    private static func classify(_ s: Unicode.Scalar) -> ScalarClass {
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    @inline(__always)
    static func of(_ v: UInt32) -> ScalarClass {
        if v < 0x10000 { return ScalarClass(rawValue: bmp[Int(v)]) ?? .other }
        guard let s = Unicode.Scalar(v) else { return .other }
        return classify(s)
    }
}

/// UTF-8 text decoded into scalars, each with its class and the byte offset where it starts, so that
/// scanners work on scalars and report byte ranges.
struct ScalarText {
    var scalars: [UInt32] = []
    var classes: [ScalarClass] = []
    /// `offsets[i]` is the byte offset of scalar i; `offsets[count]` is the end.
    var offsets: [Int] = []

    var count: Int { scalars.count }

    /// Decodes `bytes[range]`, which must be well-formed UTF-8 (it comes from a Swift String).
    init(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        scalars.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = UInt32(bytes[i])
            var v: UInt32
            var n: Int
            if b0 < 0x80 {
                v = b0; n = 1
            } else if b0 < 0xE0 {
                v = b0 & 0x1F; n = 2
            } else if b0 < 0xF0 {
                v = b0 & 0x0F; n = 3
            } else {
                v = b0 & 0x07; n = 4
            }
            if i + n > end { n = end - i } // cannot happen for valid UTF-8; keeps us in bounds anyway
            var k = 1
            while k < n {
                v = (v << 6) | (UInt32(bytes[i + k]) & 0x3F)
                k += 1
            }
            scalars.append(v)
            classes.append(ScalarClass.of(v))
            offsets.append(i)
            i += n
        }
        offsets.append(end)
    }
}
