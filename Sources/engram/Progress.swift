import Foundation

/// A progress line on standard error: a bar with rate and time left on a terminal, plain
/// occasional lines otherwise (logs, CI).
///
/// The rate is measured from the first update, not from when the reporter was made: reporters are
/// often made long before the work starts (statistics are collected at the first edit), and work may
/// resume part way (a `.partial` statistics file). Callers that can should report `(0, total)` or the
/// resumed count when they start.
final class ProgressReporter {
    let label: String
    let isTerminal = isatty(STDERR_FILENO) != 0
    var lastPrint = Date.distantPast
    var baseline: (time: Date, done: Int)?

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        let now = Date()
        let finished = done >= total
        guard let baseline else {
            baseline = (now, done)
            lastPrint = now
            write("\(label) \(done)/\(total)", done: done, total: total, finished: finished)
            return
        }
        guard finished || now.timeIntervalSince(lastPrint) > (isTerminal ? 0.2 : 10) else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(baseline.time)
        let rate = elapsed > 0 ? Double(done - baseline.done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        write("\(label) \(done)/\(total)  \(Self.rate(rate))  \(Self.clock(left)) left", done: done, total: total, finished: finished)
    }

    private func write(_ text: String, done: Int, total: Int, finished: Bool) {
        if isTerminal {
            let width = 24, filled = total > 0 ? width * min(done, total) / total : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data("\r\(bar) \(text)\u{1B}[K".utf8))
            if finished { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    /// Items per second, or seconds per item when that is under one (an edit every 12 s read "0.1/s").
    static func rate(_ perSecond: Double) -> String {
        perSecond >= 1 || perSecond <= 0 ? String(format: "%.1f/s", perSecond) : String(format: "%.1f s each", 1 / perSecond)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
