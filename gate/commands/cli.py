"""Command line: parse, run the steps in order, and map errors to exit codes.

This is the only place that knows exit codes: 0 passed, 1 blocked, 2 bad input,
3 infrastructure. A blocked model is a result, not an exception.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any, TYPE_CHECKING, Sequence

from gate import contract
from gate.commands import errors, naming
from gate.core import config as config_mod
from gate.delivery import deliver, verdict_json
from gate.delivery.outputs import Message, plain, step_outputs
from gate import github
from gate.github import runner_log
from gate.errors import GateError, InputError
from gate.core.redaction import secrets_in
from gate.mlflowstore.tracking import apply_client_defaults, resolve_tracking_uri, store_note

if TYPE_CHECKING:
    from gate.core.ports import Store
    from gate.sandbox import Pending

DEFAULT_CONFIG = "gate.toml"


class _UsageExit(SystemExit):
    """argparse's exit 2, with the line it printed (for the verdict JSON)."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line


EXIT_CODES = """exit codes (every command):
  0  passed; promoted where asked; also the first model (no Production yet)
  1  blocked: a regression or a threshold failed; nothing was promoted
  2  bad input: usage, config, unknown run or model, a required metric missing
  3  infrastructure: MLflow or GitHub unreachable or refusing, Production moved"""


MODEL_ID_HELP = ("an MLflow 3 logged model to judge instead of a run (models:/m-...): "
                 "its own metrics, its files; registered by its id")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # every command's --help ends with the exit codes, as the README's table
        kwargs.setdefault("epilog", EXIT_CODES)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:   # type: ignore[override]
        # argparse prints usage and exits 2 itself; keep it to one line, redacted: it
        # may quote a 10 KB argument, or a token passed in the wrong place
        line = f"{errors.error_line(message)} (see `python -m gate {self._cmd()} --help`)"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{errors.PREFIX}{line}\n")
        raise _UsageExit(line)

    def _cmd(self) -> str:
        return self.prog.split(" ", 1)[1] if " " in self.prog else ""


def version() -> str:
    """The installed distribution's version; the source's when run from a checkout."""
    from importlib import metadata

    try:
        return metadata.version("mlflow-model-gate")
    except metadata.PackageNotFoundError:
        from gate import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gate", description="A CI quality gate for models tracked in MLflow.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal "
                        "errors (also GATE_DEBUG=1)")
    # accepted after the command too; SUPPRESS keeps a subcommand from resetting it
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, new_model: bool = False) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="gate.toml path")
        p.add_argument("--model-name", help="registered model name; overrides [model] name "
                       "of --config (needed only when the config names none)")
        if new_model:
            p.add_argument("--new-model", action="store_true", help=naming.NEW_MODEL_HELP)

    check = sub.add_parser("check", parents=[debug], help="compare a run (or logged model) with "
                           "Production")
    judged = check.add_mutually_exclusive_group(required=True)
    judged.add_argument("--run-id", metavar="RUN_ID",
                        help="the MLflow run to judge (the trainer prints it, or --json's run_id)")
    judged.add_argument("--model-id", metavar="m-ID", help=MODEL_ID_HELP)
    common(check, new_model=True)
    check.add_argument("--promote", action="store_true", help="promote it if it passes")
    check.add_argument("--against", metavar="RUN_ID|vN",
                       help="compare with this run or version instead of Production "
                            "(never promotes)")
    check.add_argument("--config-diff", metavar="FILE", help="a diff of the config a pull "
                       "request proposes; the report shows it beside the verdict")
    _outputs(check)

    promote = sub.add_parser("promote", parents=[debug], help="promote a run or version (gated)")
    common(promote, new_model=True)
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", metavar="RUN_ID", help="the MLflow run to promote")
    which.add_argument("--version", metavar="N", help="a registered version of the model: "
                       "its run, or the logged model it was registered from")
    which.add_argument("--model-id", metavar="m-ID", help=MODEL_ID_HELP)
    promote.add_argument("--force", action="store_true", help="override a failed gate")
    promote.add_argument("--reason", help="why (required with --force; recorded)")
    _outputs(promote)

    rollback = sub.add_parser("rollback", parents=[debug],
                              help="move Production back to the previous one")
    common(rollback)
    rollback.add_argument("--reason", help="why (recorded on the version rolled back)")

    status = sub.add_parser("status", parents=[debug], help="show the champion and its history")
    common(status)
    status.add_argument("--json", metavar="PATH", help="write the table as JSON")

    verify = sub.add_parser(
        "verify", parents=[debug],
        help="check that a version's model files are those the gate verified (run it "
             "before serving)",
        description="Download the model files of a registered version, digest them and "
                    "compare with the digest the gate recorded when it promoted the "
                    "version. Exit 0 only when they match and the gate promoted it; 1 when "
                    "the files differ or the gate never verified it; 2 for a bad "
                    "reference, model, version or alias; 3 for the infrastructure.")
    verify.add_argument("reference", metavar="models:/NAME@ALIAS|models:/NAME/VERSION",
                        help="the version to check, as a deployment would load it")
    verify.add_argument("--json", metavar="PATH", help="write the result as JSON")

    prune = sub.add_parser("prune", parents=[debug],
                           help="list (or --yes: delete) old CI runs that back no model version")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="only CI runs that started more than DAYS days ago")
    prune.add_argument("--keep", type=int, default=0, metavar="N",
                       help="keep the N newest CI runs of each experiment (default 0)")
    prune.add_argument("--experiment", action="append", metavar="NAME",
                       help="experiment name or id, repeatable (default: model-gate)")
    prune.add_argument("--yes", action="store_true", help="delete (default: dry run)")

    holdout = sub.add_parser("holdout", parents=[debug],
                             help="sealed eval sets on the tracking server")
    holdout_sub = holdout.add_subparsers(dest="holdout_command", required=True,
                                         metavar="publish", parser_class=_Parser)
    publish = holdout_sub.add_parser(
        "publish", parents=[debug], help="store an eval set the gate can read and a pull "
        "request cannot; prints the [eval] lines for gate.toml")
    publish.add_argument("file", metavar="FILE", help="the rows: .csv or .parquet")
    publish.add_argument("--target", required=True, metavar="COL", help="the label column")
    publish.add_argument("--name", required=True, help="what the report calls it")
    publish.add_argument("--experiment", default=contract.HOLDOUT_EXPERIMENT,
                         help=f"the sealed experiment (default: {contract.HOLDOUT_EXPERIMENT})")

    skip = sub.add_parser("skip", parents=[debug], help="report that the gate did not run, and why")
    skip.add_argument("--reason", required=True, help="why the gate did not run")
    skip.add_argument("--model-name", default="model", help="the model the report names")
    skip.add_argument("--summary", metavar="PATH", help="default: $GITHUB_STEP_SUMMARY")
    skip.add_argument("--next", help="what to do about it (default: how to run the gate)")
    skip.add_argument("--comment", action="store_true",
                      help="also post it as the PR comment (replaces an older verdict)")
    skip.add_argument("--pr", type=int, help="PR number (default: from the event file)")
    return parser


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="write the verdict as JSON")
    p.add_argument("--summary", metavar="PATH", help="default: $GITHUB_STEP_SUMMARY")
    p.add_argument("--comment", action="store_true", help="post or update the PR comment")
    p.add_argument("--pr", type=int, help="PR number (default: from the event file)")


