"""The hardening list (issue 14): every hostile or broken input ends as one line on
stderr with its documented exit code, and nothing is promoted or lost on the way."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import _thread
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gate.core import config as config_mod
from gate.mlflowstore import promotion as promotion_mod
from gate.commands.cli import main
from gate.core.redaction import redact_uri
from tests.conftest import store_rows_toml, train
from tests.servers import free_port

MODEL = "diabetes-regressor"
WORSE = ("--drop-columns", "bmi,s5")
BASE_TOML = store_rows_toml()


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def one_line(err: str) -> str:
    err = err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def aliases(name: str = MODEL) -> dict[str, str]:
    return {k: str(v) for k, v in client().get_registered_model(name).aliases.items()}


# -- config ----------------------------------------------------------------------

def with_metric_line(line: str) -> str:
    return BASE_TOML.replace('[metrics.rmse]\ndirection = "lower"\n',
                             f'[metrics.rmse]\ndirection = "lower"\n{line}\n')


@pytest.mark.parametrize("text, fragment", [
    (BASE_TOML.encode() + b"\n# caf\xe9\n", "not UTF-8 text"),
    (BASE_TOML.replace("seed = 0", "seed = -1"), "compare.seed must be between 0"),
    (BASE_TOML.replace("seed = 0", "seed = " + "9" * 400), "compare.seed must be between 0"),
    (with_metric_line("tolerance = " + "9" * 400), "tolerance must be a finite number"),
    (BASE_TOML.replace("max = 70.0", "max = " + "9" * 400), "max must be a finite number"),
    (BASE_TOML.replace("min = 0.2", "min = -" + "9" * 400), "min must be a finite number"),
    (BASE_TOML.replace("confidence = 0.95", "confidence = " + "9" * 400),
     "confidence must be a finite number"),
    (BASE_TOML + "\nx = " + "9" * 5000 + "\n", "not valid TOML"),
    (BASE_TOML + "\nx = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    (BASE_TOML.replace('alias = "production"', 'alias = "production"\ntrusted_types = '
                       + "[" * 300 + "]" * 300), "model.trusted_types must be"),
    (BASE_TOML.replace('alias = "production"', 'alias = "production"\n'
                       'on_missing_champion = "pass"'), "model.on_missing_champion must be"),
])
def test_bad_config_is_exit_2_with_one_short_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        text: str | bytes, fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "gate.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["check", "--run-id", "x"]) == 2
    err = one_line(capsys.readouterr().err)
    assert fragment in err and len(err) < 300


def test_numbers_load_as_floats() -> None:
    cfg = config_mod.parse(with_metric_line("tolerance = " + "9" * 300))
    rule = cfg.metrics[0]
    assert isinstance(rule.tolerance, float) and rule.allowance(1.0) == rule.tolerance


# -- hostile version tags ----------------------------------------------------------

@pytest.mark.parametrize("tag", [
    '{"rmse": ' + "9" * 400 + "}",
    '{"rmse": ' + "9" * 5000 + "}",
    "[" * 3000 + "]" * 3000,
    '{"rmse": ' + "[" * 3000 + "]" * 3000 + "}",
    '{"rmse": true, "mae": "1", "r2": NaN}',
])
def test_hostile_gate_metrics_tag_breaks_no_later_check_or_status(
        local_store: Path, capsys: pytest.CaptureFixture, tag: str) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    client().set_model_version_tag(MODEL, "1", "gate.metrics", tag)
    capsys.readouterr()
    assert main(["check", "--run-id", train(*WORSE), "--json", "v.json"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["status", "--model-name", MODEL, "--json", "status.json"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    row = json.loads(Path("status.json").read_text())["versions"][0]
    assert row["rmse"] == "-"


# -- outputs are checked before anything is registered ----------------------------------

def test_status_json_to_a_full_device_is_exit_2(local_store: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    capsys.readouterr()
    assert main(["status", "--model-name", MODEL, "--json", "/dev/full"]) == 2
    assert "--json /dev/full: cannot write: No space left on device" in \
        one_line(capsys.readouterr().err)


@pytest.mark.parametrize("flags, env, code, fragment", [
    (["--json", "/dev/full"], {}, 2, "--json /dev/full: cannot write"),
    (["--summary", "."], {}, 2, "--summary .: cannot write"),
    (["--json", "missing/dir/v.json"], {}, 2, "--json missing/dir/v.json: cannot write"),
    ([], {"GITHUB_OUTPUT": "."}, 3, "$GITHUB_OUTPUT .: cannot write"),
    ([], {"GITHUB_STEP_SUMMARY": "/dev/full"}, 3, "$GITHUB_STEP_SUMMARY /dev/full"),
])
def test_unwritable_output_fails_before_anything_is_registered(
        local_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        flags: list[str], env: dict[str, str], code: int, fragment: str) -> None:
    run_id = train()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["check", "--run-id", run_id, "--promote", *flags]) == code
    assert fragment in one_line(capsys.readouterr().err)
    assert client().search_registered_models() == []
    assert not Path("missing").exists()


def test_the_probe_leaves_no_file_behind(local_store: Path) -> None:
    assert main(["check", "--run-id", train(), "--json", "v.json"]) == 0
    assert json.loads(Path("v.json").read_text())["status"] == "first_model"


# -- the catch-all ---------------------------------------------------------------

def _boom(*_: object) -> int:
    return 1 // 0


@pytest.mark.parametrize("debug_flag, debug_env", [(None, None), ("before", None),
                                                   ("after", None), (None, "1")])
def test_an_internal_error_is_exit_3_and_a_traceback_only_on_request(
        local_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        debug_flag: str | None, debug_env: str | None) -> None:
    # a bug stands in for any unexpected exception: the handler is under test
    monkeypatch.setattr("gate.commands.cli._dispatch", _boom)
    if debug_env:
        monkeypatch.setenv("GATE_DEBUG", debug_env)
    argv = ["status", "--model-name", MODEL]
    if debug_flag == "before":
        argv.insert(0, "--debug")
    elif debug_flag == "after":
        argv.append("--debug")
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "gate: error: internal error: ZeroDivisionError: integer division or modulo " \
           "by zero (re-run with --debug or GATE_DEBUG=1" in err
    if debug_flag or debug_env:
        assert "Traceback" in err
    else:
        one_line(err)


def test_long_inputs_are_cut_in_error_lines(local_store: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--run-id", "a" * 10_000]) == 2
    err = one_line(capsys.readouterr().err)
    assert len(err) < 700 and "(10000 characters)" in err
    with pytest.raises(SystemExit):
        main(["check", "--run-id", "x", "--pr", "9" * 10_000])
    assert len(one_line(capsys.readouterr().err)) < 800


def _wait_for_mapping(proc: subprocess.Popen, needle: str, timeout: float = 30) -> None:
    """Until the child has mapped a shared library whose path contains `needle`: a
    point inside its imports, whatever the machine's speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if needle in Path(f"/proc/{proc.pid}/maps").read_text():
                return
        except OSError:
            pass
        time.sleep(0.002)
    raise AssertionError(f"the gate never loaded {needle}")


