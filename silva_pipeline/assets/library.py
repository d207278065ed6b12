"""The library: every image the person has, embedded shard by shard and scored by the current head.

`library` lists the images and gives each new one a shard: new images, sorted by hash, fill new
fixed-size shards whose key is a hash of their members, registered as dynamic partitions of
`library_embeddings`. An image keeps its shard forever, so a grown library adds partitions and
only they need embedding; a new head re-scores everything without embedding anything.
"""

import time

import dagster as dg
import polars as pl
import pyarrow as pa
from pydantic import Field

from silva_model.release import TrainedHead
from silva_pipeline.embedding import (
    assign_shards,
    embed_rows,
    precomputed_backbone,
    with_precomputed_backbone,
)
from silva_pipeline.library_scoring import (
    ScoreSettings,
    embedded_rows,
    pictures,
    score_table,
    shard_embeddings,
)
from silva_pipeline.report import md_table
from silva_pipeline.resources import LibrarySource, RatingsSource, SiglipEmbedderResource
from silva_pipeline.resources.io_manager import previous_table
from silva_pipeline.sources.pictoria import export_scores

LIBRARY_GROUP = "library"
library_shards = dg.DynamicPartitionsDefinition(name="library_shards")


@dg.asset(group_name=LIBRARY_GROUP, kinds={"python"}, code_version="1")
def library(
    context: dg.AssetExecutionContext, library_source: LibrarySource, ratings_source: RatingsSource
) -> dg.Output[pa.Table]:
    """Every image of the library, rated or not, keyed by SHA-256, with its path or post id and
    its shard (plus the source's own vector when it has one). Unreadable files are listed."""
    load = library_source.load(ratings_source)
    prev = previous_table(context.instance, context.asset_key, ["image_sha256", "shard"])
    previous = dict(pl.from_arrow(prev).iter_rows()) if prev is not None else {}
    shas = load.rows["image_sha256"].to_list()
    shards, new_keys = assign_shards(shas, previous, library_source.shard_size)
    if new_keys:
        context.instance.add_dynamic_partitions(library_shards.name, new_keys)
    known = set(context.instance.get_dynamic_partitions(library_shards.name))
    missing = sorted(set(shards) - known)  # an instance wiped under a kept data folder
    if missing:
        context.instance.add_dynamic_partitions(library_shards.name, missing)
    for b in load.bad[:20]:
        context.log.warning(f"library: skipped {b.where}: {b.reason}")
    table = with_precomputed_backbone(
        load.rows.with_columns(pl.Series("shard", shards, pl.String)).to_arrow(), load.backbone
    )
    kind, _, _ = library_source.resolved(ratings_source)
    context.log.info(
        f"library: {len(shas)} images in {len(set(shards))} shards, {len(new_keys)} new shard(s)"
    )
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "source": kind,
            "shards": len(set(shards)),
            "new_shards": len(new_keys),
            "new_images": sum(1 for s in shas if s not in previous),
            "unreadable": len(load.bad),
            "unreadable_files": dg.MetadataValue.md(
                md_table(["where", "problem"], [(b.where, b.reason) for b in load.bad[:200]]) or "none"
            ),
            "skipped_files": len(load.skipped),
            "skipped_files_first": dg.MetadataValue.md(
                md_table(["file", "why"], [(b.where, b.reason) for b in load.skipped[:20]])
                if load.skipped
                else "none"
            ),
        },
    )


@dg.asset(
    group_name=LIBRARY_GROUP,
    kinds={"pytorch"},
    pool="gpu",
    partitions_def=library_shards,
    code_version="1",
    automation_condition=dg.AutomationCondition.on_missing(),
)
def library_embeddings(
    context: dg.AssetExecutionContext, library: pa.Table, embedder: SiglipEmbedderResource
) -> dg.Output[pa.Table]:
    """SigLIP2 embeddings of one library shard, through the same content-addressed cache as the
    rated images: an image rated later, or rated already, is never embedded twice. With the
    daemon running, new shards are embedded as soon as `library` registers them."""
    rows = pl.from_arrow(library).filter(pl.col("shard") == context.partition_key)
    return embed_rows(context, rows, precomputed_backbone(library), embedder)


class LibraryScoresConfig(dg.Config):
    neighbours: int = Field(default=10, description="rated neighbours for the out-of-domain distance")
    out_of_domain_quantile: float = Field(
        default=0.99, description="farther from the rated set than this share of rated images: out of domain"
    )
    export_to_pictoria: bool = Field(
        default=False,
        description="also write the scores into pictoria's post_aesthetic_scores (pictoria library only)",
    )
    pictoria_scorer: str = Field(default="silva", description="the scorer name pictoria shows")


@dg.asset(group_name=LIBRARY_GROUP, kinds={"pytorch", "parquet"}, code_version="2")
def library_scores(
    context: dg.AssetExecutionContext,
    config: LibraryScoresConfig,
    library: pa.Table,
    library_embeddings: dict[str, pa.Table],
    head: TrainedHead,
    manifest: pa.Table,
    library_source: LibrarySource,
    ratings_source: RatingsSource,
    embedder: SiglipEmbedderResource,
) -> dg.Output[pa.Table]:
    """Every library image scored by the current head: score, expected rating, the five class
    probabilities, the class-distribution entropy (uncertainty), how far it lies from the rated
    images (mean cosine distance to its nearest rated images, and where that falls in the rated
    images' own leave-one-out distribution), and why (`silva_model.explain`): its nearest rated
    images with their similarity and ratings, and a judge's share and shift. The schema metadata
    names the head's MLflow run. Shards not embedded yet (a retrain after new images joined the
    library) are embedded here, through the same cache. Metadata: the best and worst images, the
    score histogram, the out-of-domain count."""
    t0 = time.perf_counter()
    parts, embedded_here = shard_embeddings(context, library, library_embeddings, embedder)
    lib, x = embedded_rows(
        pl.from_arrow(library.select(["image_sha256", "path", "post_id", "shard"])), parts, head
    )
    settings = ScoreSettings(config.neighbours, config.out_of_domain_quantile)
    scored_by = {"mlflow_run_id": head.tracking.get("mlflow_run_id"), "dagster_run_id": context.run_id}
    out, table = score_table(lib, x, head, manifest, settings, scored_by)
    exported = 0
    if config.export_to_pictoria:
        kind, db, _ = library_source.resolved(ratings_source)
        if kind != "pictoria":
            raise dg.Failure(f"export_to_pictoria needs a pictoria library; this one is {kind!r}")
        exported = export_scores(db, out.select("post_id", "score"), config.pictoria_scorer)
        context.log.info(f"wrote {exported} scores into pictoria as scorer {config.pictoria_scorer!r}")
    context.log.info(f"scored {out.height} library images ({embedded_here} shard(s) embedded here)")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": out.height,
            "scored": out.height,
            "rated": int(out["rated"].sum()),
            "shards_embedded_here": embedded_here,
            "out_of_domain": int(out["out_of_domain"].sum()),
            "mean_expected_rating": float(out["expected_rating"].mean() or 0.0),
            "exported_to_pictoria": exported,
            "seconds": round(time.perf_counter() - t0, 2),
            **{k: dg.MetadataValue.md(v) for k, v in pictures(out).items()},
        },
    )
