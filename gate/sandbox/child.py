"""The program that runs inside the sandbox: import MLflow, wait for the parent's word
that the model's files are in place (GO on stdin), load the model as serving does
(`mlflow.pyfunc.load_model`), read the eval features (Parquet) from stdin, predict, and
write the answer to the parent in frames. Run by path, it imports nothing of the gate
(which is not inside).

Its exit code says where a failure happened; its last stderr line says what. The model's
own prints go to stderr, so nothing it writes can pass for the answer.
"""
from __future__ import annotations

import io
import os
import struct
import sys
from typing import Any, NoReturn

MAGIC = b"GATE-SANDBOX-1\n"
GO = b"load\n"              # the parent's word: the model folder is complete, load it
PREFIX = "gate-sandbox: "
BAD_INPUT, LOAD, PREDICT, MEMORY, OUTPUT = 2, 3, 4, 5, 6
PARTS = ("values", "proba", "classes")


class Malformed(Exception):
    """The model's predictions are not one value per row."""


def main(argv: list[str]) -> NoReturn:
    _undumpable()
    answer = os.dup(1)
    os.dup2(2, 1)               # the model's prints go to stderr, never into the answer
    model_dir, cap = argv[1], int(argv[2])
    # the slow part of a start, done while the parent still fetches the model's files
    # (it may start this before they exist) and the eval rows
    _stage(LOAD, "could not import MLflow", _preload)
    if sys.stdin.buffer.readline(len(GO)) != GO:
        os._exit(0)             # not needed after all (no model to score): nothing to say
    model = _stage(LOAD, "could not load the model", lambda: _load(model_dir))
    data = sys.stdin.buffer.read(cap + 1)
    if len(data) > cap:
        _fail(BAD_INPUT, f"the features exceed {cap} bytes")
    features = _stage(BAD_INPUT, "the features are unreadable", lambda: _features(data))
    values, proba, classes = _stage(PREDICT, "could not predict",
                                    lambda: _predict(model, features))
    try:
        frames = _frames(_column(values), proba, classes)
    except Malformed as exc:
        _fail(OUTPUT, f"its predictions are {exc}")
    view = memoryview(frames)
    while view:
        view = view[os.write(answer, view):]
    os._exit(0)                 # no atexit handler of the model's runs after the answer


def _stage(code: int, what: str, step: Any) -> Any:
    try:
        return step()
    except MemoryError:
        _fail(MEMORY, "out of memory (MemoryError)")
    except BaseException as exc:  # the model's code raises anything, SystemExit included
        text = " ".join(str(exc).split())[:300]
        if "bad_alloc" in text:
            _fail(MEMORY, f"out of memory ({text})")
        _fail(code, f"{what}: {type(exc).__name__}: {text}" if text else
              f"{what}: {type(exc).__name__}")


def _fail(code: int, line: str) -> NoReturn:
    sys.stderr.write(f"\n{PREFIX}{line}\n")
    sys.stderr.flush()
    os._exit(code)


def _undumpable() -> None:
    """No core dump, even through a core_pattern pipe (where RLIMIT_CORE is ignored)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)      # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


def _features(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data))


def _preload() -> None:
    import mlflow.pyfunc  # noqa: F401  (what every load needs)
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401  (the features' format)


def _load(model_dir: str) -> Any:
    import mlflow.pyfunc

    # as serving loads it; suppress_warnings only skips comparing the model's recorded
    # requirements with the installed packages (0.8 s, warnings nobody reads here)
    return mlflow.pyfunc.load_model(model_dir, suppress_warnings=True)


def _predict(model: Any, features: Any) -> tuple[Any, Any, Any]:
    """The pyfunc's predictions (what serving returns) and, when the model underneath
    is a classifier, its class probabilities on the same rows."""
    import numpy as np

    raw = _raw(model)
    # the eval set may hold more columns than the model was fitted on: the ones it
    # names, in its order (as the gate scored models before the sandbox)
    names = getattr(raw, "feature_names_in_", None)
    if names is not None and set(map(str, names)) <= set(map(str, features.columns)):
        features = features[[str(n) for n in names]]
    values = model.predict(features)
    if not (hasattr(raw, "predict_proba") and hasattr(raw, "classes_")):
        return values, None, None
    proba = np.asarray(raw.predict_proba(features), dtype=float)
    return values, proba, _plain(np.asarray(raw.classes_))


def _raw(model: Any) -> Any:
    try:
        return model.get_raw_model()
    except Exception:  # NotImplementedError, or whatever the wrapper raises
        return getattr(model, "_model_impl", None)


def _column(values: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise Malformed(f"a table of {values.shape[1]} columns, not one value per row")
        values = values.iloc[:, 0]
    if isinstance(values, dict):
        raise Malformed("a dict, not one value per row")
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise Malformed(f"an array of shape {array.shape}, not one value per row")
    return _plain(array)


def _plain(array: Any) -> Any:
    """Numbers or text: what .npy carries without pickle."""
    import numpy as np

    if array.dtype.kind in "biufU":
        return array
    if array.dtype.kind == "S":
        return array.astype(str)
    natural = np.asarray(array.tolist())
    return natural if natural.dtype.kind in "biufU" else natural.astype(str)


def _frames(values: Any, proba: Any, classes: Any) -> bytes:
    import numpy as np

    out = bytearray(MAGIC)
    for part in (values, proba, classes):
        blob = b""
        if part is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(part), allow_pickle=False)
            blob = buffer.getvalue()
        out += struct.pack(">Q", len(blob)) + blob
    return bytes(out)


if __name__ == "__main__":
    main(sys.argv)
