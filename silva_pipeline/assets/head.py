"""The head asset: the ordinal head trained on the manifest (and any pairs), its run in MLflow;
its launchpad config is generated from `TrainConfig`."""

import dataclasses
from typing import Literal, get_origin, get_type_hints

import dagster as dg
import pyarrow as pa
from pydantic import Field, create_model

from silva_model.manifest import to_arrays
from silva_model.pairs import PairsError
from silva_model.release import TrainedHead
from silva_model.train_config import TrainConfig
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.embedding import embedding_cache
from silva_pipeline.head_training import head_metadata, train_logged
from silva_pipeline.judged_pairs import judged_pairs
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
    for b in judged.bad[:20]:
        context.log.warning(f"judgement left out: {b.where}: {b.reason}")
    if judged.pairs is not None:
        context.log.info(f"{len(judged.pairs)} pairwise judgement(s)")
    res, trained = train_logged(context, cfg, arrays, judged.pairs, mlflow)
    return dg.Output(trained, metadata=head_metadata(res, trained, judged, mlflow))
