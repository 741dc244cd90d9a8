#!/usr/bin/env bash
# The package as a user gets it: build the sdist and the wheel, check their metadata and
# contents, install the wheel into a fresh venv outside the checkout, and run README's
# local flow there with a trainer that is not this repository's (examples/consumer's,
# copied): train on MLflow's default store, check --promote, status, --version.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${VENV:-$root/.venv}/bin"
uv="$bin/uv"
[ -x "$uv" ] || uv=$(command -v uv) || { echo "package-check: uv is missing" >&2; exit 2; }
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "package-check: $*" >&2; exit 1; }

# -- build -------------------------------------------------------------------------
# PACKAGE_DIST keeps what was built (the release workflow uploads it)
dist="${PACKAGE_DIST:-$work/dist}"
"$uv" build --quiet --out-dir "$dist" "$root"
version=$(cd "$root" && "$bin/python" -c 'import ast, pathlib
tree = ast.parse(pathlib.Path("gate/__init__.py").read_text())
print(next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
           and getattr(n.targets[0], "id", "") == "__version__"))')
wheel="$dist/mlflow_model_gate-$version-py3-none-any.whl"
sdist="$dist/mlflow_model_gate-$version.tar.gz"
[ -f "$wheel" ] || fail "no wheel $(basename "$wheel") in: $(ls "$dist")"
[ -f "$sdist" ] || fail "no sdist $(basename "$sdist") in: $(ls "$dist")"

# -- metadata and contents -----------------------------------------------------------
"$bin/python" - "$wheel" "$sdist" "$version" <<'PY' || fail "metadata (above)"
import sys
import tarfile
import zipfile
from email.parser import Parser

wheel, sdist, version = sys.argv[1:]
errors = []
with zipfile.ZipFile(wheel) as zf:
    names = set(zf.namelist())
    info = f"mlflow_model_gate-{version}.dist-info"
    meta = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
    entry = zf.read(f"{info}/entry_points.txt").decode()
    licenses = [n for n in names if n.startswith(f"{info}/licenses/")]
expect = {"Name": "mlflow-model-gate", "Version": version, "Requires-Python": ">=3.11",
          "License-Expression": "Apache-2.0"}
for key, value in expect.items():
    if meta.get(key) != value:
        errors.append(f"{key}: {meta.get(key)!r}, expected {value!r}")
if "model-gate = gate.commands.console:console" not in entry:
    errors.append(f"console script model-gate missing: {entry!r}")
if not licenses:
    errors.append("the wheel carries no LICENSE")
templates = [n for n in names if n.startswith("gate/report/templates/") and n.endswith(".j2")]
if not templates:
    errors.append("no gate/report/templates/*.j2 in the wheel")
if "gate/py.typed" not in names:
    errors.append("no gate/py.typed in the wheel")
extras = set(meta.get_all("Provides-Extra") or [])
if not {"lightgbm", "xgboost"} <= extras:
    errors.append(f"extras: {sorted(extras)}")
if any(n.startswith(("tests/", "bench/", "examples/")) for n in names):
    errors.append("the wheel ships tests, bench or examples")
with tarfile.open(sdist) as tf:
    members = {m.name.split("/", 1)[-1] for m in tf.getmembers()}
for needed in ("pyproject.toml", "LICENSE", "README.md", "gate/py.typed"):
    if needed not in members:
        errors.append(f"the sdist lacks {needed}")
for error in errors:
    print(f"package-check: {error}", file=sys.stderr)
print(f"package-check: metadata ok ({len(templates)} templates, extras {sorted(extras)})")
sys.exit(1 if errors else 0)
PY

# -- install outside the checkout, run README's local flow there -----------------------
"$uv" venv --quiet --python "$bin/python" "$work/venv"
"$uv" pip install --quiet --python "$work/venv/bin/python" "$wheel"
flow="$work/team-repo"
mkdir -p "$flow"
cp -r "$root/examples/consumer/train.py" "$root/examples/consumer/gate.toml" \
      "$root/examples/consumer/data" "$flow/"
cd "$flow"
# MLflow's default store in the temp dir: no URI, nothing of the CI's environment
unset MLFLOW_TRACKING_URI MLFLOW_REGISTRY_URI GITHUB_ACTIONS GITHUB_STEP_SUMMARY GITHUB_OUTPUT \
      PYTHONPATH
export PYTHONSAFEPATH=1
py="$work/venv/bin/python"
gate="$work/venv/bin/model-gate"
[ -x "$gate" ] || fail "the wheel installed no model-gate console script"
"$py" -c 'import gate, pathlib, sys
where = pathlib.Path(gate.__file__).resolve()
sys.exit(f"gate imported from {where}, not the venv" if "site-packages" not in where.parts else 0)'
run_id=$("$py" train.py 2>"$work/train.err" | sed -n 's/^run_id=//p') \
  || { cat "$work/train.err" >&2; fail "the trainer failed"; }
[ -n "$run_id" ] || { cat "$work/train.err" >&2; fail "the trainer printed no run id"; }
rc=0
"$gate" check --run-id "$run_id" --promote > "$work/check.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/check.out" >&2; fail "model-gate check --promote exited $rc"; }
head -1 "$work/check.out"
"$gate" status > "$work/status.out" 2>&1 || { cat "$work/status.out" >&2; fail "model-gate status"; }
grep -q "consumer-classifier" "$work/status.out" || { cat "$work/status.out" >&2; fail "status names no model"; }
said=$("$gate" --version) || fail "model-gate --version"
case "$said" in *"$version"*) ;; *) fail "--version says '$said', expected $version" ;; esac
[ -f mlflow.db ] || fail "the flow did not use MLflow's default store ($flow/mlflow.db)"
echo "package-check: mlflow-model-gate $version built, installed outside the checkout," \
     "trained, checked, promoted, status ($said) in $((SECONDS - start)) s"
