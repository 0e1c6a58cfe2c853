import Foundation

/// Collects the model queries of many records (teacher-forced targets, greedy answers, sampled text),
/// runs them in batches, and hands back results by handle. Records evaluated on the same model state
/// share forward passes this way.
final class ProbeSet {
    let model: LanguageModel
    let tokenizer: Tokenizer
    let batchSize: Int
    let topK: Int

    private var items: [ScoringItem] = []
    private var greedy: [GenerationJob] = []
    private var greedyStopsAtNewline: [Bool] = []
    private var sampled: [GenerationJob] = []
    private(set) var scores: [TargetScore] = []
    private(set) var greedyOutputs: [[Int32]] = []
    private(set) var sampledOutputs: [[Int32]] = []

    init(model: LanguageModel, tokenizer: Tokenizer, batchSize: Int, topK: Int) {
        self.model = model
        self.tokenizer = tokenizer
        self.batchSize = batchSize
        self.topK = topK
    }

    func score(_ item: ScoringItem) -> Int {
        items.append(item)
        return items.count - 1
    }

    func answer(_ job: GenerationJob, stopAtNewline: Bool) -> Int {
        greedy.append(job)
        greedyStopsAtNewline.append(stopAtNewline)
        return greedy.count - 1
    }

    func sample(_ job: GenerationJob) -> Int {
        sampled.append(job)
        return sampled.count - 1
    }

    func run() throws {
        scores = try TeacherForcing(model: model, batchSize: batchSize).score(items)
        let generator = BatchGenerator(model: model, batchSize: batchSize)
        greedyOutputs = try generator.generate(greedy, decoding: .greedy) { [tokenizer, greedyStopsAtNewline] job, ids in
            greedyStopsAtNewline[job] && tokenizer.decode(ids, skipSpecial: true).contains("\n")
        }
        sampledOutputs = try generator.generate(sampled, decoding: .topK(topK))
    }
}

/// What one record yields in one phase (before editing, after, after all edits).
struct PhaseOutcome {
    var metrics: [String: Double] = [:]
    var warnings: [String] = []
    var texts: [String: String] = [:]
    /// Before editing: the predicted ids of each locality probe, the reference for KnowEdit locality.
    var localityReference: [String: [[Int32]?]] = [:]
}

/// One record to evaluate in one phase, with the prompt-side context in force.
struct PhaseInput {
    var index: Int
    var record: EditRecord
    var context: PromptContext?
    var phase: String
    /// KnowEdit locality reference from the unedited model (nil before editing).
    var reference: [String: [[Int32]?]]?
}

/// Builds each suite's probes for a record and turns the results into metrics. Metric names are
/// "<suite>.<metric>"; fractions are in [0, 1]; fluency is the raw entropy (reports multiply by 100).
struct MetricPlanner {
    let tokenizer: Tokenizer
    let options: EvaluationOptions
    let suites: [MetricSuite]
    /// Every record of the file (MQuAKE few-shot demonstrations come from the other cases).
    let allRecords: [EditRecord]

    func plan(_ input: PhaseInput, _ probes: ProbeSet) -> () -> PhaseOutcome {
        var finishers: [(inout PhaseOutcome) -> Void] = []
        switch input.record {
        case let .single(r):
            if suites.contains(.knowEdit) { finishers.append(planKnowEdit(r, input, probes)) }
            if suites.contains(.counterFact) { finishers.append(planCounterFact(r, input, probes)) }
            if suites.contains(.zsRE) { finishers.append(planZsRE(r, input, probes)) }
        case let .multiHop(c):
            if suites.contains(.mquake) { finishers.append(planMQuAKE(c, input, probes)) }
            if suites.contains(where: { $0 != .mquake }) {
                // Token-level suites apply to single requests; an MQuAKE case is judged by its own metrics.
                finishers.append { $0.warnings.append("only the mquake suite applies to MQuAKE cases") }
            }
        }
        return {
            var outcome = PhaseOutcome()
            for f in finishers { f(&outcome) }
            outcome.metrics = outcome.metrics.mapValues(JSONValue.quantize)
            outcome.warnings = Array(Set(outcome.warnings)).sorted()
            return outcome
        }
    }

    func render(_ prompt: String, _ input: PhaseInput) -> String { input.context?.render(prompt) ?? prompt }

    /// Encodes and registers a teacher-forced target; nil (with a warning) when nothing can be scored.
    func scored(_ prompt: String, _ target: String, _ input: PhaseInput, _ probes: ProbeSet, warnings: inout [String]) -> Int? {
        guard let e = TargetEncoding.encode(prompt: render(prompt, input), target: target, tokenizer: tokenizer) else {
            warnings.append("no target tokens left to score for \"\(prompt)\" → \"\(target)\"")
            return nil
        }
        if let w = e.warning { warnings.append(w) }
        return probes.score(e.item)
    }

    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    // MARK: KnowEdit

