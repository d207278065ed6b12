"""Metrics against scipy and scikit-learn, and the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score, mean_absolute_error, mean_squared_error

from silva_model import metrics as M


@pytest.fixture
def random_case():
    rng = np.random.default_rng(7)
    y = rng.integers(1, 6, 500)
    score = np.clip((y - 1) / 4 + rng.normal(0, 0.2, 500), 0, 1)
    pred = rng.integers(1, 6, 500)
    return y, score, pred


def test_against_scipy_and_sklearn(random_case):
    y, score, pred = random_case
    expected = 1 + 4 * score
    assert M.mae(y, expected) == pytest.approx(mean_absolute_error(y, expected))
    assert M.rmse(y, expected) == pytest.approx(np.sqrt(mean_squared_error(y, expected)))
    assert M.pearson(y, score) == pytest.approx(stats.pearsonr(y, score).statistic)
    assert M.spearman(y, score) == pytest.approx(stats.spearmanr(y, score).statistic)
    assert M.qwk(y, pred) == pytest.approx(
        cohen_kappa_score(y, pred, weights="quadratic", labels=[1, 2, 3, 4, 5])
    )


def test_spearman_with_ties_uses_average_ranks():
    a = [1, 2, 2, 3, 5, 5, 5]
    b = [0.1, 0.3, 0.2, 0.2, 0.9, 0.9, 0.4]
    assert M.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_hand_worked_cases():
    assert M.mae([1, 5], [2, 3]) == 1.5
    assert M.rmse([1, 5], [2, 3]) == pytest.approx(np.sqrt(2.5))
    assert M.qwk([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    # perfectly reversed on a symmetric label set: kappa = -1
    assert M.qwk([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # confusion: rows are given ratings, columns predictions
    cm = M.confusion_matrix([1, 1, 5], [1, 2, 5])
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[4, 4] == 1 and cm.sum() == 3


def test_constant_predictions_score_zero_not_nan():
    y = [1, 2, 3, 4, 5]
    assert M.pearson(y, [0.5] * 5) == 0.0
    assert M.spearman(y, [0.5] * 5) == 0.0
    assert M.qwk([3, 3, 3], [3, 3, 3]) == 0.0  # kappa undefined: no expected disagreement
    assert M.qwk(y, [3] * 5) == pytest.approx(cohen_kappa_score(y, [3] * 5, weights="quadratic"))


def test_top_precision():
    y = np.array([5, 1, 5, 2, 3] * 40)  # 200 items
    score = np.linspace(1, 0, 200)  # first items score highest
    # 1 % of 200 = 2 items: y[0] = 5, y[1] = 1 -> 0.5
    assert M.top_precision(y, score, 0.01) == 0.5
    # 5 % = 10 items: 5,1,5,2,3,5,1,5,2,3 -> 4/10
    assert M.top_precision(y, score, 0.05) == 0.4
    # at least one item, ties broken by order
    assert M.top_precision([5, 1], [0.3, 0.3], 0.01) == 1.0
    assert M.top_precision([1, 5], [0.3, 0.3], 0.01) == 0.0


def test_compute_metrics_keys_and_perfect_ranking():
    y = np.array([1, 2, 3, 4, 5] * 20)
    score = (y - 1) / 4
    m = M.compute_metrics(y, score, y)
    assert m["spearman"] == pytest.approx(1.0) and m["qwk"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(0.0) and m["top1_precision"] == 1.0 and m["n"] == 100


def test_bootstrap_metrics_match_the_plain_ones_row_by_row():
    from silva_model.metrics import _resamples, _rowwise_qwk, _rowwise_spearman, qwk, spearman

    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 300)
    s = np.clip((y + rng.normal(0, 1.2, 300)) / 6, 0, 1)
    p = np.clip(np.rint(1 + 4 * s), 1, 5).astype(np.int64)
    idx = next(_resamples(300, 20, seed=1))
    rs = _rowwise_spearman(y[idx].astype(float), s[idx])
    rq = _rowwise_qwk(y[idx], p[idx], 5)
    for r in range(20):
        assert rs[r] == pytest.approx(spearman(y[idx[r]], s[idx[r]]), abs=1e-12)
        assert rq[r] == pytest.approx(qwk(y[idx[r]], p[idx[r]]), abs=1e-12)


def test_bootstrap_intervals_cover_the_estimate_and_shrink_with_data():
    from silva_model.metrics import bootstrap_intervals, paired_spearman_difference, spearman

    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(1, 6, n)
        return y, np.clip((y + rng.normal(0, 1.5, n)) / 6, 0, 1)

    y, s = sample(200)
    p = np.clip(np.rint(1 + 4 * s), 1, 5)
    ci = bootstrap_intervals(y, s, p)
    assert ci["spearman"][0] < spearman(y, s) < ci["spearman"][1]
    y2, s2 = sample(3000)
    wide, narrow = ci["spearman"], bootstrap_intervals(y2, s2, np.clip(np.rint(1 + 4 * s2), 1, 5))["spearman"]
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 2
    # a head scored against itself differs by exactly nothing; a noisier one is worse beyond noise
    assert paired_spearman_difference(y2, s2, s2) == (0.0, 0.0, 0.0)
    worse = np.clip(s2 + rng.normal(0, 0.3, s2.size), 0, 1)
    diff, low, high = paired_spearman_difference(y2, worse, s2)
    assert diff < 0 and high < 0
