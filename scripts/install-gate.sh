#!/usr/bin/env bash
# Install the gate from a source tree (this repository at the version a caller pinned)
# into the Python on PATH, with uv when it is there or can be had, else with pip.
# Usage: install-gate.sh SOURCE_DIR [EXTRAS]     e.g. install-gate.sh .model-gate lightgbm
# GATE_INSTALLER=pip forces pip; uv is pip-installed when missing (~2 s, then ~10x faster).
set -euo pipefail
source_dir=$(cd "$1" && pwd)
extras=${2:-}
spec="$source_dir${extras:+[$extras]}"
python=$(command -v python || command -v python3)
installer=${GATE_INSTALLER:-uv}
if [ "$installer" = uv ] && ! command -v uv >/dev/null 2>&1; then
  "$python" -m pip install --quiet --disable-pip-version-check "uv>=0.9,<1" \
    || { echo "install-gate: no uv; installing with pip" >&2; installer=pip; }
  # pip put it beside the interpreter, which may not be on PATH under that name
  PATH="$(dirname "$python"):$PATH"
fi
if [ "$installer" = uv ] && command -v uv >/dev/null 2>&1; then
  # --reinstall-package: the same version from another commit is still rebuilt
  uv pip install --quiet --python "$python" --reinstall-package mlflow-model-gate "$spec"
else
  "$python" -m pip install --quiet --disable-pip-version-check "$spec"
fi
(cd "${RUNNER_TEMP:-/tmp}" && "$python" -m gate --version)
