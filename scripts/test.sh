#!/usr/bin/env bash
# Install what the tests need into .venv, then lint and run the whole suite.
# Tests start their own real servers (mlflow, PostgreSQL, S3, GitHub-like API)
# on 127.0.0.1; extra arguments go to pytest.
#
# scripts/test.sh --fast [pytest args]: the same linters (flake8, mypy, lint-imports),
# then only the tests marked neither `server` nor `slow` (pytest.ini, tests/conftest.py):
# no mlflow server, stack, S3 endpoint, browser or MLflow store; about 20 s of pytest.
# The whole suite (no --fast) is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The whole suite runs on GATE_TEST_WORKERS processes (default 2), a test file each
# (its module fixtures start their servers once): most of it waits on servers.
select=(-n "${GATE_TEST_WORKERS:-2}" --dist loadfile)
if [ "${1:-}" = --fast ]; then
  shift
  select=(-m "not server and not slow")
fi
scripts/setup.sh requirements-dev.txt
.venv/bin/flake8 gate tests bench train_model.py deploy examples
.venv/bin/mypy                      # strict on gate/ and train_model.py (mypy.ini)
.venv/bin/lint-imports --no-cache   # the layers of gate/ (.importlinter)
.venv/bin/python -m pytest -q -p no:cacheprovider ${select[@]+"${select[@]}"} "$@"
