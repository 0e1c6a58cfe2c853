import Foundation

/// Converts stored tensor bytes into float32, one block format at a time.
/// The block layouts are GGML's (documented in the GGUF specification and ggml-common.h).
public enum Dequantize {
    /// Dequantizes `count` elements of `dtype` from `source` into `out`. `count` must be a whole number
    /// of blocks (callers check this when they read the tensor's shape).
    public static func run(_ dtype: DType, source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        let blocks = count / dtype.blockSize
        switch dtype {
        case .f32:
            out.update(from: source.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            let p = source.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { out[i] = halfToFloat(p[i]) }
        case .bf16:
            let p = source.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(p[i]) << 16) }
        case .q8_0:
            for b in 0..<blocks {
                let block = source + b * 34, y = out + b * 32
                let d = half(block, 0)
                let qs = (block + 2).assumingMemoryBound(to: Int8.self)
                for j in 0..<32 { y[j] = Float(qs[j]) * d }
            }
        case .q4_0:
            for b in 0..<blocks {
                let block = source + b * 18, y = out + b * 32
                let d = half(block, 0)
                let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(Int(qs[j] & 0x0F) - 8) * d
                    y[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<blocks {
                let block = source + b * 20, y = out + b * 32
                let d = half(block, 0), m = half(block, 2)
                let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(qs[j] & 0x0F) * d + m
                    y[j + 16] = Float(qs[j] >> 4) * d + m
                }
            }
        case .q5_0, .q5_1:
            // Like Q4_0/Q4_1 with a fifth bit per value: bit j of the 32-bit `qh` belongs to element j.
            let offset = dtype == .q5_1
            let qsStart = offset ? 8 : 6
            for b in 0..<blocks {
                let block = source + b * dtype.blockBytes, y = out + b * 32
                let d = half(block, 0), m = offset ? half(block, 2) : 0
                let qh = block.loadUnaligned(fromByteOffset: qsStart - 4, as: UInt32.self).littleEndian
                let qs = (block + qsStart).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    let low = Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                    let high = Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                    if offset {
                        y[j] = Float(low) * d + m
                        y[j + 16] = Float(high) * d + m
                    } else {
                        y[j] = Float(low - 16) * d
                        y[j + 16] = Float(high - 16) * d
                    }
                }
            }
        case .q2_K:
            for b in 0..<blocks {
                let block = source + b * 84, y0 = out + b * 256
                let scales = block.assumingMemoryBound(to: UInt8.self)
                let d = half(block, 80), dmin = half(block, 82)
                // Two halves of 128 values; each reads 32 bytes of qs four times, two bits at a time, and
                // each 16 values have a byte of scale (low nibble) and min (high nibble).
                for part in 0..<2 {
                    let qs = (block + 16 + 32 * part).assumingMemoryBound(to: UInt8.self)
                    for shift in 0..<4 {
                        for sixteen in 0..<2 {
                            let sc = scales[8 * part + 2 * shift + sixteen]
                            let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                            let y = y0 + 128 * part + 32 * shift + 16 * sixteen
                            for l in 0..<16 {
                                y[l] = dl * Float((qs[16 * sixteen + l] >> UInt8(2 * shift)) & 3) - ml
                            }
                        }
                    }
                }
            }
        case .q3_K:
            for b in 0..<blocks {
                let block = source + b * 110, y0 = out + b * 256
                let hmask = block.assumingMemoryBound(to: UInt8.self)
                let d = half(block, 108)
                let scales = scalesK3((block + 96).assumingMemoryBound(to: UInt8.self))
                // As Q2_K's layout, with a third bit from hmask (bit `2·part + shift` of byte l): a clear
                // bit subtracts 4. Scales are 6-bit, stored offset by 32.
                for part in 0..<2 {
                    let qs = (block + 32 + 32 * part).assumingMemoryBound(to: UInt8.self)
                    for shift in 0..<4 {
                        let bit = UInt8(1) << UInt8(4 * part + shift)
                        for sixteen in 0..<2 {
                            let dl = d * Float(scales[8 * part + 2 * shift + sixteen] - 32)
                            let y = y0 + 128 * part + 32 * shift + 16 * sixteen
                            for l in 0..<16 {
                                let i = 16 * sixteen + l
                                let q = Int((qs[i] >> UInt8(2 * shift)) & 3) - (hmask[i] & bit != 0 ? 0 : 4)
                                y[l] = dl * Float(q)
                            }
                        }
                    }
                }
            }
        case .q4_K:
            for b in 0..<blocks {
                let block = source + b * 144, y = out + b * 256
                let d = half(block, 0), dmin = half(block, 2)
                let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
                let qs = (block + 16).assumingMemoryBound(to: UInt8.self)
                for group in 0..<4 { // 64 values per group: 32 low nibbles, 32 high nibbles
                    let (s1, m1) = scaleMinK4(2 * group, scales), (s2, m2) = scaleMinK4(2 * group + 1, scales)
                    let d1 = d * Float(s1), o1 = dmin * Float(m1), d2 = d * Float(s2), o2 = dmin * Float(m2)
                    let q = qs + 32 * group, yg = y + 64 * group
                    for l in 0..<32 {
                        yg[l] = d1 * Float(q[l] & 0x0F) - o1
                        yg[l + 32] = d2 * Float(q[l] >> 4) - o2
                    }
                }
            }
        case .q5_K:
            for b in 0..<blocks {
                let block = source + b * 176, y = out + b * 256
                let d = half(block, 0), dmin = half(block, 2)
                let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
                let qh = (block + 16).assumingMemoryBound(to: UInt8.self)
                let qs = (block + 48).assumingMemoryBound(to: UInt8.self)
                for group in 0..<4 {
                    let (s1, m1) = scaleMinK4(2 * group, scales), (s2, m2) = scaleMinK4(2 * group + 1, scales)
                    let d1 = d * Float(s1), o1 = dmin * Float(m1), d2 = d * Float(s2), o2 = dmin * Float(m2)
                    let lowBit = UInt8(1) << (2 * group), highBit = UInt8(2) << (2 * group)
                    let q = qs + 32 * group, yg = y + 64 * group
                    for l in 0..<32 {
                        yg[l] = d1 * Float(Int(q[l] & 0x0F) + (qh[l] & lowBit != 0 ? 16 : 0)) - o1
                        yg[l + 32] = d2 * Float(Int(q[l] >> 4) + (qh[l] & highBit != 0 ? 16 : 0)) - o2
                    }
                }
            }
        case .q6_K:
            for b in 0..<blocks {
                let block = source + b * 210, y0 = out + b * 256
                let d = half(block, 208)
                for half in 0..<2 { // two 128-value halves
                    let ql = (block + 64 * half).assumingMemoryBound(to: UInt8.self)
                    let qh = (block + 128 + 32 * half).assumingMemoryBound(to: UInt8.self)
                    let sc = (block + 192 + 8 * half).assumingMemoryBound(to: Int8.self)
                    let y = y0 + 128 * half
                    for l in 0..<32 {
                        let s = l / 16
                        let q1 = Int((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32
                        let q2 = Int((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32
                        let q3 = Int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32
                        let q4 = Int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32
                        y[l] = d * Float(sc[s]) * Float(q1)
                        y[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                        y[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                        y[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                    }
                }
            }
        }
    }

    /// The sixteen 6-bit scales of a Q3_K block, packed in 12 bytes: scale j's low four bits are a nibble
    /// of byte j (j < 8, low nibble) or j − 8 (high nibble), its top two bits bits 2·(j / 4)… of byte 8 + j % 4.
    @inline(__always)
    static func scalesK3(_ q: UnsafePointer<UInt8>) -> [Int] {
        (0..<16).map { j in
            let low = j < 8 ? Int(q[j] & 0x0F) : Int(q[j - 8] >> 4)
            let high = Int(q[8 + j % 4] >> UInt8(2 * (j / 4))) & 3
            return low | high << 4
        }
    }

    /// The 6-bit scale and min of sub-block `j` packed in the 12 scale bytes of a Q4_K/Q5_K block.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        halfToFloat(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    public static func halfToFloat(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    @inline(__always)
    public static func floatToHalf(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// Round-to-nearest-even float32 → bfloat16 (NaN kept as a quiet NaN).
    @inline(__always)
    public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}
