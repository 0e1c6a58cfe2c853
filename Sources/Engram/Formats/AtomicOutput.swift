import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
private let systemRename = Glibc.rename
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
private let systemRename = Darwin.rename
#endif

/// The temporary files and folders of outputs being written in this process, so that a command
/// stopped by a signal can remove them (`removeAll`) instead of leaving half-written files behind.
public enum TemporaryOutputs {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: Set<String> = []

    static func add(_ path: String) { lock.lock(); paths.insert(path); lock.unlock() }
    static func remove(_ path: String) { lock.lock(); paths.remove(path); lock.unlock() }

    /// Renames temporary outputs into place and forgets them, as one step against `removeAll`: a signal
    /// finds all of them still temporary (and removes them) or all in place (and leaves them). Stops at
    /// the first failure and returns its index; the ones before it stay renamed (a rename cannot be
    /// undone atomically).
    static func rename(_ moves: [(temporary: String, path: String)]) -> (index: Int, reason: String)? {
        lock.lock()
        defer { lock.unlock() }
        for (i, move) in moves.enumerated() {
            paths.remove(move.temporary)
            guard systemRename(move.temporary, move.path) == 0 else {
                let reason = String(cString: strerror(errno))
                for later in moves[i...] { paths.remove(later.temporary) } // the caller unlinks them
                return (i, reason)
            }
        }
        return nil
    }

    /// Deletes every temporary output still in progress (files and folders alike), holding the lock
    /// so that no write is renamed into place halfway through a deletion.
    public static func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
        paths = []
    }
}

/// A file written under a temporary name in its final folder and renamed into place on `commit()`,
/// so that readers see either the old file or the complete new one, never a half-written file.
/// Writes are buffered; large writes go straight to the file.
public final class AtomicFile {
    public let path: String
    let temporaryPath: String
    private var descriptor: Int32
    private var buffer: UnsafeMutableRawPointer
    private var buffered = 0
    private let bufferSize = 1 << 20
    private var finished = false
    /// Bytes handed to `write` so far (buffered or not).
    public private(set) var bytesWritten = 0

