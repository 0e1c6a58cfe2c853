import Engram
import Foundation
let ck = try ModelLoader.checkpoint(CommandLine.arguments[1])
let model = try ModelLoader.build(ck)
print(model.config)
let cache = model.makeCache()
let ids: [Int32] = CommandLine.arguments.dropFirst(2).map { Int32($0)! }
var logits = try model.forward(ids, cache: cache)
var out: [Int32] = []
for _ in 0..<20 {
    var best = 0
    for i in 0..<logits.cols where logits.pointer[i] > logits.pointer[best] { best = i }
    out.append(Int32(best))
    logits = try model.forward([Int32(best)], cache: cache)
}
print(out)
