"""The content-addressed embedding cache."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pipeline_support import (
    make_ratings_file,
    resources,
    run,
)

from silva_model.copies import SIGNATURE_DIM
from silva_model.parquet import embeddings_to_arrow, write_cache_parquet
from silva_pipeline import embedding_cache as ec


def test_shards_without_signatures_read_as_nan_and_compact_into_a_readable_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    cache = ec.EmbeddingCache(tmp_path, "some/backbone")
    old = pa.table(
        {"image_sha256": ["old0", "old1"], "embedding": embeddings_to_arrow(rng.random((2, 8), np.float32))}
    )
    write_cache_parquet(
        old, cache.folder / "shard-00000000000000000001-1-00001-part.parquet"
    )  # as before signatures
    sig = rng.random((2, SIGNATURE_DIM), np.float32)
    cache.add(["new0", "new1"], rng.random((2, 8), np.float32), sig)
    cache.add(["vec0"], rng.random((1, 8), np.float32))  # a vector that came without pixels
    shas, emb, sigs = cache.load()
    by_sha = dict(zip(shas, sigs, strict=True))
    assert np.isnan(by_sha["old0"]).all() and np.isnan(by_sha["vec0"]).all()
    np.testing.assert_array_equal(by_sha["new1"], sig[1])
    monkeypatch.setattr(ec, "_MAX_SHARDS", 1)  # compact now: the mixed table is written as one shard
    cache.load()
    assert len(cache.shards()) == 1
    shas2, emb2, sigs2 = ec.EmbeddingCache(tmp_path, "some/backbone").load()
    assert sorted(shas2) == sorted(shas) and np.isnan(sigs2).sum() == np.isnan(sigs).sum()


def test_a_truncated_cache_shard_is_quarantined_and_its_images_embedded_again(tiny_backbone, tmp_path):
    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 12)))
    sel = ["raw_ratings", "image_embeddings"]
    assert run(res, selection=sel).success
    shards = sorted((tmp_path / "silva-home" / "embeddings").glob("*/shard-*.parquet"))
    assert len(shards) == 3
    shards[1].write_bytes(shards[1].read_bytes()[:100])  # a write cut short
    r = run(res, selection=sel)
    assert r.success
    meta = r.asset_materializations_for_node("image_embeddings")[0].metadata
    assert meta["quarantined_shards"].value == 1 and meta["embedded"].value == 4
    assert meta["reused_from_cache"].value == 8
    assert (shards[1].parent / "quarantine" / shards[1].name).is_file()
    assert run(res, selection=sel).success  # and the run after that needs nothing by hand


def test_a_cache_compacted_by_another_worker_mid_read_loses_nothing(tmp_path, monkeypatch):
    import silva_pipeline.embedding_cache as ec

    cache = ec.EmbeddingCache(tmp_path, "some/backbone")
    rng = np.random.default_rng(0)
    for i in range(3):
        cache.add([f"sha{i}a", f"sha{i}b"], rng.standard_normal((2, 8)).astype(np.float32))
    real_read = ec.read_parquet

    def read_while_another_worker_compacts(path, columns=None):
        monkeypatch.setattr(ec, "read_parquet", real_read)
        other = ec.EmbeddingCache(tmp_path, "some/backbone")  # its load lists the same 3 files...
        monkeypatch.setattr(ec, "_MAX_SHARDS", 2)
        other.load()  # ...and replaces them with one compacted file
        monkeypatch.setattr(ec, "_MAX_SHARDS", 32)
        return real_read(path, columns)

    monkeypatch.setattr(ec, "read_parquet", read_while_another_worker_compacts)
    shas, emb, _ = cache.load()
    assert sorted(shas) == sorted(f"sha{i}{c}" for i in range(3) for c in "ab") and emb.shape == (6, 8)
    assert not cache.quarantined and len(cache.shards()) == 1


def test_shards_are_written_in_the_private_byte_layout_and_read_back_as_floats(tmp_path):
    """The cache is no contract: its shards keep the faster byte rows (`write_cache_parquet`)."""
    x = np.random.default_rng(0).random((3, 8), np.float32)
    cache = ec.EmbeddingCache(tmp_path, "some/backbone")
    cache.add(["a", "b", "c"], x)
    (shard,) = cache.shards()
    assert pq.read_schema(shard).field("embedding").type == pa.binary(4 * 8)
    shas, emb, _ = cache.load()
    np.testing.assert_array_equal(emb[np.argsort(shas)], x)
