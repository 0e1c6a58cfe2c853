import Engram
@testable import EngramServer
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over a blocking loopback socket: it sends exactly the bytes a test asks
/// for (any Host header, broken bodies, a Content-Length without the body) and reads the whole
/// response (Connection: close), decoding chunked bodies. Calls run on a Dispatch thread, never on
/// Swift's cooperative pool, which the server under test needs.
struct RawHTTPResponse {
    var status: Int
    var headers: [String: String] // lowercased names
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "not a JSON object: \(text)"])
        }
        return object
    }
    /// `error.code` and `error.param` of an error body.
    var errorCode: String? { ((try? json())?["error"] as? [String: Any])?["code"] as? String }
    var errorParam: String? { ((try? json())?["error"] as? [String: Any])?["param"] as? String }
    var errorMessage: String? { ((try? json())?["error"] as? [String: Any])?["message"] as? String }

    /// The `data:` payloads of a server-sent event stream.
    var events: [String] {
        text.components(separatedBy: "\n\n").compactMap { block in
            block.hasPrefix("data: ") ? String(block.dropFirst(6)) : nil
        }
    }
}

enum RawHTTP {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func send(port: Int, raw: Data, timeout: Double = 120) async throws -> RawHTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do { continuation.resume(returning: try sendBlocking(port: port, raw: raw, timeout: timeout)) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    static func request(port: Int, _ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:],
                        host: String? = nil) async throws -> RawHTTPResponse {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n"
        var headers = headers
        if body != nil, headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" } else if method == "POST" || method == "DELETE" { head += "Content-Length: 0\r\n" }
        head += "\r\n"
        var raw = Data(head.utf8)
        if let body { raw.append(body) }
        return try await send(port: port, raw: raw)
    }

    static func json(port: Int, _ method: String, _ path: String, _ object: Any, headers: [String: String] = [:]) async throws -> RawHTTPResponse {
        try await request(port: port, method, path, body: try JSONSerialization.data(withJSONObject: object), headers: headers)
    }

    /// Sends a request and returns the open socket without reading the answer: the caller closes it, as a
    /// client that goes away does.
    static func sendAndLeaveOpen(port: Int, _ method: String, _ path: String, _ object: Any) throws -> Int32 {
        let fd = try connected(port: port, timeout: 120)
        sendAll(fd, try requestBytes(port: port, method, path, object))
        return fd
    }

    /// A keep-alive request with a JSON body.
    static func requestBytes(port: Int, _ method: String, _ path: String, _ object: Any) throws -> Data {
        let body = try JSONSerialization.data(withJSONObject: object)
        var raw = Data("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        raw.append(body)
        return raw
    }

    /// Reads one whole response with a Content-Length body from a connection that stays open.
    static func readResponse(_ fd: Int32) throws -> RawHTTPResponse {
        var received = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let head = received.range(of: Data("\r\n\r\n".utf8)) {
                let headText = String(decoding: received[..<head.lowerBound], as: UTF8.self).lowercased()
                let length = headText.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if received.count >= head.upperBound + length { return try parse(received) }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw Failure(description: "the connection ended before a whole response (\(received.count) bytes)") }
            received.append(contentsOf: chunk[0..<n])
        }
    }

    private static func connected(port: Int, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect to port \(port) failed (errno \(errno))")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ raw: Data) {
        raw.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let n = Glibc.send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { break } // the server may close early (413); read what it answered
                sent += n
            }
        }
    }

    private static func sendBlocking(port: Int, raw: Data, timeout: Double) throws -> RawHTTPResponse {
        let fd = try connected(port: port, timeout: timeout)
        defer { close(fd) }
        sendAll(fd, raw)
        var received = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            received.append(contentsOf: chunk[0..<n])
        }
        return try parse(received)
    }

    static func parse(_ data: Data) throws -> RawHTTPResponse {
        let bytes = [UInt8](data)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) else {
            throw Failure(description: "no complete response head in \(bytes.count) bytes")
        }
        let lines = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var out: [UInt8] = []
            var i = 0
            while i < body.count {
                guard let lineEnd = (i..<(body.count - 1)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }) else { break }
                let sizeText = String(decoding: body[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { break }
                if size == 0 { break }
                let start = lineEnd + 2
                guard start + size <= body.count else { break }
                out += body[start..<(start + size)]
                i = start + size + 2
            }
            body = out
        }
        return RawHTTPResponse(status: status, headers: headers, body: Data(body))
    }
}

/// Log lines captured from the server (structured request logs are part of what is tested).
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(Logger.Level, String, Logger.Metadata)] = []

    func append(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        lock.lock()
        lines.append((level, message, metadata))
        lock.unlock()
    }

    var all: [(level: Logger.Level, message: String, metadata: Logger.Metadata)] {
        lock.lock()
        defer { lock.unlock() }
        return lines.map { ($0.0, $0.1, $0.2) }
    }
}

struct CaptureLogHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        sink.append(event.level, event.message.description, self.metadata.merging(event.metadata ?? [:]) { $1 })
    }
}

/// The real server on an ephemeral loopback port, over the shared default model.
final class TestServer: @unchecked Sendable {
    let server: EngramServer
    let port: Int
    let logs: CapturedLogs
    private let group: ServiceGroup
    private let task: Task<Void, Error>

    static let token = "test-token-0123456789abcdef"

