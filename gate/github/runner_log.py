"""What the gate prints into a GitHub Actions log: `##[` made inert.

The runner acts on `##[command]` anywhere in a line, on stdout and on stderr alike, so a
run name or a param holding `##[stop-commands]x` would switch off the gate's own
annotations for the rest of the job, and `##[add-mask]` could star out the verdict. The
gate itself never prints `##[`; every such sequence comes from text it was given, so on
a runner both streams go through `LogGuard`.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

INERT = "#\u200b#["     # a zero-width space between the hashes: reads the same, does nothing


class LogGuard:
    """A text stream that writes `##[` as INERT, even when a write splits it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._held = ""         # trailing '#'s kept back: the '[' may be in the next write

    def write(self, text: str) -> int:
        joined = self._held + text
        keep = min(2, len(joined) - len(joined.rstrip("#")))
        self._held = joined[len(joined) - keep:] if keep else ""
        ready = joined[:len(joined) - keep] if keep else joined
        self._stream.write(ready.replace("##[", INERT))
        return len(text)

    def flush(self) -> None:
        if self._held:
            self._stream.write(self._held)
            self._held = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:     # encoding, isatty, fileno, ...
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Route sys.stdout and sys.stderr through LogGuard (once)."""
    if not isinstance(sys.stdout, LogGuard):
        sys.stdout = LogGuard(sys.stdout)
    if not isinstance(sys.stderr, LogGuard):
        sys.stderr = LogGuard(sys.stderr)
