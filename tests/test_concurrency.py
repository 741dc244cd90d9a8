"""Two promotions racing for Production on a real server, 20 times over: exactly one
wins, the other is refused with exit 3's error, and the tags tell the story."""
from __future__ import annotations

import threading

import pytest

from gate.core import config as config_mod
from gate.core.decide import Verdict
from gate.errors import InfraError
from gate.commands.check import promote_run
from gate.mlflowstore.registry import Registry
from tests.conftest import ROOT, train

ROUNDS = 20


@pytest.fixture(scope="module")
def runs(mlflow_server: str) -> tuple[str, str, str]:
    import os

    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        return train(), train("--seed", "1"), train("--seed", "2")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


def test_racing_promotions_leave_exactly_one_winner(mlflow_server: str,
                                                    runs: tuple[str, str, str]) -> None:
    registry = Registry(mlflow_server)
    base_run, *racers = (registry.run(run_id) for run_id in runs)
    verdict = Verdict(base_run.run_id, None, "significant", ())
    base_cfg = config_mod.load(ROOT / "gate.toml")
    for round_ in range(ROUNDS):
        cfg = base_cfg.with_model_name(f"race-{round_}")
        assert promote_run(registry, cfg, base_run, None, verdict, reason=None,
                           forced=False) == "1"
        champion = registry.champion(cfg.model)
        results: dict[str, object] = {}

        def promote(run) -> None:
            try:
                results[run.run_id] = promote_run(Registry(mlflow_server), cfg, run, champion,
                                                  verdict, reason=None, forced=False)
            except InfraError as exc:
                results[run.run_id] = exc

        threads = [threading.Thread(target=promote, args=(run,)) for run in racers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        winners = [rid for rid, r in results.items() if isinstance(r, str)]
        losers = [r for r in results.values() if isinstance(r, InfraError)]
        assert len(winners) == 1 and len(losers) == 1, (round_, results)
        assert losers[0].exit_code == 3
        assert "promotion" in str(losers[0]) or "moved from" in str(losers[0])
        now = registry.champion(cfg.model)
        assert now.run.run_id == winners[0]
        assert now.tags["gate.champion_version"] == "1" and "gate.promoted_at" in now.tags
        promoted = [v for v in registry.versions(cfg.model.name)
                    if "gate.promoted_at" in v.tags]
        assert sorted(v.version for v in promoted) == ["1", now.version]
        assert "gate.lock" not in (registry.client.get_registered_model(cfg.model.name).tags
                                   or {})
