"""Classification metrics of the paired comparison against scikit-learn's own functions:
on the full set, under bootstrap counts as `sample_weight`, and their linearised
interval against the bootstrap's."""
from __future__ import annotations

from statistics import NormalDist
from typing import Any, Callable

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from gate.stats import engine as stats
from gate.errors import InputError
from gate.stats.catalogue import ClassScores, MetricSpec
from gate.stats.parts import Part, SumPart

SETTINGS: dict[str, Any] = {"confidence": 0.95, "resamples": 2000, "seed": 0}


def _model(y: np.ndarray, classes: np.ndarray, skill: float, seed: int,
           decimals: int | None = 2) -> ClassScores:
    """A classifier whose probabilities lean towards the true class by `skill`;
    rounded, so that tied scores occur (sklearn's ROC and PR curves group them)."""
    rng = np.random.default_rng(seed)
    codes = np.searchsorted(classes, y)
    logits = rng.normal(0.0, 1.0, (len(y), len(classes)))
    logits[np.arange(len(y)), codes] += skill
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:
        top = proba.argmax(axis=1)
        proba = np.round(proba, decimals)
        # back to rows summing to one (sklearn's multiclass AUC checks), on the top class
        proba[np.arange(len(y)), top] += 1.0 - proba.sum(axis=1)
    return ClassScores(labels=classes[proba.argmax(axis=1)], proba=proba,
                       classes=tuple(classes))


def _task(kind: str, n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = {"binary": np.array([0, 1]), "text": np.array(["ham", "spam"]),
               "multi": np.array([0, 1, 2, 3])}[kind]
    # unequal class sizes, so that macro and weighted averages differ
    p = np.linspace(1.0, 2.0, len(classes))
    return rng.choice(classes, n, p=p / p.sum()), classes


def _reference(name: str, average: str, pos: Any, classes: np.ndarray
               ) -> Callable[[np.ndarray, ClassScores, np.ndarray | None], float]:
    """sklearn's function for `name`, called as the gate means it."""
    binary = len(classes) == 2
    col = list(classes).index(pos)

    def ref(y: np.ndarray, m: ClassScores, w: np.ndarray | None) -> float:
        avg = {"average": average, "zero_division": 0.0}
        if average == "binary":
            avg["pos_label"] = pos
        if name == "accuracy":
            return skm.accuracy_score(y, m.labels, sample_weight=w)
        if name == "balanced_accuracy":
            return skm.balanced_accuracy_score(y, m.labels, sample_weight=w)
        if name in ("precision", "recall", "f1"):
            fn = {"precision": skm.precision_score, "recall": skm.recall_score,
                  "f1": skm.f1_score}[name]
            return fn(y, m.labels, sample_weight=w, **avg)
        if name == "log_loss":
            return skm.log_loss(y, m.proba, labels=classes, sample_weight=w)
        if name == "brier":
            return skm.brier_score_loss(y, m.proba, labels=classes, sample_weight=w)
        fn = skm.roc_auc_score if name == "roc_auc" else skm.average_precision_score
        if binary:
            return fn(y == pos, m.proba[:, col], sample_weight=w)
        if name == "roc_auc":
            return fn(y, m.proba, multi_class="ovr", average=average, labels=classes,
                      sample_weight=w)
        return fn(label_binarize(y, classes=classes), m.proba, average=average,
                  sample_weight=w)

    return ref


NAMES = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss", "brier",
         "roc_auc", "average_precision"]
CASES = [("binary", "binary", None), ("binary", "macro", None), ("binary", "binary", 0),
         ("text", "binary", "ham"), ("multi", "macro", None), ("multi", "weighted", None)]


def _value(part: Part, weights: np.ndarray) -> np.ndarray:
    if isinstance(part, SumPart):
        return part.combine(weights @ part.columns(slice(None)), weights.sum(axis=1))
    return part.values(weights)


@pytest.mark.parametrize("kind,average,pos_label", CASES,
                         ids=[f"{k}-{a}-{p}" for k, a, p in CASES])
