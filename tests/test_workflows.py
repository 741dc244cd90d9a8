"""The GitHub workflows, run for real on this machine: tests/workflow_runner.py executes
their steps with the environment GitHub would give, against a real `mlflow server` and
the local GitHub-like API. What is asserted is what a maintainer would see."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from gate.report.markdown import marker
from tests.fake_github import FakeGitHub
from tests.verdicts import read_verdict
from tests.workflow_runner import (Context, JobResult, RunResult, WorkflowError,
                                   WorkflowRunner, concurrency_outcome, dispatch_event,
                                   merge_group_event, pull_request_event, push_event)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PR_WORKFLOW = "model-gate-pr.yml"
MAIN_WORKFLOW = "model-gate-main.yml"
MANUAL_WORKFLOW = "model-gate-manual.yml"
REPO = "acme/model-gate"
MODEL = "diabetes-regressor"
EXPERIMENT = "model-gate"
PYTHON_BIN = Path(sys.executable).parent
# Repository secrets are the ci-pr user's; the production environment's are the
# promoter's. The test server has no auth, so these only have to stay out of sight.
PR_PASSWORD = "pr-Secret-Password-0451"
PROMOTER_PASSWORD = "promoter-Secret-Password-7782"
# Small forests keep each run short; the worse model is a single stump.
SEED_ARGS = ("--n-estimators", "3", "--max-depth", "2")
WORSE_ARGS = "--n-estimators 1 --max-depth 1"
BETTER_ARGS = "--n-estimators 5 --max-depth 3"
FILES = ("gate", "train_model.py", "gate.toml", "data", "requirements.txt", "action.yml", ".github",
         "tests", "bench", ".flake8", "pytest.ini", "pyproject.toml", "README.md", "LICENSE",
         "CHANGELOG.md", "scripts")
TEST_COMMAND = "python -m pytest -q -p no:cacheprovider tests/test_decide.py"
LINT_COMMAND = "python -m flake8 train_model.py"     # the whole tree costs CPU, not coverage
FORK_SHA = "5" * 40
HOSTILE_RUN_NAME = "worse##[stop-commands]gate-silenced"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def all_steps(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in doc:
        yield from doc["runs"]["steps"]
    for job in (doc.get("jobs") or {}).values():
        yield from job.get("steps") or []


def workflow_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


# --- the story: seed, PR (worse), fork PR, check-pr, push (better), rollback ------------

@dataclass
class Story:
    server: str
    github: FakeGitHub
    seed_version: str
    production_after_pr: str
    runs_before_fork: int
    runs_after_fork: int
    fork_comments: int
    pr_run: RunResult
    fork_run: RunResult
    check_pr_run: RunResult
    main_run: RunResult
    promoted_version: str
    rollback: JobResult
    production_after_rollback: str
    forced_without_reason: JobResult
    production_after_forced: str
    evil_ran: bool
    fork_trainer_wrote_env: bool
    workspace: Path
    python_bin: Path

    @property
    def pr(self) -> JobResult:
        return self.pr_run.jobs["model/gate"]

    @property
    def fork(self) -> JobResult:
        return self.fork_run.jobs["model/gate"]

    @property
    def check_pr(self) -> JobResult:
        return self.check_pr_run.jobs["check-pr/gate"]

    @property
    def main(self) -> JobResult:
        return self.main_run.jobs["model/gate"]


def _client(server: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server, registry_uri=server)


def _production(server: str) -> str:
    return str(_client(server).get_model_version_by_alias(MODEL, "production").version)


def _run_count(server: str) -> int:
    client = _client(server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def _seed(workspace: Path, server: str) -> str:
    """The champion, trained and promoted directly with the trainer and the gate."""
    import train_model
    from gate.commands.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server)
        mp.chdir(workspace)
        out = workspace.parent / "seed.json"
        assert train_model.main([*SEED_ARGS, "--json", str(out)]) == 0
        run_id = json.loads(out.read_text())["run_id"]
        assert main(["check", "--run-id", run_id, "--promote"]) == 0
    return _production(server)


def runner_python(target: Path) -> Path:
    """What setup-python gives a job here: a fresh venv the workflows install the gate
    into (never the shared one). It sees the shared venv's packages (a .pth), so the
    candidate's installs are already met; uv installs the gate's own from its cache."""
    subprocess.run([str(PYTHON_BIN / "uv"), "venv", "-q", "--python", sys.executable,
                    str(target)], check=True, timeout=120)
    purelib = subprocess.run([str(target / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    shared = [p for p in sys.path if p.endswith("site-packages")]
    (Path(purelib) / "shared-venv.pth").write_text("\n".join(shared) + "\n")
    return target / "bin"


def _runner(workspace: Path, name: str, github: FakeGitHub, server: str,
            train_args: str = "", trees: dict[str, Path] | None = None, *,
            python_bin: Path) -> WorkflowRunner:
    return WorkflowRunner(
        workspace / ".github" / "workflows" / name, workspace, python_bin=python_bin,
        secrets={"MLFLOW_TRACKING_URI": server, "MLFLOW_TRACKING_USERNAME": "ci-pr",
                 "MLFLOW_TRACKING_PASSWORD": PR_PASSWORD},
        environment_secrets={"production": {"MLFLOW_TRACKING_USERNAME": "ci-promoter",
                                            "MLFLOW_TRACKING_PASSWORD": PROMOTER_PASSWORD}},
        variables={"TRAIN_ARGS": train_args, "GATE_TEST_COMMAND": TEST_COMMAND,
                   "GATE_LINT_COMMAND": LINT_COMMAND},
        api_url=github.url, token=github.token, timeout=300, trees=trees,
        artifact_dir=workspace.parent / "artifacts")


def _only_job(result: Any) -> JobResult:
    assert result.triggered
    ran = result.ran
    assert len(ran) == 1, [job.job_id for job in ran]
    return ran[0]


def _copy_repo(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


# The fork's trainer under review tries everything a trainer can do to the job it runs in:
# loosen the thresholds, replace the gate and its action, plant BASH_ENV and PYTHONPATH for
# later steps. Then it trains the worse model as asked. None of it may reach the gate.
EVIL_TRAINER = r"""
import os
import pathlib
import subprocess
import sys

