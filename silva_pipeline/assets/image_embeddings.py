"""The rated images' embeddings, shard by shard, on as many workers as the `gpu` pool allows.

A graph: `pending_shards` splits the rated images that have neither a precomputed vector nor a
cached embedding into shards (the library's shard size, keyed by their members' hashes);
`embed_shard` embeds one shard into the shared cache (pool `gpu`); `embedding_table` assembles
every row from the source's vectors and the cache. Under the multiprocess executor (the
`embed_images` job) each shard is a worker process of its own; in-process they run in turn.
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl
import pyarrow as pa

from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.embedding import (
    assign_shards,
    embed_into_cache,
    embed_rows,
    embedding_cache,
    known_unreadable,
    log_quarantined,
    precomputed_backbone,
    split_rows,
)
from silva_pipeline.records import EmbedWork
from silva_pipeline.resources import LibrarySource, SiglipEmbedderResource


@dg.op(out={"shards": dg.DynamicOut(pa.Table), "checked": dg.Out(EmbedWork)})
def pending_shards(
    context: dg.OpExecutionContext,
    raw_ratings: pa.Table,
    embedder: SiglipEmbedderResource,
    library_source: LibrarySource,
) -> Iterator[dg.DynamicOutput[pa.Table] | dg.Output[EmbedWork]]:
    """The rated images still to embed, as shards of (image_sha256, path): one step each. Also
    what reading the cache found (unreadable cache files moved aside, images whose bytes failed
    to decode before), for the final report."""
    cache = embedding_cache(embedder)
    *_, todo = split_rows(pl.from_arrow(raw_ratings), cache.shas())
    log_quarantined(context, cache)
    todo, known = known_unreadable(todo.select("image_sha256", "path"), cache)
    shards, keys = assign_shards(todo["image_sha256"].to_list(), {}, library_source.shard_size)
    context.log.info(f"{todo.height} rated images to embed, in {len(keys)} shard(s)")
    todo = todo.with_columns(pl.Series("shard", shards, pl.String))
    for key in keys:
        shard = todo.filter(pl.col("shard") == key).drop("shard").to_arrow()
        yield dg.DynamicOutput(shard, output_name="shards", mapping_key=key)
    yield dg.Output(known + EmbedWork(quarantined=len(cache.quarantined)), output_name="checked")


@dg.op(pool="gpu")
def embed_shard(
    context: dg.OpExecutionContext, shard: pa.Table, embedder: SiglipEmbedderResource
) -> EmbedWork:
    """One shard into the embedding cache, flushed every `flush_every` images: a worker killed
    mid-shard keeps what it finished, and the re-run plans only what is missing."""
    *_, work = embed_into_cache(context, pl.from_arrow(shard), embedder, embedding_cache(embedder))
    return work


@dg.op
def embedding_table(
    context: dg.OpExecutionContext,
    raw_ratings: pa.Table,
    checked: EmbedWork,
    work: list[EmbedWork],
    embedder: SiglipEmbedderResource,
) -> dg.Output[pa.Table]:
    """Every rated image's embedding, from the source's vectors and the cache the shards filled."""
    done = sum(work, checked)
    return embed_rows(context, pl.from_arrow(raw_ratings), precomputed_backbone(raw_ratings), embedder, done)


@dg.graph_asset(group_name=GROUP, kinds={"pytorch"}, code_version="2")
def image_embeddings(raw_ratings: pa.Table) -> pa.Table:
    """SigLIP2 embeddings of every rated image. Precomputed ones from the source are used as
    they are; the rest come from a content-addressed cache keyed by (image SHA-256, backbone),
    filled shard by shard (one worker per shard under the `embed_images` job), so new ratings
    embed only new images and an interrupted run resumes where it stopped. Unreadable images are
    reported by path and skipped. Each row's `backbone` says where its embedding came from."""
    shards, checked = pending_shards(raw_ratings)
    return embedding_table(raw_ratings, checked, shards.map(embed_shard).collect())
