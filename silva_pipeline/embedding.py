"""Embedding images through the one content-addressed cache that rated and library images share,
and splitting the work into shards that workers take one at a time."""

import hashlib
import time

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa

from silva_model.copies import SIGNATURE_COLUMN, no_signatures, signatures_to_arrow
from silva_model.images import ImageFailure
from silva_model.parquet import backbone_column, embeddings_from_arrow, embeddings_to_arrow
from silva_model.provenance import BackboneSpec
from silva_pipeline.embedding_cache import EmbeddingCache
from silva_pipeline.records import EmbedWork
from silva_pipeline.report import md_table
from silva_pipeline.resources import SiglipEmbedderResource

Context = dg.AssetExecutionContext | dg.OpExecutionContext

PRECOMPUTED_BACKBONE_KEY = b"silva.precomputed_backbone"


def with_precomputed_backbone(table: pa.Table, backbone: BackboneSpec | None) -> pa.Table:
    """`table` recording where its source's precomputed embeddings came from (None: none came)."""
    if backbone is None:
        return table
    return table.replace_schema_metadata({PRECOMPUTED_BACKBONE_KEY: backbone.to_json().encode()})


def precomputed_backbone(table: pa.Table) -> BackboneSpec:
    """Where the source's precomputed embeddings came from (empty spec: not recorded)."""
    raw = (table.schema.metadata or {}).get(PRECOMPUTED_BACKBONE_KEY)
    return BackboneSpec.from_value(raw.decode()) if raw else BackboneSpec()


def assign_shards(shas: list[str], previous: dict[str, str], shard_size: int) -> tuple[list[str], list[str]]:
    """(shard of each image, the new shard keys). Known images keep their shard; new ones, sorted
    by hash, fill shards of `shard_size` keyed by the hash of their members (stable under
    re-runs, unique by content)."""
    new = sorted({s for s in shas if s not in previous})
    assigned = dict(previous)
    keys = []
    for start in range(0, len(new), shard_size):
        members = new[start : start + shard_size]
        key = hashlib.sha256("".join(members).encode()).hexdigest()[:16]
        keys.append(key)
        assigned.update(dict.fromkeys(members, key))
    return [assigned[s] for s in shas], keys


def embedding_cache(embedder: SiglipEmbedderResource) -> EmbeddingCache:
    return EmbeddingCache(embedder.workspace.home().embeddings, embedder.cache_key())


def log_quarantined(context: Context, cache: EmbeddingCache) -> None:
    for shard, why in cache.quarantined:
        context.log.warning(f"unreadable cache shard moved to {shard} ({why}); its images are embedded again")


def split_rows(rows: pl.DataFrame, cached_shas: np.ndarray) -> tuple[pl.DataFrame, ...]:
    """(rows with a precomputed vector, rows cached, rows still to embed)."""
    has_pre = "embedding" in rows.columns
    pre = rows.filter(pl.col("embedding").is_not_null()) if has_pre else rows.clear()
    rest = rows.filter(pl.col("embedding").is_null()) if has_pre else rows
    cached = rest["image_sha256"].is_in(cached_shas.tolist())
    return pre, rest.filter(cached), rest.filter(~cached)


def embed_into_cache(
    context: Context, todo: pl.DataFrame, embedder: SiglipEmbedderResource, cache: EmbeddingCache
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], EmbedWork]:
    """Embed `todo` (image_sha256, path), writing the cache every `flush_every` images, so a worker
    killed mid-way keeps what it finished. Returns the hashes, embeddings and pixel signatures
    embedded; progress goes to the run log."""
    model = embedder.get()
    cache.record_spec(model.spec)
    t0 = time.perf_counter()
    todo_shas, paths = todo["image_sha256"].to_list(), todo["path"].to_list()
    new_shas: list[str] = []
    new_emb: list[np.ndarray] = []
    new_sig: list[np.ndarray] = []
    failures: list[ImageFailure] = []
    pending_shas: list[str] = []
    pending: list[np.ndarray] = []
    pending_sig: list[np.ndarray] = []
    for batch in model.iter_embed_paths(paths):
        failures += batch.failures
        pending_shas += [todo_shas[i] for i in batch.indices]
        pending.append(batch.embeddings)
        pending_sig.append(batch.signatures)
        if len(pending_shas) >= embedder.flush_every:
            cache.add(pending_shas, np.concatenate(pending), np.concatenate(pending_sig))
            new_shas += pending_shas
            new_emb += pending
            new_sig += pending_sig
            done, spent = len(new_shas), time.perf_counter() - t0
            rate = done / spent if spent else 0.0
            left = (todo.height - done) / rate if rate else float("nan")
            context.log.info(
                f"embedded {done}/{todo.height} images ({rate:.2f} images/s, about {left / 60:.1f} min left)"
            )
            pending_shas, pending, pending_sig = [], [], []
    rest = np.concatenate(pending) if pending else np.zeros((0, model.embed_dim), np.float32)
    cache.add(pending_shas, rest, np.concatenate(pending_sig) if pending_sig else no_signatures(0))
    new_shas += pending_shas
    new_emb += pending
    new_sig += pending_sig
    sha_of = dict(zip(paths, todo_shas, strict=True))
    cache.remember_unreadable({sha_of[f.path]: f.error for f in failures if f.of_content})
    for f in failures:
        context.log.warning(f"skipped unreadable image {f.path}: {f.error}")
    work = EmbedWork(len(new_shas), time.perf_counter() - t0, [(f.path, f.error) for f in failures])
    return new_shas, new_emb, new_sig, work


