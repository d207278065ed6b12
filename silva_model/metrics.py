"""Metrics in the 1-5 label space.

Conventions (each test checks them against scipy / scikit-learn):
- `mae`, `rmse`: between the given rating and the *expected* rating 1 + 4 * score (continuous).
- `pearson`, `spearman`: between the given rating and the score (ranking quality). Spearman uses
  average ranks for ties. A constant input has no ranking information: it scores 0.0, not NaN,
  so that best-epoch selection stays well defined.
- `qwk`: Cohen's kappa with quadratic weights between the given rating and the *predicted class*
  (1 + bars cleared), over the fixed label set 1..5. When the expected disagreement is zero
  (both sides a single, identical class) kappa is undefined and reported as 0.0.
- `top1_precision`, `top5_precision`: of the k = ceil(p * n) highest-scored items (p = 1 % or
  5 %, k >= 1; ties broken by original order), the fraction the person rated 5. It answers
  "if I let silva pick my best images, how many would I have picked?"
"""

from __future__ import annotations

import math

import numpy as np

LABELS = np.arange(1, 6)
MIN_EVAL_ROWS = 10  # fewer test (or val) images than this say nothing about a head


def unmeasured(metrics: dict) -> str | None:
    """Why a split's metrics say nothing about a head, in the words the summary, the card and the
    registry use (and no number beside them); None when they do. 2 images "score" a Spearman of
    0 or 1, and images that all carry one rating (`ratings_given`) have no order to find."""
    if metrics.get("n", 0) < MIN_EVAL_ROWS:
        return f"too few to measure (it takes {MIN_EVAL_ROWS})"
    if metrics.get("ratings_given", 2) < 2:
        return "all given one rating: no order to measure"
    return None


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).ravel()


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(_f64(y_true) - _f64(y_pred))))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((_f64(y_true) - _f64(y_pred)) ** 2)))


def _is_constant(a: np.ndarray) -> bool:
    return a.size < 2 or bool(np.all(a == a[0]))


