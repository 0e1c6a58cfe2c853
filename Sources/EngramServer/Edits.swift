import Engram
import Foundation

/// A parsed `POST /v1/edits` request: records in the EasyEdit request layout (the one edit files use),
/// a method by name, and its hyper-parameters, all checked before the model is touched.
struct EditCreateRequest {
    var method: EditMethod
    var requests: [EditRequest]
    var values: [String: HyperValue]
    /// The hyper-parameters the request itself gave (the others in `values` are defaults).
    var given: Set<String> = []

    static let recordFields = ["case_id", "prompt", "subject", "target_new", "ground_truth", "rephrase_prompt", "locality", "portability"]

    static func parse(_ data: Data, registry: EditMethodRegistry, limits: ServerLimits) throws -> EditCreateRequest {
        let r = try FieldReader.body(data)
        let name = try r.requiredString("method")
        guard let method = registry.method(named: name) else {
            throw APIError.invalidField("method", "unknown method '\(name)' (available: \(registry.methods.map(\.name).joined(separator: ", ")))")
        }
        guard let items = try r.array("requests", maxCount: limits.maxEditRequests) else { throw APIError.missingField("requests") }
        guard !items.isEmpty else { throw APIError.invalidField("requests", "must hold at least one request") }
        let requests = try items.enumerated().map { i, item in try parseRecord(item, path: "requests[\(i)]", defaultID: String(i)) }
        let hyper = try r.object("hyper_parameters")
        let values = try parseHyperParameters(hyper, method: method, limits: limits)
        try r.finish()
        let given = Set(method.parameters.map(\.name).filter { hyper?.has($0) ?? false })
        return EditCreateRequest(method: method, requests: requests, values: values, given: given)
    }

    /// One edit record. The simple fields are type-checked here (errors name the field); the record is
    /// then read by the edit-file parser, so the server accepts exactly what edit files hold.
    static func parseRecord(_ value: JSONInput, path: String, defaultID: String) throws -> EditRequest {
        let f = try FieldReader(value, path: path)
        let prompt = try f.requiredString("prompt")
        let subject = try f.requiredString("subject")
        _ = try f.requiredString("target_new")
        guard prompt.contains(subject) || prompt.contains("{}") else { throw APIError.invalidField(f.fieldPath("subject"), "'\(subject)' does not occur in the prompt") }
        if let id = f.value("case_id") {
            switch id {
            case .string, .int: break
            default: throw APIError.invalidField(f.fieldPath("case_id"), "expected a string or an integer, got \(id.kind)")
            }
        }
        _ = try f.strings("ground_truth", maxCount: 100)
        _ = try f.strings("rephrase_prompt", maxCount: 100)
        _ = try f.object("locality")
        _ = try f.object("portability")
        try f.finish()
        var object = value.foundation as? [String: Any] ?? [:]
        if object["case_id"] == nil { object["case_id"] = defaultID }
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        do {
            guard let request = try EditFile.parse(data, name: path, format: .easyEdit).requests.first else {
                throw APIError.invalidField(path, "holds no edit request")
            }
            return request
        } catch let error as EditFileError {
            let field = error.issues.first?.field.map { "\(path).\($0)" } ?? path
            throw APIError.invalidField(field, error.issues.map(\.message).joined(separator: "; "))
        }
    }

    static func parseHyperParameters(_ reader: FieldReader?, method: EditMethod, limits: ServerLimits) throws -> [String: HyperValue] {
        var values: [String: HyperValue] = [:]
        for p in method.parameters {
            let path = "hyper_parameters.\(p.name)"
            guard let reader, reader.has(p.name) else {
                if let d = p.defaultValue { values[p.name] = d }
                continue
            }
            switch p.kind {
            case let .integer(range): values[p.name] = .integer(try reader.int(p.name, in: range) ?? 0)
            case let .number(range): values[p.name] = .number(try reader.double(p.name, in: range) ?? 0)
            case .bool: values[p.name] = .bool(try reader.bool(p.name) ?? false)
            case let .string(allowed):
                let s = try reader.string(p.name) ?? ""
                if let allowed, !allowed.contains(s) { throw APIError.invalidField(path, "expected one of \(allowed.joined(separator: ", ")), got '\(s)'") }
                values[p.name] = .string(s)
            case let .requests(maxCount):
                let items = try reader.array(p.name, maxCount: maxCount) ?? []
                values[p.name] = .requests(try items.enumerated().map { i, item in
                    try parseRecord(item, path: "\(path)[\(i)]", defaultID: "pool-\(i)")
                })
            }
        }
        if let reader {
            do { try reader.finish() } catch var error as APIError {
                error.message += " for method \(method.name)"
                throw error
            }
        }
        return values
    }
}

