#!/usr/bin/env bash
# Starts moto in server mode on loopback (default port 5055), with the Firehose shim that lets
# moto store an Amazon OpenSearch Service destination (see scripts/moto_shim.py).
# Usage: scripts/moto-server.sh [PORT]   (installs the emulator first if needed)
# AWS-like behaviour (async states, conflicts, IAM propagation, quotas, faults): set
# PIPECTL_AWS_LIKE=all (or a comma list) and PIPECTL_AWS_LIKE_STEPS; see scripts/aws_like.py.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
port="${1:-5055}"
"$here/scripts/moto-venv.sh"
venv="${PIPECTL_VENV:-$here/.venv}"
exec "$venv/bin/python" "$here/scripts/moto_shim.py" -H 127.0.0.1 -p "$port"
