"""Training the head inside its MLflow run: parameters, per-epoch metrics, the checkpoint; and
what the `head` asset shows about it (the chosen form, the judge, the judgements used)."""

from __future__ import annotations

import tempfile
from typing import Any

import dagster as dg

from silva_model.manifest import ManifestArrays
from silva_model.pairs import Pairs
from silva_model.prior import PriorError
from silva_model.provenance import BackboneMismatchError
from silva_model.release import IntegrityError, TrainedHead
from silva_model.train import TrainResult, train
from silva_model.train_config import TrainConfig
from silva_pipeline.judged_pairs import JudgedPairs
from silva_pipeline.report import md_table
from silva_pipeline.tracking import MlflowTracking


def train_logged(
    context: dg.AssetExecutionContext,
    cfg: TrainConfig,
    arrays: ManifestArrays,
    pairs: Pairs | None,
    mlflow: MlflowTracking,
) -> tuple[TrainResult, TrainedHead]:
    """Train in a new MLflow run of this Dagster run, logging every epoch; the head records the run."""
    tags = {"dagster_run_id": context.run_id, "silva.stage": "head"}
    with mlflow.run(run_name=f"head-{context.run_id[:8]}", tags=tags) as run:
        fingerprint = arrays.fingerprint()
        mlflow.log_params({**cfg.to_dict(), "n_rows": len(arrays), "manifest_fingerprint": fingerprint})

        def log_epoch(rec: dict[str, float]) -> None:
            epoch = int(rec["epoch"])
            mlflow.log_metrics({k: float(v) for k, v in rec.items() if k != "epoch"}, step=epoch)
            context.log.info(f"epoch {epoch}/{cfg.epochs}: val spearman {rec['val_spearman']:.4f}")

        try:
            res = train(arrays, cfg, progress=False, on_epoch=log_epoch, pairs=pairs)
        except (PriorError, BackboneMismatchError, IntegrityError, FileNotFoundError) as e:
            raise dg.Failure(description=f"the head could not start from its prior: {e}") from e
        trained = res.trained_head({"mlflow_run_id": run.info.run_id})
        mlflow.log_metrics({f"best_val_{k}": float(v) for k, v in res.best_metrics.items()})
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_folder(trained.save(tmp), artifact_path="checkpoint")
    return res, trained


def head_metadata(
    res: TrainResult, trained: TrainedHead, judged: JudgedPairs, mlflow: MlflowTracking
) -> dict[str, Any]:
    """The head's metadata in Dagster: its validation numbers, how its form was chosen, its
    judge, the judgements it trained on and those it left out."""
    m, run_id = res.best_metrics, trained.tracking["mlflow_run_id"]
    history = md_table(
        ["epoch", "train loss", "val spearman", "val qwk", "val mae"],
        [(h["epoch"], h["train_loss"], h["val_spearman"], h["val_qwk"], h["val_mae"]) for h in res.history],
    )
    chosen = res.selection or {}
    bad = md_table(["where", "problem"], [(b.where, b.reason) for b in judged.bad]) if judged.bad else "none"
    meta: dict[str, Any] = {
        "model": chosen.get("chosen", res.config.model),
        "candidates_out_of_fold": dg.MetadataValue.json(chosen.get("out_of_fold_spearman", {})),
        "best_epoch": res.best_epoch,
        **{f"val_{k}": round(m[k], 4) for k in ("spearman", "qwk", "mae")},
        "backbone": trained.head.config.backbone.describe(),
        "inputs": trained.head.config.describe_inputs(),
        "mlflow_run_id": run_id,
        "mlflow": dg.MetadataValue.text(mlflow.run_link(run_id)),
        "history": dg.MetadataValue.md(history),
        "train_seconds": round(res.seconds, 2),
        "pairs": len(judged.pairs) if judged.pairs is not None else 0,
        "judgements": dg.MetadataValue.md(md_table(["judgements", "count"], judged.counts.items())),
        "bad_judgements_count": len(judged.bad),
        "bad_judgements": dg.MetadataValue.md(bad),
    }
    if trained.head.has_judge:
        scale = "not fitted" if res.personal_scale is None else round(res.personal_scale, 4)
        meta |= {
            "prior": res.config.prior,
            "judge_weight": round(trained.head.learned_judge_weight, 4),
            "personal_scale": scale,
        }
    return meta
