#!/usr/bin/env bash
# Installs the project's Python-packaged tools into .venv/ beside the sources, pinned:
#  - moto[server], the local AWS emulator the tests and the demo run against;
#  - cbor2, with which the emulator's shim bridges CloudWatch's Smithy RPC v2 CBOR requests to
#    the JSON protocol moto serves (see scripts/aws_like.py, "CloudWatch");
#  - cargo-zigbuild + ziglang, with which `pipectl bundle` links the Lambda against glibc 2.17;
#  - aws-kinesis-agg, AWS's official KPL deaggregator, against which the tests check the
#    producer's aggregated records.
# Idempotent: does nothing when the pinned versions are there. Fails loudly otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
CBOR2_VERSION="${CBOR2_VERSION:-6.2.1}"
ZIGBUILD_VERSION="${ZIGBUILD_VERSION:-0.24.1}"
ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
KINESIS_AGG_VERSION="${KINESIS_AGG_VERSION:-1.2.3}"
venv="${PIPECTL_VENV:-$here/.venv}"
py="${PYTHON:-python3}"
check="import importlib.metadata as m, sys
want = {'moto': '$MOTO_VERSION', 'cbor2': '$CBOR2_VERSION', 'cargo-zigbuild': '$ZIGBUILD_VERSION',
        'ziglang': '$ZIGLANG_VERSION', 'aws-kinesis-agg': '$KINESIS_AGG_VERSION'}
sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
echo "installing moto[server]==$MOTO_VERSION, cbor2==$CBOR2_VERSION, cargo-zigbuild==$ZIGBUILD_VERSION, ziglang==$ZIGLANG_VERSION, aws-kinesis-agg==$KINESIS_AGG_VERSION into $venv" >&2
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" "cbor2==$CBOR2_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION" \
  "aws-kinesis-agg==$KINESIS_AGG_VERSION"
"$venv/bin/python" -c "$check"
echo "tools ready in $venv" >&2
