"""image_embeddings: incremental, and resumed after an interruption."""

from __future__ import annotations

from pipeline_support import (
    append_ratings,
    make_ratings_file,
    meta,
    resources,
    run,
)


def test_incremental_embedding_and_resume_after_interruption(tiny_backbone, tmp_path, monkeypatch):
    csv = make_ratings_file(tmp_path / "rated", 20)
    res_defs = resources(tiny_backbone, kind="file", path=str(csv))
    first = ["raw_ratings", "image_embeddings"]
    r1 = run(res_defs, selection=first)
    assert meta(r1, "image_embeddings", "embedded") == 20

    append_ratings(csv, 12, seed=9)  # new ratings arrive
    from silva_model.backbone import SiglipEmbedder

    real = SiglipEmbedder.iter_embed_paths

    def interrupted(self, paths):
        for i, batch in enumerate(real(self, paths)):
            if i == 2:
                raise RuntimeError("simulated interruption")
            yield batch

    monkeypatch.setattr(SiglipEmbedder, "iter_embed_paths", interrupted)
    r2 = run(res_defs, selection=first)
    assert not r2.success  # 2 batches of 4 finished and were flushed to the cache before the crash
    monkeypatch.setattr(SiglipEmbedder, "iter_embed_paths", real)
    r3 = run(res_defs, selection=first)
    assert r3.success
    assert meta(r3, "image_embeddings", "reused_from_cache") == 28
    assert meta(r3, "image_embeddings", "embedded") == 4
    assert meta(r3, "image_embeddings", "dagster/row_count") == 32