def pearson(a, b) -> float:
    a, b = _f64(a), _f64(b)
    if _is_constant(a) or _is_constant(b):
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _rankdata(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Average ranks; scipy.stats is imported here, not with silva, since it takes a second to load
    and every Dagster process and CLI call loads silva."""
    from scipy.stats import rankdata

    return rankdata(a, axis=axis)


def spearman(a, b) -> float:
    a, b = _f64(a), _f64(b)
    if _is_constant(a) or _is_constant(b):
        return 0.0
    return pearson(_rankdata(a), _rankdata(b))


def confusion_matrix(y_true, y_pred, labels: np.ndarray = LABELS) -> np.ndarray:
    """(K, K) counts, rows = given rating, columns = predicted class."""
    k = len(labels)
    t = np.asarray(y_true, dtype=np.int64).ravel() - labels[0]
    p = np.asarray(y_pred, dtype=np.int64).ravel() - labels[0]
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def qwk(y_true, y_pred, labels: np.ndarray = LABELS) -> float:
    o = confusion_matrix(y_true, y_pred, labels).astype(np.float64)
    k = len(labels)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = (i - j) ** 2 / (k - 1) ** 2
    e = np.outer(o.sum(1), o.sum(0)) / max(o.sum(), 1.0)
    denom = (w * e).sum()
    if denom == 0:
        return 0.0
    return float(1.0 - (w * o).sum() / denom)


def top_precision(y_true, score, fraction: float, top_label: int = 5) -> float:
    y = np.asarray(y_true).ravel()
    if y.size == 0:
        return 0.0
    k = max(1, math.ceil(fraction * y.size))
    order = np.argsort(-_f64(score), kind="stable")[:k]
    return float(np.mean(y[order] == top_label))


def expected_rating(score, num_classes: int = 5):
    """Score in [0, 1] -> expected rating in [1, K]: 1 + (K-1) * score. The one place this map lives
    (arrays and tensors alike)."""
    return 1 + (num_classes - 1) * score


def compute_metrics(y_true, score, pred_class, num_classes: int = 5) -> dict[str, float]:
    """All headline metrics for one split; `score` in [0, 1], `pred_class` in 1..K."""
    y = np.asarray(y_true)
    s = _f64(score)
    expected = expected_rating(s, num_classes)
    return {
        "n": int(y.size),
        "mae": mae(y, expected),
        "rmse": rmse(y, expected),
        "pearson": pearson(y, s),
        "spearman": spearman(y, s),
        "qwk": qwk(y, pred_class, np.arange(1, num_classes + 1)),
        "accuracy": float(np.mean(y == np.asarray(pred_class))) if y.size else 0.0,
        "top1_precision": top_precision(y, s, 0.01, num_classes),
        "top5_precision": top_precision(y, s, 0.05, num_classes),
    }


def level_bias(y_true, score, num_classes: int = 5) -> dict[int, tuple[int, float]]:
    """Per given rating: (n, mean expected rating). A head that regresses to the mean gives its 1s
    too high and its 5s too low an expected rating."""
    y, e = np.asarray(y_true).ravel(), expected_rating(_f64(score), num_classes)
    return {
        int(c): (int((y == c).sum()), float(e[y == c].mean()))
        for c in range(1, num_classes + 1)
        if (y == c).any()
    }


# --- bootstrap confidence intervals ---------------------------------------------------------------

N_RESAMPLES = 1000
_CELLS_PER_CHUNK = 2_000_000  # resamples x rows held at once


def _resamples(n: int, n_resamples: int, seed: int):
    """Chunks of row indices, (resamples, n) each: the same draws for every metric and head."""
    rng = np.random.default_rng(seed)
    step = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, n_resamples, step):
        yield rng.integers(0, n, (min(step, n_resamples - start), n))


def _centred_ranks(a: np.ndarray) -> np.ndarray:
    r = _rankdata(a, axis=1)
    return r - r.mean(1, keepdims=True)


def _rowwise_correlation(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson of each row pair of centred (R, n) arrays; a constant row scores 0."""
    denom = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.divide((ra * rb).sum(1), denom, out=np.zeros(len(ra)), where=denom > 0)


def _rowwise_spearman(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Spearman of each row pair of (R, n) arrays (average ranks; a constant row scores 0)."""
    return _rowwise_correlation(_centred_ranks(y), _centred_ranks(s))


def _rowwise_qwk(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    r = np.arange(len(y))[:, None]
    o = np.bincount((r * k * k + (y - 1) * k + (p - 1)).ravel(), minlength=len(y) * k * k)
    o = o.reshape(len(y), k, k).astype(np.float64)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = (i - j) ** 2 / (k - 1) ** 2
    e = o.sum(2)[:, :, None] * o.sum(1)[:, None, :] / np.maximum(o.sum((1, 2)), 1.0)[:, None, None]
    denom = (w * e).sum((1, 2))
    observed_over_expected = np.divide((w * o).sum((1, 2)), denom, out=np.ones(len(y)), where=denom > 0)
    return 1.0 - observed_over_expected  # 0.0 where kappa is undefined, as `qwk` does


def bootstrap_intervals(
    y_true, score, pred_class, n_resamples: int = N_RESAMPLES, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of Spearman, QWK and MAE over `n_resamples` resamples of the rows."""
    y = np.asarray(y_true, dtype=np.int64).ravel()
    s, p = _f64(score), np.asarray(pred_class, dtype=np.int64).ravel()
    if y.size < 2:
        return {}
    draws: dict[str, list[np.ndarray]] = {"spearman": [], "qwk": [], "mae": []}
    for idx in _resamples(y.size, n_resamples, seed):
        draws["spearman"].append(_rowwise_spearman(y[idx].astype(np.float64), s[idx]))
        draws["qwk"].append(_rowwise_qwk(y[idx], p[idx], len(LABELS)))
        draws["mae"].append(np.abs(y[idx] - expected_rating(s[idx])).mean(1))
    tail = (1 - level) / 2 * 100
    return {
        k: tuple(float(q) for q in np.percentile(np.concatenate(v), [tail, 100 - tail]))
        for k, v in draws.items()
    }


def paired_spearman_difference(
    y_true, score_new, score_old, n_resamples: int = N_RESAMPLES, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(Spearman(new) - Spearman(old), low, high): both heads scored on the same resampled rows, so
    the noise of which images happen to be in the test split cancels out of the difference."""
    y, a, b = _f64(y_true), _f64(score_new), _f64(score_old)
    diffs = []
    for idx in _resamples(y.size, n_resamples, seed):
        ry = _centred_ranks(y[idx])  # ranked once for both heads
        diffs.append(
            _rowwise_correlation(ry, _centred_ranks(a[idx]))
            - _rowwise_correlation(ry, _centred_ranks(b[idx]))
        )
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(diffs), [tail, 100 - tail])
    return spearman(y, a) - spearman(y, b), float(low), float(high)
