"""The hub_release asset: a head that passed the release gate, as a release folder, a registry
version with `champion` on it and, when configured, a Hub upload; all or nothing."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from silva_model.provenance import sha256_file
from silva_model.release import CONFIG_NAME, TrainedHead, save_pretrained
from silva_model.training_loop import kept
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.evaluation_report import headline, metric_lines
from silva_pipeline.records import EvaluationReport, Release
from silva_pipeline.release_gate import gate_verdict
from silva_pipeline.release_transaction import ReleaseTransaction
from silva_pipeline.resources import HubResource, Workspace
from silva_pipeline.resources.io_manager import latest_uri
from silva_pipeline.tracking import REGISTERED_MODEL, MlflowTracking


def _version_description(evaluation: EvaluationReport, head: TrainedHead) -> str:
    """What tells one version from another in the MLflow UI: its held-out metrics and data size
    (a split too small to measure named as such, as on the card)."""
    lead = headline(evaluation.metrics, evaluation.intervals)
    own = {split: m for split, m in evaluation.metrics.items() if "_judge_alone" not in split}
    return (
        f"silva head trained on {head.n_train} ratings ({kept(head.train_config, head.best_epoch)}): {lead}. "
        + "; ".join(metric_lines(own, evaluation.intervals))
    )


@dg.asset(group_name=GROUP, kinds={"huggingface", "mlflow"}, code_version="3")
def hub_release(
    context: dg.AssetExecutionContext,
    head: TrainedHead,
    evaluation: EvaluationReport,
    mlflow: MlflowTracking,
    hub: HubResource,
    workspace: Workspace,
) -> dg.Output[Release]:
    """A `save_pretrained` release folder (config.json + model.safetensors + model card with
    metrics, data size, backbone and date), registered in the MLflow model registry as
    `silva-head` (alias `champion`) and uploaded to the Hugging Face Hub when a repo id and
    HF_TOKEN are configured. Its materialization metadata is what the release gate compares with.

    All or nothing, one at a time (`ReleaseTransaction`): the folder is staged, registered,
    aliased, uploaded (the one step that cannot be undone, so it comes last) and only then moved
    into place; a failure at any step, or a kill, rolls the registry back (a kill: at the next
    release), so the previous release stays fully in force."""
    gate_verdict(context)
    model, run_id = head.head, head.tracking["mlflow_run_id"]
    now = dt.datetime.now(dt.UTC)
    folder = workspace.home().releases / f"{now:%Y%m%dT%H%M%SZ}-{context.run_id[:8]}"
    manifest = latest_uri(context.instance, dg.AssetKey("manifest"))
    spearman = evaluation.heldout_spearman()
    client = mlflow.client()
    with ReleaseTransaction(folder.parent, client, context.log) as release:
        staging = release.begin(folder, context.run_id)
        extra = release_record(head, evaluation, manifest, now, context.run_id)
        save_pretrained(model, staging, metrics=evaluation.metrics, extra=extra)
        with mlflow.run(run_id=run_id):
            version = mlflow.log_release_model(staging, model.config.embed_dim)
        tags = {**release_digests(staging), **version_tags(head, context.run_id)}
        mlflow.crown(client, version, _version_description(evaluation, head), tags)
        hub_url = "not uploaded: set the hub resource's repo_id and HF_TOKEN"
        if hub.enabled():
            shown = f"{spearman:.4f}" if spearman is not None else "n/a"
            hub_url = hub.upload(staging, f"silva head {now:%Y-%m-%d}: test spearman {shown}")
        release.commit()
    context.log.info(f"released {folder.name}: registry version {version}, {hub_url}")
    test = evaluation.metrics.get("test") or {}
    return dg.Output(
        Release(str(folder), version, hub_url, spearman),
        metadata={
            "headline": headline(evaluation.metrics, evaluation.intervals),
            "release": dg.MetadataValue.path(str(folder)),
            "test_spearman": spearman if spearman is not None else float("nan"),
            "test_n": int(test.get("n", 0)),
            "registered_model": REGISTERED_MODEL,
            "registry_version": version,
            "mlflow_run_id": run_id,
            "hub": hub_url,
            "model_card": dg.MetadataValue.md((folder / "README.md").read_text(encoding="utf-8")),
        },
    )


def release_record(
    head: TrainedHead, evaluation: EvaluationReport, manifest: Path | None, now: dt.datetime, run_id: str
) -> dict:
    """What a release's config.json records beside the head: its data (with the manifest it learned
    from, which `silva score --explain` reads its neighbours from), its training, its intervals."""
    config = head.head.config
    data = {
        "n_train": head.n_train,
        "n_val": head.n_val,
        "backbone": config.backbone.describe(),
        "manifest_fingerprint": head.manifest_fingerprint,
        "best_epoch": head.best_epoch,
        "weights_kept": kept(head.train_config, head.best_epoch),
        "released": now.date().isoformat(),
        "manifest": str(manifest or ""),
    }
    chosen = head.train_config.chosen_by_size(head.n_train, config.embed_dim)
    return {
        "data": data,
        "training": {"config": head.train_config.to_dict(), "chosen_by_size": chosen},
        "intervals": evaluation.intervals,
        "mlflow_run_id": head.tracking["mlflow_run_id"],
        "dagster_run_id": run_id,
    }


def version_tags(head: TrainedHead, run_id: str) -> dict[str, str]:
    """What tells registry versions apart besides their digests: data, backbone, Dagster run."""
    backbone = head.head.config.backbone
    return {
        "data_fingerprint": head.manifest_fingerprint,
        "backbone": backbone.describe(),
        "backbone_weights": backbone.weights or "unknown",
        "dagster_run_id": run_id,
        "n_train": str(head.n_train),
    }


def release_digests(folder: Path) -> dict[str, str]:
    """`sha256:<file>` for every file of a release: what `config.json` records, and its own."""
    files = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))["files"]
    return {
        f"sha256:{name}": d for name, d in {**files, CONFIG_NAME: sha256_file(folder / CONFIG_NAME)}.items()
    }
