"""gate.sandbox with real bubblewrap and real MLflow models saved into tmp_path: the
model loaded as serving loads it, in a child that sees the features and its own files
only, stopped at its limits, its failures one line each."""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import cloudpickle
import mlflow.lightgbm
import mlflow.pyfunc
import mlflow.sklearn
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest

from gate import contract
from gate.errors import InputError
from gate.sandbox import Limits, SandboxUnavailable, predict, probe
from gate.sandbox import jail as sandbox_jail
from tests import sandbox_models

pytestmark = pytest.mark.skipif(not probe().ok, reason="no sandbox here: " + probe().why)

ROOT = Path(__file__).resolve().parents[1]
# small, but with room for a busy 2-core machine: starting the child takes 2-3 s of CPU
SMALL = Limits(cpu_seconds=10, wall_seconds=60, memory_bytes=1024 ** 3)


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    return x, x.a * 2 - x.b + rng.normal(scale=0.1, size=300)


@pytest.fixture(scope="module", autouse=True)
def by_value() -> Iterator[None]:
    cloudpickle.register_pickle_by_value(sandbox_models)
    yield
    cloudpickle.unregister_pickle_by_value(sandbox_models)


def pyfunc(path: Path, model: Any) -> Path:
    mlflow.pyfunc.save_model(str(path), python_model=model, pip_requirements=[])
    return path


def in_process(path: Path, x: pd.DataFrame) -> Any:
    return np.asarray(mlflow.pyfunc.load_model(str(path)).predict(x))


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_sklearn_regressor_predicts_as_in_process(tmp_path: Path, frame: Any, fmt: str) -> None:
    from sklearn.linear_model import Ridge

    x, y = frame
    path = tmp_path / "model"
    mlflow.sklearn.save_model(Ridge().fit(x, y), str(path), serialization_format=fmt)
    got = predict(path, x, label="candidate run r1", task=contract.REGRESSION)
    assert got.method == "mlflow.pyfunc in sandbox (bwrap)"
    assert got.proba is None and got.classes == ()
    np.testing.assert_array_equal(got.values, in_process(path, x))


def test_classifier_gives_probabilities_and_classes(tmp_path: Path, frame: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = frame
    labels = np.where(y > 0.5, "high", np.where(y < -0.5, "low", "mid"))
    model = LogisticRegression(max_iter=500).fit(x, labels)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(path), serialization_format="cloudpickle")
    got = predict(path, x, label="candidate", task=contract.MULTICLASS)
    assert got.classes == ("high", "low", "mid")
    np.testing.assert_array_equal(got.values, model.predict(x))
    np.testing.assert_allclose(got.proba, model.predict_proba(x))


