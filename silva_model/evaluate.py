"""Evaluate a head on one split of a manifest: metrics, confusion matrix, per-class counts.

python -m silva_model.evaluate --checkpoint DIR --manifest manifest.parquet --split val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from silva_model.checkpoint import load_head
from silva_model.head import NUM_CLASSES, OrdinalHead
from silva_model.manifest import ManifestArrays, ManifestError, load_manifest
from silva_model.metrics import compute_metrics, confusion_matrix
from silva_model.train import predict


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
        "confusion": confusion_matrix(y, pred, labels).tolist(),
        "class_counts": {int(c): int((y == c).sum()) for c in labels},
        "score": score,
        "y_true": y,
        "pred_class": pred,
    }


def format_report(result: dict[str, Any]) -> str:
    """A plain-text (and valid Markdown) table of the metrics and the confusion matrix."""
    m = result["metrics"]
    lines = [f"### {result['split']} (n = {m['n']})", "", "| metric | value |", "|---|---|"]
    for k in ("spearman", "pearson", "qwk", "mae", "rmse", "accuracy", "top1_precision", "top5_precision"):
        lines.append(f"| {k} | {m[k]:.4f} |")
    lines += [
        "",
        "| given \\ predicted | " + " | ".join(str(c) for c in range(1, NUM_CLASSES + 1)) + " | n |",
        "|---|" + "---|" * (NUM_CLASSES + 1),
    ]
    for c, row in enumerate(result["confusion"], 1):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + f" | {result['class_counts'][c]} |")
    return "\n".join(lines)


def jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m silva_model.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="training checkpoint or release folder")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    res = evaluate(Path(a.checkpoint), a.manifest, a.split)
    print(json.dumps(jsonable(res), indent=2) if a.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
