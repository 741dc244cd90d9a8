"""Helpers the GitHub workflows call around the gate, from the trusted checkout.

    python -m gate.commands.ci verify-head --pr N --sha SHA     the reviewed SHA is the head
    python -m gate.commands.ci changed --pr N --paths GLOBS     does the PR touch the model?
    python -m gate.commands.ci tag-run --run-id R --commit SHA --branch REF [--pr N]

Each writes its findings as step outputs and answers with the gate's exit codes (0 done,
2 bad input, 3 GitHub or MLflow refused or unreachable, or a bug), one redacted line on
stderr on error: the same floor as `gate` (gate.commands.errors).
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Mapping, Sequence

from gate import github
from gate.commands import errors
from gate.delivery import deliver
from gate.delivery.outputs import Message, plain
from gate.github import runner_log
from gate.errors import InputError

_SHA = re.compile(r"^[0-9a-f]{40}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _client(environ: Mapping[str, str]) -> github.GitHubClient:
    return github.GitHubClient(environ.get("GITHUB_API_URL", "https://api.github.com"),
                               environ.get("GITHUB_TOKEN", ""),
                               graphql_url=environ.get("GITHUB_GRAPHQL_URL") or None)


def _repo(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    repo = args.repo or environ.get("GITHUB_REPOSITORY", "")
    if not repo:
        raise InputError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    return repo


def verify_head(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The pull request's head, which must be the very commit the maintainer reviewed.

    A 40-hex ref fetches any commit of the fork network, and the head at dispatch time
    may already be a push made after the review: only an exact match runs.
    """
    sha = args.sha.strip().lower()
    if not _SHA.match(sha):
        raise InputError("--sha must be the full 40-character commit SHA you reviewed")
    pull = _client(environ).pull_request(_repo(args, environ), args.pr)
    head = pull.get("head") or {}
    actual = str(head.get("sha") or "").lower()
    if pull.get("state") != "open":
        raise InputError(f"pull request #{args.pr} is {pull.get('state') or 'not open'}")
    if actual != sha:
        raise InputError(f"pull request #{args.pr} has head {actual[:12] or 'none'}, not the "
                         f"reviewed {sha[:12]}: review the new commits, then dispatch again "
                         "with the SHA you reviewed")
    repo = (head.get("repo") or {}).get("full_name") or ""
    return {"head_sha": actual, "head_ref": str(head.get("ref") or ""),
            "head_repo": str(repo)}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern syntax: `*` stays within a directory, `**` crosses them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Like a workflow `paths:` filter: the last pattern that matches decides, `!` excludes."""
    included = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if glob_regex(pattern[1:] if negated else pattern).match(path):
            included = not negated
    return included


def changed(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    patterns = [p.strip() for p in args.paths.splitlines() if p.strip()
                and not p.strip().startswith("#")]
    if not patterns:
        return {"model": "true", "reason": "no paths filter: every change runs the model"}
    files = _client(environ).pull_request_files(_repo(args, environ), args.pr)
    hits = [path for path in files if matches(path, patterns)]
    if hits:
        return {"model": "true", "reason": f"{len(hits)} changed files affect the model"}
    return {"model": "false",
            "reason": f"none of the {len(files)} changed files affects the model"}


def tag_run(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """Record the verified commit on a run the fork's trainer logged under main's commit."""
    from gate.mlflowstore.registry import Registry
    from gate.mlflowstore.tracking import resolve_tracking_uri

    if not _RUN_ID.match(args.run_id):
        raise InputError(f"--run-id {args.run_id[:40]!r} is not an MLflow run id")
    if not _SHA.match(args.commit):
        raise InputError("--commit must be a full 40-character SHA")
    tags = {"git.commit": args.commit, "git.branch": args.branch,
            "mlflow.source.git.commit": args.commit}
    if args.pr:
        tags["github.pr"] = str(args.pr)
    Registry(resolve_tracking_uri()).promotions.tag_run(args.run_id, tags)
    return {"commit": args.commit}


COMMANDS = {"verify-head": verify_head, "changed": changed, "tag-run": tag_run}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gate.commands.ci")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal "
                        "errors (also GATE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify-head", help="the reviewed SHA is the PR's head")
    verify.add_argument("--pr", type=int, required=True)
    verify.add_argument("--sha", required=True)
    verify.add_argument("--repo")
    paths = sub.add_parser("changed", help="does the PR change a file matching --paths?")
    paths.add_argument("--pr", type=int, required=True)
    paths.add_argument("--paths", required=True, help="one glob per line; `!` excludes")
    paths.add_argument("--repo")
    tag = sub.add_parser("tag-run", help="record the verified commit on the run")
    tag.add_argument("--run-id", required=True)
    tag.add_argument("--commit", required=True)
    tag.add_argument("--branch", default="")
    tag.add_argument("--pr", type=int)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    args = build_parser().parse_args(argv)
    if environ.get("GITHUB_ACTIONS") == "true":
        runner_log.guard_streams()

    def run() -> int:
        outputs = COMMANDS[args.command](args, environ)
        text = "".join(f"{key}: {value}\n" for key, value in outputs.items())
        deliver.send(Message(plain(text), outputs=outputs), deliver.Targets(), "",
                     environ=environ)
        return 0

    return errors.run_entry(run, lambda: args.debug or errors.debug_from(environ), environ)


if __name__ == "__main__":
    raise SystemExit(main())