@pytest.mark.parametrize("name", NAMES)
def test_values_and_weighted_values_equal_sklearn(name: str, kind: str, average: str,
                                                  pos_label: Any) -> None:
    y, classes = _task(kind)
    champion, candidate = _model(y, classes, 1.0, 2), _model(y, classes, 1.5, 3)
    spec = MetricSpec(name, "higher", average=average, pos_label=pos_label)
    pos = classes[-1] if pos_label is None else pos_label
    ref = _reference(name, average, pos, classes)
    rng = np.random.default_rng(4)
    counts = np.stack([np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
                       for _ in range(3)]).astype(float)
    for model, part in zip((champion, candidate),
                           stats.classification_parts(spec, y, champion, candidate)):
        full = _value(part, np.ones((1, len(y))))[0]
        assert full == pytest.approx(ref(y, model, None), rel=1e-9, abs=1e-12)
        weighted = _value(part, counts)
        expected = [ref(y, model, w) for w in counts]
        assert weighted == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_paired_values_equal_sklearn_and_aliases_agree() -> None:
    y, classes = _task("multi")
    champion, candidate = _model(y, classes, 1.0, 2), _model(y, classes, 1.5, 3)
    rules = [MetricSpec("f1_score", "higher", average="macro"),
             MetricSpec("roc_auc", "higher", average="weighted"), ("log_loss", "lower")]
    result = stats.paired_bootstraps(rules, y, champion, candidate, **SETTINGS)
    assert list(result) == ["f1_score", "roc_auc", "log_loss"]
    f1 = result["f1_score"]
    assert f1.champion == pytest.approx(skm.f1_score(y, champion.labels, average="macro"),
                                        rel=1e-9)
    assert f1.worsening == pytest.approx(f1.champion - f1.candidate)
    loss = result["log_loss"]
    assert loss.candidate == pytest.approx(skm.log_loss(y, candidate.proba, labels=classes),
                                           rel=1e-9)
    assert loss.worsening == pytest.approx(loss.candidate - loss.champion)


@pytest.mark.parametrize("name", ["roc_auc", "average_precision", "f1", "log_loss", "brier",
                                  "balanced_accuracy"])
@pytest.mark.parametrize("kind,average", [("binary", "binary"), ("multi", "macro"),
                                          ("multi", "weighted")])
def test_linearised_se_matches_the_bootstrap(name: str, kind: str, average: str) -> None:
    # the infinitesimal jackknife is the variance the bootstrap estimates: at 4,000
    # rows the two standard errors agree to a few percent (the bootstrap's own Monte
    # Carlo error at 2,000 resamples is about 1.6 %)
    y, classes = _task(kind, n=4000)
    champion, candidate = _model(y, classes, 1.0, 2), _model(y, classes, 1.2, 3)
    rule = [MetricSpec(name, "higher", average=average)]
    boot = stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS)[name]
    line = stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS,
                                   analytic_rows=0)[name]
    assert (line.champion, line.candidate) == pytest.approx((boot.champion, boot.candidate),
                                                            rel=1e-9)
    assert line.mde == pytest.approx(boot.mde, rel=0.08)
    assert line.low < line.worsening < line.high
    assert line.high - line.worsening == pytest.approx(line.worsening - line.low)


@pytest.mark.parametrize("name", ["roc_auc", "average_precision"])
@pytest.mark.parametrize("kind,average", [("binary", "binary"), ("multi", "weighted")])
def test_rank_influence_is_the_derivative_of_the_weighted_metric(name: str, kind: str,
                                                                 average: str) -> None:
    y, classes = _task(kind, n=300)
    model = _model(y, classes, 1.0, 2)
    spec = MetricSpec(name, "higher", average=average)
    part, _ = stats.classification_parts(spec, y, model, model)
    assert not isinstance(part, SumPart)
    value, influence = part.influence()
    assert value == pytest.approx(part.values(np.ones((1, len(y))))[0], rel=1e-12)
    h = 1e-6
    for row in (0, 7, 150, 299):
        up, down = np.ones((1, len(y))), np.ones((1, len(y)))
        up[0, row] += h
        down[0, row] -= h
        slope = (part.values(up)[0] - part.values(down)[0]) / (2 * h)
        assert influence[row] == pytest.approx(slope, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("name", ["f1", "roc_auc", "log_loss", "average_precision"])
def test_seed_and_chunk(name: str) -> None:
    y, classes = _task("multi", n=300)
    champion, candidate = _model(y, classes, 1.0, 2), _model(y, classes, 1.3, 3)
    rule = [MetricSpec(name, "higher", average="macro")]
    first = stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS)[name]
    assert stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS)[name] == first
    # BLAS sums a block of another height in another order: equal to rounding
    again = stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS, chunk=37)[name]
    for field in ("low", "high", "mde"):
        assert getattr(again, field) == pytest.approx(getattr(first, field), rel=1e-12)
    other = stats.paired_bootstraps(rule, y, champion, candidate,
                                    **{**SETTINGS, "seed": 1})[name]
    assert (other.low, other.high) != (first.low, first.high)


