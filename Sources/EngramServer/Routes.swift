import Engram
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension EngramServer {
    func addRoutes(to router: Router<ServerContext>) {
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
        router.get("/health") { [self] _, _ in
            let load = worker.load
            let snapshot = currentSnapshot
            return JSONOutput.response(Health(model: configuration.modelID, uptimeSeconds: Int(Date().timeIntervalSince(started)),
                                              queueWaiting: load.waiting, queueRunning: load.running, queueLimit: configuration.limits.queueDepth,
                                              editsInForce: snapshot.active, stateVersion: snapshot.version,
                                              editingEnabled: configuration.token != nil))
        }

        router.get("/v1/models") { [self] request, _ in
            try authorize(request, changesState: false)
            return JSONOutput.response(ModelList(data: [.init(id: configuration.modelID, created: Int(started.timeIntervalSince1970))]))
        }
        router.get("/v1/models/:model") { [self] request, context in
            try authorize(request, changesState: false)
            let id = context.parameters.get("model") ?? ""
            guard id == configuration.modelID else { throw APIError.notFound("no model '\(id)'; this server serves '\(configuration.modelID)'") }
            return JSONOutput.response(ModelList.Model(id: id, created: Int(started.timeIntervalSince1970)))
        }

        router.post("/v1/completions") { [self] request, context in
            try authorize(request, changesState: false)
            let parsed = try CompletionRequest.completion(try await body(of: request), limits: configuration.limits, vocab: state.model.config.vocab)
            return try await complete(parsed, client: context)
        }
        router.post("/v1/chat/completions") { [self] request, context in
            try authorize(request, changesState: false)
            let parsed = try CompletionRequest.chat(try await body(of: request), limits: configuration.limits, vocab: state.model.config.vocab)
            return try await complete(parsed, client: context)
        }

        router.post("/v1/probe") { [self] request, context in
            try authorize(request, changesState: false)
            let parsed = try ProbeRequest.parse(try await body(of: request), limits: configuration.limits)
            let limits = configuration.limits
            // Comparing with the unedited model takes the edits out for a moment: not while others decode.
            let response = try await onWorker(readsOnly: !parsed.compareUnedited, client: context) { [state, configuration] control in
                let current = try state.probe(parsed, edited: true, limits: limits, control: control)
                let unedited = parsed.compareUnedited ? try state.withoutEdits { try state.probe(parsed, edited: false, limits: limits) } : nil
                return ProbeResponse(model: configuration.modelID, prompt: parsed.prompt, current: current, unedited: unedited,
                                     editsInForce: state.activeIDs, stateVersion: state.version)
            }
            return JSONOutput.response(response)
        }

        router.post("/v1/trace") { [self] request, context in
            try authorize(request, changesState: false)
            let parsed = try TraceRequest.parse(try await body(of: request), limits: configuration.limits, layers: state.model.config.layers)
            let limits = configuration.limits
            // A trace runs hundreds of passes: it waits for the completions being decoded rather than
            // holding their streams up for seconds.
            let response = try await onWorker(client: context) { [state, configuration] control in
                TraceResponse(model: configuration.modelID, trace: try state.trace(parsed, limits: limits, control: control),
                              editsInForce: state.activeIDs, stateVersion: state.version)
            }
            return JSONOutput.response(response)
        }

        addEditRoutes(to: router)
    }

    // MARK: Edits

    func addEditRoutes(to router: Router<ServerContext>) {
        router.get("/v1/methods") { [self] request, _ in
            try authorize(request, changesState: false)
            return JSONOutput.response(MethodListResponse(configuration.methods))
        }
        router.get("/v1/edits") { [self] request, _ in
            try authorize(request, changesState: false)
            let list = try await onWorker(readsOnly: true) { [state] _ in
                EditListResponse(data: state.edits.map(EditBody.init), editsInForce: state.activeIDs, stateVersion: state.version)
            }
            return JSONOutput.response(list)
        }
        router.post("/v1/edits") { [self] request, _ in
            try authorize(request, changesState: true)
            let isPatchFile = request.headers[.contentType].map { $0.lowercased().hasPrefix("application/octet-stream") } ?? false
            let data = try await body(of: request, limit: isPatchFile ? configuration.limits.maxPatchBytes : nil)
            let response: EditResponse, fileData: Data
            if isPatchFile {
                let patch: EditPatch
                do { patch = try EditPatch.parse(data, file: "request body") } catch {
                    throw APIError(.badRequest, "the body is not a valid Engram patch file: \(error)", code: "invalid_patch")
                }
                (response, fileData) = try await addEdit(source: "upload") { [state] _, _ in
                    try state.requireBase(of: patch)
                    return (patch, data)
                }
            } else {
                let parsed = try EditCreateRequest.parse(data, registry: configuration.methods, limits: configuration.limits)
                // The declared range of a layer cannot know the model; checked here so the error names the field.
                if let layer = parsed.values["layer"]?.int, layer >= state.model.config.layers {
                    let got = parsed.given.contains("layer") ? "got \(layer)" : "the default is \(layer): give hyper_parameters.layer"
                    throw APIError.invalidField("hyper_parameters.layer", "the model has \(state.model.config.layers) layers (0...\(state.model.config.layers - 1)); \(got)")
                }
                (response, fileData) = try await addEdit(source: "request") { [state, configuration, logger] model, tokenizer in
                    var context = EditMethodContext(checkpointLocation: state.checkpointLocation, demonstrationPool: configuration.demonstrationPool)
                    if let hash = state.checkpointSHA256 {
                        context.statistics = EditorRegistry.statistics(model: model, tokenizer: tokenizer, modelHash: hash) { done, total in
                            if done == 0 || done == total {
                                logger.info("key statistics", metadata: ["documents": .string("\(done)/\(total)")])
                            }
                        }
                        context.templateStore = .standard(modelID: hash)
                    }
                    let editor = try parsed.method.makeEditor(parsed.values, context)
                    // Templates and statistics describe the unedited model, whatever edits are in force.
                    try state.withoutEdits { try editor.prepare(model: model, tokenizer: tokenizer) }
                    let patch = try editor.edit(parsed.requests, model: model, tokenizer: tokenizer)
                    return (patch, try patch.fileData())
                }
            }
            if let dir = configuration.patchDirectory {
                // Edit ids start again at edit-1 in every run: a name already taken by an earlier run's
                // patch gets a number instead of replacing it.
                var path = (dir as NSString).appendingPathComponent("\(response.edit.id).patch.safetensors")
                var n = 2
                while FileManager.default.fileExists(atPath: path) {
                    path = (dir as NSString).appendingPathComponent("\(response.edit.id).\(n).patch.safetensors")
                    n += 1
                }
                do {
                    try fileData.write(to: URL(fileURLWithPath: path), options: .atomic)
                    logger.info("saved the patch", metadata: ["file": .string(path)])
                } catch {
                    logger.warning("cannot save the patch", metadata: ["file": .string(path), "error": .string(error.localizedDescription)])
                }
            }
            return JSONOutput.response(response, status: .created)
        }
        router.get("/v1/edits/:id") { [self] request, context in
            try authorize(request, changesState: false)
            let id = context.parameters.get("id") ?? ""
            return JSONOutput.response(try await onWorker(readsOnly: true) { [state] _ in
                guard let e = state.entry(id) else { throw APIError.notFound("no edit '\(id)'") }
                return EditResponse(edit: EditBody(e), editsInForce: state.activeIDs, stateVersion: state.version)
            })
        }
        router.get("/v1/edits/:id/patch") { [self] request, context in
            try authorize(request, changesState: false)
            let id = context.parameters.get("id") ?? ""
            let data = try await onWorker(readsOnly: true) { [state] _ in
                guard let e = state.entry(id) else { throw APIError.notFound("no edit '\(id)'") }
                return e.fileData
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream",
                                                   .contentDisposition: "attachment; filename=\"\(id).patch.safetensors\""],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.delete("/v1/edits/:id") { [self] request, context in
            try authorize(request, changesState: true)
            let id = context.parameters.get("id") ?? ""
            return JSONOutput.response(try await onWorker { [state] _ in
                let e = try state.remove(id)
                return EditResponse(edit: EditBody(e), editsInForce: state.activeIDs, stateVersion: state.version)
            })
        }
        for (action, enabled) in [("enable", true), ("disable", false)] {
            router.post("/v1/edits/:id/\(action)") { [self] request, context in
                try authorize(request, changesState: true)
                let id = context.parameters.get("id") ?? ""
                return JSONOutput.response(try await onWorker { [state] _ in
                    let e = try state.setEnabled(id, enabled)
                    return EditResponse(edit: EditBody(e), editsInForce: state.activeIDs, stateVersion: state.version)
                })
            }
        }
    }

    /// Computes and applies a patch in one model job: no request runs between the two.
    private func addEdit(source: String, _ make: @escaping (LanguageModel, Tokenizer) throws -> (EditPatch, Data)) async throws -> (EditResponse, Data) {
        let maxEdits = configuration.limits.maxEdits
        return try await onWorker { [state] _ in
            guard state.edits.count < maxEdits else {
                throw APIError(.conflict, "the server holds \(maxEdits) edits already; delete some first", code: "too_many_edits")
            }
            let (patch, data): (EditPatch, Data)
            do { (patch, data) = try make(state.model, state.tokenizer) } catch {
                throw APIError.engram(error)
            }
            let entry: EditEntry
            do { entry = try state.add(patch, fileData: data, source: source) } catch let refused as APIError {
                throw refused // an empty patch, or one in force already: its own status and code
            } catch {
                throw APIError(.badRequest, "the patch cannot be applied to this model: \(error)", code: "invalid_patch")
            }
            return (EditResponse(edit: EditBody(entry), editsInForce: state.activeIDs, stateVersion: state.version), data)
        }
    }
}

// MARK: - Wire types

struct Health: Encodable {
    var status = "ok"
    var model: String
    var uptimeSeconds: Int
    var queueWaiting: Int
    var queueRunning: Bool
    var queueLimit: Int
    var editsInForce: [String]
    var stateVersion: Int
    var editingEnabled: Bool
}

struct ModelList: Encodable {
    struct Model: Encodable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "engram"
    }

    var object = "list"
    var data: [Model]
}
