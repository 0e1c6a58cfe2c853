import Foundation
import XCTest
import Engram

/// Wall time of a full ROME value search on the default model, in the shape of a real edit:
/// 21 rewriting prompts ("{}" plus 10 short and 10 long generated prefixes, 10–21 tokens), one
/// essence prompt, layer 5 of 30, 25 steps. A measurement, not a check: it runs only when
/// ENGRAM_TIMING=1 (`ENGRAM_TIMING=1 swift test -c release --filter GradientTimingTests`);
/// ENGRAM_TIMING_THREADS=n sets the BLAS thread count. benchmarks/gradients/torch_value_search.py
/// runs the same search the way the Python reference editors compute it.
final class GradientTimingTests: XCTestCase {
    func testValueSearchTiming() throws {
        guard ProcessInfo.processInfo.environment["ENGRAM_TIMING"] == "1" else {
            throw XCTSkip("set ENGRAM_TIMING=1 to time the value search")
        }
        if let t = ProcessInfo.processInfo.environment["ENGRAM_TIMING_THREADS"], let n = Int(t) { BLAS.threads = n }
        let model = try ModelLoader.build(ModelLoader.checkpoint("smollm2"))
        // "The Eiffel Tower is located in the city of" + " Rome" (token ids of the default vocabulary).
        let prompt: [Int32] = [504, 414, 46682, 18669, 314, 3807, 281, 260, 2240, 282]
        let target: [Int32] = [7268]
        let essence = ValueSearchPrompt(tokens: [504, 414, 46682, 18669, 314, 253], lookup: 3)
        var rng = SeededRandom(seed: 2024)
        var rewriting = [ValueSearchPrompt(prompt: prompt, lookup: 3, target: target)]
        for length in [5, 10] {
            for _ in 0..<10 {
                // Stand-ins for generated text: ordinary-vocabulary ids, then "." as ROME's templates end.
                let prefix = (0..<length).map { _ in Int32(300 + rng.int(below: 20000)) } + [30]
                rewriting.append(ValueSearchPrompt(prompt: prefix + prompt, lookup: prefix.count + 3, target: target))
            }
        }
        let tokens = rewriting.map(\.tokens.count)
        print("value search timing: \(rewriting.count) rewriting prompts of \(tokens.min()!)–\(tokens.max()!) tokens, layer 5, BLAS threads \(BLAS.threads)")

        for (label, stop) in [("25 steps (early stop off)", -Float.infinity), ("early stop at 5e-2", Float(5e-2))] {
            var times: [Double] = []
            var steps = 0
            var last: Float = 0
            for _ in 0..<2 {
                let c0 = Self.cpuSeconds()
                let t0 = Date()
                let search = try ValueSearch(model: model, site: .mlpOutput(5), rewriting: rewriting, essence: [essence])
                let t1 = Date()
                let result = try search.run(ValueSearchHyperparameters(earlyStopLoss: stop))
                let t2 = Date()
                let cpu = Self.cpuSeconds() - c0
                times.append(t2.timeIntervalSince(t0))
                steps = result.losses.count
                last = result.losses.last!.total
                print(String(format: "  %@: setup %.2f s, loop %.2f s (%d forwards, %.3f s each), total %.2f s wall, %.2f s cpu, final loss %.4f",
                             label, t1.timeIntervalSince(t0), t2.timeIntervalSince(t1), steps,
                             t2.timeIntervalSince(t1) / Double(steps), t2.timeIntervalSince(t0), cpu, last))
            }
            print(String(format: "  %@: best total %.2f s", label, times.min()!))
        }
    }

    /// User + system CPU time of the process (all threads).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
