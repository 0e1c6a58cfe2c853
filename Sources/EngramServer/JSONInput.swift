import Foundation
import Hummingbird

/// A request body parsed as a JSON value tree, so that every field can be checked by name: wrong types,
/// out-of-range values and unknown fields are reported as 400 errors naming the field's path.
/// (Decoding straight into Codable structs would silently ignore unknown fields, and its errors name
/// coding paths in a form clients cannot read.)
indirect enum JSONInput: Decodable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONInput])
    case object([String: JSONInput])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONInput].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONInput].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    static func parse(_ data: Data) throws -> JSONInput {
        guard !data.isEmpty else { throw APIError(.badRequest, "the request body is empty; expected a JSON object", code: "invalid_json") }
        do {
            return try JSONDecoder().decode(JSONInput.self, from: data)
        } catch {
            var detail = "\(error)"
            if case let DecodingError.dataCorrupted(context) = error {
                detail = context.debugDescription
                if let underlying = context.underlyingError { detail += " (\(underlying.localizedDescription))" }
            }
            throw APIError(.badRequest, "the request body is not valid JSON: \(detail)", code: "invalid_json")
        }
    }

    var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Plain Foundation objects, to hand a sub-tree to parsers that take them (edit records).
    var foundation: Any {
        switch self {
        case .null: return NSNull()
        case let .bool(b): return b
        case let .int(i): return i
        case let .double(d): return d
        case let .string(s): return s
        case let .array(a): return a.map(\.foundation)
        case let .object(o): return o.mapValues(\.foundation)
        }
    }
}

/// Reads the fields of one JSON object, remembering which were read; `finish()` rejects the rest.
/// Absent fields and explicit nulls are both "not given", as OpenAI treats them.
final class FieldReader {
    let path: String
    private let fields: [String: JSONInput]
    private var known: Set<String> = []

    init(_ value: JSONInput, path: String = "") throws {
        guard case let .object(fields) = value else {
            if path.isEmpty { throw APIError(.badRequest, "the request body must be a JSON object, got \(value.kind)", code: "invalid_json") }
            throw APIError.invalidField(path, "expected an object, got \(value.kind)")
        }
        self.path = path
        self.fields = fields
    }

    static func body(_ data: Data) throws -> FieldReader { try FieldReader(JSONInput.parse(data)) }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The raw value, or nil when absent or null. Marks the field as known.
    func value(_ key: String) -> JSONInput? {
        known.insert(key)
        guard let v = fields[key] else { return nil }
        if case .null = v { return nil }
        return v
    }

    /// Fields accepted but ignored (OpenAI parameters with no effect here, such as `user`).
    func ignore(_ keys: String...) { known.formUnion(keys) }

    func has(_ key: String) -> Bool { value(key) != nil }

    /// Whether the object has any field at all (for "must be empty" checks).
    var hasAnyField: Bool { !fields.isEmpty }

    /// Every field name, sorted (for maps keyed by data, such as `logit_bias`).
    var keys: [String] { fields.keys.sorted() }

    /// Rejects every field that no accessor asked for.
    func finish() throws {
        for key in keys where !known.contains(key) {
            throw APIError.unknownField(fieldPath(key), allowed: Array(known))
        }
    }

    // MARK: Typed accessors

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(s) = v else { throw APIError.invalidField(fieldPath(key), "expected a string, got \(v.kind)") }
        return s
    }

    func requiredString(_ key: String, nonEmpty: Bool = true) throws -> String {
        guard let s = try string(key) else { throw APIError.missingField(fieldPath(key)) }
        if nonEmpty && s.isEmpty { throw APIError.invalidField(fieldPath(key), "must not be empty") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case let .bool(b) = v else { throw APIError.invalidField(fieldPath(key), "expected true or false, got \(v.kind)") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        let i: Int
        switch v {
        case let .int(x) where x >= Int64(Int.min) && x <= Int64(Int.max): i = Int(x)
        case let .double(d) where d.rounded() == d && abs(d) < 1e15: i = Int(d)
        default: throw APIError.invalidField(fieldPath(key), "expected an integer, got \(v.kind == "a number" ? "a fraction" : v.kind)")
        }
        guard range.contains(i) else {
            throw APIError.invalidField(fieldPath(key), "must be between \(range.lowerBound) and \(range.upperBound), got \(i)")
        }
        return i
    }

    func uint64(_ key: String) throws -> UInt64? {
        guard let v = value(key) else { return nil }
        switch v {
        case let .int(x): return UInt64(bitPattern: x)
        case let .double(d) where d.rounded() == d && d >= 0 && d < 1.8e19: return UInt64(d)
        default: throw APIError.invalidField(fieldPath(key), "expected an integer, got \(v.kind)")
        }
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        switch v {
        case let .int(x): d = Double(x)
        case let .double(x): d = x
        default: throw APIError.invalidField(fieldPath(key), "expected a number, got \(v.kind)")
        }
        guard range.contains(d) else {
            throw APIError.invalidField(fieldPath(key), "must be between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return d
    }

    func array(_ key: String, maxCount: Int) throws -> [JSONInput]? {
        guard let v = value(key) else { return nil }
        guard case let .array(a) = v else { throw APIError.invalidField(fieldPath(key), "expected an array, got \(v.kind)") }
        guard a.count <= maxCount else { throw APIError.invalidField(fieldPath(key), "at most \(maxCount) items are allowed, got \(a.count)") }
        return a
    }

    func object(_ key: String) throws -> FieldReader? {
        guard let v = value(key) else { return nil }
        return try FieldReader(v, path: fieldPath(key))
    }

    /// A string or an array of strings (OpenAI `stop`, edit-record aliases).
    func strings(_ key: String, maxCount: Int) throws -> [String]? {
        guard let v = value(key) else { return nil }
        switch v {
        case let .string(s): return [s]
        case let .array(items):
            guard items.count <= maxCount else { throw APIError.invalidField(fieldPath(key), "at most \(maxCount) items are allowed, got \(items.count)") }
            return try items.enumerated().map { i, item in
                guard case let .string(s) = item else { throw APIError.invalidField("\(fieldPath(key))[\(i)]", "expected a string, got \(item.kind)") }
                return s
            }
        default: throw APIError.invalidField(fieldPath(key), "expected a string or an array of strings, got \(v.kind)")
        }
    }

    /// A list of strings, given as an array.
    func stringArray(_ key: String, maxCount: Int) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard case .array = v else { throw APIError.invalidField(fieldPath(key), "expected an array of strings, got \(v.kind)") }
        return try strings(key, maxCount: maxCount)
    }
}

/// JSON responses: snake_case keys, no escaped slashes, and no crash on a non-finite number.
enum JSONOutput {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }()

    static func data<T: Encodable>(_ value: T) -> Data {
        do { return try encoder.encode(value) } catch {
            return Data(#"{"error":{"message":"the response could not be encoded","type":"server_error","param":null,"code":"encoding_failed"}}"#.utf8)
        }
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = data(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
