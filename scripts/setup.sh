#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project's requirements into it.
# Usage: scripts/setup.sh [requirements file]   (default: requirements.txt)
#
# A requirements file with a lock beside it (requirements-dev.txt ->
# requirements-dev.lock.txt) is installed at the lock's exact versions, so an upstream
# release cannot change what CI tests until a lock bump (Dependabot's) says so.
# requirements.txt has no lock: it is the gate's ranges (demo.sh installs it here). uv
# installs either (itself pinned in the lock, installed with pip when missing); pip is
# the fallback, and GATE_INSTALLER=pip forces it.
# The install is skipped while the files it came from are unchanged (a hash in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
reqs=${1:-requirements.txt}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
  "$python" -m venv .venv
fi
lock=${reqs%.txt}.lock.txt
[ -f "$lock" ] || lock=
stamp=.venv/.installed-$(basename "$reqs")
inputs=$(cat "$reqs" requirements.txt deploy/requirements-server.txt ${lock:+"$lock"} \
         | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" = "$inputs" ]; then
  exit 0
fi
# uv when it can be had (~10x faster: bench/install_speed.py), pip otherwise
if [ "${GATE_INSTALLER:-uv}" = uv ] && [ ! -x .venv/bin/uv ]; then
  uv_pin=$(grep -h -m1 '^uv==' ${lock:+"$lock"} requirements-dev.lock.txt 2>/dev/null | head -1 || true)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${uv_pin:-uv>=0.9,<1}" \
    || echo "setup: could not install uv; installing with pip" >&2
fi
target=${lock:-$reqs}
if [ "${GATE_INSTALLER:-uv}" = uv ] && [ -x .venv/bin/uv ]; then
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r "$target"
else
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$target"
fi
echo "$inputs" > "$stamp"
