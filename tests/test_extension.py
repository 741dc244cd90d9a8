"""One place per extension: a metric is one catalogue entry, a model flavor one Flavor.

A toy metric and a toy flavor are added the documented way, used through the gate's
own entry points (config validation, the paired comparison, describe/available/load),
and removed again.
"""
from __future__ import annotations

import json
import pkgutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm

from gate.core import config
from gate.errors import ConfigError, InputError
from gate.evidence import flavors, loaders, modelfile
from gate.evidence.flavors.base import Flavor, Found, Loaded, ModelFile, Outputs, inside
from gate.stats import catalogue, classmetrics, regression
from gate.stats import engine as stats
from gate.stats.catalogue import ClassScores, Metric, MetricSpec
from gate.stats.parts import Part, SumPart

SETTINGS: dict[str, Any] = {"confidence": 0.95, "resamples": 500, "seed": 0}


# -- a metric ---------------------------------------------------------------------

def _squared_log(y: np.ndarray, p: np.ndarray, centre: float) -> np.ndarray:
    return ((np.log1p(p) - np.log1p(y)) ** 2)[:, None]


def _error_rate(task: classmetrics.Task, model: classmetrics.Model, name: str) -> Part:
    return SumPart(lambda rows: (model.pred[rows] != task.y[rows]).astype(float)[:, None],
                   regression.mean, 1)


@pytest.fixture
def msle() -> Iterator[Metric]:
    metric = catalogue.register(Metric("msle", "lower", ("mean_squared_log_error",),
                                       sums=regression.RowSums(_squared_log, regression.mean)))
    yield metric
    catalogue.unregister("msle")


@pytest.fixture
def error_rate() -> Iterator[Metric]:
    yield catalogue.register(Metric("error_rate", "lower", builder=_error_rate))
    catalogue.unregister("error_rate")


