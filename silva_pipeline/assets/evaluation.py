"""The evaluation asset: the head on val and test (out of fold first at small sizes), the report
with its plots and largest disagreements, logged to the head's MLflow run."""

import json

import dagster as dg
import pyarrow as pa

from silva_model.active import OutOfFold
from silva_model.release import TrainedHead
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.evaluation_report import build_evaluation, tracked_metrics
from silva_pipeline.records import EvaluationReport
from silva_pipeline.tracking import MlflowTracking


@dg.asset(group_name=GROUP, kinds={"mlflow"}, code_version="3")
def evaluation(
    context: dg.AssetExecutionContext,
    head: TrainedHead,
    manifest: pa.Table,
    raw_ratings: pa.Table,
    out_of_fold: OutOfFold,
    mlflow: MlflowTracking,
) -> dg.Output[EvaluationReport]:
    """Metrics on val and test, the confusion matrix, score histograms per rating, a calibration
    plot and the images the head disagrees with most: a markdown report attached here and logged
    to the head's MLflow run. Below 1,000 ratings, where a test split of a few images says little,
    the out-of-fold metrics over every rating come first, in the report and in the headline."""
    built = build_evaluation(head, manifest, raw_ratings, out_of_fold)
    report = built.report
    with mlflow.run(run_id=head.tracking["mlflow_run_id"]):
        mlflow.log_metrics(tracked_metrics(report))
        files = {
            "report.md": report.markdown.encode(),
            "metrics.json": json.dumps(report.metrics, indent=2).encode(),
        }
        mlflow.log_files({**files, **built.files}, artifact_path="evaluation")
    context.log.info(str(built.metadata["headline"]))
    return dg.Output(report, metadata={**built.metadata, "report": dg.MetadataValue.md(report.markdown)})
