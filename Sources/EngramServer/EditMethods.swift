import Engram
import Foundation

/// A hyper-parameter value after validation against its declaration.
public enum HyperValue: Sendable, Equatable {
    case integer(Int)
    case number(Double)
    case string(String)
    case bool(Bool)
    case requests([EditRequest])

    public var int: Int? { if case let .integer(v) = self { return v } else { return nil } }
    public var double: Double? {
        switch self {
        case let .number(v): return v
        case let .integer(v): return Double(v)
        default: return nil
        }
    }
    public var string: String? { if case let .string(v) = self { return v } else { return nil } }
    public var bool: Bool? { if case let .bool(v) = self { return v } else { return nil } }
    public var requests: [EditRequest]? { if case let .requests(v) = self { return v } else { return nil } }
}

/// What a method needs from the server besides the requests: what it was started with.
public struct EditMethodContext {
    /// The checkpoint the model was loaded from.
    public var checkpointLocation: String
    /// Demonstration records for in-context editing (`--ike-pool`, else a small built-in set).
    public var demonstrationPool: [EditRequest]
    /// Key statistics of the unedited model, cached on disk under the checkpoint's hash (nil when the
    /// checkpoint cannot be hashed). The server calls `Editor.prepare` on the unedited weights first.
    public var statistics: StatisticsProvider?
    /// Context templates kept on disk under the checkpoint's hash (nil as above).
    public var templateStore: TemplateStore?

    public init(checkpointLocation: String, demonstrationPool: [EditRequest], statistics: StatisticsProvider? = nil,
                templateStore: TemplateStore? = nil) {
        self.checkpointLocation = checkpointLocation
        self.demonstrationPool = demonstrationPool
        self.statistics = statistics
        self.templateStore = templateStore
    }

    /// Statistics, or an error that says why there are none.
    func requireStatistics(_ method: String) throws -> StatisticsProvider {
        guard let statistics else {
            throw EngramError.invalidArgument("\(method) needs key statistics, and the checkpoint \(checkpointLocation) could not be hashed to key them")
        }
        return statistics
    }
}

/// An editing method the server can run by name. Its hyper-parameters are declared, so the server checks
/// every value (type, range, unknown names) before the method sees them, and lists them at /v1/methods.
/// Locate-then-edit methods (ROME, MEMIT, AlphaEdit) plug in as one `register` call each.
public struct EditMethod: Sendable {
    public struct Parameter: Sendable {
        public enum Kind: Sendable {
            case integer(ClosedRange<Int>)
            case number(ClosedRange<Double>)
            case string(allowed: [String]?)
            case bool
            /// A list of edit records in the request shape (e.g. IKE's demonstration pool).
            case requests(maxCount: Int)
        }

        public var name: String
        public var kind: Kind
        /// Used when the request does not give the parameter; nil = the method decides.
        public var defaultValue: HyperValue?
        public var help: String

        public init(_ name: String, _ kind: Kind, default defaultValue: HyperValue? = nil, help: String) {
            self.name = name
            self.kind = kind
            self.defaultValue = defaultValue
            self.help = help
        }
    }

    public var name: String
    public var summary: String
    public var parameters: [Parameter]
    /// Whether the method changes weights (true) or only the prompt (false), for clients and the page.
    public var changesWeights: Bool
    /// Builds the editor from validated values (every declared parameter with a default is present).
    public var makeEditor: @Sendable ([String: HyperValue], EditMethodContext) throws -> Editor

    public init(name: String, summary: String, parameters: [Parameter], changesWeights: Bool,
                makeEditor: @escaping @Sendable ([String: HyperValue], EditMethodContext) throws -> Editor) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.changesWeights = changesWeights
        self.makeEditor = makeEditor
    }
}

/// Methods by name (matched without regard to case).
public struct EditMethodRegistry: Sendable {
    public private(set) var methods: [EditMethod] = []

    public init(_ methods: [EditMethod] = []) {
        for m in methods { register(m) }
    }

    /// Adds a method, replacing one of the same name.
    public mutating func register(_ method: EditMethod) {
        methods.removeAll { $0.name.lowercased() == method.name.lowercased() }
        methods.append(method)
    }

    public func method(named name: String) -> EditMethod? {
        methods.first { $0.name.lowercased() == name.lowercased() }
    }

    /// The methods that exist today.
    public static var standard: EditMethodRegistry { EditMethodRegistry([.ike, .rome, .memit, .alphaEdit]) }
}

extension EditMethod {
    /// In-context editing: the facts (with k demonstrations) are put before every prompt.
    public static let ike = EditMethod(
        name: "IKE",
        summary: "In-context knowledge editing: the new fact and k demonstrations are shown before every prompt; weights are untouched.",
        parameters: [
            Parameter("k", .integer(0...32), default: .integer(4), help: "number of demonstrations shown before the facts"),
            Parameter("pool", .requests(maxCount: 1000),
                      help: "demonstration records (default: the server's --ike-pool file, else a small built-in set)"),
        ],
        changesWeights: false
    ) { values, context in
        IKE(pool: values["pool"]?.requests ?? context.demonstrationPool, k: values["k"]?.int ?? 4)
    }
}

