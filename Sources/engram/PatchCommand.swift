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
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a checkpoint with a patch applied (the input is never modified).")
        @OptionGroup var model: ModelArgument
        @Argument(help: "Patch file.") var patch: String
        @Option(help: "Output checkpoint.") var out: String
        @Option(help: "Output format: gguf or safetensors (default: the input's).") var format: String?
        @Flag(help: "Apply even if the checkpoint's sha256 differs from the patch's base.") var force = false

        func run() throws {
            let ck = try model.checkpoint()
            let p = try EditPatch.read(patch)
            try checkBase(p, ck, force: force)
            let lm = try ModelLoader.build(ck)
            let applied = try p.apply(to: lm)
            try CheckpointOutput.write(model: lm, checkpoint: ck, patch: p, to: out, format: format)
            try applied.revert()
            printError("wrote \(out)")
        }
    }

    struct Revert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a checkpoint with a patch's changes subtracted (W − ΔW; float rounding may differ from the original in the last bit).")
        @OptionGroup var model: ModelArgument
        @Argument(help: "Patch file.") var patch: String
        @Option(help: "Output checkpoint.") var out: String
        @Option(help: "Output format: gguf or safetensors (default: the input's).") var format: String?

        func run() throws {
            let ck = try model.checkpoint()
            var p = try EditPatch.read(patch)
            p.deltas = p.deltas.map { d in
                var negated = d
                switch d.change {
                case let .lowRank(r, u):
                    let minusR = r.copy()
                    for i in 0..<minusR.count { minusR.pointer[i] = -minusR.pointer[i] }
                    negated.change = .lowRank(r: minusR, u: u)
                case let .dense(m):
                    let minus = m.copy()
                    for i in 0..<minus.count { minus.pointer[i] = -minus.pointer[i] }
                    negated.change = .dense(minus)
                }
                return negated
            }
            let lm = try ModelLoader.build(ck)
            let applied = try p.apply(to: lm)
            try CheckpointOutput.write(model: lm, checkpoint: ck, patch: p, to: out, format: format)
            try applied.revert()
            printError("wrote \(out)")
        }
    }
}

func checkBase(_ p: EditPatch, _ ck: Checkpoint, force: Bool) throws {
    guard let base = p.baseSHA256 else { return }
    let hash = try ck.contentHash()
    if hash != base && !force {
        throw ValidationError("\(ck.location) has sha256 \(hash), but the patch was made on \(base); use --force to apply anyway")
    }
}
