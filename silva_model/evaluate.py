"""Evaluate a head on one split of a manifest: metrics, confusion matrix, per-class counts.

python -m silva_model.evaluate --checkpoint DIR --manifest manifest.parquet --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from silva_model.checkpoint import load_head
from silva_model.head import NUM_CLASSES, OrdinalHead, predict
from silva_model.manifest import ManifestArrays, ManifestError, load_manifest
from silva_model.metrics import bootstrap_intervals, compute_metrics, confusion_matrix, level_bias
from silva_model.tables import md_table


def evaluate(
    head: OrdinalHead | str | Path,
    manifest: str | Path | pa.Table | ManifestArrays,
    split: str = "val",
) -> dict[str, Any]:
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
    labels = np.arange(1, NUM_CLASSES + 1)
    return {
        "split": split,
        "metrics": compute_metrics(y, score, pred),
        "intervals": bootstrap_intervals(y, score, pred),
        "level_bias": level_bias(y, score),
        "confusion": confusion_matrix(y, pred, labels).tolist(),
        "class_counts": {int(c): int((y == c).sum()) for c in labels},
        "score": score,
        "y_true": y,
        "pred_class": pred,
    }


def format_report(result: dict[str, Any]) -> str:
    """A plain-text (and valid Markdown) table of the metrics and the confusion matrix."""
    m, ci = result["metrics"], result.get("intervals") or {}
    keys = ("spearman", "pearson", "qwk", "mae", "rmse", "accuracy", "top1_precision", "top5_precision")
    labels = range(1, NUM_CLASSES + 1)
    rows = [(k, m[k], *ci.get(k, ("", ""))) for k in keys]
    bias = md_table(
        ["given rating", "n", "mean expected rating", "bias"],
        [(c, n, mean, mean - c) for c, (n, mean) in sorted(result.get("level_bias", {}).items())],
    )
    confusion = md_table(
        ["given \\ predicted", *map(str, labels), "n"],
        [[c, *row, result["class_counts"][c]] for c, row in zip(labels, result["confusion"], strict=True)],
    )
    return "\n".join(
        [
            f"### {result['split']} (n = {m['n']})",
            "",
            md_table(["metric", "value", "95 % CI low", "high"], rows),
            "",
            confusion,
            "",
            "Per-level bias: the mean expected rating per given rating (a head that regresses to the "
            "mean shows + at 1 and - at 5).",
            "",
            bias,
        ]
    )


@dataclass
class EvaluationReport:
    """What the `evaluation` asset hands downstream: metrics per split and the markdown report."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    markdown: str = ""
    # split -> metric -> [low, high]: percentile bootstrap, 1,000 resamples of the split's rows
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def heldout_spearman(self) -> float | None:
        """The number releases are compared on; None when the test split was empty."""
        return (self.metrics.get("test") or {}).get("spearman")


def jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}


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
    print(json.dumps(jsonable(res), indent=2) if a.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
