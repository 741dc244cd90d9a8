"""Every read bounded (issue 23): files that are small on disk and huge once decoded,
archives that inflate, artifacts over the cap. Each is exit 2 with one line; the bombs
run the gate as a process and measure its peak memory (under 1 GB)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from gate.errors import InputError
from gate.evidence import bounded
from gate.evidence.flavors import sklearn as sklearn_flavor
from tests.conftest import train

PEAK_LIMIT = 1 << 30
BOMB_ROWS = 1_500_000


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def string_bomb(path: Path, rows: int = BOMB_ROWS, width: int = 1000) -> None:
    """One long string, dictionary-encoded: kilobytes on disk, rows x width decoded (no
    Arrow schema stored: the reader takes the column for plain strings, as pandas wrote)."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)),
                                          pa.array(["x" * width]))
    table = pa.table({"x": text, "target": pa.array(np.ones(rows))})
    pq.write_table(table, path, row_group_size=rows, store_schema=False)


def constant_bomb(path: Path, groups: int = 14, rows: int = 100_000,
                  columns: int = 100) -> None:
    """Many row groups of a constant: each column a run of one value."""
    block = pa.table({f"c{i}": pa.array(np.zeros(rows)) for i in range(columns)}
                     | {"target": pa.array(np.ones(rows))})
    with pq.ParquetWriter(path, block.schema) as writer:
        for _ in range(groups):
            writer.write_table(block)


def predictions_for(path: Path, rows: int) -> None:
    pq.write_table(pa.table({"prediction": pa.array(np.ones(rows))}), path)


def test_a_string_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    path = tmp_path / "eval.parquet"
    string_bomb(path)
    assert path.stat().st_size < 500_000
    assert bounded.inspect(path, "rows").rows == BOMB_ROWS     # the footer alone is fine
    with pytest.raises(InputError, match="decodes to more than"):
        bounded.read(path, "rows")


def test_row_groups_of_constants_are_refused_from_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "eval.parquet"
    constant_bomb(path)
    assert path.stat().st_size < 5_000_000
    with pytest.raises(InputError, match="decodes to more than"):
        bounded.inspect(path, "rows")


def test_plain_strings_are_refused_from_their_page_sizes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded, "MAX_DECODED_BYTES", 50 << 20)    # a smaller bomb
    path = tmp_path / "eval.parquet"
    rows = 60_000
    table = pa.table({"s": pa.array(["y" * 1000] * rows), "target": np.ones(rows)})
    pq.write_table(table, path, use_dictionary=False, compression="zstd", store_schema=False)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(InputError, match="decodes to more than"):
        bounded.inspect(path, "rows")


def test_a_small_file_reads_as_before(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"s": ["a", None, "ccc"], "f": [1.0, 2.0, np.nan], "i": [1, 2, 3]})
    frame.to_parquet(tmp_path / "ok.parquet", index=False)
    pd.testing.assert_frame_equal(bounded.read(tmp_path / "ok.parquet", "ok"), frame)


def test_skops_archives_are_bounded_before_skops_opens_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sklearn_flavor, "MAX_ARCHIVE_BYTES", 64 << 20)   # the same check,
    monkeypatch.setattr(sklearn_flavor, "MAX_ARCHIVE_MEMBERS", 1000)     # a smaller bomb
    many = tmp_path / "many.skops"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(sklearn_flavor.MAX_ARCHIVE_MEMBERS + 1):
            archive.writestr(f"m{i}", b"")
    with pytest.raises(InputError, match="members, over the limit"):
        sklearn_flavor.load_skops(many, [], "model")
    big = tmp_path / "big.skops"
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("schema.json", "w", force_zip64=True) as member:
            for _ in range(sklearn_flavor.MAX_ARCHIVE_BYTES // len(chunk) + 1):
                member.write(chunk)
    assert big.stat().st_size < 5_000_000
    with pytest.raises(InputError, match="inflates to"):
        sklearn_flavor.load_skops(big, [], "model")


def artifacts_of(run_id: str) -> Path:
    return Path(client().get_run(run_id).info.artifact_uri.replace("file://", "")) / "gate"


def gate_process(run_id: str, cwd: Path) -> tuple[int, str, int]:
    """`python -m gate check` as a child: its exit code, stderr and peak RSS in bytes."""
    err = cwd / "stderr.txt"
    with err.open("w") as fh:
        child = subprocess.Popen([sys.executable, "-m", "gate", "check", "--run-id", run_id],
                                 cwd=cwd, stdout=subprocess.DEVNULL, stderr=fh)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, err.read_text(), usage.ru_maxrss * 1024


@pytest.mark.parametrize("bomb", ["string", "row_groups"])
def test_eval_row_bombs_are_exit_2_in_bounded_memory(local_store: Path, bomb: str) -> None:
    run_id = train()
    folder = artifacts_of(run_id)
    if bomb == "string":
        string_bomb(folder / "eval.parquet")
        predictions_for(folder / "predictions.parquet", BOMB_ROWS)
    else:
        constant_bomb(folder / "eval.parquet")
        predictions_for(folder / "predictions.parquet", 2_000_000)
    code, err, peak = gate_process(run_id, local_store)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "decodes to more than" in lines[0], err
    assert peak < PEAK_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"


def test_an_artifact_over_the_cap_is_refused_before_download(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = train()
    rows = artifacts_of(run_id) / "eval.parquet"
    with rows.open("r+b") as fh:        # sparse: listed at 600 MB, costs nothing
        fh.truncate(600 * 1024 * 1024)
    code = main(["check", "--run-id", run_id])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "gate/eval.parquet: over the gate's limit" in err and "(629145600 bytes)" in err


def test_candidate_rows_are_not_decoded_when_the_rows_are_production(
        local_store: Path) -> None:
    """A bomb in a candidate's own rows costs nothing when it is judged on Production's:
    only the footer is read (and a footer over the bounds is refused)."""
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    run_id = train("--seed", "3")
    folder = artifacts_of(run_id)
    string_bomb(folder / "eval.parquet")
    predictions_for(folder / "predictions.parquet", BOMB_ROWS)
    assert main(["check", "--run-id", run_id, "--json", "v.json"]) == 0
    verdict = json.loads(Path("v.json").read_text())
    assert verdict["paired"] is True and verdict["verified"] is True
