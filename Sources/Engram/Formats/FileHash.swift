import Crypto
import Foundation

/// SHA-256 of files, streamed in 4 MiB chunks. Used to tie patches, statistics and reports to
/// the exact checkpoint and data they were made from.
public enum FileHash {
    public static func sha256(path: String) throws -> String {
        try EngramError.requireRegularFile(path, what: "the file to hash it")
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

extension FileHash {
    /// SHA-256 of a checkpoint: of the file for GGUF; for a folder, of the sorted list of its
    /// safetensors files' own hashes.
    public static func checkpoint(location: String) throws -> String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory)
        guard isDirectory.boolValue else { return try sha256(path: location) }
        let files = try FileManager.default.contentsOfDirectory(atPath: location).filter { $0.hasSuffix(".safetensors") }.sorted()
        let parts = try files.map { "\($0) \(try sha256(path: (location as NSString).appendingPathComponent($0)))" }
        return sha256(data: Data(parts.joined(separator: "\n").utf8))
    }
}

extension Checkpoint {
    /// `FileHash.checkpoint(location:)`, computed once per checkpoint object.
    public func contentHash() throws -> String {
        if let cached = cachedHash { return cached }
        let hash = try FileHash.checkpoint(location: location)
        cachedHash = hash
        return hash
    }
}
