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
        var taken: [(path: String, what: String)] = []
        for case let (what, path?) in inputs {
            let resolved = CheckpointConverter.resolved(path)
            taken.append((resolved, what))
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: resolved)) ?? [] {
                    taken.append(((resolved as NSString).appendingPathComponent(name), "\(what) (\(name))"))
                }
            }
        }
        var written: [(path: String, option: String)] = []
        for case let (option, path?) in outputs {
            let target = CheckpointConverter.resolved(path)
            func refuse(_ why: String) -> EngramError {
                .invalidArgument("\(option) \(path): \(why); refusing to overwrite it, choose another path")
            }
            // An output folder (a safetensors checkpoint) replaces everything under it.
            for (other, what) in taken + written.map({ ($0.path, "the path given to \($0.option)") }) {
                if other == target { throw refuse("that is \(what)") }
                if other.hasPrefix(target + "/") { throw refuse("\(what) is inside it") }
            }
            for (other, earlier) in written where target.hasPrefix(other + "/") {
                throw refuse("it is inside the path given to \(earlier), which is replaced as a whole")
            }
            written.append((target, option))
        }
    }
}
