#!/usr/bin/env bash
# Creates (or brings up to date) the Python venv used only by the peer
# benchmarks in this folder. Idempotent: re-running only installs what is
# missing or at a different version.
#
#   ENGRAM_HOME   cache folder (default ~/.cache/engram); venv goes to $ENGRAM_HOME/bench-venv
#   PYTHON        interpreter used to create the venv (default python3, needs >= 3.10)
#   Log:          $ENGRAM_HOME/bench-venv-setup.log (appended)
set -euo pipefail

ENGRAM_HOME="${ENGRAM_HOME:-$HOME/.cache/engram}"
VENV="$ENGRAM_HOME/bench-venv"
LOG="$ENGRAM_HOME/bench-venv-setup.log"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ENGRAM_HOME"
exec > >(tee -a "$LOG") 2>&1
echo "=== setup-venv.sh start $(date -u +%FT%TZ) venv=$VENV"
start=$(date +%s)

# Compilers and cmake are needed to build llama-cpp-python from source.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v gcc >/dev/null && command -v g++ >/dev/null && command -v make >/dev/null || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing with apt-get: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q "pip==26.3"

# Wheels first (torch from PyPI is the default Linux wheel; only its CPU side is used).
# accelerate: transformers refuses to load a GGUF file without it.
"${PIP[@]}" install \
  "numpy==2.4.6" \
  "gguf==0.19.0" \
  "safetensors==0.8.0" \
  "torch==2.15.0" \
  "transformers==5.23.0" \
  "accelerate==1.15.0" \
  "psutil==7.2.2"

# llama-cpp-python builds llama.cpp from source: CPU only, tuned for this CPU,
# with the system gcc (not any other clang on PATH).
export CC=gcc CXX=g++
export CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"${PIP[@]}" install --no-binary llama-cpp-python "llama-cpp-python==0.3.36"

# The server checks: the official openai client (Tests/openai_client_check.py) and what
# `python -m llama_cpp.server` needs (benchmarks/server_load.py --peer).
"${PIP[@]}" install \
  "openai==3.54.0" \
  "fastapi==0.165.0" \
  "uvicorn==0.54.0" \
  "sse-starlette==3.7.0" \
  "starlette-context==0.5.1" \
  "pydantic-settings==2.16.3"

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for p in ["numpy", "gguf", "safetensors", "torch", "transformers", "accelerate", "llama_cpp_python", "psutil", "openai", "fastapi"]:
    print(f"{p}=={md.version(p)}")
import llama_cpp, torch, transformers, gguf  # import check
print("imports ok")
PY
echo "=== setup-venv.sh done in $(( $(date +%s) - start )) s"
