#!/usr/bin/env bash
# Installs the local AWS emulator (moto in server mode, pinned) into .venv/ beside the sources.
# Idempotent: does nothing when the pinned version is already there. Fails loudly otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
venv="${PIPECTL_VENV:-$here/.venv}"
py="${PYTHON:-python3}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
echo "installing moto[server]==$MOTO_VERSION into $venv" >&2
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$venv/bin/python" -c "import moto; print('moto', moto.__version__, 'ready in $venv')" >&2
