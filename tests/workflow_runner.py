"""Run a GitHub Actions workflow's jobs on this machine, as far as it allows.

It reads the workflow YAML, checks that the event triggers it (push, pull_request,
merge_group, workflow_dispatch), runs the jobs in `needs` order with their `if:`, job
outputs and the `needs` context, expands a simple `strategy.matrix`, and calls local
reusable workflows (`uses: ./.github/workflows/x.yml` with `with:` and `secrets:`), and
another repository's (`uses: owner/name/.github/workflows/x.yml@ref`, read from the local
copy `repos` maps that repository and ref to; `github.job_workflow_sha` is then a SHA the
runner gives that ref, and `actions/checkout` with `repository:` finds it there). Steps
run with bash and the environment GitHub would give: an event file, GITHUB_OUTPUT /
GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY per step, the default GITHUB_* variables,
`${{ }}` expressions in `env:`, `with:` and `if:`, step and job `timeout-minutes`. Each job
starts in an empty workspace, as on a fresh runner: `actions/checkout` copies the tree of
its `ref` there, `uses: ./` runs the composite action.yml it finds there, setup-python is a
no-op (the venv is already there) and upload-artifact keeps the files in the run's result.
Log lines are read as the runner reads them (`::cmd::` at a line's start, `##[cmd]`
anywhere, `stop-commands`). Anything else it cannot do honestly (another action, another
shell, an expression outside its small grammar) is an error, never a silent pass. Like
GitHub, it withholds secrets from fork and Dependabot runs.
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

LOCAL_ACTION = ("./", "$/")
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")
DEFAULT_TIMEOUT = 600.0


class WorkflowError(Exception):
    """The workflow asks for something this runner cannot do faithfully."""


# --- expressions ------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
                    r"|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_*][A-Za-z0-9_-]*)*))")
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise WorkflowError(f"expression {text!r}: cannot parse at {text[pos:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    """or := and ('||' and)* ; and := not ('&&' not)* ; not := '!' not | cmp ;
    cmp := atom (('=='|'!=') atom)? ; atom := literal | path | call | '(' or ')'."""

    def __init__(self, text: str, lookup: Callable[[str], Any],
                 status: Mapping[str, bool]) -> None:
        self.text, self.toks, self.i = text, _tokens(text), 0
        self.lookup, self.status = lookup, status

    def parse(self) -> Any:
        value = self._or()
        if self.i != len(self.toks):
            raise WorkflowError(f"expression {self.text!r}: unexpected {self.toks[self.i][1]!r}")
        return value

    def _peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def _take(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise WorkflowError(f"expression {self.text!r}: ends too early")
        self.i += 1
        return self.toks[self.i - 1]

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if _truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == "&&":
            self._take()
            right = self._not()
            left = right if _truthy(left) else left
        return left

    def _not(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._not())
        return self._cmp()

    def _cmp(self) -> Any:
        left = self._atom()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            equal = _loose_equal(left, self._atom())
            return equal if op == "==" else not equal
        return left

    def _atom(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text == "(":
            value = self._or()
            if self._take()[1] != ")":
                raise WorkflowError(f"expression {self.text!r}: missing ')'")
            return value
        if kind == "name":
            if text in ("true", "false"):
                return text == "true"
            if text == "null":
                return None
            if self._peek() == "(":
                return self._call(text)
            return self.lookup(text)
        raise WorkflowError(f"expression {self.text!r}: unexpected {text!r}")

    def _call(self, name: str) -> Any:
        self._take()
        args: list[Any] = []
        if self._peek() != ")":
            args.append(self._or())
            while self._peek() == ",":
                self._take()
                args.append(self._or())
        if self._take()[1] != ")":
            raise WorkflowError(f"expression {self.text!r}: missing ')' after {name}(")
        if name in STATUS_FUNCTIONS and not args:
            return self.status[name]
        function = FUNCTIONS.get(name.casefold())
        if function is None:
            raise WorkflowError(f"expression {self.text!r}: only {', '.join(STATUS_FUNCTIONS)}"
                                f"() and {', '.join(FUNCTIONS)} are supported")
        try:
            return function(*args)
        except (TypeError, ValueError) as exc:
            raise WorkflowError(f"expression {self.text!r}: {name}: {exc}") from None


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, list):
        return any(_loose_equal(item, needle) for item in haystack)
    return to_text(needle).casefold() in to_text(haystack).casefold()


def _format(template: Any, *args: Any) -> str:
    text = str(template)
    for index, arg in enumerate(args):
        text = text.replace("{%d}" % index, to_text(arg))
    return text


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromjson": lambda text: json.loads(str(text)),
    "tojson": lambda value: json.dumps(value, indent=2),
    "contains": _contains,
    "startswith": lambda a, b: to_text(a).casefold().startswith(to_text(b).casefold()),
    "endswith": lambda a, b: to_text(a).casefold().endswith(to_text(b).casefold()),
    "format": _format,
    "join": lambda items, sep=",": to_text(sep).join(to_text(i) for i in items)
    if isinstance(items, list) else to_text(items),
}


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def _loose_equal(left: Any, right: Any) -> bool:
    """GitHub's ==: strings compare case-insensitively, mixed types compare as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) and not isinstance(left, (int, float)):
        return bool(left == right)
    return _number(left) == _number(right)


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@dataclass
class Context:
    """The contexts an expression may read."""

    github: dict[str, Any]
    env: dict[str, str]
    inputs: dict[str, Any]
    secrets: dict[str, str]
    vars: dict[str, str]
    steps: dict[str, dict[str, Any]]
    runner: dict[str, str]
    status: dict[str, bool] = field(default_factory=lambda: {
        "success": True, "failure": False, "always": True, "cancelled": False})
    # needs, matrix, jobs (a reusable workflow's outputs), strategy
    extra: dict[str, Any] = field(default_factory=dict)

    def lookup(self, path: str) -> Any:
        root, *rest = path.split(".")
        if root == "secrets":
            return self.secrets.get(rest[0], "") if rest else None
        if root in self.extra:
            value: Any = self.extra[root]
        elif root in ("github", "env", "inputs", "vars", "steps", "runner"):
            value = getattr(self, root)
        else:
            raise WorkflowError(f"context {root!r} is not supported (in {path!r})")
        for key in rest:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def evaluate(self, expression: str) -> Any:
        return _Parser(expression, self.lookup, self.status).parse()

    def value(self, value: Any) -> Any:
        """A value as GitHub keeps it: one whole `${{ }}` keeps its type (a list, a bool)."""
        if isinstance(value, str):
            whole = _TEMPLATE.fullmatch(value.strip())
            if whole:
                return self.evaluate(whole.group(1))
            return self.substitute(value)
        return value

    def substitute(self, value: Any) -> str:
        """A string with every ${{ }} replaced by its value, as GitHub does in env/with."""
        if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
            return to_text(value)
        return _TEMPLATE.sub(lambda m: to_text(self.evaluate(m.group(1))), str(value))

    def condition(self, expression: Any) -> bool:
        if expression is None:
            return self.status["success"]
        if isinstance(expression, bool):
            return expression
        text = str(expression).strip()
        whole = _TEMPLATE.fullmatch(text)
        if whole:
            text = whole.group(1).strip()
        # Like GitHub: a condition without a status function also needs success().
        if not re.search(r"\b(?:%s)\(" % "|".join(STATUS_FUNCTIONS), text):
            text = f"success() && ({text})"
        return _truthy(self.evaluate(text))


