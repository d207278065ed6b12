"""Evaluate a head on one split of a manifest: metrics, confusion matrix, per-class counts.

python -m silva_model.evaluate --checkpoint DIR --manifest manifest.parquet --split val
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from silva_model.active import out_of_fold
from silva_model.head import NUM_CLASSES, OrdinalHead, predict
from silva_model.manifest import ManifestArrays, ManifestError, load_manifest
from silva_model.metrics import bootstrap_intervals, compute_metrics, confusion_matrix, level_bias, unmeasured
from silva_model.release import load_head
from silva_model.select import describe
from silva_model.tables import md_table
from silva_model.train_config import TrainConfig


@dataclass(frozen=True)
class Evaluation:
    """A head on one split: metrics with bootstrap intervals, per-level bias, the confusion
    matrix, and the per-image scores behind them."""

    split: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]  # metric -> (low, high), 95 % percentile bootstrap
    level_bias: dict[int, tuple[int, float]]  # given rating -> (n, mean expected rating)
    confusion: list[list[int]]  # given x predicted, ratings 1..5
    class_counts: dict[int, int]
    score: np.ndarray
    y_true: np.ndarray
    pred_class: np.ndarray
    selection: dict[str, Any] | None = None  # how the head's form was chosen (`HeadConfig.selection`)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-image arrays, as JSON takes it."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not isinstance(v, np.ndarray)}


def evaluate(
    head: OrdinalHead | str | Path,
    manifest: str | Path | pa.Table | ManifestArrays,
    split: str = "val",
) -> Evaluation:
    if not isinstance(head, OrdinalHead):
        head, _ = load_head(head)
    arrays = (
        manifest
        if isinstance(manifest, ManifestArrays)
        else load_manifest(manifest, dim=None, required_splits=())
    )
    x, y = arrays.subset(split)
    if y.size == 0:
        raise ManifestError(f"split {split!r} is empty: nothing to evaluate")
    score, pred = predict(head, x)
    return dataclasses.replace(evaluation_of(split, y, score, pred), selection=head.config.selection)


def evaluate_out_of_fold(
    arrays: ManifestArrays, config: TrainConfig, folds: int = 5, on_fold: Callable[[int], None] | None = None
) -> Evaluation:
    """K-fold out-of-fold metrics over every rating: each image scored by the fold head that never
    saw it. What a small data set can say about its head, where a test split of a few images
    cannot (bench/small_data.py)."""
    oof = out_of_fold(arrays, config, folds, on_fold)
    return evaluation_of(f"{folds}-fold out-of-fold", arrays.scores, oof.score, oof.pred)


def split_metrics(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The metrics of held-out predictions, with how many ratings the images were given (one says
    nothing about order: `metrics.unmeasured`)."""
    return {**compute_metrics(y, score, pred), "ratings_given": int(np.unique(y).size)}


def evaluation_of(split: str, y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> Evaluation:
    """The evaluation of held-out predictions already made (a split, or out-of-fold scores)."""
    labels = np.arange(1, NUM_CLASSES + 1)
    return Evaluation(
        split=split,
        metrics=split_metrics(y, score, pred),
        intervals=bootstrap_intervals(y, score, pred),
        level_bias=level_bias(y, score),
        confusion=confusion_matrix(y, pred, labels).tolist(),
        class_counts={int(c): int((y == c).sum()) for c in labels},
        score=score,
        y_true=y,
        pred_class=pred,
    )


@dataclass(frozen=True)
class JudgeShare:
    """How a head started from a judge stands against the judge alone on the same images."""

    split: str
    judge: dict[str, float]  # the judge alone: its own score and bars
    head: dict[str, float]  # the personal head (judge inside)
    weight: float  # the learned weight, per sd of the judge's latent on the train split
    share: float  # the judge's part of the personal latent's variance on these images


@torch.no_grad()
def judge_share(head: OrdinalHead, x: np.ndarray, result: Evaluation) -> JudgeShare:
    """The judge alone on the images `result` scored (`x`, in its order), and its share."""
    score, pred = predict(head.judge, x)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(head.judge_weight.device)
    head.eval()
    part = (head.judge_weight * head.judge_input(xt)).float()
    latent = head.latent(xt).float()
    share = float(part.var() / latent.var().clamp_min(1e-12)) if len(x) > 1 else float("nan")
    return JudgeShare(
        result.split,
        split_metrics(result.y_true, score, pred),
        result.metrics,
        head.learned_judge_weight,
        share,
    )


def format_judge(shares: list[JudgeShare], source: str) -> str:
    """The judge alone against the personal head, split by split, as the report shows it."""
    rows = [
        (
            s.split,
            s.head["n"],
            s.judge["spearman"],
            s.head["spearman"],
            s.judge["qwk"],
            s.head["qwk"],
            s.share,
        )
        for s in shares
    ]
    weight = shares[0].weight if shares else float("nan")
    return "\n".join(
        [
            f"### The judge ({source}) against the personal head",
            "",
            f"Learned weight of the judge: {weight:.3f} per sd of its latent on the train split "
            "(0 would mean the ratings gave it no say).",
            "",
            md_table(
                [
                    "split",
                    "n",
                    "Spearman, judge alone",
                    "Spearman, personal head",
                    "QWK, judge alone",
                    "QWK, personal head",
                    "judge's share of the latent's variance",
                ],
                rows,
            ),
        ]
    )


def format_report(result: Evaluation) -> str:
    """A plain-text (and valid Markdown) table of the metrics and the confusion matrix."""
    m, ci = result.metrics, result.intervals
    keys = ("spearman", "pearson", "qwk", "mae", "rmse", "accuracy", "top1_precision", "top5_precision")
    labels = range(1, NUM_CLASSES + 1)
    rows = [(k, m[k], *ci.get(k, ("", ""))) for k in keys]
    bias = md_table(
        ["given rating", "n", "mean expected rating", "bias"],
        [(c, n, mean, mean - c) for c, (n, mean) in sorted(result.level_bias.items())],
    )
    confusion = md_table(
        ["given \\ predicted", *map(str, labels), "n"],
        [[c, *row, result.class_counts[c]] for c, row in zip(labels, result.confusion, strict=True)],
    )
    return "\n".join(
        [
            f"### {result.split} (n = {m['n']})",
            "",
            *([describe(result.selection), ""] if result.selection else []),
            f"No metrics: {why}."
            if (why := unmeasured(m))
            else md_table(["metric", "value", "95 % CI low", "high"], rows),
            "",
            confusion,
            "",
            "Per-level bias: the mean expected rating per given rating (a head that regresses to the "
            "mean shows + at 1 and - at 5).",
            "",
            bias,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m silva_model.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="training checkpoint or release folder")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    try:
        res = evaluate(Path(a.checkpoint), a.manifest, a.split)
    except (ManifestError, FileNotFoundError, ValueError) as e:
        print(f"silva: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res.summary(), indent=2) if a.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