code = subprocess.call([sys.executable, "real_train_model.py", *sys.argv[1:]])
here = pathlib.Path.cwd()
evil = pathlib.Path(os.environ["RUNNER_TEMP"]).parent / "evil-ran"
loose = (here / "gate.toml").read_text().replace("tolerance_rel = 0.02", "tolerance_rel = 99.0")
(here / "gate.toml").write_text(loose)
(here / "gate" / "core" / "decide.py").write_text("raise SystemExit(0)\n")
(here / "evil.sh").write_text(f"touch {evil}\n")
with open(os.environ["GITHUB_ENV"], "a") as env:
    env.write(f"BASH_ENV={here / 'evil.sh'}\nPYTHONPATH={here}\n")
sys.exit(code)
"""


def _fork_tree(workspace: Path) -> Path:
    fork = _copy_repo(workspace.parent / "fork")
    (fork / "real_train_model.py").write_text((fork / "train_model.py").read_text())
    (fork / "train_model.py").write_text(EVIL_TRAINER)
    # the pull request also proposes looser thresholds through gate.toml
    toml = fork / "gate.toml"
    toml.write_text(toml.read_text().replace("max = 70.0", "max = 700.0"))
    return fork


@pytest.fixture(scope="module")
def story(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    workspace = _copy_repo(tmp_path_factory.mktemp("workflows") / "repo")
    fork_tree = _fork_tree(workspace)
    python_bin = runner_python(workspace.parent / "runner-python")
    server = mlflow_server
    with FakeGitHub() as github:
        seed_version = _seed(workspace, server)
        github.add_pull(REPO, 7, head_sha="1" * 40, files=["README.md", "train_model.py"])
        with _runner(workspace, PR_WORKFLOW, github, server,
                     f"{WORSE_ARGS} --run-name {HOSTILE_RUN_NAME}",
                     python_bin=python_bin) as runner:
            pr = runner.run("pull_request", pull_request_event(7, REPO), actor="contributor")
        after_pr = _production(server)

        before = _run_count(server)
        with _runner(workspace, PR_WORKFLOW, github, server, WORSE_ARGS,
                     python_bin=python_bin) as runner:
            event = pull_request_event(8, REPO, head_repo="stranger/model-gate",
                                       author="stranger", head_sha=FORK_SHA)
            fork = runner.run("pull_request", event, actor="stranger")
        after = _run_count(server)
        fork_comments = len(github.comments(REPO, 8))

        # A maintainer reviewed the fork's commit and gates it by hand.
        github.add_pull(REPO, 8, head_sha=FORK_SHA, head_ref="stranger-idea",
                        head_repo="stranger/model-gate", files=["train_model.py"])
        with _runner(workspace, MANUAL_WORKFLOW, github, server, WORSE_ARGS,
                     trees={FORK_SHA: fork_tree}, python_bin=python_bin) as runner:
            check_pr = runner.run("workflow_dispatch", dispatch_event(REPO, {}),
                                  inputs={"action": "check-pr", "pr": "8", "sha": FORK_SHA})
            assert check_pr.run_dir is not None
            evil_ran = (check_pr.run_dir / "evil-ran").exists()
            wrote_env = any("evil.sh" in p.read_text()
                            for p in check_pr.run_dir.glob("*.env"))

        with _runner(workspace, MAIN_WORKFLOW, github, server, BETTER_ARGS,
                     python_bin=python_bin) as runner:
            main = runner.run("push", push_event(REPO))
        promoted = _production(server)

        with _runner(workspace, MANUAL_WORKFLOW, github, server, python_bin=python_bin) as runner:
            rollback = _only_job(runner.run(
                "workflow_dispatch", dispatch_event(REPO, {}),
                inputs={"action": "rollback", "reason": "latency regression in serving"}))
        after_rollback = _production(server)

        with _runner(workspace, MANUAL_WORKFLOW, github, server, python_bin=python_bin) as runner:
            forced = _only_job(runner.run(
                "workflow_dispatch", dispatch_event(REPO, {}),
                inputs={"action": "promote", "version": promoted, "force": True,
                        "reason": "  "}))
        after_forced = _production(server)

        yield Story(server=server, github=github, seed_version=seed_version,
                    production_after_pr=after_pr, runs_before_fork=before,
                    runs_after_fork=after, fork_comments=fork_comments, pr_run=pr,
                    fork_run=fork, check_pr_run=check_pr, main_run=main,
                    promoted_version=promoted, rollback=rollback,
                    production_after_rollback=after_rollback,
                    forced_without_reason=forced, production_after_forced=after_forced,
                    evil_ran=evil_ran, fork_trainer_wrote_env=wrote_env,
                    workspace=workspace, python_bin=python_bin)


def _comments(story: Story, pr: int) -> list[dict[str, Any]]:
    return story.github.comments(REPO, pr)


def test_pr_with_a_worse_model_fails_the_check_and_comments_once(story: Story) -> None:
    run = story.pr_run
    assert [(j.job_id, j.conclusion) for j in run.ran] == [
        ("model/plan", "success"), ("model/lint", "success"), ("model/train", "success"),
        ("model/gate", "failure")]
    job = story.pr
    assert job.name == "model / gate"           # the check branch protection requires
    gate = job.step("Gate")
    assert gate.exit_code == 1, job.log[-3000:]      # the gate's own words when not
    assert gate.outputs["verdict"] == "blocked"
    assert gate.outputs["passed"] == "false"
    assert gate.outputs["failed-metrics"].split()
    assert "blocked" in job.summary.lower()
    comments = _comments(story, 7)
    assert len(comments) == 1
    assert "blocked" in comments[0]["body"].lower()
    assert any(a.level == "error" for a in job.annotations)
    # a pull request never registers or promotes
    assert gate.outputs["promoted-version"] == ""
    assert story.production_after_pr == story.seed_version
    assert run.jobs["model"].outputs["verdict"] == "blocked"


def test_lint_and_tests_run_before_training(story: Story) -> None:
    lint = story.pr_run.jobs["model/lint"]
    assert [s.name for s in lint.steps if s.outcome == "success"][-2:] == ["Lint", "Test"]
    assert "passed" in lint.log             # pytest's own summary line
    assert lint.permissions == {}
    assert "secrets." not in json.dumps(load(REUSABLE)["jobs"]["lint"])


def test_the_verdict_and_report_are_kept_as_an_artifact(story: Story) -> None:
    artifact = story.pr_run.artifacts[f"model-gate-{MODEL}"]
    verdict = read_verdict(artifact / "verdict.json", story.pr.log)
    assert verdict["status"] == "blocked" and verdict["candidate_run_id"]
    report = (artifact / "report.md").read_text()
    assert "blocked" in report.lower()
    assert report in story.pr.summary         # the job summary still has it


def test_run_text_cannot_issue_workflow_commands(story: Story) -> None:
    job = story.pr
    assert HOSTILE_RUN_NAME in _comments(story, 7)[0]["body"]      # shown, as text
    assert "##[" not in job.raw_output          # nothing the runner would act on
    # stop-commands did not swallow the gate's annotations
    assert any(a.level == "error" and "rmse" in a.message.lower() + a.title.lower()
               for a in job.annotations)


def test_fork_pr_reports_skipped_without_secrets_or_mlflow(story: Story) -> None:
    run = story.fork_run
    assert run.jobs["model/lint"].conclusion == "skipped"
    assert run.jobs["model/train"].conclusion == "skipped"
    plan = run.jobs["model/plan"]
    # nothing from the fork is installed, nothing is even checked out
    assert [s.name for s in plan.steps if s.outcome != "skipped"] == ["Who asks", "Plan"]
    job = story.fork
    assert job.conclusion == "success"
    assert job.step("Gate").outcome == "skipped"
    skipped = job.step("Not gated")
    assert skipped.outcome == "success" and skipped.exit_code == 0
    assert skipped.outputs["verdict"] == "skipped"
    assert "skipped" in job.summary.lower()
    assert "stranger/model-gate" in job.summary
    notices = [a for a in job.annotations if a.level == "notice"]
    assert notices and "skipped" in notices[0].message.lower()
    assert story.fork_comments == 0
    assert story.runs_after_fork == story.runs_before_fork


def test_check_pr_trains_the_reviewed_commit_apart_from_the_gate(story: Story) -> None:
    run = story.check_pr_run
    train, job = run.jobs["check-pr/train"], story.check_pr
    assert train.checkouts == [(".", FORK_SHA)] and train.permissions == {}
    assert run.jobs["check-pr/lint"].checkouts == [(".", FORK_SHA)]
    # the gate ran on its own runner from main's checkout: the fork's trainer rewrote
    # gate.toml, gate/ and $GITHUB_ENV in vain
    assert job.checkouts[0] == (".", "4" * 40)
    assert story.fork_trainer_wrote_env and not story.evil_ran
    assert job.conclusion == "failure" and job.environment is None
    assert job.step("Gate").outputs["verdict"] == "blocked"
    comments = _comments(story, 8)
    assert len(comments) == 1 and "blocked" in comments[0]["body"].lower()


def test_check_pr_reports_the_fork_commit_and_its_config_change(story: Story) -> None:
    run_id = story.check_pr.step("Gate").outputs["candidate-run-id"]
    tags = _client(story.server).get_run(run_id).data.tags
    assert tags["git.commit"] == FORK_SHA and tags["git.branch"] == "stranger-idea"
    assert tags["github.pr"] == "8"
    body = _comments(story, 8)[0]["body"]
    assert "changes the gate's config" in body
    assert "-max = 70.0" in body and "+max = 700.0" in body
    assert "judges this run" in body
    assert FORK_SHA[:12] in body


def test_push_to_main_with_a_better_model_promotes_it(story: Story) -> None:
    job = story.main
    assert job.conclusion == "success"
    assert job.environment == "production"
    # training ran with the log-runs user, outside the promoter's environment
    assert story.main_run.jobs["model/train"].environment is None
    gate = job.step("Gate")
    assert gate.outputs["verdict"] == "passed"
    assert gate.outputs["champion-version"] == story.seed_version
    assert gate.outputs["promoted-version"] == story.promoted_version
    assert story.promoted_version != story.seed_version
    version = _client(story.server).get_model_version(MODEL, story.promoted_version)
    assert version.run_id == gate.outputs["candidate-run-id"]


def test_dispatch_rollback_moves_production_back(story: Story) -> None:
    assert story.rollback.conclusion == "success"
    assert story.rollback.environment == "production"
    assert story.production_after_rollback == story.seed_version
    outputs = story.rollback.step("gate").outputs
    assert outputs["verdict"] == "rolled_back"
    assert outputs["promoted-version"] == story.seed_version
    assert outputs["champion-version"] == story.promoted_version


def test_dispatch_forced_promotion_without_a_reason_is_refused(story: Story) -> None:
    job = story.forced_without_reason
    assert job.conclusion == "failure"
    check = job.step("Check the inputs")
    assert check.exit_code == 2
    assert any("reason" in a.message for a in job.annotations if a.level == "error")
    assert job.step("Gate").outcome == "skipped"
    assert story.production_after_forced == story.seed_version


def test_secrets_never_reach_logs_summaries_or_comments(story: Story) -> None:
    jobs = [j for run in (story.pr_run, story.fork_run, story.check_pr_run, story.main_run)
            for j in run.ran] + [story.rollback, story.forced_without_reason]
    seen = "\n".join(j.log + j.summary for j in jobs)
    seen += "\n".join(c["body"] for pr in (7, 8) for c in _comments(story, pr))
    for secret in (PR_PASSWORD, PROMOTER_PASSWORD, story.github.token):
        assert secret not in seen
        for job in jobs:
            # printed only as ::add-mask::, which the runner consumes
            leaked = [line for line in job.raw_output.splitlines()
                      if secret in line and not line.startswith("::add-mask::")]
            assert leaked == []


# --- more of what a maintainer meets: stale verdicts, docs-only, queues, matrices --------

@dataclass
class Extras:
    failed_training: RunResult
    failed_comments: list[dict[str, Any]]
    docs_only: RunResult
    wrong_sha: RunResult
    runs_before_wrong_sha: int
    runs_after_wrong_sha: int
    queue: RunResult
    queue_groups: tuple[Any, Any]
    matrix: RunResult
    matrix_comments: list[dict[str, Any]]


MATRIX_CALLER = """
name: several models
on:
  pull_request:
    branches: [main]
