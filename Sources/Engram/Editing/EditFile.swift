import Foundation

/// The edit-file layouts users already have. Each is read into `EditRequest` / `MultiHopCase`.
public enum EditFileFormat: String, Codable, Sendable, CaseIterable {
    /// EasyEdit request records and the KnowEdit files: `prompt`, `subject`, `target_new`,
    /// `ground_truth`, `rephrase_prompt`, `locality{key: …}`, `portability{key: …}`.
    case easyEdit = "easyedit"
    /// EasyEdit's flattened CounterFact split: one `rephrase_prompt`, one `locality_prompt` and
    /// `locality_ground_truth` per record.
    case counterfactFlat = "counterfact-flat"
    /// ROME's `counterfact.json`: `requested_rewrite{prompt with {}, subject, target_new{str}, target_true{str}}`,
    /// `paraphrase_prompts`, `neighborhood_prompts`.
    case counterfactROME = "counterfact-rome"
    /// zsRE as MEND/ROME distribute it: `src`, `subject`, `alt`, `answers`, `rephrase`, `loc`, `loc_ans`.
    case zsreMEND = "zsre-mend"
    /// MQuAKE cases: a list of `requested_rewrite`s, multi-hop `questions`, `new_answer` and aliases.
    case mquake

    /// The locality group key given to the single neighbourhood/locality probe of the flat layouts.
    public static let neighborhoodKey = "neighborhood"
}

/// One problem found in an edit file: where (record, line for JSONL, field path) and what.
public struct EditFileIssue: Equatable, Sendable, CustomStringConvertible {
    public var record: Int?
    public var line: Int?
    public var field: String?
    public var message: String

    public var description: String {
        var place: [String] = []
        if let record { place.append("record \(record)") }
        if let line { place.append("line \(line)") }
        if let field { place.append("field '\(field)'") }
        return (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + message
    }
}

/// Everything wrong with an edit file, collected before giving up (nothing is read half-way).
public struct EditFileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public var file: String
    public var issues: [EditFileIssue]

    public var description: String {
        let shown = issues.prefix(50).map { "  \(file): \($0)" }
        let more = issues.count > 50 ? ["  … and \(issues.count - 50) more"] : []
        let noun = issues.count == 1 ? "problem" : "problems"
        return (["\(file): \(issues.count) \(noun) in the edit file:"] + shown + more).joined(separator: "\n")
    }

    public var errorDescription: String? { description }
}

/// One unit of evaluation: a single edit request, or an MQuAKE case whose edits go in together.
public enum EditRecord: Equatable, Sendable {
    case single(EditRequest)
    case multiHop(MultiHopCase)

    public var caseID: String {
        switch self {
        case let .single(r): return r.caseID
        case let .multiHop(c): return c.caseID
        }
    }

    public var requests: [EditRequest] {
        switch self {
        case let .single(r): return [r]
        case let .multiHop(c): return c.requests
        }
    }
}

/// A validated edit file: its layout, its records in file order, and the sha256 of its bytes.
public struct EditFile: Sendable {
    public let path: String
    public let format: EditFileFormat
    public let sha256: String
    public let records: [EditRecord]

    public init(path: String, format: EditFileFormat, sha256: String, records: [EditRecord]) {
        self.path = path
        self.format = format
        self.sha256 = sha256
        self.records = records
    }

    /// Every edit request, MQuAKE cases flattened in order.
    public var requests: [EditRequest] { records.flatMap(\.requests) }

    /// Reads a JSON (list or single object) or JSONL file; the layout is detected unless given.
    public static func load(_ path: String, format: EditFileFormat? = nil) throws -> EditFile {
        let data = try EngramError.readFile(path, what: "the edit file")
        return try parse(data, name: path, format: format)
    }

