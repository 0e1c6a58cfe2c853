#!/usr/bin/env bash
# Inference speed of Engram next to llama.cpp (llama-cpp-python) and Hugging Face transformers, in one
# run on the same machine, same F32 weights, same thread count. Prints JSON per engine and a ratio table.
#   bash benchmarks/run_inference.sh [REPEATS] [THREADS]
# WEIGHTS=q4_1 runs Engram and llama.cpp on the shipped Q4_1 GGUF itself instead (both decode from the
# quantized blocks; transformers has no Q4_1 kernels, it would dequantize to the F32 case, so it is left out).
# WEIGHTS=Q4_K_M (or another llama.cpp file type: Q5_K_M, Q6_K, Q8_0, Q5_0, ...) runs both on that file,
# made once from the F32 GGUF by llama.cpp's own quantizer (benchmarks/peers/quantize_gguf.py). WEIGHTS=BF16
# (or F16) makes a 16-bit GGUF the same way and runs transformers on it too, computing in that type.
# Engram opens the weights as `engram generate` does (quantized blocks, floats only on demand);
# ENGRAM_BENCH_FLAGS=--eager-floats dequantizes them all at load, as the editing commands do.
# PROMPT_TOKENS=2,8,128 chooses the prompt lengths (default 128,512) for every engine.
# LLAMACPP_FLAGS=--no-extra-buffers runs llama.cpp without its AMX and repacked weight layouts (see
# benchmarks/peers/llamacpp_bench.py: where its AMX product stops with SIGILL, quantized files need it).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${1:-5}"; THREADS="${2:-2}"; PROMPTS="${PROMPT_TOKENS:-128,512}"
ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
bash scripts/setup.sh
bash benchmarks/peers/setup-venv.sh >/dev/null
PY="$ENGRAM_HOME/bench-venv/bin/python"
F32="$ENGRAM_HOME/bench/SmolLM2-135M-Instruct.F32.gguf"
[ -f "$F32" ] || { mkdir -p "$(dirname "$F32")"; "$PY" benchmarks/peers/make_f32_gguf.py "$ENGRAM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$F32"; }
MODEL="$F32"
case "${WEIGHTS:-f32}" in
  f32) ;;
  q4_1) MODEL="$ENGRAM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"; SKIP_TRANSFORMERS=1 ;;
  *) MODEL="$ENGRAM_HOME/bench/SmolLM2-135M-Instruct.$WEIGHTS.gguf"; SKIP_TRANSFORMERS=1
     [ -f "$MODEL" ] || "$PY" benchmarks/peers/quantize_gguf.py "$F32" "$MODEL" "$WEIGHTS" 2>"$MODEL.log" || { cat "$MODEL.log" >&2; exit 1; }
     # 16-bit floats: transformers computes in them too (from the same file)
     case "$WEIGHTS" in BF16|bf16) TRANSFORMERS_DTYPE=bfloat16; SKIP_TRANSFORMERS=0 ;; F16|f16) TRANSFORMERS_DTYPE=float16; SKIP_TRANSFORMERS=0 ;; esac ;;
esac
swift build -c release --product EngramBench >/dev/null
OUT="${BENCH_OUT:-benchmarks/results}"; mkdir -p "$OUT"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
.build/release/EngramBench --model "$MODEL" --threads "$THREADS" --repeats "$REPEATS" --prompt-tokens "$PROMPTS" ${ENGRAM_BENCH_FLAGS:-} > "$OUT/engram.json"
"$PY" benchmarks/peers/llamacpp_bench.py --model "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPTS" --decode-tokens 128 --repeats "$REPEATS" ${LLAMACPP_FLAGS:-} --json "$OUT/llamacpp.json" >/dev/null
if [ "${SKIP_TRANSFORMERS:-0}" != 1 ]; then
  "$PY" benchmarks/peers/transformers_bench.py --model "$MODEL" --dtype "${TRANSFORMERS_DTYPE:-float32}" --threads "$THREADS" --prompt-tokens "$PROMPTS" --decode-tokens 128 --repeats "$REPEATS" --json "$OUT/transformers.json" >/dev/null
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" benchmarks/compare_inference.py "$OUT"
