import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from silva_model.checkpoint import TrainedHead, load_head
from silva_model.evaluate import EvaluationReport, evaluate, format_report
from silva_model.head import expected_rating, predict
from silva_model.manifest import to_arrays
from silva_model.metrics import paired_spearman_difference, spearman
from silva_pipeline.assets.manifest import MIN_EVAL_ROWS
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.report import md_table, plot_calibration, plot_score_histograms, png_markdown
from silva_pipeline.resources import MlflowTracking


def _disagreements(res: dict, shas: np.ndarray, raw: pa.Table, k: int = 10) -> str:
    expected = expected_rating(res["score"])
    gap = expected - res["y_true"]
    top = np.argsort(-np.abs(gap), kind="stable")[:k]
    paths = dict(zip(raw.column("image_sha256").to_pylist(), raw.column("path").to_pylist(), strict=True))
    rows = [
        (
            int(res["y_true"][i]),
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
    here and logged to the head's MLflow run."""
    import mlflow as mlf

    arrays = to_arrays(manifest, dim=None)
    shas = manifest.column("image_sha256").to_numpy(zero_copy_only=False)
    run_id = head.tracking["mlflow_run_id"]
    sections = [f"# silva evaluation (head from MLflow run {run_id[:8]})"]
    metrics, intervals, pngs = {}, {}, {}
    for split in ("val", "test"):
        if not arrays.mask(split).any():
            sections.append(f"### {split}\n\nempty split: not evaluated")
            continue
        res = evaluate(head.head, arrays, split)
        metrics[split] = res["metrics"]
        intervals[split] = {k: list(v) for k, v in res["intervals"].items()}
        pngs[f"{split}_histograms.png"] = plot_score_histograms(
            res["y_true"], res["score"], f"{split}: score by given rating"
        )
        pngs[f"{split}_calibration.png"] = plot_calibration(
            res["y_true"], res["score"], f"{split}: calibration"
        )
        sections += [
            format_report(res),
            "",
            png_markdown(pngs[f"{split}_histograms.png"], f"{split} histograms"),
            png_markdown(pngs[f"{split}_calibration.png"], f"{split} calibration"),
            "",
            f"#### {split}: largest disagreements",
            "",
            _disagreements(res, shas[arrays.mask(split)], raw_ratings),
        ]
    consistency, rater = _consistency(raw_ratings)
    sections += ["### Your own consistency (the ceiling for any model)", consistency]
    report = EvaluationReport(metrics, "\n\n".join(sections), intervals)
    with mlflow.run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        mlf.log_metrics({f"eval_{s}_{k}": float(v) for s, m in metrics.items() for k, v in m.items()})
        mlf.log_metrics(
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
        for name, data in {**files, **pngs}.items():
            (Path(tmp) / name).write_bytes(data)
        mlf.log_artifacts(tmp, artifact_path="evaluation")
    flat = {
        f"{s}_{k}": float(v)
        for s, m in metrics.items()
        for k, v in m.items()
        if k in ("spearman", "qwk", "mae", "rmse", "top5_precision")
    }
    context.log.info(", ".join(f"{k} {v:.4f}" for k, v in flat.items()))
    return dg.Output(report, metadata={**flat, **rater, "report": dg.MetadataValue.md(report.markdown)})


class ReleaseGateConfig(dg.Config):
    force: bool = Field(
        default=False, description="release even if the new head is worse than the one in force"
    )


def last_release(instance: dg.DagsterInstance) -> dict | None:
    """The metadata of the latest `hub_release` materialization: what is in force now."""
    event = instance.get_latest_materialization_event(dg.AssetKey("hub_release"))
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _released_head_scores(last: dict, head: TrainedHead, x: np.ndarray) -> np.ndarray | str:
    """The release in force, scored on these embeddings; or why it cannot be: "gone" (its folder
    cannot be read: the gate falls back to its recorded number) or "other embeddings" (it reads
    another width or backbone: no number of it says anything about this head)."""
    try:
        released, _ = load_head(str(last.get("release", "")))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return "gone"
    if released.config.embed_dim != x.shape[1] or released.config.backbone.differences(
        head.head.config.backbone
    ):
        return "other embeddings"
    return predict(released, x)[0]


@dg.asset_check(
    asset=evaluation,
    blocking=True,
    additional_ins={"head": dg.AssetIn("head"), "manifest": dg.AssetIn("manifest")},
)
def beats_last_release(
    context: dg.AssetCheckExecutionContext,
    config: ReleaseGateConfig,
    evaluation: EvaluationReport,
    head: TrainedHead,
    manifest: pa.Table,
) -> dg.AssetCheckResult:
    """A paired comparison with the release in force: both heads score the current test split, and
    a bootstrap over its images (the same resamples for both) gives the difference in Spearman with
    a 95 % interval. The new head is refused only when it is worse beyond noise (the whole interval
    below zero), unless `force` is set."""
    last = last_release(context.instance)
    x, y = to_arrays(manifest, dim=None).subset("test")
    new, old, interval = evaluation.heldout_spearman(), None, (float("nan"), float("nan"))
    old_scores = _released_head_scores(last, head, x) if last and y.size >= MIN_EVAL_ROWS else None
    if new is None:
        passed, why = config.force, "no test split to compare on"
    elif last is None:
        passed, why = True, "first release"
    elif y.size < MIN_EVAL_ROWS:
        passed = True
        why = (
            f"only {y.size} test image(s): too few to judge against the release in force (it takes "
            f"{MIN_EVAL_ROWS}), so this head is released without a comparison; rate more images"
        )
    elif isinstance(old_scores, np.ndarray):
        new_scores = predict(head.head, x)[0]
        diff, low, high = paired_spearman_difference(y, new_scores, old_scores)
        new, old, interval = spearman(y, new_scores), spearman(y, old_scores), (low, high)
        passed = config.force or high >= 0
        why = (
            f"test spearman {new:.4f} vs released head {old:.4f} on the same {y.size} images: "
            f"difference {diff:+.4f}, 95 % CI [{low:+.4f}, {high:+.4f}]"
        )
    elif old_scores == "other embeddings":
        passed = True
        why = (
            "the release in force reads other embeddings (another backbone or width), so no number "
            "of it compares with this head: released without a comparison"
        )
    else:  # the released head's folder is gone: compare with its recorded number
        old = last.get("test_spearman")
        passed = config.force or old is None or np.isnan(old) or new >= old
        why = f"test spearman {new:.4f} vs last release {old:.4f} (recorded; its folder is gone)"
    if not passed:
        context.log.error(
            f"release gate: the new head was not released: {why}. To release it anyway, set "
            "ops.evaluation_beats_last_release.config.force: true (silva-demo --force-release)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        description=why + (" (forced)" if config.force else ""),
        metadata={
            "test_spearman": new if new is not None else float("nan"),
            "last_release_spearman": old if old is not None else float("nan"),
            "difference_ci_low": interval[0],
            "difference_ci_high": interval[1],
            "last_release": str(last.get("release", "")) if last else "none",
        },
    )
