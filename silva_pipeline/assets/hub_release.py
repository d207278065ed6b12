import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np

from silva_model.checkpoint import CONFIG_NAME, TrainedHead, save_pretrained
from silva_model.evaluate import EvaluationReport
from silva_model.paths import data_dir
from silva_model.provenance import sha256_file
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.records import Release
from silva_pipeline.release_transaction import REGISTERED_MODEL, ReleaseTransaction
from silva_pipeline.resources import HubResource, MlflowTracking


def _version_description(evaluation: EvaluationReport, head: TrainedHead) -> str:
    """What tells one version from another in the MLflow UI: its test metrics and data size."""
    parts = [
        f"{split}: Spearman {m['spearman']:.4f}, QWK {m['qwk']:.4f}, MAE {m['mae']:.4f} (n={m['n']})"
        for split, m in evaluation.metrics.items()
    ]
    return f"silva head trained on {head.n_train} ratings (best epoch {head.best_epoch}). " + "; ".join(parts)


def _gate_verdict(context: dg.AssetExecutionContext) -> None:
    """Refuse an evaluation that did not pass `beats_last_release`, whatever was selected. In a run
    that materialized `evaluation`, the blocking check already ran (and a failure skipped this
    step); otherwise the gate's latest verdict must belong to the evaluation being read."""
    instance = context.instance
    key = dg.AssetKey("evaluation")
    in_run = instance.all_logs(context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    if any(e.dagster_event.asset_key == key for e in in_run):
        return
    latest = instance.get_latest_materialization_event(key)
    check = dg.AssetCheckKey(key, "beats_last_release")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
    verdict = record.event.asset_check_evaluation if record and record.event else None
    if latest is None or verdict is None or record.run_id != latest.run_id or not verdict.passed:
        why = verdict.description if verdict is not None and record.run_id == latest.run_id else "not checked"
        raise dg.Failure(
            f"the evaluation from run {latest.run_id if latest else '-'} did not pass the release gate "
            f"({why}); materialize `evaluation` and `hub_release` together, with "
            "ops.evaluation_beats_last_release.config.force: true to release it anyway"
        )


@dg.asset(group_name=GROUP, kinds={"huggingface", "mlflow"}, code_version="3")
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
    HF_TOKEN are configured. Its materialization metadata is what the release gate compares with.

    All or nothing, one at a time (`ReleaseTransaction`): the folder is staged, registered,
    aliased, uploaded (the one step that cannot be undone, so it comes last) and only then moved
    into place; a failure at any step, or a kill, rolls the registry back (a kill: at the next
    release), so the previous release stays fully in force."""
    import mlflow as mlf

    from silva_pipeline.mlflow_model import code_paths, model_code, pip_requirements, signature

    _gate_verdict(context)
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
    spearman = evaluation.heldout_spearman()
    client = mlflow.client()
    with ReleaseTransaction(folder.parent, client, context.log) as release:
        staging = release.begin(folder, context.run_id)
        save_pretrained(
            model,
            staging,
            metrics=evaluation.metrics,
            extra={
                "data": data,
                "intervals": evaluation.intervals,
                "mlflow_run_id": run_id,
                "dagster_run_id": context.run_id,
            },
        )
        with mlflow.run(run_id=run_id):
            info = mlf.pyfunc.log_model(
                name="silva_head",
                python_model=model_code(),
                artifacts={"release": str(staging)},
                signature=signature(model.config.embed_dim),
                input_example=np.zeros((1, model.config.embed_dim), np.float32),
                registered_model_name=REGISTERED_MODEL,
                pip_requirements=pip_requirements(),
                code_paths=code_paths(),
            )
        version = str(info.registered_model_version)
        client.update_model_version(
            REGISTERED_MODEL, version, description=_version_description(evaluation, head)
        )
        for key, value in {
            **release_digests(staging),
            "data_fingerprint": head.manifest_fingerprint,
            "backbone": model.config.backbone.describe(),
            "backbone_weights": model.config.backbone.weights or "unknown",
            "dagster_run_id": context.run_id,
            "n_train": str(head.n_train),
        }.items():
            client.set_model_version_tag(REGISTERED_MODEL, version, key, value)
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", version)
        hub_url = "not uploaded: set the hub resource's repo_id and HF_TOKEN"
        if hub.enabled():
            shown = f"{spearman:.4f}" if spearman is not None else "n/a"
            hub_url = hub.upload(staging, f"silva head {now:%Y-%m-%d}: test spearman {shown}")
        release.commit()
    context.log.info(f"released {folder.name}: registry version {version}, {hub_url}")
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


def release_digests(folder: Path) -> dict[str, str]:
    """`sha256:<file>` for every file of a release: what `config.json` records, and its own."""
    files = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))["files"]
    return {
        f"sha256:{name}": d for name, d in {**files, CONFIG_NAME: sha256_file(folder / CONFIG_NAME)}.items()
    }
