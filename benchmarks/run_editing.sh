#!/usr/bin/env bash
# ROME edit speed, peak memory and scores of Engram next to EasyEdit (fetched, run as an external
# dependency), and CounterFact evaluation throughput of both, in one run on the same machine, model,
# records and thread count. Writes raw JSON to $BENCH_OUT/editing/ and the summary to
# $BENCH_OUT/editing.json, and prints a Markdown table.
#   bash benchmarks/run_editing.sh [N] [THREADS]      N ROME edits (default 10); EVAL_N records for the
#                                                     evaluation throughput (default 50)
#   ENGRAM_BIN   engram binary (default .build/release/engram, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10}"; THREADS="${2:-2}"; EVAL_N="${EVAL_N:-50}"
ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
PY="$ENGRAM_HOME/bench-venv/bin/python"
DATA="${DATA:-../shared/data/counterfact/counterfact-edit.dev-0-299.json}"
ENGRAM_BIN="${ENGRAM_BIN:-.build/release/engram}"
[ -x "$ENGRAM_BIN" ] || swift build -c release --product engram >/dev/null
bash scripts/setup.sh >/dev/null
bash benchmarks/editing/setup-easyedit.sh >/dev/null
OUT="${BENCH_OUT:-benchmarks/results}"; RAW="$OUT/editing"; mkdir -p "$RAW"
# Same thread count for both: OpenBLAS (Engram), torch intra-op and OpenMP (EasyEdit).
export OPENBLAS_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"; echo "load average before: $LOAD_BEFORE" >&2
E=(benchmarks/editing)
"$PY" $E/engram_runs.py rome --engram "$ENGRAM_BIN" --data "$DATA" --limit "$N" --threads "$THREADS" --json "$RAW/engram-rome.json" >&2
LOGS="$ENGRAM_HOME/bench/logs"; mkdir -p "$LOGS"   # EasyEdit's own chatter (loss per step etc.)
easyedit() { local log="$LOGS/$1.log"; shift
  "$PY" "$@" > "$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
  grep -E '^\[|^EasyEdit' "$log" >&2 || true; }
easyedit easyedit-rome $E/easyedit_rome.py --data "$DATA" --limit "$N" --threads "$THREADS" --json "$RAW/easyedit-rome.json"
"$PY" $E/engram_runs.py eval --engram "$ENGRAM_BIN" --data "$DATA" --limit "$EVAL_N" --threads "$THREADS" --json "$RAW/engram-eval.json" >&2
easyedit easyedit-eval $E/easyedit_eval.py --data "$DATA" --limit "$EVAL_N" --threads "$THREADS" --json "$RAW/easyedit-eval.json"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"; echo "load average after: $LOAD_AFTER" >&2
printf '{"load_before": "%s", "load_after": "%s", "threads": %s, "edits": %s, "eval_records": %s, "engram_bin": "%s"}\n' \
  "$LOAD_BEFORE" "$LOAD_AFTER" "$THREADS" "$N" "$EVAL_N" "$ENGRAM_BIN" > "$RAW/run.json"
"$PY" benchmarks/compare_editing.py "$RAW" "$OUT/editing.json"
