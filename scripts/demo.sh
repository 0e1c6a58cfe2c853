#!/usr/bin/env bash
# The main job on the default model: set up, build, then a ROME edit ("The Eiffel Tower is located in
# the city of" → Rome) with probabilities and completions before and after, the edit's scores
# (reliability, generalization, locality, CounterFact efficacy/paraphrase/neighborhood), and an edited
# checkpoint that `engram generate` loads.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product engram
E=.build/release/engram
OUT="${ENGRAM_DEMO_OUT:-out/demo}"
mkdir -p "$OUT"

echo "== before: the unedited model"
$E generate smollm2 --prompt "The Eiffel Tower is located in the city of" --max-tokens 8

echo "== ROME edit: before → after"
$E edit smollm2 --edits fixtures/demo/eiffel.json --method rome --patch "$OUT/eiffel.patch" --out "$OUT/smollm2-eiffel-rome.gguf"

echo "== scores before and after the edit"
$E eval smollm2 --data fixtures/demo/eiffel.json --method rome --no-fluency --json "$OUT/eiffel-eval.json" \
    | grep -E '^\| (metric|---|Reliability|Generalization|Locality \||Efficacy Score|Paraphrase Score|Neighborhood Score)'

echo "== the edited checkpoint, loaded fresh"
$E generate "$OUT/smollm2-eiffel-rome.gguf" --prompt "The Eiffel Tower is located in the city of" --max-tokens 8
$E patch show "$OUT/eiffel.patch"
