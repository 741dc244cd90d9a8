"""A model's predictions, computed in the sandbox the way serving computes them."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InputError
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
    """The sandbox started on a model: it imports MLflow and loads the model while the
    caller does other work (fetches, the other model); `result` hands it the rows.

    Start it from a thread that outlives it (the main thread): bwrap's --die-with-parent
    kills the sandbox when the thread that started it ends."""
    found = probe(bwrap)
    if not found.ok or found.bwrap is None:
        raise SandboxUnavailable(f"{label} cannot be scored in a sandbox: {found.why}")
    folder = Path(model_dir).resolve()
    if not (folder / "MLmodel").is_file():
        raise InputError(f"{label}: no MLmodel file in its model folder")
    argv = jail.command(found.bwrap, folder, limits.tmp_bytes, limits.input_bytes)
    started = time.monotonic()
    return Pending(process.spawn(argv, preexec(limits)), started, label, limits,
                   f"mlflow.pyfunc in sandbox ({found.kind})")


class Pending:
    """A started sandbox: asked once (`result`), or stopped (`close`)."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float, label: str,
                 limits: Limits, method: str) -> None:
        self._proc, self._started = proc, started
        self.label, self.limits, self.method = label, limits, method

    def result(self, features: Any, task: str | None = None) -> Prediction:
        limits = self.limits
        try:
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