def known_unreadable(todo: pl.DataFrame, cache: EmbeddingCache) -> tuple[pl.DataFrame, EmbedWork]:
    """(the rows of `todo` (image_sha256, path) still to try, the failures of those whose bytes
    failed to decode before): a run does not load the backbone to fail on them again."""
    errors = cache.unreadable()
    seen = todo["image_sha256"].is_in(list(errors))
    failures = [
        (path, f"{errors[sha]} (unchanged since it last failed)")
        for sha, path in todo.filter(seen).select("image_sha256", "path").iter_rows()
    ]
    return todo.filter(~seen), EmbedWork(failures=failures)


def embed_rows(
    context: Context,
    rows: pl.DataFrame,
    precomputed: BackboneSpec,
    embedder: SiglipEmbedderResource,
    done: EmbedWork | None = None,
) -> dg.Output[pa.Table]:
    """Rows (image_sha256, path, maybe embedding) -> (image_sha256, embedding, backbone,
    copy_signature): the source's precomputed vectors (no signature: no pixels were read), then
    the cache, then the embedder for whatever is left. `done` is what this run's workers embedded
    already (their unreadable files are not tried again)."""
    done = done or EmbedWork()
    if done.failures:
        rows = rows.filter(~pl.col("path").is_in([p for p, _ in done.failures]).fill_null(False))
    cache = embedding_cache(embedder)
    cached_shas, cached_emb, cached_sig = cache.load()
    log_quarantined(context, cache)
    pre, reuse, todo = split_rows(rows, cached_shas)
    todo, known = known_unreadable(todo, cache)
    new_shas, new_emb, new_sig, work = [], [], [], EmbedWork()
    if todo.height:
        new_shas, new_emb, new_sig, work = embed_into_cache(context, todo, embedder, cache)
    work = done + known + work
    index = {s: i for i, s in enumerate(cached_shas)}

    parts_sha = [pre["image_sha256"].to_list(), reuse["image_sha256"].to_list(), new_shas]
    reused = [index[s] for s in parts_sha[1]]  # the cache rows of the reused images
    parts = [
        embeddings_from_arrow(pre.select("embedding").to_arrow().column(0)) if pre.height else None,
        cached_emb[reused] if reused else None,
        np.concatenate(new_emb) if new_shas else None,
    ]
    widths = {p.shape[1] for p in parts if p is not None}
    if len(widths) > 1:
        raise dg.Failure(
            description=f"embeddings of different widths {sorted(widths)}: the source's precomputed vectors "
            f"do not come from the configured backbone {embedder.model!r}"
        )
    if widths:
        emb = np.concatenate([p for p in parts if p is not None])
    else:  # nothing could be read: no rows, but as wide as every other shard
        emb = np.zeros((0, cached_emb.shape[1] or embedder.get().embed_dim), np.float32)
    signatures = np.concatenate([no_signatures(pre.height), cached_sig[reused], *new_sig])
    n_pre = pre.height
    table = pa.table(
        {
            "image_sha256": pa.array([s for p in parts_sha for s in p], pa.string()),
            "embedding": embeddings_to_arrow(emb),
            "backbone": backbone_column(
                np.repeat(np.array([0, 1], np.int32), [n_pre, emb.shape[0] - n_pre]),
                [precomputed, cache.spec()],
            ),
            SIGNATURE_COLUMN: signatures_to_arrow(signatures),
        }
    )
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "backbone": cache.spec().describe(),
            "precomputed": pre.height,
            "reused_from_cache": reuse.height - done.embedded,
            "embedded": work.embedded,
            "failed": len(work.failures),
            "first_failure": f"{work.failures[0][0]}: {work.failures[0][1]}" if work.failures else "",
            "quarantined_shards": len(cache.quarantined) + done.quarantined,
            "images_per_second": round(work.embedded / work.seconds, 2) if work.seconds else 0.0,
            "failures": dg.MetadataValue.md(
                md_table(["path", "error"], work.failures) if work.failures else "none"
            ),
        },
    )
