"""The evaluation report: the head on val and test and, below 1,000 ratings, out of fold over every
rating first (a test split of a few images says little); plots, largest disagreements, the judge
against the personal head, and the person's own consistency. What the `evaluation` asset returns,
logs to MLflow and shows as metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from silva_model.active import OutOfFold
from silva_model.evaluate import Evaluation, evaluate, evaluation_of, format_judge, format_report, judge_share
from silva_model.head import expected_rating
from silva_model.manifest import to_arrays
from silva_model.metrics import spearman, unmeasured
from silva_model.release import TrainedHead
from silva_pipeline.records import EvaluationReport
from silva_pipeline.report import md_table, plot_calibration, plot_score_histograms, png_markdown

# bench/small_data.py: below this many ratings the test split's Spearman missed the head's
# Spearman on fresh images by more than the 5-fold out-of-fold estimate did.
OUT_OF_FOLD_BELOW = 1000
OUT_OF_FOLD = "oof"  # the metrics' key; the report names it "K-fold out-of-fold"
OUT_OF_FOLDS = 5  # below OUT_OF_FOLD_BELOW ratings, where the out-of-fold metrics are the headline
MIN_REPEATS = 20
HEADLINE_KEYS = ("spearman", "qwk", "mae", "rmse", "top5_precision")


@dataclass
class Built:
    report: EvaluationReport
    files: dict[str, bytes]  # what goes to the head's MLflow run: the report, metrics, plots
    metadata: dict[str, object]  # flat numbers for Dagster: the headline first, n beside every split


def _measured(metrics: dict) -> dict[str, dict]:
    """The splits with metrics of their own that say something (`unmeasured`): the others get
    their n and no number."""
    return {
        split: m
        for split, m in metrics.items()
        if isinstance(m, dict) and "spearman" in m and unmeasured(m) is None
    }


def metric_lines(metrics: dict, intervals: dict) -> list[str]:
    """The evaluation's splits, out-of-fold first (what a small set can say), each with its n and,
    where known, the 95 % interval of its Spearman; a split that says nothing says why instead of
    a number."""
    measured, lines = _measured(metrics), []
    for split in sorted(metrics, key=lambda s: s != OUT_OF_FOLD):
        m = metrics[split]
        if not isinstance(m, dict) or "spearman" not in m:
            continue
        name = f"{OUT_OF_FOLDS}-fold out-of-fold" if split == OUT_OF_FOLD else split
        if split not in measured:
            lines.append(f"{name}: {m['n']} image(s), {unmeasured(m)}")
            continue
        low, high = (intervals.get(split) or {}).get("spearman", (None, None))
        ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
        lines.append(
            f"{name}: spearman {m['spearman']:.4f}{ci}  qwk {m['qwk']:.4f}  mae {m['mae']:.4f}  (n={m['n']})"
        )
    return lines


def tracked_metrics(report: EvaluationReport) -> dict[str, float]:
    """The evaluation as MLflow metrics: every split's n, and the numbers and intervals of those
    large enough to measure on."""
    measured = _measured(report.metrics)
    sized = {s: m for s, m in report.metrics.items() if isinstance(m, dict) and "n" in m}
    tracked = {f"eval_{s}_n": float(m["n"]) for s, m in sized.items()}
    for split, m in measured.items():
        tracked |= {f"eval_{split}_{k}": float(v) for k, v in m.items()}
        for k, (low, high) in (report.intervals.get(split) or {}).items():
            tracked |= {f"eval_{split}_{k}_ci_low": low, f"eval_{split}_{k}_ci_high": high}
    return tracked


def _disagreements(res: Evaluation, shas: np.ndarray, raw: pa.Table, k: int = 10) -> str:
    expected = expected_rating(res.score)
    gap = expected - res.y_true
    top = np.argsort(-np.abs(gap), kind="stable")[:k]
    paths = dict(zip(raw.column("image_sha256").to_pylist(), raw.column("path").to_pylist(), strict=True))
    rows = [
        (
            int(res.y_true[i]),
            round(float(expected[i]), 2),
            round(float(gap[i]), 2),
            paths.get(shas[i]) or f"sha256 {shas[i][:16]}…",
        )
        for i in top
    ]
    return md_table(["given", "expected", "gap", "image"], rows)


def consistency(raw: pa.Table) -> tuple[str, dict[str, float]]:
    """Agreement between a person's first and repeat ratings of the same images: the ceiling any
    model can reach for this person."""
    if "first_rating" not in raw.column_names:
        return "No image has been rated twice yet.", {}
    pairs = raw.select(["first_rating", "rating"]).drop_null()
    first = pairs.column("first_rating").to_numpy().astype(np.float64)
    repeat = pairs.column("rating").to_numpy().astype(np.float64)
    if len(first) < MIN_REPEATS:
        return f"{len(first)} image(s) rated twice so far: shown from {MIN_REPEATS} on.", {
            "rater_repeats": len(first)
        }
    stats = {
        "rater_repeats": len(first),
        "rater_spearman": spearman(first, repeat),
        "rater_exact": float(np.mean(first == repeat)),
    }
    table = md_table(
        ["images rated twice", "Spearman, first vs repeat", "exact agreement"], [tuple(stats.values())]
    )
    return table, stats


def headline(metrics: dict, intervals: dict) -> str:
    """The one number a person should read first, with its n and interval: out of fold when it
    was computed (small sets), else the test split's."""
    split = OUT_OF_FOLD if OUT_OF_FOLD in metrics else "test"
    if split not in metrics:
        return "no held-out images to measure on"
    m = metrics[split]
    low, high = (intervals.get(split) or {}).get("spearman", (float("nan"), float("nan")))
    where = f"out of fold over all {m['n']} ratings" if split == OUT_OF_FOLD else f"on {m['n']} test images"
    if why := unmeasured(m):
        return f"no Spearman {where}: {why}"
    return f"Spearman {m['spearman']:.4f} (95 % CI {low:.3f} to {high:.3f}) {where}"


