import Foundation

/// A GGUF metadata value. Arrays keep their element type so that writing reproduces the file.
public indirect enum MetadataValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String)
    case array(MetadataType, [MetadataValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: MetadataType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Any integer type as Int (nil for non-integers or values out of range).
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var array: [MetadataValue]? { if case let .array(_, a) = self { return a } else { return nil } }

    /// A short human-readable rendering (long arrays are summarised).
    public var summary: String {
        switch self {
        case let .string(s): return s.count > 80 ? "\"\(s.prefix(77))...\"" : "\"\(s)\""
        case let .array(t, items):
            let head = items.prefix(4).map(\.summary).joined(separator: ", ")
            return "[\(t)] × \(items.count)" + (items.isEmpty ? "" : ": \(head)\(items.count > 4 ? ", …" : "")")
        case let .bool(b): return String(b)
        case let .float32(v): return String(v)
        case let .float64(v): return String(v)
        default: return int.map(String.init) ?? "?"
        }
    }
}

public enum MetadataType: UInt32, Sendable {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64
}

/// Metadata in file order with keyed lookup, plus typed accessors that throw errors naming the key.
public struct Metadata: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: MetadataValue] = [:]
    public var file: String

    public init(file: String) { self.file = file }

    public subscript(key: String) -> MetadataValue? {
        get { values[key] }
        set {
            if newValue == nil { keys.removeAll { $0 == key } } else if values[key] == nil { keys.append(key) }
            values[key] = newValue
        }
    }

    public func int(_ key: String) throws -> Int {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let i = v.int else { throw EngramError.metadata(file: file, key: key, detail: "expected an integer, found \(v.type)") }
        return i
    }

    public func int(_ key: String, default d: Int) throws -> Int { values[key] == nil ? d : try int(key) }

    public func float(_ key: String) throws -> Float {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let d = v.double else { throw EngramError.metadata(file: file, key: key, detail: "expected a number, found \(v.type)") }
        return Float(d)
    }

    public func float(_ key: String, default d: Float) throws -> Float { values[key] == nil ? d : try float(key) }

    public func string(_ key: String) throws -> String {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let s = v.string else { throw EngramError.metadata(file: file, key: key, detail: "expected a string, found \(v.type)") }
        return s
    }

    public func stringArray(_ key: String) throws -> [String] {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let a = v.array else { throw EngramError.metadata(file: file, key: key, detail: "expected an array, found \(v.type)") }
        return try a.enumerated().map { i, item in
            guard let s = item.string else { throw EngramError.metadata(file: file, key: key, detail: "item \(i) is \(item.type), expected string") }
            return s
        }
    }

    public func intArray(_ key: String) throws -> [Int] {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let a = v.array else { throw EngramError.metadata(file: file, key: key, detail: "expected an array, found \(v.type)") }
        return try a.enumerated().map { i, item in
            guard let n = item.int else { throw EngramError.metadata(file: file, key: key, detail: "item \(i) is \(item.type), expected integer") }
            return n
        }
    }

    public func floatArray(_ key: String) throws -> [Float] {
        guard let v = values[key] else { throw EngramError.metadata(file: file, key: key, detail: "missing") }
        guard let a = v.array else { throw EngramError.metadata(file: file, key: key, detail: "expected an array, found \(v.type)") }
        return try a.enumerated().map { i, item in
            guard let n = item.double else { throw EngramError.metadata(file: file, key: key, detail: "item \(i) is \(item.type), expected number") }
            return Float(n)
        }
    }
}
