@testable import Engram
import Foundation
import XCTest

/// ROME, MEMIT and AlphaEdit on the default model: the edit takes (the new target becomes the most
/// likely continuation), reverting restores the weights bit for bit, and the subject's last token is
/// found through offsets.
final class LocateThenEditTests: XCTestCase {
    let eiffel = EditRequest(caseID: "eiffel", prompt: "The Eiffel Tower is located in the city of", subject: "Eiffel Tower",
                             targetNew: "Rome", groundTruth: ["Paris"])
    let louvre = EditRequest(caseID: "louvre", prompt: "The Louvre is located in the city of", subject: "Louvre",
                             targetNew: "London", groundTruth: ["Paris"])

    func probability(_ model: LanguageModel, _ tokenizer: Tokenizer, _ r: EditRequest) throws -> Double {
        let ids = tokenizer.encode(r.prompt, addSpecial: true)
        let target = try LocateThenEdit.targetTokens(r.targetNew, tokenizer: tokenizer)
        return try TeacherForcing(model: model).score([ScoringItem(context: ids, target: target)])[0].meanProbability
    }

    func loadDefault() throws -> (Checkpoint, LanguageModel, Tokenizer) {
        // A private copy: editors write into the live weights.
        let ck = try ModelLoader.checkpoint("smollm2")
        return (ck, try ModelLoader.build(ck), try TokenizerLoader.load(ck))
    }

    func testSubjectLastTokenIsASubjectToken() throws {
        let (_, _, tokenizer) = try loadDefault()
        for template in ["{}", "Because of this. {}"] {
            let filled = try LocateThenEdit.fill(template, request: eiffel, tokenizer: tokenizer)
            XCTAssertEqual(tokenizer.decode([filled.tokens[filled.lookup]]), " Tower", template)
            XCTAssertEqual(tokenizer.decode([filled.tokens[filled.lookup + 1]]), " is", template)
        }
    }

    /// Keys and states are read in passes of at most `lookupChunk` sequences (a 50-request MEMIT batch has
    /// ~550 prompts): over several chunks they equal each prompt read alone, in order.
    func testKeysAndStatesReadInChunksEqualOnePromptAtATime() throws {
        let (_, model, tokenizer) = try loadDefault()
        let templates = ["{}", "Because of this. {}", "I see. {}", "You know, {}"]
        let prompts = try (0..<35).flatMap { i in
            try templates.map { t in
                try LocateThenEdit.fill(t, request: i % 2 == 0 ? eiffel : louvre, tokenizer: tokenizer, suffix: String(repeating: " and", count: i % 5))
            }
        }
        XCTAssertGreaterThan(prompts.count, 2 * LocateThenEdit.lookupChunk, "three chunks at least")
        let keys = try LocateThenEdit.keys(model: model, prompts: prompts, layers: [3, 6])
        let states = try LocateThenEdit.states(model: model, prompts: prompts, site: .residual(6))
        for i in stride(from: 0, to: prompts.count, by: 17) {
            let alone = try LocateThenEdit.keys(model: model, prompts: [prompts[i]], layers: [3, 6])
            for l in [3, 6] {
                let diff = zip(keys[l]![i], alone[l]![0]).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(diff, 1e-3, "prompt \(i) layer \(l)")
            }
            let state = try LocateThenEdit.states(model: model, prompts: [prompts[i]], site: .residual(6))[0]
            XCTAssertLessThan(zip(states[i], state).map { abs($0 - $1) }.max()!, 1e-3, "prompt \(i) state")
        }
        XCTAssertEqual(keys[3]!.count, prompts.count)
        XCTAssertEqual(states.count, prompts.count)
    }

    func testROMEEditTakesAndRevertsBitForBit() throws {
        let (_, model, tokenizer) = try loadDefault()
        let original = model.weight(.mlpDown(4)).values
        let before = try probability(model, tokenizer, eiffel)
        let patch = try ROME().edit([eiffel], model: model, tokenizer: tokenizer)
        XCTAssertEqual(model.weight(.mlpDown(4)).values, original, "the editor must leave the weights as it found them")
        XCTAssertEqual(patch.deltas.count, 1)
        let applied = try patch.apply(to: model)
        let after = try probability(model, tokenizer, eiffel)
        XCTAssertLessThan(before, 0.05)
        XCTAssertGreaterThan(after, 0.5, "P(Rome) after ROME")
        try applied.revert()
        XCTAssertEqual(model.weight(.mlpDown(4)).values.map(\.bitPattern), original.map(\.bitPattern))
    }

