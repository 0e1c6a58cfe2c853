#!/usr/bin/env bash
# Inference speed of Engram next to llama.cpp (llama-cpp-python) and Hugging Face transformers, in one
# run on the same machine, same F32 weights, same thread count. Prints JSON per engine and a ratio table.
#   bash benchmarks/run_inference.sh [REPEATS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${1:-5}"; THREADS="${2:-2}"
ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
bash scripts/setup.sh
bash benchmarks/peers/setup-venv.sh >/dev/null
PY="$ENGRAM_HOME/bench-venv/bin/python"
F32="$ENGRAM_HOME/bench/SmolLM2-135M-Instruct.F32.gguf"
[ -f "$F32" ] || { mkdir -p "$(dirname "$F32")"; "$PY" benchmarks/peers/make_f32_gguf.py "$ENGRAM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$F32"; }
swift build -c release --product EngramBench >/dev/null
OUT="${BENCH_OUT:-benchmarks/results}"; mkdir -p "$OUT"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
.build/release/EngramBench --model "$F32" --threads "$THREADS" --repeats "$REPEATS" > "$OUT/engram.json"
"$PY" benchmarks/peers/llamacpp_bench.py --model "$F32" --threads "$THREADS" --prompt-tokens 128,512 --decode-tokens 128 --repeats "$REPEATS" --json "$OUT/llamacpp.json" >/dev/null
if [ "${SKIP_TRANSFORMERS:-0}" != 1 ]; then
  "$PY" benchmarks/peers/transformers_bench.py --model "$F32" --threads "$THREADS" --prompt-tokens 128,512 --decode-tokens 128 --repeats "$REPEATS" --json "$OUT/transformers.json" >/dev/null
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" benchmarks/compare_inference.py "$OUT"
