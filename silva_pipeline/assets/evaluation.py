import json
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from silva_model.checkpoint import load_head
from silva_model.evaluate import evaluate, format_report
from silva_model.manifest import to_arrays
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.paths import data_dir
from silva_pipeline.report import md_table, plot_calibration, plot_score_histograms, png_markdown
from silva_pipeline.resources import MlflowTracking

LATEST_RELEASE = "releases/latest.json"


def _disagreements(res: dict, shas: np.ndarray, raw: pa.Table, k: int = 10) -> str:
    expected = 1 + 4 * res["score"]
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


@dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="1")
def evaluation(
    context: dg.AssetExecutionContext,
    head: dict,
    manifest: pa.Table,
    raw_ratings: pa.Table,
    mlflow: MlflowTracking,
) -> dg.Output[dict]:
    """Metrics on val and test, the confusion matrix, score histograms per rating, a
    calibration plot and the images the head disagrees with most: a markdown report attached
    here and logged to the head's MLflow run."""
    import mlflow as mlf

    model, _ = load_head(head["checkpoint_dir"])
    arrays = to_arrays(manifest, dim=None)
    shas = manifest.column("image_sha256").to_numpy(zero_copy_only=False)
    out = data_dir() / "reports" / context.run_id
    out.mkdir(parents=True, exist_ok=True)
    sections, metrics = [f"# silva evaluation (head from run {head['mlflow_run_id'][:8]})"], {}
    for split in ("val", "test"):
        if not arrays.mask(split).any():
            sections.append(f"### {split}\n\nempty split: not evaluated")
            continue
        res = evaluate(model, arrays, split)
        metrics[split] = res["metrics"]
        hist = plot_score_histograms(
            res["y_true"], res["score"], out / f"{split}_histograms.png", f"{split}: score by given rating"
        )
        cal = plot_calibration(
            res["y_true"], res["score"], out / f"{split}_calibration.png", f"{split}: calibration"
        )
        sections += [
            format_report(res),
            "",
            png_markdown(hist, f"{split} histograms"),
            png_markdown(cal, f"{split} calibration"),
            "",
            f"#### {split}: largest disagreements",
            "",
            _disagreements(res, shas[arrays.mask(split)], raw_ratings),
        ]
    report = "\n\n".join(sections)
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    with mlflow.run(run_id=head["mlflow_run_id"]):
        mlf.log_metrics({f"eval_{s}_{k}": float(v) for s, m in metrics.items() for k, v in m.items()})
        mlf.log_artifacts(str(out), artifact_path="evaluation")
    flat = {
        f"{s}_{k}": float(v)
        for s, m in metrics.items()
        for k, v in m.items()
        if k in ("spearman", "qwk", "mae", "rmse", "top5_precision")
    }
    return dg.Output(
        {"metrics": metrics, "report": str(out / "report.md"), "mlflow_run_id": head["mlflow_run_id"]},
        metadata={
            **flat,
            "report": dg.MetadataValue.md(report),
            "report_path": dg.MetadataValue.path(str(out / "report.md")),
        },
    )


class ReleaseGateConfig(dg.Config):
    force: bool = Field(
        default=False, description="release even if test Spearman is below the last release's"
    )


def test_spearman(evaluation: dict) -> float | None:
    """The number releases are compared on; None when the test split was empty."""
    return (evaluation["metrics"].get("test") or {}).get("spearman")


def last_release() -> dict | None:
    p = data_dir() / LATEST_RELEASE
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


@dg.asset_check(asset=evaluation, blocking=True)
def beats_last_release(config: ReleaseGateConfig, evaluation: dict) -> dg.AssetCheckResult:
    """Refuses (blocks hub_release) when this head's test Spearman is worse than the last
    release's, unless `force` is set."""
    new = test_spearman(evaluation)
    last = last_release()
    old = last["test_spearman"] if last else None
    if new is None:
        passed, why = config.force, "no test split to compare on"
    elif old is None:
        passed, why = True, "first release"
    else:
        passed, why = config.force or new >= old, f"test spearman {new:.4f} vs last release {old:.4f}"
    return dg.AssetCheckResult(
        passed=passed,
        description=why + (" (forced)" if config.force else ""),
        metadata={
            "test_spearman": new if new is not None else float("nan"),
            "last_release_spearman": old if old is not None else float("nan"),
            "last_release": str(Path(last["path"])) if last else "none",
        },
    )
