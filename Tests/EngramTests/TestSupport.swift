import Engram
import Foundation
import XCTest

/// Locations shared by the tests: the `shared/` folder beside the repository (fixtures, data,
/// specs) and the default model installed by scripts/setup.sh.
enum TestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$ENGRAM_SHARED`, else the first `shared/` found beside or above the package root.
    static var sharedDirectory: URL? {
        if let env = ProcessInfo.processInfo.environment["ENGRAM_SHARED"] { return URL(fileURLWithPath: env) }
        var dir = packageRoot
        for _ in 0..<4 {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("fixtures").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func sharedFile(_ relative: String) throws -> URL {
        guard let dir = sharedDirectory else {
            throw XCTSkip("shared/ folder not found beside the repository (set ENGRAM_SHARED)")
        }
        return dir.appendingPathComponent(relative)
    }

    static func json(_ relative: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: sharedFile(relative)))
    }

    /// The default model is part of the test setup (scripts/test.sh installs it), so its absence is a
    /// failure, not a skip.
    static func defaultModel() throws -> (Checkpoint, LanguageModel) {
        let ck = try ModelLoader.checkpoint("smollm2")
        return (ck, try ModelLoader.build(ck))
    }

    static var cachedDefault: (Checkpoint, LanguageModel)?
    static func sharedDefaultModel() throws -> (Checkpoint, LanguageModel) {
        if let cached = cachedDefault { return cached }
        let loaded = try defaultModel()
        cachedDefault = loaded
        return loaded
    }
}

extension QuantizedRows {
    /// Runs `body` on every kernel path this CPU has, widest first (512, 256, 0 on an AVX-512 CPU: the
    /// AVX-512, AVX2 and portable paths), then restores the setting.
    static func forEachVectorWidth(_ body: (Int) throws -> Void) rethrows {
        let saved = vectorBits
        defer { vectorBits = saved }
        vectorBits = 512
        let widest = vectorBits
        for bits in [512, 256, 0] where bits <= widest {
            vectorBits = bits
            try body(bits)
        }
    }
}
