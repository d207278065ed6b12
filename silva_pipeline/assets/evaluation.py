"""The evaluation asset: the head on val and test, the report with its plots and largest
disagreements, logged to the head's MLflow run."""

import json
import sys

import dagster as dg
import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from silva_model.evaluate import (
    Evaluation,
    evaluate,
    evaluate_out_of_fold,
    format_judge,
    format_report,
    judge_share,
)
from silva_model.head import expected_rating
from silva_model.manifest import to_arrays
from silva_model.metrics import spearman
from silva_model.release import TrainedHead
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.records import EvaluationReport
from silva_pipeline.report import md_table, plot_calibration, plot_score_histograms, png_markdown
from silva_pipeline.tracking import MlflowTracking

# bench/small_data.py: below this many ratings the test split's Spearman missed the head's
# Spearman on fresh images by more than the 5-fold out-of-fold estimate did.
OUT_OF_FOLD_BELOW = 1000
OUT_OF_FOLDS = 5
OUT_OF_FOLD = "oof"  # the metrics' key; the report names it "5-fold out-of-fold"


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


MIN_REPEATS = 20


def _consistency(raw: pa.Table) -> tuple[str, dict[str, float]]:
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


@dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="2")
def evaluation(
    context: dg.AssetExecutionContext,
    head: TrainedHead,
    manifest: pa.Table,
    raw_ratings: pa.Table,
    mlflow: MlflowTracking,
) -> dg.Output[EvaluationReport]:
    """Metrics on val and test, the confusion matrix, score histograms per rating, a
    calibration plot and the images the head disagrees with most: a markdown report attached
    here and logged to the head's MLflow run. Below OUT_OF_FOLD_BELOW ratings, where a test split
    of a few images says little, 5-fold out-of-fold metrics over every rating come first."""
    arrays = to_arrays(manifest, dim=None)
    shas = manifest.column("image_sha256").to_numpy(zero_copy_only=False)
    run_id = head.tracking["mlflow_run_id"]
    sections = [f"# silva evaluation (head from MLflow run {run_id[:8]})"]
    metrics, intervals, pngs = {}, {}, {}
    results = []
    if len(arrays) < OUT_OF_FOLD_BELOW:
        folds = f"{OUT_OF_FOLDS}-fold out-of-fold"
        progress = tqdm(total=OUT_OF_FOLDS, desc=folds, unit="fold", disable=None, file=sys.stderr)

        def on_fold(k: int) -> None:
            progress.update()
            context.log.info(f"{folds} metrics: fold {k}/{OUT_OF_FOLDS} trained")

        with progress:
            oof = evaluate_out_of_fold(arrays, head.train_config, OUT_OF_FOLDS, on_fold)
        results.append((OUT_OF_FOLD, oof, np.ones(len(arrays), bool)))
        sections.append(
            f"Fewer than {OUT_OF_FOLD_BELOW} ratings: the {folds} metrics over all {len(arrays)} "
            "ratings (each image scored by a head that never saw it) say more than the test split."
        )
    for split in ("val", "test"):
        if not arrays.mask(split).any():
            sections.append(f"### {split}\n\nempty split: not evaluated")
            continue
        results.append((split, evaluate(head.head, arrays, split), arrays.mask(split)))
    for split, res, rows in results:
        metrics[split] = res.metrics
        intervals[split] = {k: list(v) for k, v in res.intervals.items()}
        pngs[f"{split}_histograms.png"] = plot_score_histograms(
            res.y_true, res.score, f"{split}: score by given rating"
        )
        pngs[f"{split}_calibration.png"] = plot_calibration(res.y_true, res.score, f"{split}: calibration")
        sections += [
            format_report(res),
            "",
            png_markdown(pngs[f"{split}_histograms.png"], f"{split} histograms"),
            png_markdown(pngs[f"{split}_calibration.png"], f"{split} calibration"),
            "",
            f"#### {split}: largest disagreements",
            "",
            _disagreements(res, shas[rows], raw_ratings),
        ]
    judge: dict[str, float] = {}
    if head.head.has_judge:
        shares = [judge_share(head.head, arrays.embeddings[rows], res) for _, res, rows in results]
        sections.append(format_judge(shares, head.train_config.prior))
        for (split, _, _), share in zip(results, shares, strict=True):
            metrics[f"{split}_judge_alone"] = share.judge
        judge = {"judge_weight": round(shares[0].weight, 4)} if shares else {}
    consistency, rater = _consistency(raw_ratings)
    sections += ["### Your own consistency (the ceiling for any model)", consistency]
    report = EvaluationReport(metrics, "\n\n".join(sections), intervals)
    with mlflow.run(run_id=run_id):
        mlflow.log_metrics({f"eval_{s}_{k}": float(v) for s, m in metrics.items() for k, v in m.items()})
        mlflow.log_metrics(
            {
                f"eval_{s}_{k}_ci_{end}": b
                for s, ci in intervals.items()
                for k, v in ci.items()
                for end, b in zip(("low", "high"), v, strict=True)
            }
        )
        files = {
            "report.md": report.markdown.encode(),
            "metrics.json": json.dumps(metrics, indent=2).encode(),
        }
        mlflow.log_files({**files, **pngs}, artifact_path="evaluation")
    flat = {
        f"{s}_{k}": round(float(v), 4)
        for s, m in metrics.items()
        for k, v in m.items()
        if k in ("spearman", "qwk", "mae", "rmse", "top5_precision")
    }
    context.log.info(", ".join(f"{k} {v:.4f}" for k, v in flat.items()))
    return dg.Output(
        report, metadata={**flat, **judge, **rater, "report": dg.MetadataValue.md(report.markdown)}
    )
