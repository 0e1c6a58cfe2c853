import Foundation
import XCTest
import Engram

/// Where the tokenizer tests find the shared reference files and the default model.
enum TokenizerFixtures {
    /// The package root, from this file's path (Tests/EngramTests/…).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `$ENGRAM_SHARED`, else `shared/` beside the package (main checkout) or beside its parent (worktree).
    static var sharedDirectory: URL? {
        if let env = ProcessInfo.processInfo.environment["ENGRAM_SHARED"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        for up in ["../shared", "../../shared"] {
            let candidate = packageRoot.appendingPathComponent(up).standardizedFileURL
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    static func sharedFile(_ relative: String) throws -> URL {
        guard let dir = sharedDirectory else { throw XCTSkip("shared/ not found beside the package; set ENGRAM_SHARED") }
        let url = dir.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(url.path) is absent") }
        return url
    }

    /// The SmolLM2 checkpoint, loaded once for all tests (its vocabulary is what they need).
    static func smollm2() throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: ModelRegistry.smollm2Path) else {
            throw XCTSkip("the default model is not installed at \(ModelRegistry.smollm2Path)")
        }
        return try loaded.get()
    }

    private static let loaded: Result<Checkpoint, Error> = Result { try ModelLoader.checkpoint("smollm2") }

    static func smollm2Tokenizer() throws -> Tokenizer {
        _ = try smollm2()
        return try tokenizer.get()
    }

    private static let tokenizer: Result<Tokenizer, Error> = Result { try TokenizerLoader.load(ModelLoader.checkpoint("smollm2")) }

    struct ReferenceCase: Decodable {
        let text: String
        let ids: [Int32]
        let pieces: [String]
    }

    static func smollm2Reference() throws -> [ReferenceCase] {
        struct File: Decodable { let cases: [ReferenceCase] }
        let url = try sharedFile("fixtures/smollm2-tokenizer-reference.json")
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
    }
}
