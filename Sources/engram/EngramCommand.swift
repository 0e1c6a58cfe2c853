import ArgumentParser
import Engram
import Foundation

@main
struct EngramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engram",
        abstract: "Run, inspect, edit and evaluate language models.",
        subcommands: [GenerateCommand.self, TokenizeCommand.self, InspectCommand.self, ConvertCommand.self, TraceCommand.self,
                      StatsCommand.self, EditCommand.self, PatchCommand.self, EvalCommand.self, ServeCommand.self]
    )

    static func main() async {
        BLAS.runAgainWithFittingCore()
        do {
            var command = try parseAsRoot()
            // The server shuts down gracefully on these signals itself (service lifecycle).
            if !(command is ServeCommand) { removeTemporaryOutputsOnSignal() }
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Ctrl-C or a `kill` while a command writes its outputs would leave the temporary files of an
/// unfinished write (`.NAME.tmp-…`) next to them: remove those, then exit at once with the shell's
/// code for the signal (128 + n). Re-raising the signal would not work: this handler runs on a
/// dispatch thread that has the signal blocked, so the process would go on.
func removeTemporaryOutputsOnSignal() {
    for number in [SIGINT, SIGTERM, SIGHUP] {
        signal(number, SIG_IGN) // delivered to the dispatch source instead
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            TemporaryOutputs.removeAll()
            _exit(128 + number)
        }
        source.resume()
        signalSources.append(source)
    }
}

nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []

/// The MODEL argument every command takes: a GGUF file, a Hugging Face folder, or `smollm2`.
struct ModelArgument: ParsableArguments {
    @Argument(help: "A GGUF file, a Hugging Face folder (config.json + safetensors), or 'smollm2'.")
    var model: String

    func checkpoint() throws -> Checkpoint { try ModelLoader.checkpoint(model) }

    /// The file or folder the argument names (`smollm2` resolved to its installed file), if it resolves.
    /// A `.safetensors` file stands for its folder, as `ModelLoader.checkpoint` reads it.
    var path: String? {
        guard let p = try? ModelRegistry.resolve(model) else { return nil }
        return p.hasSuffix(".safetensors") ? AtomicFile.parentFolder(of: p) : p
    }

    /// Checkpoint, model and tokenizer together. `dequantizingOnDemand` keeps a quantized file's weights
    /// as blocks until something needs their floats (`Checkpoint.dequantizesOnDemand`): for commands
    /// that mostly generate.
    func load(dequantizingOnDemand: Bool = false) throws -> (Checkpoint, LanguageModel, Tokenizer) {
        if let advice = BLAS.coreAdvice() {
            printError("note: " + advice)
        } else if ProcessInfo.processInfo.environment[BLAS.coreChosenVariable] != nil {
            printError("note: OpenBLAS does not know this CPU; running its \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "") core "
                       + "(set OPENBLAS_CORETYPE to choose another)")
        }
        let ck = try checkpoint()
        ck.dequantizesOnDemand = dequantizingOnDemand
        return (ck, try ModelLoader.build(ck), try TokenizerLoader.load(ck))
    }
}

/// Prints JSON with sorted keys, so output is stable.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes to standard error (progress, diagnostics) so stdout stays clean for results.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
