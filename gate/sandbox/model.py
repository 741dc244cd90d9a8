"""A model's predictions, computed in the sandbox the way serving computes them."""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InputError
import gate.sandbox.child as child
import gate.sandbox.failures as failures
import gate.sandbox.jail as jail
import gate.sandbox.process as process
import gate.sandbox.wire as wire
from gate.sandbox.limits import Limits, preexec
from gate.sandbox.probe import SandboxUnavailable, probe


@dataclass(frozen=True)
class Prediction:
    values: Any                     # (n,) numbers or labels, what pyfunc's predict returns
    proba: Any | None               # (n, k) class probabilities, or None
    classes: tuple[Any, ...]        # the k classes proba's columns stand for
    method: str                     # how they were computed, for the report and the JSON
    seconds: float = 0.0            # the sandbox's wall time, its start to its answer

    def __len__(self) -> int:
        return len(self.values)


def predict(model_dir: Path, features: Any, *, label: str, limits: Limits = Limits(),
            task: str | None = None, bwrap: str | None = None) -> Prediction:
    """`mlflow.pyfunc.load_model(model_dir).predict(features)` in a sandbox; `label`
    names the model in errors, `task` (contract.REGRESSION...) tightens the checks.

    Raises SandboxUnavailable when no sandbox can be made here, InputError (one line)
    when the model crashes, hits a limit, fails or answers something malformed."""
    return start(model_dir, label=label, limits=limits, bwrap=bwrap).result(features, task)


def start(model_dir: Path, *, label: str, limits: Limits = Limits(),
          bwrap: str | None = None) -> Pending:
    """The sandbox started on a model whose files are in place: it imports MLflow and
    loads the model while the caller does other work (fetches, the other model);
    `result` hands it the rows.

    Start it from a thread that outlives it (the main thread): bwrap's --die-with-parent
    kills the sandbox when the thread that started it ends."""
    pending = warm(model_dir, label=label, limits=limits, bwrap=bwrap)
    try:
        pending.load()
    except InputError:
        pending.close()
        raise
    return pending


def warm(folder: Path, *, label: str, limits: Limits = Limits(),
         bwrap: str | None = None) -> Pending:
    """The sandbox started on a folder the model's files will be put in (it may be empty
    still): it imports MLflow meanwhile, and loads the model when told to (`load`).
    What lands in the folder later is seen inside, read-only."""
    found = probe(bwrap)
    if not found.ok or found.bwrap is None:
        raise SandboxUnavailable(f"{label} cannot be scored in a sandbox: {found.why}")
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise InputError(f"{label}: its model folder {folder} does not exist")
    argv = jail.command(found.bwrap, folder, limits.tmp_bytes, limits.input_bytes)
    started = time.monotonic()
    return Pending(process.spawn(argv, preexec(limits)), started, label, limits,
                   f"mlflow.pyfunc in sandbox ({found.kind})", folder)


class Pending:
    """A started sandbox: asked once (`result`), or stopped (`close`)."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float, label: str,
                 limits: Limits, method: str, folder: Path) -> None:
        self._proc, self._started = proc, started
        self.label, self.limits, self.method, self.folder = label, limits, method, folder
        self._told = False

    def load(self, label: str | None = None) -> None:
        """The model's files are complete: it loads them now (once; `label` renames it
        in errors, for a sandbox started before its model was known)."""
        if label:
            self.label = label
        if self._told:
            return
        if not (self.folder / "MLmodel").is_file():
            raise InputError(f"{self.label}: no MLmodel file in its model folder")
        self._told = True
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            # unbuffered: nothing left in a buffer for close() to flush into a dead pipe
            os.write(stdin.fileno(), child.GO)
        except BrokenPipeError:
            pass                # it ended already: `result` says why

    def result(self, features: Any, task: str | None = None) -> Prediction:
        limits = self.limits
        try:
            self.load()
            data = wire.features_bytes(features, limits.input_bytes, self.label)
        except InputError:
            self.close()
            raise
        done = process.finish(self._proc, data, started=self._started,
                              wall_seconds=limits.wall_seconds,
                              output_bytes=limits.output_bytes,
                              stderr_bytes=limits.stderr_bytes)
        problem = failures.describe(done, limits, self.label)
        if problem is not None:
            raise InputError(problem)
        answer = wire.read_answer(done.stdout, len(features), task, self.label)
        return Prediction(answer.values, answer.proba, answer.classes, self.method,
                          done.seconds)

    def close(self) -> None:
        """Stopped and reaped, whatever it was doing (safe to call twice)."""
        if self._proc.poll() is None:
            process.kill(self._proc)
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        self._proc.wait()
