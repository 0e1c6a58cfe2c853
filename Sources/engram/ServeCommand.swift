import ArgumentParser
import Engram
import EngramServer
import Foundation
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over HTTP: OpenAI-compatible completions, probes, causal traces and live edits.",
        discussion: """
        Listens on 127.0.0.1 by default. Routes that change the model (POST/DELETE /v1/edits…) need \
        'Authorization: Bearer <token>'; the token is read from --token-file or the environment variable \
        ENGRAM_SERVER_TOKEN, never from the command line. Without a token, editing is refused. On an \
        address other than loopback every API route needs the token, and one must be configured.
        """
    )

    @OptionGroup var model: ModelArgument
    @Option(name: .customLong("patch"), help: "A patch file to apply at start (repeatable; applied in order).") var patches: [String] = []
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 = any free port).") var port = 8080
    @Option(name: .customLong("token-file"), help: "File whose first line is the bearer token for editing (at least 16 characters).")
    var tokenFile: String?
    @Flag(name: .customLong("require-token"), help: "Require the token on every API route, read-only ones too (for machines shared with other users).")
    var requireToken = false
    @Option(name: .customLong("ike-pool"), help: "Edit file whose records serve as IKE demonstrations (default: a small built-in set).")
    var ikePool: String?
    @Option(name: .customLong("save-patches"), help: "Folder where each new edit's patch file is also written.") var savePatches: String?
    @Option(name: .customLong("max-body-bytes"), help: "Largest JSON request body, in bytes.") var maxBodyBytes = 1 << 20
    @Option(name: .customLong("max-prompt-tokens"), help: "Longest prompt, in tokens (prompt-side edits included).") var maxPromptTokens = 2048
    @Option(name: .customLong("max-tokens"), help: "Most tokens one completion may generate.") var maxTokens = 1024
    @Option(name: .customLong("queue-depth"), help: "Model jobs that may wait at once; more are refused with 429.") var queueDepth = 32
    @Option(help: "Seconds one request may take, waiting included.") var timeout = 120.0
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        if let problem = ServerConfiguration.hostProblem(host) { throw ValidationError("--host '\(host)' \(problem)") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        guard maxPromptTokens >= 1, maxTokens >= 1, queueDepth >= 1 else {
            throw ValidationError("--max-prompt-tokens, --max-tokens and --queue-depth must be at least 1")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
    }

    func run() async throws {
        var logger = Logger(label: "engram.server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info

        var config = ServerConfiguration(modelID: Self.modelID(model.model))
        config.host = ServerConfiguration.bareHost(host)
        config.port = port
        config.token = try ServerConfiguration.loadToken(file: tokenFile)
        config.requireTokenForReads = requireToken
        config.patchDirectory = savePatches
        config.limits.maxBodyBytes = maxBodyBytes
        config.limits.maxPromptTokens = maxPromptTokens
        config.limits.maxTokens = maxTokens
        config.limits.queueDepth = queueDepth
        config.limits.timeoutSeconds = timeout
        if let ikePool { config.demonstrationPool = try EditFile.load(ikePool).requests }
        if config.readsNeedToken && config.token == nil {
            throw ValidationError((requireToken ? "--require-token" : "--host \(host) is not a loopback address") +
                                  ": configure a token (--token-file or ENGRAM_SERVER_TOKEN) first")
        }
        if let file = tokenFile, let attributes = try? FileManager.default.attributesOfItem(atPath: file),
           let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            logger.warning("the token file is readable by other users; chmod 600 it", metadata: ["file": .string(file)])
        }

        if let savePatches {
            // Made (or checked) now: finding out at the first edit would only log a warning per edit.
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: savePatches, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw ValidationError("--save-patches \(savePatches): not a folder") }
            } else {
                do { try FileManager.default.createDirectory(atPath: savePatches, withIntermediateDirectories: true) } catch {
                    throw ValidationError("--save-patches \(savePatches): cannot create the folder: \(error.localizedDescription)")
                }
            }
            guard FileManager.default.isWritableFile(atPath: savePatches) else {
                throw ValidationError("--save-patches \(savePatches): the folder is not writable")
            }
        }
        let (ck, lm, tokenizer) = try model.load(dequantizingOnDemand: true)
        // Weights stay quantized blocks; the floats an edit needs are made for it and dropped after it.
        let server = EngramServer(configuration: config, model: lm, tokenizer: tokenizer, checkpointLocation: ck.location,
                                  logger: logger, afterEachJob: { ck.releaseUnchangedFloatCopies() })
        for patch in patches { try await server.loadPatch(file: patch) }
        if config.token == nil {
            logger.notice("no token configured: read-only routes only; set --token-file or ENGRAM_SERVER_TOKEN to enable editing")
        }
        try await server.run()
    }

    /// The model name clients see: the alias, or the file or folder name without its extension.
    static func modelID(_ spec: String) -> String {
        if spec == "smollm2" { return "smollm2" }
        let name = ((spec as NSString).expandingTildeInPath as NSString).lastPathComponent
        return name.hasSuffix(".gguf") ? String(name.dropLast(5)) : name
    }
}
