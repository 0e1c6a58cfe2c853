import ArgumentParser
import Engram
import Foundation

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "Convert between GGUF and Hugging Face safetensors.")

    @OptionGroup var model: ModelArgument
    @Option(help: "Output format: safetensors (a Hugging Face folder) or gguf.") var to: String
    @Option(help: "Output path (a folder for safetensors, a file for gguf).") var out: String
    @Option(help: "Element type of converted float tensors: f32, f16 or bf16 (default f32; GGUF quantized tensors are copied as they are).")
    var dtype: String?

    func validate() throws {
        _ = try format()
        _ = try targetType()
        // Every file of a Hugging Face input folder counts, not only its tensors (config.json, tokenizer.json).
        try OutputPaths.check(outputs: [("--out", out)], inputs: [("the model", model.path)])
    }

    func format() throws -> CheckpointFormat {
        guard let format = CheckpointFormat(rawValue: to) else { throw ValidationError("--to must be 'safetensors' or 'gguf', got '\(to)'") }
        return format
    }

    func targetType() throws -> DType? {
        guard let dtype else { return nil }
        guard let d = ["f32": DType.f32, "f16": .f16, "bf16": .bf16][dtype.lowercased()] else {
            throw ValidationError("--dtype must be f32, f16 or bf16, got '\(dtype)'")
        }
        return d
    }

    func run() throws {
        let format = try format(), target = try targetType()
        let ck = try model.checkpoint()
        var extraFiles: [String: Data] = [:]
        var extraMetadata: [(String, MetadataValue)] = []
        switch format {
        case .safetensors where ck.format == .gguf:
            extraFiles = try TokenizerConversion.huggingFaceFiles(from: ck.metadata)
        case .gguf where ck.format == .safetensors:
            extraMetadata = try TokenizerConversion.ggufMetadata(fromSidecars: ck.sidecars, file: ck.location)
        default:
            break
        }
        try CheckpointConverter.convert(ck, to: format, out: out, dtype: target, extraFiles: extraFiles, extraMetadata: extraMetadata)
        printError("wrote \(out)")
    }
}
