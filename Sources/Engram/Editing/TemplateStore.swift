import Foundation

/// Context templates kept on disk per model, so that a process making one edit (`engram edit`) does
/// not sample them again: sampling 20 short prefixes takes about as long as a third of a ROME edit on
/// the default model, and the result is fixed by the model, the groups and the seed anyway. (EasyEdit
/// keeps them for the life of a Python process; this keeps them for the life of the checkpoint.)
///
/// One small JSON file per model, groups and seed, holding its own key; a file whose key does not match
/// (or that cannot be read) is treated as absent and rewritten.
public struct TemplateStore: Sendable {
    public let directory: String
    /// The checkpoint's sha256: templates are sampled from the model as loaded.
    public let modelID: String
    /// Bumped whenever template sampling changes what it returns.
    static let version = "engram-templates-1"

    public init(directory: String, modelID: String) {
        self.directory = directory
        self.modelID = modelID
    }

    /// `$ENGRAM_HOME/templates`.
    public static func standard(modelID: String) -> TemplateStore {
        TemplateStore(directory: (ModelRegistry.home as NSString).appendingPathComponent("templates"), modelID: modelID)
    }

    struct Entry: Codable, Equatable {
        var version: String
        var modelSHA256: String
        var groups: [LocateThenEdit.TemplateGroup]
        var seed: UInt64
        var templates: [[String]]
    }

    func path(groups: [LocateThenEdit.TemplateGroup], seed: UInt64) -> String {
        let name = groups.map { "\($0.length)x\($0.count)" }.joined(separator: "-")
        return (directory as NSString).appendingPathComponent("\(modelID)-\(name)-seed\(seed).json")
    }

    func load(groups: [LocateThenEdit.TemplateGroup], seed: UInt64) -> [[String]]? {
        guard let data = FileManager.default.contents(atPath: path(groups: groups, seed: seed)),
              let entry = try? JSONDecoder().decode(Entry.self, from: data),
              entry.version == Self.version, entry.modelSHA256 == modelID, entry.groups == groups, entry.seed == seed,
              Self.hasShape(entry.templates, groups: groups)
        else { return nil }
        return entry.templates
    }

    /// What sampling gives: the bare "{}", then a list of templates per group, each with one "{}" (a
    /// list may be written by hand, shorter than the group). A file whose JSON parses but holds something
    /// else (no lists, an empty one, a template without "{}") is sampled again like a damaged one.
    static func hasShape(_ templates: [[String]], groups: [LocateThenEdit.TemplateGroup]) -> Bool {
        guard templates.count == groups.count + 1, templates[0] == ["{}"] else { return false }
        return templates.dropFirst().allSatisfy { list in
            !list.isEmpty && list.allSatisfy { $0.components(separatedBy: "{}").count == 2 }
        }
    }

    func save(_ templates: [[String]], groups: [LocateThenEdit.TemplateGroup], seed: UInt64) throws {
        let file = path(groups: groups, seed: seed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let entry = Entry(version: Self.version, modelSHA256: modelID, groups: groups, seed: seed, templates: templates)
            try encoder.encode(entry).write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            throw EngramError.io(file: file, detail: "cannot write the context templates: \(error.localizedDescription)")
        }
    }
}
