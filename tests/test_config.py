"""gate.toml: valid files load; every bad one is a ConfigError naming the key."""
from pathlib import Path

import pytest

from gate.core import config
from gate.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[model]
name = "m"
alias = "production"
stage = "Production"

[compare]
policy = "point"
confidence = 0.9
resamples = 500
seed = 3

[metrics.rmse]
direction = "lower"
max = 70.0
tolerance = 0.5
tolerance_rel = 0.02
required = true

[metrics.r2]
direction = "higher"
min = 0.3
tolerance_rel = 0.05
required = false
"""


def test_repository_config_loads() -> None:
    cfg = config.load(ROOT / "gate.toml")
    assert cfg.model.name == "diabetes-regressor"
    assert [m.name for m in cfg.metrics] == ["rmse", "mae", "r2"]
    assert cfg.primary_metric == "rmse"


def test_full_config_is_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(GOOD)
    cfg = config.load(path)
    assert cfg.model == config.ModelConfig("m", "production", "Production")
    assert cfg.compare == config.CompareConfig("point", 0.9, 500, 3)
    rmse, r2 = cfg.metrics
    assert (rmse.direction, rmse.max, rmse.tolerance, rmse.tolerance_rel) == \
        ("lower", 70.0, 0.5, 0.02)
    assert (r2.direction, r2.min, r2.required) == ("higher", 0.3, False)


def test_defaults_apply() -> None:
    cfg = config.parse('[metrics.mae]\ndirection = "lower"\n')
    assert cfg.compare == config.CompareConfig()
    assert cfg.model.alias == "production" and cfg.model.stage is None
    assert cfg.metrics[0].required is True and cfg.metrics[0].tolerance == 0.0


@pytest.mark.parametrize("text, fragment", [
    ('[model]\nnmae = "x"\n[metrics.a]\ndirection="lower"', "unknown key 'model.nmae' (did you mean 'model.name'?)"),
    ('[metrics.rmse]\ndirection = "lower"\ntolerence = 1', "did you mean 'metrics.rmse.tolerance'"),
    ('[compare]\npolicy = "significant"\n[metric.rmse]\ndirection="lower"', "unknown key 'metric'"),
    ('[metrics.rmse]\ndirection = "lower"\nmax = "70"', "metrics.rmse.max must be a number, not string"),
    ('[metrics.rmse]\ndirection = "lower"\nrequired = "yes"', "metrics.rmse.required must be a boolean, not string"),
    ('[metrics.rmse]\ndirection = "lower"\nmax = true', "metrics.rmse.max must be a number, not boolean"),
    ('[compare]\nresamples = 2000.5\n[metrics.a]\ndirection="lower"', "compare.resamples must be an integer"),
    ('[metrics.rmse]\ndirection = "down"', "metrics.rmse.direction must be 'lower' or 'higher'"),
    ('[metrics.rmse]\nmax = 3', "metrics.rmse.direction is required"),
    ('[metrics.rmse]\ndirection = "lower"\nmin = 3', "metrics.rmse.min contradicts direction"),
    ('[metrics.r2]\ndirection = "higher"\nmax = 3', "metrics.r2.max contradicts direction"),
    ('[metrics.rmse]\ndirection = "lower"\ntolerance = -1', "tolerance and tolerance_rel must be >= 0"),
    ('[compare]\npolicy = "strict"\n[metrics.a]\ndirection="lower"', "compare.policy must be one of"),
    ('[compare]\nconfidence = 1.5\n[metrics.a]\ndirection="lower"', "compare.confidence must be in"),
    ('[compare]\nresamples = 5\n[metrics.a]\ndirection="lower"', "compare.resamples must be between"),
    ('[compare]\nprimary_metric = "mape"\n[metrics.a]\ndirection="lower"', "primary_metric 'mape' is not"),
    ('[model]\nname = "m"\n', "no [metrics.NAME] configured"),
    ('[metrics]\n', "no [metrics.NAME] configured"),
    ('metrics = 3', "[metrics] must be a table"),
    ('[metrics.rmse]\ndirection = "lower"\nmax = nan', "must be a finite number"),
    ('[model\nname = "m"', "not valid TOML"),
    ('[model]\nalias = ""\n[metrics.a]\ndirection="lower"', "model.alias must not be empty"),
    ('[metrics.r2]\ndirection = "lower"', "metrics.r2.direction is 'lower', but r2 is higher-is-better"),
    ('[metrics.rmse]\ndirection = "higher"', "metrics.rmse.direction is 'higher', but rmse is lower"),
    ('[metrics.log_loss]\ndirection = "higher"', "metrics.log_loss.direction is 'higher'"),
    ('[metrics.f1]\ndirection = "lower"', "metrics.f1.direction is 'lower', but f1 is higher"),
    ('[metrics.f1_score]\ndirection = "lower"', "metrics.f1_score.direction is 'lower'"),
    ('[metrics.roc_auc]\ndirection = "lower"', "metrics.roc_auc.direction is 'lower'"),
    ('[metrics.brier]\ndirection = "higher"', "metrics.brier.direction is 'higher'"),
    ('[metrics.f1]\ndirection = "higher"\naverage = "micro"', "metrics.f1.average must be one of binary, macro, weighted, not 'micro'"),
    ('[metrics.f1]\ndirection = "higher"\naverage = 2', "metrics.f1.average must be a string, not integer"),
    ('[metrics.f1]\ndirection = "higher"\npos_label = 1.5', "metrics.f1.pos_label must be a string or integer, not number"),
    ('[metrics.f1]\ndirection = "higher"\npos_label = true', "metrics.f1.pos_label must be a string or integer, not boolean"),
    ('[metrics.rmse]\ndirection = "lower"\naverage = "macro"', "metrics.rmse.average applies to classification metrics only"),
    ('[metrics.val_f1]\ndirection = "higher"\npos_label = 1', "metrics.val_f1.pos_label applies to classification"),
    ('[metrics.f1]\ndirection = "higher"\naverag = "macro"', "did you mean 'metrics.f1.average'"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert fragment in message
    assert str(path) in message and "\n" not in message


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")


def test_allowance_is_the_larger_of_absolute_and_relative() -> None:
    rule = config.MetricRule("rmse", "lower", tolerance=0.5, tolerance_rel=0.02)
    assert rule.allowance(10.0) == 0.5
    assert rule.allowance(100.0) == pytest.approx(2.0)
    assert rule.allowance(-100.0) == pytest.approx(2.0)


CLASSIFIER = """
[metrics.f1]
direction = "higher"
average = "macro"
tolerance = 0.01

