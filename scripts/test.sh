#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the pinned moto emulator into .venv (the
# integration tests start their own private moto servers from it), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/moto-venv.sh
cargo test --locked "$@"
