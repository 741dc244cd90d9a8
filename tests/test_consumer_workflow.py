"""The gate adopted from another repository: examples/consumer (its own trainer, no import
of the gate, a gate.toml with a pinned eval set) calls
`OWNER/model-gate/.github/workflows/model-gate.yml@v1`, run by tests/workflow_runner.py as a
separate repository: the remote `uses:` resolves to a copy of this repository, and the gate
is installed from that copy, at that ref, never from the consumer's working tree."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import gate
from tests.fake_github import FakeGitHub
from tests.test_workflows import _copy_repo, runner_python
from tests.verdicts import read_verdict
from tests.workflow_runner import (RunResult, WorkflowRunner, dispatch_event,
                                   pull_request_event, push_event, ref_sha)

ROOT = Path(__file__).resolve().parent.parent
CONSUMER = ROOT / "examples" / "consumer"
REPO = "acme/churn-model"
GATE_REPO = "OWNER/model-gate"
MODEL = "consumer-classifier"
CALL = f"{GATE_REPO}/.github/workflows/model-gate.yml@v1"


@dataclass(frozen=True)
class Adoption:
    workspace: Path
    main: RunResult
    pr: RunResult
    manual: RunResult
    production: list[str]      # after main, after the PR, after the manual run
    comments: int


def _production(server: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server, registry_uri=server)
    return str(client.get_model_version_by_alias(MODEL, "production").version)


@pytest.fixture(scope="module")
def adoption(mlflow_server: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adoption]:
    base = tmp_path_factory.mktemp("consumer")
    gate_tree = _copy_repo(base / "model-gate-v1")
    workspace = base / "churn-model"
    shutil.copytree(CONSUMER, workspace)
    python_bin = runner_python(base / "runner-python")

    def runner(github: FakeGitHub, train_args: str = "") -> WorkflowRunner:
        return WorkflowRunner(
            workspace / ".github" / "workflows" / "model.yml", workspace,
            python_bin=python_bin, secrets={"MLFLOW_TRACKING_URI": mlflow_server},
            environment_secrets={"production": {"MLFLOW_TRACKING_USERNAME": "promoter"}},
            variables={"TRAIN_ARGS": train_args}, api_url=github.url, token=github.token,
            timeout=300, repos={GATE_REPO: {"v1": gate_tree}},
            artifact_dir=base / "artifacts")

    with FakeGitHub() as github:
        with runner(github) as r:
            main = r.run("push", push_event(REPO))
        after_main = _production(mlflow_server)
        github.add_pull(REPO, 3, head_sha="1" * 40, files=["train.py"])
        with runner(github, "--worse") as r:
            pr = r.run("pull_request", pull_request_event(3, REPO))
        after_pr = _production(mlflow_server)
        with runner(github) as r:
            manual = r.run("workflow_dispatch", dispatch_event(REPO, {}))
        after_manual = _production(mlflow_server)
        yield Adoption(workspace, main, pr, manual, [after_main, after_pr, after_manual],
                       len(github.comments(REPO, 3)))


def test_the_consumer_holds_nothing_of_the_gate() -> None:
    files = {p.relative_to(CONSUMER).as_posix() for p in CONSUMER.rglob("*") if p.is_file()}
    assert not any(f.startswith("gate/") for f in files)
    assert "action.yml" not in files and "pyproject.toml" not in files
    ours = (ROOT / "requirements.txt").read_text()
    assert (CONSUMER / "requirements.txt").read_text() != ours
    assert "import gate" not in (CONSUMER / "train.py").read_text()
    assert "from gate" not in (CONSUMER / "train.py").read_text()
    doc = yaml.safe_load((CONSUMER / ".github" / "workflows" / "model.yml").read_text())
    assert [job["uses"] for job in doc["jobs"].values()] == [CALL]


def test_main_installs_the_pinned_gate_and_promotes_the_first_model(
        adoption: Adoption) -> None:
    gate_job = adoption.main.jobs["model/gate"]
    assert gate_job.conclusion == "success", gate_job.log[-3000:]
    # the consumer's own commit for its config; the gate from the pinned ref, apart
    assert gate_job.checkouts[0] == (".", "3" * 40)
    assert gate_job.foreign_checkouts == [(".model-gate", GATE_REPO, ref_sha(GATE_REPO, "v1"))]
    assert f"gate {gate.__version__}" in gate_job.log
    assert gate_job.step("Gate").outputs["verdict"] == "first_model"
    assert gate_job.environment == "production"
    assert adoption.production[0] == "1"


def test_a_pull_request_with_a_worse_model_is_blocked_and_commented(
        adoption: Adoption) -> None:
    gate_job = adoption.pr.jobs["model/gate"]
    assert gate_job.conclusion == "failure"
    assert gate_job.step("Gate").outputs["verdict"] == "blocked"
    assert gate_job.environment is None
    assert adoption.production[1] == "1" and adoption.comments == 1
    verdict = read_verdict(adoption.pr.artifacts[f"model-gate-{MODEL}"] / "verdict.json",
                           gate_job.log)
    assert verdict["status"] == "blocked"


def test_a_manual_run_from_main_gates_and_promotes(adoption: Adoption) -> None:
    gate_job = adoption.manual.jobs["model/gate"]
    assert gate_job.conclusion == "success", gate_job.log[-3000:]
    assert gate_job.step("Gate").outputs["verdict"] == "passed"
    assert adoption.production[2] == "2"


def test_the_trainer_never_sees_the_gate(adoption: Adoption) -> None:
    for run in (adoption.main, adoption.pr):
        train = run.jobs["model/train"]
        assert train.conclusion == "success" and train.foreign_checkouts == []
        assert train.permissions == {}
