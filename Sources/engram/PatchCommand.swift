import ArgumentParser
import Engram
import Foundation

struct PatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patch", abstract: "Show, apply or revert an edit patch.",
        subcommands: [Show.self, Apply.self, Revert.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print what a patch holds.")
        @Argument(help: "Patch file.") var patch: String
        func run() throws {
            let p = try EditPatch.read(patch)
            print("method: \(p.method)")
            print("base sha256: \(p.baseSHA256 ?? "unknown")")
            print("hyper-parameters: \(p.hyperParameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))")
            print("requests (\(p.requests.count)):")
            for r in p.requests { print("  [\(r.caseID)] \(r.prompt) → \(r.targetNew)") }
            print("weight changes (\(p.deltas.count)):")
            for d in p.deltas {
                let kind: String
                switch d.change {
                case let .lowRank(r, _): kind = "rank \(r.rows)"
                case .dense: kind = "dense"
                }
                print("  \(d.weight.name) [\(d.rows), \(d.cols)] \(kind)")
            }
            if let c = p.context { print("prompt context: \(c.facts.count) fact(s)") }
            for key in p.metadata.keys.sorted() {
                // One line per key: newlines shown escaped, long values (context templates) shortened.
                let value = p.metadata[key]!.replacingOccurrences(of: "\n", with: "\\n")
                print("\(key): " + (value.count > 240 ? "\(value.prefix(240))… (\(value.count) characters)" : value))
            }
            if p.deltas.isEmpty {
                print("original weights: none needed (no weight changes)")
            } else if p.originals.isEmpty {
                print("original weights: not kept (revert subtracts ΔW)")
            } else {
                print("original weights kept for an exact revert: " + p.originals.map { "\($0.weight.name) (\($0.dtype), \($0.bytes.count) bytes)" }.joined(separator: ", "))
            }
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a checkpoint with a patch applied (the input is never modified).")
        @OptionGroup var model: ModelArgument
        @Argument(help: "Patch file.") var patch: String
        @Option(help: "Output checkpoint.") var out: String
        @Option(help: "Output format: gguf or safetensors (default: the input's).") var format: String?
        @Flag(help: "Apply even if the checkpoint's sha256 differs from the patch's base.") var force = false

        func validate() throws { try checkPaths(model: model, patch: patch, out: out, format: format) }

        func run() throws {
            let ck = try model.checkpoint()
            let p = try EditPatch.read(patch)
            try requireWeightChanges(p, patch: patch)
            try checkBase(p, ck, force: force)
            let lm = try ModelLoader.build(ck)
            try p.validate(model: lm.config, patch: patch)
            let applied = try p.apply(to: lm)
            try CheckpointOutput.write(model: lm, checkpoint: ck, patch: p, to: out, format: format)
            try applied.revert()
            printError("wrote \(out)")
        }
    }

    struct Revert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a checkpoint with a patch's changes undone (the input is never modified).",
            discussion: """
            A patch written by `engram edit` keeps the base checkpoint's stored bytes of every weight it \
            changes, so reverting an edited checkpoint writes them back: the weights come back bit for bit, \
            in their original type. A patch without them (made in memory, e.g. by the server) is undone by \
            subtracting ΔW in float32, which can differ from the original in the last bit.
            """)
        @OptionGroup var model: ModelArgument
        @Argument(help: "Patch file.") var patch: String
        @Option(help: "Output checkpoint.") var out: String
        @Option(help: "Output format: gguf or safetensors (default: the input's).") var format: String?
        @Flag(help: "Revert even if the checkpoint's weights do not hold the patch's edit.") var force = false

        func validate() throws { try checkPaths(model: model, patch: patch, out: out, format: format) }

        func run() throws {
            let ck = try model.checkpoint()
            let p = try EditPatch.read(patch)
            try requireWeightChanges(p, patch: patch)
            let lm = try ModelLoader.build(ck)
            try p.validate(model: lm.config, patch: patch)
            let edited = Set(p.deltas.map(\.weight))
            if !edited.isEmpty, Set(p.originals.map(\.weight)) == edited {
                if !force { try p.checkHeld(by: lm, storedType: { ck.tensors[$0.canonicalTensorName]?.dtype }, checkpoint: model.model) }
                var restoring: [String: StoredOriginal] = [:]
                for o in p.originals { restoring[o.weight.canonicalTensorName] = o }
                try CheckpointOutput.write(checkpoint: ck, to: out, format: format, restoring: restoring)
                printError("wrote \(out) (original weights restored from the patch)")
                return
            }
            var negated = p
            negated.deltas = p.deltas.map { d in
                var n = d
                switch d.change {
                case let .lowRank(r, u):
                    let minusR = r.copy()
                    for i in 0..<minusR.count { minusR.pointer[i] = -minusR.pointer[i] }
                    n.change = .lowRank(r: minusR, u: u)
                case let .dense(m):
                    let minus = m.copy()
                    for i in 0..<minus.count { minus.pointer[i] = -minus.pointer[i] }
                    n.change = .dense(minus)
                }
                return n
            }
            let applied = try negated.apply(to: lm)
            try CheckpointOutput.write(model: lm, checkpoint: ck, patch: negated, to: out, format: format)
            try applied.revert()
            printError("wrote \(out) (W − ΔW: the patch holds no original weights, so the last bit may differ)")
        }
    }
}

/// Options of `patch apply|revert` that can be checked before the checkpoint is read.
func checkPaths(model: ModelArgument, patch: String, out: String, format: String?) throws {
    try CheckpointOutput.checkOut(out, format: format, model: model)
    try OutputPaths.check(outputs: [("--out", out)], inputs: [("the model", model.path), ("the patch", patch)])
}

/// A patch of a prompt-side method (IKE) holds no weights: writing a checkpoint "with it applied" would
/// silently drop the edit, so say so instead.
func requireWeightChanges(_ p: EditPatch, patch: String) throws {
    guard !p.deltas.isEmpty else {
        throw EngramError.invalidArgument("\(patch): this \(p.method) patch changes no weights (it edits the prompt), so there is no checkpoint to write")
    }
}

func checkBase(_ p: EditPatch, _ ck: Checkpoint, force: Bool) throws {
    guard !force, let base = p.baseSHA256 else { return }
    let hash = try ck.contentHash()
    if p.baseDiffers(from: hash) {
        throw EngramError.invalidArgument("\(ck.location) has sha256 \(hash), but the patch was made on \(base); use --force to apply anyway")
    }
}