    /// Two targets for one prompt and subject in one call cannot both be written: every method refuses
    /// before any work (ROME used to keep the later one and report both as done).
    func testConflictingTargetsInOneCallAreRefused() throws {
        let (_, model, tokenizer) = try loadDefault()
        var other = eiffel
        other.caseID = "eiffel-2"
        other.targetNew = "Berlin"
        let noStatistics: StatisticsProvider = { _, _ in
            XCTFail("statistics were asked for before the requests were checked")
            return [:]
        }
        for editor in [ROME(), MEMIT(statistics: noStatistics), AlphaEdit(statistics: noStatistics)] as [Editor] {
            XCTAssertThrowsError(try editor.edit([eiffel, louvre, other], model: model, tokenizer: tokenizer), editor.name) {
                XCTAssertTrue("\($0)".contains("request eiffel-2: 'The Eiffel Tower is located in the city of' is asked to become both 'Rome' and 'Berlin'"), "\($0)")
            }
        }
    }

    func testMEMITAndAlphaEditWriteABatch() throws {
        let (ck, model, tokenizer) = try loadDefault()
        var hp = MEMITHyperParameters()
        hp.layers = [3, 4, 5, 6]
        hp.mom2_n_samples = 300
        hp.clamp_norm_factor = 0.75
        let stats = EditorRegistry.statistics(model: model, tokenizer: tokenizer, modelHash: try ck.contentHash())
        for editor in [MEMIT(hp, statistics: stats), AlphaEdit(hp, statistics: stats)] as [MEMIT] {
            let requests = [eiffel, louvre]
            let before = try requests.map { try probability(model, tokenizer, $0) }
            let patch = try editor.edit(requests, model: model, tokenizer: tokenizer)
            XCTAssertEqual(patch.deltas.count, hp.layers.count, editor.name)
            let applied = try patch.apply(to: model)
            let after = try requests.map { try probability(model, tokenizer, $0) }
            for i in requests.indices {
                XCTAssertGreaterThan(after[i], before[i] + 0.2, "\(editor.name) \(requests[i].caseID): \(before[i]) → \(after[i])")
            }
            try applied.revert()
        }
    }

    func testHyperParameterFilesAcceptEasyEditKeysAndRejectUnknownOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let good = dir.appendingPathComponent("rome.yaml").path
        try """
        alg_name: ROME
        model_name: ./hugging_cache/llama-2-7b
        layers: [5]
        rewrite_module_tmp: model.layers.{}.mlp.down_proj
        v_lr: 0.25
        mom2_adjustment: false
        """.write(toFile: good, atomically: true, encoding: .utf8)
        let hp = try HyperParameterFile.load(ROMEHyperParameters.self, path: good)
        XCTAssertEqual(hp.layers, [5])
        XCTAssertEqual(hp.v_lr, 0.25)
        XCTAssertEqual(hp.v_num_grad_steps, 25, "a key the file leaves out keeps its default")

