import Foundation

/// Refuses, before any work is done, a command whose outputs would land on one of its inputs or on each
/// other, or in a place where no file can be created. Every output is written atomically, so the later
/// write would silently replace the earlier file (a model, an edit file, a patch) and the command would
/// still report success; and a read-only destination would only be found out after minutes of editing.
public enum OutputPaths {
    /// - Parameters:
    ///   - outputs: option name and path of each file the command will write (nil: not asked for).
    ///   - inputs: what each input is, and its path; a folder (a Hugging Face checkpoint) counts with
    ///     every file in it.
    public static func check(outputs: [(option: String, path: String?)], inputs: [(what: String, path: String?)]) throws {
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
            try checkWritable(option: option, path: path)
        }
    }

    /// The folder that will hold `path` must accept new files. Missing folders are made when the output is
    /// written, so the nearest existing one is tried, by creating and removing an empty file: permission
    /// bits do not tell (root may write anywhere they allow, yet not in /sys or on a read-only mount).
    public static func checkWritable(option: String, path: String) throws {
        var folder = AtomicFile.parentFolder(of: path)
        while !FileManager.default.fileExists(atPath: folder) {
            let up = AtomicFile.parentFolder(of: folder)
            if up == folder { break }
            folder = up
        }
        let probe = (folder as NSString).appendingPathComponent(".engram-write-check-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        TemporaryOutputs.add(probe)  // removed on Ctrl-C too
        defer { TemporaryOutputs.remove(probe) }
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw EngramError.invalidArgument("\(option) \(path): cannot create files in \(folder) (\(String(cString: strerror(errno))))")
        }
        close(descriptor)
        unlink(probe)
    }
}