    /// Parses edit-file bytes; `name` is used in error messages and as `path`.
    public static func parse(_ data: Data, name: String, format: EditFileFormat? = nil) throws -> EditFile {
        var issues: [EditFileIssue] = []
        let raw = rawRecords(data, issues: &issues)
        if !issues.isEmpty { throw EditFileError(file: name, issues: issues) }
        if raw.isEmpty { throw EditFileError(file: name, issues: [EditFileIssue(message: "the file holds no records")]) }

        let layout: EditFileFormat
        if let format { layout = format } else {
            guard let first = raw.first(where: { $0.object != nil }), let object = first.object else {
                throw EditFileError(file: name, issues: [EditFileIssue(record: 0, line: raw[0].line, message: "records must be JSON objects")])
            }
            guard let detected = detect(object) else {
                throw EditFileError(file: name, issues: [EditFileIssue(record: first.index, line: first.line, message:
                    "cannot tell the layout from the keys \(object.keys.sorted()); expected EasyEdit/KnowEdit (prompt, subject, target_new), " +
                    "flattened CounterFact (… locality_prompt), ROME CounterFact (requested_rewrite object), zsRE (src, alt) or MQuAKE (requested_rewrite list, questions)")])
            }
            layout = detected
        }

        var records: [EditRecord] = []
        for item in raw {
            let reader = RecordReader(index: item.index, line: item.line)
            guard let object = item.object else {
                reader.issue(nil, "records must be JSON objects, found \(describe(item.value))")
                issues += reader.issues
                continue
            }
            if format == nil, let own = detect(object), own != layout {
                reader.issue(nil, "this record is in the \(own.rawValue) layout but the file was detected as \(layout.rawValue) from its first record")
                issues += reader.issues
                continue
            }
            if let record = reader.read(object, layout: layout) { records.append(record) }
            issues += reader.issues
        }
        if !issues.isEmpty { throw EditFileError(file: name, issues: issues) }
        return EditFile(path: name, format: layout, sha256: FileHash.sha256(data: data), records: records)
    }

    /// Guesses the layout of one record from its keys.
    public static func detect(_ object: [String: Any]) -> EditFileFormat? {
        if let rewrite = object["requested_rewrite"] {
            if rewrite is [Any] { return .mquake }
            if rewrite is [String: Any] { return .counterfactROME }
        }
        if object["src"] != nil, object["alt"] != nil { return .zsreMEND }
        if object["prompt"] != nil, object["target_new"] != nil {
            return object["locality_prompt"] != nil ? .counterfactFlat : .easyEdit
        }
        return nil
    }

    /// Writes requests as JSONL in the EasyEdit layout (the canonical form `parse` reads back).
    public static func encodeJSONL(_ requests: [EditRequest]) -> Data {
        var out = Data()
        for r in requests {
            func groups(_ gs: [PromptGroup]) -> [String: Any] {
                var d: [String: Any] = [:]
                for g in gs { d[g.key] = g.items.map { ["prompt": $0.prompt, "ground_truth": $0.answers] as [String: Any] } }
                return d
            }
            var object: [String: Any] = ["case_id": r.caseID, "prompt": r.prompt, "subject": r.subject, "target_new": r.targetNew]
            if !r.groundTruth.isEmpty { object["ground_truth"] = r.groundTruth }
            if !r.rephrasePrompts.isEmpty { object["rephrase_prompt"] = r.rephrasePrompts }
            if !r.locality.isEmpty { object["locality"] = groups(r.locality) }
            if !r.portability.isEmpty { object["portability"] = groups(r.portability) }
            // Sorted keys make the file byte-stable; the objects hold only JSON types, so this cannot throw.
            if let line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
                out.append(line)
                out.append(0x0A)
            }
        }
        return out
    }

    // MARK: - Top-level shapes

    struct RawRecord {
        let index: Int
        let line: Int?
        let value: Any
        var object: [String: Any]? { value as? [String: Any] }
    }

    /// A JSON list, a single JSON object, or JSONL (one object per line).
    static func rawRecords(_ data: Data, issues: inout [EditFileIssue]) -> [RawRecord] {
        guard let text = String(data: data, encoding: .utf8) else {
            issues.append(EditFileIssue(message: "the file is not UTF-8 text"))
            return []
        }
        let trimmed = text.drop(while: { $0.isWhitespace || $0 == "\u{FEFF}" })
        if trimmed.isEmpty { return [] }
        if let whole = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8), options: [.fragmentsAllowed]) {
            if let list = whole as? [Any] { return list.enumerated().map { RawRecord(index: $0.offset, line: nil, value: $0.element) } }
            if whole is [String: Any] { return [RawRecord(index: 0, line: nil, value: whole)] }
            issues.append(EditFileIssue(message: "expected a JSON list of records, a JSON object or JSONL, found \(describe(whole))"))
            return []
        }
        if trimmed.first == "[" {
            issues.append(EditFileIssue(message: "the file starts like a JSON list but is not valid JSON (\(jsonErrorDetail(Data(trimmed.utf8))))"))
            return []
        }
        // JSONL: every non-blank line is one record.
        var records: [RawRecord] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let body = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if body.isEmpty { continue }
            do {
                let value = try JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed])
                records.append(RawRecord(index: records.count, line: n + 1, value: value))
            } catch {
                issues.append(EditFileIssue(record: records.count, line: n + 1, message: "not valid JSON: \(jsonErrorDetail(Data(body.utf8)))"))
                records.append(RawRecord(index: records.count, line: n + 1, value: NSNull()))
            }
        }
        return records
    }

    static func jsonErrorDetail(_ data: Data) -> String {
        do { _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]); return "no error" } catch {
            return EngramError.jsonDetail(error)
        }
    }

    static func describe(_ value: Any?) -> String {
        switch value {
        case nil: return "nothing"
        case is NSNull: return "null"
        case let n as NSNumber: return String(cString: n.objCType) == "c" ? "a boolean" : "a number"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        default: return "\(type(of: value!))"
        }
    }
}

