"""A model's predictions, computed in the sandbox the way serving computes them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InputError
from gate.sandbox import failures, jail, process, wire
from gate.sandbox.limits import Limits, preexec
from gate.sandbox.probe import SandboxUnavailable, probe


@dataclass(frozen=True)
class Prediction:
    values: Any                     # (n,) numbers or labels, what pyfunc's predict returns
    proba: Any | None               # (n, k) class probabilities, or None
    classes: tuple[Any, ...]        # the k classes proba's columns stand for
    method: str                     # how they were computed, for the report and the JSON
    seconds: float = 0.0            # the sandbox's wall time, start to answer

    def __len__(self) -> int:
        return len(self.values)


def predict(model_dir: Path, features: Any, *, label: str, limits: Limits = Limits(),
            task: str | None = None, bwrap: str | None = None) -> Prediction:
    """`mlflow.pyfunc.load_model(model_dir).predict(features)` in a sandbox; `label`
    names the model in errors, `task` (contract.REGRESSION...) tightens the checks.

    Raises SandboxUnavailable when no sandbox can be made here, InputError (one line)
    when the model crashes, hits a limit, fails or answers something malformed."""
    found = probe(bwrap)
    if not found.ok or found.bwrap is None:
        raise SandboxUnavailable(f"{label} cannot be scored in a sandbox: {found.why}")
    folder = Path(model_dir).resolve()
    if not (folder / "MLmodel").is_file():
        raise InputError(f"{label}: no MLmodel file in its model folder")
    data = wire.features_bytes(features, limits.input_bytes, label)
    argv = jail.command(found.bwrap, folder, limits.tmp_bytes, limits.input_bytes)
    done = process.run(argv, data, wall_seconds=limits.wall_seconds,
                       output_bytes=limits.output_bytes, stderr_bytes=limits.stderr_bytes,
                       preexec=preexec(limits))
    problem = failures.describe(done, limits, label)
    if problem is not None:
        raise InputError(problem)
    answer = wire.read_answer(done.stdout, len(features), task, label)
    return Prediction(answer.values, answer.proba, answer.classes,
                      f"mlflow.pyfunc in sandbox ({found.kind})", done.seconds)
