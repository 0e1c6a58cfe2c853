import CDecodeKernels
import Foundation

/// Converts stored tensor bytes into float32, one block format at a time.
/// The block layouts are GGML's (documented in the GGUF specification and ggml-common.h); the block
/// types are unpacked in C (CDecodeKernels' block_groups.c and decode_kernels.c).
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
        default:
            // The block types: CDecodeKernels' dequantizer, the one that on-demand weights and the copies
            // made at load use too (tested against gguf-py's), one block per row.
            engram_dequantize(Int32(dtype.rawValue), source, Int64(blocks), Int64(dtype.blockSize), out, 1)
        }
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