/// Reads the fields of one record, collecting every problem instead of stopping at the first.
final class RecordReader {
    let index: Int
    let line: Int?
    private(set) var issues: [EditFileIssue] = []

    init(index: Int, line: Int?) {
        self.index = index
        self.line = line
    }

    func issue(_ field: String?, _ message: String) {
        issues.append(EditFileIssue(record: index, line: line, field: field, message: message))
    }

    // MARK: Field readers

    /// A required or optional non-empty string. Also accepts ROME's `{"str": …}` objects.
    func string(_ object: [String: Any], _ key: String, path: String? = nil, required: Bool = true) -> String? {
        let field = path ?? key
        guard let value = object[key], !(value is NSNull) else {
            if required { issue(field, "missing (expected a string)") }
            return nil
        }
        let text: String
        if let s = value as? String { text = s }
        else if let o = value as? [String: Any], let s = o["str"] as? String { text = s }
        else {
            issue(field, "expected a string, found \(EditFile.describe(value))")
            return nil
        }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            issue(field, "is empty")
            return nil
        }
        return text
    }

    /// A string or a (possibly nested) list of strings, flattened in order: EasyEdit's alias lists.
    func strings(_ value: Any?, field: String, required: Bool) -> [String]? {
        guard let value, !(value is NSNull) else {
            if required { issue(field, "missing (expected a string or a list of strings)") }
            return nil
        }
        var out: [String] = []
        var bad = false
        func walk(_ v: Any, _ path: String) {
            if let s = v as? String { out.append(s) }
            else if let o = v as? [String: Any], let s = o["str"] as? String { out.append(s) }
            else if let list = v as? [Any] { for (i, x) in list.enumerated() { walk(x, "\(path)[\(i)]") } }
            else {
                issue(path, "expected a string or a list of strings, found \(EditFile.describe(v))")
                bad = true
            }
        }
        walk(value, field)
        if bad { return nil }
        return out
    }

    /// Like `strings`, but every entry must be non-blank and at least one must exist when required.
    func answers(_ value: Any?, field: String, required: Bool) -> [String]? {
        guard let list = strings(value, field: field, required: required) else { return nil }
        if list.isEmpty {
            if required { issue(field, "is an empty list (expected at least one answer)") }
            return required ? nil : []
        }
        if list.contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
            issue(field, "contains an empty answer")
            return nil
        }
        return list
    }

    func caseID(_ object: [String: Any]) -> String {
        switch object["case_id"] {
        case let n as NSNumber where String(cString: n.objCType) != "c":
            let d = n.doubleValue
            return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : n.stringValue
        case let s as String where !s.isEmpty: return s
        case nil, is NSNull: return String(index)
        case let other:
            issue("case_id", "expected a number or a string, found \(EditFile.describe(other))")
            return String(index)
        }
    }

    /// Fills `{}` with the subject (ROME/MQuAKE templates), requiring exactly one placeholder when asked.
    func fill(_ template: String, subject: String, field: String, requirePlaceholder: Bool) -> String? {
        let count = template.components(separatedBy: "{}").count - 1
        if count == 0 {
            if requirePlaceholder { issue(field, "the template has no '{}' placeholder for the subject") ; return nil }
            return template
        }
        if count > 1 { issue(field, "the template has \(count) '{}' placeholders; exactly one is allowed"); return nil }
        return template.replacingOccurrences(of: "{}", with: subject)
    }

    func checkSubject(_ subject: String, in prompt: String, field: String) -> Bool {
        if prompt.contains(subject) { return true }
        issue(field, "the subject \"\(subject)\" does not occur in the prompt \"\(prompt)\"")
        return false
    }

    /// KnowEdit `locality`/`portability`: `{key: [{prompt, ground_truth}]}` (the files) or
    /// `{key: {prompt: str|[str], ground_truth: …}}` (EasyEdit's request dicts).
    func groups(_ object: [String: Any], _ key: String) -> [PromptGroup] {
        guard let value = object[key], !(value is NSNull) else { return [] }
        guard let dict = value as? [String: Any] else {
            issue(key, "expected an object of named probe groups, found \(EditFile.describe(value))")
            return []
        }
        var out: [PromptGroup] = []
        for name in dict.keys.sorted() {
            let path = "\(key).\(name)"
            let entry = dict[name]!
            if name.trimmingCharacters(in: .whitespaces).isEmpty { issue(path, "the probe group has no name") }
            // An empty group counts as absent (the score is a mean over the keys present, and EasyEdit's
            // own request dicts carry `{"prompt": [], "ground_truth": []}` for unused keys).
            var items: [PromptAnswer] = []
            if let list = entry as? [Any] {
                for (i, element) in list.enumerated() {
                    guard let probe = element as? [String: Any] else {
                        issue("\(path)[\(i)]", "expected an object with prompt and ground_truth, found \(EditFile.describe(element))")
                        continue
                    }
                    if let item = probeItem(probe, path: "\(path)[\(i)]") { items.append(item) }
                }
            } else if let probe = entry as? [String: Any] {
                if let prompts = probe["prompt"] as? [Any] {
                    // Parallel lists: prompt[i] goes with ground_truth[i].
                    guard let truths = probe["ground_truth"] as? [Any], truths.count == prompts.count else {
                        issue("\(path).ground_truth", "expected a list with one answer per prompt (\(prompts.count) prompts)")
                        continue
                    }
                    for i in prompts.indices {
                        guard let p = prompts[i] as? String, !p.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                            issue("\(path).prompt[\(i)]", "expected a non-empty string, found \(EditFile.describe(prompts[i]))")
                            continue
                        }
                        if let a = answers(truths[i], field: "\(path).ground_truth[\(i)]", required: true) {
                            items.append(PromptAnswer(prompt: p, answers: a))
                        }
                    }
                } else if let item = probeItem(probe, path: path) {
                    items.append(item)
                }
            } else {
                issue(path, "expected a list of probes or a probe object, found \(EditFile.describe(entry))")
            }
            out.append(PromptGroup(key: name, items: items))
        }
        return out
    }

    func probeItem(_ probe: [String: Any], path: String) -> PromptAnswer? {
        let prompt = string(probe, "prompt", path: "\(path).prompt")
        let truth = answers(probe["ground_truth"] ?? probe["answer"], field: "\(path).ground_truth", required: true)
        guard let prompt, let truth else { return nil }
        return PromptAnswer(prompt: prompt, answers: truth)
    }

    func promptList(_ value: Any?, field: String) -> [String] {
        guard let value, !(value is NSNull) else { return [] }
        if let s = value as? String {
            if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { issue(field, "is empty"); return [] }
            return [s]
        }
        guard let list = value as? [Any] else {
            issue(field, "expected a string or a list of strings, found \(EditFile.describe(value))")
            return []
        }
        var out: [String] = []
        for (i, v) in list.enumerated() {
            if let s = v as? String, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { out.append(s) }
            else { issue("\(field)[\(i)]", "expected a non-empty string, found \(EditFile.describe(v))") }
        }
        return out
    }

    // MARK: Layouts

    func read(_ object: [String: Any], layout: EditFileFormat) -> EditRecord? {
        switch layout {
        case .easyEdit, .counterfactFlat: return readEasyEdit(object).map(EditRecord.single)
        case .counterfactROME: return readROMECounterFact(object).map(EditRecord.single)
        case .zsreMEND: return readZsRE(object).map(EditRecord.single)
        case .mquake: return readMQuAKE(object).map(EditRecord.multiHop)
        }
    }

    func readEasyEdit(_ o: [String: Any]) -> EditRequest? {
        let id = caseID(o)
        let subject = string(o, "subject")
        let rawPrompt = string(o, "prompt")
        let target = string(o, "target_new")
        let truth = answers(o["ground_truth"], field: "ground_truth", required: false) ?? []
        let rephrase = promptList(o["rephrase_prompt"] ?? o["rephrase_prompts"], field: o["rephrase_prompt"] != nil ? "rephrase_prompt" : "rephrase_prompts")
        var locality = groups(o, "locality")
        let portability = groups(o, "portability")
        if o["locality_prompt"] != nil || o["locality_ground_truth"] != nil {
            let prompts = promptList(o["locality_prompt"], field: "locality_prompt")
            if prompts.isEmpty, o["locality_prompt"] == nil { issue("locality_prompt", "missing (locality_ground_truth is given)") }
            if let list = o["locality_prompt"] as? [Any], list.isEmpty { issue("locality_prompt", "is an empty list") }
            if let list = o["locality_ground_truth"] as? [Any], let given = (o["locality_prompt"] as? [Any])?.count,
               given > 1, list.count > 1, list.count != given {
                issue("locality_ground_truth", "has \(list.count) answers for \(given) prompts: give one per prompt (or aliases for a single prompt)")
            }
            if let truth = answers(o["locality_ground_truth"], field: "locality_ground_truth", required: true), !prompts.isEmpty {
                // One answer per prompt when both are lists of the same length; otherwise the answers are aliases.
                let items: [PromptAnswer]
                if let list = o["locality_ground_truth"] as? [Any], list.count == prompts.count, prompts.count > 1 {
                    items = zip(prompts, truth).map { PromptAnswer(prompt: $0, answers: [$1]) }
                } else {
                    items = prompts.map { PromptAnswer(prompt: $0, answers: truth) }
                }
                locality.append(PromptGroup(key: EditFileFormat.neighborhoodKey, items: items))
            }
        }
        guard let subject, let rawPrompt, let target else { return nil }
        guard let prompt = fill(rawPrompt, subject: subject, field: "prompt", requirePlaceholder: false),
              checkSubject(subject, in: prompt, field: "subject") else { return nil }
        return EditRequest(caseID: id, prompt: prompt, subject: subject, targetNew: target, groundTruth: truth,
                           rephrasePrompts: rephrase, locality: locality, portability: portability)
    }

    func readROMECounterFact(_ o: [String: Any]) -> EditRequest? {
        let id = caseID(o)
        guard let rewrite = o["requested_rewrite"] as? [String: Any] else {
            issue("requested_rewrite", "expected an object, found \(EditFile.describe(o["requested_rewrite"]))")
            return nil
        }
        let subject = string(rewrite, "subject", path: "requested_rewrite.subject")
        let template = string(rewrite, "prompt", path: "requested_rewrite.prompt")
        let target = string(rewrite, "target_new", path: "requested_rewrite.target_new")
        let truth = string(rewrite, "target_true", path: "requested_rewrite.target_true", required: false)
        let paraphrases = promptList(o["paraphrase_prompts"], field: "paraphrase_prompts")
        let neighbours = promptList(o["neighborhood_prompts"], field: "neighborhood_prompts")
        guard let subject, let template, let target,
              let prompt = fill(template, subject: subject, field: "requested_rewrite.prompt", requirePlaceholder: true) else { return nil }
        var locality: [PromptGroup] = []
        if !neighbours.isEmpty {
            guard let truth else {
                issue("requested_rewrite.target_true", "missing; the neighborhood prompts need the true object as their answer")
                return nil
            }
            locality = [PromptGroup(key: EditFileFormat.neighborhoodKey, items: neighbours.map { PromptAnswer(prompt: $0, answers: [truth]) })]
        }
        return EditRequest(caseID: id, prompt: prompt, subject: subject, targetNew: target, groundTruth: truth.map { [$0] } ?? [],
                           rephrasePrompts: paraphrases, locality: locality)
    }

    func readZsRE(_ o: [String: Any]) -> EditRequest? {
        let id = caseID(o)
        let subject = string(o, "subject")
        let prompt = string(o, "src")
        let target = string(o, "alt")
        let truth = answers(o["answers"], field: "answers", required: false) ?? []
        let rephrase = promptList(o["rephrase"], field: "rephrase")
        var locality: [PromptGroup] = []
        if o["loc"] != nil || o["loc_ans"] != nil {
            let loc = string(o, "loc")
            let locAnswer = answers(o["loc_ans"], field: "loc_ans", required: true)
            if let loc, let locAnswer {
                locality = [PromptGroup(key: EditFileFormat.neighborhoodKey, items: [PromptAnswer(prompt: loc, answers: locAnswer)])]
            }
        }
        guard let subject, let prompt, let target, checkSubject(subject, in: prompt, field: "subject") else { return nil }
        return EditRequest(caseID: id, prompt: prompt, subject: subject, targetNew: target, groundTruth: truth,
                           rephrasePrompts: rephrase, locality: locality)
    }

    /// The elements of a list that are objects, each with its path ("field[i]"); others are reported.
    func objects(_ list: [Any], field: String) -> [(String, [String: Any])] {
        list.enumerated().compactMap { i, element in
            let path = "\(field)[\(i)]"
            guard let object = element as? [String: Any] else {
                issue(path, "expected an object, found \(EditFile.describe(element))")
                return nil
            }
            return (path, object)
        }
    }

    func readHops(_ value: Any?, field: String) -> [SingleHop] {
        guard let value, !(value is NSNull) else { return [] }
        guard let list = value as? [Any] else {
            issue(field, "expected a list of hops, found \(EditFile.describe(value))")
            return []
        }
        var hops: [SingleHop] = []
        for (path, h) in objects(list, field: field) {
            let q = string(h, "question", path: "\(path).question")
            let c = string(h, "cloze", path: "\(path).cloze")
            let a = string(h, "answer", path: "\(path).answer")
            let aliases = strings(h["answer_alias"], field: "\(path).answer_alias", required: false) ?? []
            if let q, let c, let a { hops.append(SingleHop(question: q, cloze: c, answer: a, aliases: aliases)) }
        }
        return hops
    }

    func readMQuAKE(_ o: [String: Any]) -> MultiHopCase? {
        let id = caseID(o)
        var requests: [EditRequest] = []
        if let list = o["requested_rewrite"] as? [Any] {
            if list.isEmpty { issue("requested_rewrite", "is an empty list (a case needs at least one edit)") }
            for (j, (path, rw)) in objects(list, field: "requested_rewrite").enumerated() {
                let subject = string(rw, "subject", path: "\(path).subject")
                let template = string(rw, "prompt", path: "\(path).prompt")
                let target = string(rw, "target_new", path: "\(path).target_new")
                let truth = string(rw, "target_true", path: "\(path).target_true", required: false)
                let question = string(rw, "question", path: "\(path).question", required: false)
                guard let subject, let template, let target,
                      let prompt = fill(template, subject: subject, field: "\(path).prompt", requirePlaceholder: true) else { continue }
                requests.append(EditRequest(caseID: "\(id).\(j)", prompt: prompt, subject: subject, targetNew: target,
                                            groundTruth: truth.map { [$0] } ?? [], rephrasePrompts: question.map { [$0] } ?? []))
            }
        } else {
            issue("requested_rewrite", "expected a list of edits, found \(EditFile.describe(o["requested_rewrite"]))")
        }
        let questions = promptList(o["questions"], field: "questions")
        if questions.isEmpty, o["questions"] == nil || (o["questions"] as? [Any])?.isEmpty == true {
            issue("questions", "missing or empty (expected the multi-hop questions)")
        }
        let answer = string(o, "answer")
        let aliases = strings(o["answer_alias"], field: "answer_alias", required: false) ?? []
        let newAnswer = string(o, "new_answer")
        let newAliases = strings(o["new_answer_alias"], field: "new_answer_alias", required: false) ?? []
        let hops = readHops(o["single_hops"], field: "single_hops")
        let newHops = readHops(o["new_single_hops"], field: "new_single_hops")
        guard let answer, let newAnswer, !requests.isEmpty, !questions.isEmpty else { return nil }
        return MultiHopCase(caseID: id, requests: requests, questions: questions, answer: answer, answerAliases: aliases,
                            newAnswer: newAnswer, newAnswerAliases: newAliases, singleHops: hops, newSingleHops: newHops)
    }
}
