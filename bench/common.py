"""Helpers shared by the benches: markdown tables, timing, the machine line, and a
pre-migrated SQLite store (the server itself is tests/servers.py's, as in the tests)."""
from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; right-aligns the columns whose cells are numbers."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False
               for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value.replace(",", ""))
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f} %"


def rate(hits: int, total: int) -> str:
    """`hits/total (x %)`, or a dash when there is nothing to count."""
    return f"{hits}/{total} ({100 * hits / total:.0f} %)" if total else "-"


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """The median wall time of `repeats` calls, and every time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine() -> str:
    """One line naming when and where a figure was measured."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    versions = ", ".join(f"{pkg} {version(pkg)}" for pkg in ("mlflow", "scikit-learn", "numpy"))
    return (f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
            f"{os.cpu_count()} cores (1-min load {load:.1f} at start), "
            f"Python {platform.python_version()}, {versions}")


_STARTED = time.monotonic()


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `low` (a bad one is argparse's
    one-line usage error, exit 2)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ValueError(text)
        return value
    parse.__name__ = f"integer >= {low}"    # what argparse names in its error
    return parse


def log(message: str) -> None:
    """Progress goes to stderr, so stdout is only the markdown."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def migrated_store(path: Path, template: Path | None = None) -> Path:
    """An initialised SQLite store at `path`: a copy of `template` when given, since
    MLflow's migrations take ~10 s."""
    if template is not None:
        shutil.copy(template, path)
        return path
    from mlflow.tracking._tracking_service.utils import _get_store

    _get_store(f"sqlite:///{path}").search_experiments()
    return path


def shipped_config_without_eval(root: Path) -> str:
    """The shipped gate.toml without its [eval] section: the benches judge on the rows
    each trained champion recorded (their data sets are not the pinned eval set's)."""
    text = (root / "gate.toml").read_text()
    lines = text[:text.index("\n[eval]\n")].rstrip("\n").split("\n")
    while lines and lines[-1].startswith("#"):      # the comment that introduces [eval]
        lines.pop()
    return "\n".join(lines).rstrip("\n") + "\n"
