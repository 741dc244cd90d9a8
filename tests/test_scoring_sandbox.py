"""The sandbox wired into scoring, end to end on the embedded local store through
`main([...])`: every model with files is scored as serving loads it, in bubblewrap;
what serving loads must be what the report names; a model that fails in the sandbox
stops the check (exit 2), never a fallback to what it logged; where no sandbox can be
made, the logged predictions are used, unverified, said first, and blocked when
promoting under the default `require_verified`."""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import cloudpickle
import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.datasets import load_diabetes

from gate import contract, log_evaluation
from gate.commands.cli import main
from gate.sandbox import probe
from tests import sandbox_models
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not probe().ok, reason="no sandbox here: " + probe().why)

MODEL = "diabetes-regressor"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    frame = load_diabetes(as_frame=True).frame
    features = frame.drop(columns="target")
    evaluation = frame.index % 5 == 0
    return {"train": (features[~evaluation], frame.target[~evaluation]),
            "eval": (features[evaluation], frame.target[evaluation])}


@pytest.fixture(autouse=True)
def experiment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """set_experiment exports MLFLOW_EXPERIMENT_ID: put back after each test."""
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")


@pytest.fixture(scope="module", autouse=True)
def by_value() -> Iterator[None]:
    cloudpickle.register_pickle_by_value(sandbox_models)
    yield
    cloudpickle.unregister_pickle_by_value(sandbox_models)


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def log_run(data: dict[str, Any], predictions: Any, log_model: Callable[[], Any]) -> str:
    """A run as a trainer logs it: its evaluation (the predictions it claims) and its
    model; returns the run id."""
    x, y = data["eval"]
    # this test's store and experiment: MLflow keeps the last ones in the process
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.set_experiment("model-gate").experiment_id
    with mlflow.start_run(experiment_id=experiment) as run:
        log_evaluation(y.to_numpy(), np.asarray(predictions, dtype=float), features=x,
                       row_ids=x.index.to_numpy(), target="target",
                       task=contract.REGRESSION)
        log_model()
    return str(run.info.run_id)


def sklearn_run(data: dict[str, Any], estimator: Any, fmt: str = "cloudpickle") -> str:
    import mlflow.sklearn

    estimator.fit(*data["train"])
    return log_run(data, estimator.predict(data["eval"][0]), lambda: mlflow.sklearn.log_model(
        estimator, name="model", serialization_format=fmt, pip_requirements=[]))


def pyfunc_run(data: dict[str, Any], model: Any, claims: Any) -> str:
    import mlflow.pyfunc

    return log_run(data, claims, lambda: mlflow.pyfunc.log_model(
        name="model", python_model=model, pip_requirements=[]))


def model_folder(run_id: str) -> Path:
    found = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'",
                                        output_format="list")
    return Path(found[0].artifact_location.replace("file://", ""))