def main(argv: Sequence[str] | None = None) -> int:
    parsed: list[argparse.Namespace] = []     # the flags, once parsed: --debug, --json

    def run() -> int:
        args = build_parser().parse_args(argv)
        parsed.append(args)
        apply_client_defaults()     # before anything imports mlflow: some are read at import
        _quiet_mlflow()
        _mask_secrets()
        return _dispatch(args)

    def debug() -> bool:
        return errors.debug_from(os.environ) or any(getattr(a, "debug", False) for a in parsed)

    def verdict_on_error(failure: errors.Failure) -> None:
        _error_verdict(parsed[0] if parsed else None, argv, failure)

    try:
        return errors.run_entry(run, debug, os.environ, verdict_on_error)
    except _UsageExit as exc:     # argparse's exit 2 stays a SystemExit, with a verdict
        _error_verdict(None, argv, errors.Failure(2, exc.line))
        raise


def _error_verdict(args: argparse.Namespace | None, argv: Sequence[str] | None,
                   failure: errors.Failure) -> None:
    """Write the verdict JSON of an exit with no verdict (2, 3) when --json asked for
    one: a workflow reads the gate's own error, not a missing key. An unwritable --json
    path was reported already (preflight): nothing more to say."""
    if args is not None:
        command, path = args.command, getattr(args, "json", None)
        run_id, model = getattr(args, "run_id", None), getattr(args, "model_name", None)
    else:       # a usage error: the flags as typed, as far as they can be read
        tokens = list(sys.argv[1:] if argv is None else argv)
        command = next((t for t in tokens if not t.startswith("-")), None)
        path, run_id = _flag(tokens, "--json"), _flag(tokens, "--run-id")
        model = _flag(tokens, "--model-name")
    hook = getattr(args, "webhook_env", None) or deliver.Targets.webhook_env
    path = path if command in ("check", "promote") else None
    if command not in ("check", "promote", "rollback") or not (path or os.environ.get(hook)):
        return
    run_id, model = (errors.error_line(v) if v is not None else None for v in (run_id, model))
    document = verdict_json.error_document(failure.exit_code, failure.line,
                                           candidate_run_id=run_id, model_name=model)
    # the JSON file and the team's webhook only: no step outputs or annotations
    environ = {k: v for k, v in os.environ.items() if k not in ("GITHUB_OUTPUT", "GITHUB_ACTIONS")}
    with contextlib.suppress(GateError, OSError, ValueError):
        deliver.send(Message(plain(""), data=document),
                     deliver.Targets(json_path=path, webhook_env=hook), model or "",
                     environ=environ)


