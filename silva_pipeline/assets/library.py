"""The library: every image the person has, embedded shard by shard and scored by the current head.

`library` lists the images and gives each new one a shard: new images, sorted by hash, fill new
fixed-size shards whose key is a hash of their members, registered as dynamic partitions of
`library_embeddings`. An image keeps its shard forever, so a grown library adds partitions and
only they need embedding; a new head re-scores everything without embedding anything.
"""

import json
import time

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from silva_app.library_scores import SCORED_BY_KEY
from silva_app.previews import jpeg, preview
from silva_model import active
from silva_model.explain import explain, neighbour_columns
from silva_model.metrics import expected_rating
from silva_model.parquet import backbones_from_arrow, embeddings_from_arrow
from silva_model.provenance import BackboneMismatchError, common_backbone
from silva_model.release import TrainedHead
from silva_pipeline.assets.raw_ratings import PRECOMPUTED_BACKBONE_KEY, precomputed_backbone
from silva_pipeline.embedding import assign_shards, embed_rows
from silva_pipeline.report import md_table, plot_histogram, png_markdown
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
    table = load.rows.with_columns(pl.Series("shard", shards, pl.String)).to_arrow()
    if load.backbone is not None:
        table = table.replace_schema_metadata({PRECOMPUTED_BACKBONE_KEY: load.backbone.to_json().encode()})
    kind, _ = library_source.resolved(ratings_source)
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


def _gallery(rows: pl.DataFrame, title: str) -> str:
    cells = []
    for sha, path, score in rows.select("image_sha256", "path", "expected_rating").iter_rows():
        try:
            img = png_markdown(jpeg(preview(path, sha, 96), 80), sha[:10], mime="image/jpeg")
        except OSError:
            img = "(unreadable)"
        cells.append(f"{img}<br>{score:.2f}")
    grid = [cells[i : i + 6] for i in range(0, len(cells), 6)]
    return f"**{title}**\n\n" + md_table([""] * 6, [g + [""] * (6 - len(g)) for g in grid])


@dg.asset(group_name=LIBRARY_GROUP, kinds={"pytorch", "parquet"}, code_version="1")
def library_scores(
    context: dg.AssetExecutionContext,
    config: LibraryScoresConfig,
    library: pa.Table,
    library_embeddings: dict[str, pa.Table],
    head: TrainedHead,
    manifest: pa.Table,
    library_source: LibrarySource,
    ratings_source: RatingsSource,
) -> dg.Output[pa.Table]:
    """Every embedded library image scored by the current head: score, expected rating, the five
    class probabilities, the class-distribution entropy (uncertainty), and how far it lies from
    the rated images (mean cosine distance to its nearest rated images, and where that falls in
    the rated images' own leave-one-out distribution), and why (`silva_model.explain`): its
    nearest rated images with their similarity and ratings, and a judge's share and shift. The
    schema metadata names the head's MLflow run. Shards not embedded yet are counted, not
    scored. Metadata: the best and worst images, the score histogram, the out-of-domain count."""
    t0 = time.perf_counter()
    lib = pl.from_arrow(library.select(["image_sha256", "path", "post_id", "shard"]))
    current = set(lib["shard"].unique().to_list())  # shards of libraries before this one are not read
    parts = [
        t.select(["image_sha256", "embedding", "backbone"])
        for k, t in library_embeddings.items()
        if k in current
    ]
    unembedded = sorted(set(lib["shard"].unique().to_list()) - set(library_embeddings))
    emb_table = pa.concat_tables(parts) if parts else None
    if emb_table is not None and emb_table.num_rows:
        index = pl.DataFrame({"image_sha256": emb_table.column("image_sha256").to_pylist()}).with_row_index(
            "row"
        )
        lib = lib.join(
            index.unique("image_sha256", keep="first"), on="image_sha256", how="inner", maintain_order="left"
        )
        rows = lib["row"].to_numpy()
        x = embeddings_from_arrow(emb_table.column("embedding"))[rows]
        codes, specs = backbones_from_arrow(emb_table.column("backbone"))
        try:
            common_backbone([head.head.config.backbone, *(specs[c] for c in np.unique(codes[rows]))])
        except BackboneMismatchError as e:
            raise dg.Failure(f"the library's embeddings do not match the head's backbone: {e}") from e
        lib = lib.drop("row")
    else:
        lib, x = lib.clear(), np.zeros((0, head.head.config.embed_dim), np.float32)

    rated_x = embeddings_from_arrow(manifest.column("embedding"))
    scored = active.score_library(head.head, x, rated_x, config.neighbours)
    rated_y = manifest.column("personal_score").to_numpy(zero_copy_only=False)
    why = neighbour_columns(explain(head.head, x, rated_x, rated_y), manifest.column("image_sha256"))
    given = pl.from_arrow(manifest.select(["image_sha256", "personal_score"])).rename(
        {"personal_score": "rating"}
    )
    out = lib.with_columns(
        pl.Series("score", scored.score, pl.Float32),
        pl.Series("expected_rating", expected_rating(scored.score), pl.Float32),
        *(pl.Series(f"p{k + 1}", scored.probs[:, k], pl.Float32) for k in range(scored.probs.shape[1])),
        pl.Series("uncertainty", scored.uncertainty, pl.Float32),
        pl.Series("ood_distance", scored.ood_distance, pl.Float32),
        pl.Series("ood_quantile", scored.ood_quantile, pl.Float32),
        pl.Series("out_of_domain", scored.ood_quantile > config.out_of_domain_quantile, pl.Boolean),
    ).join(given, on="image_sha256", how="left", maintain_order="left")
    out = out.with_columns(pl.col("rating").cast(pl.Int8), pl.col("rating").is_not_null().alias("rated"))

    exported = 0
    if config.export_to_pictoria:
        kind, db = library_source.resolved(ratings_source)
        if kind != "pictoria":
            raise dg.Failure(f"export_to_pictoria needs a pictoria library; this one is {kind!r}")
        exported = export_scores(db, out.select("post_id", "score"), config.pictoria_scorer)
        context.log.info(f"wrote {exported} scores into pictoria as scorer {config.pictoria_scorer!r}")

    ranked = out.sort("score", descending=True)
    n_ood = int(out["out_of_domain"].sum())
    context.log.info(f"scored {out.height} library images ({len(unembedded)} shard(s) not embedded yet)")
    table = pa.Table.from_arrays([*out.to_arrow().columns, *why.values()], [*out.columns, *why])
    scored_by = {"mlflow_run_id": head.tracking.get("mlflow_run_id"), "dagster_run_id": context.run_id}
    return dg.Output(
        table.replace_schema_metadata({SCORED_BY_KEY: json.dumps(scored_by)}),
        metadata={
            "dagster/row_count": out.height,
            "scored": out.height,
            "rated": int(out["rated"].sum()),
            "unembedded_shards": len(unembedded),
            "out_of_domain": n_ood,
            "mean_expected_rating": float(out["expected_rating"].mean() or 0.0),
            "exported_to_pictoria": exported,
            "seconds": round(time.perf_counter() - t0, 2),
            "best": dg.MetadataValue.md(_gallery(ranked.head(24), "top 24")),
            "worst": dg.MetadataValue.md(_gallery(ranked.tail(12).reverse(), "bottom 12")),
            "histogram": dg.MetadataValue.md(
                png_markdown(
                    plot_histogram(out["expected_rating"].to_numpy(), "expected rating"), "histogram"
                )
                if out.height
                else "no images scored"
            ),
        },
    )
