import Foundation

/// A progress line on standard error: a bar with rate and time left on a terminal, plain
/// occasional lines otherwise (logs, CI).
final class ProgressReporter {
    let label: String
    let start = Date()
    let isTerminal = isatty(STDERR_FILENO) != 0
    var lastPrint = Date.distantPast

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        let now = Date()
        let finished = done >= total
        guard finished || now.timeIntervalSince(lastPrint) > (isTerminal ? 0.2 : 10) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        let text = String(format: "%@ %d/%d  %.1f/s  %@ left", label, done, total, rate, Self.clock(left))
        if isTerminal {
            let width = 24, filled = total > 0 ? width * done / total : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data("\r\(bar) \(text)\u{1B}[K".utf8))
            if finished { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