@pytest.mark.parametrize("name,direction", [("f1", "higher"), ("roc_auc", "higher"),
                                            ("log_loss", "lower"), ("brier", "lower"),
                                            ("average_precision", "higher")])
def test_a_clearly_worse_classifier_is_confidently_worse(name: str, direction: str) -> None:
    y, classes = _task("binary", n=2000)
    champion, candidate = _model(y, classes, 2.0, 2), _model(y, classes, 1.0, 3)
    result = stats.paired_bootstraps([(name, direction)], y, champion, candidate,
                                     **SETTINGS)[name]
    assert 0 < result.low < result.worsening < result.high
    same = stats.paired_bootstraps([(name, direction)], y, champion, champion,
                                   **SETTINGS)[name]
    assert (same.worsening, same.low, same.high, same.mde) == (0.0, 0.0, 0.0, 0.0)


def test_plain_labels_serve_the_label_metrics() -> None:
    y, classes = _task("text")
    champion, candidate = _model(y, classes, 1.0, 2), _model(y, classes, 1.5, 3)
    result = stats.paired_bootstraps([("precision", "higher")], y, champion.labels,
                                     candidate.labels, **SETTINGS)["precision"]
    assert result.candidate == pytest.approx(
        skm.precision_score(y, candidate.labels, pos_label="spam"), rel=1e-9)


def test_a_rare_class_missing_from_many_resamples_is_refused() -> None:
    # 3 positives in 200 rows: about 5 % of resamples draw none and have no AUC;
    # one positive: a third of them, and the comparison is refused
    y = np.array([1] + [0] * 199)
    classes = np.array([0, 1])
    model = _model(y, classes, 1.0, 2)
    with pytest.raises(InputError, match="roc_auc is undefined in .* of 2000 bootstrap"):
        stats.paired_bootstraps([("roc_auc", "higher")], y, model, _model(y, classes, 1, 3),
                                **SETTINGS)
    with pytest.raises(InputError, match="roc_auc is undefined on these rows"):
        stats.paired_bootstraps([("roc_auc", "higher")], np.zeros(50, dtype=int),
                                _model(np.zeros(50, dtype=int), classes, 1.0, 2),
                                _model(np.zeros(50, dtype=int), classes, 1.0, 3), **SETTINGS)


Y, CLASSES = _task("binary", n=40)
GOOD = _model(Y, CLASSES, 1.0, 2)
NO_PROBA = ClassScores(GOOD.labels, None, GOOD.classes)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no proba", {"candidate": NO_PROBA},
     "roc_auc needs class probabilities; the candidate has none"),
    ("no proba champion", {"champion": NO_PROBA},
     "roc_auc needs class probabilities; the champion has none"),
    ("binary of three", {"y_true": np.r_[Y[:-1], 2], "champion": GOOD.labels,
                         "candidate": GOOD.labels,
                         "rule": MetricSpec("f1", "higher", average="binary")},
     "average 'binary' needs 2 classes, these rows have 3"),
    ("pos_label", {"rule": MetricSpec("roc_auc", "higher", pos_label=5)},
     "pos_label 5 is not one of the classes"),
    ("pos_label text", {"rule": MetricSpec("roc_auc", "higher", pos_label="1")},
     "pos_label '1' is not one of the classes"),
    ("average", {"rule": MetricSpec("roc_auc", "higher", average="micro")},
     "average must be one of binary, macro, weighted"),
    ("range", {"candidate": ClassScores(GOOD.labels, GOOD.proba * 2, GOOD.classes)},
     "candidate probabilities are not all finite and within"),
    ("nan", {"candidate": ClassScores(GOOD.labels, np.r_[GOOD.proba[:-1], [[np.nan, 1]]],
                                      GOOD.classes)}, "not all finite"),
    ("shape", {"candidate": ClassScores(GOOD.labels, GOOD.proba[:, :1], GOOD.classes)},
     r"candidate probabilities have shape \(40, 1\), not \(40, 2\)"),
    ("short", {"candidate": ClassScores(GOOD.labels[:-1], GOOD.proba[:-1], GOOD.classes)},
     "candidate has 39 rows but the target has 40"),
    ("unknown class", {"candidate": ClassScores(GOOD.labels, GOOD.proba[:, ::-1], (0, 7))},
     r"y_true has \d+ row\(s\) of a class the candidate has no probability for \(1\)"),
    ("text and numbers", {"y_true": np.where(Y == 1, "a", "b")}, "labels mix text and numbers"),
    ("objects", {"y_true": np.array([{}] * 40, dtype=object)},
     "y_true labels are neither numbers nor text"),
    ("text proba", {"candidate": ClassScores(GOOD.labels, "x", GOOD.classes)},
     "candidate probabilities are not numeric"),
    ("scalar target", {"y_true": 3}, "0 eval rows: at least 10"),
    ("class without proba", {"y_true": np.r_[Y[:-1], 2]},
     r"y_true has 1 row\(s\) of a class the champion has no probability for \(2\)"),
    ("too few", {"y_true": Y[:9], "champion": Y[:9], "candidate": Y[:9]},
     "9 eval rows: at least 10"),
    ("regression on scores", {"rule": ("rmse", "lower")},
     "rmse compares numeric predictions, but the models gave class scores"),
]