# --- files the runner hands to steps ----------------------------------------------------

def parse_command_file(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `name=value` lines and `name<<DELIM` heredocs."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        heredoc = re.match(r"^([^=<]+)<<(.+)$", line)
        if heredoc and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter, body = heredoc.group(1), heredoc.group(2), []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise WorkflowError(f"heredoc for {name!r} never ends ({delimiter!r})")
            i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        else:
            raise WorkflowError(f"invalid line in a command file: {line!r}")
    return values


# The runner reads `::name props::data` at the start of a line (leading blanks allowed)
# and the older `##[name props]data` ANYWHERE in a line, on stdout and stderr alike.
_COMMAND_V2 = re.compile(r"^::([A-Za-z0-9_-]+)(?: ([^:]*))?::(.*)$")
_COMMAND_V1 = re.compile(r"##\[([A-Za-z0-9_-]+)(?: ([^\]]*))?\](.*)$")


def parse_command(line: str) -> tuple[str, dict[str, str], str] | None:
    """The workflow command the runner would act on in this log line, if any."""
    match = _COMMAND_V2.match(line.lstrip()) or _COMMAND_V1.search(line)
    if not match:
        return None
    props = dict(p.split("=", 1) for p in re.split(r"[,;]", match.group(2) or "") if "=" in p)
    return match.group(1).lower(), props, match.group(3)


@dataclass
class Annotation:
    level: str          # notice | warning | error
    message: str
    title: str = ""


# --- results ----------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    id: str | None
    outcome: str        # success | failure | skipped
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    timeout: float | None = None


@dataclass
class JobResult:
    job_id: str         # "caller/called" for a job of a reusable workflow
    name: str           # as the check is named: "caller name / called name"
    conclusion: str     # success | failure | skipped
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    log: str = ""        # what a maintainer sees: commands consumed, masked values as ***
    raw_output: str = ""  # everything the steps printed, before the runner's masking
    annotations: list[Annotation] = field(default_factory=list)
    environment: str | None = None
    concurrency: dict[str, Any] | None = None
    permissions: Any = None
    outputs: dict[str, str] = field(default_factory=dict)
    runs_on: Any = None
    checkouts: list[tuple[str, str]] = field(default_factory=list)   # (path, ref)
    # (path, repository, ref) of checkouts of another repository than the run's
    foreign_checkouts: list[tuple[str, str, str]] = field(default_factory=list)
    secrets: tuple[str, ...] = ()      # names of the secrets the job was given
    call: bool = False   # a job that calls a reusable workflow: its jobs are listed apart

    def step(self, name_or_id: str) -> StepResult:
        for step in self.steps:
            if name_or_id in (step.id, step.name):
                return step
        # the job's log says why a step never ran (a failed earlier step, a bad `if`)
        raise KeyError(f"{name_or_id!r}: no such step in {self.job_id} "
                       f"(steps: {[s.id or s.name for s in self.steps]}); "
                       f"its log ends: {self.log[-2000:]}")


@dataclass
class RunResult:
    triggered: bool
    jobs: dict[str, JobResult] = field(default_factory=dict)
    concurrency: dict[str, Any] | None = None       # the workflow-level group, resolved
    artifacts: dict[str, Path] = field(default_factory=dict)
    run_dir: Path | None = None     # removed when the runner closes

    @property
    def ran(self) -> list[JobResult]:
        return [job for job in self.jobs.values() if job.conclusion != "skipped"
                and not job.call]

    def job(self, job_id: str) -> JobResult:
        return self.jobs[job_id]

    @property
    def conclusion(self) -> str:
        return "failure" if any(j.conclusion == "failure" for j in self.jobs.values()) \
            else "success"


# --- events -----------------------------------------------------------------------------

def _repo(full_name: str) -> dict[str, Any]:
    owner = full_name.split("/")[0]
    return {"full_name": full_name, "name": full_name.split("/")[1],
            "owner": {"login": owner}, "fork": False, "default_branch": "main"}


def pull_request_event(number: int, repository: str, *, head_repo: str | None = None,
                       author: str = "contributor", head_sha: str = "1" * 40,
                       base_ref: str = "main", head_ref: str = "feature",
                       base_sha: str = "2" * 40) -> dict[str, Any]:
    head = _repo(head_repo or repository)
    head["fork"] = head["full_name"] != repository
    return {"action": "synchronize", "number": number, "repository": _repo(repository),
            "sender": {"login": author},
            "pull_request": {"number": number, "user": {"login": author},
                             "head": {"ref": head_ref, "sha": head_sha, "repo": head},
                             "base": {"ref": base_ref, "sha": base_sha,
                                      "repo": _repo(repository)}}}


def push_event(repository: str, *, ref: str = "refs/heads/main", sha: str = "3" * 40,
               pusher: str = "maintainer") -> dict[str, Any]:
    return {"ref": ref, "before": "0" * 40, "after": sha, "repository": _repo(repository),
            "pusher": {"name": pusher}, "sender": {"login": pusher},
            "head_commit": {"id": sha, "message": "change the model"}}


def dispatch_event(repository: str, inputs: Mapping[str, Any], *,
                   ref: str = "refs/heads/main", sender: str = "maintainer") -> dict[str, Any]:
    return {"ref": ref, "repository": _repo(repository), "sender": {"login": sender},
            "inputs": {key: to_text(value) for key, value in inputs.items()}}


def merge_group_event(repository: str, pr: int, *, head_sha: str = "6" * 40,
                      base_sha: str = "2" * 40, base: str = "main") -> dict[str, Any]:
    head_ref = f"refs/heads/gh-readonly-queue/{base}/pr-{pr}-{base_sha}"
    return {"action": "checks_requested", "repository": _repo(repository),
            "sender": {"login": "github-merge-queue[bot]"},
            "merge_group": {"head_sha": head_sha, "head_ref": head_ref, "base_sha": base_sha,
                            "base_ref": f"refs/heads/{base}",
                            "head_commit": {"id": head_sha, "message": f"Merge #{pr}"}}}


# --- GitHub's concurrency rules -----------------------------------------------------------

def concurrency_outcome(arrivals: Sequence[tuple[str, Mapping[str, Any] | None]]) -> dict[str, str]:
    """Which runs GitHub cancels when these arrive in order while none has finished.

    Per group at most one run is in progress and one pending: a newcomer replaces (cancels)
    the pending one whatever `cancel-in-progress` says, and with `cancel-in-progress: true`
    it also cancels the one in progress. A run without a group is never held back.
    """
    fate: dict[str, str] = {}
    running: dict[str, str] = {}
    pending: dict[str, str] = {}
    for label, concurrency in arrivals:
        fate[label] = "runs"
        group = (concurrency or {}).get("group")
        if not group:
            continue
        if (concurrency or {}).get("cancel-in-progress") is True and group in running:
            fate[running.pop(group)] = "cancelled"
        if group in pending:
            fate[pending.pop(group)] = "cancelled"
        if group in running:
            pending[group] = label
        else:
            running[group] = label
    return fate


# --- the runner -------------------------------------------------------------------------

def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class _Done:
    result: str                 # success | failure | skipped
    outputs: dict[str, str]


@dataclass
class _Run:
    """What one run shares between its jobs."""

    event_name: str
    event: dict[str, Any]
    event_path: Path
    run_dir: Path
    github: dict[str, Any]
    result: RunResult


class WorkflowRunner:
    """Runs one workflow file for one event at a time.

    `workspace` is the repository at the commit that triggered the run; `trees` maps
    other refs (a base commit, a fork's head) to their files. Every job gets its own empty
    workspace, as on a fresh GitHub runner: `actions/checkout` copies the tree of its
    `ref` (the triggering commit when none is given) into it.
    """

    def __init__(self, workflow: Path, workspace: Path, *, python_bin: Path,
                 secrets: Mapping[str, str] | None = None,
                 environment_secrets: Mapping[str, Mapping[str, str]] | None = None,
                 variables: Mapping[str, str] | None = None,
                 api_url: str = "https://api.github.com", token: str = "ghs_runner",
                 timeout: float = DEFAULT_TIMEOUT,
                 trees: Mapping[str, Path] | None = None,
                 repos: Mapping[str, Mapping[str, Path]] | None = None,
                 artifact_dir: Path | None = None) -> None:
        self.workflow_path = workflow
        self.doc = yaml.safe_load(workflow.read_text())
        # YAML 1.1 reads the bare key `on` as True.
        self.triggers = _triggers(self.doc)
        self.workspace, self.python_bin = workspace, python_bin
        self.secrets = dict(secrets or {})
        self.environment_secrets = {k: dict(v) for k, v in (environment_secrets or {}).items()}
        self.variables = dict(variables or {})
        self.api_url, self.token, self.timeout = api_url, token, timeout
        self.trees = dict(trees or {})
        # other repositories: name -> ref (a tag, a branch) -> its files; each ref also
        # answers to the SHA the runner gives it (what job_workflow_sha would be)
        self.repos = {name: {**dict(refs), **{ref_sha(name, r): t for r, t in refs.items()}}
                      for name, refs in (repos or {}).items()}
        self._tmp = Path(tempfile.mkdtemp(prefix="workflow-runner-"))
        # uploads outlive the runner only when kept somewhere of the caller's
        self.artifact_dir = artifact_dir or self._tmp / "artifacts"

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> WorkflowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- triggering --
    def triggered_by(self, event_name: str, payload: Mapping[str, Any]) -> bool:
        triggers = self.triggers
        if event_name not in triggers or event_name == "workflow_call":
            return False
        spec = triggers[event_name] or {}
        for key in ("paths", "paths-ignore", "branches-ignore", "tags"):
            if key in spec:
                raise WorkflowError(f"trigger filter {event_name}.{key} is not simulated")
        branch = None
        if event_name == "push":
            branch = str(payload.get("ref", "")).removeprefix("refs/heads/")
        elif event_name == "pull_request":
            branch = payload["pull_request"]["base"]["ref"]
        elif event_name == "merge_group":
            branch = str(payload["merge_group"]["base_ref"]).removeprefix("refs/heads/")
            if payload.get("action") not in spec.get("types", ["checks_requested"]):
                return False
        if branch is not None and "branches" in spec:
            return any(fnmatch.fnmatchcase(branch, pattern) for pattern in spec["branches"])
        return True

    def _dispatch_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        spec = (self.triggers.get("workflow_dispatch") or {}).get("inputs") or {}
        return _typed_inputs(spec, given, "workflow_dispatch")

    # -- running --
    def run(self, event_name: str, payload: Mapping[str, Any], *, actor: str = "maintainer",
            sha: str = "4" * 40, inputs: Mapping[str, Any] | None = None) -> RunResult:
        if not self.triggered_by(event_name, payload):
            return RunResult(triggered=False)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._tmp))
        event_path = run_dir / "event.json"
        event = dict(payload)
        dispatch_inputs: dict[str, Any] = {}
        if event_name == "workflow_dispatch":
            dispatch_inputs = self._dispatch_inputs(inputs or {})
            event["inputs"] = {k: to_text(v) for k, v in dispatch_inputs.items()}
        event_path.write_text(json.dumps(event))
        repository = event["repository"]["full_name"]
        github = self._github_context(event_name, event, repository, actor, sha)
        run = _Run(event_name, event, event_path, run_dir, github,
                   RunResult(triggered=True, run_dir=run_dir))
        concurrency = self.doc.get("concurrency")
        if concurrency is not None:
            top = Context(github=github, env={}, inputs=dispatch_inputs, secrets={},
                          vars=self.variables, steps={}, runner={})
            run.result.concurrency = _resolve_concurrency(concurrency, top)
        self._run_jobs(self.doc, run, dispatch_inputs, self.secrets, prefix="", names="")
        return run.result

    def _run_jobs(self, doc: Mapping[str, Any], run: _Run, inputs: Mapping[str, Any],
                  secrets: Mapping[str, str], prefix: str, names: str,
                  workflow_sha: str = "") -> dict[str, _Done]:
        """Every job of `doc` once its `needs` are done, in dependency order."""
        jobs = doc.get("jobs") or {}
        done: dict[str, _Done] = {}
        waiting = list(jobs)
        while waiting:
            ready = [j for j in waiting if all(n in done for n in _as_list(jobs[j].get("needs")))]
            if not ready:
                raise WorkflowError(f"jobs {waiting} wait for each other or for unknown jobs")
            for job_id in ready:
                waiting.remove(job_id)
                done[job_id] = self._job(doc, job_id, jobs[job_id], run, inputs, secrets,
                                         done, prefix, names, workflow_sha)
        return done

    def _job(self, doc: Mapping[str, Any], job_id: str, job: Mapping[str, Any], run: _Run,
             inputs: Mapping[str, Any], secrets: Mapping[str, str], done: Mapping[str, _Done],
             prefix: str, names: str, workflow_sha: str = "") -> _Done:
        needs = _as_list(job.get("needs"))
        results = [done[n].result for n in needs]
        github = dict(run.github, job=job_id, job_workflow_sha=workflow_sha)
        context = Context(github=github, env={}, inputs=dict(inputs),
                          secrets={}, vars=self.variables, steps={},
                          runner=self._runner_context(run.run_dir),
                          extra={"needs": {n: {"result": done[n].result,
                                               "outputs": done[n].outputs} for n in needs}})
        # At job level success() means every needed job succeeded.
        context.status.update(success=all(r == "success" for r in results),
                              failure=any(r == "failure" for r in results))
        key = f"{prefix}{job_id}"
        combos = _matrix(job.get("strategy"))
        if not context.condition(job.get("if")):
            name = f"{names}{job.get('name', job_id)}"
            run.result.jobs[key] = JobResult(key, name, "skipped")
            return _Done("skipped", {})
        outcomes: list[_Done] = []
        for combo in combos:
            context.extra["matrix"] = combo
            suffix = f" ({', '.join(to_text(v) for v in combo.values())})" if combo else ""
            if "uses" in job:
                outcomes.append(self._call(job_id, job, context, run, secrets,
                                           key + suffix, names, suffix))
            else:
                outcomes.append(self._run_job(doc, job_id, job, context, run, secrets,
                                              key + suffix, names, suffix))
        result = "failure" if any(o.result == "failure" for o in outcomes) else "success"
        outputs: dict[str, str] = {}
        for outcome in outcomes:        # like GitHub: the last matrix job to set one wins
            outputs.update({k: v for k, v in outcome.outputs.items() if v != ""})
        return _Done(result, outputs)

    def _call(self, job_id: str, job: Mapping[str, Any], context: Context, run: _Run,
              secrets: Mapping[str, str], key: str, names: str, suffix: str) -> _Done:
        """A job that `uses:` a reusable workflow, of this repository or another."""
        uses = str(job["uses"])
        remote = re.fullmatch(r"([\w.-]+/[\w.-]+)/(\.github/workflows/[\w.-]+\.ya?ml)@([\w./-]+)",
                              uses)
        if remote:
            repo, path, ref = remote.groups()
            tree = self.repos.get(repo, {}).get(ref)
            if tree is None:
                raise WorkflowError(f"job {job_id!r}: no local copy of {repo}@{ref} (repos=)")
            called = yaml.safe_load((tree / path).read_text())
            workflow_sha = ref_sha(repo, ref)
        elif uses.startswith("./.github/workflows/") and "@" not in uses:
            # GitHub reads a local reusable workflow from the caller's own commit.
            called = yaml.safe_load((self.workspace / uses[2:]).read_text())
            workflow_sha = str(run.github["sha"])
        else:
            raise WorkflowError(f"job {job_id!r}: cannot call {uses!r}")
        spec = _triggers(called).get("workflow_call")
        if spec is None and "workflow_call" not in _triggers(called):
            raise WorkflowError(f"{uses} has no `on: workflow_call`")
        spec = spec or {}
        given = {k: context.value(v) for k, v in (job.get("with") or {}).items()}
        inputs = _typed_inputs(spec.get("inputs") or {}, given, uses)
        declared = spec.get("secrets") or {}
        context.secrets = self._secrets_for(None, run, secrets)     # what the caller has
        passed = job.get("secrets")
        if passed == "inherit":
            called_secrets = dict(secrets)
        else:
            passed = {k: context.substitute(v) for k, v in (passed or {}).items()}
            unknown = set(passed) - set(declared)
            if unknown:
                raise WorkflowError(f"{uses} declares no secrets {sorted(unknown)}")
            called_secrets = passed
        for name, meta in declared.items():
            if (meta or {}).get("required") and not called_secrets.get(name) \
                    and passed != "inherit":
                raise WorkflowError(f"{uses}: secret {name} is required")
        name = f"{names}{context.substitute(job.get('name', job_id))}{suffix}"
        caller = JobResult(key, name, "success", permissions=job.get("permissions"),
                           concurrency=_resolve_concurrency(job.get("concurrency"), context),
                           call=True)
        run.result.jobs[key] = caller
        nested = self._run_jobs(called, run, inputs, called_secrets, prefix=f"{key}/",
                                names=f"{name} / ", workflow_sha=workflow_sha)
        jobs_context = {j: {"result": d.result, "outputs": d.outputs} for j, d in nested.items()}
        out_context = Context(github=run.github, env={}, inputs=inputs, secrets={},
                              vars=self.variables, steps={}, runner={},
                              extra={"jobs": jobs_context})
        caller.outputs = {out: out_context.substitute((meta or {}).get("value", ""))
                          for out, meta in (spec.get("outputs") or {}).items()}
        caller.conclusion = "failure" if any(d.result == "failure" for d in nested.values()) \
            else "success"
        return _Done(caller.conclusion, caller.outputs)

    def _github_context(self, event_name: str, event: Mapping[str, Any], repository: str,
                        actor: str, sha: str) -> dict[str, Any]:
        ref = str(event.get("ref", "refs/heads/main"))
        head_ref = base_ref = ""
        if event_name == "pull_request":
            pr = event["pull_request"]
            ref = f"refs/pull/{pr['number']}/merge"
            head_ref, base_ref = pr["head"]["ref"], pr["base"]["ref"]
        elif event_name == "push":
            sha = str(event.get("after", sha))
        elif event_name == "merge_group":
            ref, sha = event["merge_group"]["head_ref"], event["merge_group"]["head_sha"]
        return {"event_name": event_name, "event": event, "repository": repository,
                "repository_owner": repository.split("/")[0], "actor": actor,
                "triggering_actor": actor, "sha": sha, "ref": ref,
                "ref_name": ref.removeprefix("refs/heads/"), "head_ref": head_ref,
                "base_ref": base_ref, "token": self.token,
                "api_url": self.api_url, "server_url": "https://github.com",
                "run_id": "1001", "run_number": "7", "run_attempt": "1",
                "workflow": str(self.doc.get("name", self.workflow_path.name))}

    def _runner_context(self, run_dir: Path) -> dict[str, str]:
        temp = Path(tempfile.mkdtemp(prefix="runner-temp-", dir=run_dir))
        return {"os": "Linux", "arch": "X64", "temp": str(temp)}

    def _secrets_for(self, environment: str | None, run: _Run,
                     base: Mapping[str, str]) -> dict[str, str]:
        """What GitHub hands a job: nothing for forks and Dependabot (GITHUB_TOKEN aside)."""
        if run.event_name == "pull_request":
            head = run.event["pull_request"]["head"]["repo"]["full_name"]
            if head != run.event["repository"]["full_name"]:
                return {}
        if run.github["actor"] == "dependabot[bot]":
            return {}
        secrets = dict(base)
        if environment:
            # An environment's secrets win, even over those a caller passed explicitly.
            secrets.update(self.environment_secrets.get(environment, {}))
        return secrets

    def _run_job(self, doc: Mapping[str, Any], job_id: str, job: Mapping[str, Any],
                 context: Context, run: _Run, base_secrets: Mapping[str, str], key: str,
                 names: str, suffix: str) -> _Done:
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        environment = context.substitute(environment) if environment else None
        environment = environment or None
        context.secrets = self._secrets_for(environment, run, base_secrets)
        context.env = {k: context.substitute(v) for k, v in (doc.get("env") or {}).items()}
        context.env.update({k: context.substitute(v) for k, v in (job.get("env") or {}).items()})
        workspace = Path(tempfile.mkdtemp(prefix="workspace-", dir=run.run_dir))
        context.github = dict(context.github, workspace=str(workspace))
        context.steps = {}
        context.status.update(success=True, failure=False)
        result = JobResult(key, f"{names}{context.substitute(job.get('name', job_id))}{suffix}",
                           "success", environment=environment,
                           concurrency=_resolve_concurrency(job.get("concurrency"), context),
                           permissions=job.get("permissions"),
                           runs_on=context.value(job.get("runs-on")),
                           secrets=tuple(sorted(k for k, v in context.secrets.items() if v)))
        run.result.jobs[key] = result
        defaults = {**((doc.get("defaults") or {}).get("run") or {}),
                    **((job.get("defaults") or {}).get("run") or {})}
        state = _JobState(event_path=run.event_path, run_dir=run.run_dir, defaults=defaults,
                          masks=[v for v in context.secrets.values() if v] + [self.token],
                          workspace=workspace, run=run, job=result)
        timeout = float(context.value(job.get("timeout-minutes", self.timeout / 60))) * 60
        for index, step in enumerate(job.get("steps") or []):
            outcome = self._run_step(step, context, state, result,
                                     f"{key.replace('/', '-')}-{index}",
                                     min(timeout, self.timeout))
            result.steps.append(outcome)
            if outcome.outcome == "failure" and not step.get("continue-on-error"):
                result.conclusion = "failure"
                context.status.update(success=False, failure=True)
        result.summary, result.log = state.summary, state.visible_log()
        result.raw_output, result.annotations = state.raw, state.annotations
        result.outputs = {k: context.substitute(v) for k, v in (job.get("outputs") or {}).items()}
        return _Done(result.conclusion, result.outputs)

    def _run_step(self, step: Mapping[str, Any], context: Context, state: _JobState,
                  job: JobResult, key: str, timeout: float,
                  action_path: Path | None = None) -> StepResult:
        name = context.substitute(step.get("name") or step.get("run") or step.get("uses") or key)
        step_id = step.get("id")
        started = time.monotonic()
        step_timeout = None
        if "timeout-minutes" in step:
            step_timeout = float(context.value(step["timeout-minutes"])) * 60
            timeout = min(timeout, step_timeout)
        if not context.condition(step.get("if")):
            result = StepResult(name, step_id, "skipped")
        elif "run" in step:
            result = self._run_script(step, context, state, name, key, timeout, action_path)
        elif "uses" in step:
            result = self._run_uses(step, context, state, job, name, key, timeout)
        else:
            raise WorkflowError(f"step {name!r} has neither run nor uses")
        result.seconds = time.monotonic() - started
        result.timeout = step_timeout
        if step_id:
            context.steps[step_id] = {"outputs": result.outputs, "outcome": result.outcome,
                                      "conclusion": result.outcome}
        return result

    def _step_env(self, step: Mapping[str, Any], context: Context, state: _JobState,
                  action_path: Path | None) -> dict[str, str]:
        github = context.github
        env = {
            "PATH": os.pathsep.join([*state.path_prefix, str(self.python_bin),
                                     "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(state.home()), "LANG": "C.UTF-8", "CI": "true",
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_EVENT_PATH": str(state.event_path), "GITHUB_WORKSPACE": str(state.workspace),
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
            "GITHUB_SHA": github["sha"], "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref_name"], "GITHUB_HEAD_REF": github["head_ref"],
            "GITHUB_BASE_REF": github["base_ref"], "GITHUB_ACTOR": github["actor"],
            "GITHUB_TRIGGERING_ACTOR": github["triggering_actor"],
            "GITHUB_RUN_ID": github["run_id"], "GITHUB_RUN_NUMBER": github["run_number"],
            "GITHUB_RUN_ATTEMPT": github["run_attempt"], "GITHUB_JOB": github["job"],
            "GITHUB_WORKFLOW": github["workflow"], "GITHUB_API_URL": github["api_url"],
            "GITHUB_GRAPHQL_URL": github["api_url"] + "/graphql",
            "GITHUB_SERVER_URL": github["server_url"], "RUNNER_OS": "Linux",
            "RUNNER_TEMP": context.runner["temp"],
        }
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(action_path)
        env.update(context.env)
        env.update(state.exported)
        env.update({k: context.substitute(v) for k, v in (step.get("env") or {}).items()})
        return env

    def _run_script(self, step: Mapping[str, Any], context: Context, state: _JobState,
                    name: str, key: str, timeout: float,
                    action_path: Path | None) -> StepResult:
        script = str(step["run"])
        if "${{" in script:
            raise WorkflowError(f"step {name!r}: ${{{{ }}}} inside run: (use env:)")
        shell = step.get("shell") or state.defaults.get("shell") or "bash"
        if shell != "bash":
            raise WorkflowError(f"step {name!r}: only shell bash is supported, not {shell!r}")
        files = {kind: state.run_dir / f"{key}.{kind}" for kind in
                 ("output", "env", "path", "summary")}
        for path in files.values():
            path.write_text("")
        env = self._step_env(step, context, state, action_path)
        env.update(GITHUB_OUTPUT=str(files["output"]), GITHUB_ENV=str(files["env"]),
                   GITHUB_PATH=str(files["path"]), GITHUB_STEP_SUMMARY=str(files["summary"]))
        script_path = state.run_dir / f"{key}.sh"
        script_path.write_text(script)
        cwd = state.workspace
        workdir = step.get("working-directory") or state.defaults.get("working-directory")
        if workdir:
            cwd = state.workspace / context.substitute(workdir)
        try:
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                                   str(script_path)], cwd=cwd, env=env, timeout=timeout,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            code, output = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or ""
            code = 124
            output = partial.decode() if isinstance(partial, bytes) else partial
            output += f"\nworkflow_runner: step timed out after {timeout:.0f}s\n"
        state.record(name, output)
        outputs = parse_command_file(files["output"].read_text())
        state.exported.update(parse_command_file(files["env"].read_text()))
        state.path_prefix[:0] = [p for p in files["path"].read_text().splitlines() if p]
        state.summary += files["summary"].read_text()
        return StepResult(name, step.get("id"), "success" if code == 0 else "failure",
                          code, outputs)

    def _run_uses(self, step: Mapping[str, Any], context: Context, state: _JobState,
                  job: JobResult, name: str, key: str, timeout: float) -> StepResult:
        uses = str(step["uses"])
        with_values = {k: context.substitute(v) for k, v in (step.get("with") or {}).items()}
        action = uses.split("@")[0]
        if action == "actions/checkout":
            ref = with_values.get("ref") or context.github["sha"]
            path = with_values.get("path") or "."
            repository = with_values.get("repository") or context.github["repository"]
            if repository != context.github["repository"]:
                tree = self.repos.get(repository, {}).get(ref)
                if tree is None:
                    raise WorkflowError(f"step {name!r}: no local copy of {repository}@{ref}")
                self._checkout(state.workspace, path, ref, tree)
                job.foreign_checkouts.append((path, repository, ref))
                return StepResult(name, step.get("id"), "success", 0)
            self._checkout(state.workspace, path, ref)
            job.checkouts.append((path, ref))
            return StepResult(name, step.get("id"), "success", 0)
        if action == "actions/setup-python":
            return StepResult(name, step.get("id"), "success", 0)
        if action == "actions/upload-artifact":
            return self._upload(with_values, state, name, step.get("id"))
        if uses.startswith(LOCAL_ACTION):
            action_path = state.workspace / uses[2:]
            if not (action_path / "action.yml").is_file():
                # As on GitHub: a local action exists only once something checked it out.
                raise WorkflowError(f"step {name!r}: no action.yml at {uses} in the workspace")
            return self._run_composite(step, with_values, context, state, job, name, key,
                                       timeout, action_path)
        raise WorkflowError(f"step {name!r}: action {uses!r} cannot run here")

    def _checkout(self, workspace: Path, relative: str, ref: str,
                  source: Path | None = None) -> None:
        source = source or self.trees.get(ref, self.workspace)
        target = (workspace / relative).resolve()
        if workspace.resolve() not in (target, *target.parents):
            raise WorkflowError(f"checkout path {relative!r} leaves the workspace")
        if target.exists() and target != workspace.resolve():
            shutil.rmtree(target)
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__",
                                                      "mlruns", "mlruns.db", "mlflow.db"))

    def _upload(self, with_values: Mapping[str, str], state: _JobState, name: str,
                step_id: str | None) -> StepResult:
        artifact = with_values.get("name") or "artifact"
        target = self.artifact_dir / state.run_dir.name / artifact
        if artifact in state.run.result.artifacts:
            # upload-artifact v4+ refuses a second artifact of the same name in one run
            state.record(name, f"##[error]an artifact named {artifact} already exists\n")
            return StepResult(name, step_id, "failure", 1)
        found = []
        for line in (with_values.get("path") or "").splitlines():
            pattern = line.strip()
            if not pattern:
                continue
            base = Path(pattern) if Path(pattern).is_absolute() else state.workspace / pattern
            found += [Path(p) for p in sorted(glob.glob(str(base)))]
        if not found:
            missing = with_values.get("if-no-files-found", "warn")
            state.record(name, f"no files found for artifact {artifact}\n")
            return StepResult(name, step_id, "failure" if missing == "error" else "success",
                              1 if missing == "error" else 0)
        target.mkdir(parents=True)
        for path in found:
            # like upload-artifact: a directory's files land at the artifact's root
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target / path.name)
        state.run.result.artifacts[artifact] = target
        return StepResult(name, step_id, "success", 0, {"artifact-id": str(len(
            state.run.result.artifacts))})

    def _run_composite(self, step: Mapping[str, Any], with_values: Mapping[str, str],
                       caller: Context, state: _JobState, job: JobResult, name: str,
                       key: str, timeout: float, action_path: Path) -> StepResult:
        action = yaml.safe_load((action_path / "action.yml").read_text())
        if (action.get("runs") or {}).get("using") != "composite":
            raise WorkflowError("action.yml is not a composite action")
        declared = action.get("inputs") or {}
        unknown = set(with_values) - set(declared)
        if unknown:
            raise WorkflowError(f"step {name!r}: action.yml has no inputs {sorted(unknown)}")
        github = dict(caller.github, action_path=str(action_path))
        base = Context(github=github, env=dict(caller.env), inputs={}, secrets=caller.secrets,
                       vars=caller.vars, steps={}, runner=caller.runner)
        inputs = {n: with_values[n] if n in with_values
                  else base.substitute((meta or {}).get("default", ""))
                  for n, meta in declared.items()}
        # The calling step's env reaches every step of the composite action.
        step_env = {k: caller.substitute(v) for k, v in (step.get("env") or {}).items()}
        inner = Context(github=github, env={**caller.env, **step_env}, inputs=inputs,
                        secrets=caller.secrets, vars=caller.vars, steps={},
                        runner=caller.runner)
        outcome, exit_code = "success", 0
        for index, inner_step in enumerate(action["runs"].get("steps") or []):
            if "run" in inner_step and not inner_step.get("shell"):
                raise WorkflowError(f"action.yml step {index}: composite run steps need shell")
            result = self._run_step(inner_step, inner, state, job, f"{key}-a{index}", timeout,
                                    action_path)
            if result.outcome == "failure" and not inner_step.get("continue-on-error"):
                outcome, exit_code = "failure", result.exit_code or 1
                inner.status.update(success=False, failure=True)
        outputs = {out: inner.substitute((meta or {}).get("value", ""))
                   for out, meta in (action.get("outputs") or {}).items()}
        return StepResult(name, step.get("id"), outcome, exit_code, outputs)


