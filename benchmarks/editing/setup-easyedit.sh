#!/usr/bin/env bash
# Brings EasyEdit (an external, fetched dependency: never copied into this repository) and a Hugging Face
# copy of the default model to $ENGRAM_HOME/bench. Idempotent: does only what is missing.
#
#   EASYEDIT_COMMIT  the EasyEdit commit to use (default below; recorded in the results)
#   EASYEDIT_GIT     a local git directory holding that commit (default: the mirror if present, else
#                    a clone of https://github.com/zjunlp/EasyEdit into $ENGRAM_HOME/bench/EasyEdit.git)
# Prints the EasyEdit work tree and the model folder on the last two lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
BENCH="$ENGRAM_HOME/bench"; mkdir -p "$BENCH"
PY="$ENGRAM_HOME/bench-venv/bin/python"
[ -x "$PY" ] || bash benchmarks/peers/setup-venv.sh >&2
COMMIT="${EASYEDIT_COMMIT:-14cea8245f06715684592ab55184939b99d70784}"
TREE="$BENCH/EasyEdit"

if [ "$(cat "$TREE/.engram-commit" 2>/dev/null)" != "$COMMIT" ]; then
  GIT="${EASYEDIT_GIT:-}"
  if [ -z "$GIT" ] && [ -d /work/.mirror/zjunlp+EasyEdit/repo ]; then GIT=/work/.mirror/zjunlp+EasyEdit/repo; fi
  if [ -z "$GIT" ]; then
    GIT="$BENCH/EasyEdit.git"
    [ -d "$GIT" ] || git clone --bare --filter=blob:none https://github.com/zjunlp/EasyEdit "$GIT" >&2
  fi
  rm -rf "$TREE.tmp"; mkdir -p "$TREE.tmp"
  # Only the library, the ROME hyper-parameters and the licence (the repository also holds large media).
  git --git-dir="$GIT" archive "$COMMIT" easyeditor hparams/ROME requirements.txt LICENSE | tar -x -C "$TREE.tmp"
  echo "$COMMIT" > "$TREE.tmp/.engram-commit"
  rm -rf "$TREE"; mv "$TREE.tmp" "$TREE"
fi

# Nothing to pip-install: the ROME path and compute_edit_quality need only torch, transformers, numpy,
# PyYAML and tqdm (already in the bench venv); the modules they import but never call on this path are
# stubbed in easyedit_common.py. Check that the imports work:
"$PY" -c "import torch, transformers, numpy, yaml, tqdm"

# Hugging Face folder of the default model (Q4_1 dequantized to float32 by transformers, as Engram does).
HF="$BENCH/SmolLM2-135M-Instruct-hf"
if [ ! -f "$HF/.complete" ]; then
  bash scripts/setup.sh >&2
  "$PY" - "$ENGRAM_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$HF" <<'PY' >&2
import os, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out = sys.argv[1], sys.argv[2]
d, f = os.path.split(gguf)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
# A model loaded from GGUF is flagged as quantized and refuses save_pretrained: copy it into a plain one.
cfg = model.config
if hasattr(cfg, "quantization_config"):
    del cfg.quantization_config
plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
plain.tie_weights()
plain.save_pretrained(out)
tok.save_pretrained(out)
open(os.path.join(out, ".complete"), "w").write(gguf + "\n")
print("wrote", out, type(model).__name__)
PY
fi
echo "$TREE"
echo "$HF"
