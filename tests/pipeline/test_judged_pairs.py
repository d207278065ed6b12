"""The judgements a head trains on: the rating page's comparisons from silva's ratings log."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pipeline_support import workspace

from silva_app.ratings_log import RatingsLog
from silva_model.manifest import build_manifest, to_arrays
from silva_model.provenance import BackboneSpec
from silva_pipeline.embedding_cache import EmbeddingCache
from silva_pipeline.judged_pairs import judged_pairs
from silva_pipeline.resources import RatingsSource

DIM = 16


def test_the_pages_comparisons_train_with_unrated_images_from_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, DIM)).astype(np.float32)
    spec = BackboneSpec(model="some/backbone")
    table = build_manifest(x, 1 + np.arange(60) % 5, dim=DIM, backbone=spec)
    shas = [f"{i:064x}" for i in range(60)]
    table = table.append_column("image_sha256", pa.array(shas))
    arrays = to_arrays(table, dim=None)
    cache = EmbeddingCache(tmp_path / "cache", "some/backbone")
    unrated, nowhere = f"{100:064x}", f"{101:064x}"
    cache.add([unrated], rng.standard_normal((1, DIM)).astype(np.float32))
    log = RatingsLog(tmp_path / "log.sqlite")

    def img(sha):
        return {"image_sha256": sha, "path": None, "post_id": None}

    log.compare([img(shas[0]), img(shas[1])], "b")
    log.compare([img(shas[2]), img(unrated), img(shas[3])])  # a ranking: 3 pairs
    withdrawn = log.compare([img(shas[4]), img(shas[5])], "a")
    log.undo_comparison(withdrawn)
    log.compare([img(shas[6]), img(nowhere)], "tie")
    source = RatingsSource(workspace=workspace(), kind="file", path=str(tmp_path / "none.csv"))

    out = judged_pairs(table, arrays, source, cache, log)
    assert out.counts["log_pairs"] == 5 and out.counts["pairs_used"] == 4
    assert out.counts["log_unrated_images_compared"] == 1
    assert [b.where for b in out.bad] == ["ratings log comparison 4"]
    assert "is not rated and has no embedding" in out.bad[0].reason
    p = out.pairs
    np.testing.assert_array_equal(p.a, [0, 2, 2, 60])
    np.testing.assert_array_equal(p.b, [1, 60, 3, 3])
    np.testing.assert_array_equal(p.outcome, [-1, 1, 1, 1])
    np.testing.assert_array_equal(p.extra, cache.lookup({unrated})[unrated][None])

    other = EmbeddingCache(tmp_path / "cache", "another/backbone")
    other.add([unrated], np.ones((1, DIM), np.float32))
    out = judged_pairs(table, arrays, source, other, log)
    assert out.counts["log_unrated_images_other_backbone"] == 1 and out.counts["pairs_used"] == 2
