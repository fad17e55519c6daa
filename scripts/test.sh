#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the pinned moto emulator into .venv (the
# integration tests start their own private moto servers from it), checks formatting and lints,
# then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/moto-venv.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