        let bad = dir.appendingPathComponent("bad.yaml").path
        try "layers: [5]\nv_lrr: 0.5\n".write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HyperParameterFile.load(ROMEHyperParameters.self, path: bad)) { error in
            XCTAssertTrue("\(error)".contains("v_lrr"), "\(error)")
        }
        let wrongType = dir.appendingPathComponent("type.yaml").path
        try "layers: five\n".write(toFile: wrongType, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HyperParameterFile.load(ROMEHyperParameters.self, path: wrongType)) { error in
            XCTAssertTrue("\(error)".contains("layers") && "\(error)".contains("expected a list (the file has five)"), "\(error)")
        }
        // The key is named even where the decoder cannot say it (a fraction for a whole number), and list
        // elements by index.
        for (line, key) in [("v_num_grad_steps: 2.5", "key 'v_num_grad_steps'"), ("layers: [4, x]", "key 'layers[1]'")] {
            let odd = dir.appendingPathComponent("odd-type.yaml").path
            try "\(line)\n".write(toFile: odd, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try HyperParameterFile.load(ROMEHyperParameters.self, path: odd), line) { error in
                XCTAssertTrue("\(error)".contains(key), "\(line): \(error)")
            }
        }
        // Values checked against the model, at edit time, still name the file they came from.
        let outOfRange = dir.appendingPathComponent("range.yaml").path
        try "layers: [99]\n".write(toFile: outOfRange, atomically: true, encoding: .utf8)
        let tokenizer = TestTokenizer(pieces: [" Ann", " lives"])
        var config = InMemoryTinyModels.llama
        config.vocab = tokenizer.vocabularySize
        let tiny = try InMemoryTinyModels.model(config)
        for method in ["rome", "memit", "alphaedit"] {
            let editor = try EditorRegistry.make(method: method, hyperParameters: outOfRange, statistics: { _, _ in [:] })
            XCTAssertThrowsError(try editor.prepare(model: tiny, tokenizer: tokenizer), method) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(outOfRange): ") && "\(error)".contains("[99]"), "\(method): \(error)")
            }
        }
        // Values YAML has and JSON does not, and a required key left blank: errors naming file and key.
        for (line, key) in [("v_lr: .nan", "v_lr"), ("v_lr: -.inf", "v_lr"), ("mom2_dataset: 2024-01-01", "mom2_dataset"),
                            ("mom2_dataset: !!binary aGVsbG8=", "mom2_dataset"), ("v_lr:", "v_lr")] {
            let odd = dir.appendingPathComponent("odd.yaml").path
            try "layers: [5]\n\(line)\n".write(toFile: odd, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try HyperParameterFile.load(ROMEHyperParameters.self, path: odd), line) { error in
                XCTAssertTrue("\(error)".contains(odd) && "\(error)".contains(key), "\(line): \(error)")
            }
        }
        // resolve: a given file wins, and its errors are reported (the server used to fall back to the
        // defaults silently); without one, the shipped file is read.
        XCTAssertEqual(try HyperParameterFile.resolve(ROMEHyperParameters.self, method: "rome", path: good).v_lr, 0.25)
        XCTAssertThrowsError(try HyperParameterFile.resolve(ROMEHyperParameters.self, method: "rome", path: bad))
        let shipped = try HyperParameterFile.load(MEMITHyperParameters.self, path: try XCTUnwrap(HyperParameterFile.defaultPath(method: "memit")))
        let resolved = try HyperParameterFile.resolve(MEMITHyperParameters.self, method: "memit", path: nil)
        XCTAssertEqual(resolved.mom2_update_weight, shipped.mom2_update_weight)
        XCTAssertNotEqual(resolved.mom2_update_weight, MEMITHyperParameters().mom2_update_weight, "the shipped file sets its own λ")
        XCTAssertEqual(try HyperParameterFile.resolve(MEMITHyperParameters.self, method: "no-such-method", path: nil).layers,
                       MEMITHyperParameters().layers, "no file: the built-in defaults")
    }

    /// Without the source tree (an installed binary), the default file is looked for in `$ENGRAM_HOME/hparams`,
    /// and `source` says which file is in force or that the built-in defaults are.
    func testDefaultHyperParametersAreFoundInTheEngramHomeAndNamed() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)").path
        let method = "method-\(UUID().uuidString.prefix(8))" // in no source tree
        let file = "\(home)/hparams/\(method)/smollm2.yaml"
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "layers: [2]\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let previous = ProcessInfo.processInfo.environment["ENGRAM_HOME"]
        setenv("ENGRAM_HOME", home, 1)
        defer { if let previous { setenv("ENGRAM_HOME", previous, 1) } else { unsetenv("ENGRAM_HOME") } }
        XCTAssertEqual(HyperParameterFile.defaultPath(method: method), file)
        XCTAssertEqual(HyperParameterFile.source(method: method, path: nil), file)
        XCTAssertEqual(try HyperParameterFile.resolve(MEMITHyperParameters.self, method: method, path: nil).layers, [2])
        XCTAssertTrue(HyperParameterFile.source(method: "no-such-method", path: nil).hasPrefix("built-in defaults"))
        XCTAssertTrue(try XCTUnwrap(HyperParameterFile.defaultPath(method: "memit")).hasSuffix("hparams/memit/smollm2.yaml"),
                      "the source tree's file still comes first")
    }

    func testShippedHyperParameterFilesLoad() throws {
        for method in ["rome", "memit", "alphaedit"] {
            let path = try XCTUnwrap(HyperParameterFile.defaultPath(method: method), method)
            if method == "rome" { _ = try HyperParameterFile.load(ROMEHyperParameters.self, path: path) }
            else { _ = try HyperParameterFile.load(MEMITHyperParameters.self, path: path) }
        }
    }

    /// A request is searched with all its rows together, so one with a very long target (3000 tokens took
    /// tens of GB) is refused before the search, naming the request and the field; CounterFact's fit.
    func testRequestsTooLongForTheValueSearchAreRefused() throws {
        let (ck, model) = try TestSupport.sharedDefaultModel()
        let tokenizer = try TokenizerLoader.load(ck)
        let templates = ["{}"] + Array(repeating: "Some words of context before it. {}", count: 20)
        let context = model.config.contextLength
        let long = EditRequest(caseID: "long", prompt: "The Eiffel Tower is located in", subject: "The Eiffel Tower",
                               targetNew: String(repeating: "English ", count: 150))
        assertEngramError(["request long", "target_new", "more than \(LocateThenEdit.maxRequestSearchRows)"]) {
            _ = try LocateThenEdit.searchGroup(tokenizer: tokenizer, request: long, templates: templates, context: context)
        }
        let usual = EditRequest(caseID: "usual", prompt: "The Eiffel Tower is located in", subject: "The Eiffel Tower", targetNew: "Rome")
        XCTAssertNoThrow(try LocateThenEdit.searchGroup(tokenizer: tokenizer, request: usual, templates: templates, context: context))
    }
}
