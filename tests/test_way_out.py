"""One way out: every command's output goes through the same destinations, the verdict
JSON is written on every exit (errors too) and valid against docs/verdict.schema.json,
and every error line, `gate`'s and `gate.commands.ci`'s, is one redacted line."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mlflow import MlflowClient

from gate.commands import ci
from gate.commands.cli import main
from gate.report.markdown import render_skipped
from tests.conftest import store_rows_toml
from tests.conftest import train
from tests.servers import free_port
from tests.test_github import parse_outputs

ROOT = Path(__file__).resolve().parent.parent
MODEL = "diabetes-regressor"
WORSE = ("--drop-columns", "bmi,s5")
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")
SECRET = "mlflow-pass-123"
OUTPUT_KEYS = ["verdict", "passed", "candidate_run_id", "champion_version", "promoted_version",
               "failed_metrics"]


def valid(path: str | Path) -> dict[str, Any]:
    """The verdict document at `path`, checked against the published schema."""
    schema = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())
    document = json.loads(Path(path).read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    return document


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_the_schema_is_a_draft_2020_12_schema() -> None:
    schema = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"passed", "status", "candidate_run_id", "champion_version", "promoted_version",
            "metrics"} <= set(schema["required"])
    assert schema["properties"]["status"]["enum"] == ["passed", "blocked", "first_model",
                                                      "error"]
    assert {"name", "champion", "candidate", "delta", "status"} <= set(
        schema["$defs"]["metric"]["required"])


# -- the verdict document, on every exit ------------------------------------------------

def test_first_model_blocked_and_passed_documents_are_valid(local_store: Path) -> None:
    assert main(["check", "--run-id", train(), "--promote", "--json", "first.json"]) == 0
    first = valid("first.json")
    assert (first["status"], first["exit_code"], first["error"]) == ("first_model", 0, None)

    worse = train(*WORSE)
    assert main(["check", "--run-id", worse, "--json", "blocked.json"]) == 1
    blocked = valid("blocked.json")
    assert (blocked["status"], blocked["exit_code"], blocked["passed"]) == ("blocked", 1, False)
    assert blocked["candidate_run_id"] == worse and blocked["metrics"]

    assert main(["check", "--run-id", train(*BETTER), "--promote", "--json", "p.json"]) == 0
    passed = valid("p.json")
    assert (passed["status"], passed["promoted_version"], passed["champion_version"]) == \
        ("passed", "2", "1")


def test_a_metric_that_cannot_be_judged_is_a_valid_error_document(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("gate.toml").write_text(Path("gate.toml").read_text() +
                                 '\n[metrics.mape]\ndirection = "lower"\n')
    run_id = train()
    assert main(["check", "--run-id", run_id, "--json", "v.json"]) == 2
    document = valid("v.json")
    assert (document["status"], document["exit_code"]) == ("error", 2)
    assert document["error"] == "mape: required metric missing from the candidate run"
    assert one_line(capsys.readouterr().err) == "gate: error: " + document["error"]


@pytest.mark.parametrize("argv, code, fragment", [
    (["check", "--run-id", "0" * 32], 2, "not found"),
    (["check", "--run-id", "x", "--config", "missing.toml"], 2, "config file not found"),
    (["promote", "--model-name", MODEL, "--version", "9"], 2, "version 9"),
    (["check", "--run-id"], 2, "expected one argument"),            # a usage error
])
def test_an_error_exit_writes_a_valid_error_document(
        local_store: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
        fragment: str) -> None:
    argv = [*argv[:1], "--json", "v.json", *argv[1:]]
    if "expected one argument" in fragment:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == code
    else:
        assert main(argv) == code
    err = one_line(capsys.readouterr().err)
    document = valid("v.json")
    assert (document["passed"], document["status"], document["exit_code"]) == \
        (False, "error", code)
    assert fragment in document["error"] and err.startswith("gate: error: ")
    assert document["error"] in err
    assert document["champion_version"] is None and document["promoted_version"] is None
    if argv[0] == "check" and argv[-1] not in ("--run-id",):
        assert document["candidate_run_id"] == argv[argv.index("--run-id") + 1]


def test_a_usage_error_is_redacted_and_still_a_system_exit(
        local_store: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    with pytest.raises(SystemExit) as exited:
        main(["check", "--run-id", "r1", "--json", "v.json", "--pr", SECRET])
    assert exited.value.code == 2
    err = one_line(capsys.readouterr().err)
    assert "invalid int value: '***'" in err and SECRET not in err
    assert valid("v.json")["error"] in err


def test_a_forced_promotion_says_exit_0_over_a_blocked_verdict(local_store: Path) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    worse = train(*WORSE)
    assert main(["promote", "--model-name", MODEL, "--run-id", worse, "--force", "--reason",
                 "hotfix", "--json", "v.json"]) == 0
    document = valid("v.json")
    assert (document["status"], document["exit_code"], document["forced"]) == \
        ("blocked", 0, True)
    assert document["promoted_version"] == "2"


def test_an_unreachable_server_writes_a_redacted_error_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main(["check", "--run-id", "0" * 32, "--json", "v.json"]) == 3
    err = one_line(capsys.readouterr().err)
    document = valid("v.json")
    assert (document["status"], document["exit_code"]) == ("error", 3)
    assert document["candidate_run_id"] == "0" * 32 and document["error"] in err
    assert SECRET not in Path("v.json").read_text() and SECRET not in err
    assert "alice" not in document["error"]


def test_an_internal_error_writes_an_error_document(
        local_store: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*_: object) -> int:
        raise RuntimeError(f"bad state near {SECRET}")

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    monkeypatch.setattr("gate.commands.cli._dispatch", boom)
    assert main(["check", "--run-id", "r1", "--json", "v.json"]) == 3
    err = one_line(capsys.readouterr().err)
    document = valid("v.json")
    assert document["exit_code"] == 3 and document["error"].startswith(
        "internal error: RuntimeError: bad state near ***")
    assert SECRET not in err and SECRET not in Path("v.json").read_text()


def test_an_unwritable_json_path_keeps_the_preflight_error(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("folder").mkdir()
    assert main(["check", "--run-id", "0" * 32, "--json", "folder"]) == 2
    assert "--json folder: cannot write" in one_line(capsys.readouterr().err)
    assert Path("folder").is_dir()


def test_status_json_is_not_a_verdict_and_no_error_document_is_written(
        local_store: Path) -> None:
    assert main(["status", "--model-name", "no-such-model", "--json", "s.json"]) == 2
    assert not Path("s.json").exists()


# -- skip, rollback, status through the destinations ------------------------------------

@pytest.fixture
def runner(local_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's files, as GitHub Actions sets them."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(local_store / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(local_store / "summary.md"))
    return local_store


def test_skip_writes_the_summary_outputs_and_notice(runner: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["skip", "--reason", "fork PR: no secrets", "--next", "Ask."]) == 0
    markdown = render_skipped("fork PR: no secrets", "model", "Ask.")
    out = capsys.readouterr().out
    assert out == markdown + "::notice title=model gate::Model gate skipped: fork PR: " \
        "no secrets\n"
    assert Path("summary.md").read_text() == markdown
    outputs = parse_outputs(Path("output").read_text())
    assert list(outputs) == OUTPUT_KEYS
    assert outputs == {"verdict": "skipped", "passed": "false", "candidate_run_id": "",
                       "champion_version": "", "promoted_version": "", "failed_metrics": ""}


def test_skip_with_a_summary_flag_writes_there(runner: Path) -> None:
    assert main(["skip", "--reason", "docs only", "--summary", "mine.md"]) == 0
    assert "Skipped" in Path("mine.md").read_text() and not Path("summary.md").exists()


def test_rollback_and_status_outputs(runner: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    assert main(["check", "--run-id", train(*BETTER), "--promote"]) == 0
    Path("output").unlink()
    Path("summary.md").unlink()
    capsys.readouterr()

    assert main(["rollback", "--model-name", MODEL, "--reason", "latency"]) == 0
    assert capsys.readouterr().out == \
        f"Rolled back {MODEL}: Production (@production) moved from v2 to v1\n"
    outputs = parse_outputs(Path("output").read_text())
    assert list(outputs) == OUTPUT_KEYS
    assert outputs == {"verdict": "rolled_back", "passed": "true", "candidate_run_id": "",
                       "champion_version": "2", "promoted_version": "1", "failed_metrics": ""}
    assert Path("summary.md").read_text() == \
        f"Rolled back `{MODEL}`: Production (`@production`) moved from v2 to v1\n"

    Path("output").unlink()
    Path("summary.md").unlink()
    assert main(["status", "--model-name", MODEL, "--json", "status.json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Model {MODEL}: Production (@production) is v1\n\nversion")
    status = json.loads(Path("status.json").read_text())
    assert set(status) == {"model_name", "champion_version", "versions"}
    assert status["champion_version"] == "1" and len(status["versions"]) == 2
    # a terminal table: nothing for the job summary, no step outputs
    assert not Path("output").exists() and not Path("summary.md").exists()


def test_rollback_with_an_unwritable_output_moves_nothing(
        runner: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    assert main(["check", "--run-id", train(*BETTER), "--promote"]) == 0
    Path("folder").mkdir()
    monkeypatch.setenv("GITHUB_OUTPUT", str(runner / "folder"))
    capsys.readouterr()
    assert main(["rollback", "--model-name", MODEL]) == 3
    assert "$GITHUB_OUTPUT" in one_line(capsys.readouterr().err)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    assert str(client.get_registered_model(MODEL).aliases["production"]) == "2"


# -- gate.commands.ci: the same floor, the same redaction --------------------------------

def _boom(*_: object) -> dict[str, str]:
    raise ZeroDivisionError(f"division by zero near {SECRET}")


@pytest.mark.parametrize("debug", [False, True])
def test_ci_internal_error_is_exit_3_and_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        debug: bool) -> None:
    monkeypatch.setitem(ci.COMMANDS, "changed", _boom)
    env = {"GITHUB_OUTPUT": str(tmp_path / "output"), "MLFLOW_TRACKING_PASSWORD": SECRET}
    argv = ["changed", "--pr", "1", "--paths", "gate/**"]
    assert ci.main(["--debug", *argv] if debug else argv, env) == 3
    err = capsys.readouterr().err
    assert "gate: error: internal error: ZeroDivisionError: division by zero near *** " \
           "(re-run with --debug or GATE_DEBUG=1" in err
    assert SECRET not in err.splitlines()[-1]
    if debug:
        assert "Traceback" in err
    else:
        one_line(err)
    assert not (tmp_path / "output").exists()


def test_ci_error_lines_never_show_a_secret(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "output"), "MLFLOW_TRACKING_PASSWORD": SECRET,
           "GITHUB_TOKEN": "ghs_" + "t" * 36}
    # the run id is quoted back in the error: here it is the password itself
    assert ci.main(["tag-run", "--run-id", SECRET, "--commit", "c" * 40], env) == 2
    err = one_line(capsys.readouterr().err)
    assert err == "gate: error: --run-id '***' is not an MLflow run id"
    assert ci.main(["tag-run", "--run-id", env["GITHUB_TOKEN"], "--commit", "c" * 40],
                   env) == 2
    assert "ghs_" not in capsys.readouterr().err


def test_ci_outputs_go_to_the_runner_and_the_log(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "output")}
    assert ci.main(["changed", "--pr", "1", "--paths", "# only a comment\n"], env) == 0
    assert capsys.readouterr().out == \
        "model: true\nreason: no paths filter: every change runs the model\n"
    assert parse_outputs((tmp_path / "output").read_text()) == {
        "model": "true", "reason": "no paths filter: every change runs the model"}


def test_a_secret_in_any_text_is_redacted_before_every_destination(
        runner: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Text a command was given (here a skip reason quoting a credential) passes the one
    redaction in front of the destinations: log, job summary and step outputs alike."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    assert main(["skip", "--reason", f"server said: bad password {SECRET}",
                 "--next", f"retry with {SECRET}"]) == 0
    out = capsys.readouterr().out
    written = out + Path("summary.md").read_text() + Path("output").read_text()
    assert SECRET not in written.replace(f"::add-mask::{SECRET}", "")
    assert "bad password ***" in Path("summary.md").read_text()
