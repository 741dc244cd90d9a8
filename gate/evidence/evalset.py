"""Read eval rows and predictions from files, bounded, and line them up.

Every file here may come from a hostile run: its size, column count and row count are
checked before it is parsed (a CSV header of a million columns would take minutes),
and any failure is one InputError naming the file's owner and the artifact.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gate import contract
from gate.errors import InputError

# a legacy CSV header longer than this is refused before pandas sees it
MAX_CSV_HEADER = 1024 * 1024


@dataclass(frozen=True)
class EvalRows:
    """One eval set: the features, the label and optional row ids, in file order."""

    features: Any               # pandas.DataFrame; may have no columns (not logged)
    y: Any                      # numpy array of labels
    row_ids: Any | None         # numpy array, or None
    sha256: str                 # of the file's bytes: what a version's tag vouches for
    source: str                 # for messages and the report

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class LoggedPredictions:
    """Per-row predictions a run logged: claims, used only when the gate cannot compute."""

    values: Any                 # numpy array: regression values or class labels
    proba: Any | None           # (n, k) numpy array, or None
    classes: tuple[Any, ...]    # the proba columns' classes, in order
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path, what: str) -> Any:
    """A Parquet or CSV file as a DataFrame, refusing oversized or malformed ones."""
    size = _size(path, what)
    if size > contract.MAX_ARTIFACT_BYTES:
        raise InputError(f"{what}: {size} bytes is over the limit of "
                         f"{contract.MAX_ARTIFACT_BYTES}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, what)
    return _read_csv(path, what)


def _size(path: Path, what: str) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise InputError(f"{what}: cannot read ({exc.strerror})") from None


def _read_parquet(path: Path, what: str) -> Any:
    from gate.evidence import bounded

    return bounded.read(path, what)


def inspect_table(path: Path, what: str) -> tuple[int | None, tuple[str, ...]]:
    """A file's row count and column names, checked against the bounds without parsing
    its values: a Parquet file's footer, a CSV file's header (its rows unknown)."""
    from gate.evidence import bounded

    size = _size(path, what)
    if size > contract.MAX_ARTIFACT_BYTES:
        raise InputError(f"{what}: {size} bytes is over the limit of "
                         f"{contract.MAX_ARTIFACT_BYTES}")
    if path.suffix.lower() in (".parquet", ".pq"):
        shape = bounded.inspect(path, what)
        return shape.rows, shape.columns
    with path.open("rb") as fh:
        header = fh.readline(MAX_CSV_HEADER + 1)
    if len(header) > MAX_CSV_HEADER:
        raise InputError(f"{what}: CSV header longer than {MAX_CSV_HEADER} bytes")
    _check_shape(header.count(b",") + 1, 0, what)
    return None, ()


def _read_csv(path: Path, what: str) -> Any:
    import pandas as pd

    with path.open("rb") as fh:
        header = fh.readline(MAX_CSV_HEADER + 1)
    if len(header) > MAX_CSV_HEADER:
        raise InputError(f"{what}: CSV header longer than {MAX_CSV_HEADER} bytes")
    _check_shape(header.count(b",") + 1, 0, what)
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise InputError(f"{what}: not a readable CSV file ({_short(exc)})") from None
    _check_shape(frame.shape[1], len(frame), what)
    return frame


def _check_shape(columns: int, rows: int, what: str) -> None:
    if columns > contract.MAX_COLUMNS:
        raise InputError(f"{what}: {columns} columns is over the limit of "
                         f"{contract.MAX_COLUMNS}")
    if rows > contract.MAX_ROWS:
        raise InputError(f"{what}: {rows} rows is over the limit of {contract.MAX_ROWS}")


def eval_rows(path: Path, target: str, what: str,
              row_id: str | None = contract.ROW_ID_COLUMN) -> EvalRows:
    """The eval rows of a file whose label column is `target`."""
    frame = read_table(path, what)
    if len(frame) == 0:
        raise InputError(f"{what}: has no rows")
    if target not in frame.columns:
        raise InputError(f"{what}: has no label column {target[:100]!r}")
    ids = None
    drop = [target]
    if row_id and row_id in frame.columns:
        ids = _row_ids(frame[row_id].to_numpy(), row_id, what)
        drop.append(row_id)
        if len(set(ids.tolist())) != len(ids):
            raise InputError(f"{what}: column {row_id!r} repeats row ids")
    y = frame[target].to_numpy()
    return EvalRows(features=frame.drop(columns=drop), y=y, row_ids=ids,
                    sha256=sha256_file(path), source=what)


def _row_ids(ids: Any, column: str, what: str) -> Any:
    """Row ids are what rows are matched by: numbers or strings, one per row (a list in a
    cell is unhashable: it would end as an internal error, not as bad input)."""
    if ids.dtype.kind in "iufU":
        return ids
    if ids.dtype.kind == "O" and all(isinstance(v, (int, float, str)) for v in ids.tolist()):
        return ids
    raise InputError(f"{what}: column {column!r} must hold integers or strings "
                     "(one row id per row)")


def logged_predictions(path: Path, rows: int, what: str,
                       classes: Sequence[Any] = ()) -> LoggedPredictions:
    """A run's per-row predictions, checked against its eval rows' count."""
    import numpy as np

    frame = read_table(path, what)
    if contract.PREDICTION_COLUMN not in frame.columns:
        raise InputError(f"{what}: has no {contract.PREDICTION_COLUMN!r} column")
    if len(frame) != rows:
        raise InputError(f"{what}: {len(frame)} predictions for {rows} eval rows")
    values = frame[contract.PREDICTION_COLUMN].to_numpy()
    proba_cols = [c for c in frame.columns if str(c).startswith(contract.PROBA_PREFIX)]
    proba = None
    found: tuple[Any, ...] = ()
    if proba_cols:
        names = [str(c)[len(contract.PROBA_PREFIX):] for c in proba_cols]
        found = tuple(_typed_classes(names, classes))
        try:
            proba = frame[proba_cols].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{what}: class probabilities are not numeric") from None
        if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
            raise InputError(f"{what}: class probabilities outside [0, 1] or not finite")
    return LoggedPredictions(values=values, proba=proba, classes=found,
                             sha256=sha256_file(path))


def _typed_classes(names: list[str], classes: Sequence[Any]) -> list[Any]:
    """Column names are strings; give back the manifest's typed classes where they match."""
    by_text = {str(c): c for c in classes}
    return [by_text.get(name, _number_or_text(name)) for name in names]


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def read_manifest(path: Path, what: str) -> dict[str, Any]:
    size = _size(path, what)
    if size > contract.MAX_MANIFEST_BYTES:
        raise InputError(f"{what}: {size} bytes is over the limit of "
                         f"{contract.MAX_MANIFEST_BYTES}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{what}: not valid JSON ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{what}: must be a JSON object")
    version = data.get("contract")
    if not isinstance(version, int) or isinstance(version, bool) or \
            not 1 <= version <= contract.VERSION:
        raise InputError(f"{what}: contract version {str(version)[:20]!r} is not one this "
                         f"gate reads (1..{contract.VERSION})")
    target = data.get("target")
    if not isinstance(target, str) or not target:
        raise InputError(f"{what}: 'target' must be the label column's name")
    classes = data.get("classes", [])
    if not isinstance(classes, list) or len(classes) > contract.MAX_CLASSES or \
            not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes):
        raise InputError(f"{what}: 'classes' must be a list of at most "
                         f"{contract.MAX_CLASSES} integers or strings")
    task = data.get("task")
    if task not in contract.TASKS:
        raise InputError(f"{what}: 'task' must be one of {', '.join(contract.TASKS)}")
    return data


