"""One line for a sandboxed model that did not answer: crashed (which signal), stopped
at a limit (which), or failed in its own code (its last words)."""
from __future__ import annotations

import signal

from gate.errors import echo
import gate.sandbox.child as child
from gate.sandbox.limits import MB, Limits
from gate.sandbox.process import Finished


def describe(done: Finished, limits: Limits, label: str) -> str | None:
    """None when the child exited cleanly (its answer is read next), else the line."""
    said = _last_words(done.stderr)
    if done.overflowed:
        return f"{label}: its output in the sandbox exceeded {limits.output_bytes // MB} MB"
    if done.timed_out:
        return f"{label}: timed out in the sandbox (wall time limit {limits.wall_seconds:g} s)"
    code = done.returncode
    if code == 0:
        return None
    # bwrap exits 128 + N when the process inside dies of signal N
    number = -code if code < 0 else code - 128 if code > 128 else 0
    memory = f"exceeded its memory limit in the sandbox ({limits.describe_memory()})"
    if "bad_alloc" in done.stderr.decode("utf-8", "replace") or code == child.MEMORY:
        return f"{label}: {memory}" + (f": {said}" if said else "")
    if number == signal.SIGXCPU:
        return f"{label}: exceeded its CPU time limit in the sandbox ({limits.cpu_seconds} s)"
    if number == signal.SIGKILL:
        return (f"{label}: killed in the sandbox (SIGKILL): past its CPU time limit "
                f"({limits.cpu_seconds} s) or out of memory")
    if number:
        return f"{label}: crashed in the sandbox ({_signal_name(number)}, exit {code})" + \
            (f": {said}" if said else "")
    if code in (child.BAD_INPUT, child.LOAD, child.PREDICT, child.OUTPUT) and said:
        return f"{label}: {said} (in the sandbox)"
    return f"{label}: exited with code {code} in the sandbox" + (f": {said}" if said else "")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_words(stderr: bytes) -> str:
    """The child program's own line when it wrote one, else the last line written."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()
             if line.strip()]
    own = [line[len(child.PREFIX):] for line in lines if line.startswith(child.PREFIX)]
    return echo(own[-1] if own else lines[-1] if lines else "", 240)
