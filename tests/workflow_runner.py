"""Run a GitHub Actions workflow's jobs on this machine, as far as it allows.

It reads the workflow YAML, checks that the event triggers it, keeps the jobs whose `if:`
holds, and runs their steps in order with bash and the environment GitHub would give:
an event file, GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY per step,
the default GITHUB_* variables, and `${{ }}` expressions in `env:`, `with:` and `if:`.
`uses: ./` runs the composite action.yml; checkout and setup-python are no-ops because
the workspace and the venv are already there. Anything else it cannot do honestly
(another action, another shell, an expression outside its small grammar) is an error,
never a silent pass. Like GitHub, it withholds secrets from fork and Dependabot runs.
"""
from __future__ import annotations

import fnmatch
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
from typing import Any, Callable, Mapping

import yaml

NO_OP_ACTIONS = ("actions/checkout", "actions/setup-python")
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
        if self._take()[1] != ")" or name not in STATUS_FUNCTIONS:
            raise WorkflowError(f"expression {self.text!r}: only {', '.join(STATUS_FUNCTIONS)}"
                                "() without arguments are supported")
        return self.status[name]


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

    def lookup(self, path: str) -> Any:
        root, *rest = path.split(".")
        if root == "secrets":
            return self.secrets.get(rest[0], "") if rest else None
        if root not in ("github", "env", "inputs", "vars", "steps", "runner"):
            raise WorkflowError(f"context {root!r} is not supported (in {path!r})")
        value: Any = getattr(self, root)
        for key in rest:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def evaluate(self, expression: str) -> Any:
        return _Parser(expression, self.lookup, self.status).parse()

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


_COMMAND = re.compile(r"^::([a-z-]+)(?: ([^:]*))?::(.*)$")


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


@dataclass
class JobResult:
    job_id: str
    name: str
    conclusion: str     # success | failure | skipped
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    log: str = ""        # what a maintainer sees: commands consumed, masked values as ***
    raw_output: str = ""  # everything the steps printed, before the runner's masking
    annotations: list[Annotation] = field(default_factory=list)
    environment: str | None = None
    concurrency: dict[str, Any] | None = None
    permissions: Any = None

    def step(self, name_or_id: str) -> StepResult:
        for step in self.steps:
            if name_or_id in (step.id, step.name):
                return step
        raise KeyError(name_or_id)


@dataclass
class RunResult:
    triggered: bool
    jobs: dict[str, JobResult] = field(default_factory=dict)

    @property
    def ran(self) -> list[JobResult]:
        return [job for job in self.jobs.values() if job.conclusion != "skipped"]

    @property
    def conclusion(self) -> str:
        return "failure" if any(j.conclusion == "failure" for j in self.jobs.values()) \
            else "success"


# --- events -----------------------------------------------------------------------------

def _repo(full_name: str) -> dict[str, Any]:
    owner = full_name.split("/")[0]
    return {"full_name": full_name, "name": full_name.split("/")[1],
            "owner": {"login": owner}, "fork": False}