    static func defaultModel() throws -> (Checkpoint, LanguageModel, Tokenizer) {
        let (ck, lm) = try TestSupport.sharedDefaultModel()
        if let cached = cachedTokenizer { return (ck, lm, cached) }
        let tokenizer = try TokenizerLoader.load(ck)
        cachedTokenizer = tokenizer
        return (ck, lm, tokenizer)
    }

    nonisolated(unsafe) static var cachedTokenizer: Tokenizer?

    /// `model`: another copy of the default model (e.g. opened on demand, as `engram serve` does).
    /// `afterEachJobCount`: counts the calls of the server's after-job hook (where `engram serve` drops
    /// float copies and returns memory).
    init(token: String? = TestServer.token, model: (Checkpoint, LanguageModel, Tokenizer)? = nil,
         afterEachJobCount: FloatBuffer? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        let (ck, lm, tokenizer) = try model ?? TestServer.defaultModel()
        var config = ServerConfiguration(modelID: "smollm2")
        config.port = 0
        config.token = token
        configure(&config)
        let logs = CapturedLogs()
        let logger = Logger(label: "engram.server.test") { _ in CaptureLogHandler(sink: logs) }
        let server = EngramServer(configuration: config, model: lm, tokenizer: tokenizer, checkpointLocation: ck.location, logger: logger,
                                  afterEachJob: { afterEachJobCount?[0] += 1 })
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let app = server.makeApplication { portSink.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        self.task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw RawHTTP.Failure(description: "the server did not report a port") }
        self.server = server
        self.port = port
        self.logs = logs
        self.group = group
    }

    /// Deletes every edit (restoring the shared model's weights), shuts down gracefully and waits.
    func stop() async throws {
        let list = try await get("/v1/edits", headers: auth).json()
        for edit in list["data"] as? [[String: Any]] ?? [] {
            if let id = edit["id"] as? String { _ = try await delete("/v1/edits/\(id)") }
        }
        await shutdownOnly()
        try await task.value
    }

    func shutdownOnly() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        server.shutdown()
    }

    var auth: [String: String] { ["Authorization": "Bearer \(TestServer.token)"] }

    func get(_ path: String, headers: [String: String] = [:]) async throws -> RawHTTPResponse {
        try await RawHTTP.request(port: port, "GET", path, headers: headers)
    }

    /// Returns once the model worker has nothing to do: the end of a request seen by its client can come
    /// before the worker's own bookkeeping of it, so `untilDecoding` after it needs this first.
    func untilIdle() async throws {
        try await until("the model worker to become idle") {
            let load = server.worker.load
            return !load.running && load.waiting == 0
        }
    }

    /// Returns once `condition` holds; fails after 30 s.
    func until(_ what: String, _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < end else {
                XCTFail("waited 30 s for \(what)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Returns once the model worker is decoding (or running) something: a request sent just before to
    /// an idle worker (`untilIdle`) has reached it. Fails after 30 s.
    func untilDecoding() async throws {
        try await until("the model worker to start the request") { server.worker.load.running }
    }

    func post(_ path: String, _ object: Any, headers: [String: String] = [:]) async throws -> RawHTTPResponse {
        try await RawHTTP.json(port: port, "POST", path, object, headers: headers)
    }

    func postRaw(_ path: String, _ body: Data, headers: [String: String] = [:]) async throws -> RawHTTPResponse {
        try await RawHTTP.request(port: port, "POST", path, body: body, headers: headers)
    }

    func delete(_ path: String) async throws -> RawHTTPResponse {
        try await RawHTTP.request(port: port, "DELETE", path, headers: auth)
    }
}

/// A weight-changing method for tests: a rank-one change of one MLP down projection, derived from the
/// request text (so the same request gives the same patch), large enough to move the probabilities.
final class RankOneTestEditor: Editor {
    let layer: Int
    let scale: Float

    init(layer: Int, scale: Float) {
        self.layer = layer
        self.scale = scale
    }

    var name: String { "TestRankOne" }
    var hyperParameters: [String: String] { ["layer": String(layer), "scale": String(scale)] }

    func edit(_ requests: [EditRequest], model: LanguageModel, tokenizer: Tokenizer) throws -> EditPatch {
        let c = model.config
        var rng = SplitMix64(seed: requests.map(\.targetNew).joined().utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 })
        let r = Matrix(rows: 1, cols: c.hidden, values: (0..<c.hidden).map { _ in Float(rng.nextUnit() * 2 - 1) * scale })
        let u = Matrix(rows: 1, cols: c.intermediate, values: (0..<c.intermediate).map { _ in Float(rng.nextUnit() * 2 - 1) * scale })
        return EditPatch(method: name, hyperParameters: hyperParameters, requests: requests,
                         deltas: [WeightDelta(weight: .mlpDown(layer), change: .lowRank(r: r, u: u))])
    }

    static let method = EditMethod(
        name: "TestRankOne", summary: "test-only rank-one weight change",
        parameters: [.init("layer", .integer(0...29), default: .integer(3), help: "layer"),
                     .init("scale", .number(0...10), default: .number(0.3), help: "entry size")],
        changesWeights: true
    ) { values, _ in RankOneTestEditor(layer: values["layer"]?.int ?? 3, scale: Float(values["scale"]?.double ?? 0.3)) }
}
