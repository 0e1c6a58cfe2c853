import Foundation
import HTTPTypes
import Hummingbird

/// An error a client can act on: an HTTP status and an OpenAI-style body
/// `{"error": {"message", "type", "param", "code"}}`, which the `openai` client libraries parse.
/// `param` names the offending request field, as a path such as `messages[1].content`.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String
    /// Extra response headers (WWW-Authenticate, Retry-After).
    public var headers: [(String, String)] = []

    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    // MARK: Common errors

    static func invalidField(_ path: String, _ detail: String) -> APIError {
        APIError(.badRequest, "field '\(path)': \(detail)", param: path, code: "invalid_field")
    }

    static func missingField(_ path: String) -> APIError {
        APIError(.badRequest, "field '\(path)' is required", param: path, code: "missing_field")
    }

    static func unknownField(_ path: String, allowed: [String]) -> APIError {
        APIError(.badRequest, "unknown field '\(path)' (allowed here: \(allowed.sorted().joined(separator: ", ")))", param: path, code: "unknown_field")
    }

    static func unsupported(_ path: String, _ detail: String) -> APIError {
        APIError(.badRequest, "field '\(path)': \(detail)", param: path, code: "unsupported_value")
    }

    static func notFound(_ message: String) -> APIError {
        APIError(.notFound, message, code: "not_found")
    }

    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(.contentTooLarge, "the request body exceeds the limit of \(limit) bytes (server option --max-body-bytes)", code: "body_too_large")
    }

    static func busy(depth: Int) -> APIError {
        var e = APIError(.tooManyRequests, "the model queue is full (\(depth) requests waiting, server option --queue-depth); retry later",
                         type: "rate_limit_error", code: "queue_full")
        e.headers = [("Retry-After", "1")]
        return e
    }

    static func timeout(seconds: Double) -> APIError {
        APIError(.requestTimeout, String(format: "the request exceeded the time limit of %g s (server option --timeout)", seconds),
                 type: "timeout_error", code: "request_timeout")
    }

    /// The answer to a request whose client closed the connection: nobody reads it, but the log does
    /// (499 is nginx's code for it).
    static let clientLeft = APIError(HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"),
                                     "the client closed the connection before the answer was ready", type: "server_error", code: "client_left")

    static let shuttingDown = APIError(.serviceUnavailable, "the server is shutting down", type: "server_error", code: "shutting_down")

    /// A failure inside the model or an editor that the request caused (bad subject, bad patch...).
    static func engram(_ error: Error, param: String? = nil) -> APIError {
        if let e = error as? APIError { return e }
        // Cancelled at the deadline is a timeout (`ModelWorker`); any other cancellation is a client gone.
        if error is CancellationError { return clientLeft }
        return APIError(.unprocessableContent, "\(error)", param: param, code: "model_error")
    }

    // MARK: Response

    struct Body: Encodable {
        struct Detail: Encodable {
            let message: String
            let type: String
            let param: String?
            let code: String

            // `param` is always present (null when no field is at fault), as OpenAI sends it.
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)
                try c.encode(code, forKey: .code)
            }

            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }

        let error: Detail
    }

    func response() -> Response {
        var response = JSONOutput.response(Body(error: .init(message: message, type: type, param: param, code: code)), status: status)
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}
