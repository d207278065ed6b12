"""Scoring the library with the current head: every shard's embeddings (those a shard asset
stored, the rest embedded now), the scores and their why, and the pictures Dagster shows."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa

from silva_app.library_scores import SCORED_BY_KEY
from silva_app.previews import jpeg, preview
from silva_model import active
from silva_model.explain import neighbour_columns
from silva_model.metrics import expected_rating
from silva_model.parquet import backbones_from_arrow, embeddings_from_arrow
from silva_model.provenance import BackboneMismatchError, common_backbone
from silva_model.release import TrainedHead
from silva_pipeline.embedding import embed_rows, precomputed_backbone
from silva_pipeline.report import md_table, plot_histogram, png_markdown
from silva_pipeline.resources import SiglipEmbedderResource

COLUMNS = ["image_sha256", "embedding", "backbone"]


@dataclass(frozen=True)
class ScoreSettings:
    neighbours: int  # rated neighbours for the out-of-domain distance
    out_of_domain_quantile: float


def shard_embeddings(
    context: dg.AssetExecutionContext,
    library: pa.Table,
    stored: dict[str, pa.Table],
    embedder: SiglipEmbedderResource,
) -> tuple[list[pa.Table], int]:
    """The embeddings of every shard of this library: those stored as `library_embeddings`
    partitions, and the rest embedded now through the cache (new images since the shards were
    last embedded; with the daemon, `embed_library` may not have run yet). Also how many shards
    were embedded here."""
    current = set(library.column("shard").to_pylist())  # shards of libraries before this one: not read
    parts = [t.select(COLUMNS) for k, t in stored.items() if k in current]
    missing = sorted(current - set(stored))
    if missing:
        rows = pl.from_arrow(library).filter(pl.col("shard").is_in(missing))
        context.log.info(f"{len(missing)} shard(s) not embedded yet ({rows.height} images): embedding them")
        parts.append(embed_rows(context, rows, precomputed_backbone(library), embedder).value.select(COLUMNS))
    return parts, len(missing)


def embedded_rows(
    lib: pl.DataFrame, parts: list[pa.Table], head: TrainedHead
) -> tuple[pl.DataFrame, np.ndarray]:
    """The library rows that have an embedding, in order, and their embeddings (checked to come
    from the head's backbone)."""
    emb = pa.concat_tables(parts) if parts else None
    if emb is None or not emb.num_rows:
        return lib.clear(), np.zeros((0, head.head.config.embed_dim), np.float32)
    index = pl.DataFrame({"image_sha256": emb.column("image_sha256").to_pylist()}).with_row_index("row")
    lib = lib.join(
        index.unique("image_sha256", keep="first"), on="image_sha256", how="inner", maintain_order="left"
    )
    rows = lib["row"].to_numpy()
    x = embeddings_from_arrow(emb.column("embedding"))[rows]
    codes, specs = backbones_from_arrow(emb.column("backbone"))
    try:
        common_backbone([head.head.config.backbone, *(specs[c] for c in np.unique(codes[rows]))])
    except BackboneMismatchError as e:
        raise dg.Failure(f"the library's embeddings do not match the head's backbone: {e}") from e
    return lib.drop("row"), x


def score_table(
    lib: pl.DataFrame, x: np.ndarray, head: TrainedHead, manifest: pa.Table, s: ScoreSettings, scored_by: dict
) -> tuple[pl.DataFrame, pa.Table]:
    """(the scores as a frame, and the table stored: the scores with their why and, in the
    schema metadata, which head scored them)."""
    rated_x = embeddings_from_arrow(manifest.column("embedding"))
    rated_y = manifest.column("personal_score").to_numpy(zero_copy_only=False)
    scored = active.score_library(head.head, x, rated_x, rated_y, s.neighbours)
    why = neighbour_columns(scored.why, manifest.column("image_sha256"))
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
        pl.Series("out_of_domain", scored.ood_quantile > s.out_of_domain_quantile, pl.Boolean),
    ).join(given, on="image_sha256", how="left", maintain_order="left")
    out = out.with_columns(pl.col("rating").cast(pl.Int8), pl.col("rating").is_not_null().alias("rated"))
    table = pa.Table.from_arrays([*out.to_arrow().columns, *why.values()], [*out.columns, *why])
    return out, table.replace_schema_metadata({SCORED_BY_KEY: json.dumps(scored_by)})


def _strip(rows: pl.DataFrame, title: str) -> str:
    cells = []
    for sha, path, score in rows.select("image_sha256", "path", "expected_rating").iter_rows():
        try:
            img = png_markdown(jpeg(preview(path, sha, 96), 80), sha[:10], mime="image/jpeg")
        except OSError:
            img = "(unreadable)"
        cells.append(f"{img}<br>{score:.2f}")
    grid = [cells[i : i + 6] for i in range(0, len(cells), 6)]
    return f"**{title}**\n\n" + md_table([""] * 6, [g + [""] * (6 - len(g)) for g in grid])


def pictures(out: pl.DataFrame) -> dict[str, str]:
    """Markdown for Dagster's metadata: the best and worst images, the histogram of expected ratings."""
    ranked = out.sort("score", descending=True)
    histogram = (
        png_markdown(plot_histogram(out["expected_rating"].to_numpy(), "expected rating"), "histogram")
        if out.height
        else "no images scored"
    )
    return {
        "best": _strip(ranked.head(24), "top 24"),
        "worst": _strip(ranked.tail(12).reverse(), "bottom 12"),
        "histogram": histogram,
    }
