"""`gate holdout publish`: an eval set no candidate can see, and the lines that pin it.

The rows become the artifact of a run in an experiment of their own on the tracking
server. Its permissions seal them: deploy/bootstrap.py gives the gate's users READ and a
pull request's user no grant, so a trainer cannot fit on rows it cannot download. The
printed `[eval]` lines name the artifact by its `runs:/` URI and pin its sha256: the gate
refuses rows that differ, and a stored set without a digest is a config error.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gate import contract
from gate.core.ports import Store
from gate.errors import InputError, echo
from gate.evidence import evalset
from gate.evidence.workdir import temp_dir

SUFFIXES = (".csv", ".parquet", ".pq")
# a name becomes the artifact's file name and a tag: plain, short, no path
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Published:
    """A sealed holdout on the tracking server, and how gate.toml pins it."""

    name: str
    uri: str                    # runs:/<run_id>/holdout/<name><suffix>
    run_id: str
    experiment: str
    target: str
    sha256: str
    rows: int
    reused: bool                # the same content was published under this name before

    def lines(self) -> list[str]:
        """What to paste into gate.toml: a comment, then the [eval] table."""
        how = "already published" if self.reused else "published"
        return [f"# sealed holdout {self.name!r} ({self.rows} rows), {how} as run "
                f"{self.run_id} of experiment {self.experiment!r}",
                "[eval]",
                f"data = {_toml(self.uri)}",
                f"target = {_toml(self.target)}",
                f'digest = "sha256:{self.sha256}"']


def publish(store: Store, file: Path, target: str, name: str,
            experiment: str = contract.HOLDOUT_EXPERIMENT) -> Published:
    """Store `file` as the sealed holdout `name`; the same content under the same name
    and target is the run published before, not a new one."""
    if not _NAME.fullmatch(name):
        raise InputError(f"holdout name {echo(name)[:100]!r}: use 1 to 100 letters, digits, "
                         "'.', '_' or '-', starting with a letter or digit")
    if not experiment.strip() or not experiment.isprintable():
        raise InputError(f"--experiment {echo(experiment)[:100]!r}: not an experiment name")
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{file}: a holdout is a .csv or .parquet file")
    artifact = f"{contract.HOLDOUT_FOLDER}/{name}{suffix}"
    with temp_dir() as tmp:
        # hash and upload one copy: the file may change while this runs
        local = Path(tmp, f"{name}{suffix}")
        try:
            shutil.copyfile(file, local)
        except OSError as exc:
            raise InputError(f"{file}: cannot read ({exc.strerror})") from None
        rows = evalset.eval_rows(local, target, f"holdout {file}", row_id=None)
        sha256, count = rows.sha256, len(rows)
        del rows
        for run_id in store.holdouts.find(experiment, sha256):
            tags = store.run(run_id).tags
            if tags.get(contract.TAG_HOLDOUT_NAME) == name and \
                    tags.get(contract.TAG_HOLDOUT_TARGET) == target:
                return Published(name, f"runs:/{run_id}/{artifact}", run_id, experiment,
                                 target, sha256, count, reused=True)
        run_id = store.holdouts.start(experiment, f"holdout {name}", {
            contract.TAG_HOLDOUT_NAME: name, contract.TAG_HOLDOUT_TARGET: target})
        store.artifacts.log_file(run_id, local, contract.HOLDOUT_FOLDER)
    # the digest last: `find` sees only runs whose file is in place
    store.promotions.tag_run(run_id, {contract.TAG_HOLDOUT_SHA: sha256})
    store.holdouts.finish(run_id)
    return Published(name, f"runs:/{run_id}/{artifact}", run_id, experiment, target,
                     sha256, count, reused=False)


def _toml(text: str) -> str:
    """`text` as a TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(f"\\{ch}" if ch in '"\\' else
                      f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch
                      for ch in text)
    return f'"{escaped}"'