def ref_sha(repository: str, ref: str) -> str:
    """The commit SHA the runner gives another repository's ref (a stand-in, stable)."""
    return hashlib.sha1(f"{repository}@{ref}".encode()).hexdigest()


def _triggers(doc: Mapping[str, Any]) -> dict[str, Any]:
    triggers = doc.get("on", doc.get(True))
    if isinstance(triggers, str):
        return {triggers: None}
    if isinstance(triggers, list):
        return {name: None for name in triggers}
    return dict(triggers or {})


def _typed_inputs(spec: Mapping[str, Any], given: Mapping[str, Any],
                  where: str) -> dict[str, Any]:
    """Inputs as GitHub types them: booleans, numbers, choices, defaults, required."""
    unknown = set(given) - set(spec)
    if unknown:
        raise WorkflowError(f"{where}: unknown inputs {sorted(unknown)}")
    inputs: dict[str, Any] = {}
    for name, meta in spec.items():
        meta = meta or {}
        kind = meta.get("type", "string")
        empty: Any = False if kind == "boolean" else ""
        value = given.get(name, meta.get("default", empty))
        if kind == "boolean":
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        elif kind == "number":
            value = _number(value)
        elif kind == "choice" and value not in meta.get("options", []):
            raise WorkflowError(f"input {name}: {value!r} is not one of {meta['options']}")
        else:
            value = to_text(value)
        if meta.get("required") and value in ("", None):
            raise WorkflowError(f"{where}: input {name} is required")
        inputs[name] = value
    return inputs


