import Engram
import Foundation

/// Bounds on what one request may ask for. Each is a server option; exceeding one is a 4xx error that
/// names the option.
public struct ServerLimits: Sendable {
    /// Request body size in bytes (JSON requests).
    public var maxBodyBytes = 1 << 20
    /// Request body size for uploaded patch files (weight deltas can be megabytes).
    public var maxPatchBytes = 256 << 20
    /// Prompt length in tokens, after prompt-side edits are added.
    public var maxPromptTokens = 2048
    /// Tokens generated per completion.
    public var maxTokens = 1024
    /// Jobs waiting for the model (generations, probes, traces, edits); more are refused with 429.
    public var queueDepth = 32
    /// Wall time per request, waiting included; a generation running past it is stopped.
    public var timeoutSeconds = 120.0
    /// Candidates per probe, and tokens per candidate.
    public var maxCandidates = 64
    public var maxCandidateTokens = 64
    public var maxTopK = 100
    /// Causal tracing: noised samples, and prompt tokens (its cost grows with tokens × layers).
    public var maxTraceSamples = 10
    public var maxTracePromptTokens = 64
    /// Prompts in one /v1/completions request.
    public var maxPromptsPerRequest = 8
    /// Requests in one edit.
    public var maxEditRequests = 64
    /// Edits held at once.
    public var maxEdits = 256

    public init() {}
}

/// Everything `engram serve` is started with.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 = any free port (tests); the bound port is reported once the server runs.
    public var port = 8080
    /// The bearer token for state-changing routes; nil = those routes are refused.
    public var token: String?
    /// Whether read-only API routes need the token too (always so on a non-loopback address; on a
    /// machine shared with other users, loopback is not private either).
    public var requireTokenForReads = false
    public var limits = ServerLimits()
    /// The id `/v1/models` reports and responses carry.
    public var modelID: String
    /// Where each new edit's patch file is also written (`<id>.patch.safetensors`), if set.
    public var patchDirectory: String?
    public var demonstrationPool: [EditRequest] = BuiltInDemonstrations.records
    public var methods: EditMethodRegistry = .standard

    public init(modelID: String) { self.modelID = modelID }

    /// Whether `host` only accepts connections from this machine.
    public var isLoopback: Bool { ServerConfiguration.isLoopback(host) }

    public var readsNeedToken: Bool { requireTokenForReads || !isLoopback }

    public static func isLoopback(_ host: String) -> Bool {
        let h = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// `host` as the listener takes it: an IPv6 address without the brackets of URL notation.
    public static func bareHost(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Why `host` cannot be listened on, or nil: an address must be a valid IPv4 or IPv6 literal (IPv6
    /// optionally in brackets or with a %zone), anything else a host name (labels of letters, digits, '-'
    /// and '_', as container and /etc/hosts names have; a final dot allowed).
    public static func hostProblem(_ host: String) -> String? {
        let h = bareHost(host)
        if h.isEmpty { return "is empty" }
        if h.contains(":") {
            var address = in6_addr()
            let parts = h.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
            let valid = inet_pton(AF_INET6, String(parts[0]), &address) == 1 && (parts.count == 1 || !parts[1].isEmpty)
            return valid ? nil : "is not a valid IPv6 address"
        }
        if h.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            var address = in_addr()
            return inet_pton(AF_INET, h, &address) == 1 ? nil : "is not a valid IPv4 address"
        }
        let name = h.hasSuffix(".") ? h.dropLast() : Substring(h)
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        let isName = name.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-" &&
                label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
        return isName ? nil : "is neither an IP address nor a host name"
    }

    /// The token from a file (first line, surrounding whitespace removed) or `ENGRAM_SERVER_TOKEN`.
    /// Tokens never come from the command line, where other users of the machine can read them.
    public static func loadToken(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let file {
            let text: String
            do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw EngramError.io(file: file, detail: "cannot read the token file: \(error.localizedDescription)")
            }
            let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard token.count >= 16 else {
                throw EngramError.invalidArgument("\(file): the token must be at least 16 characters (found \(token.count))")
            }
            return token
        }
        if let env = environment["ENGRAM_SERVER_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !env.isEmpty {
            guard env.count >= 16 else { throw EngramError.invalidArgument("ENGRAM_SERVER_TOKEN must be at least 16 characters (found \(env.count))") }
            return env
        }
        return nil
    }
}