    func planKnowEdit(_ r: EditRequest, _ input: PhaseInput, _ probes: ProbeSet) -> (inout PhaseOutcome) -> Void {
        var warnings: [String] = []
        let reliability = scored(r.prompt, r.targetNew, input, probes, warnings: &warnings)
        let generalization = r.rephrasePrompts.map { scored($0, r.targetNew, input, probes, warnings: &warnings) }
        let locality = r.locality.map { g in (g.key, g.items.map { item in item.gold.flatMap { scored(item.prompt, $0, input, probes, warnings: &warnings) } }) }
        let portability = r.portability.map { g in (g.key, g.items.map { item in item.gold.flatMap { scored(item.prompt, $0, input, probes, warnings: &warnings) } }) }
        var fluencyJob: Int?
        if options.fluency {
            let promptIDs = tokenizer.encode(r.prompt, addSpecial: true)
            let contextIDs = tokenizer.encode(render(r.prompt, input), addSpecial: true)
            // ROME's max_out_len counts the prompt; the in-context prefix is not part of the scored text.
            let newTokens = max(1, options.fluencyMaxLength - promptIDs.count)
            let phaseSalt: UInt64 = input.phase == "pre" ? 1 : input.phase == "post" ? 2 : 3
            if !contextIDs.isEmpty {
                fluencyJob = probes.sample(GenerationJob(context: contextIDs, maxNewTokens: newTokens,
                                                         seed: SplitMix64.mix([options.seed, UInt64(input.index), phaseSalt])))
            }
        }
        let keepTexts = options.keepTexts
        return { [tokenizer] out in
            out.warnings += warnings
            let scores = probes.scores
            if let i = reliability { out.metrics["knowedit.reliability"] = scores[i].accuracy }
            if let g = MetricPlanner.mean(generalization.compactMap { $0.map { scores[$0].accuracy } }) {
                out.metrics["knowedit.generalization"] = g
            }
            if let reference = input.reference {
                var perKey: [Double] = []
                for (key, handles) in locality {
                    var agreements: [Double] = []
                    for (j, h) in handles.enumerated() {
                        guard let h, let refs = reference[key], j < refs.count, let ref = refs[j] else { continue }
                        let post = scores[h].predicted
                        let n = min(ref.count, post.count)
                        if ref.count != post.count { out.warnings.append("locality \(key)[\(j)]: \(ref.count) reference tokens vs \(post.count) after editing; compared the first \(n)") }
                        guard n > 0 else { continue }
                        agreements.append(Double((0..<n).filter { ref[$0] == post[$0] }.count) / Double(n))
                    }
                    if let m = MetricPlanner.mean(agreements) {
                        out.metrics["knowedit.locality.\(key)"] = m
                        perKey.append(m)
                    }
                }
                if let m = MetricPlanner.mean(perKey) { out.metrics["knowedit.locality"] = m }
            } else {
                for (key, handles) in locality { out.localityReference[key] = handles.map { $0.map { scores[$0].predicted } } }
            }
            var portKeys: [Double] = []
            for (key, handles) in portability {
                if let m = MetricPlanner.mean(handles.compactMap { $0.map { scores[$0].accuracy } }) {
                    out.metrics["knowedit.portability.\(key)"] = m
                    portKeys.append(m)
                }
            }
            if let m = MetricPlanner.mean(portKeys) { out.metrics["knowedit.portability"] = m }
            if let job = fluencyJob {
                let text = NGramEntropy.prepare(r.prompt + tokenizer.decode(probes.sampledOutputs[job], skipSpecial: true))
                out.metrics["knowedit.fluency"] = NGramEntropy.score(text)
                if keepTexts { out.texts["fluency"] = text }
            }
        }
    }

    // MARK: CounterFact

    func planCounterFact(_ r: EditRequest, _ input: PhaseInput, _ probes: ProbeSet) -> (inout PhaseOutcome) -> Void {
        guard let truth = r.groundTruth.first else {
            return { $0.warnings.append("no ground_truth: the CounterFact scores need the true object") }
        }
        var warnings: [String] = []
        func pairs(_ prompts: [String]) -> [(Int, Int)] {
            prompts.compactMap { p in
                guard let n = scored(p, r.targetNew, input, probes, warnings: &warnings),
                      let t = scored(p, truth, input, probes, warnings: &warnings) else { return nil }
                return (n, t)
            }
        }
        let rewrite = pairs([r.prompt])
        let paraphrase = pairs(r.rephrasePrompts)
        let neighborhood = pairs(r.locality.flatMap { $0.items.map(\.prompt) })
        return { out in
            out.warnings += warnings
            let s = probes.scores
            func put(_ name: String, _ ps: [(Int, Int)], newWins: Bool) {
                guard !ps.isEmpty else { return }
                // Lower mean NLL = more probable; magnitudes are differences of geometric-mean probabilities.
                let wins = ps.map { n, t in (newWins ? s[t].meanNLL > s[n].meanNLL : s[n].meanNLL > s[t].meanNLL) ? 1.0 : 0.0 }
                let gaps = ps.map { n, t in newWins ? s[n].meanProbability - s[t].meanProbability : s[t].meanProbability - s[n].meanProbability }
                out.metrics["counterfact.\(name)_score"] = MetricPlanner.mean(wins)
                out.metrics["counterfact.\(name)_magnitude"] = MetricPlanner.mean(gaps)
            }
            put("efficacy", rewrite, newWins: true)
            put("paraphrase", paraphrase, newWins: true)
            put("neighborhood", neighborhood, newWins: false)
        }
    }