def _resolve_concurrency(concurrency: Any, context: Context) -> dict[str, Any] | None:
    if concurrency is None:
        return None
    if isinstance(concurrency, str):
        return {"group": context.substitute(concurrency), "cancel-in-progress": False}
    return {k: context.substitute(v) if k == "group" else context.value(v)
            for k, v in concurrency.items()}


def _matrix(strategy: Any) -> list[dict[str, Any]]:
    matrix = (strategy or {}).get("matrix") if isinstance(strategy, dict) else None
    if not matrix:
        return [{}]
    if not isinstance(matrix, dict):
        raise WorkflowError("a matrix from an expression is not simulated")
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combos: list[dict[str, Any]] = [{}]
    for axis, values in axes.items():
        if not isinstance(values, list):
            raise WorkflowError(f"matrix axis {axis!r} must be a list")
        combos = [{**c, axis: v} for c in combos for v in values]
    if "exclude" in matrix or "include" in matrix:
        raise WorkflowError("matrix include/exclude are not simulated")
    return combos


@dataclass
class _JobState:
    event_path: Path
    run_dir: Path
    defaults: dict[str, Any]
    masks: list[str]
    workspace: Path
    run: _Run
    job: JobResult
    exported: dict[str, str] = field(default_factory=dict)
    path_prefix: list[str] = field(default_factory=list)
    summary: str = ""
    raw: str = ""
    lines: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    stopped_by: str | None = None       # the token that resumes after ::stop-commands::

    def home(self) -> Path:
        home = self.workspace.parent / f"{self.workspace.name}-home"
        home.mkdir(exist_ok=True)
        return home

    def record(self, step_name: str, output: str) -> None:
        """Keep the raw output; consume workflow commands as the runner does."""
        self.raw += output
        self.lines.append(f"## {step_name}")
        for line in output.splitlines():
            command = parse_command(line)
            if self.stopped_by is not None:
                if command and command[0] == self.stopped_by and not command[2]:
                    self.stopped_by = None
                    continue
                self.lines.append(line)
                continue
            if command and command[0] == "add-mask":
                self.masks.append(_unescape(command[2]))
                continue
            if command and command[0] == "stop-commands" and command[2]:
                self.stopped_by = command[2].lower()
                continue
            if command and command[0] in ("notice", "warning", "error"):
                self.annotations.append(Annotation(command[0], command[2],
                                                   _unescape(command[1].get("title", ""))))
            self.lines.append(line)

    def visible_log(self) -> str:
        text = "\n".join(self.lines)
        for secret in sorted({m for m in self.masks if m}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _unescape(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":") \
        .replace("%2C", ",").replace("%25", "%")
