"""Issue #24, continued: a --model-name the registry does not have and gate.toml does not
name is said to be new (and --promote refuses it without --new-model); `promote --version`
of a version registered from an MLflow 3 logged model with no run."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from tests.conftest import train
from tests.test_adoption import MODEL, _log_model_alone, _pin_holdout, one_line

NEW = "fraud-scorer"
SAID = (f"model '{NEW}' is not registered and differs from gate.toml's '{MODEL}': judged "
        "as its first version, with nothing to compare against")
REFUSED = (f"model '{NEW}' is not registered and gate.toml names '{MODEL}': promoting would "
           "register a new model; pass --new-model if that is meant, else correct "
           "--model-name")


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def registered() -> list[str]:
    return sorted(m.name for m in client().search_registered_models())


def gate(*argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json", "v.json"])
    return code, json.loads(Path("v.json").read_text())


# -- a name gate.toml does not name ---------------------------------------------------

def test_a_new_name_is_said_first_and_judged_as_a_first_model(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = train()
    capsys.readouterr()
    code, verdict = gate("check", "--run-id", run_id, "--model-name", NEW, "--summary", "s.md")
    assert code == 0 and verdict["status"] == "first_model"
    assert verdict["model_name"] == NEW and verdict["notes"][0] == SAID
    # the first warning of the comment and of the terminal report, right under the verdict
    summary = Path("s.md").read_text()
    warning = summary.split("> [!WARNING]\n", 1)[1].split("\n", 1)[0]
    assert NEW in warning and "not registered and differs from" in warning, summary
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model gate: First model") and out[1] == ""
    assert out[2].startswith(f"! ⚠️ model '{NEW}' is not registered and differs"), out
    assert registered() == []


def test_promoting_a_new_name_is_refused_without_new_model(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = train()
    capsys.readouterr()
    code, verdict = gate("check", "--run-id", run_id, "--model-name", NEW, "--promote")
    assert code == 2 and verdict["status"] == "error" and verdict["error"] == REFUSED
    assert one_line(capsys.readouterr().err) == f"gate: error: {REFUSED}"
    assert main(["promote", "--run-id", run_id, "--model-name", NEW]) == 2
    assert one_line(capsys.readouterr().err) == f"gate: error: {REFUSED}"
    assert registered() == []
    # a version of a model that does not exist cannot be registered: not found, as before
    assert main(["promote", "--version", "1", "--model-name", NEW]) == 2
    assert f"model '{NEW}' version 1" in one_line(capsys.readouterr().err)

    code, verdict = gate("check", "--run-id", run_id, "--model-name", NEW, "--promote",
                         "--new-model")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert verdict["notes"][0] == SAID
    assert registered() == [NEW]
    # registered now: a model of its own, promoted without the flag and without the line
    code, verdict = gate("promote", "--run-id", train("--n-estimators", "30"),
                         "--model-name", NEW)
    assert code in (0, 1) and verdict["status"] != "first_model"
    assert not any("not registered" in note for note in verdict["notes"])


def test_new_model_and_the_other_options_have_help() -> None:
    from tests.test_adoption import _help

    for command in ("check", "promote"):
        text = " ".join(_help(command).split())
        assert "--new-model" in text and "without this flag that is refused" in text
    for command in ("status", "rollback"):    # they register nothing
        assert "--new-model" not in _help(command)
    # every option of these says what it is for
    assert "write the table as JSON" in _help("status")
    assert "recorded on the version rolled back" in _help("rollback")


def test_the_config_s_own_name_or_none_is_a_first_model_as_before(
        local_store: Path) -> None:
    run_id = train()
    code, verdict = gate("check", "--run-id", run_id, "--model-name", MODEL)
    assert code == 0 and verdict["status"] == "first_model"
    assert not any("not registered" in note for note in verdict["notes"])
    # a config that names no model: --model-name is the only name, nothing to differ from
    text = Path("gate.toml").read_text().replace(f'name = "{MODEL}"\n', "")
    Path("gate.toml").write_text(text)
    code, verdict = gate("check", "--run-id", run_id, "--model-name", NEW, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert not any("not registered" in note for note in verdict["notes"])
    assert registered() == [NEW]


def test_new_model_also_lets_a_name_close_to_the_config_s_through(
        local_store: Path) -> None:
    """Two edits from the config's name is taken for a typo; --new-model says it is not."""
    close = "diabetes-regressor2"
    code, verdict = gate("check", "--run-id", train(), "--model-name", close, "--promote",
                         "--new-model")
    assert (code, verdict["promoted_version"]) == (0, "1")
    assert verdict["notes"][0].startswith(f"model '{close}' is not registered and differs")
    assert registered() == [close]


