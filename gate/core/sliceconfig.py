"""The `[slices]` table of gate.toml: which columns of the eval rows cut them into slices.

    [slices]
    columns = ["segment", "age"]        # each distinct value of each is a slice
    bins = { age = [30, 50, 70] }       # a numeric column by edges: <30, [30, 50), ...
    min_rows = 200                      # smaller slices are reported, not gated
    [slices.tolerance_rel]              # a slice's allowance per metric
    rmse = 0.10                         # (default: the metric's own)

Every error names the key; an unknown key gets the close match, as in gate.core.config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gate.core.tomlcheck import check_keys
from gate.errors import ConfigError, echo

KEYS = ("columns", "bins", "min_rows", "tolerance", "tolerance_rel")
MIN_ROWS = 200
# below this a slice's interval is not worth a rule: the engine's own floor on rows
FLOOR_ROWS = 10


@dataclass(frozen=True)
class SlicesConfig:
    columns: tuple[str, ...] = ()
    bins: tuple[tuple[str, tuple[float, ...]], ...] = ()    # (column, ascending edges)
    min_rows: int = MIN_ROWS
    tolerance: tuple[tuple[str, float], ...] = ()           # (metric, absolute allowance)
    tolerance_rel: tuple[tuple[str, float], ...] = ()       # (metric, relative allowance)

    def edges(self, column: str) -> tuple[float, ...] | None:
        """The bin edges of `column`, None when each distinct value is a slice."""
        return dict(self.bins).get(column)

    def allowance(self, metric: str, tolerance: float, tolerance_rel: float,
                  production: float) -> float:
        """A slice's allowance: the metric's own tolerances, each replaced where
        [slices] sets one for this metric."""
        absolute = dict(self.tolerance).get(metric, tolerance)
        relative = dict(self.tolerance_rel).get(metric, tolerance_rel)
        return max(absolute, relative * abs(production))


def parse(raw: Any, source: str, metrics: tuple[str, ...], reserved: dict[str, str]
          ) -> SlicesConfig:
    """`raw` is the [slices] table (absent: {}); `metrics` the configured metric names;
    `reserved` maps columns that cannot be slices to what they are (the eval target)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [slices] must be a table")
    if not raw:
        return SlicesConfig()
    check_keys(raw, KEYS, source, "slices.")
    columns = raw.get("columns")
    if columns is None:
        raise ConfigError(f"{source}: slices.columns is required in [slices] (an array of "
                          "eval-row column names)")
    if not isinstance(columns, list) or not columns or \
            not all(isinstance(c, str) and c.strip() for c in columns):
        raise ConfigError(f"{source}: slices.columns must be a non-empty array of column "
                          "names")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise ConfigError(f"{source}: slices.columns names {echo(dupes[0])!r} twice")
    for column in columns:
        if column in reserved:
            raise ConfigError(f"{source}: slices.columns names {echo(column)!r}, which is "
                              f"{reserved[column]}")
    min_rows = raw.get("min_rows", MIN_ROWS)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or \
            min_rows < FLOOR_ROWS:
        raise ConfigError(f"{source}: slices.min_rows must be an integer of at least "
                          f"{FLOOR_ROWS}, not {echo(repr(min_rows))}")
    return SlicesConfig(columns=tuple(columns), bins=_bins(raw.get("bins", {}), columns, source),
                        min_rows=min_rows,
                        tolerance=_per_metric(raw.get("tolerance", {}), "tolerance", metrics,
                                              source),
                        tolerance_rel=_per_metric(raw.get("tolerance_rel", {}), "tolerance_rel",
                                                  metrics, source))


def _bins(raw: Any, columns: list[str], source: str
          ) -> tuple[tuple[str, tuple[float, ...]], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: slices.bins must be a table of column = [edges]")
    out = []
    for column, edges in raw.items():
        key = f"slices.bins.{echo(column)}"
        if column not in columns:
            raise ConfigError(f"{source}: {key}: {echo(column)!r} is not in slices.columns")
        if not isinstance(edges, list) or not edges or \
                not all(_finite(e) for e in edges):
            raise ConfigError(f"{source}: {key} must be a non-empty array of finite numbers "
                              "(the bin edges)")
        values = tuple(float(e) for e in edges)
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ConfigError(f"{source}: {key} must be strictly increasing")
        out.append((column, values))
    return tuple(out)


def _per_metric(raw: Any, name: str, metrics: tuple[str, ...], source: str
                ) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: slices.{name} must be a table of metric = number")
    out = []
    for metric, value in raw.items():
        check_keys({metric: value}, metrics, source, f"slices.{name}.")
        if not _finite(value) or value < 0:
            raise ConfigError(f"{source}: slices.{name}.{echo(metric)} must be a finite "
                              f"number >= 0, not {echo(repr(value))[:60]}")
        out.append((metric, float(value)))
    return tuple(out)


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
