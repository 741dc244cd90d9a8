"""What crosses the sandbox's wall: the eval features in (Parquet), the answer out
(frames of .npy arrays, parsed here without pickle and checked before use)."""
from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Any

from gate import contract
from gate.errors import InputError
from gate.sandbox.child import MAGIC, PARTS

KINDS = "biufU"         # bool, integers, floats, text: labels and numbers, nothing pickled
SLACK = 1e-6            # float rounding around a probability of 0 or 1


class Malformed(Exception):
    """The answer is not what the child program writes: the model tampered with it."""


@dataclass(frozen=True)
class Answer:
    values: Any                 # (n,)
    proba: Any | None           # (n, k) or None
    classes: tuple[Any, ...]


def features_bytes(features: Any, cap: int, label: str) -> bytes:
    """The features as Parquet (typed columns, no pickle), with a plain index."""
    buffer = io.BytesIO()
    try:
        features.reset_index(drop=True).to_parquet(buffer, index=False)
    except (ValueError, TypeError, ImportError) as exc:
        raise InputError(f"{label}: the eval features cannot be handed to the sandbox "
                         f"({' '.join(str(exc).split())[:160]})") from None
    if buffer.tell() > cap:
        raise InputError(f"{label}: the eval features take {buffer.tell()} bytes as Parquet, "
                         f"over the sandbox's {cap}")
    return buffer.getvalue()


def read_answer(raw: bytes, rows: int, task: str | None, label: str) -> Answer:
    try:
        values, proba, classes = _parts(raw)
        return _checked(values, proba, classes, rows, task)
    except Malformed as exc:
        raise InputError(f"{label}: malformed output from the sandbox: {exc}") from None


def _parts(raw: bytes) -> list[Any]:
    if not raw.startswith(MAGIC):
        raise Malformed("no answer" if not raw else "it does not start with the gate's header")
    at, found = len(MAGIC), []
    for name in PARTS:
        if at + 8 > len(raw):
            raise Malformed(f"cut short before its {name}")
        (size,) = struct.unpack(">Q", raw[at:at + 8])
        at += 8
        if size > len(raw) - at:
            raise Malformed(f"its {name} claim {size} bytes, {len(raw) - at} are left")
        found.append(_array(raw[at:at + size], name) if size else None)
        at += size
    if at != len(raw):
        raise Malformed(f"{len(raw) - at} bytes follow the answer")
    return found


def _array(blob: bytes, name: str) -> Any:
    """One .npy array, its header checked against its length before anything is built."""
    import numpy as np
    from numpy.lib import format as npy

    buffer = io.BytesIO(blob)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        reader = readers.get(npy.read_magic(buffer))
        if reader is None:
            raise ValueError("an unknown .npy version")
        shape, fortran, dtype = reader(buffer)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise Malformed(f"its {name} are not a .npy array ({exc})") from None
    if dtype.hasobject or dtype.kind not in KINDS or dtype.fields is not None:
        raise Malformed(f"its {name} are of type {dtype}, not numbers or text")
    count = math.prod(shape)
    if count * dtype.itemsize != len(blob) - buffer.tell():
        raise Malformed(f"its {name} claim shape {shape} in {len(blob) - buffer.tell()} bytes")
    array = np.frombuffer(blob, dtype=dtype, count=count, offset=buffer.tell())
    return array.reshape(shape, order="F" if fortran else "C").copy()


def _checked(values: Any, proba: Any, classes: Any, rows: int, task: str | None) -> Answer:
    import numpy as np

    if values is None or values.ndim != 1:
        raise Malformed("no predictions" if values is None else
                        f"predictions of shape {values.shape}, not one per row")
    if len(values) != rows:
        raise Malformed(f"{len(values)} predictions for {rows} rows")
    if task == contract.REGRESSION and values.dtype.kind not in "iuf":
        raise Malformed(f"predictions of type {values.dtype}, not numbers")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise Malformed("non-finite predictions (NaN or infinity)")
    if proba is None:
        return Answer(values, None, ())
    if classes is None or classes.ndim != 1 or not len(classes):
        raise Malformed("class probabilities without their classes")
    if proba.ndim != 2 or proba.shape != (rows, len(classes)):
        raise Malformed(f"class probabilities of shape {proba.shape}, not ({rows}, "
                        f"{len(classes)})")
    if proba.dtype.kind not in "iuf":
        raise Malformed(f"class probabilities of type {proba.dtype}")
    proba = proba.astype(float)
    if proba.size and (not np.all(np.isfinite(proba)) or proba.min() < -SLACK
                       or proba.max() > 1 + SLACK):
        raise Malformed("class probabilities outside [0, 1]")
    return Answer(values, np.clip(proba, 0.0, 1.0), tuple(classes.tolist()))
