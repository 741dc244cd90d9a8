"""The candidate's sandbox started before its model is known: the child imports MLflow
(most of a sandbox's start) while this process imports it too and asks the store which
model to judge. The model's files are then fetched into the folder it watches."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from gate import sandbox
from gate.evidence import scoring
from gate.evidence.workdir import temp_dir


@contextlib.contextmanager
def candidate_sandbox() -> Iterator[sandbox.Pending | None]:
    """A sandbox on an empty folder, stopped when the block ends (used or not); None
    where no sandbox can be made (the check says so when it scores)."""
    if not sandbox.probe().ok:
        yield None
        return
    limits = scoring.sandbox_limits()
    with temp_dir() as tmp:
        folder = Path(tmp) / "candidate-model"
        folder.mkdir()
        pending = sandbox.warm(folder, label="the candidate's model", limits=limits)
        try:
            yield pending
        finally:
            pending.close()
