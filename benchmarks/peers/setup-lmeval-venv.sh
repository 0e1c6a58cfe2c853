#!/usr/bin/env bash
# Creates (or brings up to date) $ENGRAM_HOME/lmeval-venv: lm-evaluation-harness on top of the peer
# benchmarks' venv (setup-venv.sh, which it runs first if needed). The bench venv's packages (torch,
# transformers) are reached through a .pth file, so installing lm-eval's dependencies here changes
# nothing in the bench venv. Used only by lm_eval_check.py.
set -euo pipefail
ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
BENCH="$ENGRAM_HOME/bench-venv"
VENV="$ENGRAM_HOME/lmeval-venv"
here="$(cd "$(dirname "$0")" && pwd)"
[ -x "$BENCH/bin/python" ] || bash "$here/setup-venv.sh"
[ -x "$VENV/bin/python" ] || "$BENCH/bin/python" -m venv "$VENV"
site() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
echo "$(site "$BENCH")" > "$(site "$VENV")/bench-venv.pth"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "lm_eval[api]==0.4.13"
"$VENV/bin/python" -c 'import importlib.metadata as m, torch, transformers; print("lm_eval", m.version("lm_eval"), "transformers", transformers.__version__)'
