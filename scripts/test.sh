#!/usr/bin/env bash
# Install what the tests need into .venv, then lint and run the whole suite.
# Tests start their own real servers (mlflow, PostgreSQL, S3, GitHub-like API)
# on 127.0.0.1; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
.venv/bin/flake8 gate tests bench train_model.py deploy examples
.venv/bin/mypy                      # strict on gate/ and train_model.py (mypy.ini)
.venv/bin/lint-imports --no-cache   # the layers of gate/ (.importlinter)
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
