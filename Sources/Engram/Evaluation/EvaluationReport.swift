import Foundation

extension EvaluationRun {
    /// Human names of the metrics, in the order reports list them.
    static let metricNames: [(String, String)] = [
        ("knowedit.reliability", "Reliability (Edit Succ.)"),
        ("knowedit.generalization", "Generalization"),
        ("knowedit.locality", "Locality"),
        ("knowedit.portability", "Portability"),
        ("knowedit.fluency", "Fluency (n-gram entropy)"),
        ("counterfact.score", "CounterFact Score S"),
        ("counterfact.efficacy_score", "Efficacy Score (ES)"),
        ("counterfact.efficacy_magnitude", "Efficacy Magnitude (EM)"),
        ("counterfact.paraphrase_score", "Paraphrase Score (PS)"),
        ("counterfact.paraphrase_magnitude", "Paraphrase Magnitude (PM)"),
        ("counterfact.neighborhood_score", "Neighborhood Score (NS)"),
        ("counterfact.neighborhood_magnitude", "Neighborhood Magnitude (NM)"),
        ("zsre.efficacy", "zsRE Efficacy"),
        ("zsre.paraphrase", "zsRE Paraphrase"),
        ("zsre.specificity", "zsRE Specificity"),
        ("mquake.edit_wise", "MQuAKE edit-wise accuracy"),
        ("mquake.instance_wise", "MQuAKE instance-wise accuracy"),
        ("mquake.multihop", "MQuAKE multi-hop accuracy"),
        ("mquake.multihop_given_instance", "MQuAKE multi-hop accuracy (instance-wise correct cases)"),
        ("mquake.multihop_original", "MQuAKE multi-hop answered with the original answer"),
    ]

    static func label(_ key: String) -> String {
        if let name = metricNames.first(where: { $0.0 == key })?.1 { return name }
        for (prefix, name) in [("knowedit.locality.", "Locality"), ("knowedit.portability.", "Portability")] where key.hasPrefix(prefix) {
            return "\(name) · \(key.dropFirst(prefix.count))"
        }
        return key
    }

    static func order(_ key: String) -> (Int, String) {
        if let i = metricNames.firstIndex(where: { $0.0 == key }) { return (2 * i, key) }
        for (prefix, parent) in [("knowedit.locality.", "knowedit.locality"), ("knowedit.portability.", "knowedit.portability")] where key.hasPrefix(prefix) {
            if let i = metricNames.firstIndex(where: { $0.0 == parent }) { return (2 * i + 1, key) }
        }
        return (10_000, key)
    }

    /// A Markdown report: every metric before and after editing (× 100), and everything that defines
    /// the run (protocol, model and data hashes, method and hyper-parameters, conventions).
    public func markdownReport() -> String {
        let h = header
        let agg = aggregates
        var lines: [String] = []
        lines.append("# Knowledge-editing evaluation: \(h.method) on \(h.dataFile)")
        lines.append("")
        lines.append("| | |")
        lines.append("|---|---|")
        let hp = h.hyperParameters.keys.sorted().map { "\($0)=\(h.hyperParameters[$0]!)" }.joined(separator: ", ")
        lines.append("| method | \(h.method)\(hp.isEmpty ? "" : " (\(hp))") |")
        lines.append("| protocol | \(h.options.editingProtocol.summary)\(h.options.editingProtocol == .single ? "" : "; \(h.options.editBatchSize) \(h.options.editBatchSize == 1 ? "record" : "records") per edit")\(h.options.editingProtocol == .sequential ? "; timing \(h.options.sequentialTiming.rawValue)" : "") |")
        lines.append("| model | \(h.modelDescription); sha256 `\(h.modelSHA256)` |")
        lines.append("| data | \(h.dataFile) (\(h.dataFormat.rawValue)); sha256 `\(h.dataSHA256)` |")
        let shard = h.options.shardCount > 1 ? "; shard \(h.options.shardIndex + 1) of \(h.options.shardCount)" : ""
        lines.append("| records | \(records.count) evaluated of \(h.recordsSelected) selected (\(h.recordsInFile) in the file)\(shard) |")
        lines.append("| suites | \(h.suites.map(\.rawValue).joined(separator: ", ")) |")
        let errors = records.filter { $0.error != nil }.count
        let warned = records.filter { !$0.warnings.isEmpty }.count
        lines.append("| problems | \(errors) records where the editor failed; \(warned) records with warnings |")
        lines.append("")

        let hasFinal = agg[.final] != nil
        var keys = Set<String>()
        for table in agg.values { keys.formUnion(table.keys) }
        lines.append("All numbers are means over records × 100 (n = records that have the metric).")
        lines.append("")
        lines.append(hasFinal ? "| metric | before | after (immediate) | after all edits | n |" : "| metric | before | after | n |")
        lines.append(hasFinal ? "|---|---:|---:|---:|---:|" : "|---|---:|---:|---:|")
        func cell(_ phase: Phase, _ key: String) -> String {
            guard let a = agg[phase]?[key] else { return "–" }
            return String(format: "%.2f", a.value * 100)
        }
        for key in keys.sorted(by: { EvaluationRun.order($0) < EvaluationRun.order($1) }) {
            let n = agg[.post]?[key]?.count ?? agg[.final]?[key]?.count ?? agg[.pre]?[key]?.count ?? 0
            var row = "| \(EvaluationRun.label(key)) | \(cell(.pre, key)) | \(cell(.post, key)) |"
            if hasFinal { row += " \(cell(.final, key)) |" }
            lines.append(row + " \(n) |")
        }
        lines.append("")
        lines.append("## How the numbers were computed")
        lines.append("")
        for (k, v) in h.conventions.sorted(by: { $0.key < $1.key }) { lines.append("- **\(k)**: \(v)") }
        lines.append("")
        return lines.joined(separator: "\n")
    }
}