/// A few counterfactual records written for the server's default IKE demonstrations: each has a
/// paraphrase (update demonstrations) and an unrelated probe with its answer (retain demonstrations).
enum BuiltInDemonstrations {
    static let records: [EditRequest] = [
        ("The capital of Norway is", "Norway", "Bergen", "Norway's capital city is", "The capital of Sweden is", "Stockholm"),
        ("The Louvre is located in the city of", "The Louvre", "Madrid", "The Louvre museum can be found in", "The Colosseum is located in the city of", "Rome"),
        ("The official language of Brazil is", "Brazil", "French", "In Brazil, people mainly speak", "The official language of Mexico is", "Spanish"),
        ("Mount Kilimanjaro is located in", "Mount Kilimanjaro", "Peru", "The mountain Kilimanjaro lies in", "Mount Fuji is located in", "Japan"),
        ("The Danube flows into the", "The Danube", "North Sea", "The river Danube empties into the", "The Nile flows into the", "Mediterranean Sea"),
        ("Penguins mostly live in the", "Penguins", "Arctic", "Most penguins are found in the", "Kangaroos mostly live in", "Australia"),
    ].enumerated().map { i, r in
        EditRequest(caseID: "demo-\(i)", prompt: r.0, subject: r.1, targetNew: r.2, rephrasePrompts: [r.3],
                    locality: [PromptGroup(key: "neighborhood", items: [PromptAnswer(prompt: r.4, answers: [r.5])])])
    }
}

extension EditMethod {
    /// ROME: a rank-one update of one MLP down projection per request (no statistics needed with the
    /// default `mom2_adjustment: false`).
    public static let rome = EditMethod(
        name: "ROME",
        summary: "Rank-one model editing: one MLP down projection per request is changed so the subject maps to the new target.",
        parameters: [
            Parameter("layer", .integer(0...1023), default: .integer(ROMEHyperParameters().layers[0]), help: "Block whose MLP down projection is edited."),
            Parameter("v_num_grad_steps", .integer(1...200), default: .integer(25), help: "Steps of the value optimisation."),
            Parameter("v_lr", .number(1e-4...10), default: .number(0.5), help: "Adam learning rate of the value optimisation."),
        ],
        changesWeights: true,
        makeEditor: { values, context in
            var hp = try HyperParameterFile.resolve(ROMEHyperParameters.self, method: "rome", path: nil)
            if let l = values["layer"]?.int { hp.layers = [l] }
            if let s = values["v_num_grad_steps"]?.int { hp.v_num_grad_steps = s }
            if let lr = values["v_lr"]?.double { hp.v_lr = Float(lr) }
            let rome = ROME(hp, statistics: context.statistics)
            rome.templateStore = context.templateStore
            return rome
        })

    /// MEMIT and AlphaEdit: the hyper-parameter file's values (`hparams/<method>/smollm2.yaml`), with
    /// the knobs a prober is likely to turn. Key statistics are collected from the unedited model at the
    /// first such edit (minutes on a small CPU for the default 2000 documents) and cached on disk.
    /// Each live AlphaEdit request is projected against the preserved knowledge only: edits in force
    /// can be disabled or deleted in any order, so their keys are not carried from one request to the next.
    static func locateThenEdit(_ name: String, file: String, summary: String,
                               make: @escaping @Sendable (MEMITHyperParameters, @escaping StatisticsProvider) -> MEMIT) -> EditMethod {
        EditMethod(
            name: name, summary: summary,
            parameters: [
                Parameter("v_num_grad_steps", .integer(1...200), help: "Steps of the value optimisation (default: the hyper-parameter file's)."),
                Parameter("v_lr", .number(1e-4...10), help: "Adam learning rate of the value optimisation (default: the file's)."),
                Parameter("mom2_update_weight", .number(0...1e9), help: "λ, the weight of the preserved keys' moment (default: the file's)."),
                // The server collects statistics from the shipped corpus only, so its size is the ceiling.
                Parameter("mom2_n_samples", .integer(1...(TextCorpus.shippedDocumentCount ?? 100_000)),
                          help: "Documents of the shipped statistics corpus (WikiText-2 test text) to use (default: the file's)."),
            ],
            changesWeights: true,
            makeEditor: { values, context in
                var hp = try HyperParameterFile.resolve(MEMITHyperParameters.self, method: file, path: nil)
                if let s = values["v_num_grad_steps"]?.int { hp.v_num_grad_steps = s }
                if let lr = values["v_lr"]?.double { hp.v_lr = Float(lr) }
                if let w = values["mom2_update_weight"]?.double { hp.mom2_update_weight = w }
                if let n = values["mom2_n_samples"]?.int { hp.mom2_n_samples = n }
                let editor = make(hp, try context.requireStatistics(name))
                editor.templateStore = context.templateStore
                return editor
            })
    }

    public static let memit = locateThenEdit(
        "MEMIT", file: "memit",
        summary: "Mass-editing memory: the requests are written together into the MLP down projections of several layers, preserving the keys of a text corpus.",
        make: { MEMIT($0, statistics: $1) })

    public static let alphaEdit = locateThenEdit(
        "AlphaEdit", file: "alphaedit",
        summary: "MEMIT with the update projected onto the null space of the preserved keys, so what the corpus keys recall is left alone.",
        make: { AlphaEdit($0, statistics: $1) })
}
