"""Pure parts of the sandbox's wiring (#28): the python_function block must agree with
the flavor the gate describes, the default `require_verified` binds promotions only,
and the sandbox's limits can be tightened from the environment."""
from __future__ import annotations

from typing import Any

import pytest

from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import Evidence, decide
from gate.errors import InputError
from gate.evidence import scoring, served

SKLEARN = {"pickled_model": "model.skops", "serialization_format": "skops"}
PYFUNC = {"loader_module": "mlflow.sklearn", "model_path": "model.skops"}


def blocks(**flavors: dict[str, Any]) -> dict[str, Any]:
    return {"flavors": flavors}


def test_agreeing_blocks_pass() -> None:
    served.check(blocks(sklearn=SKLEARN, python_function=PYFUNC), "run r1")
    served.check(blocks(python_function={"loader_module": "mlflow.pyfunc.model",
                                         "python_model": "python_model.pkl",
                                         "artifacts": {"x": {"path": "artifacts/x.csv"}}}),
                 "run r1")


@pytest.mark.parametrize("flavors, expected", [
    ({"sklearn": SKLEARN, "python_function": {**PYFUNC, "model_path": "worse.skops"}},
     "run r1: MLmodel's sklearn block names 'model.skops' but its python_function block "
     "(what serving loads) names 'worse.skops'"),
    ({"sklearn": SKLEARN, "python_function": {"loader_module": "mlflow.pyfunc.model",
                                              "python_model": "python_model.pkl"}},
     "run r1: MLmodel's python_function block loads 'mlflow.pyfunc.model'"),
    ({"sklearn": SKLEARN, "python_function": {**PYFUNC, "code": "/etc"}},
     "run r1: MLmodel's python_function block names '/etc' (code), which is not a path"),
    ({"python_function": {"loader_module": "mlflow.pyfunc.model",
                          "artifacts": {"labels": {"path": "../../labels.csv"}}}},
     "names '../../labels.csv' (artifacts.labels), which is not a path inside"),
])
def test_disagreeing_or_escaping_blocks_are_one_line(flavors: dict[str, Any],
                                                     expected: str) -> None:
    with pytest.raises(InputError) as caught:
        served.check({"flavors": flavors}, "run r1")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("require, promoting, blocked", [
    (None, False, False), (None, True, True), (True, False, True), (True, True, True),
    (False, False, False), (False, True, False)])
def test_require_verified_defaults_to_true_for_promotions(require: bool | None,
                                                          promoting: bool,
                                                          blocked: bool) -> None:
    config = Config(model=ModelConfig("m"), compare=CompareConfig(require_verified=require),
                    metrics=(MetricRule("rmse", "lower"),), primary_metric="rmse")
    verdict = decide(config, Evidence("run", {"rmse": 50.0}, candidate_verified=False,
                                      promoting=promoting))
    assert bool(verdict.blocked_by) is blocked
    assert decide(config, Evidence("run", {"rmse": 50.0}, candidate_verified=True,
                                   promoting=promoting)).blocked_by == ()


def test_sandbox_limits_from_the_environment() -> None:
    limits = scoring.sandbox_limits({"GATE_SANDBOX_CPU": "3", "GATE_SANDBOX_WALL": "7.5",
                                     "GATE_SANDBOX_MEMORY_MB": "512"})
    assert (limits.cpu_seconds, limits.wall_seconds, limits.memory_bytes) == \
        (3, 7.5, 512 * 1024 * 1024)
    assert scoring.sandbox_limits({}) == scoring.sandbox.Limits()
    for bad in ("x", "0"):
        with pytest.raises(InputError, match="GATE_SANDBOX_CPU|cpu_seconds"):
            scoring.sandbox_limits({"GATE_SANDBOX_CPU": bad})