[metrics.roc_auc]
direction = "higher"
pos_label = "spam"

[metrics.log_loss]
direction = "lower"
tolerance_rel = 0.02

[metrics.val_loss]
direction = "higher"
required = false
"""


def test_classifier_metrics_load_with_their_options() -> None:
    from gate.stats.catalogue import MetricSpec

    cfg = config.parse(CLASSIFIER)
    f1, auc, loss, custom = cfg.metrics
    assert f1.spec() == MetricSpec("f1", "higher", average="macro")
    assert auc.spec() == MetricSpec("roc_auc", "higher", pos_label="spam")
    assert (loss.average, loss.pos_label) == (None, None)
    # an unknown metric keeps whatever direction its team chose
    assert custom.direction == "higher"
    assert config.parse('[metrics.f1]\ndirection = "higher"\npos_label = 0\n'
                        ).metrics[0].pos_label == 0


def test_eval_require_is_a_boolean_and_defaults_off(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text('[metrics.rmse]\ndirection = "lower"\n')
    assert config.load(path).eval.require is False
    path.write_text('[eval]\nrequire = true\n[metrics.rmse]\ndirection = "lower"\n')
    assert config.load(path).eval.require is True
    path.write_text('[eval]\nrequire = "yes"\n[metrics.rmse]\ndirection = "lower"\n')
    with pytest.raises(ConfigError, match="eval.require must be a boolean"):
        config.load(path)


def test_the_shipped_config_pins_its_eval_set_and_requires_it() -> None:
    from gate.evidence.evalset import sha256_file

    cfg = config.load(ROOT / "gate.toml")
    assert cfg.eval.require is True and cfg.eval.target == "target"
    assert cfg.eval.digest == "sha256:" + sha256_file(cfg.eval.path(cfg.source))
