"""Command line: parse, run the steps in order, and map errors to exit codes.

This is the only place that knows exit codes: 0 passed, 1 blocked, 2 bad input,
3 infrastructure. A blocked model is a result, not an exception.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Sequence

from gate.core import config as config_mod
from gate.delivery import deliver
from gate.delivery import destinations
from gate import github
from gate.github import runner_log
from gate.errors import GateError, InputError
from gate.core.redaction import scrub, secrets_in
from gate.mlflowstore.tracking import apply_client_defaults, resolve_tracking_uri

if TYPE_CHECKING:
    from gate.core.ports import Store

DEFAULT_CONFIG = "gate.toml"
MAX_ERROR = 600     # characters of an error line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # type: ignore[override]
        # argparse prints usage and exits 2 itself; keep it to one line
        message = " ".join(message.split())[:MAX_ERROR]   # it may quote a 10 KB argument
        self.exit(2, f"gate: error: {message} (see `python -m gate {self._cmd()} --help`)\n")

    def _cmd(self) -> str:
        return self.prog.split()[-1] if " " in self.prog else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gate", description="A CI quality gate for models tracked in MLflow.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal "
                        "errors (also GATE_DEBUG=1)")
    # accepted after the command too; SUPPRESS keeps a subcommand from resetting it
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, model_required: bool = False) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="gate.toml path")
        p.add_argument("--model-name", required=model_required,
                       help="registered model name (overrides [model] name)")

    check = sub.add_parser("check", parents=[debug], help="compare a run with Production")
    check.add_argument("--run-id", required=True)
    common(check)
    check.add_argument("--promote", action="store_true", help="promote it if it passes")
    check.add_argument("--against", metavar="RUN_ID|vN",
                       help="compare with this run or version instead of Production "
                            "(never promotes)")
    check.add_argument("--config-diff", metavar="FILE", help="a diff of the config a pull "
                       "request proposes; the report shows it beside the verdict")
    _outputs(check)

    promote = sub.add_parser("promote", parents=[debug], help="promote a run or version (gated)")
    common(promote, model_required=True)
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id")
    which.add_argument("--version")
    promote.add_argument("--force", action="store_true", help="override a failed gate")
    promote.add_argument("--reason", help="why (required with --force; recorded)")
    _outputs(promote)

    rollback = sub.add_parser("rollback", parents=[debug],
                              help="move Production back to the previous one")
    common(rollback, model_required=True)
    rollback.add_argument("--reason")

    status = sub.add_parser("status", parents=[debug], help="show the champion and its history")
    common(status, model_required=True)
    status.add_argument("--json", metavar="PATH")

    prune = sub.add_parser("prune", parents=[debug],
                           help="list (or --yes: delete) old CI runs that back no model version")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    prune.add_argument("--keep", type=int, default=0, metavar="N",
                       help="keep the N newest CI runs of each experiment (default 0)")
    prune.add_argument("--experiment", action="append", metavar="NAME",
                       help="experiment name or id, repeatable (default: model-gate)")
    prune.add_argument("--yes", action="store_true", help="delete (default: dry run)")

    skip = sub.add_parser("skip", parents=[debug], help="report that the gate did not run, and why")
    skip.add_argument("--reason", required=True)
    skip.add_argument("--model-name", default="model")
    skip.add_argument("--summary", metavar="PATH")
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
    debug = os.environ.get("GATE_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        debug = debug or bool(getattr(args, "debug", False))
        apply_client_defaults()     # before anything imports mlflow: some are read at import
        _quiet_mlflow()
        _mask_secrets()
        return _dispatch(args)
    except GateError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted", prefix="gate: ")
        return 3
    except Exception as exc:  # the floor: a bug is exit 3 and one line, never a 0 or a 1
        if debug:
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug or "
               "GATE_DEBUG=1 for the traceback)")
        return 3


def _error(message: str, prefix: str = "gate: error: ") -> None:
    # one line, whatever the message quotes: a run id or a name can be 10 KB
    line = " ".join(scrub(message, os.environ).split())
    if len(line) > MAX_ERROR:
        line = line[:MAX_ERROR] + "…"
    try:
        print(prefix + line, file=sys.stderr)
    except (OSError, ValueError):   # stderr closed: the exit code still says it
        pass


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "skip":
        return _skip(args)
    if args.command == "prune":
        return _prune(args)
    cfg = config_mod.load(args.config).with_model_name(args.model_name)
    if not cfg.model.name:
        raise InputError(f"no model name: set [model] name in {args.config} or pass "
                         "--model-name")
    from gate.mlflowstore.session import point_mlflow_at
    from gate.mlflowstore.registry import Registry

    uri = resolve_tracking_uri()
    point_mlflow_at(uri)
    registry = Registry(uri)
    if args.command == "check":
        from gate.commands.check import run_gate

        if args.against is not None and args.promote:
            raise InputError("--against compares with a baseline of your choice and never "
                             "promotes: drop --promote")
        return run_gate(registry, cfg, args.run_id, promote=args.promote,
                        targets=deliver.targets_from(args), against=args.against).exit_code
    if args.command == "promote":
        return _promote(args, registry, cfg)
    from gate.commands import history

    if args.command == "rollback":
        return history.rollback(registry, cfg, args.reason, sys.stdout)
    return history.status(registry, cfg, sys.stdout, args.json)


def _promote(args: argparse.Namespace, registry: Store, cfg: config_mod.Config) -> int:
    from gate.commands.check import run_gate

    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise InputError("--force needs --reason TEXT: a forced promotion is audited")
    run_id = args.run_id or registry.version(cfg.model.name, args.version).run_id
    hint = ("re-run with `--force --reason TEXT`" if not args.force else "")
    outcome = run_gate(registry, cfg, run_id, promote=True,
                       targets=deliver.targets_from(args),
                       force_reason=reason if args.force else None, override_hint=hint)
    if args.force and outcome.promoted_version and outcome.promote_error is None:
        return 0
    return outcome.exit_code


def _prune(args: argparse.Namespace) -> int:
    from gate.mlflowstore.prune import prune_at

    report = prune_at(resolve_tracking_uri(), args.experiment or ["model-gate"],
                      args.older_than, args.keep, args.yes)
    print("\n".join(report.lines()))
    return 0


def _skip(args: argparse.Namespace) -> int:
    from gate.report.markdown import Report, render_skipped

    how = args.next or ("A maintainer can run it after review: Actions → model-gate manual → "
                        "`check-pr` with the PR number and the reviewed commit SHA, or "
                        "locally `python -m gate check --run-id RUN`.")
    markdown = render_skipped(args.reason, args.model_name, how)
    sys.stdout.write(markdown)
    github.write_summary(markdown, args.summary or os.environ.get("GITHUB_STEP_SUMMARY"))
    github.write_outputs({"verdict": "skipped", "passed": "false", "candidate_run_id": "",
                          "champion_version": "", "promoted_version": "",
                          "failed_metrics": ""}, os.environ.get("GITHUB_OUTPUT"))
    print(github.notice(f"Model gate skipped: {args.reason}", title="model gate"))
    if args.comment:
        # A sticky verdict from an earlier commit must not outlive a run that judged nothing.
        comment = destinations.PullRequestComment(args.model_name, args.pr, sys.stdout,
                                                  os.environ)
        comment.send(Report(markdown, markdown), None, {})
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
