#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the pinned moto emulator into .venv (the
# integration tests start their own private moto servers from it), checks the emulator's
# AWS-like behaviours, checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/moto-venv.sh
# The emulator's AWS-like behaviours against boto3 (what the integration tests rely on).
.venv/bin/python scripts/test_aws_like.py
# The OpenSearch domain REST endpoint stand-in (SigV4, access policies, templates, indices).
.venv/bin/python scripts/test_search_standin.py
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
