import Foundation

/// Placeholder until the safetensors reader lands (being written now).
public enum HuggingFaceReader {
    public static func read(folder: String) throws -> Checkpoint {
        throw EngramError.unsupported(file: folder, detail: "safetensors reading is not implemented yet")
    }
}