def _flag(tokens: list[str], name: str) -> str | None:
    for i, token in enumerate(tokens):
        if token == name and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(name + "="):
            return token[len(name) + 1:]
    return None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "skip":
        return _skip(args)
    if args.command == "prune":
        return _prune(args)
    if args.command == "holdout":
        return _holdout(args)
    if args.command == "verify":
        from gate.commands.verify import verify

        return verify(_store(), args.reference, sys.stdout, args.json)
    configured = config_mod.load(args.config)
    cfg = configured.with_model_name(args.model_name)
    if not cfg.model.name:
        raise InputError(f"no model name: set [model] name in {args.config} or pass "
                         "--model-name")
    args.webhook_env = cfg.notify.webhook_url_env     # for an error's verdict, too
    if args.command in ("check", "promote"):
        from gate.evidence.warm import candidate_sandbox

        # the candidate's sandbox imports MLflow while this process does the same
        with candidate_sandbox() as warm:
            return _judge(args, configured, cfg, _store(), warm)
    registry = _store()
    from gate.commands import history

    if args.command == "rollback":
        targets = _targets(args)
        deliver.preflight(targets)      # Production moves only when the outputs can be written
        return history.rollback(registry, cfg, args.reason, sys.stdout, targets)
    return history.status(registry, cfg, sys.stdout, args.json)


def _judge(args: argparse.Namespace, configured: config_mod.Config, cfg: config_mod.Config,
           registry: Store, warm: Pending | None) -> int:
    """check or promote; `warm`: the candidate's sandbox, started already."""
    # a name that would be registered: check --promote, promote a run or a model
    creates = args.promote if args.command == "check" else args.version is None
    said = naming.known_model(registry, cfg.model.name, configured, creates=creates,
                              new_model=args.new_model)
    warnings = (said,) if said else ()
    if args.command == "promote":
        return _promote(args, registry, cfg, warnings, warm)
    from gate.commands.check import run_gate

    if args.against is not None and args.promote:
        raise InputError("--against compares with a baseline of your choice and never "
                         "promotes: drop --promote")
    return run_gate(registry, cfg, args.run_id or "", promote=args.promote,
                    targets=_targets(args), against=args.against,
                    model_id=_model_id(args.model_id), warnings=warnings,
                    warm=warm).exit_code


def _targets(args: argparse.Namespace) -> deliver.Targets:
    return deliver.targets_from(args, webhook_env=args.webhook_env)


def _store() -> Store:
    from gate.mlflowstore.session import point_mlflow_at
    from gate.mlflowstore.registry import Registry

    note = store_note()     # before point_mlflow_at, which may export the URI it sets
    uri = resolve_tracking_uri()
    point_mlflow_at(uri)
    return Registry(uri, note=note)


def _promote(args: argparse.Namespace, registry: Store, cfg: config_mod.Config,
             warnings: tuple[str, ...], warm: Pending | None = None) -> int:
    from gate.commands.check import run_gate

    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise InputError("--force needs --reason TEXT: a forced promotion is audited")
    run_id, model_id = args.run_id or "", _model_id(args.model_id)
    if args.version is not None:
        run_id, model_id = naming.version_candidate(registry, cfg.model.name, args.version)
    hint = ("re-run with `--force --reason TEXT`" if not args.force else "")
    return run_gate(registry, cfg, run_id, promote=True, targets=_targets(args),
                    force_reason=reason if args.force else None,
                    override_hint=hint, model_id=model_id, warnings=warnings,
                    warm=warm).exit_code


def _model_id(given: str | None) -> str | None:
    """`m-...`, also as `models:/m-...` (how MLflow prints it)."""
    return given.strip().removeprefix("models:/") if given else None


def _prune(args: argparse.Namespace) -> int:
    from gate.mlflowstore.prune import prune_at

    report = prune_at(resolve_tracking_uri(), args.experiment or ["model-gate"],
                      args.older_than, args.keep, args.yes)
    print("\n".join(report.lines()))
    return 0


def _holdout(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gate.commands.holdout import publish
    from gate.mlflowstore.registry import Registry

    published = publish(Registry(resolve_tracking_uri()), Path(args.file), args.target,
                        args.name, args.experiment)
    print("\n".join(published.lines()))
    return 0


def _skip(args: argparse.Namespace) -> int:
    from gate.report.markdown import render_skipped

    how = args.next or ("A maintainer can run it after review: Actions → model-gate manual → "
                        "`check-pr` with the PR number and the reviewed commit SHA, or "
                        "locally `python -m gate check --run-id RUN`.")
    markdown = render_skipped(args.reason, args.model_name, how)
    document = {"passed": False, "status": "skipped", "model_name": args.model_name,
                "reason": args.reason}
    # With --comment, the skip replaces the sticky comment: a verdict from an earlier
    # commit must not outlive a run that judged nothing.
    deliver.send(Message(plain(markdown, markdown), data=document,
                         outputs=step_outputs(document),
                         annotations=(github.notice(f"Model gate skipped: {args.reason}",
                                                    title="model gate"),)),
                 deliver.targets_from(args), args.model_name)
    return 0


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _mask_secrets() -> None:
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    runner_log.guard_streams()
    for line in github.mask_lines(secrets_in(os.environ)):
        print(line)
