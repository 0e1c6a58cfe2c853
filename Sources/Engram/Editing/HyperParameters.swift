import Foundation
import Yams

/// A method's knobs, read from YAML (`hparams/<method>/<model>.yaml`). Keys are EasyEdit's names, so its
/// files load as they are; keys that only say where a weight lives (module paths) are accepted and
/// ignored, because that is the architecture's business here; any other unknown key is an error.
public protocol MethodHyperParameters: Codable, Sendable {
    /// The keys this method understands.
    static var knownKeys: Set<String> { get }
    init()
}

/// The `v*`/`z` search knobs under EasyEdit's key names, which ROME's and MEMIT's files share.
public protocol ValueSearchKeys {
    var v_num_grad_steps: Int { get }
    var v_lr: Float { get }
    var v_weight_decay: Float { get }
    var kl_factor: Float { get }
    var clamp_norm_factor: Float { get }
}

extension ValueSearchKeys {
    var valueSearch: ValueSearchHyperparameters {
        ValueSearchHyperparameters(steps: v_num_grad_steps, learningRate: v_lr, weightDecay: v_weight_decay,
                                   klFactor: kl_factor, clampNormFactor: clamp_norm_factor)
    }
}

public enum HyperParameterFile {
    /// EasyEdit keys about devices, module paths and bookkeeping: meaningful there, not here.
    static let ignoredKeys: Set<String> = [
        "alg_name", "model_name", "device", "stats_dir", "model_parallel", "fp16", "max_length", "batch_size",
        "rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp", "attn_module_tmp", "ln_f_module", "lm_head_module",
        "P_loc", "sequential_edit",
    ]

    public static func load<H: MethodHyperParameters>(_ type: H.Type, path: String) throws -> H {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngramError.io(file: path, detail: "cannot read hyper-parameter file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw EngramError.format(file: path, detail: "not valid YAML: \(error)")
        }
        guard let map = node as? [String: Any] else {
            throw EngramError.format(file: path, detail: "expected a mapping of hyper-parameter names to values")
        }
        let unknown = Set(map.keys).subtracting(H.knownKeys).subtracting(ignoredKeys).sorted()
        if !unknown.isEmpty {
            throw EngramError.metadata(file: path, key: unknown.joined(separator: ", "),
                                       detail: "unknown hyper-parameter(s); known: \(H.knownKeys.sorted().joined(separator: ", "))")
        }
        // Keys the file leaves out keep the method's defaults.
        var merged = (try JSONSerialization.jsonObject(with: JSONEncoder().encode(H())) as? [String: Any]) ?? [:]
        let defaults = merged
        for (key, value) in map where H.knownKeys.contains(key) {
            // YAML also has .nan, .inf, timestamps and binary; no knob takes them, and JSON cannot
            // carry them to the decoder.
            guard isPlainValue(value) else {
                throw EngramError.metadata(file: path, key: key, detail: "'\(value)' is not a value this key takes (a finite number, string, boolean or list of them)")
            }
            merged[key] = value
        }
        do {
            let json = try JSONSerialization.data(withJSONObject: merged)
            return try JSONDecoder().decode(H.self, from: json)
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            // The decoder could not say which key (a fraction where a whole number goes): find it by
            // decoding the defaults with one of the file's values at a time.
            let culprit = map.keys.sorted().first { key in
                var one = defaults
                one[key] = merged[key]
                guard let json = try? JSONSerialization.data(withJSONObject: one) else { return true }
                return (try? JSONDecoder().decode(H.self, from: json)) == nil
            }
            guard let culprit else { throw EngramError.format(file: path, detail: "cannot read the hyper-parameters: \(context.debugDescription)") }
            throw EngramError.metadata(file: path, key: culprit, detail: "'\(merged[culprit] ?? "")' is not a value of this key's type (a whole number, a number, a string, true/false or a list)")
        } catch let DecodingError.typeMismatch(type, context) {
            let key = codingPathName(context.codingPath)
            let found = context.codingPath.first.flatMap { merged[$0.stringValue] }.map { " (the file has \($0))" } ?? ""
            throw EngramError.metadata(file: path, key: key, detail: "expected \(kindName(type))\(found)")
        } catch let DecodingError.dataCorrupted(context), let DecodingError.valueNotFound(_, context) {
            throw EngramError.metadata(file: path, key: codingPathName(context.codingPath), detail: context.debugDescription)
        } catch let DecodingError.keyNotFound(key, _) {
            throw EngramError.metadata(file: path, key: key.stringValue, detail: "missing")
        } catch {
            throw EngramError.format(file: path, detail: "cannot read the hyper-parameters: \(error)")
        }
    }

