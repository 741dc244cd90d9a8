"""The team's webhook: one Slack-format message per verdict of check, promote, rollback
and skip, with no secret and no live mention or link from run text; a dead, slow or
failing hook changes neither the exit code nor the promotion."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest
from mlflow import MlflowClient

from gate.core import config as config_mod
from gate.core.redaction import scrub, secrets_in
from gate.delivery import destinations, webhook
from gate.delivery.outputs import Message, plain
from gate.errors import ConfigError
from gate.commands.cli import main
from tests.conftest import train
from tests.listener import Listener, listening
from tests.servers import free_port

MODEL = "diabetes-regressor"
WORSE = ("--drop-columns", "bmi,s5")
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")
SECRET = "mlflow-pass-123"
TOKEN = "ghs_" + "t" * 36
HOSTILE = "<!channel> @here <http://evil.example|click> <@U024BE7LH> &amp; `x`"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    monkeypatch.setattr(destinations, "WEBHOOK_RETRY_PAUSE", 0.0)
    with listening("/services/T000/B000/hooksecretpart") as listener:
        monkeypatch.setenv("GATE_WEBHOOK_URL", listener.url)
        yield listener


def texts(listener: Listener) -> list[str]:
    return [body["text"] for body in listener.bodies]


def alias(name: str = MODEL) -> str:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    return str(client.get_registered_model(name).aliases["production"])


def inert(text: str) -> None:
    """No Slack control sequence, mention or link from run text survives."""
    assert "<!" not in text and "<@" not in text and "<http://evil" not in text
    assert "@here" not in text and "@channel" not in text


# -- the messages ----------------------------------------------------------------------

def test_one_message_for_each_verdict(local_store: Path, hook: Listener) -> None:
    first = train()
    assert main(["check", "--run-id", first]) == 0
    assert main(["check", "--run-id", first, "--promote"]) == 0
    worse = train(*WORSE)
    assert main(["check", "--run-id", worse]) == 1
    better = train(*BETTER)
    assert main(["check", "--run-id", better]) == 0
    assert main(["promote", "--model-name", MODEL, "--run-id", better]) == 0
    assert main(["rollback", "--model-name", MODEL, "--reason", "latency"]) == 0
    assert main(["skip", "--reason", "docs only", "--model-name", MODEL]) == 0
    assert main(["status", "--model-name", MODEL]) == 0          # not a verdict: silent
    assert main(["promote", "--model-name", MODEL, "--run-id", worse, "--force",
                 "--reason", "hotfix"]) == 0
    sent = texts(hook)
    assert len(sent) == 8, sent
    first_model, promoted, blocked, passed, promoted2, rolled, skipped, forced = sent
    assert first_model.startswith(f":white_check_mark: *Model gate*: `{MODEL}` *first model* "
                                  "(no Production version yet)")
    assert "Run: `" in first_model and f"(`{first}`)" in first_model
    assert "*promoted*: v1 is Production (the first Production version)" in promoted
    assert "*blocked* against Production v1" in blocked and "Failed: `" in blocked
    assert "*passed* against Production v1" in passed and "Failed" not in passed
    assert "*promoted*: v2 is Production (replaces v1)" in promoted2
    assert rolled == (f":rewind: *Model gate*: `{MODEL}` *rolled back*: Production moved "
                      "from v2 back to v1\nReason: `latency`")
    assert skipped == f":fast_forward: *Model gate*: `{MODEL}` *skipped*\nReason: `docs only`"
    assert "*promoted*: v3 is Production (replaces v1)" in forced
    assert forced.endswith("Forced over a blocked verdict") and "Failed: `" in forced
    for body in hook.bodies:
        assert set(body) == {"text", "unfurl_links", "unfurl_media"}
    assert {r.headers["content-type"] for r in hook.requests} == {"application/json"}


def test_the_failed_metrics_are_named(local_store: Path, hook: Listener) -> None:
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    assert main(["check", "--run-id", train(*WORSE), "--json", "v.json"]) == 1
    failed = json.loads(Path("v.json").read_text())["failed_metrics"]
    assert failed
    assert texts(hook)[-1].splitlines()[2] == "Failed: " + ", ".join(f"`{m}`" for m in failed)


def test_an_error_verdict_and_an_error_exit_are_announced(local_store: Path,
                                                          hook: Listener) -> None:
    Path("gate.toml").write_text(Path("gate.toml").read_text() +
                                 '\n[metrics.mape]\ndirection = "lower"\n')
    assert main(["check", "--run-id", train()]) == 2
    assert main(["check", "--run-id", "0" * 32]) == 2       # no verdict at all
    judged, unknown = texts(hook)
    assert judged.startswith(f":warning: *Model gate*: `{MODEL}` *error*")
    assert "Error: `mape: required metric missing from the candidate run`" in judged
    assert unknown.startswith(":warning: *Model gate*: `model` *error*")
    assert f"Run: `{'0' * 32}`" in unknown and "not found" in unknown


def test_a_config_can_name_another_variable(local_store: Path, hook: Listener,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_WEBHOOK_URL")
    monkeypatch.setenv("TEAM_SLACK_WEBHOOK", hook.url)
    Path("gate.toml").write_text(Path("gate.toml").read_text() +
                                 '\n[notify]\nwebhook_url_env = "TEAM_SLACK_WEBHOOK"\n')
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    assert main(["rollback", "--model-name", MODEL]) == 2        # no previous champion
    promoted, error = texts(hook)
    assert "*promoted*" in promoted and "*error*" in error and "records no previous" in error


def test_the_notify_section_is_validated() -> None:
    base = '[metrics.rmse]\ndirection = "lower"\n'
    assert config_mod.parse(base).notify.webhook_url_env == "GATE_WEBHOOK_URL"
    assert config_mod.parse(base + '[notify]\nwebhook_url_env = "HOOK_2"\n'
                            ).notify.webhook_url_env == "HOOK_2"
    with pytest.raises(ConfigError, match="notify.webhook_url_env must name an environment"):
        config_mod.parse(base + '[notify]\nwebhook_url_env = "https://hooks.slack.com/x"\n')
    with pytest.raises(ConfigError, match="did you mean 'notify.webhook_url_env'"):
        config_mod.parse(base + '[notify]\nwebhook_url = "X"\n')


# -- what never reaches the channel ----------------------------------------------------

def test_hostile_run_text_is_escaped(local_store: Path, hook: Listener) -> None:
    assert main(["check", "--run-id", train("--run-name", HOSTILE), "--promote"]) == 0
    assert main(["skip", "--reason", HOSTILE, "--model-name", HOSTILE]) == 0
    for text in texts(hook):
        inert(text)
        assert "&lt;!channel&gt; @\u200dhere &lt;http://evil.example|click&gt; " \
               "&lt;@\u200dU024BE7LH&gt; &amp;amp; ˋxˋ" in text


def test_no_secret_in_any_body(local_store: Path, hook: Listener,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert main(["check", "--run-id", train("--run-name", f"run {SECRET}"), "--promote"]) == 0
    assert main(["check", "--run-id", train(*BETTER), "--promote"]) == 0
    assert main(["rollback", "--model-name", MODEL, "--reason", f"token {TOKEN}"]) == 0
    assert main(["skip", "--reason", f"bad password {SECRET} {hook.url}"]) == 0
    assert len(hook.requests) == 4
    raw = b"".join(r.raw for r in hook.requests).decode()
    assert SECRET not in raw and TOKEN not in raw and "hooksecretpart" not in raw
    assert "run ***" in raw and "token ***" in raw and "bad password *** ***" in raw
    captured = capsys.readouterr()
    assert "hooksecretpart" not in captured.out + captured.err


def test_the_webhook_url_is_a_secret_masked_like_the_others() -> None:
    url = "https://hooks.slack.com/services/T0/B0/abcdef"
    assert url in secrets_in({"GATE_WEBHOOK_URL": url})
    assert scrub(f"posting to {url} failed", {"GATE_WEBHOOK_URL": url}) == \
        "posting to *** failed"


def test_a_failed_promotion_is_an_error_not_a_pass() -> None:
    data = {"status": "passed", "model_name": "m", "candidate_run_id": "r",
            "champion_version": "1", "promoted_version": None, "failed_metrics": [],
            "error": "another promotion of 'm' won the race"}
    assert webhook.verdict_word(data) == "error"
    text = webhook.text(data, webhook.Links())
    assert "Error: `another promotion of 'm' won the race`" in text


def test_a_baseline_is_not_called_production() -> None:
    data = {"status": "passed", "model_name": "m", "candidate_run_id": "r",
            "champion_version": "", "champion_found_by": "run"}
    assert webhook.text(data, webhook.Links()).startswith(
        ":white_check_mark: *Model gate*: `m` *passed* against a baseline run")
    data.update(champion_version="3", champion_found_by="version")
    assert "*passed* against baseline v3" in webhook.text(data, webhook.Links())


def test_links_to_the_run_the_version_and_the_pull_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    environ = {"MLFLOW_TRACKING_URI": f"https://alice:{SECRET}@mlflow.example/root?x=1#f",
               "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "acme/models",
               "GITHUB_SERVER_URL": "https://github.example"}
    with listening() as hook:
        message = Message(plain(""), data={
            "status": "passed", "model_name": "a|b>c", "candidate_run_id": "r1" * 16,
            "candidate_run_name": "nice run", "champion_version": "1",
            "promoted_version": "2", "failed_metrics": []})
        destinations.Webhook(hook.url, None, environ).send(message)
        text = texts(hook)[0]
    ui = "https://mlflow.example/root"
    assert text.splitlines() == [
        f":rocket: *Model gate*: `a|b&gt;c` *promoted*: "
        f"<{ui}/#/models/a%7Cb%3Ec/versions/2|v2> is Production (replaces v1)",
        f"Run: `nice run` (<{ui}/#/runs/{'r1' * 16}|open in MLflow>)",
        "Pull request: <https://github.example/acme/models/pull/12|#12>"]
    assert "alice" not in text and SECRET not in text


# -- a dead webhook changes nothing ------------------------------------------------------

@pytest.mark.parametrize("fault", ["refused", "500 twice", "too slow", "404"])
def test_a_dead_webhook_keeps_the_exit_codes_and_the_promotion(
        local_store: Path, hook: Listener, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], fault: str) -> None:
    monkeypatch.setenv("GATE_WEBHOOK_TIMEOUT", "0.5")
    url = hook.url
    if fault == "refused":
        url = f"http://127.0.0.1:{free_port()}/services/hooksecretpart"
        monkeypatch.setenv("GATE_WEBHOOK_URL", url)
    faults = {"500 twice": [(500, 0.0)] * 4, "too slow": [(200, 1.5)] * 4,
              "404": [(404, 0.0)] * 2}
    hook.faults.extend(faults.get(fault, []))
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    assert alias() == "1"
    assert main(["check", "--run-id", train(*WORSE), "--promote"]) == 1
    assert alias() == "1"
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "webhook" in line]
    why = {"refused": "connection failed, tried twice", "500 twice": "HTTP 500, tried twice",
           "too slow": "no answer within 0.5 s, tried twice", "404": "HTTP 404"}[fault]
    assert warnings == [f"gate: warning: webhook not delivered ({why}); the verdict stands"] * 2
    assert "hooksecretpart" not in err and "127.0.0.1" not in err
    tries = {"refused": 0, "500 twice": 4, "too slow": 4, "404": 2}[fault]
    assert len(hook.requests) == tries


def test_one_retry_delivers_after_a_500(hook: Listener,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    hook.faults.append((500, 0.0))
    assert main(["skip", "--reason", "docs only"]) == 0
    assert len(hook.requests) == 2 and hook.bodies[0] == hook.bodies[1]
    assert "webhook" not in capsys.readouterr().err
