import Foundation

/// Draws a causal-trace result as an SVG: one panel per kind, tokens down, layers across, colour
/// from the corrupted probability (white) to the panel's maximum (full colour). SVG needs no image
/// library and is readable both in a browser and on GitHub.
public enum TraceHeatmap {
    public static func svg(_ r: CausalTrace.Result) -> String {
        let cell = 14.0, labelWidth = 150.0, top = 60.0, panelGap = 40.0
        let T = r.tokens.count, L = r.grids.first?.scores.first?.count ?? 0
        let panelWidth = Double(L) * cell
        let width = labelWidth + Double(r.grids.count) * (panelWidth + panelGap) + 20
        let height = top + Double(T) * cell + 70
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="10" y="18" font-size="13" font-weight="bold">\(escape("Causal trace: \(r.prompt)"))</text>
        <text x="10" y="36">\(escape(String(format: "answer %@: p(clean) = %.3f, p(corrupted) = %.3f, noise σ = %.3f, %d samples", "'\(r.answer)'", r.cleanProbability, r.corruptedProbability, r.noise, r.samples)))</text>

        """
        let colours: [CausalTrace.Kind: (Int, Int, Int)] = [.residual: (84, 39, 143), .mlp: (0, 109, 44), .attention: (165, 15, 21)]
        for (p, grid) in r.grids.enumerated() {
            let x0 = labelWidth + Double(p) * (panelWidth + panelGap)
            let maxValue = grid.scores.flatMap { $0 }.max() ?? 1
            let low = r.corruptedProbability
            let (cr, cg, cb) = colours[grid.kind] ?? (0, 0, 0)
            let title = grid.kind == .residual ? "single restored layer (residual)" : "restored \(grid.kind.rawValue) (window \(r.window))"
            s += "<text x=\"\(x0)\" y=\"\(top - 8)\" font-weight=\"bold\">\(title)</text>\n"
            for t in 0..<T {
                for l in 0..<L {
                    let v = grid.scores[t][l]
                    let f = maxValue > low ? Double(max(0, min(1, (v - low) / (maxValue - low)))) : 0
                    let rgb = (Int(255 - f * Double(255 - cr)), Int(255 - f * Double(255 - cg)), Int(255 - f * Double(255 - cb)))
                    s += "<rect x=\"\(x0 + Double(l) * cell)\" y=\"\(top + Double(t) * cell)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"rgb(\(rgb.0),\(rgb.1),\(rgb.2))\"><title>\(escape(String(format: "token %d %@, layer %d: %.4f", t, r.tokens[t], l, v)))</title></rect>\n"
                }
            }
            for l in stride(from: 0, to: L, by: 5) {
                s += "<text x=\"\(x0 + Double(l) * cell + 2)\" y=\"\(top + Double(T) * cell + 14)\">\(l)</text>\n"
            }
            s += "<text x=\"\(x0)\" y=\"\(top + Double(T) * cell + 30)\">layer →  (colour: \(String(format: "%.3f", low)) white … \(String(format: "%.3f", maxValue)) full)</text>\n"
        }
        for t in 0..<T {
            let isSubject = t >= r.subjectRange[0] && t < r.subjectRange[1]
            let label = r.tokens[t].replacingOccurrences(of: "\n", with: "\\n") + (isSubject ? "*" : "")
            s += "<text x=\"\(labelWidth - 6)\" y=\"\(top + Double(t) * cell + cell - 3)\" text-anchor=\"end\"\(isSubject ? " font-weight=\"bold\"" : "")>\(escape(label))</text>\n"
        }
        s += "<text x=\"10\" y=\"\(Int(height) - 8)\">* subject token</text>\n</svg>\n"
        return s
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
