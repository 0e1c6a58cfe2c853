import Engram
import Foundation

/// One edit known to the server: its patch, the patch file bytes, and whether it is in force.
final class EditEntry {
    let id: String
    let patch: EditPatch
    /// The patch file as saved (what GET /v1/edits/{id}/patch returns).
    let fileData: Data
    let created: Date
    /// "request" for edits computed by the server, else the patch file it was loaded from.
    let source: String
    var enabled = true
    /// The weights it changed, while in force (nil for prompt-only patches and while disabled).
    var applied: AppliedPatch?

    init(id: String, patch: EditPatch, fileData: Data, source: String) {
        self.id = id
        self.patch = patch
        self.fileData = fileData
        self.source = source
        created = Date()
    }

    var changesWeights: Bool { !patch.deltas.isEmpty }
}

/// The model and its edits. Only the model worker thread touches it, so it needs no locks; every
/// method leaves the weights equal to "base + the enabled weight patches in list order".
///
/// Weight patches are stacked: the live weights are the base plus each enabled patch applied in list
/// order. To take a patch out of the middle, the patches above it are reverted (last in, first out:
/// each revert copies back the exact values it overwrote), then the ones that stay enabled are applied
/// again in order. The result is bit for bit what applying only those patches would give.
final class ModelState: @unchecked Sendable {
    let model: LanguageModel
    let tokenizer: Tokenizer
    let modelID: String
    let checkpointLocation: String
    private(set) var edits: [EditEntry] = []
    /// Increases with every change of the edits in force (clients can tell which state answered).
    private(set) var version = 0
    private var nextNumber = 1

    init(model: LanguageModel, tokenizer: Tokenizer, modelID: String, checkpointLocation: String) {
        self.model = model
        self.tokenizer = tokenizer
        self.modelID = modelID
        self.checkpointLocation = checkpointLocation
    }

    /// The checkpoint's sha256 (nil when it cannot be read): keys the statistics and templates that
    /// locate-then-edit methods keep on disk. Hashed at the first edit that needs it.
    private(set) lazy var checkpointSHA256: String? = try? FileHash.checkpoint(location: checkpointLocation)

    func entry(_ id: String) -> EditEntry? { edits.first { $0.id == id } }

    /// A patch made on another checkpoint is refused (`EditPatch.baseDiffers`; `engram patch apply`
    /// takes it with --force).
    func requireBase(of patch: EditPatch) throws {
        // The checkpoint is hashed only for a patch that names a base.
        guard let base = patch.baseSHA256, let hash = checkpointSHA256, patch.baseDiffers(from: hash) else { return }
        throw APIError(.conflict, "the patch was made on a checkpoint with sha256 \(base), but this server runs \(hash)",
                       code: "patch_base_mismatch")
    }

    /// The ids of the edits in force, in application order.
    var activeIDs: [String] { edits.filter(\.enabled).map(\.id) }

    /// The prompt-side context of the enabled edits, merged in order.
    var context: PromptContext? { PromptContext.merged(edits.filter(\.enabled).compactMap(\.patch.context)) }

    /// Adds a patch on top of the stack, in force. Nothing changes when applying fails. A patch that
    /// changes nothing, or one whose file is already in force (its deltas would be added twice), is refused,
    /// as `engram patch apply` refuses them.
    @discardableResult
    func add(_ patch: EditPatch, fileData: Data, source: String) throws -> EditEntry {
        guard !patch.deltas.isEmpty || patch.context != nil else {
            throw APIError(.badRequest, "the \(patch.method) patch changes nothing: it holds no weight changes and no prompt context",
                           code: "empty_patch")
        }
        if let same = edits.first(where: { $0.enabled && $0.fileData == fileData }) {
            throw APIError(.conflict, "this patch is already in force as \(same.id); disable or remove it first to apply it again",
                           code: "patch_already_applied")
        }
        let entry = EditEntry(id: "edit-\(nextNumber)", patch: patch, fileData: fileData, source: source)
        if entry.changesWeights { entry.applied = try patch.apply(to: model) }
        nextNumber += 1
        edits.append(entry)
        version += 1
        return entry
    }

    func setEnabled(_ id: String, _ enabled: Bool) throws -> EditEntry {
        guard let index = edits.firstIndex(where: { $0.id == id }) else { throw APIError.notFound("no edit '\(id)'") }
        let entry = edits[index]
        guard entry.enabled != enabled else { return entry }
        if entry.changesWeights {
            try restack(from: index) { entry.enabled = enabled }
        } else {
            entry.enabled = enabled
        }
        version += 1
        return entry
    }

    /// Rolls an edit back and forgets it.
    func remove(_ id: String) throws -> EditEntry {
        guard let index = edits.firstIndex(where: { $0.id == id }) else { throw APIError.notFound("no edit '\(id)'") }
        let entry = edits[index]
        if entry.changesWeights && entry.enabled {
            try restack(from: index) { entry.enabled = false }
        }
        edits.remove(at: index)
        version += 1
        return entry
    }

    /// Runs `body` on the unedited weights (every weight patch reverted), then puts the patches back, also
    /// when `body` throws. The caller renders prompts with `edited: false` inside.
    func withoutEdits<T>(_ body: () throws -> T) throws -> T {
        guard edits.contains(where: { $0.applied != nil }) else { return try body() }
        // Put back whatever was reverted, also if a revert fails half way: `reapply` restores list order.
        defer { reapply(from: 0) }
        for e in edits.reversed() where e.applied != nil {
            try e.applied?.revert()
            e.applied = nil
        }
        return try body()
    }

    /// Reverts the weight patches at `index` and above, runs `change`, and applies the enabled ones again.
    private func restack(from index: Int, _ change: () -> Void) throws {
        do {
            for e in edits[index...].reversed() where e.applied != nil {
                try e.applied?.revert()
                e.applied = nil
            }
        } catch {
            reapply(from: index) // back to the state before the call
            throw error
        }
        change()
        reapply(from: index)
    }

    private func reapply(from index: Int) {
        for e in edits[index...] where e.enabled && e.changesWeights && e.applied == nil {
            // The patch applied to these very weights before (or was validated against this model when
            // loaded), so applying it again cannot fail; if it somehow does, disable it rather than
            // leave the model half-patched.
            do { e.applied = try e.patch.apply(to: model) } catch { e.enabled = false }
        }
    }

    // MARK: Prompts

    /// The prompt text with the prompt-side edits in force (or none, for the unedited model).
    func render(_ prompt: String, edited: Bool = true) -> String {
        guard edited, let context else { return prompt }
        return context.render(prompt)
    }
}
