#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project's requirements into it.
# Usage: scripts/setup.sh [requirements file]   (default: requirements.txt)
#
# A requirements file with a lock beside it (requirements-dev.txt ->
# requirements-dev.lock.txt) is installed at the lock's exact versions, so an upstream
# release cannot change what CI tests until a lock bump (Dependabot's) says so. uv
# installs the lock (itself pinned in the lock, installed with pip when missing); pip is
# the fallback, and GATE_INSTALLER=pip forces it. requirements.txt has no lock: it is
# also what the action and the workflows install, as ranges (demo.sh runs the same).
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
if [ -z "$lock" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$reqs"
else
  if [ "${GATE_INSTALLER:-uv}" = uv ] && [ ! -x .venv/bin/uv ]; then
    uv_pin=$(grep -m1 '^uv==' "$lock" || echo uv)
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$uv_pin" \
      || echo "setup: could not install $uv_pin; installing with pip" >&2
  fi
  if [ "${GATE_INSTALLER:-uv}" = uv ] && [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python -r "$lock"
  else
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$lock"
  fi
fi
echo "$inputs" > "$stamp"
