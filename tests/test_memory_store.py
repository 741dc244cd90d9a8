"""The real gather, run_gate, status and rollback against the in-memory store.

No MLflow here: the models and their evaluations are real files (skops models, the
contract's Parquet files), the store around them is dicts. Fast enough to run always.
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gate import contract
from gate.commands import history
from gate.commands.check import LOST_RACE, Outcome, run_gate
from gate.core import config as config_mod
from gate.delivery.deliver import Targets
from gate.evidence import gather as evidence
from gate.evidence.evalset import sha256_file
from tests.conftest import store_rows_toml
from tests.memory_store import MemoryStore, as_store, diabetes_split, log_regressor

ROOT = Path(__file__).resolve().parent.parent
NAME = "diabetes-regressor"


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return diabetes_split()


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "store")


@pytest.fixture
def cfg() -> config_mod.Config:
    return config_mod.parse(store_rows_toml(), str(ROOT / "gate.toml"))


def fit(store: MemoryStore, data: dict[str, Any], alpha: float | None,
        tags: dict[str, str] | None = None) -> Any:
    """Ridge(alpha), or a plain least-squares fit for None: the better model here."""
    from sklearn.linear_model import LinearRegression, Ridge

    estimator = LinearRegression() if alpha is None else Ridge(alpha=alpha)
    return log_regressor(store, estimator, data["train"], data["eval"],
                         tags=tags or {})


def check(store: MemoryStore, cfg: config_mod.Config, run_id: str, tmp_path: Path,
          promote: bool = True) -> tuple[Outcome, dict[str, Any]]:
    out = tmp_path / "verdict.json"
    outcome = run_gate(as_store(store), cfg, run_id, promote=promote,
                       targets=Targets(json_path=str(out)))
    return outcome, json.loads(out.read_text())


def test_first_model_is_promoted_with_its_evidence(store: MemoryStore, data: dict[str, Any],
                                                   cfg: config_mod.Config,
                                                   tmp_path: Path) -> None:
    run = fit(store, data, 1.0)
    outcome, verdict = check(store, cfg, run.run_id, tmp_path)
    assert outcome.exit_code == 0 and verdict["status"] == "first_model"
    assert outcome.promoted_version == verdict["promoted_version"] == "1"
    assert store.champion_version(cfg.model) == "1"
    tags = store.version(NAME, "1").tags
    rows = Path(run.artifact_uri, contract.EVAL_ROWS)
    cached = Path(run.artifact_uri, contract.CACHED_PREDICTIONS)
    assert tags[contract.V_STATUS] == "first_model" and tags[contract.V_CHAMPION] == "none"
    assert tags[contract.V_EVAL_SHA] == sha256_file(rows)
    assert tags[contract.V_EVAL_URI] == f"{run.artifact_uri}/{contract.EVAL_ROWS}"
    assert tags[contract.V_FLAVOR] == "sklearn:skops"
    assert tags[contract.V_PREDICTIONS_SHA] == sha256_file(cached)
    assert store.models[NAME].tags[contract.M_CHAMPION] == "1"
    assert verdict["candidate_model"] == {"model": "sklearn / skops", "verified": True,
                                          "predictions": "computed by the gate, mlflow."
                                                         "pyfunc in sandbox (bwrap)",
                                          "digest": tags[contract.V_MODEL_SHA]}
    assert verdict["data_changed"] is False and verdict["champion_missing"] is None
    assert "first model: its own eval rows are used" in " ".join(verdict["notes"])


def test_better_candidate_passes_and_moves_production(store: MemoryStore,
                                                      data: dict[str, Any],
                                                      cfg: config_mod.Config,
                                                      tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    better = fit(store, data, None)
    outcome, verdict = check(store, cfg, better.run_id, tmp_path)
    assert outcome.exit_code == 0 and verdict["status"] == "passed" and verdict["paired"]
    assert verdict["promoted_version"] == "2" and store.champion_version(cfg.model) == "2"
    assert verdict["champion_model"] == {"model": "sklearn / skops", "verified": True,
                                         "predictions": "cached at its promotion (digest "
                                                        "checked)",
                                         "digest": store.version(NAME, "1").tags[
                                             contract.V_MODEL_SHA]}
    tags = store.version(NAME, "2").tags
    assert tags[contract.V_CHAMPION] == "1" and tags[contract.V_STATUS] == "passed"
    assert contract.V_PROMOTED_AT in tags and contract.LOCK_TAG not in store.models[NAME].tags
    # the champion's rows were the recorded ones, so the candidate's own were not read
    assert verdict["eval_set"]["source"] == "Production v1's eval rows"


def test_worse_candidate_is_blocked_and_nothing_moves(store: MemoryStore,
                                                      data: dict[str, Any],
                                                      cfg: config_mod.Config,
                                                      tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    outcome, verdict = check(store, cfg, fit(store, data, 50.0).run_id, tmp_path)
    assert outcome.exit_code == 1 and verdict["status"] == "blocked"
    assert verdict["promoted_version"] is None and "rmse" in verdict["failed_metrics"]
    assert store.champion_version(cfg.model) == "1"
    assert [v.version for v in store.versions(NAME)] == ["1"]


def test_production_moved_during_promotion_is_exit_3(store: MemoryStore,
                                                     data: dict[str, Any],
                                                     cfg: config_mod.Config,
                                                     tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    rival = store.promotions.register(NAME, fit(store, data, 0.5))    # v2, someone else's
    store.promotions.before_move = lambda: store.set_alias(NAME, cfg.model.alias, rival)
    outcome, verdict = check(store, cfg, fit(store, data, None).run_id, tmp_path)
    assert outcome.exit_code == 3 and outcome.promoted_version is None
    assert verdict["promoted_version"] is None
    assert "moved from v1 to v2" in str(outcome.promote_error)
    assert any(note.startswith("promotion failed, nothing was promoted")
               for note in verdict["notes"])
    assert store.champion_version(cfg.model) == "2"
    lost = store.version(NAME, "3").tags
    assert lost[contract.V_STATUS] == LOST_RACE and "moved from" in lost[contract.V_LOST_REASON]
    assert contract.V_PROMOTED_AT not in lost


def test_status_and_rollback_read_the_store(store: MemoryStore, data: dict[str, Any],
                                            cfg: config_mod.Config, tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    out = io.StringIO()
    assert history.status(as_store(store), cfg, out, str(tmp_path / "status.json")) == 0
    assert "Production (@production) is v2" in out.getvalue()
    table = json.loads((tmp_path / "status.json").read_text())
    assert [row["version"] for row in table["versions"]] == ["v2 ◀", "v1"]
    assert table["versions"][0]["replaced"] == "v1"

    out = io.StringIO()
    assert history.rollback(as_store(store), cfg, "bad in prod", out) == 0
    assert "moved from v2 to v1" in out.getvalue()
    assert store.champion_version(cfg.model) == "1"
    assert store.version(NAME, "1").tags[contract.V_RESTORED_FROM] == "2"
    assert store.version(NAME, "2").tags[contract.V_ROLLBACK_REASON] == "bad in prod"
    out = io.StringIO()
    history.status(as_store(store), cfg, out, None)
    assert "v2" in out.getvalue() and "(rolled back)" in out.getvalue()


def test_a_vanished_champion_is_in_the_evidence_from_the_start(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    store.delete_version(NAME, "1")
    candidate = fit(store, data, None)
    blocking = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, on_missing_champion="block"))
    outcome, verdict = check(store, blocking, candidate.run_id, tmp_path, promote=False)
    assert outcome.exit_code == 1 and verdict["champion_missing"].startswith(
        "Production had versions; the 'production' alias is gone")
    assert verdict["blocked_reason"] == verdict["champion_missing"]
    gathered = evidence.gather(as_store(store), cfg, candidate, None, "gone")
    assert gathered.evidence.champion_missing == "gone"


def test_data_changed_comes_from_the_eval_digest_tag(store: MemoryStore,
                                                     data: dict[str, Any],
                                                     cfg: config_mod.Config,
                                                     tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0, {contract.TAG_DATA_DIGEST: "a" * 16}).run_id, tmp_path)
    champion = store.champion(cfg.model)
    assert champion is not None
    retrained = fit(store, data, None, {contract.TAG_DATA_DIGEST: "0" * 16})
    gathered = evidence.gather(as_store(store), cfg, retrained, champion)
    assert gathered.data_changed is False       # training data changed, eval data did not
    assert any(note.startswith("training data changed since champion v1")
               for note in gathered.notes)
    new_rows = fit(store, data, None, {contract.TAG_EVAL_DIGEST: "f" * 16})
    gathered = evidence.gather(as_store(store), cfg, new_rows, champion)
    assert gathered.data_changed is True
    assert gathered.notes[0].startswith("eval data changed since champion v1")


def test_a_legacy_champions_evaluation_is_read_once(store: MemoryStore,
                                                    data: dict[str, Any],
                                                    cfg: config_mod.Config,
                                                    tmp_path: Path) -> None:
    """A champion promoted before the gate recorded its rows, whose model the sandbox
    cannot load: its run's evaluation gives both the rows and its predictions."""
    import yaml

    old = fit(store, data, 1.0)
    model_dir = Path(store.logged_model_location(old.model_id or "") or "")
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    del mlmodel["flavors"]["python_function"]     # nothing serving (or the gate) loads
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    version = store.promotions.register(NAME, old)
    store.promotions.move_champion(cfg.model, version, None, {})     # no evidence tags
    champion = store.champion(cfg.model)
    assert champion is not None

    store.artifacts.fetched.clear()
    gathered = evidence.gather(as_store(store), cfg, fit(store, data, None), champion)
    manifest_reads = [f for f in store.artifacts.fetched
                      if f == (old.artifact_uri, contract.MANIFEST)]
    assert len(manifest_reads) == 1
    assert gathered.evidence.paired and gathered.champion is not None
    assert gathered.champion.how.startswith("logged by the run, unverified (no "
                                            "python_function loader: serving cannot load")
    assert gathered.rows is not None and gathered.rows.source.endswith("(unchecked)")


def test_an_unkept_cache_is_a_note_and_no_digest(store: MemoryStore, data: dict[str, Any],
                                                 cfg: config_mod.Config,
                                                 tmp_path: Path) -> None:
    store.refuse_uploads = True
    outcome, verdict = check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    assert outcome.exit_code == 0 and verdict["promoted_version"] == "1"
    assert any(note.startswith("the gate's predictions of this version were not kept")
               for note in verdict["notes"])
    tags = store.version(NAME, "1").tags
    assert contract.V_PREDICTIONS_SHA not in tags and contract.V_EVAL_SHA in tags
