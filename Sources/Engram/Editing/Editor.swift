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