    public init(path: String) throws {
        self.path = path
        let parent = AtomicFile.parentFolder(of: path)
        let name = (path as NSString).lastPathComponent
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) {
            do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw EngramError.io(file: path, detail: "cannot create folder \(parent): \(error.localizedDescription)")
            }
        } else if !isDirectory.boolValue {
            throw EngramError.io(file: path, detail: "\(parent) is not a folder")
        }
        // Same folder as the target: rename() is only atomic within one file system.
        temporaryPath = (parent as NSString).appendingPathComponent(".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw EngramError.io(file: path, detail: "cannot create \(temporaryPath): \(String(cString: strerror(errno)))")
        }
        TemporaryOutputs.add(temporaryPath)
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 64)
    }

    deinit {
        if !finished { abort() }
        buffer.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        bytesWritten += bytes.count
        if buffered + bytes.count <= bufferSize {
            (buffer + buffered).copyMemory(from: base, byteCount: bytes.count)
            buffered += bytes.count
            return
        }
        try flush()
        if bytes.count >= bufferSize {
            try writeAll(base, bytes.count)
        } else {
            buffer.copyMemory(from: base, byteCount: bytes.count)
            buffered = bytes.count
        }
    }

    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }

    public func write(_ string: String) throws {
        try write(Data(string.utf8))
    }

    public func write<T: FixedWidthInteger>(littleEndian value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    public func writeZeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write(Data(count: count))
    }

    /// Writes float32 values converted to `dtype` (F32, F16 or BF16), in chunks so that no second
    /// full-size copy of a tensor is made.
    public func writeFloats(_ values: UnsafePointer<Float>, count: Int, as dtype: DType) throws {
        switch dtype {
        case .f32:
            try write(UnsafeRawBufferPointer(start: values, count: count * 4))
        case .f16, .bf16:
            let chunk = 1 << 16
            var scratch = [UInt16](repeating: 0, count: min(chunk, max(count, 1)))
            var start = 0
            while start < count {
                let n = min(chunk, count - start)
                for i in 0..<n {
                    let v = values[start + i]
                    scratch[i] = dtype == .f16 ? Dequantize.floatToHalf(v) : Dequantize.floatToBF16(v)
                }
                try scratch.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(n * 2)])) }
                start += n
            }
        default:
            throw EngramError.invalidArgument("\(path): cannot write floats as \(dtype) (only F32, F16 and BF16 are written from floats)")
        }
    }

    /// Flushes, syncs and renames the file into place.
    public func commit() throws { try AtomicFile.commit([self]) }

    /// Commits files that belong together (a trace's JSON and its picture): every one is flushed and
    /// synced before any is renamed, and the renames happen as one step against a signal, so an
    /// interrupted command leaves the old set or the new one, not a mix.
    public static func commit(_ files: [AtomicFile]) throws {
        let open = files.filter { !$0.finished }
        do {
            for file in open { try file.sync() }
        } catch {
            for file in open { file.abort() }
            throw error
        }
        for file in open { file.finished = true }
        if let (failed, reason) = TemporaryOutputs.rename(open.map { ($0.temporaryPath, $0.path) }) {
            for file in open[failed...] { unlink(file.temporaryPath) }
            let file = open[failed]
            throw EngramError.io(file: file.path, detail: "cannot rename \(file.temporaryPath) into place: \(reason)")
        }
    }

    /// Flushes the buffer, syncs and closes the descriptor; the file stays under its temporary name.
    private func sync() throws {
        try flush()
        guard fsync(descriptor) == 0 else {
            throw EngramError.io(file: path, detail: "cannot sync: \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        descriptor = -1
    }

    /// Drops the temporary file; the target is untouched.
    public func abort() {
        guard !finished else { return }
        finished = true
        if descriptor >= 0 { close(descriptor) }
        unlink(temporaryPath)
        TemporaryOutputs.remove(temporaryPath)
    }

    /// The folder a path's last component sits in ("." for a bare name). Computed on the string: NSString's
    /// `deletingLastPathComponent` traps on one-character paths in this Foundation.
    public static func parentFolder(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        let folder = p[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }

    /// Runs `body` on a new atomic file and commits it, or removes the temporary file if `body` throws.
    public static func write(to path: String, _ body: (AtomicFile) throws -> Void) throws {
        let file = try AtomicFile(path: path)
        do {
            try body(file)
            try file.commit()
        } catch {
            file.abort()
            throw error
        }
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeAll(buffer, buffered)
        buffered = 0
    }

    private func writeAll(_ base: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = systemWrite(descriptor, base + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw EngramError.io(file: path, detail: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

/// A folder built under a temporary sibling name and swapped into place at the end, so that a failed
/// conversion never leaves a half-written checkpoint folder behind.
public enum AtomicFolder {
    /// Calls `body` with the temporary folder to fill, then moves it to `path`. An existing `path` is
    /// replaced only when it is empty or looks like a checkpoint folder (has config.json), so that a
    /// mistyped output path cannot wipe an unrelated folder.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        let fm = FileManager.default
        let parent = AtomicFile.parentFolder(of: path)
        let name = (path as NSString).lastPathComponent
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw EngramError.io(file: path, detail: "exists and is not a folder; refusing to replace it with a checkpoint folder")
            }
            let contents = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            guard contents.isEmpty || contents.contains("config.json") else {
                throw EngramError.io(file: path, detail: "exists and is not a checkpoint folder (no config.json); refusing to replace it")
            }
        }
        do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw EngramError.io(file: path, detail: "cannot create folder \(parent): \(error.localizedDescription)")
        }
        let suffix = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let temporary = (parent as NSString).appendingPathComponent(".\(name).tmp-\(suffix)")
        guard mkdir(temporary, 0o755) == 0 else {
            throw EngramError.io(file: path, detail: "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        TemporaryOutputs.add(temporary)
        do {
            try body(temporary)
        } catch {
            TemporaryOutputs.remove(temporary)
            try? fm.removeItem(atPath: temporary)
            throw (error as? EngramError)?.replacingPath(temporary, with: path) ?? error
        }
        // Complete from here on: a signal during the swap below must not delete the new folder (the old
        // one may already be moved aside).
        TemporaryOutputs.remove(temporary)
        if fm.fileExists(atPath: path) {
            let old = (parent as NSString).appendingPathComponent(".\(name).old-\(suffix)")
            guard rename(path, old) == 0 else {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(atPath: temporary)
                throw EngramError.io(file: path, detail: "cannot move the old folder aside: \(reason)")
            }
            guard rename(temporary, path) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(old, path)
                try? fm.removeItem(atPath: temporary)
                throw EngramError.io(file: path, detail: "cannot rename \(temporary) into place: \(reason)")
            }
            try? fm.removeItem(atPath: old)
        } else {
            guard rename(temporary, path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(atPath: temporary)
                throw EngramError.io(file: path, detail: "cannot rename \(temporary) into place: \(reason)")
            }
        }
    }
}