    /// A decoding path as the file's key: `layers[1]`, `context_template_length_params[0][1]`.
    static func codingPathName(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    /// A Swift type as the kind of YAML value it reads, for error messages.
    static func kindName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "a whole number"
        case is Float.Type, is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default: return String(describing: type).hasPrefix("Array") ? "a list" : "a value of type \(type)"
        }
    }

    static func isPlainValue(_ value: Any) -> Bool {
        switch value {
        case is String, is Bool, is Int, is NSNull: return true // null: an optional key left empty
        case let d as Double: return d.isFinite
        case let list as [Any]: return list.allSatisfy(isPlainValue)
        case let map as [String: Any]: return map.values.allSatisfy(isPlainValue)
        default: return false
        }
    }

    /// Runs a check of hyper-parameters read from `source` (nil: built-in defaults), naming that file in
    /// what it throws: the checks against the model run at edit time, far from where the file was read.
    public static func checking(_ source: String?, _ body: () throws -> Void) throws {
        do { try body() } catch let EngramError.invalidArgument(detail) {
            guard let source else { throw EngramError.invalidArgument(detail) }
            throw EngramError.invalidArgument("\(source): \(detail)")
        }
    }

    /// A method's hyper-parameters from `path` when given, else from `hparams/<method>/smollm2.yaml` when
    /// one is found (`defaultPath`; `source` says which), else the built-in defaults. The CLI and the server
    /// both start from this, so a broken default file is an error in both rather than silently ignored.
    public static func resolve<H: MethodHyperParameters>(_ type: H.Type, method: String, path: String?) throws -> H {
        guard let file = path ?? defaultPath(method: method) else { return H() }
        return try load(type, path: file)
    }

    /// Keys that EasyEdit's files carry but that have one meaning here: the value search's loss is always
    /// on the final logits, and statistics are always accumulated and solved in float64 (float32, the
    /// reference's memory saving, is accepted and gets float64). Any other value would be ignored, so it
    /// is refused. `mom2_dataset` names where the statistics come from; edits take them from the shipped
    /// WikiText-2 text (EasyEdit's files say "wikipedia", its own corpus), so a file or another name would
    /// be ignored and is refused too.
    static func checkFixedKeys(v_loss_layer: Int?, mom2_dtype: String, mom2_dataset: String, modelLayers: Int) throws {
        if let l = v_loss_layer, l != modelLayers - 1 {
            throw EngramError.invalidArgument("v_loss_layer \(l): the value search's loss is on the model's final logits "
                + "(layer \(modelLayers - 1)); leave the key out or set it to \(modelLayers - 1)")
        }
        guard ["float64", "float32"].contains(mom2_dtype) else {
            throw EngramError.invalidArgument("mom2_dtype '\(mom2_dtype)': statistics are kept in float64 ('float64' or 'float32')")
        }
        guard ["wikitext-2", "wikitext", "wikipedia"].contains(mom2_dataset) else {
            throw EngramError.invalidArgument("mom2_dataset '\(mom2_dataset)': edits take their key statistics from the shipped WikiText-2 "
                + "text (leave the key out or set it to wikitext-2; `engram stats --corpus FILE` collects statistics over another text)")
        }
    }

    /// The hyper-parameters as text for patches and reports (sorted keys, JSON values).
    public static func describe<H: MethodHyperParameters>(_ h: H) -> [String: String] {
        guard let data = try? JSONEncoder().encode(h),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in object {
            if let s = v as? String { out[k] = s; continue }
            let encoded = (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
            out[k] = String(decoding: encoded, as: UTF8.self)
        }
        return out
    }

    /// The default file for a method and model, looked for in this order: the source tree the binary
    /// was built from (development), `hparams/` beside the executable or in `../share/engram/` from it
    /// (an installed binary), then `$ENGRAM_HOME/hparams/`.
    public static func defaultPath(method: String, model: String = "smollm2") -> String? {
        let relative = "hparams/\(method)/\(model).yaml"
        var candidates: [String] = []
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 {
            dir = dir.deletingLastPathComponent()
            candidates.append(dir.appendingPathComponent(relative).path)
        }
        // The running binary's real folder (argv[0] may be a bare name found on $PATH).
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            candidates.append(executable.appendingPathComponent(relative).path)
            candidates.append(executable.appendingPathComponent("../share/engram/\(relative)").standardizedFileURL.path)
        }
        candidates.append((ModelRegistry.home as NSString).appendingPathComponent(relative))
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Which file `resolve` reads for a method, in words for the user: the path, or that the built-in
    /// defaults are in force (they are generic, not tuned for the default model).
    public static func source(method: String, path: String?) -> String {
        if let file = path ?? defaultPath(method: method) { return file }
        return "built-in defaults (no hparams/\(method)/smollm2.yaml in the source tree, beside the binary or in "
            + "\(ModelRegistry.home)/hparams; pass --hparams to choose)"
    }
}
