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
from scipy import stats

LABELS = np.arange(1, 6)


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


def spearman(a, b) -> float:
    a, b = _f64(a), _f64(b)
    if _is_constant(a) or _is_constant(b):
        return 0.0
    return pearson(stats.rankdata(a), stats.rankdata(b))


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


def compute_metrics(y_true, score, pred_class, num_classes: int = 5) -> dict[str, float]:
    """All headline metrics for one split; `score` in [0, 1], `pred_class` in 1..K."""
    y = np.asarray(y_true)
    s = _f64(score)
    expected = 1 + (num_classes - 1) * s
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
