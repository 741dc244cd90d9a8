"""The GitHub workflows, run for real on this machine: tests/workflow_runner.py executes
their steps with the environment GitHub would give, against a real `mlflow server` and
the local GitHub-like API. What is asserted is what a maintainer would see."""
from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.fake_github import FakeGitHub
from tests.workflow_runner import (Context, JobResult, RunResult, WorkflowError,
                                   WorkflowRunner, dispatch_event, pull_request_event,
                                   push_event)

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
FILES = ("gate", "train_model.py", "gate.toml", "requirements.txt", "action.yml", ".github",
         "tests", "bench", ".flake8", "pytest.ini")
TEST_COMMAND = "python -m pytest -q -p no:cacheprovider tests/test_decide.py"
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
    from gate.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server)
        mp.chdir(workspace)
        out = workspace.parent / "seed.json"
        assert train_model.main([*SEED_ARGS, "--json", str(out)]) == 0
        run_id = json.loads(out.read_text())["run_id"]
        assert main(["check", "--run-id", run_id, "--promote"]) == 0
    return _production(server)


def _runner(workspace: Path, name: str, github: FakeGitHub, server: str,
            train_args: str = "", trees: dict[str, Path] | None = None) -> WorkflowRunner:
    return WorkflowRunner(
        workspace / ".github" / "workflows" / name, workspace, python_bin=PYTHON_BIN,
        secrets={"MLFLOW_TRACKING_URI": server, "MLFLOW_TRACKING_USERNAME": "ci-pr",
                 "MLFLOW_TRACKING_PASSWORD": PR_PASSWORD},
        environment_secrets={"production": {"MLFLOW_TRACKING_USERNAME": "ci-promoter",
                                            "MLFLOW_TRACKING_PASSWORD": PROMOTER_PASSWORD}},
        variables={"TRAIN_ARGS": train_args, "GATE_TEST_COMMAND": TEST_COMMAND},
        api_url=github.url, token=github.token, timeout=300, trees=trees)


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
import os, pathlib, subprocess, sys
here = pathlib.Path.cwd()
evil = pathlib.Path(os.environ["RUNNER_TEMP"]).parent / "evil-ran"
(here / "gate.toml").write_text((here / "gate.toml").read_text()
                                .replace("tolerance_rel = 0.02", "tolerance_rel = 100.0"))
(here / "gate" / "decide.py").write_text("raise SystemExit(0)\n")
(here / "evil.sh").write_text(f"touch {evil}\n")
with open(os.environ["GITHUB_ENV"], "a") as env:
    env.write(f"BASH_ENV={here / 'evil.sh'}\nPYTHONPATH={here}\n")
sys.exit(subprocess.call([sys.executable, "real_train_model.py", *sys.argv[1:]]))
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
    server = mlflow_server
    with FakeGitHub() as github:
        seed_version = _seed(workspace, server)
        github.add_pull(REPO, 7, head_sha="1" * 40, files=["README.md", "train_model.py"])
        with _runner(workspace, PR_WORKFLOW, github, server,
                     f"{WORSE_ARGS} --run-name {HOSTILE_RUN_NAME}") as runner:
            pr = runner.run("pull_request", pull_request_event(7, REPO), actor="contributor")
        after_pr = _production(server)

        before = _run_count(server)
        with _runner(workspace, PR_WORKFLOW, github, server, WORSE_ARGS) as runner:
            event = pull_request_event(8, REPO, head_repo="stranger/model-gate",
                                       author="stranger", head_sha=FORK_SHA)
            fork = runner.run("pull_request", event, actor="stranger")
        after = _run_count(server)
        fork_comments = len(github.comments(REPO, 8))

        # A maintainer reviewed the fork's commit and gates it by hand.
        github.add_pull(REPO, 8, head_sha=FORK_SHA, head_ref="stranger-idea",
                        head_repo="stranger/model-gate", files=["train_model.py"])
        with _runner(workspace, MANUAL_WORKFLOW, github, server, WORSE_ARGS,
                     trees={FORK_SHA: fork_tree}) as runner:
            check_pr = runner.run("workflow_dispatch", dispatch_event(REPO, {}),
                                  inputs={"action": "check-pr", "pr": "8", "sha": FORK_SHA})
            assert check_pr.run_dir is not None
            evil_ran = (check_pr.run_dir / "evil-ran").exists()
            wrote_env = any("evil.sh" in p.read_text()
                            for p in check_pr.run_dir.glob("*.env"))

        with _runner(workspace, MAIN_WORKFLOW, github, server, BETTER_ARGS) as runner:
            main = runner.run("push", push_event(REPO))
        promoted = _production(server)

        with _runner(workspace, MANUAL_WORKFLOW, github, server) as runner:
            rollback = _only_job(runner.run(
                "workflow_dispatch", dispatch_event(REPO, {}),
                inputs={"action": "rollback", "reason": "latency regression in serving"}))
        after_rollback = _production(server)

        with _runner(workspace, MANUAL_WORKFLOW, github, server) as runner:
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
                    evil_ran=evil_ran, fork_trainer_wrote_env=wrote_env)


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
    assert gate.exit_code == 1
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
    assert lint.secrets == () and lint.permissions == {}


def test_the_verdict_and_report_are_kept_as_an_artifact(story: Story) -> None:
    artifact = story.pr_run.artifacts[f"model-gate-{MODEL}"]
    verdict = json.loads((artifact / "verdict.json").read_text())
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
    assert "GITHUB_TOKEN" not in train.raw_output
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


# --- the workflows' contract, read statically --------------------------------------------

def test_only_pull_request_and_least_privilege() -> None:
    for name in workflow_files():
        doc = load(name)
        triggers = doc.get("on", doc.get(True))
        assert "pull_request_target" not in triggers
        assert doc["permissions"] == {"contents": "read"}, name
        for job_id, job in doc["jobs"].items():
            permissions = job.get("permissions", {"contents": "read"})
            assert set(permissions.values()) <= {"read", "write"}
            writes = {scope for scope, level in permissions.items() if level == "write"}
            comments = any((s.get("with") or {}).get("comment") == "true"
                           for s in job.get("steps") or [])
            assert writes == ({"pull-requests"} if comments else set()), (name, job_id)


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


def test_promotions_share_one_uncancelled_concurrency_group() -> None:
    jobs = [load(MAIN_WORKFLOW)["jobs"]["promote"], load(MANUAL_WORKFLOW)["jobs"]["registry"]]
    gate_toml = (ROOT / "gate.toml").read_text()
    model = re.search(r'^name\s*=\s*"([^"]+)"', gate_toml, re.M)
    assert model is not None
    for job in jobs:
        assert job["environment"] == "production"
        assert job["concurrency"] == {"group": f"model-gate-{model.group(1)}",
                                      "cancel-in-progress": False}


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
        context.evaluate("contains(github.actor, 'bot')")
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
