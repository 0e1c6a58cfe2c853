#!/usr/bin/env bash
# Sets up (apt packages, default model) and runs the whole test suite in release mode:
# numeric Swift is far too slow in debug builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --build-tests
swift test -c release --skip-build "$@"
