import datetime as dt

import dagster as dg
import numpy as np

from silva_model.checkpoint import TrainedHead, save_pretrained
from silva_model.evaluate import EvaluationReport
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.paths import data_dir
from silva_pipeline.records import Release
from silva_pipeline.resources import HubResource, MlflowTracking

REGISTERED_MODEL = "silva-head"


@dg.asset(group_name=GROUP, kinds={"huggingface", "mlflow"}, code_version="2")
def hub_release(
    context: dg.AssetExecutionContext,
    head: TrainedHead,
    evaluation: EvaluationReport,
    mlflow: MlflowTracking,
    hub: HubResource,
) -> dg.Output[Release]:
    """A `save_pretrained` release folder (config.json + model.safetensors + model card with
    metrics, data size, backbone and date), registered in the MLflow model registry as
    `silva-head` (alias `champion`) and uploaded to the Hugging Face Hub when a repo id and
    HF_TOKEN are configured. Its materialization metadata is what the release gate compares with."""
    import mlflow as mlf

    from silva_pipeline.mlflow_model import SilvaHeadModel, code_paths, pip_requirements, signature

    model = head.head
    run_id = head.tracking["mlflow_run_id"]
    now = dt.datetime.now(dt.UTC)
    folder = data_dir() / "releases" / f"{now:%Y%m%dT%H%M%SZ}-{context.run_id[:8]}"
    data = {
        "n_train": head.n_train,
        "n_val": head.n_val,
        "backbone": model.config.backbone.describe(),
        "manifest_fingerprint": head.manifest_fingerprint,
        "best_epoch": head.best_epoch,
        "released": now.date().isoformat(),
    }
    save_pretrained(
        model,
        folder,
        metrics=evaluation.metrics,
        extra={"data": data, "mlflow_run_id": run_id, "dagster_run_id": context.run_id},
    )

    with mlflow.run(run_id=run_id):
        info = mlf.pyfunc.log_model(
            name="silva_head",
            python_model=SilvaHeadModel(),
            artifacts={"release": str(folder)},
            signature=signature(model.config.embed_dim),
            input_example=np.zeros((1, model.config.embed_dim), np.float32),
            registered_model_name=REGISTERED_MODEL,
            pip_requirements=pip_requirements(),
            code_paths=code_paths(),
        )
    version = str(info.registered_model_version)
    mlflow.client().set_registered_model_alias(REGISTERED_MODEL, "champion", version)

    spearman = evaluation.heldout_spearman()
    hub_url = "not uploaded: set the hub resource's repo_id and HF_TOKEN"
    if hub.enabled():
        shown = f"{spearman:.4f}" if spearman is not None else "n/a"
        hub_url = hub.upload(folder, f"silva head {now:%Y-%m-%d}: test spearman {shown}")
    return dg.Output(
        Release(str(folder), version, hub_url, spearman),
        metadata={
            "release": dg.MetadataValue.path(str(folder)),
            "test_spearman": spearman if spearman is not None else float("nan"),
            "registered_model": REGISTERED_MODEL,
            "registry_version": version,
            "mlflow_run_id": run_id,
            "hub": hub_url,
            "model_card": dg.MetadataValue.md((folder / "README.md").read_text(encoding="utf-8")),
        },
    )
