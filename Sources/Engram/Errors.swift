import Foundation

/// Every error Engram raises names the file and the tensor, key or field it is about,
/// says what was expected and what was found, so that a user can act on it.
public enum EngramError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// A file that cannot be opened or read.
    case io(file: String, detail: String)
    /// The file is not in the format it claims, or its structure is broken.
    case format(file: String, detail: String)
    /// A metadata key (GGUF) or config field (config.json) is missing or has the wrong type/value.
    case metadata(file: String, key: String, detail: String)
    /// A tensor is missing, has the wrong shape or dtype, or its data is out of range.
    case tensor(file: String, tensor: String, detail: String)
    /// Anything about the model itself that cannot work (e.g. unsupported architecture).
    case unsupported(file: String, detail: String)
    /// A user-supplied argument that cannot be used.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .io(file, detail): return "\(file): \(detail)"
        case let .format(file, detail): return "\(file): \(detail)"
        case let .metadata(file, key, detail): return "\(file): key '\(key)': \(detail)"
        case let .tensor(file, tensor, detail): return "\(file): tensor '\(tensor)': \(detail)"
        case let .unsupported(file, detail): return "\(file): \(detail)"
        case let .invalidArgument(detail): return detail
        }
    }

    public var errorDescription: String? { description }
}

extension EngramError {
    /// A whole file's bytes, or an error that says why not in words (missing, a folder, no permission)
    /// rather than Foundation's "NSCocoaErrorDomain error 256".
    public static func readFile(_ path: String, what: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw EngramError.io(file: path, detail: "cannot read \(what): no such file")
        }
        guard !isDirectory.boolValue else { throw EngramError.io(file: path, detail: "cannot read \(what): it is a folder, not a file") }
        try requireRegularFile(path, what: what)
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.isReadableFile(atPath: path) ? "reading failed" : "permission denied"
            throw EngramError.io(file: path, detail: "cannot read \(what): \(reason)")
        }
        return data
    }

    /// Refuses what is not a regular file (a named pipe, a device, a socket) before it is opened: reading a
    /// named pipe would wait for a writer forever.
    public static func requireRegularFile(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw EngramError.io(file: path, detail: "cannot read \(what): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw EngramError.io(file: path, detail: "cannot read \(what): not a regular file") }
    }
}

extension EngramError {
    /// Foundation's JSON parse error with its position ("… around line 3, column 7"), where its
    /// `localizedDescription` says only "The data is not in the correct format".
    public static func jsonDetail(_ error: Error) -> String {
        (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
    }
}

extension EngramError {
    /// The same error with `old` replaced by `new` in its file and text: a write into a temporary folder
    /// reports the output the user named.
    public func replacingPath(_ old: String, with new: String) -> EngramError {
        func r(_ text: String) -> String { text.replacingOccurrences(of: old, with: new) }
        switch self {
        case let .io(file, detail): return .io(file: r(file), detail: r(detail))
        case let .format(file, detail): return .format(file: r(file), detail: r(detail))
        case let .metadata(file, key, detail): return .metadata(file: r(file), key: key, detail: r(detail))
        case let .tensor(file, tensor, detail): return .tensor(file: r(file), tensor: tensor, detail: r(detail))
        case let .unsupported(file, detail): return .unsupported(file: r(file), detail: r(detail))
        case let .invalidArgument(detail): return .invalidArgument(r(detail))
        }
    }
}
