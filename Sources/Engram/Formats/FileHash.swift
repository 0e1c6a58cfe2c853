import Crypto
import Foundation

/// SHA-256 of files, streamed in 4 MiB chunks. Used to tie patches, statistics and reports to
/// the exact checkpoint and data they were made from.
public enum FileHash {
    public static func sha256(path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw EngramError.io(file: path, detail: "cannot open for hashing")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256(data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}

extension Checkpoint {
    /// SHA-256 of the checkpoint: of the file for GGUF; for a folder, of the sorted list of its
    /// safetensors files' own hashes. Computed once per checkpoint object.
    public func contentHash() throws -> String {
        if let cached = cachedHash { return cached }
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory)
        let hash: String
        if isDirectory.boolValue {
            let files = try FileManager.default.contentsOfDirectory(atPath: location).filter { $0.hasSuffix(".safetensors") }.sorted()
            let parts = try files.map { "\($0) \(try FileHash.sha256(path: (location as NSString).appendingPathComponent($0)))" }
            hash = FileHash.sha256(data: Data(parts.joined(separator: "\n").utf8))
        } else {
            hash = try FileHash.sha256(path: location)
        }
        cachedHash = hash
        return hash
    }
}