# -- promote --version of a logged model without a run ---------------------------------

def _register(model_id: str) -> str:
    import mlflow

    version = mlflow.register_model(f"models:/{model_id}", MODEL).version
    assert not client().get_model_version(MODEL, str(version)).run_id
    return str(version)


def test_promote_version_of_a_logged_model_without_a_run(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The manual path (workflow_dispatch: promote --version N) for a version registered
    from `models:/m-...` with no run: its candidate is that logged model."""
    from sklearn.linear_model import LinearRegression, Ridge

    rows = _pin_holdout(local_store)
    first = _log_model_alone(Ridge(alpha=1.0), rows)
    assert _register(first) == "1"
    code, verdict = gate("promote", "--version", "1")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert verdict["candidate_model_id"] == first and verdict["candidate_run_id"] is None

    worse = _log_model_alone(Ridge(alpha=1000.0), rows)
    assert _register(worse) == "2"
    code, verdict = gate("promote", "--version", "2")
    assert code == 1 and verdict["status"] == "blocked" and verdict["paired"]
    assert verdict["promoted_version"] is None and verdict["candidate_model_id"] == worse
    assert production() == "1"

    better = _log_model_alone(LinearRegression(), rows)
    assert _register(better) == "3"
    code, verdict = gate("promote", "--version", "3")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "passed", "3")
    assert verdict["champion_verified"] is True and production() == "3"
    # the version itself was promoted: no new one registered for its model
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 3

    # --against vN of such a version compares with its logged model
    code, verdict = gate("check", "--model-id", worse, "--against", "v3")
    assert code == 1 and verdict["champion_found_by"] == "version" and verdict["paired"]

    # forced past the gate, with a reason, as for a run's version
    code, verdict = gate("promote", "--version", "2", "--force", "--reason", "rollout test")
    assert (code, verdict["promoted_version"], verdict["forced"]) == (0, "2", True)
    assert production() == "2"


def test_promote_version_with_neither_run_nor_logged_model_is_one_line(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client().create_registered_model(MODEL)
    client().create_model_version(MODEL, source=str(local_store / "somewhere"))
    capsys.readouterr()
    assert main(["promote", "--version", "1"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"model '{MODEL}' version 1 has no run and no logged model" in line
    assert "--model-id" in line and production() is None


def production() -> str | None:
    aliases = client().get_registered_model(MODEL).aliases
    return str(aliases["production"]) if "production" in aliases else None


# -- the composite action: the model name from the config, --new-model ------------------

def _action(tmp: Path, **inputs: str) -> tuple[int, str]:
    """The action's own "Run the gate" script, as the runner runs it (bash -eo pipefail),
    with the inputs given and the rest at their defaults."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "Run the gate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    for key, spec in action["inputs"].items():
        given = inputs.get(key.replace("-", "_"), str(spec.get("default", "")))
        env[f"GATE_{key.upper().replace('-', '_')}"] = given
    output = tmp / "github_output"
    env.update(GATE_ACTION_PATH=str(ROOT), GITHUB_OUTPUT=str(output),
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                           step["run"]], env=env, text=True, capture_output=True,
                          timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_the_action_takes_the_model_name_from_the_config(local_store: Path) -> None:
    """promote and rollback through the action with no model-name: gate.toml's."""
    first = train("--n-estimators", "30")
    better = train("--n-estimators", "50", "--max-depth", "4")
    assert _action(local_store, command="check", run_id=first, promote="true")[0] == 0
    code, out = _action(local_store, command="promote", run_id=better)
    assert code == 0 and production() == "2", out
    code, out = _action(local_store, command="rollback", reason="latency")
    assert code == 0 and production() == "1", out
    code, out = _action(local_store, command="promote", version="2")
    assert code == 0 and production() == "2", out

    code, out = _action(local_store, command="check", run_id=better, model_name=NEW,
                        promote="true")
    assert code == 2 and REFUSED in out and registered() == [MODEL]
    code, out = _action(local_store, command="check", run_id=better, model_name=NEW,
                        promote="true", new_model="true")
    assert code == 0 and registered() == [MODEL, NEW], out
