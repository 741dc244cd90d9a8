"""The floor under every entry point (`gate`, `python -m gate.commands.ci`): an error is
one redacted line on stderr and an exit code, never a traceback unless asked for.

A GateError carries its code (2 bad input, 3 infrastructure); Ctrl-C and a bug are 3,
never a 0 or a 1, which a workflow would read as "passed" or "blocked".
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Mapping

from gate.core.redaction import scrub
from gate.errors import GateError

MAX_ERROR = 600     # characters of an error line
PREFIX = "gate: error: "


@dataclass(frozen=True)
class Failure:
    """An exit on error: its code and the line printed for it (redacted, one line)."""

    exit_code: int
    line: str


def error_line(message: str, environ: Mapping[str, str] = os.environ) -> str:
    """`message` fit for a log: no credential, one line whatever it quotes (a run id or
    a name can be 10 KB), cut at MAX_ERROR characters."""
    line = " ".join(scrub(message, environ).split())
    return line[:MAX_ERROR] + "…" if len(line) > MAX_ERROR else line


def print_error(message: str, environ: Mapping[str, str] = os.environ,
                prefix: str = PREFIX) -> str:
    """Print the error line on stderr; return it as printed (without the prefix)."""
    line = error_line(message, environ)
    try:
        print(prefix + line, file=sys.stderr)
    except (OSError, ValueError):   # stderr closed: the exit code still says it
        pass
    return line


def run_entry(fn: Callable[[], int], debug: Callable[[], bool],
              environ: Mapping[str, str] = os.environ,
              on_failure: Callable[[Failure], None] | None = None) -> int:
    """Run an entry point's body and map whatever it raises to an exit code and one
    line; `debug()` (asked only when needed: the flag is parsed inside `fn`) adds the
    traceback of an internal error; `on_failure` is told of every error exit."""
    try:
        return fn()
    except GateError as exc:
        failure = Failure(exc.exit_code, print_error(str(exc), environ))
    except KeyboardInterrupt:
        failure = Failure(3, print_error("interrupted", environ, prefix="gate: "))
    except Exception as exc:  # the floor: a bug is exit 3 and one line, never a 0 or a 1
        if debug():
            traceback.print_exc()
        failure = Failure(3, print_error(
            f"internal error: {type(exc).__name__}: {exc} (re-run with --debug or "
            "GATE_DEBUG=1 for the traceback)", environ))
    if on_failure is not None:
        on_failure(failure)
    return failure.exit_code


def debug_from(environ: Mapping[str, str]) -> bool:
    return environ.get("GATE_DEBUG", "") not in ("", "0")