def align(chosen: EvalRows, logged: EvalRows) -> tuple[Any | None, str]:
    """For each chosen row, its index among the logged rows; else None and why not.

    Row ids when both sides have them; else the logged rows must be the chosen rows in
    order (same labels, and the same values in every feature column both sides have).
    """
    import numpy as np

    if chosen.row_ids is not None and logged.row_ids is not None:
        where = {value: i for i, value in enumerate(logged.row_ids.tolist())}
        index = [where.get(value) for value in chosen.row_ids.tolist()]
        missing = sum(i is None for i in index)
        if missing:
            return None, f"{missing} of the {len(chosen)} eval rows have no logged prediction"
        picked = np.asarray(index, dtype=np.intp)
        if not _same(chosen.y, logged.y[picked]):
            return None, "the logged labels differ from the eval set's for the same row ids"
        return picked, ""
    if len(chosen) != len(logged):
        return None, f"{len(logged)} logged rows, {len(chosen)} eval rows"
    if not _same(chosen.y, logged.y):
        return None, "the logged labels differ from the eval set's"
    shared = [c for c in chosen.features.columns if c in set(logged.features.columns)]
    for column in shared:
        if not _same(chosen.features[column].to_numpy(), logged.features[column].to_numpy()):
            return None, f"the logged rows differ in column {str(column)[:60]!r}"
    return np.arange(len(chosen), dtype=np.intp), ""


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if len(a) != len(b):
        return False
    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                rtol=1e-9, atol=1e-12, equal_nan=True))
    except (TypeError, ValueError):
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else type(exc).__name__)