@pytest.mark.parametrize("overrides,message", [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_inputs_are_one_line_input_errors(overrides: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"rule": ("roc_auc", "higher"), "y_true": Y, "champion": GOOD,
                            "candidate": GOOD}
    args.update(overrides)
    with pytest.raises(InputError, match=message) as caught:
        stats.paired_bootstraps([args.pop("rule")], args.pop("y_true"), args.pop("champion"),
                                args.pop("candidate"), **SETTINGS)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("metric,direction,proba,classification", [
    ("rmse", "lower", False, False), ("r2_score", "higher", False, False),
    ("accuracy", "higher", False, True), ("f1_score", "higher", False, True),
    ("log_loss", "lower", True, True), ("brier_score_loss", "lower", True, True),
    ("roc_auc", "higher", True, True), ("average_precision", "higher", True, True),
    ("training_loss", None, False, False),
])
def test_catalogue(metric: str, direction: str | None, proba: bool,
                   classification: bool) -> None:
    assert stats.known_direction(metric) == direction
    assert stats.needs_proba(metric) is proba
    assert stats.is_classification(metric) is classification
    assert stats.supports(metric) is (direction is not None)


def test_the_linearised_se_of_a_mean_metric_is_the_textbook_one() -> None:
    # for mse the worsening is the mean of per-row differences d: the linearised se is
    # std(d) / sqrt(n) exactly (ddof 0: the bootstrap's own variance)
    rng = np.random.default_rng(5)
    y = rng.normal(10.0, 3.0, 3000)
    champion, candidate = y + rng.normal(0, 1, 3000), y + rng.normal(0, 1.1, 3000)
    d = (candidate - y) ** 2 - (champion - y) ** 2
    result = stats.paired_bootstrap("mse", "lower", y, champion, candidate, **SETTINGS,
                                    analytic_rows=0)
    z = NormalDist().inv_cdf
    se = result.mde / (z(0.975) + z(stats.POWER))
    assert se == pytest.approx(d.std() / np.sqrt(len(d)), rel=1e-6)
    assert result.worsening == pytest.approx(d.mean(), rel=1e-9)
    assert (result.low, result.high) == pytest.approx(
        (d.mean() - z(0.975) * se, d.mean() + z(0.975) * se), rel=1e-9)


def test_above_the_threshold_the_interval_is_linearised_and_below_it_resampled() -> None:
    y, classes = _task("binary", n=stats.ANALYTIC_ROWS + 1)
    champion, candidate = _model(y, classes, 1.0, 2, None), _model(y, classes, 1.1, 3, None)
    rule = [("roc_auc", "higher")]
    large = stats.paired_bootstraps(rule, y, champion, candidate, **SETTINGS)["roc_auc"]
    # a normal interval is symmetric about the worsening; percentiles of draws are not
    assert large.high - large.worsening == pytest.approx(large.worsening - large.low,
                                                         rel=1e-12)
    assert large.rows == stats.ANALYTIC_ROWS + 1
    small = stats.paired_bootstraps(rule, y[:2000], _model(y[:2000], classes, 1.0, 2, None),
                                    _model(y[:2000], classes, 1.1, 3, None),
                                    **SETTINGS)["roc_auc"]
    assert small.high - small.worsening != pytest.approx(small.worsening - small.low,
                                                         rel=1e-12)
