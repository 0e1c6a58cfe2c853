import Engram
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The HTTP server for probing and editing a model: OpenAI-compatible completions, probes, causal
/// traces and live edits, over one model shared by all requests through a single worker.
public final class EngramServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let state: ModelState
    let worker: ModelWorker
    let logger: Logger
    let started = Date()
    private let snapshotLock = NSLock()
    private var snapshot = (version: 0, active: [String]())
    /// `afterEachJob` runs on the model worker after every job that ends with nothing being decoded, and
    /// when the last completion being decoded ends (the CLI drops the float copies that an edit made of
    /// weights loaded on demand: `Checkpoint.releaseUnchangedFloatCopies`).
    public init(configuration: ServerConfiguration, model: LanguageModel, tokenizer: Tokenizer, checkpointLocation: String,
                logger: Logger = Logger(label: "engram.server"), afterEachJob: @escaping @Sendable () -> Void = {}) {
        self.configuration = configuration
        self.state = ModelState(model: model, tokenizer: tokenizer, modelID: configuration.modelID, checkpointLocation: checkpointLocation)
        self.worker = ModelWorker(maxQueued: configuration.limits.queueDepth, whenIdle: afterEachJob)
        self.logger = logger
    }

    deinit { worker.stop() }

    /// Applies a patch file before serving (`--patch`); it becomes an edit like any other.
    public func loadPatch(file: String) async throws {
        let data = try EngramError.readFile(file, what: "the patch")
        let patch = try EditPatch.parse(data, file: file)
        let entry = try await onWorker { [state] _ in
            do { try state.requireBase(of: patch) } catch let error as APIError {
                throw EngramError.invalidArgument("\(file): \(error.message)")
            }
            return try state.add(patch, fileData: data, source: file)
        }
        logger.info("patch loaded", metadata: ["edit": .string(entry.id), "file": .string(file), "method": .string(patch.method)])
    }

    // MARK: Running

    /// The Hummingbird application; `onRunning` receives the bound port (useful with port 0).
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        router.add(middleware: APIMiddleware(server: self))
        addRoutes(to: router)
        let logger = self.logger
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ClientHangUpWatch()],
                                                idleTimeout: .seconds(Int64(max(30, configuration.limits.timeoutSeconds + 30))))),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "engram"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("listening", metadata: ["host": .string(self.configuration.host), "port": .stringConvertible(port)])
                await onRunning(port)
            },
            logger: logger
        )
    }

    /// Serves until SIGTERM or SIGINT, then finishes the requests in flight and the queued model jobs.
    public func run() async throws {
        let app = makeApplication()
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        shutdown()
    }

    /// Refuses new model jobs and waits for the queued ones.
    public func shutdown() {
        worker.stop()
        worker.waitUntilStopped()
        logger.info("model worker stopped")
    }

    // MARK: Model jobs

    /// Runs `body` on the model worker with this request's deadline (`readsOnly`: see `ModelWorker.run`).
    /// `client`: the job is cancelled if that request's client goes away (work only it would see).
    func onWorker<T>(readsOnly: Bool = false, client: ServerContext? = nil,
                     _ body: @escaping (ModelWorker.JobControl) throws -> T) async throws -> T {
        let control = ModelWorker.JobControl(deadline: requestDeadline())
        client?.cancelWhenClientLeaves(control)
        let result = try await worker.run(deadline: control.deadline, control: control, timeoutSeconds: configuration.limits.timeoutSeconds,
                                          readsOnly: readsOnly) { [self] control in
            let value = try body(control)
            publishSnapshot()
            return value
        }
        return result
    }

    /// Queues a generation with this request's deadline: `start` encodes on the worker, which then
    /// prefills and decodes its sequences together with other requests' (see `ModelWorker`).
    /// `client`: as for `onWorker`.
    func onWorkerGenerating<T>(control: ModelWorker.JobControl? = nil, client: ServerContext,
                               _ start: @escaping (ModelWorker.JobControl) throws -> (sequences: [DecodingSequence], result: () throws -> T)) async throws -> T {
        let control = control ?? ModelWorker.JobControl(deadline: requestDeadline())
        client.cancelWhenClientLeaves(control)
        return try await worker.generate(deadline: control.deadline, control: control, timeoutSeconds: configuration.limits.timeoutSeconds, start)
    }

    /// A request started now must end by then (`--timeout`).
    func requestDeadline() -> ContinuousClock.Instant { .now + .seconds(configuration.limits.timeoutSeconds) }

    /// Called on the worker after every job, so that /health can read the state without waiting for it.
    private func publishSnapshot() {
        let s = (state.version, state.activeIDs)
        snapshotLock.lock()
        snapshot = s
        snapshotLock.unlock()
    }

    var currentSnapshot: (version: Int, active: [String]) {
        snapshotLock.lock()
        defer { snapshotLock.unlock() }
        return snapshot
    }

    // MARK: Access control

    /// Loopback servers answer read-only routes to anyone on the machine; state-changing routes (and,
    /// on any other address or with `requireTokenForReads`, every API route) need the bearer token. A loopback server also checks the
    /// Host header, so that a web page on another site cannot reach it through DNS rebinding.
    func authorize(_ request: Request, changesState: Bool) throws {
        if configuration.isLoopback, let host = request.head.authority {
            let name = host.hasPrefix("[") ? String(host.prefix { $0 != "]" }.dropFirst()) : String(host.split(separator: ":").first ?? "")
            guard ServerConfiguration.isLoopback(name) else {
                throw APIError(.forbidden, "host '\(host)' is not a loopback name; this server only answers requests addressed to localhost",
                               type: "permission_error", code: "host_not_allowed")
            }
        }
        guard changesState || configuration.readsNeedToken else { return }
        guard let token = configuration.token else {
            throw APIError(.forbidden, "editing is disabled because no token is configured: start the server with --token-file FILE " +
                           "(a file holding the token) or set ENGRAM_SERVER_TOKEN, then send 'Authorization: Bearer <token>'",
                           type: "permission_error", code: "no_token_configured")
        }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.count > prefix.count, header.lowercased().hasPrefix(prefix.lowercased()) else {
            var e = APIError(.unauthorized, "this route needs 'Authorization: Bearer <token>'", type: "authentication_error", code: "missing_token")
            e.headers = [("WWW-Authenticate", "Bearer")]
            throw e
        }
        guard Self.constantTimeEqual(String(header.dropFirst(prefix.count)), token) else {
            var e = APIError(.unauthorized, "the bearer token is not valid", type: "authentication_error", code: "invalid_token")
            e.headers = [("WWW-Authenticate", "Bearer error=\"invalid_token\"")]
            throw e
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }

    /// The request body, refused with 413 past `limit` bytes (before reading, when Content-Length says so).
    func body(of request: Request, limit: Int? = nil) async throws -> Data {
        let limit = limit ?? configuration.limits.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw APIError.bodyTooLarge(limit: limit) }
        var collected = ByteBuffer()
        for try await chunk in request.body {
            guard collected.readableBytes + chunk.readableBytes <= limit else { throw APIError.bodyTooLarge(limit: limit) }
            var chunk = chunk
            collected.writeBuffer(&chunk)
        }
        return Data(collected.readableBytesView)
    }
}

/// Maps every error to a JSON error response and logs one structured line per request.
struct APIMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let server: EngramServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        var failure: String?
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.response()
            failure = error.code
        } catch is CancellationError {
            response = APIError.clientLeft.response()
            failure = APIError.clientLeft.code
        } catch let error as HTTPError {
            let message = error.status == .notFound ? "no route \(request.method.rawValue) \(request.uri.path)" : (error.body ?? error.status.reasonPhrase)
            let code = error.status == .notFound ? "route_not_found" : "http_error"
            response = APIError(error.status, message, code: code).response()
            failure = code
        } catch {
            server.logger.error("unexpected error", metadata: ["error": .string("\(error)"), "path": .string(request.uri.path)])
            response = APIError(.internalServerError, "internal error: \(error)", type: "server_error", code: "internal_error").response()
            failure = "internal_error"
        }
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue),
            "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code),
            "ms": .string(String(format: "%.1f", (ContinuousClock.now - start).seconds * 1000)),
        ]
        if let failure { metadata["error"] = .string(failure) }
        if response.headers[.contentType] == "text/event-stream" { metadata["streaming"] = "true" }
        // The context's logger carries Hummingbird's request id.
        context.logger.info("request", metadata: metadata)
        return response
    }
}