def test_hostile_pyfunc_sees_nothing(tmp_path: Path, frame: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = frame
    labels = tmp_path / "labels.csv"
    labels.write_text("y\n1\n")
    monkeypatch.setenv("GATE_TEST_SECRET", "hunter2")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2")
    monkeypatch.chdir(tmp_path)
    stolen = [tmp_path / "stolen.txt", Path(sys.prefix) / "stolen.txt",
              tmp_path / "model" / "stolen.txt", Path("/model/stolen.txt")]
    private = Path("/tmp") / f"gate-sandbox-environ-{os.getpid()}.txt"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        spy = sandbox_models.Spy([str(labels), str(ROOT / "gate.toml"), str(ROOT / ".git"),
                                  "/etc/hostname", "/root/.bashrc", os.path.expanduser("~")],
                                 [str(p) for p in stolen], server.getsockname()[1],
                                 str(private), list(sandbox_jail.python()[1]))
        got = predict(pyfunc(tmp_path / "model", spy), x, label="candidate")
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    facts = dict(part.split("=", 1) for part in str(got.values[0]).split(";"))
    assert facts["got"] == ""                   # nothing read, reached or written
    assert facts["secret"] == "False"
    assert set(facts["env"].split(",")) == {
        "PATH", "HOME", "TMPDIR", "LANG", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION",
        "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PWD"}      # PWD=/tmp, set by bwrap
    assert facts["dumpable"] == "0" and facts["core"] == "0"
    assert facts["uid"] == "65534"
    # of the host: the model's folder, the child program, the linker's cache (and the
    # Python environment and /usr, not listed): no checkout, no home, no tmp_path
    seen = facts["files"].split(",")
    assert "/model/MLmodel" in seen and "/gate/child.py" in seen
    assert all(re.match(r"/model/|/gate/child\.py$|/tmp/|/etc/ld\.so\.cache$|/etc/alternatives/",
                        f) for f in seen), seen
    assert not any(p.exists() for p in stolen) and not private.exists()
    assert len(set(got.values)) == 1 and len(got) == len(x)


@pytest.mark.parametrize("how, limits, cause", [
    ("spin", Limits(cpu_seconds=4, wall_seconds=60),
     "exceeded its CPU time limit in the sandbox (4 s)"),
    ("sleep", Limits(wall_seconds=5), "timed out in the sandbox (wall time limit 5 s)"),
    ("hog", SMALL, "exceeded its memory limit in the sandbox (1 GB)"),
    ("abort", SMALL, "crashed in the sandbox (SIGABRT, exit 134)"),
    ("flood", Limits(output_bytes=1024 * 1024), "its output in the sandbox exceeded 1 MB"),
    ("raise", SMALL, "could not predict: ValueError: no such column: 'age' (in the sandbox)"),
])
def test_a_misbehaving_model_is_one_input_error(tmp_path: Path, frame: Any, how: str,
                                                limits: Limits, cause: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = frame
    monkeypatch.chdir(tmp_path)
    path = pyfunc(tmp_path / "model", sandbox_models.Behaves(how))
    start = time.monotonic()
    with pytest.raises(InputError) as caught:
        predict(path, x, label="candidate run r1", limits=limits)
    assert time.monotonic() - start < limits.wall_seconds + 5
    message = str(caught.value)
    assert message.startswith("candidate run r1: ") and cause in message, message
    assert "\n" not in message
    assert not list(tmp_path.glob("**/core*"))


@pytest.mark.parametrize("how, cause", [
    ("short", "299 predictions for 300 rows"),
    ("nan", "non-finite predictions (NaN or infinity)"),
])
def test_malformed_predictions_are_refused(tmp_path: Path, frame: Any, how: str,
                                           cause: str) -> None:
    x, _ = frame
    path = pyfunc(tmp_path / "model", sandbox_models.Behaves(how))
    with pytest.raises(InputError, match=re.escape(f"champion: malformed output from the "
                                                   f"sandbox: {cause}")):
        predict(path, x, label="champion", task=contract.REGRESSION)


def test_what_the_model_prints_is_not_its_answer(tmp_path: Path, frame: Any) -> None:
    x, _ = frame
    got = predict(pyfunc(tmp_path / "model", sandbox_models.Behaves("chatty")), x,
                  label="candidate", task=contract.REGRESSION)
    assert list(got.values) == [0.0] * len(x)


def test_hostile_lightgbm_file_aborts_in_the_sandbox(tmp_path: Path, frame: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import lightgbm

    x, y = frame
    monkeypatch.chdir(tmp_path)
    booster = lightgbm.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                             lightgbm.Dataset(x, y), num_boost_round=3)
    path = tmp_path / "model"
    mlflow.lightgbm.save_model(booster, str(path))
    text = (path / "model.lgb").read_text()
    (path / "model.lgb").write_text(re.sub(r"split_feature=\d+", "split_feature=99999", text,
                                           count=1))
    with pytest.raises(InputError, match=r"^candidate: crashed in the sandbox \(SIGABRT"):
        predict(path, x, label="candidate", limits=SMALL)
    assert not list(tmp_path.glob("**/core*"))


def test_hostile_xgboost_file_segfaults_in_the_sandbox(tmp_path: Path, frame: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import xgboost

    x, y = frame
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model"
    model = xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(x, y)
    mlflow.xgboost.save_model(model, str(path), model_format="json")
    saved = json.loads((path / "model.json").read_text())
    tree = saved["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["split_indices"] = [10 ** 8] * len(tree["split_indices"])
    (path / "model.json").write_text(json.dumps(saved))
    with pytest.raises(InputError, match=r"^candidate: crashed in the sandbox \(SIGSEGV"):
        predict(path, x, label="candidate", limits=SMALL)
    assert not list(tmp_path.glob("**/core*"))


def fake_bwrap(tmp_path: Path) -> str:
    """A bwrap as GitHub's ubuntu-24.04 runners have it: AppArmor refuses the user
    namespace it needs."""
    script = tmp_path / "bwrap"
    script.write_text('#!/bin/sh\n[ "$1" = --help ] && { echo "usage: bwrap [OPTIONS...]"; '
                      'exit 0; }\necho "bwrap: setting up uid map: Permission denied" >&2\n'
                      'exit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_apparmor_restriction_is_detected_and_named(tmp_path: Path, frame: Any) -> None:
    sysctl = tmp_path / "apparmor_restrict_unprivileged_userns"
    sysctl.write_text("1\n")
    found = probe(fake_bwrap(tmp_path), apparmor=sysctl)
    assert not found.ok and found.kind == "none"
    assert "bwrap: setting up uid map: Permission denied" in found.why
    assert f"AppArmor restricts unprivileged user namespaces here ({sysctl} = 1)" in found.why
    assert ".github/apparmor/bwrap" in found.why
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in found.why
    elsewhere = probe(fake_bwrap(tmp_path), apparmor=tmp_path / "absent")
    assert not elsewhere.ok
    assert "unprivileged user namespaces are refused on this machine [" in elsewhere.why
    x, _ = frame
    with pytest.raises(SandboxUnavailable, match="^candidate cannot be scored in a sandbox: "):
        predict(tmp_path, x, label="candidate", bwrap=fake_bwrap(tmp_path))


def test_no_bwrap_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = probe()
    assert not found.ok and "bwrap is not installed" in found.why
    assert "bubblewrap" in found.why


def test_probe_makes_the_sandbox_here() -> None:
    found = probe()
    assert found.ok and found.kind == "bwrap" and found.bwrap is not None
    assert probe() is found                     # asked once per process


def test_python_m_gate_sandbox_says_what_the_gate_will_find() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "gate.sandbox"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("model sandbox: bubblewrap ("), done


def test_the_shipped_workflows_let_bwrap_alone_make_namespaces() -> None:
    import yaml

    from gate.sandbox.probe import PROFILE

    profile = (ROOT / PROFILE).read_text()
    assert "profile bwrap /usr/bin/bwrap flags=(unconfined) {" in profile
    assert "\n  userns,\n" in profile and "abi <abi/4.0>," in profile
    # the reusable workflow reads the profile from the gate's own checkout (.model-gate/),
    # never from the caller's tree; the manual workflow runs in this repository
    for name, job, where in (("model-gate.yml", "gate", ".model-gate/"),
                             ("model-gate-manual.yml", "registry", "")):
        steps = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text()
                               )["jobs"][job]["steps"]
        names = [step.get("name") for step in steps]
        setup = steps[names.index("Model sandbox")]
        assert names.index("Model sandbox") < names.index("Gate"), name
        assert "apparmor_restrict_unprivileged_userns" in setup["run"]
        assert f"install -m 0644 {where}{PROFILE} /etc/apparmor.d/bwrap" in setup["run"]
        assert "apparmor_parser -r /etc/apparmor.d/bwrap" in setup["run"]
        assert "sysctl" not in setup["run"]         # the narrower fix, never the global one


def test_started_early_and_asked_later(tmp_path: Path, frame: Any) -> None:
    from sklearn.linear_model import Ridge

    from gate.sandbox import start

    x, y = frame
    path = tmp_path / "model"
    mlflow.sklearn.save_model(Ridge().fit(x, y), str(path), serialization_format="skops")
    first, second = start(path, label="candidate"), start(path, label="champion")
    np.testing.assert_array_equal(first.result(x, contract.REGRESSION).values,
                                  in_process(path, x))
    second.close()                              # not asked: stopped and reaped
    second.close()
    assert second._proc.returncode is not None


def test_warm_before_the_files_exist_loads_what_lands_later(tmp_path: Path,
                                                            frame: Any) -> None:
    """A sandbox started on an empty folder (as `gate check` starts the candidate's
    before it knows the model) sees the files put there afterwards, read-only."""
    from sklearn.linear_model import Ridge

    from gate.sandbox import warm

    x, y = frame
    folder = tmp_path / "candidate-model"
    folder.mkdir()
    early = warm(folder, label="the candidate's model")
    try:
        with pytest.raises(InputError, match="no MLmodel file"):
            early.load("candidate run r1")      # told too soon: refused, not loaded
        saved = tmp_path / "saved"
        mlflow.sklearn.save_model(Ridge().fit(x, y), str(saved), serialization_format="skops")
        for item in saved.iterdir():
            (folder / item.name).write_bytes(item.read_bytes())
        early.load("candidate run r1")
        got = early.result(x, contract.REGRESSION)
    finally:
        early.close()
    np.testing.assert_array_equal(got.values, in_process(folder, x))


def test_warm_and_never_told_is_stopped_quietly(tmp_path: Path) -> None:
    from gate.sandbox import warm

    folder = tmp_path / "empty"
    folder.mkdir()
    early = warm(folder, label="the candidate's model")
    early.close()                               # no model after all
    assert early._proc.returncode is not None
    with pytest.raises(InputError, match="does not exist"):
        warm(tmp_path / "missing", label="the candidate's model")


def frames(*parts: Any, raw: list[bytes] | None = None) -> bytes:
    """An answer as the child writes it, or with `raw` parts written as given."""
    import io
    import struct

    from gate.sandbox.child import MAGIC

    blobs = raw or []
    for part in parts:
        buffer = io.BytesIO()
        if part is not None:
            np.save(buffer, part, allow_pickle=False)
        blobs.append(buffer.getvalue())
    return MAGIC + b"".join(struct.pack(">Q", len(b)) + b for b in blobs)


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("answer, cause", [
    (b"", "no answer"),
    (b"GATE-SANDBOX-0\n", "it does not start with the gate's header"),
    (frames(np.zeros(3))[:-5], "its values claim 152 bytes, 147 are left"),
    (frames(np.zeros(3), None, None) + b"x", "1 bytes follow the answer"),
    (frames(raw=[npy_header("|O", (3,)) + b"\0" * 24, b"", b""]),
     "its values are of type object, not numbers or text"),
    (frames(raw=[npy_header("<f8", (10 ** 10,)) + b"\0" * 24, b"", b""]),
     "its values claim shape (10000000000,) in 24 bytes"),
    (frames(np.zeros((3, 2)), None, None), "predictions of shape (3, 2), not one per row"),
    (frames(np.array(["a", "b", "c"]), None, None), "predictions of type <U1, not numbers"),
    (frames(np.zeros(3), np.full((3, 2), 0.5), None), "class probabilities without their"),
    (frames(np.zeros(3), np.full((3, 2), 1.5), np.array([0, 1])),
     "class probabilities outside [0, 1]"),
    (frames(np.zeros(3), np.full((3, 3), 0.3), np.array([0, 1])),
     "class probabilities of shape (3, 3), not (3, 2)"),
])
def test_a_forged_answer_is_refused_before_use(answer: bytes, cause: str) -> None:
    from gate.sandbox import wire

    with pytest.raises(InputError, match="^m: malformed output from the sandbox: " +
                       re.escape(cause)):
        wire.read_answer(answer, 3, contract.REGRESSION, "m")


def test_a_well_formed_answer_is_read() -> None:
    from gate.sandbox import wire

    got = wire.read_answer(frames(np.array(["b", "a", "b"]), np.eye(3)[:, :2] + 0,
                                  np.array(["a", "b"])), 3, contract.BINARY, "m")
    assert list(got.values) == ["b", "a", "b"] and got.classes == ("a", "b")
    assert got.proba.shape == (3, 2)


def test_no_model_or_too_many_features_is_said_before_anything_runs(tmp_path: Path,
                                                                    frame: Any) -> None:
    x, _ = frame
    with pytest.raises(InputError, match="^candidate: no MLmodel file in its model folder$"):
        predict(tmp_path, x, label="candidate")
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(InputError, match=r"^candidate: the eval features take \d+ bytes as "
                                         r"Parquet, over the sandbox's 1000$"):
        predict(tmp_path, x, label="candidate", limits=Limits(input_bytes=1000))


def test_the_parent_imports_no_mlflow_nor_the_model_libraries(tmp_path: Path,
                                                              frame: Any) -> None:
    import subprocess

    from sklearn.linear_model import Ridge

    x, y = frame
    mlflow.sklearn.save_model(Ridge().fit(x, y), str(tmp_path / "model"),
                              serialization_format="skops")
    x.to_parquet(tmp_path / "x.parquet")
    script = ("import sys, pandas as pd\nfrom gate.sandbox import predict\n"
              f"got = predict({str(tmp_path / 'model')!r}, "
              f"pd.read_parquet({str(tmp_path / 'x.parquet')!r}), label='m')\n"
              "print(len(got), sorted({m.split('.')[0] for m in sys.modules} & "
              "{'mlflow', 'sklearn', 'skops', 'scipy', 'lightgbm', 'xgboost'}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["300", "[]"], done
