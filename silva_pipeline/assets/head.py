from typing import Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from silva_model.manifest import to_arrays
from silva_model.train import TrainConfig, train
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.paths import data_dir
from silva_pipeline.report import md_table
from silva_pipeline.resources import MlflowTracking, SiglipEmbedderResource

_DEFAULTS = TrainConfig()


class HeadTrainingConfig(dg.Config):
    """Training options, editable in the launchpad."""

    lr: float = Field(default=_DEFAULTS.lr, description="AdamW peak learning rate (cosine schedule)")
    epochs: int = Field(default=_DEFAULTS.epochs, description="epochs; the best by val Spearman is kept")
    batch_size: int = _DEFAULTS.batch_size
    weight_decay: float = _DEFAULTS.weight_decay
    hidden: list[int] = Field(default=list(_DEFAULTS.hidden), description="MLP hidden widths")
    dropout: float = _DEFAULTS.dropout
    class_balance: bool = Field(default=_DEFAULTS.class_balance, description="per-threshold class balancing")
    ema_epochs: float = Field(default=_DEFAULTS.ema_epochs, description="weight EMA span (epochs); 0 = off")
    seed: int = _DEFAULTS.seed
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dg.asset(group_name=GROUP, kinds={"pytorch", "mlflow"}, code_version="1")
def head(
    context: dg.AssetExecutionContext,
    config: HeadTrainingConfig,
    manifest: pa.Table,
    mlflow: MlflowTracking,
    embedder: SiglipEmbedderResource,
) -> dg.Output[dict]:
    """The trained ordinal head (best epoch by validation Spearman), with its run in MLflow:
    parameters, per-epoch metrics and the checkpoint."""
    import mlflow as mlf

    cfg = TrainConfig.from_dict({**config.model_dump(), "backbone": embedder.model})
    arrays = to_arrays(manifest, dim=None)
    out_dir = data_dir() / "runs" / context.run_id
    with mlflow.run(
        run_name=f"head-{context.run_id[:8]}", tags={"dagster_run_id": context.run_id, "silva.stage": "head"}
    ) as run:
        mlf.log_params({**cfg.to_dict(), "n_rows": len(arrays), "manifest_fingerprint": arrays.fingerprint()})

        def log_epoch(rec: dict[str, float]) -> None:
            mlf.log_metrics({k: float(v) for k, v in rec.items() if k != "epoch"}, step=int(rec["epoch"]))

        res = train(arrays, cfg, out_dir, progress=False, on_epoch=log_epoch)
        mlf.log_metrics({f"best_val_{k}": float(v) for k, v in res.best_metrics.items()})
        mlf.log_artifacts(str(out_dir), artifact_path="checkpoint")
        run_id = run.info.run_id
    m = res.best_metrics
    history = md_table(
        ["epoch", "train loss", "val spearman", "val qwk", "val mae"],
        [(h["epoch"], h["train_loss"], h["val_spearman"], h["val_qwk"], h["val_mae"]) for h in res.history],
    )
    return dg.Output(
        {
            "checkpoint_dir": str(out_dir),
            "mlflow_run_id": run_id,
            "best_epoch": res.best_epoch,
            "val_metrics": m,
            "train_config": cfg.to_dict(),
            "manifest_fingerprint": arrays.fingerprint(),
            "n_train": int(arrays.mask("train").sum()),
            "n_val": int(arrays.mask("val").sum()),
            "backbone": embedder.model,
            "seconds": round(res.seconds, 2),
        },
        metadata={
            "best_epoch": res.best_epoch,
            "val_spearman": m["spearman"],
            "val_qwk": m["qwk"],
            "val_mae": m["mae"],
            "checkpoint": dg.MetadataValue.path(str(out_dir)),
            "mlflow_run_id": run_id,
            "mlflow": dg.MetadataValue.text(mlflow.run_link(run_id)),
            "history": dg.MetadataValue.md(history),
            "train_seconds": round(res.seconds, 2),
        },
    )