permissions:
  contents: read
jobs:
  model:
    name: model
    strategy:
      matrix:
        model: [diabetes-regressor, diabetes-regressor-small]
    permissions:
      contents: read
      pull-requests: write
    uses: ./.github/workflows/model-gate.yml
    with:
      model-name: ${{ matrix.model }}
      gate-repository: ${{ github.repository }}
      gate-ref: ${{ github.sha }}
      lint: ""
      test: ""
    secrets:
      MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}
"""


@pytest.fixture(scope="module")
def extras(story: Story) -> Extras:
    github, server, workspace = story.github, story.server, story.workspace
    # PR 9 passed once; its next push breaks the trainer.
    github.add_comment(REPO, 9, f"{marker(MODEL)}\n### Model gate · ✅ **Passed**",
                       login=github.login)
    github.add_pull(REPO, 9, head_sha="9" * 40, files=["train_model.py"])
    with _runner(workspace, PR_WORKFLOW, github, server, "--no-such-option",
                 python_bin=story.python_bin) as runner:
        failed = runner.run("pull_request", pull_request_event(9, REPO))

    github.add_pull(REPO, 10, head_sha="a" * 40, files=["README.md", "docs/guide.md"])
    with _runner(workspace, PR_WORKFLOW, github, server, WORSE_ARGS,
                 python_bin=story.python_bin) as runner:
        docs = runner.run("pull_request", pull_request_event(10, REPO))

    # the contributor pushed after the review: the head is no longer the reviewed SHA
    github.add_pull(REPO, 12, head_sha="b" * 40, head_repo="stranger/model-gate")
    before = _run_count(server)
    with _runner(workspace, MANUAL_WORKFLOW, github, server, WORSE_ARGS,
                 python_bin=story.python_bin) as runner:
        wrong = runner.run("workflow_dispatch", dispatch_event(REPO, {}),
                           inputs={"action": "check-pr", "pr": "12", "sha": "c" * 40})
    after = _run_count(server)

    with _runner(workspace, PR_WORKFLOW, github, server, BETTER_ARGS,
                 python_bin=story.python_bin) as runner:
        queue = runner.run("merge_group", merge_group_event(REPO, 7))
        other = runner.run("merge_group", merge_group_event(REPO, 11, head_sha="7" * 40))

    caller = workspace / ".github" / "workflows" / "several-models.yml"
    caller.write_text(MATRIX_CALLER)
    github.add_pull(REPO, 11, head_sha="8" * 40, files=["train_model.py"])
    try:
        with _runner(workspace, caller.name, github, server, BETTER_ARGS,
                     python_bin=story.python_bin) as runner:
            matrix = runner.run("pull_request", pull_request_event(11, REPO))
    finally:
        caller.unlink()
    return Extras(failed, github.comments(REPO, 9), docs, wrong, before, after, queue,
                  (queue.concurrency, other.concurrency), matrix,
                  github.comments(REPO, 11))


def test_a_failed_training_replaces_an_older_passed_comment(extras: Extras) -> None:
    run = extras.failed_training
    assert run.jobs["model/train"].conclusion == "failure"
    gate = run.jobs["model/gate"]
    assert gate.conclusion == "failure"             # the required check is red, not skipped
    assert gate.step("Gate").outcome == "skipped"
    [comment] = extras.failed_comments
    assert "Passed" not in comment["body"]
    assert "training failed" in comment["body"] and "not a pass" in comment["body"]
    assert any("training failed" in a.message for a in gate.annotations if a.level == "error")


def test_a_docs_only_pull_request_skips_the_model_and_still_reports(extras: Extras) -> None:
    run = extras.docs_only
    assert run.jobs["model/lint"].conclusion == "skipped"
    assert run.jobs["model/train"].conclusion == "skipped"
    gate = run.jobs["model/gate"]
    assert gate.conclusion == "success" and gate.name == "model / gate"
    assert gate.step("Not gated").outputs["verdict"] == "skipped"
    assert "none of the 2 changed files" in gate.summary
    assert "Nothing to gate" in gate.summary and "check-pr" not in gate.summary


def test_check_pr_refuses_a_sha_that_is_not_the_head(extras: Extras) -> None:
    run = extras.wrong_sha
    plan = run.jobs["check-pr/plan"]
    assert plan.conclusion == "failure"
    assert plan.step("verify").exit_code == 2
    assert "not the reviewed cccccccccccc" in plan.log
    assert run.jobs["check-pr/train"].conclusion == "skipped"
    assert run.jobs["check-pr/gate"].conclusion == "failure"
    assert extras.runs_after_wrong_sha == extras.runs_before_wrong_sha


def test_a_merge_queue_gets_the_required_check(extras: Extras) -> None:
    run = extras.queue
    assert run.triggered
    gate = run.jobs["model/gate"]
    assert gate.conclusion == "success"
    assert gate.step("Gate").outputs["verdict"] == "passed"
    assert gate.step("Gate").outputs["promoted-version"] == ""
    assert gate.checkouts[0] == (".", "2" * 40)      # the queue's base judges
    first, second = extras.queue_groups
    assert first and second and first["group"] != second["group"]


def test_a_matrix_of_models_gets_one_sticky_comment_each(extras: Extras) -> None:
    gates = [j for j in extras.matrix.ran if j.job_id.endswith("/gate")]
    assert sorted(j.name for j in gates) == ["model (diabetes-regressor) / gate",
                                             "model (diabetes-regressor-small) / gate"]
    assert all(j.conclusion == "success" for j in gates)
    markers = sorted(c["body"].splitlines()[0] for c in extras.matrix_comments)
    assert markers == [marker("diabetes-regressor"), marker("diabetes-regressor-small")]
    assert sorted(extras.matrix.artifacts) == [f"model-gate-{m}" for m in
                                               ("diabetes-regressor",
                                                "diabetes-regressor-small")]


# --- the workflows' contract, read statically --------------------------------------------

REUSABLE = "model-gate.yml"
RELEASE = "release.yml"
# Jobs of the reusable workflow that run the code under review.
CANDIDATE_JOBS = ("lint", "train")


def _caller_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name in workflow_files():
        for job_id, job in load(name)["jobs"].items():
            if "uses" in job:
                yield name, job_id, job


def test_only_pull_request_and_least_privilege() -> None:
    for name in workflow_files():
        if name == RELEASE:
            continue        # test_release_least_privilege_and_trusted_publishing
        doc = load(name)
        triggers = doc.get("on", doc.get(True))
        assert "pull_request_target" not in triggers
        expected = {} if name == REUSABLE else {"contents": "read"}
        assert doc["permissions"] == expected, name
        for job_id, job in doc["jobs"].items():
            permissions = job.get("permissions", {"contents": "read"})
            assert set(permissions.values()) <= {"read", "write"}
            writes = {scope for scope, level in permissions.items() if level == "write"}
            assert writes <= {"pull-requests"}, (name, job_id)
    reusable = load(REUSABLE)["jobs"]
    for job_id in CANDIDATE_JOBS:
        assert reusable[job_id]["permissions"] == {}, job_id
        assert "environment" not in reusable[job_id]
        assert "GITHUB_TOKEN" not in json.dumps(reusable[job_id])
    # A caller must grant what the called jobs ask for, or GitHub refuses the workflow.
    asked = {scope for job in reusable.values()
             for scope, level in (job.get("permissions") or {}).items() if level == "write"}
    for name, job_id, job in _caller_jobs():
        granted = {s for s, level in job["permissions"].items() if level == "write"}
        assert asked <= granted, (name, job_id)


def test_least_privilege_the_gate_credential_reaches_the_gate_step_only() -> None:
    """The gate's read-only user reads the sealed holdout: a step of the candidate's
    code, or any other step, must never get it; the callers that check pass it."""
    jobs = load(REUSABLE)["jobs"]
    holders = [(job_id, step.get("name")) for job_id, job in jobs.items()
               for step in job.get("steps", []) if "MLFLOW_GATE_" in json.dumps(step)]
    assert holders == [("gate", "Gate")]
    for job_id in CANDIDATE_JOBS:
        assert "MLFLOW_GATE_" not in json.dumps(jobs[job_id])
    env = next(step for step in jobs["gate"]["steps"] if step.get("name") == "Gate")["env"]
    secrets = {"MLFLOW_TRACKING_USERNAME": "ci-pr", "MLFLOW_TRACKING_PASSWORD": "pr",
               "MLFLOW_GATE_USERNAME": "ci-gate", "MLFLOW_GATE_PASSWORD": "gate"}
    without = {k: v for k, v in secrets.items() if not k.startswith("MLFLOW_GATE_")}

    def user(promote: bool, given: dict[str, str]) -> tuple[Any, Any]:
        context = Context(github={}, env={}, inputs={"promote": promote}, secrets=given,
                          vars={}, steps={}, runner={})
        return tuple(context.evaluate(env[key].strip()[3:-2].strip()) for key in
                     ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"))

    assert user(False, secrets) == ("ci-gate", "gate")
    assert user(True, secrets) == ("ci-pr", "pr")     # promoting: the environment's user
    assert user(False, without) == ("ci-pr", "pr")
    for name, job_id, job in _caller_jobs():
        if name != MAIN_WORKFLOW:
            assert job["secrets"]["MLFLOW_GATE_USERNAME"] == \
                "${{ secrets.MLFLOW_GATE_USERNAME }}", (name, job_id)


def test_the_three_workflows_call_the_reusable_one() -> None:
    calls = {(name, job["uses"]) for name, _, job in _caller_jobs()}
    assert calls == {(n, f"./.github/workflows/{REUSABLE}")
                     for n in (PR_WORKFLOW, MAIN_WORKFLOW, MANUAL_WORKFLOW)}
    inputs = load(REUSABLE)[True]["workflow_call"]["inputs"]
    assert {"model-name", "config", "train", "runs-on", "lint", "test", "paths"} <= set(inputs)
    for _, _, job in _caller_jobs():
        assert job["secrets"] != "inherit"      # the callee gets the three it names


def test_the_gate_comes_from_its_own_version_never_the_callers_checkout() -> None:
    reusable = load(REUSABLE)
    inputs = reusable[True]["workflow_call"]["inputs"]
    assert {"gate-repository", "gate-ref", "python-version", "extras", "installer"} <= \
        set(inputs)
    assert inputs["model-name"].get("required") is not True
    text = (WORKFLOWS / REUSABLE).read_text()
    assert MODEL not in text
    for job_id in ("plan", "gate"):
        steps = reusable["jobs"][job_id]["steps"]
        gate = [s for s in steps if s.get("name") == "The gate, at the version the caller pinned"]
        assert len(gate) == 1, job_id
        assert gate[0]["with"]["repository"] == "${{ inputs.gate-repository }}"
        assert gate[0]["with"]["ref"] == "${{ inputs.gate-ref || github.job_workflow_sha }}"
        assert gate[0]["with"]["path"] == ".model-gate"
        install = next(s for s in steps if s.get("name") == "Install the gate")
        assert install["run"].startswith("bash .model-gate/scripts/install-gate.sh .model-gate")
        assert "requirements.txt" not in json.dumps(steps), job_id   # not the caller's
    actions = {s["uses"] for s in reusable["jobs"]["gate"]["steps"]
               if str(s.get("uses", "")).startswith("./")}
    assert actions == {"./.model-gate"}
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install the gate")
    assert '"$GATE_ACTION_PATH/scripts/install-gate.sh" "$GATE_ACTION_PATH"' in install["run"]
    assert "requirements.txt" not in json.dumps(action["runs"])
    # this repository's own callers name the trusted commit of this repository
    for name, _, job in _caller_jobs():
        assert job["with"]["gate-repository"] == "${{ github.repository }}", name


def test_release_least_privilege_and_trusted_publishing() -> None:
    doc = load(RELEASE)
    assert doc[True] == {"push": {"tags": ["v*.*.*"]}}
    assert doc["permissions"] == {"contents": "read"}
    jobs = doc["jobs"]
    assert {j: job["permissions"] for j, job in jobs.items()} == {
        "build": {"contents": "read"}, "publish": {"id-token": "write"},
        "github-release": {"contents": "write"}}
    publish = jobs["publish"]
    assert publish["environment"] == "pypi" and publish["needs"] == "build"
    uses = [s["uses"] for s in publish["steps"] if "uses" in s]
    assert any(re.fullmatch(r"pypa/gh-action-pypi-publish@[0-9a-f]{40}", u) for u in uses)
    text = json.dumps(doc)
    assert "secrets." not in text and "password" not in text      # no stored token
    assert "id-token" not in json.dumps({j: jobs[j] for j in ("build", "github-release")})
    build = json.dumps(jobs["build"])
    assert "package-check.sh" in build and "changelog_section.py" in build
    release = json.dumps(jobs["github-release"])
    assert "changelog_section.py" in release and "refs/tags/$major" in release


@pytest.mark.parametrize(("heading", "expected"), [
    ("## 1.2.0 (2026-12-07)", "### Added\n- one\n"),
    ("## 1.2.0 (unreleased)", None),
    ("## 1.2.1", None),
])
def test_release_notes_come_from_the_changelog(tmp_path: Path, heading: str,
                                               expected: str | None) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(f"# Changelog\n\n{heading}\n\n### Added\n- one\n\n## 1.1.0\n- old\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "changelog_section.py"),
                           "v1.2.0", str(changelog)], capture_output=True, text=True,
                          timeout=60)
    if expected is None:
        assert proc.returncode == 2 and proc.stderr.startswith("changelog: ")
    else:
        assert (proc.returncode, proc.stdout) == (0, expected)


def test_the_pr_workflow_serves_merge_queues() -> None:
    doc = load(PR_WORKFLOW)
    assert doc[True]["merge_group"] == {"types": ["checks_requested"]}
    assert "github.ref" in doc["concurrency"]["group"]


def test_steps_pin_actions_and_keep_expressions_out_of_scripts() -> None:
    docs = [load(n) for n in workflow_files()] + [yaml.safe_load((ROOT / "action.yml")
                                                                 .read_text())]
    for doc in docs:
        for step in all_steps(doc):
            assert "${{" not in str(step.get("run", ""))
            uses = step.get("uses")
            if uses and not uses.startswith(("./", "$/")):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_every_job_and_every_step_that_runs_code_has_a_timeout() -> None:
    for name in workflow_files():
        for job_id, job in load(name)["jobs"].items():
            if "uses" in job:
                continue
            assert "timeout-minutes" in job, (name, job_id)
            for step in job["steps"]:
                if "run" in step or str(step.get("uses", "")).startswith(
                        ("./", "actions/upload-artifact")):
                    assert "timeout-minutes" in step, (name, job_id, step.get("name"))


def test_a_push_never_cancels_a_waiting_rollback() -> None:
    push = load(MAIN_WORKFLOW)["jobs"]["model"]["concurrency"]
    manual = load(MANUAL_WORKFLOW)["jobs"]["registry"]["concurrency"]
    model = re.search(r'^name\s*=\s*"([^"]+)"', (ROOT / "gate.toml").read_text(), re.M)
    assert model is not None
    assert push == {"group": f"model-gate-{model.group(1)}", "cancel-in-progress": False}
    assert manual["cancel-in-progress"] is False
    fate = concurrency_outcome([("push 1", push), ("rollback", manual), ("push 2", push),
                                ("push 3", push)])
    assert fate["rollback"] == "runs" and fate["push 1"] == "runs"
    assert fate["push 2"] == "cancelled"        # a newer push replaces a waiting push
    # the same rules, with one shared group, lose the rollback: what this guards against
    assert concurrency_outcome([("push 1", push), ("rollback", push),
                                ("push 2", push)])["rollback"] == "cancelled"


def test_dependabot_keeps_the_pins_and_requirements_fresh() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert {"github-actions", "pip"} <= set(ecosystems)
    assert ecosystems["github-actions"]["directory"] == "/"
    for update in config["updates"]:
        assert update["schedule"]["interval"] in ("daily", "weekly", "monthly")


def test_code_owners_guard_the_thresholds_and_the_gate() -> None:
    lines = [line.split() for line in (ROOT / ".github" / "CODEOWNERS.example").read_text()
             .splitlines() if line.strip() and not line.startswith("#")]
    owned = {parts[0] for parts in lines if len(parts) > 1}
    assert {"/gate.toml", "/gate/", "/.github/", "/action.yml"} <= owned


def test_action_outputs_cover_failed_metrics() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert "steps.gate.outputs.failed_metrics" in action["outputs"]["failed-metrics"]["value"]


def test_zizmor_auditor_leaves_no_finding_unexplained() -> None:
    zizmor = PYTHON_BIN / "zizmor"
    if not zizmor.exists():
        pytest.fail("zizmor is missing: pip install -r requirements-dev.txt")
    proc = subprocess.run([str(zizmor), "--offline", "--no-progress", "--color", "never",
                           "--persona", "auditor", "--config", ".github/zizmor.yml",
                           ".github", "action.yml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((ROOT / ".github" / "zizmor.yml").read_text())
    text = (ROOT / ".github" / "zizmor.yml").read_text()
    for audit in config["rules"]:
        # each suppressed audit has its reason written above or inside it
        assert re.search(rf"#[^\n]*\n(?:\s*#[^\n]*\n)*\s*{re.escape(audit)}:|"
                         rf"{re.escape(audit)}:\s*\n(?:\s*#[^\n]*\n)+", text), audit


# --- the runner itself -------------------------------------------------------------------

def _context(**steps: dict[str, str]) -> Context:
    return Context(github={"event_name": "pull_request", "actor": "Dependabot[bot]",
                           "event": {"pull_request": {"number": 3}}},
                   env={"MODEL": "m"}, inputs={"force": True, "python-version": ""},
                   secrets={"S": "x"}, vars={}, steps={k: {"outputs": v}
                                                       for k, v in steps.items()},
                   runner={"temp": "/tmp"})


@pytest.mark.parametrize(("expression", "expected"), [
    ("steps.trust.outputs.trusted == 'true'", True),
    ("steps.trust.outputs.trusted != 'true'", False),
    ("steps.missing.outputs.x == ''", True),
    ("github.actor == 'dependabot[bot]'", True),            # case-insensitive, like GitHub
    ("inputs.python-version != ''", False),
    ("inputs.force", True),
    ("inputs.force == 'true'", False),                      # a boolean is not the string
    ("!inputs.force || github.event.pull_request.number == 3", True),
    ("(github.event_name == 'push') && inputs.force", False),
    ("github.event.pull_request.number", 3),
    ("always()", True),
])
def test_expressions(expression: str, expected: Any) -> None:
    value = _context(trust={"trusted": "true"}).evaluate(expression)
    assert value == expected


def test_conditions_need_success_unless_they_say_otherwise() -> None:
    context = _context()
    context.status.update(success=False, failure=True)
    assert context.condition("github.event_name == 'pull_request'") is False
    assert context.condition("${{ always() }}") is True
    assert context.condition("failure()") is True
    with pytest.raises(WorkflowError):
        context.evaluate("hashFiles('requirements.txt')")
    with pytest.raises(WorkflowError):
        context.evaluate("matrix.os == 'linux'")


def _tiny(tmp_path: Path, steps: list[dict[str, Any]], **job: Any) -> WorkflowRunner:
    doc = {"name": "tiny", "on": {"pull_request": None, "push": {"branches": ["main"]}},
           "jobs": {"one": {"runs-on": "ubuntu-latest", "steps": steps, **job}}}
    path = tmp_path / "tiny.yml"
    path.write_text(yaml.safe_dump(doc))
    return WorkflowRunner(path, tmp_path, python_bin=PYTHON_BIN,
                          secrets={"PASSWORD": "repo-secret"},
                          environment_secrets={"production": {"PASSWORD": "env-secret"}})


def test_runner_withholds_secrets_from_forks_and_scopes_environments(tmp_path: Path) -> None:
    step = {"run": 'echo "got=${PASSWORD:-none}" >> "$GITHUB_STEP_SUMMARY"',
            "env": {"PASSWORD": "${{ secrets.PASSWORD }}"}}
    with _tiny(tmp_path, [step]) as runner:
        same = _only_job(runner.run("pull_request", pull_request_event(1, REPO)))
        fork = _only_job(runner.run("pull_request",
                                    pull_request_event(1, REPO, head_repo="x/y")))
        bot = _only_job(runner.run("pull_request", pull_request_event(1, REPO),
                                   actor="dependabot[bot]"))
        other = runner.run("push", push_event(REPO, ref="refs/heads/feature"))
    assert same.summary == "got=repo-secret\n"
    assert fork.summary == bot.summary == "got=none\n"
    assert not other.triggered
    with _tiny(tmp_path, [step], environment="production") as runner:
        assert _only_job(runner.run("push", push_event(REPO))).summary == "got=env-secret\n"


def test_runner_carries_outputs_and_env_and_stops_at_a_failure(tmp_path: Path) -> None:
    steps = [
        {"id": "a", "run": 'echo "x=1" >> "$GITHUB_OUTPUT"; echo "SEEN=yes" >> "$GITHUB_ENV"'},
        {"run": 'test "$X" = 1 && test "$SEEN" = yes && test "$(command -v python)" = "$PY"',
         "env": {"X": "${{ steps.a.outputs.x }}", "PY": str(PYTHON_BIN / "python")}},
        {"run": "exit 4"},
        {"name": "after", "run": "true"},
        {"name": "cleanup", "if": "always()", "run": "true"},
    ]
    with _tiny(tmp_path, steps) as runner:
        job = _only_job(runner.run("push", push_event(REPO)))
    assert [s.outcome for s in job.steps] == ["success", "success", "failure", "skipped",
                                              "success"]
    assert job.conclusion == "failure" and job.steps[2].exit_code == 4
    with _tiny(tmp_path, [{"run": "echo ${{ github.actor }}"}]) as runner:
        with pytest.raises(WorkflowError, match="inside run"):
            runner.run("push", push_event(REPO))


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / ".github" / "workflows" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


CALLED = {
    "name": "called",
    "on": {"workflow_call": {
        "inputs": {"who": {"type": "string", "required": True},
                   "loud": {"type": "boolean", "default": False}},
        "secrets": {"PASSWORD": {"required": False}},
        "outputs": {"said": {"value": "${{ jobs.second.outputs.said }}"}}}},
    "jobs": {
        "first": {"runs-on": "ubuntu-latest", "outputs": {"word": "${{ steps.w.outputs.word }}"},
                  "steps": [{"id": "w", "run": 'echo "word=hello" >> "$GITHUB_OUTPUT"',
                             "timeout-minutes": 1}]},
        "second": {"runs-on": "ubuntu-latest", "needs": "first",
                   "environment": "${{ inputs.loud && 'production' || '' }}",
                   "outputs": {"said": "${{ steps.s.outputs.said }}"},
                   "steps": [{"id": "s", "env": {"WORD": "${{ needs.first.outputs.word }}",
                                                 "WHO": "${{ inputs.who }}",
                                                 "PASSWORD": "${{ secrets.PASSWORD }}"},
                              "run": 'echo "said=$WORD $WHO ${PASSWORD:-none}" '
                                     '>> "$GITHUB_OUTPUT"'}]},
        "after": {"runs-on": "ubuntu-latest", "needs": ["second"], "if": "failure()",
                  "steps": [{"run": "true"}]},
    },
}


def test_runner_calls_reusable_workflows_with_needs_outputs_and_secrets(tmp_path: Path) -> None:
    _write(tmp_path, "called.yml", CALLED)
    caller = {"name": "caller", "on": {"push": {"branches": ["main"]}},
              "jobs": {"quiet": {"uses": "./.github/workflows/called.yml",
                                 "with": {"who": "${{ github.actor }}"},
                                 "secrets": {"PASSWORD": "${{ secrets.PASSWORD }}"}},
                       "loud": {"uses": "./.github/workflows/called.yml", "needs": "quiet",
                                "with": {"who": "${{ needs.quiet.outputs.said }}",
                                         "loud": True}}}}
    path = _write(tmp_path, "caller.yml", caller)
    with WorkflowRunner(path, tmp_path, python_bin=PYTHON_BIN,
                        secrets={"PASSWORD": "repo-secret"},
                        environment_secrets={"production": {"PASSWORD": "env-secret"}}) as r:
        result = r.run("push", push_event(REPO), actor="ann")
    assert result.jobs["quiet"].outputs == {"said": "hello ann repo-secret"}
    assert result.jobs["quiet/second"].name == "quiet / second"
    assert result.jobs["quiet/after"].conclusion == "skipped"
    # no secrets passed, but the environment's own secrets reach its job
    assert result.jobs["loud"].outputs == {"said": "hello hello ann repo-secret env-secret"}
    assert result.jobs["loud/second"].environment == "production"
    assert result.jobs["quiet/second"].environment is None
    assert result.jobs["quiet/first"].steps[0].timeout == 60


def test_runner_gives_each_job_a_fresh_workspace(tmp_path: Path) -> None:
    (tmp_path / "action.yml").write_text(yaml.safe_dump(
        {"name": "a", "runs": {"using": "composite", "steps": []}}))
    steps = [{"run": "touch left-behind && test ! -e action.yml", "timeout-minutes": 1}]
    doc = {"name": "fresh", "on": "push",
           "jobs": {"one": {"runs-on": "x", "steps": steps},
                    "two": {"runs-on": "x", "needs": "one",
                            "steps": [{"uses": "actions/checkout@" + "0" * 40},
                                      {"run": "test ! -e left-behind && test -e action.yml"},
                                      {"uses": "./"}]},
                    "three": {"runs-on": "x", "needs": "one", "steps": [{"uses": "./"}]}}}
    with WorkflowRunner(_write(tmp_path, "fresh.yml", doc), tmp_path,
                        python_bin=PYTHON_BIN) as runner:
        with pytest.raises(WorkflowError, match="no action.yml"):
            runner.run("push", push_event(REPO))
        doc["jobs"].pop("three")
    with WorkflowRunner(_write(tmp_path, "fresh.yml", doc), tmp_path,
                        python_bin=PYTHON_BIN) as runner:
        result = runner.run("push", push_event(REPO))
    assert [j.conclusion for j in result.jobs.values()] == ["success", "success"]


def test_runner_reads_workflow_commands_where_the_runner_does(tmp_path: Path) -> None:
    script = "\n".join([
        "echo '  ::warning::indented still counts'",
        "echo 'text ##[error]anywhere in a line'",
        "echo '::stop-commands::pause-1'",
        "echo '::error::ignored while stopped'",
        "echo '::pause-1::'",
        "echo 'a run name ##[stop-commands]evil'",
        "echo '::error::silenced by the run name'",
    ])
    with _tiny(tmp_path, [{"run": script}]) as runner:
        job = _only_job(runner.run("push", push_event(REPO)))
    assert [(a.level, a.message) for a in job.annotations] == [
        ("warning", "indented still counts"), ("error", "anywhere in a line")]


def test_runner_step_timeouts_and_artifacts(tmp_path: Path) -> None:
    steps = [{"run": 'mkdir -p out && echo "{}" > out/verdict.json', "timeout-minutes": 1},
             {"uses": "actions/upload-artifact@" + "0" * 40,
              "with": {"name": "kept", "path": "out/"}},
             {"uses": "actions/upload-artifact@" + "0" * 40, "continue-on-error": True,
              "with": {"name": "kept", "path": "out/"}},
             {"run": "sleep 5", "timeout-minutes": 0.01}]
    with _tiny(tmp_path, steps) as runner:
        result = runner.run("push", push_event(REPO))
        job = _only_job(result)
        assert (result.artifacts["kept"] / "verdict.json").exists()
    assert [s.outcome for s in job.steps] == ["success", "success", "failure", "failure"]
    assert job.steps[3].exit_code == 124


def test_runner_triggers_merge_groups_on_their_base_branch(tmp_path: Path) -> None:
    doc = {"name": "q", "on": {"merge_group": {"types": ["checks_requested"]},
                               "pull_request": {"branches": ["main"]}},
           "jobs": {"one": {"runs-on": "x", "steps": [
               {"run": 'echo "$GITHUB_REF $GITHUB_SHA" >> "$GITHUB_STEP_SUMMARY"'}]}}}
    with WorkflowRunner(_write(tmp_path, "q.yml", doc), tmp_path,
                        python_bin=PYTHON_BIN) as runner:
        job = _only_job(runner.run("merge_group", merge_group_event(REPO, 4)))
    assert job.summary == f"refs/heads/gh-readonly-queue/main/pr-4-{'2' * 40} {'6' * 40}\n"
