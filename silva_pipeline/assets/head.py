"""The head asset: the ordinal head trained on the manifest (and any pairs), its run in MLflow;
its launchpad config is generated from `TrainConfig`."""

import dataclasses
import tempfile
from typing import Literal, get_origin, get_type_hints

import dagster as dg
import pyarrow as pa
from pydantic import Field, create_model

from silva_model.manifest import to_arrays
from silva_model.pairs import PairsError
from silva_model.prior import PriorError
from silva_model.provenance import BackboneMismatchError
from silva_model.release import IntegrityError, TrainedHead
from silva_model.train import train
from silva_model.train_config import TrainConfig
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.embedding import embedding_cache
from silva_pipeline.judged_pairs import judged_pairs
from silva_pipeline.report import md_table
from silva_pipeline.resources import RatingsSource, SiglipEmbedderResource, Workspace
from silva_pipeline.tracking import MlflowTracking


def _launchpad_config() -> type[dg.Config]:
    """The launchpad's training options, generated from `TrainConfig` (the one source of truth):
    same names, types and help. Each is empty unless a run sets it: the run then trains as the
    workspace is set up (its setup.yaml, SILVA_<OPTION>), so the sensor's and the schedule's
    retrains use the workspace's judge, and a scaffolded launchpad config changes nothing."""
    hints = get_type_hints(TrainConfig)
    fields = {}
    for f in dataclasses.fields(TrainConfig):
        kind = list[int] if isinstance(f.default, tuple) else hints[f.name]  # Dagster has lists
        if get_origin(kind) is Literal:  # no Dagster config type when optional: TrainConfig checks it
            kind = str
        shown = list(f.default) if isinstance(f.default, tuple) else f.default
        help = f"{f.metadata.get('help')} (empty: as the workspace is set up, else {shown!r})"
        fields[f.name] = (kind | None, Field(default=None, description=help))
    return create_model("HeadTrainingConfig", __base__=dg.Config, __doc__="Training options.", **fields)


HeadTrainingConfig = _launchpad_config()


@dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, code_version="4")
def head(
    context: dg.AssetExecutionContext,
    config: HeadTrainingConfig,
    manifest: pa.Table,
    mlflow: MlflowTracking,
    ratings_source: RatingsSource,
    embedder: SiglipEmbedderResource,
    workspace: Workspace,
) -> dg.Output[TrainedHead]:
    """The trained ordinal head (best epoch by validation Spearman), which records the backbone
    its training embeddings came from, with its run in MLflow: parameters, per-epoch metrics and
    the checkpoint. Pairwise judgements (the source's pairs file, pictoria's pairwise and ranking
    annotations, the rating page's pair and rank modes) add a pair loss; those it cannot use
    are listed in the metadata."""
    cfg = workspace.setup().train_config(config.model_dump(exclude_none=True))
    arrays = to_arrays(manifest, dim=None)
    try:
        judged = judged_pairs(
            manifest, arrays, ratings_source, embedding_cache(embedder), ratings_source.ratings_log()
        )
    except PairsError as e:
        raise dg.Failure(description=str(e)) from e
    pairs = judged.pairs
    for b in judged.bad[:20]:
        context.log.warning(f"judgement left out: {b.where}: {b.reason}")
    if pairs is not None:
        context.log.info(f"{len(pairs)} pairwise judgement(s)")
    with mlflow.run(
        run_name=f"head-{context.run_id[:8]}", tags={"dagster_run_id": context.run_id, "silva.stage": "head"}
    ) as run:
        mlflow.log_params(
            {**cfg.to_dict(), "n_rows": len(arrays), "manifest_fingerprint": arrays.fingerprint()}
        )

        def log_epoch(rec: dict[str, float]) -> None:
            mlflow.log_metrics({k: float(v) for k, v in rec.items() if k != "epoch"}, step=int(rec["epoch"]))
            context.log.info(
                f"epoch {int(rec['epoch'])}/{cfg.epochs}: val spearman {rec['val_spearman']:.4f}"
            )

        try:
            res = train(arrays, cfg, progress=False, on_epoch=log_epoch, pairs=pairs)
        except (PriorError, BackboneMismatchError, IntegrityError, FileNotFoundError) as e:
            raise dg.Failure(description=f"the head could not start from its prior: {e}") from e
        trained = res.trained_head({"mlflow_run_id": run.info.run_id})
        mlflow.log_metrics({f"best_val_{k}": float(v) for k, v in res.best_metrics.items()})
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_folder(trained.save(tmp), artifact_path="checkpoint")
    m = res.best_metrics
    history = md_table(
        ["epoch", "train loss", "val spearman", "val qwk", "val mae"],
        [(h["epoch"], h["train_loss"], h["val_spearman"], h["val_qwk"], h["val_mae"]) for h in res.history],
    )
    return dg.Output(
        trained,
        metadata={
            "best_epoch": res.best_epoch,
            "val_spearman": round(m["spearman"], 4),
            "val_qwk": round(m["qwk"], 4),
            "val_mae": round(m["mae"], 4),
            "backbone": trained.head.config.backbone.describe(),
            "inputs": trained.head.config.describe_inputs(),
            "mlflow_run_id": run.info.run_id,
            "mlflow": dg.MetadataValue.text(mlflow.run_link(run.info.run_id)),
            "history": dg.MetadataValue.md(history),
            "train_seconds": round(res.seconds, 2),
            "pairs": len(pairs) if pairs is not None else 0,
            "judgements": dg.MetadataValue.md(md_table(["judgements", "count"], judged.counts.items())),
            "bad_judgements_count": len(judged.bad),
            "bad_judgements": dg.MetadataValue.md(
                md_table(["where", "problem"], [(b.where, b.reason) for b in judged.bad])
                if judged.bad
                else "none"
            ),
            **(
                {
                    "prior": cfg.prior,
                    "judge_weight": round(trained.head.learned_judge_weight, 4),
                    "personal_scale": "not fitted"
                    if res.personal_scale is None
                    else round(res.personal_scale, 4),
                }
                if trained.head.has_judge
                else {}
            ),
        },
    )
