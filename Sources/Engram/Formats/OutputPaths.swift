import Foundation

/// Refuses, before any work is done, a command whose outputs would land on one of its inputs or on each
/// other. Every output is written atomically, so the later write would silently replace the earlier file
/// (a model, an edit file, a patch) and the command would still report success.
public enum OutputPaths {
    /// - Parameters:
    ///   - outputs: option name and path of each file the command will write (nil: not asked for).
    ///   - inputs: what each input is, and its path; a folder (a Hugging Face checkpoint) counts with
    ///     every file in it.
    public static func checkDistinct(outputs: [(option: String, path: String?)], inputs: [(what: String, path: String?)]) throws {
        var taken: [String: String] = [:]
        for case let (what, path?) in inputs {
            let resolved = CheckpointConverter.resolved(path)
            taken[resolved] = what
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: resolved)) ?? [] {
                    taken[(resolved as NSString).appendingPathComponent(name)] = "\(what) (\(name))"
                }
            }
        }
        for case let (option, path?) in outputs {
            let target = CheckpointConverter.resolved(path)
            if let other = taken[target] {
                throw EngramError.invalidArgument("\(option) \(path): that is \(other); refusing to overwrite it, choose another path")
            }
            taken[target] = "the path given to \(option)"
        }
    }
}