def pull_request_event(number: int, repository: str, *, head_repo: str | None = None,
                       author: str = "contributor", head_sha: str = "1" * 40,
                       base_ref: str = "main", head_ref: str = "feature") -> dict[str, Any]:
    head = _repo(head_repo or repository)
    head["fork"] = head["full_name"] != repository
    return {"action": "synchronize", "number": number, "repository": _repo(repository),
            "sender": {"login": author},
            "pull_request": {"number": number, "user": {"login": author},
                             "head": {"ref": head_ref, "sha": head_sha, "repo": head},
                             "base": {"ref": base_ref, "sha": "2" * 40,
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


# --- the runner -------------------------------------------------------------------------

class WorkflowRunner:
    """Runs one workflow file in `workspace` for one event at a time."""

    def __init__(self, workflow: Path, workspace: Path, *, python_bin: Path,
                 secrets: Mapping[str, str] | None = None,
                 environment_secrets: Mapping[str, Mapping[str, str]] | None = None,
                 variables: Mapping[str, str] | None = None,
                 api_url: str = "https://api.github.com", token: str = "ghs_runner",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.workflow_path = workflow
        self.doc = yaml.safe_load(workflow.read_text())
        # YAML 1.1 reads the bare key `on` as True.
        self.triggers = self.doc.get("on", self.doc.get(True))
        self.workspace, self.python_bin = workspace, python_bin
        self.secrets = dict(secrets or {})
        self.environment_secrets = {k: dict(v) for k, v in (environment_secrets or {}).items()}
        self.variables = dict(variables or {})
        self.api_url, self.token, self.timeout = api_url, token, timeout
        self._tmp = Path(tempfile.mkdtemp(prefix="workflow-runner-"))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> WorkflowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- triggering --
    def triggered_by(self, event_name: str, payload: Mapping[str, Any]) -> bool:
        triggers = self.triggers
        if isinstance(triggers, str):
            triggers = {triggers: None}
        elif isinstance(triggers, list):
            triggers = {name: None for name in triggers}
        if not isinstance(triggers, dict) or event_name not in triggers:
            return False
        spec = triggers[event_name] or {}
        branch = None
        if event_name == "push":
            branch = str(payload.get("ref", "")).removeprefix("refs/heads/")
        elif event_name == "pull_request":
            branch = payload["pull_request"]["base"]["ref"]
        if branch is not None and "branches" in spec:
            return any(fnmatch.fnmatchcase(branch, pattern) for pattern in spec["branches"])
        return True

    def _dispatch_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        triggers = self.triggers if isinstance(self.triggers, dict) else {}
        spec = (triggers.get("workflow_dispatch") or {}).get("inputs") or {}
        unknown = set(given) - set(spec)
        if unknown:
            raise WorkflowError(f"unknown workflow_dispatch inputs: {sorted(unknown)}")
        inputs: dict[str, Any] = {}
        for name, meta in spec.items():
            meta = meta or {}
            empty: Any = False if meta.get("type") == "boolean" else ""
            value = given.get(name, meta.get("default", empty))
            if meta.get("type") == "boolean":
                value = value if isinstance(value, bool) else str(value).lower() == "true"
            elif meta.get("type") == "choice" and value not in meta.get("options", []):
                raise WorkflowError(f"input {name}: {value!r} is not one of {meta['options']}")
            if meta.get("required") and value in ("", None):
                raise WorkflowError(f"input {name} is required")
            inputs[name] = value
        return inputs

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
        result = RunResult(triggered=True)
        for job_id, job in (self.doc.get("jobs") or {}).items():
            context = Context(github=dict(github, job=job_id), env={},
                              inputs=dispatch_inputs, secrets={}, vars=self.variables,
                              steps={}, runner=self._runner_context(run_dir))
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if any(result.jobs.get(n) is None or result.jobs[n].conclusion != "success"
                   for n in needs) or not context.condition(job.get("if")):
                result.jobs[job_id] = JobResult(job_id, str(job.get("name", job_id)), "skipped")
                continue
            result.jobs[job_id] = self._run_job(job_id, job, context, event_name, event,
                                                event_path, run_dir)
        return result

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
        return {"event_name": event_name, "event": event, "repository": repository,
                "repository_owner": repository.split("/")[0], "actor": actor,
                "triggering_actor": actor, "sha": sha, "ref": ref,
                "ref_name": ref.removeprefix("refs/heads/"), "head_ref": head_ref,
                "base_ref": base_ref, "workspace": str(self.workspace), "token": self.token,
                "api_url": self.api_url, "server_url": "https://github.com",
                "run_id": "1001", "run_number": "7", "run_attempt": "1",
                "workflow": str(self.doc.get("name", self.workflow_path.name))}

    def _runner_context(self, run_dir: Path) -> dict[str, str]:
        temp = run_dir / "runner-temp"
        temp.mkdir(exist_ok=True)
        return {"os": "Linux", "arch": "X64", "temp": str(temp)}

    def _secrets_for(self, job: Mapping[str, Any], event_name: str,
                     event: Mapping[str, Any], actor: str) -> dict[str, str]:
        """What GitHub hands a job: nothing for forks and Dependabot (GITHUB_TOKEN aside)."""
        if event_name == "pull_request":
            head = event["pull_request"]["head"]["repo"]["full_name"]
            if head != event["repository"]["full_name"]:
                return {}
        if actor == "dependabot[bot]":
            return {}
        secrets = dict(self.secrets)
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        if environment:
            secrets.update(self.environment_secrets.get(str(environment), {}))
        return secrets

    def _run_job(self, job_id: str, job: Mapping[str, Any], context: Context,
                 event_name: str, event: Mapping[str, Any], event_path: Path,
                 run_dir: Path) -> JobResult:
        context.secrets = self._secrets_for(job, event_name, event, context.github["actor"])
        context.env = {k: context.substitute(v) for k, v in (self.doc.get("env") or {}).items()}
        context.env.update({k: context.substitute(v) for k, v in (job.get("env") or {}).items()})
        environment = job.get("environment")
        concurrency = job.get("concurrency")
        if isinstance(concurrency, dict):
            concurrency = {k: context.substitute(v) if k == "group" else v
                           for k, v in concurrency.items()}
        result = JobResult(job_id, context.substitute(job.get("name", job_id)), "success",
                           environment=environment.get("name")
                           if isinstance(environment, dict) else environment,
                           concurrency=concurrency, permissions=job.get("permissions"))
        defaults = {**((self.doc.get("defaults") or {}).get("run") or {}),
                    **((job.get("defaults") or {}).get("run") or {})}
        state = _JobState(event_path=event_path, run_dir=run_dir, defaults=defaults,
                          masks=[v for v in context.secrets.values() if v] + [self.token])
        timeout = float(job.get("timeout-minutes", self.timeout / 60)) * 60
        for index, step in enumerate(job.get("steps") or []):
            outcome = self._run_step(step, context, state, result, f"{job_id}-{index}",
                                     min(timeout, self.timeout))
            result.steps.append(outcome)
            if outcome.outcome == "failure" and not step.get("continue-on-error"):
                result.conclusion = "failure"
                context.status.update(success=False, failure=True)
        result.summary, result.log = state.summary, state.visible_log()
        result.raw_output, result.annotations = state.raw, state.annotations
        return result

    def _run_step(self, step: Mapping[str, Any], context: Context, state: _JobState,
                  job: JobResult, key: str, timeout: float,
                  action_path: Path | None = None) -> StepResult:
        name = str(step.get("name") or step.get("run") or step.get("uses") or key)
        step_id = step.get("id")
        started = time.monotonic()
        if not context.condition(step.get("if")):
            result = StepResult(name, step_id, "skipped")
        elif "run" in step:
            result = self._run_script(step, context, state, name, key, timeout, action_path)
        elif "uses" in step:
            result = self._run_uses(step, context, state, job, name, key, timeout)
        else:
            raise WorkflowError(f"step {name!r} has neither run nor uses")
        result.seconds = time.monotonic() - started
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
            "GITHUB_EVENT_PATH": str(state.event_path), "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
            "GITHUB_SHA": github["sha"], "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref_name"], "GITHUB_HEAD_REF": github["head_ref"],
            "GITHUB_BASE_REF": github["base_ref"], "GITHUB_ACTOR": github["actor"],
            "GITHUB_TRIGGERING_ACTOR": github["triggering_actor"],
            "GITHUB_RUN_ID": github["run_id"], "GITHUB_RUN_NUMBER": github["run_number"],
            "GITHUB_RUN_ATTEMPT": github["run_attempt"], "GITHUB_JOB": github["job"],
            "GITHUB_WORKFLOW": github["workflow"], "GITHUB_API_URL": github["api_url"],
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
        cwd = self.workspace
        workdir = step.get("working-directory") or state.defaults.get("working-directory")
        if workdir:
            cwd = self.workspace / context.substitute(workdir)
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
        if uses.split("@")[0] in NO_OP_ACTIONS:
            if uses.startswith("actions/checkout") and with_values.get("path"):
                self._copy_workspace(with_values["path"])
            return StepResult(name, step.get("id"), "success", 0)
        if uses.startswith(LOCAL_ACTION):
            return self._run_composite(step, with_values, context, state, job, name, key,
                                       timeout, self.workspace / uses[2:])
        raise WorkflowError(f"step {name!r}: action {uses!r} cannot run here")

    def _copy_workspace(self, relative: str) -> None:
        # Checking out "another commit" of the same repository: here, the same files.
        target = self.workspace / relative
        if target.exists():
            shutil.rmtree(target)
        top = relative.split("/")[0]
        shutil.copytree(self.workspace, target, symlinks=True,
                        ignore=shutil.ignore_patterns(top, ".git", ".venv", "__pycache__"))

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


@dataclass
class _JobState:
    event_path: Path
    run_dir: Path
    defaults: dict[str, Any]
    masks: list[str]
    exported: dict[str, str] = field(default_factory=dict)
    path_prefix: list[str] = field(default_factory=list)
    summary: str = ""
    raw: str = ""
    lines: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)

    def home(self) -> Path:
        home = self.run_dir / "home"
        home.mkdir(exist_ok=True)
        return home

    def record(self, step_name: str, output: str) -> None:
        """Keep the raw output; consume workflow commands as the runner does."""
        self.raw += output
        self.lines.append(f"## {step_name}")
        for line in output.splitlines():
            command = _COMMAND.match(line)
            if command and command.group(1) == "add-mask":
                self.masks.append(command.group(3))
                continue
            if command and command.group(1) in ("notice", "warning", "error"):
                props = dict(p.split("=", 1) for p in (command.group(2) or "").split(",")
                             if "=" in p)
                self.annotations.append(Annotation(command.group(1), command.group(3),
                                                   props.get("title", "")))
            self.lines.append(line)

    def visible_log(self) -> str:
        text = "\n".join(self.lines)
        for secret in sorted({m for m in self.masks if m}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text