def _regression_rows(n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    y = rng.gamma(4.0, 5.0, n)
    return y, y * rng.lognormal(0, 0.1, n), y * rng.lognormal(0, 0.2, n)


def test_a_registered_metric_is_validated_by_the_config(msle: Metric) -> None:
    for name in ("msle", "mean_squared_log_error"):
        rule = config.parse(f'[metrics.{name}]\ndirection = "lower"\n').metrics[0]
        assert (rule.name, rule.direction) == (name, "lower")
        with pytest.raises(ConfigError, match="lower-is-better"):
            config.parse(f'[metrics.{name}]\ndirection = "higher"\n')
    with pytest.raises(ConfigError, match="classification metrics only"):
        config.parse('[metrics.msle]\ndirection = "lower"\naverage = "macro"\n')


def test_a_registered_metric_is_scored_by_the_paired_comparison(msle: Metric) -> None:
    y, champion, candidate = _regression_rows()
    result = stats.paired_bootstraps([("msle", "lower"), ("mean_squared_log_error", "lower"),
                                      ("rmse", "lower")], y, champion, candidate, **SETTINGS)
    for name in ("msle", "mean_squared_log_error"):
        stat = result[name]
        assert stat.champion == pytest.approx(skm.mean_squared_log_error(y, champion))
        assert stat.candidate == pytest.approx(skm.mean_squared_log_error(y, candidate))
        assert stat.low < stat.worsening < stat.high and stat.low > 0
    assert stats.evaluate(("msle", "lower"), y, candidate) == \
        pytest.approx(skm.mean_squared_log_error(y, candidate))
    assert stats.score("msle", y, candidate) == result["msle"].candidate
    assert "mean_squared_log_error" in stats.METRICS and stats.supports("msle")


def test_a_registered_classification_metric(error_rate: Metric) -> None:
    rule = config.parse('[metrics.error_rate]\ndirection = "lower"\naverage = "macro"\n'
                        ).metrics[0]
    assert rule.spec() == MetricSpec("error_rate", "lower", average="macro")
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    champion, candidate = (np.where(rng.random(300) < hit, y, (y + 1) % 3)
                           for hit in (0.8, 0.7))
    scores = [ClassScores(labels=pred, proba=None, classes=()) for pred in (champion, candidate)]
    stat = stats.paired_bootstraps([rule.spec(), ("accuracy", "higher")], y, *scores,
                                   **SETTINGS)["error_rate"]
    assert stat.champion == pytest.approx(1 - skm.accuracy_score(y, champion))
    assert stat.candidate == pytest.approx(1 - skm.accuracy_score(y, candidate))
    assert stat.low < stat.worsening < stat.high and stat.low > 0
    # plain labels serve a label metric as they serve accuracy
    assert stats.paired_bootstraps([rule.spec()], y, champion, candidate,
                                   **SETTINGS)["error_rate"] == stat
    assert catalogue.is_classification("error_rate") and not catalogue.needs_proba("error_rate")


def test_a_metric_is_gone_once_unregistered() -> None:
    for name in ("msle", "mean_squared_log_error", "error_rate"):
        assert catalogue.lookup(name) is None and not stats.supports(name)
    assert "msle" not in stats.METRICS
    # unknown again: its team's direction stands, in either sense
    assert config.parse('[metrics.msle]\ndirection = "higher"\n').metrics[0].direction == \
        "higher"
    y, champion, candidate = _regression_rows()
    with pytest.raises(InputError, match="no per-row scorer for metric 'msle'"):
        stats.paired_bootstraps([("msle", "lower")], y, champion, candidate, **SETTINGS)


def test_a_metric_entry_is_checked(msle: Metric) -> None:
    with pytest.raises(ValueError, match="mean_squared_log_error already named"):
        catalogue.register(Metric("msle2", "lower", ("mean_squared_log_error",),
                                  sums=msle.sums))
    with pytest.raises(ValueError, match="already named"):
        catalogue.register(Metric("rmse", "lower", sums=msle.sums))
    with pytest.raises(ValueError, match="direction must be"):
        Metric("x", "smaller", sums=msle.sums)
    with pytest.raises(ValueError, match="sums or its builder"):
        Metric("x", "lower")
    assert catalogue.lookup("msle2") is None


def test_every_catalogue_metric_has_its_implementation() -> None:
    for name in catalogue.names():
        metric = catalogue.lookup(name)
        assert metric is not None and metric.name == name
        assert metric.sums is not None or metric.builder is not None
        assert not metric.needs_proba or metric.classification
        for alias in metric.aliases:
            assert catalogue.canonical(alias) == name


# -- a model flavor ---------------------------------------------------------------

class Constant:
    """The toy flavor's model: one prediction for every row."""

    def __init__(self, value: float) -> None:
        self.value = value

    @property
    def feature_names(self) -> tuple[str, ...]:
        return ()

    def outputs(self, features: Any) -> Outputs:
        return Outputs(np.full(len(features), self.value), None, ())


def _toy_describe(block: dict[str, Any], label: str) -> Found:
    return Found("json", inside(block.get("data", "model.json"), label), True)


def _toy_load(model_dir: Path, model: ModelFile, trusted: Iterable[str],
              label: str) -> Loaded:
    assert model.data is not None
    return Constant(float(json.loads((model_dir / model.data).read_text())["prediction"]))


TOY = Flavor("toyflavor", 50, _toy_describe, lambda model: "json", _toy_load)


@pytest.fixture
def toyflavor() -> Iterator[Flavor]:
    yield flavors.register(TOY)
    flavors.unregister("toyflavor")


def _model_dir(tmp: Path, blocks: dict[str, Any]) -> Path:
    (tmp / "MLmodel").write_text(yaml.safe_dump({"flavors": blocks}))
    (tmp / "model.json").write_text(json.dumps({"prediction": 2.5}))
    return tmp


def test_a_registered_flavor_is_described_and_loaded(tmp_path: Path,
                                                     toyflavor: Flavor) -> None:
    folder = _model_dir(tmp_path, {"toyflavor": {"data": "model.json"},
                                   "python_function": {"loader_module": "toy"}})
    info = modelfile.describe(modelfile.read_mlmodel(folder, "toy v1"), "toy v1")
    assert (info.flavor, info.format, info.loader, info.data) == \
        ("toyflavor", "json", "toyflavor", "model.json")
    assert info.key == "toyflavor:json" and loaders.available(info)
    loaded = loaders.load(folder, info, loaders.TRUSTED_TYPES, "toy v1")
    outputs = loaded.outputs(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    assert list(outputs.values) == [2.5, 2.5, 2.5] and outputs.proba is None
    with pytest.raises(InputError, match="not a path inside the model folder"):
        modelfile.describe({"flavors": {"toyflavor": {"data": "../x.json"}}}, "toy v1")


def test_flavors_claim_a_model_in_priority_order(toyflavor: Flavor) -> None:
    keys = [flavor.key for flavor in flavors.registered()]
    assert keys == ["sklearn", "lightgbm", "xgboost", "toyflavor"]
    everything = {"toyflavor": {}, "xgboost": {}, "lightgbm": {},
                  "sklearn": {"serialization_format": "skops"}}
    assert modelfile.describe({"flavors": everything}, "m").flavor == "sklearn"
    del everything["sklearn"]
    assert modelfile.describe({"flavors": everything}, "m").flavor == "lightgbm"
    assert modelfile.describe({"flavors": {"toyflavor": {}, "pytorch": {}}}, "m").loader == \
        "toyflavor"
    with pytest.raises(ValueError, match="already registered"):
        flavors.register(TOY)


def test_the_package_modules_are_the_flavors() -> None:
    # a flavor is exactly one module of gate.evidence.flavors with a FLAVOR
    modules = {m.name for m in pkgutil.iter_modules(flavors.__path__)}
    assert {"sklearn", "lightgbm", "xgboost"} <= modules
    assert [f.key for f in flavors.registered()] == ["sklearn", "lightgbm", "xgboost"]


def test_an_unknown_flavor_is_the_unverified_kind(tmp_path: Path) -> None:
    # also the toy flavor once unregistered: a flavor nobody claims, never a KeyError
    for blocks in ({"toyflavor": {"data": "model.json"}},
                   {"python_function": {"python_model": "python_model.pkl"}}):
        info = modelfile.describe(modelfile.read_mlmodel(_model_dir(tmp_path, blocks)), "m")
        assert (info.loader, info.data) == (None, None)
        assert not loaders.available(info)
        with pytest.raises(InputError, match="no safe loader"):
            loaders.load(tmp_path, info, loaders.TRUSTED_TYPES, "m")
    assert info.key == "python_function:cloudpickle"
    # a model file described by a flavor since removed
    gone = ModelFile("gone", "json", "gone", "model.json", ())
    assert not loaders.available(gone)
    with pytest.raises(InputError, match="no safe loader for gone / json"):
        loaders.load(tmp_path, gone, loaders.TRUSTED_TYPES, "m")
