"""silva's own ratings log laid over a source's ratings: per image, the latest rating wins."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pyarrow as pa

from silva_pipeline.sources.base import BadRow, RatingsLoad


def with_log(load: RatingsLoad, log_entries: pa.Table) -> RatingsLoad:
    """The source's ratings with silva's ratings log on top (`RatingsLog.entries()`). A logged row
    that is no rating (its `problem`) is a bad row, and the rating before it stands. Per image, the
    latest logged rating replaces the source's; an image rated only in the log joins with its path
    (one without a path cannot be embedded and is a bad row). `first_rating` keeps the rating
    before the latest one wherever an image was rated twice: the person's own consistency."""
    entries = pl.from_arrow(log_entries)
    if entries.is_empty():
        return load
    flagged = entries.filter(pl.col("problem").is_not_null())
    invalid = [BadRow(f"ratings log id {i}", p) for i, p in flagged.select("id", "problem").iter_rows()]
    entries = entries.filter(pl.col("problem").is_null())
    if entries.is_empty():
        return replace(load, bad=load.bad + invalid)
    per_image = entries.group_by("image_sha256", maintain_order=True).agg(
        pl.col("rating").last().alias("logged"),
        pl.col("rating").first().alias("first_logged"),
        pl.len().alias("n"),
        pl.col("path").last(),
        pl.col("post_id").last(),
        pl.col("id").last(),
    )
    rows = (
        load.rows.join(per_image.select("image_sha256", "logged"), on="image_sha256", how="left")
        .with_columns(
            pl.when(pl.col("logged").is_not_null())
            .then(pl.col("rating"))
            .cast(pl.Int8)
            .alias("first_rating"),
            pl.coalesce("logged", "rating").cast(pl.Int8).alias("rating"),
        )
        .drop("logged")
    )
    new = per_image.join(rows.select("image_sha256"), on="image_sha256", how="anti")
    vector = [load.vectors.get(pid) if pid is not None else None for pid in new["post_id"].to_list()]
    new = new.with_columns(
        pl.Series("embedding", [v.tolist() if v is not None else None for v in vector], pl.List(pl.Float32))
    )
    usable = pl.col("path").is_not_null() | pl.col("embedding").is_not_null()
    bad = [
        BadRow(f"ratings log id {i}", "image rated in silva has no path and is not in the source")
        for i in new.filter(~usable)["id"].to_list()
    ]
    added = new.filter(usable).select(
        "image_sha256",
        pl.col("logged").cast(pl.Int8).alias("rating"),
        "path",
        "post_id",
        pl.lit("silva-log").alias("source"),
        pl.when(pl.col("n") > 1).then(pl.col("first_logged")).cast(pl.Int8).alias("first_rating"),
        "embedding",
    )
    if added["embedding"].null_count() == added.height:
        added = added.drop("embedding")
    return replace(load, rows=pl.concat([rows, added], how="diagonal_relaxed"), bad=load.bad + invalid + bad)
