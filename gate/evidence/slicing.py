"""The eval rows cut into the slices `[slices]` names, and their paired comparison.

A slice column is read from the eval rows and then withheld from what the models are
scored on: it describes the rows, it is not an input. A configured slice column that a
model names as an input, one missing from the eval rows, one with missing values or
with more than MAX_SLICES distinct values is bad input: one line naming the column.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from gate import contract
from gate.core.config import Config
from gate.core.sliceconfig import SlicesConfig
from gate.errors import InputError
from gate.evidence import evalset
from gate.evidence import loaders
from gate.evidence import scoring
from gate.stats.paired import PairedStat, SliceStat

MAX_SLICES = 1000           # distinct values of one slice column


def columns_of(config: SlicesConfig, rows: evalset.EvalRows) -> tuple[Any, ...]:
    """Each configured column as a gate.stats.slices.SliceColumn of `rows`."""
    from gate.stats.slices import SliceColumn

    features = rows.features
    out = []
    for column in config.columns:
        if column not in features.columns:
            raise InputError(f"slice column {column!r} ([slices] columns) is not in the eval "
                             f"rows ({rows.source})")
        values = features[column]
        missing = int(values.isna().sum())
        if missing:
            raise InputError(f"slice column {column!r} has {missing} missing (NaN) values in "
                             "the eval rows: fill them (e.g. \"unknown\") before slicing")
        edges = config.edges(column)
        labels, codes = _binned(column, values, edges) if edges is not None else \
            _distinct(column, values)
        out.append(SliceColumn(column, labels, codes))
    return tuple(out)


def withheld(config: SlicesConfig, rows: evalset.EvalRows) -> evalset.EvalRows:
    """`rows` without the slice columns: what the models are scored on."""
    if not config.columns:
        return rows
    return replace(rows, features=rows.features.drop(columns=list(config.columns)))


def check_inputs(config: SlicesConfig, model: scoring.Model | None, who: str) -> None:
    """A slice column the model takes as an input is refused: the gate would either feed
    the model a column it withholds, or slice by a feature (say it in [slices])."""
    if model is None or not config.columns:
        return
    named = set(model.info.input_columns)
    for column in config.columns:
        if column in named:
            raise InputError(f"slice column {column!r} is an input feature of {who}: "
                             "[slices] columns must describe the rows, not feed the model")


def paired(config: Config, y: Any, champion: loaders.Outputs, candidate: loaders.Outputs,
           task: str, columns: Sequence[Any]
           ) -> tuple[dict[str, PairedStat], tuple[SliceStat, ...]]:
    """scoring.paired, and the same per slice on the same resamples."""
    from gate.stats.slices import paired_sliced

    rules = scoring._rules(config)
    if not rules:
        return {}, ()
    compare = config.compare
    y_true = y.astype(float) if task == contract.REGRESSION else y
    return paired_sliced(rules, y_true, scoring._scores(champion, task),
                         scoring._scores(candidate, task), columns,
                         confidence=compare.confidence, resamples=compare.resamples,
                         seed=compare.seed)


def _distinct(column: str, values: Any) -> tuple[tuple[str, ...], Any]:
    import pandas as pd

    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:       # mixed types do not sort: first-seen order
        codes, uniques = pd.factorize(values, sort=False)
    if len(uniques) > MAX_SLICES:
        raise InputError(f"slice column {column!r} has {len(uniques)} distinct values in the "
                         f"eval rows, more than {MAX_SLICES}: bin it ([slices] bins."
                         f"{column} = [edges])")
    return tuple(_label(u) for u in uniques), codes


def _binned(column: str, values: Any, edges: tuple[float, ...]
            ) -> tuple[tuple[str, ...], Any]:
    import numpy as np
    import pandas as pd

    try:
        numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"slice column {column!r} has bins ([slices] bins) but is not "
                         "numeric in the eval rows") from None
    if not np.all(np.isfinite(numbers)):
        raise InputError(f"slice column {column!r} has non-finite values in the eval rows")
    shown = [f"{e:g}" for e in edges]
    labels = (f"<{shown[0]}", *(f"[{a}, {b})" for a, b in zip(shown, shown[1:])),
              f">={shown[-1]}")
    return labels, np.searchsorted(np.asarray(edges), numbers, side="right")


def _label(value: Any) -> str:
    text = str(value)
    return text[:-2] if isinstance(value, float) and text.endswith(".0") else text