def _results(head: TrainedHead, manifest: pa.Table, oof: OutOfFold) -> tuple[list, list[str]]:
    """(split, evaluation, rows) for out of fold (below OUT_OF_FOLD_BELOW ratings), val and test."""
    arrays = to_arrays(manifest, dim=None)
    results, notes = [], []
    if len(arrays) < OUT_OF_FOLD_BELOW:
        folds = f"{len(oof.heads)}-fold out-of-fold"
        results.append(
            (
                OUT_OF_FOLD,
                evaluation_of(folds, arrays.scores, oof.score, oof.pred),
                np.ones(len(arrays), bool),
            )
        )
        notes.append(
            f"Fewer than {OUT_OF_FOLD_BELOW} ratings: the {folds} metrics over all {len(arrays)} "
            "ratings (each image scored by a head that never saw it) say more than the test split."
        )
    for split in ("val", "test"):
        if arrays.mask(split).any():
            results.append((split, evaluate(head.head, arrays, split), arrays.mask(split)))
        else:
            notes.append(f"### {split}\n\nempty split: not evaluated")
    return results, notes


def build_evaluation(head: TrainedHead, manifest: pa.Table, raw: pa.Table, oof: OutOfFold) -> Built:
    results, sections = _results(head, manifest, oof)
    sections.insert(0, f"# silva evaluation (head from MLflow run {head.tracking['mlflow_run_id'][:8]})")
    shas = manifest.column("image_sha256").to_numpy(zero_copy_only=False)
    metrics, intervals, files = {}, {}, {}
    for split, res, rows in results:
        metrics[split], intervals[split] = res.metrics, {k: list(v) for k, v in res.intervals.items()}
        hist, cal = f"{split}_histograms.png", f"{split}_calibration.png"
        files[hist] = plot_score_histograms(res.y_true, res.score, f"{split}: score by given rating")
        files[cal] = plot_calibration(res.y_true, res.score, f"{split}: calibration")
        sections += [format_report(res), "", png_markdown(files[hist], f"{split} histograms")]
        sections += [
            png_markdown(files[cal], f"{split} calibration"),
            "",
            f"#### {split}: largest disagreements",
        ]
        sections += ["", _disagreements(res, shas[rows], raw)]
    judge: dict[str, float] = {}
    if head.head.has_judge:
        x = to_arrays(manifest, dim=None).embeddings
        shares = [judge_share(head.head, x[rows], res) for _, res, rows in results]
        sections.append(format_judge(shares, head.train_config.prior))
        metrics |= {f"{s}_judge_alone": share.judge for (s, _, _), share in zip(results, shares, strict=True)}
        judge = {"judge_weight": round(shares[0].weight, 4)} if shares else {}
    table, rater = consistency(raw)
    sections += ["### Your own consistency (the ceiling for any model)", table]
    report = EvaluationReport(metrics, "\n\n".join(sections), intervals)
    measured = _measured(metrics)
    flat = {
        f"{s}_{k}": round(float(v), 4)
        for s, m in metrics.items()
        for k, v in m.items()
        if k == "n" or (k in HEADLINE_KEYS and s in measured)
    }
    metadata = {"headline": headline(metrics, intervals), **flat, **judge, **rater}
    return Built(report, files, metadata)
