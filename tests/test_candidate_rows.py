"""Rows the candidate chose, columns only it supplied, leakage, hostile rows: issue 23,
against the in-memory store (the real gather and run_gate, real skops models)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gate import contract
from gate.commands.check import run_gate
from gate.core import config as config_mod
from gate.delivery.deliver import Targets
from gate.errors import InputError
from gate.evidence import leakage
from gate.stats.paired import PairedStat
from tests.memory_store import MemoryStore, as_store, diabetes_split, log_regressor

ROOT = Path(__file__).resolve().parent.parent
NAME = "diabetes-regressor"
BASE = """
[model]
name = "diabetes-regressor"
[compare]
resamples = 300
{compare}
[metrics.rmse]
direction = "lower"
max = 80.0
tolerance_rel = 0.02
{eval}
"""


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return diabetes_split()


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "store")


def config(tmp_path: Path, compare: str = "", evaluation: str = "") -> config_mod.Config:
    path = tmp_path / "gate.toml"
    path.write_text(BASE.format(compare=compare, eval=evaluation))
    return config_mod.load(path)


def ridge(store: MemoryStore, data: dict[str, Any], **kw: Any) -> Any:
    from sklearn.linear_model import Ridge

    return log_regressor(store, Ridge(alpha=1.0), data["train"], data["eval"], **kw)


def check(store: MemoryStore, cfg: config_mod.Config, run_id: str,
          tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    out, summary = tmp_path / "verdict.json", tmp_path / "summary.md"
    summary.unlink(missing_ok=True)
    outcome = run_gate(as_store(store), cfg, run_id, promote=True,
                       targets=Targets(json_path=str(out), summary_path=str(summary)))
    return outcome.exit_code, json.loads(out.read_text()), summary.read_text()


def first_lines(report: str) -> str:
    """The report down to its facts paragraph: the headline and the trust lines."""
    return report.split("**Model gate**", 1)[0]


def pinned(tmp_path: Path, data: dict[str, Any]) -> str:
    X, y = data["eval"]
    X.assign(target=y).to_csv(tmp_path / "holdout.csv", index=False)
    return '[eval]\ndata = "holdout.csv"\ntarget = "target"\nrequire = true\n'


def test_require_refuses_a_first_model_judged_on_its_own_rows(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(tmp_path, evaluation="[eval]\nrequire = true\n")
    run = ridge(store, data)
    with pytest.raises(InputError) as caught:
        check(store, cfg, run.run_id, tmp_path)
    message = str(caught.value)
    assert "require = true" in message and "a first model" in message
    assert "[eval] data" in message and "\n" not in message
    assert store.versions(NAME) == []


def test_require_refuses_the_model_after_a_lost_champion(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    plain = config(tmp_path)
    first = ridge(store, data)
    assert check(store, plain, first.run_id, tmp_path)[0] == 0
    store.delete_version(NAME, "1")
    second = ridge(store, data)
    with pytest.raises(InputError, match="the champion is gone"):
        check(store, config(tmp_path, evaluation="[eval]\nrequire = true\n"),
              second.run_id, tmp_path)


def test_require_with_pinned_rows_judges_a_first_model_on_them(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(tmp_path, evaluation=pinned(tmp_path, data))
    code, verdict, report = check(store, cfg, ridge(store, data).run_id, tmp_path)
    assert code == 0 and verdict["status"] == "first_model"
    assert verdict["eval_set"]["source"].startswith("pinned eval set")
    assert "candidate itself" not in report


def test_own_rows_and_a_vanished_alias_are_in_the_first_lines(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(tmp_path)
    code, verdict, report = check(store, cfg, ridge(store, data).run_id, tmp_path)
    assert code == 0 and verdict["status"] == "first_model"
    assert "eval rows chosen by the candidate itself" in first_lines(report)
    store.delete_version(NAME, "1")
    code, verdict, report = check(store, cfg, ridge(store, data).run_id, tmp_path)
    assert verdict["champion_missing"]
    head = first_lines(report)
    assert "alias is gone" in head and "chosen by the candidate itself" in head


def test_columns_only_the_run_supplied_are_not_verified(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    cfg = config(tmp_path, compare="require_verified = true")
    assert check(store, config(tmp_path), ridge(store, data).run_id, tmp_path)[0] == 0
    (X_train, y_train), (X_eval, y_eval) = data["train"], data["eval"]
    # a column equal to the label, present only in the candidate's own rows
    run = log_regressor(store, LinearRegression(), (X_train.assign(leak=y_train), y_train),
                        (X_eval.assign(leak=y_eval), y_eval))
    code, verdict, report = check(store, cfg, run.run_id, tmp_path)
    assert code == 1 and verdict["verified"] is False
    how = verdict["candidate_model"]["predictions"]
    assert how.startswith("computed on columns only the run supplied (leak): not verified")
    assert "require_verified" in verdict["blocked_by"][0]
    assert "only the run supplied (leak)" in first_lines(report)


def test_a_model_that_saw_the_eval_rows_is_flagged_in_the_first_lines(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeRegressor

    cfg = config(tmp_path)
    assert check(store, cfg, ridge(store, data).run_id, tmp_path)[0] == 0
    (X_train, y_train), (X_eval, y_eval) = data["train"], data["eval"]
    # trained on Production's eval rows too; validated on rows of its own
    fit_X = pd.concat([X_train.iloc[:250], X_eval])
    fit_y = pd.concat([y_train.iloc[:250], y_eval])
    run = log_regressor(store, DecisionTreeRegressor(random_state=0), (fit_X, fit_y),
                        (X_train.iloc[250:], y_train.iloc[250:]))
    code, verdict, report = check(store, cfg, run.run_id, tmp_path)
    assert verdict["paired"] is True
    assert "possible leakage" in first_lines(report)
    # an honest better model is not flagged
    from sklearn.linear_model import LinearRegression

    honest = log_regressor(store, LinearRegression(), data["train"], data["eval"])
    code, verdict, report = check(store, cfg, honest.run_id, tmp_path)
    assert verdict["paired"] is True and "leakage" not in report


def test_leakage_rule() -> None:
    def stat(champion: float, candidate: float, mde: float) -> PairedStat:
        return PairedStat(champion, candidate, candidate - champion, 0, 0, mde, 100)

    # far better than the champion (> 3 mde) and > 10 % better than its own logged value
    assert leakage.suspicious("lower", stat(60.0, 20.0, 3.0), 58.0)
    assert not leakage.suspicious("lower", stat(60.0, 20.0, 3.0), 21.0)    # logged agrees
    assert not leakage.suspicious("lower", stat(60.0, 55.0, 3.0), 62.0)    # < 3 mde better
    assert not leakage.suspicious("lower", stat(60.0, 20.0, 3.0), None)
    assert not leakage.suspicious("lower", stat(60.0, 20.0, 0.0), 58.0)
    assert leakage.suspicious("higher", PairedStat(0.4, 0.95, -0.55, 0, 0, 0.05, 100), 0.45)


def _own_rows(store: MemoryStore, run: Any, frame: pd.DataFrame) -> None:
    frame.to_parquet(Path(run.artifact_uri, contract.EVAL_ROWS), index=False)


def test_row_ids_that_are_lists_are_bad_input(store: MemoryStore, data: dict[str, Any],
                                              tmp_path: Path) -> None:
    run = ridge(store, data)
    X, y = data["eval"]
    frame = X.reset_index(drop=True).assign(target=y.to_numpy())
    frame[contract.ROW_ID_COLUMN] = [[i, i] for i in range(len(frame))]
    _own_rows(store, run, frame)
    with pytest.raises(InputError, match="must hold integers or strings"):
        check(store, config(tmp_path), run.run_id, tmp_path)


def test_a_string_target_on_a_first_model_is_bad_input(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path) -> None:
    run = ridge(store, data)
    X, y = data["eval"]
    words = np.where(y.to_numpy() > 150, "high", "low")
    _own_rows(store, run, X.reset_index(drop=True).assign(target=words))
    with pytest.raises(InputError, match="label column is not numeric"):
        check(store, config(tmp_path), run.run_id, tmp_path)


def test_the_candidates_evaluation_is_not_parsed_when_unused(
        store: MemoryStore, data: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gate.evidence import evalset

    cfg = config(tmp_path, evaluation=pinned(tmp_path, data))
    run = ridge(store, data)
    parsed: list[str] = []
    real = evalset.read_table

    def spy(path: Path, what: str) -> Any:
        parsed.append(what)
        return real(path, what)

    monkeypatch.setattr(evalset, "read_table", spy)
    code, verdict, _ = check(store, cfg, run.run_id, tmp_path)
    assert code == 0 and verdict["verified"] is True
    # the pinned rows only: the candidate's rows and predictions were checked from their
    # Parquet footers, never decoded
    assert all("[eval] data" in what for what in parsed) and parsed
