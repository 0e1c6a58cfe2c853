import Foundation

/// Target values (`v*` for ROME, `z` for MEMIT and AlphaEdit) kept on disk between runs.
///
/// The value search is most of an edit's cost, and its result depends only on the model's weights,
/// the request, the context templates, the hook site and the search's knobs. Experiments recompute the
/// same values over and over: MEMIT and AlphaEdit on the same records search the same `z`, and a batch
/// of all records needs the `z` a single-edit run already found (the MEMIT reference code keeps such a
/// cache too). Entries are keyed by a hash of all of those inputs, the edited weights' current contents
/// included, so an entry computed on an edited model is never used for another state.
public final class ValueCache {
    public let directory: String
    /// The base checkpoint's sha256.
    public let modelID: String
    public private(set) var hits = 0
    public private(set) var misses = 0
    /// Bumped whenever the value search changes what it returns (2: its products on AVX-512 CPUs went to the
    /// few-row kernels, which round differently from sgemm; 3: those kernels' forward sums each element in
    /// one lane, and more rows go to them).
    static let version = "engram-value-3"

    public init(directory: String, modelID: String) throws {
        self.directory = directory
        self.modelID = modelID
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw EngramError.io(file: directory, detail: "cannot create the value cache folder: \(error.localizedDescription)")
        }
    }

    /// What an entry says about itself (the key's inputs, readable) next to the value.
    struct Entry: Codable {
        var key: [String: String]
        var value: [Float]
    }

    /// The key's inputs for one request. `weights` fingerprints the model's editable weights as they are now.
    static func describe(modelID: String, weights: String, site: HookSite, hp: ValueSearchHyperparameters,
                         templates: [String], request: EditRequest) -> [String: String] {
        ["version": version, "model_sha256": modelID, "editable_weights_fnv": weights, "site": site.description,
         "steps": "\(hp.steps)", "lr": "\(hp.learningRate)", "weight_decay": "\(hp.weightDecay)", "kl_factor": "\(hp.klFactor)",
         "clamp_norm_factor": "\(hp.clampNormFactor)", "early_stop_loss": "\(hp.earlyStopLoss)",
         "templates": templates.joined(separator: "\u{1F}"),
         "prompt": request.prompt, "subject": request.subject, "target_new": request.targetNew]
    }

    /// Fingerprint of every editable weight (the only weights an edit changes).
    static func weightsFingerprint(_ model: LanguageModel) -> String {
        (0..<model.config.layers).map { String(AppliedPatch.fingerprint(model.readWeight(.mlpDown($0))), radix: 16) }
            .joined(separator: ".")
    }

    func path(for key: [String: String]) -> String {
        let text = key.keys.sorted().map { "\($0)=\(key[$0]!)" }.joined(separator: "\u{1E}")
        return "\(directory)/\(FileHash.sha256(data: Data(text.utf8))).json"
    }

    /// The stored value, if any. An unreadable or mismatching entry, or one whose value is not `width`
    /// finite numbers (a damaged or hand-edited file), counts as a miss (it is rewritten).
    func lookup(_ key: [String: String], width: Int) -> [Float]? {
        guard let data = FileManager.default.contents(atPath: path(for: key)),
              let entry = try? JSONDecoder().decode(Entry.self, from: data), entry.key == key,
              entry.value.count == width, entry.value.allSatisfy(\.isFinite) else {
            misses += 1
            return nil
        }
        hits += 1
        return entry.value
    }

    func store(_ value: [Float], for key: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let file = path(for: key)
        do {
            try encoder.encode(Entry(key: key, value: value)).write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            throw EngramError.io(file: file, detail: "cannot write a value cache entry: \(error.localizedDescription)")
        }
    }
}
