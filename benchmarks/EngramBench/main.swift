// Inference speed of Engram on one checkpoint: prompt processing (pp) at given prompt lengths and
// decode (tg) of N tokens, repeated, with the median and spread, peak RSS, and the BLAS core.
// `--float-decode` decodes from the float weights even where a GGUF's Q4_1/Q8_0 blocks could be read;
// `--eager-floats` dequantizes every weight at load, as editing commands do (by default the weights are
// opened as `engram generate` and `engram serve` open them: blocks, floats made only on demand).
// Prints one JSON object (the same shape as benchmarks/peers/*_bench.py) so runs can be compared.
// `--few-row-products` times the matrix products of the value search instead (FewRowProducts.swift).
import Engram
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// As the `engram` command does: a core that fits the CPU when OPENBLAS_CORETYPE is unset and OpenBLAS
// does not know it (recorded below).
BLAS.runAgainWithFittingCore()

struct Options {
    var model = "smollm2"
    var promptTokens = [128, 512]
    var decodeTokens = 128
    var repeats = 5
    var threads = 2
    /// Decode with the float weights even where quantized blocks could be read (`QuantizedRows`).
    var floatDecode = false
    /// Make every weight's float32 copy at load (`engram edit`/`eval`) rather than on demand.
    var eagerFloats = false
    /// Time the few-row products (sgemm against `CDecodeKernels`' kernels) at these row counts instead.
    var fewRowProducts = false
    var productRows = [2, 11, 21, 32, 48]
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--model": o.model = args.next() ?? o.model
        case "--prompt-tokens": o.promptTokens = (args.next() ?? "").split(separator: ",").compactMap { Int($0) }
        case "--decode-tokens": o.decodeTokens = Int(args.next() ?? "") ?? o.decodeTokens
        case "--repeats": o.repeats = Int(args.next() ?? "") ?? o.repeats
        case "--threads": o.threads = Int(args.next() ?? "") ?? o.threads
        case "--float-decode": o.floatDecode = true
        case "--eager-floats": o.eagerFloats = true
        case "--few-row-products": o.fewRowProducts = true
        case "--rows": o.productRows = (args.next() ?? "").split(separator: ",").compactMap { Int($0) }
        default:
            FileHandle.standardError.write(Data("unknown option \(a)\n".utf8))
            exit(2)
        }
    }
    return o
}

func summary(_ xs: [Double]) -> [String: Double] {
    let s = xs.sorted()
    let median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    return ["median": median, "min": s.first ?? 0, "max": s.last ?? 0]
}

func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_maxrss * 1024
}

let o = parse()
BLAS.threads = o.threads
QuantizedRows.enabled = !o.floatDecode
let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
    .split(separator: "\n").first { $0.hasPrefix("model name") }?
    .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
let machine: [String: Any] = [
    "cpu": cpu,
    "blas": BLAS.configuration,
    "OPENBLAS_CORETYPE": ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "",
    "OPENBLAS_CORETYPE_chosen_by_engram": ProcessInfo.processInfo.environment[BLAS.coreChosenVariable] != nil,
]
if o.fewRowProducts {
    var output = try fewRowProductTimes(checkpoint: ModelLoader.checkpoint(o.model), rows: o.productRows, repeats: o.repeats)
    output.merge(machine) { a, _ in a }
    output["threads"] = o.threads
    output["repeats"] = o.repeats
    try printJSON(output)
    exit(0)
}
let clock = ContinuousClock()
let loadStart = clock.now
let ck = try ModelLoader.checkpoint(o.model)
ck.dequantizesOnDemand = !o.eagerFloats // as `engram generate` and `engram serve` load
let model = try ModelLoader.build(ck)
let loadSeconds = (clock.now - loadStart).seconds
// A fixed, deterministic token sequence (ids spread over the vocabulary's common range).
let vocab = model.config.vocab
let longest = max(o.promptTokens.max() ?? 0, 16)
let ids: [Int32] = (0..<longest).map { Int32((1000 + $0 * 7919) % min(vocab, 40000)) }

var results: [String: Any] = [:]
for p in o.promptTokens {
    var rates: [Double] = []
    for _ in 0..<(o.repeats + 1) { // first run warms caches and page-ins, not counted
        let cache = model.makeCache(capacity: p + 1)
        let t = clock.now
        _ = try model.forward(Array(ids.prefix(p)), cache: cache)
        rates.append(Double(p) / (clock.now - t).seconds)
    }
    results["pp\(p)"] = summary(Array(rates.dropFirst()))
}
var decodeRates: [Double] = []
for _ in 0..<(o.repeats + 1) {
    let cache = model.makeCache(capacity: 16 + o.decodeTokens + 1)
    var logits = try model.forward(Array(ids.prefix(16)), cache: cache)
    let t = clock.now
    for _ in 0..<o.decodeTokens {
        let next = Sampler.argmax(logits.pointer, count: logits.cols)
        logits = try model.forward([next], cache: cache)
    }
    decodeRates.append(Double(o.decodeTokens) / (clock.now - t).seconds)
}
results["tg\(o.decodeTokens)"] = summary(Array(decodeRates.dropFirst()))

var output: [String: Any] = [
    "engine": "engram",
    "model": ck.location,
    "threads": o.threads,
    "repeats": o.repeats,
    "load_seconds": loadSeconds,
    "results_tokens_per_second": results,
    "peak_rss_bytes": peakRSSBytes(),
    "tensor_bytes": ck.tensorBytes,
    // "avx512": the AVX-512 kernels for float rows, Q4_1 and Q8_0, AVX2 for the other block types.
    "quantized_decode": QuantizedRows.enabled ? [512: "avx512", 256: "avx2"][QuantizedRows.vectorBits, default: "portable"] : "off",
    // With --float-decode, on demand still makes every weight's copy (at its first one-token product).
    "float_weights": o.eagerFloats ? "at load" : o.floatDecode ? "on demand (all made by float decoding)" : "on demand",
]
output.merge(machine) { a, _ in a }
try printJSON(output)