@pytest.mark.parametrize("needle", ["_ssl", "pydantic_core"])   # gate.cli's, mlflow's imports
def test_ctrl_c_while_starting_is_one_line_and_exit_3(local_store: Path, needle: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gate", "status", "--model-name", MODEL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_mapping(proc, needle)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and one_line(err) == "gate: interrupted", err


# -- credentials ------------------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("http://u:p@ss@host:5000/x", "http://host:5000/x"),
    ("at 'http://u:p@s/s@host/api' failed", "at 'http://host/api' failed"),
    ("http://u:it's@host/a?q=@1", "http://host/a?q=@1"),
    ("https://host/api", "https://host/api"),
    ("sqlite:///a@b/mlruns.db", "sqlite:///a@b/mlruns.db"),
    ("postgresql://u:p%40w@db:5432/x", "postgresql://db:5432/x"),
])
def test_redaction_parses_the_authority_from_the_right(text: str, shown: str) -> None:
    assert redact_uri(text) == shown


def test_a_dead_server_with_an_at_sign_in_the_password_leaks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import train_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "gate.toml").write_text(BASE_TOML)
    monkeypatch.setenv("MLFLOW_TRACKING_URI",
                       f"http://alice:s3cr@t-pw@127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["check", "--run-id", "0" * 32]) == 3
    out, err = capsys.readouterr()
    assert "::add-mask::s3cr@t-pw" in out
    assert "s3cr" not in one_line(err) and "t-pw" not in err and "alice" not in err

    assert train_model.main(["--n-estimators", "5"]) == 3
    out, err = capsys.readouterr()
    assert "::add-mask::s3cr@t-pw" in out
    assert "s3cr" not in one_line(err) and "t-pw" not in err and "alice" not in err
    assert err.startswith("train_model: error: ")


# -- names with quotes --------------------------------------------------------------

NAMES = ["a'b", 'c"d', "e'f\"g", "h\\'i", "o'brien_%"]


def _quoted_names_flow(capsys: pytest.CaptureFixture) -> None:
    run_id = train()
    for name in NAMES:
        assert main(["check", "--run-id", run_id, "--model-name", name, "--promote",
                     "--new-model"]) == 0
        # re-promoting the same run finds its version instead of creating a second one
        assert main(["promote", "--model-name", name, "--run-id", run_id]) == 0
        capsys.readouterr()
        assert main(["status", "--model-name", name, "--json", "status.json"]) == 0
        status = json.loads(Path("status.json").read_text())
        assert status["champion_version"] == "1" and len(status["versions"]) == 1
        assert f"Model {name}: Production (@production) is v1" in capsys.readouterr().out
    # a LIKE search ('e_f_g') must not mix in a look-alike model's versions
    assert main(["check", "--run-id", run_id, "--model-name", "eXfYg", "--promote",
                 "--new-model"]) == 0
    assert main(["status", "--model-name", "e'f\"g", "--json", "status.json"]) == 0
    assert len(json.loads(Path("status.json").read_text())["versions"]) == 1


def test_names_with_quotes_on_a_local_store(local_store: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    _quoted_names_flow(capsys)


def test_names_with_quotes_on_a_real_server(mlflow_server: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gate.toml").write_text(BASE_TOML)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "quoted-names")
    _quoted_names_flow(capsys)


# -- champion loss ------------------------------------------------------------------

def test_deleted_champion_is_reported_and_first_model_by_default(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    client().delete_model_version(MODEL, "1")
    capsys.readouterr()
    assert main(["check", "--run-id", train("--seed", "7"), "--json", "v.json"]) == 0
    verdict = json.loads(Path("v.json").read_text())
    assert verdict["status"] == "first_model"
    assert verdict["champion_missing"].startswith(
        "Production had versions; the 'production' alias is gone")
    assert "Production had versions; the" in capsys.readouterr().out


def test_deleted_champion_blocks_when_configured_and_force_recovers(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    Path("gate.toml").write_text(BASE_TOML.replace(
        'alias = "production"', 'alias = "production"\non_missing_champion = "block"'))
    assert main(["check", "--run-id", train(), "--promote"]) == 0     # never had one
    client().delete_model_version(MODEL, "1")
    candidate = train("--seed", "7")     # within the absolute bounds: only the rule blocks
    assert main(["check", "--run-id", candidate, "--promote", "--json", "v.json",
                 "--summary", "summary.md"]) == 1
    assert "**Blocked**: Production had versions; the 'production' alias is gone" in \
        Path("summary.md").read_text()
    verdict = json.loads(Path("v.json").read_text())
    assert verdict["status"] == "blocked" and verdict["promoted_version"] is None
    assert "alias is gone" in verdict["blocked_reason"] and verdict["failed_metrics"] == []
    assert aliases() == {}
    assert main(["promote", "--model-name", MODEL, "--run-id", candidate, "--force",
                 "--reason", "v1 was deleted by mistake"]) == 0
    assert aliases() == {"production": "2"}


def test_champion_whose_run_was_garbage_collected_still_works(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    champion_run = train()
    assert main(["check", "--run-id", champion_run, "--promote"]) == 0
    client().delete_run(champion_run)
    gc = subprocess.run([sys.executable, "-m", "mlflow", "gc", "--backend-store-uri",
                         os.environ["MLFLOW_TRACKING_URI"], "--run-ids", champion_run],
                        capture_output=True, text=True, timeout=120)
    assert gc.returncode == 0, gc.stderr
    capsys.readouterr()
    worse = train(*WORSE)
    assert main(["check", "--run-id", worse, "--json", "v.json"]) == 1
    verdict = json.loads(Path("v.json").read_text())
    assert verdict["champion_version"] == "1" and "rmse" in verdict["failed_metrics"]
    assert any("no longer exists" in note for note in verdict["notes"])
    assert main(["promote", "--model-name", MODEL, "--run-id", worse, "--force",
                 "--reason", "replacing a champion whose run is gone"]) == 0
    assert aliases() == {"production": "2"}
    assert "Traceback" not in capsys.readouterr().err


# -- the promotion lease ------------------------------------------------------------

def test_ctrl_c_during_the_settle_releases_the_lease(
        local_store: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(promotion_mod, "LOCK_SETTLE", 5.0)
    run_id = train()
    watcher = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    stop = threading.Event()

    def interrupt_once_locked() -> None:
        while not stop.is_set():
            models = watcher.search_registered_models()
            if models and promotion_mod.LOCK_TAG in (models[0].tags or {}):
                _thread.interrupt_main()    # what Ctrl-C does to the main thread
                return
            time.sleep(0.05)

    thread = threading.Thread(target=interrupt_once_locked, daemon=True)
    thread.start()
    try:
        assert main(["check", "--run-id", run_id, "--promote"]) == 3
    finally:
        stop.set()
        thread.join()
    assert capsys.readouterr().err.strip().endswith("gate: interrupted")
    model = client().get_registered_model(MODEL)
    assert promotion_mod.LOCK_TAG not in model.tags and not model.aliases


def test_a_version_left_by_a_lost_race_is_tagged(local_store: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    # another promotion holds the lease
    client().set_registered_model_tag(MODEL, promotion_mod.LOCK_TAG,
                                      f"other:{int(time.time()) + 60}")
    assert main(["check", "--run-id", train("--seed", "7"), "--promote"]) == 3
    assert "another promotion" in one_line(capsys.readouterr().err)
    assert aliases() == {"production": "1"}
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["gate.status"] == "lost_race" and "gate.promoted_at" not in tags
    assert "another promotion" in tags["gate.lost_reason"]
    assert client().get_model_version(MODEL, "1").tags["gate.status"] == "first_model"
