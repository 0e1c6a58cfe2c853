import ArgumentParser
import Engram
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a checkpoint's metadata, config and tensors.")

    @OptionGroup var model: ModelArgument
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ck = try model.checkpoint()
        let config = try? ModelLoader.config(ck)
        let tensors = ck.tensorNames.compactMap { ck.tensors[$0] }
        if json {
            try printJSON(Output(
                location: ck.location, format: ck.format.rawValue, config: config,
                metadata: Dictionary(uniqueKeysWithValues: ck.metadata.keys.map { ($0, ck.metadata[$0]?.summary ?? "") }),
                tensors: tensors.map { TensorRow(name: $0.name, dtype: $0.dtype.description, shape: $0.shape, bytes: $0.byteCount) },
                parameters: tensors.reduce(0) { $0 + $1.elementCount }, tensor_bytes: ck.tensorBytes))
            return
        }
        print("\(ck.location) (\(ck.format.rawValue))")
        if let config { print("config: \(config)") }
        print("\nmetadata (\(ck.metadata.keys.count) keys):")
        for key in ck.metadata.keys { print("  \(key) = \(ck.metadata[key]?.summary ?? "")") }
        print("\ntensors (\(tensors.count)):")
        for t in tensors {
            print("  \(t.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(t.dtype.description.padding(toLength: 5, withPad: " ", startingAt: 0)) \(t.shape)  \(t.byteCount) bytes")
        }
        let params = tensors.reduce(0) { $0 + $1.elementCount }
        print(String(format: "\n%.1fM parameters, %.1f MiB of tensor data", Double(params) / 1e6, Double(ck.tensorBytes) / 1048576))
    }

    struct TensorRow: Encodable { let name: String; let dtype: String; let shape: [Int]; let bytes: Int }
    struct Output: Encodable {
        let location: String; let format: String; let config: ModelConfig?
        let metadata: [String: String]; let tensors: [TensorRow]; let parameters: Int; let tensor_bytes: Int
    }
}
