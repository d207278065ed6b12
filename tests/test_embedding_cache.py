"""The embedding cache keeps pixel signatures beside embeddings, and reads shards from before them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from silva_model.copies import SIGNATURE_DIM
from silva_model.manifest import embeddings_to_arrow, write_parquet
from silva_pipeline import embedding_cache as ec


def test_shards_without_signatures_read_as_nan_and_compact_into_a_readable_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    cache = ec.EmbeddingCache(tmp_path, "some/backbone")
    old = pa.table(
        {"image_sha256": ["old0", "old1"], "embedding": embeddings_to_arrow(rng.random((2, 8), np.float32))}
    )
    write_parquet(
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
