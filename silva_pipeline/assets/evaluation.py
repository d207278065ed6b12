import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from silva_model.checkpoint import TrainedHead
from silva_model.evaluate import EvaluationReport, evaluate, format_report
from silva_model.head import expected_rating
from silva_model.manifest import to_arrays
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
    sections, metrics, pngs = [f"# silva evaluation (head from MLflow run {run_id[:8]})"], {}, {}
    for split in ("val", "test"):
        if not arrays.mask(split).any():
            sections.append(f"### {split}\n\nempty split: not evaluated")
            continue
        res = evaluate(head.head, arrays, split)
        metrics[split] = res["metrics"]
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
    report = EvaluationReport(metrics, "\n\n".join(sections))
    with mlflow.run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        mlf.log_metrics({f"eval_{s}_{k}": float(v) for s, m in metrics.items() for k, v in m.items()})
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
    return dg.Output(report, metadata={**flat, "report": dg.MetadataValue.md(report.markdown)})


class ReleaseGateConfig(dg.Config):
    force: bool = Field(
        default=False, description="release even if test Spearman is below the last release's"
    )


def last_release(instance: dg.DagsterInstance) -> dict | None:
    """The metadata of the latest `hub_release` materialization: what is in force now."""
    event = instance.get_latest_materialization_event(dg.AssetKey("hub_release"))
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset_check(asset=evaluation, blocking=True)
def beats_last_release(
    context: dg.AssetCheckExecutionContext, config: ReleaseGateConfig, evaluation: EvaluationReport
) -> dg.AssetCheckResult:
    """Refuses (blocks hub_release) when this head's test Spearman is worse than the last
    release's, unless `force` is set."""
    new = evaluation.heldout_spearman()
    last = last_release(context.instance)
    old = last.get("test_spearman") if last else None
    if new is None:
        passed, why = config.force, "no test split to compare on"
    elif old is None or np.isnan(old):
        passed, why = True, "first release"
    else:
        passed, why = config.force or new >= old, f"test spearman {new:.4f} vs last release {old:.4f}"
    return dg.AssetCheckResult(
        passed=passed,
        description=why + (" (forced)" if config.force else ""),
        metadata={
            "test_spearman": new if new is not None else float("nan"),
            "last_release_spearman": old if old is not None else float("nan"),
            "last_release": str(last.get("release", "")) if last else "none",
        },
    )
