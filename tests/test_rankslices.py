"""ROC AUC of every slice from the ranking of all rows (gate.stats.rankslices, used by
the linearised slices above ANALYTIC_ROWS): each slice's value and each row's influence
bit for bit those of the slice's rows alone, against scikit-learn's roc_auc_score on
the slice, with and without tied scores; and what keeps the slice-by-slice path."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gate.stats import engine, rankmetrics, rankslices
from gate.stats.catalogue import ClassScores, MetricSpec
from gate.stats.parts import RankPart
from gate.stats.slices import SliceColumn, paired_sliced


def _scores(rng: np.random.Generator, y: np.ndarray, noise: float,
            ties: bool) -> ClassScores:
    t = y * 1.2 + rng.normal(0.0, noise, len(y))
    p = 1 / (1 + np.exp(-(t - 0.6)))
    if ties:
        p = np.round(p, 2)      # runs of tied scores, many crossing slice borders
    return ClassScores((p > 0.5).astype(int), np.column_stack((1 - p, p)), (0, 1))


def _multi(rng: np.random.Generator, y: np.ndarray, noise: float, ties: bool,
           k: int) -> ClassScores:
    logits = np.eye(k)[y] * 1.5 + rng.normal(0.0, noise, (len(y), k))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:
        top = p.argmax(axis=1)
        p = np.round(p, 2)
        # rows summing to one again (sklearn's multiclass AUC checks), on the top class
        p[np.arange(len(y)), top] += 1.0 - p.sum(axis=1)
    return ClassScores(p.argmax(axis=1), p, tuple(range(k)))


@pytest.mark.parametrize("ties", ["distinct", "ties", "borders"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_slice_is_its_rows_alone(ties: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, slices = 4000, 9
    score = rng.normal(size=n)
    positive = rng.random(n) < 0.4
    codes = rng.integers(0, slices - 1, n)      # the last slice has no rows
    positive[codes == 2] = True                 # and slice 2 one class only
    if ties != "distinct":
        score = np.round(score, 1)
    if ties == "borders":
        # slice 3's last run and slice 4's first are one run of the whole set: laid
        # out slice by slice they touch, and must still count as two
        score[codes == 3] = 0.0
        score[codes == 4] = np.minimum(score[codes == 4], 0.0)
    value, influence = rankslices.auc_influence(rankmetrics.ranking(score, positive),
                                                codes, slices)
    assert value.shape == (slices,) and influence.shape == (n,)
    assert np.isnan(value[2]) and np.isnan(value[slices - 1])
    for code in set(range(slices - 1)) - {2}:
        rows = np.flatnonzero(codes == code)
        alone, each = rankmetrics.auc_influence(rankmetrics.ranking(score[rows],
                                                                    positive[rows]))
        assert value[code] == alone                         # bit for bit
        assert np.array_equal(influence[rows], each)
        assert value[code] == pytest.approx(roc_auc_score(positive[rows], score[rows]),
                                            rel=1e-12)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_linearised_slices_of_roc_auc_equal_sklearn_and_the_engine(ties: bool) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    y = (rng.random(n) < 0.4).astype(int)
    champion, candidate = _scores(rng, y, 1.0, ties), _scores(rng, y, 1.3, ties)
    codes = rng.integers(0, 5, n)
    column = SliceColumn("tier", ("a", "b", "c", "d", "e"), codes)
    rules = [("roc_auc", "higher"), ("f1", "higher")]
    whole, stats = paired_sliced(rules, y, champion, candidate, [column], confidence=0.95,
                                 resamples=50, seed=0, analytic_rows=0)
    # the aggregate from the same sorts: exactly the engine's
    assert whole == engine.paired_bootstraps(rules, y, champion, candidate,
                                             confidence=0.95, resamples=50, seed=0,
                                             analytic_rows=0)
    for code, stat in enumerate(stats):
        rows = codes == code
        take = [ClassScores(s.labels[rows], s.proba[rows], s.classes)  # type: ignore[index]
                for s in (champion, candidate)]
        alone = engine.paired_bootstraps(rules, y[rows], *take, confidence=0.95,
                                         resamples=50, seed=0, analytic_rows=0)["roc_auc"]
        got = stat.paired["roc_auc"]
        assert (got.champion, got.candidate, got.worsening) == \
            (alone.champion, alone.candidate, alone.worsening)
        for field in ("se", "low", "high", "mde"):      # se summed in another order
            assert getattr(got, field) == pytest.approx(getattr(alone, field), rel=1e-12)
        for model, value in zip(take, (got.champion, got.candidate)):
            assert value == pytest.approx(roc_auc_score(y[rows], model.proba[:, 1]),
                                          rel=1e-12)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_slices_equal_the_engine_on_their_rows(average: str) -> None:
    rng = np.random.default_rng(3)
    n, k = 3000, 4
    y = rng.integers(0, k, n)
    codes = rng.integers(0, 3, n)
    y[(codes == 2) & (y == 3)] = 0              # class 3 missing from slice 2: undefined
    champion, candidate = _multi(rng, y, 1.0, True, k), _multi(rng, y, 1.4, True, k)
    rules = [MetricSpec("roc_auc", "higher", average=average)]
    column = SliceColumn("tier", ("a", "b", "c"), codes)
    whole, stats = paired_sliced(rules, y, champion, candidate, [column], confidence=0.95,
                                 resamples=50, seed=0, analytic_rows=0)
    assert whole == engine.paired_bootstraps(rules, y, champion, candidate,
                                             confidence=0.95, resamples=50, seed=0,
                                             analytic_rows=0)
    assert "roc_auc" not in stats[2].paired
    for code in (0, 1):
        rows = codes == code
        take = [ClassScores(s.labels[rows], s.proba[rows], s.classes)  # type: ignore[index]
                for s in (champion, candidate)]
        alone = engine.paired_bootstraps(rules, y[rows], *take, confidence=0.95,
                                         resamples=50, seed=0, analytic_rows=0)["roc_auc"]
        got = stats[code].paired["roc_auc"]
        assert (got.champion, got.candidate) == (alone.champion, alone.candidate)
        assert got.se == pytest.approx(alone.se, rel=1e-12)
        ref = roc_auc_score(y[rows], take[0].proba, multi_class="ovr",  # type: ignore[arg-type]
                            average=average)
        assert got.champion == pytest.approx(ref, rel=1e-12)


def test_what_keeps_the_slice_by_slice_path() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    y = rng.integers(0, 3, n)
    model = _multi(rng, y, 1.0, False, 3)
    # a predicted label the model has no probability for: a slice's own label set could
    # differ from the whole set's, so it is scored on its rows
    odd = ClassScores(np.where(np.arange(n) < 5, 9, model.labels), model.proba, (0, 1, 2))
    parts = {
        "roc_auc": engine.classification_parts(
            MetricSpec("roc_auc", "higher", average="macro"), y, model, model)[0],
        "average_precision": engine.classification_parts(
            MetricSpec("average_precision", "higher", average="macro"), y, model, model)[0],
        "roc_auc, unknown label": engine.classification_parts(
            MetricSpec("roc_auc", "higher", average="macro"), y, odd, odd)[0],
    }
    assert all(isinstance(part, RankPart) for part in parts.values())
    assert [part.sliced is not None for part in parts.values()] == [True, False, False]
    codes = rng.integers(0, 2, n)
    rules = [MetricSpec("roc_auc", "higher", average="macro")]
    _, stats = paired_sliced(rules, y, odd, odd, [SliceColumn("t", ("a", "b"), codes)],
                             confidence=0.95, resamples=50, seed=0, analytic_rows=0)
    for code, stat in enumerate(stats):
        rows = codes == code
        take = ClassScores(odd.labels[rows], odd.proba[rows], odd.classes)  # type: ignore
        alone = engine.paired_bootstraps(rules, y[rows], take, take, confidence=0.95,
                                         resamples=50, seed=0, analytic_rows=0)["roc_auc"]
        assert stat.paired["roc_auc"] == alone
