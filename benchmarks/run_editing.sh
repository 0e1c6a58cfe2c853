#!/usr/bin/env bash
# ROME edit speed, peak memory and scores of Engram next to EasyEdit (fetched, run as an external
# dependency), CounterFact evaluation throughput of both, a MEMIT batch edit and key-statistics collection
# throughput, in one run on the same machine, model, records and thread count. Writes raw JSON to
# $BENCH_OUT/editing/ and the summary to $BENCH_OUT/editing.json, and prints Markdown tables.
#   bash benchmarks/run_editing.sh [N] [THREADS]      N ROME edits (default 10); EVAL_N records for the
#                                                     evaluation throughput (default 50)
#   MEMIT_N      records edited in the one MEMIT batch (default 10)
#   STATS_DOCS   documents for the statistics throughput (default 200)
#   MEMIT_DOCS   statistics documents behind the MEMIT edit (default: the YAML files' 2000); both tools
#                get copies of their YAML with this mom2_n_samples (EasyEdit collects its statistics once,
#                untimed, which takes it about 2 minutes per 100 documents here)
#   EASYEDIT_Z_CACHE  folder for EasyEdit's MEMIT v* cache: a run cut short resumes there, its edit time
#                summed over sittings (editing/sittings.py); run `editing/easyedit_memit.py --z-cache` alone
#                for the early sittings, then this script with the same folder for the one that completes
#   PARTS        comma-separated subset of rome,eval,memit,stats (default all)
#   ENGRAM_BIN   engram binary (default .build/release/engram, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10}"; THREADS="${2:-2}"; EVAL_N="${EVAL_N:-50}"
MEMIT_N="${MEMIT_N:-10}"; STATS_DOCS="${STATS_DOCS:-200}"; PARTS="${PARTS:-rome,eval,memit,stats}"
part() { [[ ",$PARTS," == *",$1,"* ]]; }
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
LOGS="$ENGRAM_HOME/bench/logs"; mkdir -p "$LOGS"   # EasyEdit's own chatter (loss per step etc.)
easyedit() { local log="$LOGS/$1.log"; shift
  "$PY" "$@" > "$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
  grep -E '^\[|^EasyEdit' "$log" >&2 || true; }
if part rome; then
  "$PY" $E/engram_runs.py rome --engram "$ENGRAM_BIN" --data "$DATA" --limit "$N" --threads "$THREADS" --json "$RAW/engram-rome.json" >&2
  easyedit easyedit-rome $E/easyedit_rome.py --data "$DATA" --limit "$N" --threads "$THREADS" --json "$RAW/easyedit-rome.json"
fi
if part eval; then
  "$PY" $E/engram_runs.py eval --engram "$ENGRAM_BIN" --data "$DATA" --limit "$EVAL_N" --threads "$THREADS" --json "$RAW/engram-eval.json" >&2
  easyedit easyedit-eval $E/easyedit_eval.py --data "$DATA" --limit "$EVAL_N" --threads "$THREADS" --json "$RAW/easyedit-eval.json"
fi
if part memit; then
  # Statistics are cached first by each runner, untimed (EasyEdit's first run: easyedit_stats.py prepare).
  HP_ENGRAM=hparams/memit/smollm2.yaml; HP_EASYEDIT=$E/memit-smollm2.yaml
  if [ -n "${MEMIT_DOCS:-}" ]; then
    TMPHP="$(mktemp -d)"; trap 'rm -rf "$TMPHP"' EXIT
    sed "s/^mom2_n_samples:.*/mom2_n_samples: $MEMIT_DOCS/" "$HP_ENGRAM" > "$TMPHP/engram.yaml"
    sed "s/^mom2_n_samples:.*/mom2_n_samples: $MEMIT_DOCS/" "$HP_EASYEDIT" > "$TMPHP/easyedit.yaml"
    HP_ENGRAM="$TMPHP/engram.yaml"; HP_EASYEDIT="$TMPHP/easyedit.yaml"
  fi
  "$PY" $E/engram_runs.py memit --engram "$ENGRAM_BIN" --data "$DATA" --limit "$MEMIT_N" --threads "$THREADS" \
    --hparams "$HP_ENGRAM" --json "$RAW/engram-memit.json" >&2
  easyedit easyedit-memit $E/easyedit_memit.py --data "$DATA" --limit "$MEMIT_N" --threads "$THREADS" \
    --hparams "$HP_EASYEDIT" --engram-json "$RAW/engram-memit.json" --json "$RAW/easyedit-memit.json" \
    ${EASYEDIT_Z_CACHE:+--z-cache "$EASYEDIT_Z_CACHE"}
fi
if part stats; then
  KEEP="$ENGRAM_HOME/bench/engram-stats-check"   # Engram's D-document files, compared with EasyEdit's, then removed
  "$PY" $E/engram_runs.py stats --engram "$ENGRAM_BIN" --documents "$STATS_DOCS" --threads "$THREADS" --keep-stats "$KEEP" --json "$RAW/engram-stats.json" >&2
  easyedit easyedit-stats $E/easyedit_stats.py throughput --documents "$STATS_DOCS" --threads "$THREADS" \
    --engram-json "$RAW/engram-stats.json" --json "$RAW/easyedit-stats.json"
  rm -rf "$KEEP"
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"; echo "load average after: $LOAD_AFTER" >&2
printf '{"load_before": "%s", "load_after": "%s", "threads": %s, "edits": %s, "eval_records": %s, "memit_records": %s, "stats_documents": %s, "parts": "%s", "engram_bin": "%s"}\n' \
  "$LOAD_BEFORE" "$LOAD_AFTER" "$THREADS" "$N" "$EVAL_N" "$MEMIT_N" "$STATS_DOCS" "$PARTS" "$ENGRAM_BIN" > "$RAW/run.json"
"$PY" benchmarks/compare_editing.py "$RAW" "$OUT/editing.json"