def check(run_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    Path("v.json").unlink(missing_ok=True)
    code = main(["check", "--run-id", run_id, "--json", "v.json", "--summary", "s.md",
                 *extra])
    return code, json.loads(Path("v.json").read_text())


def registered() -> list[Any]:
    return client().search_registered_models()


def champion() -> str | None:
    aliases = client().get_registered_model(MODEL).aliases
    return str(aliases["production"]) if "production" in aliases else None


def first_lines() -> str:
    return Path("s.md").read_text().split("**Model gate**", 1)[0]


def good(data: dict[str, Any]) -> str:
    from sklearn.ensemble import RandomForestRegressor

    return sklearn_run(data, RandomForestRegressor(n_estimators=30, random_state=0))


def test_cloudpickle_champion_and_candidate_are_verified_and_worse_is_blocked(
        local_store: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.dummy import DummyRegressor

    code, verdict = check(good(data), "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert verdict["verified"] is True
    assert verdict["candidate_model"]["model"] == "sklearn / cloudpickle"
    assert verdict["candidate_model"]["predictions"] == \
        "computed by the gate, mlflow.pyfunc in sandbox (bwrap)"
    assert client().get_model_version(MODEL, "1").tags[contract.V_VERIFIED] == "true"

    code, verdict = check(sklearn_run(data, DummyRegressor()), "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (1, "blocked", None)
    assert verdict["verified"] is True and verdict["champion_verified"] is True
    assert verdict["paired"] is True and champion() == "1"
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "UNVERIFIED" not in capsys.readouterr().out


def test_recorded_requirements_not_met_here_are_said(local_store: Path,
                                                     data: dict[str, Any]) -> None:
    """The gate scores with its own environment's packages: a model recorded with other
    versions is still verified, and the first lines and the JSON say which differ."""
    from sklearn.linear_model import Ridge

    run_id = sklearn_run(data, Ridge(), fmt="skops")
    (model_folder(run_id) / "requirements.txt").write_text(
        "mlflow\nscikit-learn==0.1.0\n# a comment\n--extra-index-url https://x.invalid\n"
        "pandas; python_version < '3'\n")
    code, verdict = check(run_id)
    assert (code, verdict["status"], verdict["verified"]) == (0, "first_model", True)
    import sklearn

    said = f"scikit-learn==0.1.0 ({sklearn.__version__} here)"
    assert verdict["candidate_model"]["predictions"] == \
        f"computed by the gate, mlflow.pyfunc in sandbox (bwrap); with the gate's packages, " \
        f"not its recorded {said}"
    assert f"candidate's recorded requirements not met here ({said})" in first_lines()


def test_a_model_needing_a_package_not_installed_is_exit_2_naming_it(
        local_store: Path, data: dict[str, Any]) -> None:
    import mlflow.pyfunc

    run_id = log_run(data, data["eval"][1], lambda: mlflow.pyfunc.log_model(
        name="model", python_model=sandbox_models.NeedsPackage(),
        pip_requirements=["gate-test-absent-package==1.0"]))
    code, verdict = check(run_id, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (2, "error", None)
    assert "No module named 'gate_test_absent_package'" in verdict["error"]
    assert "it records gate-test-absent-package, not installed beside the gate" in \
        verdict["error"]
    assert registered() == []


@pytest.mark.parametrize("how", ["other_file", "outside"])
def test_python_function_naming_another_file_is_exit_2(
        local_store: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str],
        how: str) -> None:
    """The attack of #28: a good skops model logged, a worse file added, and MLmodel's
    python_function block (what serving loads) pointed at it."""
    import skops.io
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    run_id = sklearn_run(data, Ridge(), fmt="skops")
    folder = model_folder(run_id)
    skops.io.dump(DummyRegressor().fit(*data["train"]), folder / "worse.skops")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["model_path"] = \
        "worse.skops" if how == "other_file" else "../../worse.skops"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    capsys.readouterr()
    assert main(["check", "--run-id", run_id, "--promote"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and run_id in err, err
    if how == "other_file":
        assert "sklearn block names 'model.skops'" in err
        assert "python_function block (what serving loads) names 'worse.skops'" in err
    else:
        assert "'../../worse.skops' (model_path), which is not a path inside" in err
    assert registered() == []


def test_a_cheating_pyfunc_gets_no_labels_no_network_no_environment(
        local_store: Path, data: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert check(good(data), "--promote")[0] == 0
    x, y = data["eval"]
    labels, dump = tmp_path / "labels.csv", tmp_path / "environ.txt"
    labels.write_text("y\n" + "\n".join(map(str, y)) + "\n")
    monkeypatch.setenv("GATE_TEST_SECRET", "hunter2")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        cheat = sandbox_models.Cheat(str(labels), server.getsockname()[1], str(dump))
        # it logs the truth as its predictions: perfect, if anyone believed it
        code, verdict = check(pyfunc_run(data, cheat, y), "--promote")
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert code == 1 and verdict["status"] == "blocked", verdict
    assert verdict["verified"] is True and verdict["promoted_version"] is None
    assert verdict["candidate_model"]["model"] == "python_function / cloudpickle"
    assert not dump.exists() and champion() == "1"


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_hostile_native_model_files_are_exit_2_without_a_core_dump(
        local_store: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str],
        library: str) -> None:
    x, y = data["train"]
    if library == "lightgbm":
        import lightgbm
        import mlflow.lightgbm

        booster = lightgbm.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                                 lightgbm.Dataset(x, y), num_boost_round=3)
        run_id = log_run(data, booster.predict(data["eval"][0]), lambda: mlflow.lightgbm.
                         log_model(booster, name="model", pip_requirements=[]))
        path = model_folder(run_id) / "model.lgb"
        path.write_text(re.sub(r"split_feature=\d+", "split_feature=99999",
                               path.read_text(), count=1))
        signal = "SIGABRT"
    else:
        import mlflow.xgboost
        import xgboost

        model = xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(x, y)
        run_id = log_run(data, model.predict(data["eval"][0]), lambda: mlflow.xgboost.
                         log_model(model, name="model", model_format="json",
                                   pip_requirements=[]))
        path = model_folder(run_id) / "model.json"
        saved = json.loads(path.read_text())
        tree = saved["learner"]["gradient_booster"]["model"]["trees"][0]
        tree["split_indices"] = [10 ** 8] * len(tree["split_indices"])
        path.write_text(json.dumps(saved))
        signal = "SIGSEGV"
    capsys.readouterr()
    assert main(["check", "--run-id", run_id, "--promote"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"crashed in the sandbox ({signal}" in err and run_id in err, err
    assert registered() == [] and not list(Path.cwd().glob("**/core*"))


def test_a_model_that_loops_forever_is_stopped(
        local_store: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_SANDBOX_CPU", "4")
    monkeypatch.setenv("GATE_SANDBOX_WALL", "60")
    run_id = pyfunc_run(data, sandbox_models.Behaves("spin"), data["eval"][1])
    capsys.readouterr()
    assert main(["check", "--run-id", run_id, "--promote"]) == 2
    err = capsys.readouterr().err
    assert "exceeded its CPU time limit in the sandbox (4 s)" in err and run_id in err, err
    assert registered() == []


def fake_bwrap(folder: Path) -> None:
    """A bwrap as GitHub's ubuntu-24.04 runners have it: AppArmor refuses it."""
    folder.mkdir()
    script = folder / "bwrap"
    script.write_text('#!/bin/sh\n[ "$1" = --help ] && { echo "usage: bwrap [OPTIONS...]"; '
                      'exit 0; }\necho "bwrap: setting up uid map: Permission denied" >&2\n'
                      'exit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_without_a_sandbox_predictions_are_unverified_and_promotion_is_blocked(
        local_store: Path, data: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_bwrap(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    run_id = good(data)
    code, verdict = check(run_id)             # a laptop's check: a verdict, marked
    assert code == 0 and verdict["verified"] is False
    head = first_lines()
    assert "no sandbox could be made here (no sandbox: " in head
    assert "setting up uid map: Permission denied" in head
    assert "): predictions unverified" in head
    assert head.index("no sandbox could be made") < head.index("predictions unverified:")
    code, verdict = check(run_id, "--promote")
    assert code == 1 and verdict["status"] == "blocked"
    assert "require_verified is true when promoting" in verdict["blocked_by"][0]
    assert registered() == []
    Path("gate.toml").write_text(Path("gate.toml").read_text().replace(
        "seed = 0", "seed = 0\nrequire_verified = false"))
    code, verdict = check(run_id, "--promote")
    assert code == 0 and verdict["promoted_version"] == "1"
    assert client().get_model_version(MODEL, "1").tags[contract.V_VERIFIED] == "false"
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "first_model (UNVERIFIED)" in capsys.readouterr().out


def test_explicit_require_verified_blocks_a_plain_check(
        local_store: Path, data: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bwrap(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    Path("gate.toml").write_text(Path("gate.toml").read_text().replace(
        "seed = 0", "seed = 0\nrequire_verified = true"))
    code, verdict = check(good(data))
    assert code == 1 and "[compare] require_verified is true" in verdict["blocked_by"][0]


def test_the_gates_own_process_imports_no_model_library(local_store: Path,
                                                        data: dict[str, Any]) -> None:
    run_id = good(data)
    script = ("import sys\nfrom gate.commands.cli import main\n"
              f"code = main(['check', '--run-id', {run_id!r}, '--json', 'v.json'])\n"
              "print(code, sorted({m.split('.')[0] for m in sys.modules} & "
              "{'sklearn', 'skops', 'lightgbm', 'xgboost'}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path.cwd(), timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["0", "[]"], done.stdout
    assert json.loads(Path("v.json").read_text())["verified"] is True
