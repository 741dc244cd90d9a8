#!/usr/bin/env bash
# The main job on the embedded local store: a baseline is promoted, a worse model
# is blocked, a better one is promoted, then the history is shown.
# Works in .demo/ (wiped first) so it tells the same story every time.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt || exit 2
root=$PWD
py=$root/.venv/bin/python
rm -rf .demo && mkdir -p .demo && cd .demo || exit 2
cp "$root/gate.toml" gate.toml
cp -r "$root/data" data       # the pinned eval set gate.toml names
unset MLFLOW_TRACKING_URI GITHUB_ACTIONS GITHUB_STEP_SUMMARY GITHUB_OUTPUT
export PYTHONPATH=$root

step() {  # step TITLE EXPECTED_EXIT TRAIN_ARGS...
  local title=$1 expected=$2; shift 2
  printf '\n==================== %s ====================\n' "$title"
  "$py" "$root/train_model.py" --run-name "$title" --json train.json "$@" || exit 2
  run_id=$("$py" -c 'import json; print(json.load(open("train.json"))["run_id"])')
  "$py" -m gate check --run-id "$run_id" --promote --json "verdict-$expected.json"
  local code=$?
  echo "--> gate check exited $code (expected $expected)"
  [ "$code" -eq "$expected" ] || { echo "demo: unexpected exit code" >&2; exit 1; }
}

step "baseline" 0 --n-estimators 50
step "worse-model" 1 --n-estimators 50 --drop-columns bmi,s5
step "better-model" 0 --n-estimators 50 --max-depth 4 --min-samples-leaf 5
printf '\n==================== status ====================\n'
"$py" -m gate status --model-name diabetes-regressor
echo
echo "demo: done. MLflow store: MLflow's default, $PWD/mlflow.db (browse with: cd $PWD && $root/.venv/bin/mlflow ui)"
