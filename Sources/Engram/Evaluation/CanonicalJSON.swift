import Foundation

/// A JSON value for results files, written canonically: object keys sorted, two-space indentation, integers as integers and
/// every other number with exactly six decimals, so that the same results give the same bytes.
public indirect enum CanonicalJSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    public subscript(key: String) -> CanonicalJSON? {
        if case let .object(o) = self { return o[key] }
        return nil
    }

    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    public var int: Int? {
        switch self {
        case let .int(i): return i
        case let .number(d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .number(d): return d
        default: return nil
        }
    }
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var array: [CanonicalJSON]? { if case let .array(a) = self { return a } else { return nil } }
    public var object: [String: CanonicalJSON]? { if case let .object(o) = self { return o } else { return nil } }

    /// Rounds to the six decimals the writer prints, so values read back from a file equal the
    /// in-memory ones and aggregates computed from either agree bit for bit.
    public static func quantize(_ x: Double) -> Double {
        guard x.isFinite else { return x }
        return (x * 1e6).rounded() / 1e6
    }

    public func serialized() -> String {
        var out = ""
        write(into: &out, indent: 0)
        out.append("\n")
        return out
    }

    public var data: Data { Data(serialized().utf8) }

    private func write(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .number(d):
            if !d.isFinite { out += "null" }
            else {
                var text = String(format: "%.6f", d)
                if text == "-0.000000" { text = "0.000000" }
                out += text
            }
        case let .string(s): out += OrderedJSON.quote(s)
        case let .array(items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += inner
                item.write(into: &out, indent: indent + 1)
                out += i + 1 < items.count ? ",\n" : "\n"
            }
            out += pad + "]"
        case let .object(o):
            if o.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = o.keys.sorted()
            for (i, key) in keys.enumerated() {
                out += inner + OrderedJSON.quote(key) + ": "
                o[key]!.write(into: &out, indent: indent + 1)
                out += i + 1 < keys.count ? ",\n" : "\n"
            }
            out += pad + "}"
        }
    }

    /// Parses JSON text (numbers with a fraction or exponent become `.number`, others `.int`).
    public static func parse(_ data: Data, file: String) throws -> CanonicalJSON {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw EngramError.format(file: file, detail: "not valid JSON: \(EngramError.jsonDetail(error))")
        }
        return convert(any)
    }

    static func convert(_ any: Any) -> CanonicalJSON {
        switch any {
        case is NSNull: return .null
        case let s as String: return .string(s)
        case let n as NSNumber:
            let type = String(cString: n.objCType)
            if type == "c" { return .bool(n.boolValue) }
            if type == "d" || type == "f" { return .number(n.doubleValue) }
            return .int(n.intValue)
        case let a as [Any]: return .array(a.map(convert))
        case let o as [String: Any]: return .object(o.mapValues(convert))
        default: return .null
        }
    }
}
