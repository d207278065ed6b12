import time

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa

from silva_model.manifest import backbone_column, embeddings_from_arrow, embeddings_to_arrow
from silva_model.paths import data_dir
from silva_model.provenance import BackboneSpec
from silva_pipeline.assets.raw_ratings import GROUP, precomputed_backbone
from silva_pipeline.embedding_cache import EmbeddingCache
from silva_pipeline.report import md_table
from silva_pipeline.resources import SiglipEmbedderResource


@dg.asset(group_name=GROUP, kinds={"pytorch"}, pool="gpu", code_version="1")
def image_embeddings(
    context: dg.AssetExecutionContext, raw_ratings: pa.Table, embedder: SiglipEmbedderResource
) -> dg.Output[pa.Table]:
    """SigLIP2 embeddings of every rated image. Precomputed ones from the source are used as
    they are; the rest come from a content-addressed cache keyed by (image SHA-256, backbone),
    so new ratings embed only new images and an interrupted run resumes where it stopped.
    Unreadable images are reported by path and skipped. Each row's `backbone` says where its
    embedding came from (the source's precomputed vectors, or this embedder)."""
    return embed_rows(context, pl.from_arrow(raw_ratings), precomputed_backbone(raw_ratings), embedder)


def embed_rows(
    context: dg.AssetExecutionContext,
    rows: pl.DataFrame,
    precomputed: BackboneSpec,
    embedder: SiglipEmbedderResource,
) -> dg.Output[pa.Table]:
    """Rows (image_sha256, path, maybe embedding) -> (image_sha256, embedding, backbone), through
    the one embedding cache that rated and library images share: no image is embedded twice."""
    has_pre = "embedding" in rows.columns
    pre = rows.filter(pl.col("embedding").is_not_null()) if has_pre else rows.clear()
    rest = rows.filter(pl.col("embedding").is_null()) if has_pre else rows

    cache = EmbeddingCache(data_dir() / "embeddings", embedder.model)
    cached_shas, cached_emb = cache.load()
    for shard, why in cache.quarantined:
        context.log.warning(f"unreadable cache shard moved to {shard} ({why}); its images are embedded again")
    index = {s: i for i, s in enumerate(cached_shas)}
    cached = rest["image_sha256"].is_in(list(index))
    reuse, todo = rest.filter(cached), rest.filter(~cached)

    new_shas: list[str] = []
    new_emb: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    seconds = 0.0
    if todo.height:
        model = embedder.get()
        cache.record_spec(model.spec)
        t0 = time.perf_counter()
        todo_shas, paths = todo["image_sha256"].to_list(), todo["path"].to_list()
        pending_shas: list[str] = []
        pending: list[np.ndarray] = []
        for batch in model.iter_embed_paths(paths):
            failures += [(f.path, f.error) for f in batch.failures]
            pending_shas += [todo_shas[i] for i in batch.indices]
            pending.append(batch.embeddings)
            if len(pending_shas) >= embedder.flush_every:
                cache.add(pending_shas, np.concatenate(pending))
                new_shas += pending_shas
                new_emb += pending
                done, spent = len(new_shas), time.perf_counter() - t0
                rate = done / spent if spent else 0.0
                left = (todo.height - done) / rate if rate else float("nan")
                context.log.info(
                    f"embedded {done}/{todo.height} images "
                    f"({rate:.2f} images/s, about {left / 60:.1f} min left)"
                )
                pending_shas, pending = [], []
        cache.add(
            pending_shas, np.concatenate(pending) if pending else np.zeros((0, model.embed_dim), np.float32)
        )
        new_shas += pending_shas
        new_emb += pending
        seconds = time.perf_counter() - t0
    for path, err in failures:
        context.log.warning(f"skipped unreadable image {path}: {err}")

    parts_sha = [pre["image_sha256"].to_list(), reuse["image_sha256"].to_list(), new_shas]
    parts = [
        embeddings_from_arrow(pre.select("embedding").to_arrow().column(0)) if pre.height else None,
        cached_emb[[index[s] for s in parts_sha[1]]] if parts_sha[1] else None,
        np.concatenate(new_emb) if new_shas else None,
    ]
    widths = {p.shape[1] for p in parts if p is not None}
    if len(widths) > 1:
        raise dg.Failure(
            description=f"embeddings of different widths {sorted(widths)}: the source's precomputed vectors "
            f"do not come from the configured backbone {embedder.model!r}"
        )
    emb = np.concatenate([p for p in parts if p is not None]) if widths else np.zeros((0, 0), np.float32)
    n_pre = pre.height
    table = pa.table(
        {
            "image_sha256": pa.array([s for p in parts_sha for s in p], pa.string()),
            "embedding": embeddings_to_arrow(emb),
            "backbone": backbone_column(
                np.repeat(np.array([0, 1], np.int32), [n_pre, emb.shape[0] - n_pre]),
                [precomputed, cache.spec()],
            ),
        }
    )
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "backbone": cache.spec().describe(),
            "precomputed": pre.height,
            "reused_from_cache": reuse.height,
            "embedded": len(new_shas),
            "failed": len(failures),
            "quarantined_shards": len(cache.quarantined),
            "images_per_second": round(len(new_shas) / seconds, 2) if seconds else 0.0,
            "failures": dg.MetadataValue.md(md_table(["path", "error"], failures) if failures else "none"),
        },
    )