    // MARK: zsRE

    func planZsRE(_ r: EditRequest, _ input: PhaseInput, _ probes: ProbeSet) -> (inout PhaseOutcome) -> Void {
        var warnings: [String] = []
        let efficacy = scored(r.prompt, r.targetNew, input, probes, warnings: &warnings)
        let paraphrase = r.rephrasePrompts.compactMap { scored($0, r.targetNew, input, probes, warnings: &warnings) }
        let specificity = r.locality.flatMap(\.items).compactMap { item in item.gold.flatMap { scored(item.prompt, $0, input, probes, warnings: &warnings) } }
        return { out in
            out.warnings += warnings
            let s = probes.scores
            if let e = efficacy { out.metrics["zsre.efficacy"] = s[e].accuracy }
            if let m = MetricPlanner.mean(paraphrase.map { s[$0].accuracy }) { out.metrics["zsre.paraphrase"] = m }
            // ROME's zsRE specificity: accuracy against the locality answer (not agreement with the unedited model).
            if let m = MetricPlanner.mean(specificity.map { s[$0].accuracy }) { out.metrics["zsre.specificity"] = m }
        }
    }

    // MARK: MQuAKE

    /// Few-shot "Q: … A: …" demonstrations from the other cases of the file, the next ones in file order.
    func multiHopDemonstrations(for index: Int) -> String {
        let cases = allRecords.enumerated().compactMap { i, r -> (Int, MultiHopCase)? in
            if case let .multiHop(c) = r { return (i, c) }
            return nil
        }
        guard !cases.isEmpty, options.multiHopShots > 0 else { return "" }
        let anchor = cases.firstIndex { $0.0 == index } ?? 0
        var out = ""
        var taken = 0, step = 1
        while taken < options.multiHopShots, step <= cases.count {
            let (i, c) = cases[(anchor + step) % cases.count]
            step += 1
            if i == index { continue }
            out += "Q: \(c.questions[0])\nA: \(c.answer)\n\n"
            taken += 1
        }
        return out
    }

    func planMQuAKE(_ c: MultiHopCase, _ input: PhaseInput, _ probes: ProbeSet) -> (inout PhaseOutcome) -> Void {
        let budget = options.maxAnswerTokens
        func job(_ prompt: String) -> Int {
            probes.answer(GenerationJob(context: tokenizer.encode(render(prompt, input), addSpecial: true), maxNewTokens: budget), stopAtNewline: true)
        }
        let edits = c.requests.map { r -> (Int, [String]) in
            // Aliases of the new object, when the post-edit chain names it.
            let aliases = c.newSingleHops.filter { $0.answer == r.targetNew }.flatMap(\.aliases)
            return (job(r.prompt), [r.targetNew] + aliases)
        }
        let demos = multiHopDemonstrations(for: input.index)
        let questions = c.questions.map { job(demos + "Q: \($0)\nA:") }
        let hops = c.newSingleHops.map { (job($0.cloze), $0.answers) }
        let qaMatcher = options.questionMatcher, clozeMatcher = options.clozeMatcher
        let keepTexts = options.keepTexts
        return { [tokenizer] out in
            func text(_ h: Int) -> String { AnswerMatcher.firstLine(tokenizer.decode(probes.greedyOutputs[h], skipSpecial: true)) }
            let editHits = edits.filter { clozeMatcher.matches(text($0.0), anyOf: $0.1) }.count
            out.metrics["mquake.edits_correct"] = Double(editHits)
            out.metrics["mquake.edits_total"] = Double(edits.count)
            out.metrics["mquake.edit_wise"] = Double(editHits) / Double(max(edits.count, 1))
            let answers = questions.map(text)
            out.metrics["mquake.multihop"] = answers.contains { qaMatcher.matches($0, anyOf: c.newAnswers) } ? 1 : 0
            out.metrics["mquake.multihop_original"] = answers.contains { qaMatcher.matches($0, anyOf: c.originalAnswers) } ? 1 : 0
            if !hops.isEmpty {
                out.metrics["mquake.instance_wise"] = hops.allSatisfy { clozeMatcher.matches(text($0.0), anyOf: $0.1) } ? 1 : 0
            }
            if keepTexts {
                for (i, a) in answers.enumerated() { out.texts["mquake.answer.\(i)"] = a }
                for (i, e) in edits.enumerated() { out.texts["mquake.edit.\(i)"] = text(e.0) }
            }
        }
    }
}
