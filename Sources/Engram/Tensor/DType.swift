import Foundation

/// Element types a checkpoint tensor may be stored in. Raw values are GGML's type ids,
/// which GGUF stores; safetensors names are mapped in `init?(safetensorsName:)`.
public enum DType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, iq4_nl = 20, iq4_xs = 23, bf16 = 30

    /// Elements per quantization block (1 for plain floats).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_xs: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18   // f16 d + 16 nibble bytes
        case .q4_1: return 20   // f16 d, f16 m + 16 nibble bytes
        case .q5_0: return 22   // f16 d, 4 bytes of fifth bits + 16 nibble bytes
        case .q5_1: return 24   // f16 d, f16 m, 4 bytes of fifth bits + 16 nibble bytes
        case .q8_0: return 34   // f16 d + 32 int8
        case .q2_K: return 84   // 16 scale/min bytes, 64 bytes of 2-bit values, f16 d, f16 dmin
        case .q3_K: return 110  // 32 high-bit bytes, 64 bytes of 2-bit values, 12 scale bytes, f16 d
        case .q4_K: return 144  // f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes
        case .q5_K: return 176  // as q4_K + 32 high-bit bytes
        case .q6_K: return 210  // 128 low, 64 high, 16 int8 scales, f16 d
        case .iq4_nl: return 18 // f16 d + 16 bytes of nibbles indexing a fixed table of 16 values
        case .iq4_xs: return 136 // f16 d, 16 high scale bits, 4 low scale bytes, 128 nibble bytes
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .iq4_nl: return "IQ4_NL"
        case .iq4_xs: return "IQ4_XS"
        }
    }

    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        default: return nil
        }
    }

    public var safetensorsName: String? {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        default: return nil
        }
    }

    /// Bytes needed for `elements` values, or nil when `elements` is not a whole number of blocks
    /// or the size overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}
