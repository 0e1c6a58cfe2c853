import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped privately into memory. Pages are copy-on-write: code may write into
/// the mapping (e.g. an editor changing a weight) and the file on disk never changes.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let pointer: UnsafeMutableRawPointer
    public let length: Int

    public init(path: String) throws {
        self.path = path
        // Non-blocking: a named pipe opens at once (blocking, it would wait for a writer) and fstat refuses it.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw EngramError.io(file: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw EngramError.io(file: path, detail: "cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw EngramError.io(file: path, detail: "not a regular file") }
        length = Int(info.st_size)
        guard length > 0 else { throw EngramError.format(file: path, detail: "file is empty") }
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw EngramError.io(file: path, detail: "cannot map: \(String(cString: strerror(errno)))")
        }
        pointer = base
    }

    deinit { munmap(pointer, length) }
}

/// Bounds-checked little-endian reading over a byte range. Every read that would run past the end
/// throws, naming the file and what was being read, so a truncated file can never crash us.
struct ByteReader {
    let base: UnsafeRawPointer
    let length: Int
    let file: String
    var offset: Int = 0

    init(base: UnsafeRawPointer, length: Int, file: String) {
        self.base = base
        self.length = length
        self.file = file
    }

    var remaining: Int { length - offset }

    mutating func bytes(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw EngramError.format(file: file, detail: "truncated while reading \(what()) at byte \(offset) (needs \(count) bytes, \(remaining) left)")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let raw = try bytes(MemoryLayout<T>.size, what())
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }
}
