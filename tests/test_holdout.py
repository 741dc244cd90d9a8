"""`gate holdout publish` and `[eval] data` on the tracking server, without a server.

The in-memory store for the command's logic and the verdict (real skops models, real
files); the embedded sqlite store for the command line and MLflow's side of publishing.
The sealed read on the real stack, with its permissions: tests/test_stack_holdout.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gate import contract
from gate.commands.check import run_gate
from gate.commands.cli import main
from gate.commands.holdout import publish
from gate.core import config as config_mod
from gate.core.ports import Store
from gate.delivery.deliver import Targets
from gate.errors import ConfigError, InfraError, InputError
from gate.evidence import rows as rowsource
from tests.conftest import store_rows_toml
from tests.memory_store import MemoryStore, log_regressor

ROOT = Path(__file__).resolve().parent.parent
NAME = "diabetes-regressor"


def as_store(store: MemoryStore) -> Store:
    return store


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    frame = load_diabetes(as_frame=True).frame
    rest, holdout = train_test_split(frame, test_size=0.25, random_state=7)
    train, evaluation = train_test_split(rest, test_size=0.2, random_state=42)
    split = {"train": (train.drop(columns="target"), train["target"]),
             "eval": (evaluation.drop(columns="target"), evaluation["target"])}
    return {**split, "holdout": holdout.reset_index(drop=True)}


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "store")


@pytest.fixture
def holdout_csv(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "holdout.csv"
    data["holdout"].to_csv(path, index=False)
    return path


def pinned(lines: list[str], **changes: str) -> config_mod.Config:
    """gate.toml with the printed [eval] lines appended (and any key of them changed)."""
    eval_lines = [line for line in lines if not line.startswith("#")]
    for key, value in changes.items():
        eval_lines = [line for line in eval_lines if not line.startswith(f"{key} =")]
        if value:
            eval_lines.append(f"{key} = {json.dumps(value)}")
    text = store_rows_toml() + "\n" + "\n".join(eval_lines) + "\n"
    return config_mod.parse(text, "gate.toml")


def test_publish_prints_the_lines_that_pin_it(store: MemoryStore, holdout_csv: Path,
                                              data: dict[str, Any]) -> None:
    published = publish(as_store(store), holdout_csv, "target", "diabetes-2026")
    lines = published.lines()
    assert lines[0].startswith(f"# sealed holdout 'diabetes-2026' ({len(data['holdout'])} rows)")
    table = tomllib.loads("\n".join(lines))["eval"]
    sha = hashlib.sha256(holdout_csv.read_bytes()).hexdigest()
    assert table == {"data": f"runs:/{published.run_id}/holdout/diabetes-2026.csv",
                     "target": "target", "digest": f"sha256:{sha}"}
    run = store.run(published.run_id)
    assert run.tags == {contract.TAG_HOLDOUT_NAME: "diabetes-2026",
                        contract.TAG_HOLDOUT_TARGET: "target", contract.TAG_HOLDOUT_SHA: sha}
    assert run.experiment_id == store.holdouts.experiments[contract.HOLDOUT_EXPERIMENT]
    assert published.run_id in store.holdouts.finished
    stored = Path(run.artifact_uri, "holdout", "diabetes-2026.csv")
    assert stored.read_bytes() == holdout_csv.read_bytes()
    assert pinned(lines).eval.stored      # the lines load as they are


def test_publishing_the_same_content_again_reuses_its_run(store: MemoryStore,
                                                          holdout_csv: Path,
                                                          tmp_path: Path) -> None:
    first = publish(as_store(store), holdout_csv, "target", "h1")
    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes(holdout_csv.read_bytes())
    again = publish(as_store(store), copy, "target", "h1")
    assert again.reused and not first.reused
    assert (again.run_id, again.uri, again.sha256) == (first.run_id, first.uri, first.sha256)
    assert "already published" in again.lines()[0] and len(store.runs) == 1
    # another name, or another label column, is another holdout
    assert publish(as_store(store), holdout_csv, "target", "h2").run_id != first.run_id
    assert publish(as_store(store), holdout_csv, "age", "h1").run_id != first.run_id
    # changed content under the same name: a new run, which the old digest refuses
    copy.write_text(holdout_csv.read_text() + "0,0,0,0,0,0,0,0,0,0,1\n")
    changed = publish(as_store(store), copy, "target", "h1")
    assert changed.run_id != first.run_id and changed.sha256 != first.sha256
    assert len(store.runs) == 4


@pytest.mark.parametrize(("name", "target", "fix", "message"), [
    ("h", "label", None, "has no label column 'label'"),
    ("../h", "target", None, "holdout name '../h'"),
    ("h", "target", "missing", "cannot read"),
    ("h", "target", "text", "a holdout is a .csv or .parquet file"),
    ("h", "target", "empty", "has no rows"),
])
def test_bad_files_and_names_are_bad_input(store: MemoryStore, holdout_csv: Path,
                                           tmp_path: Path, name: str, target: str,
                                           fix: str | None, message: str) -> None:
    path = {None: holdout_csv, "missing": tmp_path / "nope.csv",
            "text": tmp_path / "rows.txt", "empty": tmp_path / "empty.csv"}[fix]
    if fix == "text":
        path.write_text("a,target\n1,2\n")
    if fix == "empty":
        path.write_text("a,target\n")
    with pytest.raises(InputError, match=message) as caught:
        publish(as_store(store), path, target, name)
    assert caught.value.exit_code == 2
    assert store.runs == {}


def test_a_refused_publish_is_exit_3(store: MemoryStore, holdout_csv: Path) -> None:
    store.refuse_uploads = True
    with pytest.raises(InfraError) as caught:
        publish(as_store(store), holdout_csv, "target", "h")
    assert caught.value.exit_code == 3


def test_the_verdict_is_paired_on_the_sealed_holdout(store: MemoryStore, holdout_csv: Path,
                                                     data: dict[str, Any],
                                                     tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression, Ridge

    cfg = pinned(publish(as_store(store), holdout_csv, "target", "diabetes-2026").lines())
    champion = log_regressor(store, Ridge(alpha=1.0), data["train"], data["eval"])
    out = tmp_path / "first.json"
    first = run_gate(as_store(store), cfg, champion.run_id, promote=True,
                     targets=Targets(json_path=str(out)))
    verdict = json.loads(out.read_text())
    assert first.exit_code == 0 and verdict["status"] == "first_model"
    # judged on the sealed rows, never on the ones it logged itself
    assert verdict["eval_set"]["source"] == "sealed holdout diabetes-2026"
    assert verdict["eval_set"]["rows"] == len(data["holdout"])
    assert store.version(NAME, "1").tags[contract.V_EVAL_SHA] == cfg.eval.digest[7:]

    candidate = log_regressor(store, LinearRegression(), data["train"], data["eval"])
    out, report = tmp_path / "second.json", tmp_path / "report.md"
    second = run_gate(as_store(store), cfg, candidate.run_id, promote=False,
                      targets=Targets(json_path=str(out), summary_path=str(report)))
    verdict = json.loads(out.read_text())
    assert second.exit_code in (0, 1) and verdict["paired"]
    assert verdict["eval_set"] == {"source": "sealed holdout diabetes-2026",
                                   "rows": len(data["holdout"]), "sha256": cfg.eval.digest[7:]}
    first_lines = report.read_text().splitlines()[:5]
    assert f"Eval rows: sealed holdout diabetes-2026, {len(data['holdout'])} rows" in \
        " ".join(first_lines), first_lines


def test_rows_that_differ_from_the_digest_are_exit_2(store: MemoryStore,
                                                     holdout_csv: Path,
                                                     tmp_path: Path) -> None:
    published = publish(as_store(store), holdout_csv, "target", "h")
    cfg = pinned(published.lines(), digest="sha256:" + "0" * 64)
    with pytest.raises(InputError, match="content differs from eval.digest") as caught:
        rowsource.chosen_rows(as_store(store), cfg, None, None, tmp_path)
    assert caught.value.exit_code == 2
    # replaced on the server behind the config's back: the same refusal
    stored = Path(store.run(published.run_id).artifact_uri, "holdout", "h.csv")
    stored.write_text(stored.read_text() + "0,0,0,0,0,0,0,0,0,0,1\n")
    with pytest.raises(InputError, match="content differs from eval.digest"):
        rowsource.chosen_rows(as_store(store), pinned(published.lines()), None, None,
                              tmp_path / "again")


def test_a_missing_holdout_is_bad_input(store: MemoryStore, holdout_csv: Path,
                                        tmp_path: Path) -> None:
    published = publish(as_store(store), holdout_csv, "target", "h")
    cfg = pinned(published.lines())
    moved = dataclasses.replace(cfg, eval=dataclasses.replace(
        cfg.eval, data=cfg.eval.data.replace("h.csv", "other.csv")))
    with pytest.raises(InputError, match="not found on the tracking server"):
        rowsource.chosen_rows(as_store(store), moved, None, None, tmp_path)


@pytest.mark.parametrize("data_uri", [
    "runs:/0123456789abcdef0123456789abcdef/holdout/h.csv",
    "mlflow-artifacts:/3/abc/artifacts/holdout/h.parquet",
    "s3://bucket/holdouts/h.csv",
])
def test_a_stored_eval_set_needs_a_digest(data_uri: str) -> None:
    base = store_rows_toml()
    with pytest.raises(ConfigError, match="eval.digest is required") as caught:
        config_mod.parse(f'{base}\n[eval]\ndata = "{data_uri}"\ntarget = "y"\n')
    assert caught.value.exit_code == 2
    digest = "sha256:" + "a" * 64
    cfg = config_mod.parse(f'{base}\n[eval]\ndata = "{data_uri}"\ntarget = "y"\n'
                           f'digest = "{digest}"\n')
    assert cfg.eval.stored and cfg.eval.data == data_uri
    # still a file of rows, and a local path is still a local path
    with pytest.raises(ConfigError, match="must be a .csv or .parquet file"):
        config_mod.parse(f'{base}\n[eval]\ndata = "runs:/abc/holdout/h.json"\ntarget = "y"\n'
                         f'digest = "{digest}"\n')
    local = config_mod.parse(f'{base}\n[eval]\ndata = "data/h.csv"\ntarget = "y"\n')
    assert not local.eval.stored


# --- the command line, on MLflow's embedded store --------------------------------------

def test_cli_publishes_once_and_prints_the_lines(local_store: Path, holdout_csv: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["holdout", "publish", str(holdout_csv), "--target", "target", "--name", "h"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    table = tomllib.loads(first)["eval"]
    assert table["data"].startswith("runs:/") and table["data"].endswith("/holdout/h.csv")
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert tomllib.loads(again)["eval"] == table and "already published" in again

    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(contract.HOLDOUT_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags[contract.TAG_HOLDOUT_SHA] == table["digest"][7:]
    downloaded = client.download_artifacts(runs[0].info.run_id, "holdout/h.csv",
                                           str(local_store / "down"))
    assert Path(downloaded).read_bytes() == holdout_csv.read_bytes()


def test_cli_bad_target_is_exit_2_with_one_line(local_store: Path, holdout_csv: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["holdout", "publish", str(holdout_csv), "--target", "nope", "--name", "h",
                 "--experiment", "sealed"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "has no label column 'nope'" in err
    with pytest.raises(SystemExit) as usage:
        main(["holdout", "publish", str(holdout_csv), "--name", "h"])
    assert usage.value.code == 2
    assert "see `python -m gate holdout publish --help`" in capsys.readouterr().err
