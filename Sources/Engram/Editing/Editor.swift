import Foundation

/// A knowledge-editing method. Given requests and the model as it is now (earlier patches may be in
/// force), it returns a patch; it must leave the model's weights as it found them; applying the patch is
/// the caller's business (`EditSession`), so that every method shares one apply/revert/save path.
public protocol Editor: AnyObject {
    /// Short method name recorded in patches and reports, e.g. "IKE", "ROME".
    var name: String { get }
    /// The hyper-parameters in force, as text, for patches and reports.
    var hyperParameters: [String: String] { get }
    /// Computes the patch that writes all `requests` at once (one request in single editing, N in a batch).
    func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch
    /// Loads or computes what the method takes from the unedited model (context templates, key
    /// statistics), so that a caller with other edits in force can run this on the original weights
    /// first (the server does); `edit` then reuses it. Methods that take nothing need not implement it.
    func prepare(model: LanguageModel, tokenizer: Tokenizer) throws
    /// Forgets what earlier edits left in the editor (AlphaEdit's keys of past edits) once those edits
    /// are reverted, so the next edit starts a new session. Methods that keep nothing need not implement it.
    func reset()
}

extension Editor {
    public func prepare(model: LanguageModel, tokenizer: Tokenizer) throws {}
    public func reset() {}
}

/// The "no edit" baseline: an empty patch. Evaluating it measures the unedited model with the same code
/// path as a real method (post equals pre), which is also how the runner is tested.
public final class NoEditor: Editor {
    public init() {}
    public var name: String { "none" }
    public var hyperParameters: [String: String] { [:] }
    public func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        EditPatch(method: name, requests: requests)
    }
}
