"""Hostile and broken pyfunc models for tests/test_sandbox.py. test_sandbox pickles this
module's classes by value (cloudpickle), as a trainer's own classes would be, so the
sandbox unpickles them without this checkout on its path."""
from __future__ import annotations

import os
import socket
import time
from mlflow.pyfunc import PythonModel


class Spy(PythonModel):  # type: ignore[misc]
    """Tries to read files outside its folder, call home, see secrets and leave a copy
    of its environment behind; answers, on every row, what it managed and saw."""

    def __init__(self, readable: list[str], writable: list[str], port: int,
                 private: str, python: list[str]) -> None:
        self.readable, self.writable, self.port = readable, writable, port
        self.private, self.python = private, python

    # no type hints: MLflow would read them as the model's input schema
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import ctypes
        import resource

        got = []
        for path in self.readable:
            try:
                with open(path) as handle:
                    handle.read()
                got.append("read " + path)
            except OSError:
                pass
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            got.append("connected")
        except OSError:
            pass
        for path in self.writable:
            try:
                with open(path, "w") as handle:
                    handle.write(repr(dict(os.environ)))
                got.append("wrote " + path)
            except OSError:
                pass
        with open(self.private, "w") as handle:     # in /tmp: private, gone with the sandbox
            handle.write(repr(dict(os.environ)))
        facts = {
            "got": "+".join(got),
            "env": ",".join(sorted(os.environ)),
            "secret": str(any("hunter2" in v for v in os.environ.values())),
            "dumpable": str(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)),   # PR_GET_DUMPABLE
            "core": str(resource.getrlimit(resource.RLIMIT_CORE)[0]),
            "uid": str(os.getuid()),
            "files": ",".join(self._files()),
        }
        answer = ";".join(f"{k}={v}" for k, v in facts.items())
        return [answer] * len(model_input)

    def _files(self) -> list[str]:
        """Every file it can see, but in the system and Python folders."""
        skip = {"/proc", "/dev", "/usr", "/sys", *self.python}
        found = []
        for folder, subfolders, files in os.walk("/"):
            subfolders[:] = [s for s in subfolders if os.path.join(folder, s) not in skip]
            found += [os.path.join(folder, f) for f in files]
        return sorted(found)


class Behaves(PythonModel):  # type: ignore[misc]
    """Misbehaves in one named way, else answers a column of zeros."""

    def __init__(self, how: str) -> None:
        self.how = how

    # no type hints: MLflow would read them as the model's input schema
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        n = len(model_input)
        if self.how == "spin":
            while True:
                pass
        if self.how == "sleep":
            time.sleep(3600)
        if self.how == "hog":
            hoard = []
            while True:
                hoard.append(bytearray(64 * 1024 * 1024))
        if self.how == "abort":
            os.abort()
        if self.how == "short":
            return [0.0] * (n - 1)
        if self.how == "nan":
            return [float("nan")] * n
        if self.how == "flood":
            return ["x" * 100_000] * n
        if self.how == "chatty":
            print("GATE-SANDBOX-1\nnot the answer")
            return [0.0] * n
        if self.how == "raise":
            raise ValueError("no such column: 'age'")
        raise AssertionError(self.how)


class Cheat(PythonModel):  # type: ignore[misc]
    """A regressor that would be perfect if it could read the labels: it looks for them
    in the checkout, calls home on 127.0.0.1 and dumps its environment beside them.
    Without the labels it answers a constant (a poor model)."""

    def __init__(self, labels: str, port: int, dump: str) -> None:
        self.labels, self.port, self.dump = labels, port, dump

    # no type hints: MLflow would read them as the model's input schema
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except OSError:
            pass
        try:
            with open(self.dump, "w") as handle:
                handle.write(repr(dict(os.environ)))
        except OSError:
            pass
        try:
            with open(self.labels) as handle:
                values = [float(line) for line in handle.read().split()[1:]]
            return values[:len(model_input)]
        except OSError:
            return [150.0] * len(model_input)


class NeedsPackage(PythonModel):  # type: ignore[misc]
    """Needs a package the gate's environment lacks (as its requirements.txt says)."""

    def load_context(self, context):  # type: ignore[no-untyped-def]
        import importlib

        importlib.import_module("gate_test_absent_package")

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return [0.0] * len(model_input)