// MARK: - Wire types

/// An edit request as the API shows it (EasyEdit layout, the fields a person sets).
struct EditRequestBody: Encodable {
    var caseId: String
    var prompt: String
    var subject: String
    var targetNew: String
    var groundTruth: [String]?
    var rephrasePrompt: [String]?

    init(_ r: EditRequest) {
        caseId = r.caseID
        prompt = r.prompt
        subject = r.subject
        targetNew = r.targetNew
        groundTruth = r.groundTruth.isEmpty ? nil : r.groundTruth
        rephrasePrompt = r.rephrasePrompts.isEmpty ? nil : r.rephrasePrompts
    }
}

struct PatchSummary: Encodable {
    struct Delta: Encodable {
        var weight: String
        var kind: String
        var rows: Int
        var cols: Int
        var rank: Int?
    }

    struct Context: Encodable {
        var facts: [String]
        var demonstrations: String
    }

    var format: String
    var bytes: Int
    var sha256: String
    var deltas: [Delta]
    var context: Context?
    var metadata: [String: String]

    init(_ entry: EditEntry) {
        format = EditPatch.formatName
        bytes = entry.fileData.count
        sha256 = FileHash.sha256(data: entry.fileData)
        deltas = entry.patch.deltas.map { d in
            switch d.change {
            case let .lowRank(r, _): return Delta(weight: d.weight.name, kind: "low_rank", rows: d.rows, cols: d.cols, rank: r.rows)
            case .dense: return Delta(weight: d.weight.name, kind: "dense", rows: d.rows, cols: d.cols, rank: nil)
            }
        }
        context = entry.patch.context.map { Context(facts: $0.facts, demonstrations: $0.demonstrations) }
        metadata = entry.patch.metadata
    }
}

struct EditBody: Encodable {
    var id: String
    var object = "edit"
    var method: String
    var enabled: Bool
    var changesWeights: Bool
    var created: Int
    var source: String
    var requests: [EditRequestBody]
    var hyperParameters: [String: String]
    var patch: PatchSummary

    init(_ e: EditEntry) {
        id = e.id
        method = e.patch.method
        enabled = e.enabled
        changesWeights = e.changesWeights
        created = Int(e.created.timeIntervalSince1970)
        source = e.source
        requests = e.patch.requests.map(EditRequestBody.init)
        hyperParameters = e.patch.hyperParameters
        patch = PatchSummary(e)
    }
}

struct EditResponse: Encodable {
    var edit: EditBody
    var editsInForce: [String]
    var stateVersion: Int
}

struct EditListResponse: Encodable {
    var object = "list"
    var data: [EditBody]
    var editsInForce: [String]
    var stateVersion: Int
}

struct MethodListResponse: Encodable {
    struct Parameter: Encodable {
        var name: String
        var type: String
        var `default`: String?
        var help: String
    }

    struct Method: Encodable {
        var name: String
        var summary: String
        var changesWeights: Bool
        var parameters: [Parameter]
    }

    var object = "list"
    var data: [Method]

    init(_ registry: EditMethodRegistry) {
        data = registry.methods.map { m in
            Method(name: m.name, summary: m.summary, changesWeights: m.changesWeights, parameters: m.parameters.map { p in
                let type: String
                switch p.kind {
                case let .integer(r): type = "integer \(r.lowerBound)...\(r.upperBound)"
                case let .number(r): type = "number \(r.lowerBound)...\(r.upperBound)"
                case let .string(allowed): type = allowed.map { "one of " + $0.joined(separator: ", ") } ?? "string"
                case .bool: type = "boolean"
                case let .requests(n): type = "array of at most \(n) edit records"
                }
                let d: String?
                switch p.defaultValue {
                case let .integer(v)?: d = String(v)
                case let .number(v)?: d = String(v)
                case let .string(v)?: d = v
                case let .bool(v)?: d = String(v)
                case .requests?, nil: d = nil
                }
                return Parameter(name: p.name, type: type, default: d, help: p.help)
            })
        }
    }
}
