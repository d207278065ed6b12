"""The synthetic demo: embeddings with a planted taste (no image files), rated and unrated,
generated once into the data root's `demo/` folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow as pa

from silva_model.parquet import embeddings_from_arrow, embeddings_to_arrow, read_parquet, write_parquet
from silva_model.provenance import BackboneSpec
from silva_model.synthetic import make_taste_dataset
from silva_pipeline.sources.base import LibraryLoad, RatingsLoad, Settings

DEMO_BACKBONE = BackboneSpec(model="synthetic-demo")
DEMO_LIBRARY_FIRST_POST_ID = 1_000_000


def _demo_table(path: Path, n: int, seed: int, ratings: bool) -> pl.DataFrame:
    """One synthetic set of the demo's planted taste, generated once and kept as parquet."""
    if not path.exists():
        d = make_taste_dataset(n, seed=seed)
        cols: dict[str, pa.Array] = {
            "image_sha256": pa.array([hashlib.sha256(row.tobytes()).hexdigest() for row in d.embeddings]),
        }
        if ratings:
            cols["rating"] = pa.array(d.ratings, pa.int8())
        cols["embedding"] = embeddings_to_arrow(d.embeddings)
        write_parquet(pa.table(cols), path)
    return pl.from_arrow(read_parquet(path))


def demo_ratings(folder: Path, n: int = 4000, seed: int = 0, library_size: int = 0) -> RatingsLoad:
    """The synthetic demo set (no images: embeddings with a planted taste), generated once. The
    demo library's vectors come along, so a demo image rated in silva's log needs no file."""
    t = _demo_table(folder / f"demo-{n}-{seed}.parquet", n, seed, ratings=True)
    rows = t.select(
        "image_sha256",
        "rating",
        pl.lit(None, pl.String).alias("path"),
        (pl.int_range(pl.len(), dtype=pl.Int64)).alias("post_id"),
        pl.lit("synthetic-demo").alias("source"),
        pl.col("embedding").cast(pl.List(pl.Float32)),
    )
    vectors = {}
    if library_size:
        lib = demo_library(folder, library_size, seed)
        emb = embeddings_from_arrow(lib.rows["embedding"].to_arrow())
        vectors = dict(zip(lib.rows["post_id"].to_list(), emb, strict=True))
    return RatingsLoad(rows, backbone=DEMO_BACKBONE, vectors=vectors)


def demo_library(folder: Path, n: int = 20_000, seed: int = 0) -> LibraryLoad:
    """The demo's unrated pool: n more images of the same planted taste (a different sample)."""
    t = _demo_table(folder / f"demo-library-{n}-{seed}.parquet", n, seed + 1_000_003, ratings=False)
    rows = t.select(
        "image_sha256",
        pl.lit(None, pl.String).alias("path"),
        (DEMO_LIBRARY_FIRST_POST_ID + pl.int_range(pl.len(), dtype=pl.Int64)).alias("post_id"),
        pl.col("embedding").cast(pl.List(pl.Float32)),
    )
    return LibraryLoad(rows, backbone=DEMO_BACKBONE)


class Demo:
    """`demo`: `demo_size` rated embeddings and a pool of `demo_library_size` unrated ones."""

    def ratings(self, settings: Settings) -> RatingsLoad:
        return demo_ratings(
            settings.home.demo, settings.demo_size, settings.demo_seed, settings.demo_library_size
        )

    def library(self, settings: Settings) -> LibraryLoad:
        return demo_library(settings.home.demo, settings.demo_library_size, settings.demo_seed)

    def fingerprint(self, settings: Settings) -> str:
        return f"demo:{settings.demo_size}:{settings.demo_seed}"
