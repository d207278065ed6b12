"""Embedding steps: progress on stderr and in the run log; unreadable images."""

from __future__ import annotations

import dagster as dg
from helpers import (
    write_images,
)
from pipeline_support import (
    make_ratings_file,
    meta,
    resources,
    run,
)


def test_embedding_shows_progress_on_stderr_and_in_the_run_log(tiny_backbone, tmp_path, capsys):

    from silva_model.backbone import SiglipEmbedder

    paths = write_images(tmp_path / "imgs", 5)
    SiglipEmbedder(tiny_backbone, device="cpu", batch_size=2).embed_paths(paths, progress=True)
    err = capsys.readouterr().err
    assert "embed" in err and "5/5" in err and "img/s" in err
    instance = dg.DagsterInstance.ephemeral()
    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 9)))
    r = run(res, selection=["raw_ratings", "image_embeddings"], instance=instance)
    logs = " ".join(e.user_message for e in instance.all_logs(r.run_id))
    assert "embedded 4/9 images" in logs and "images/s" in logs and "min left" in logs


def test_an_unreadable_image_is_tried_once_per_content_not_on_every_run(tiny_backbone, tmp_path, monkeypatch):
    """Walker's finding: every run loaded the backbone again to fail on the same corrupt rated
    file (5 s with the trial backbone, longer with the real one). Its hash is remembered with
    the error: later runs name it without trying; new bytes under the same name are tried."""
    from silva_model.backbone import SiglipEmbedder

    tried: list[str] = []
    real = SiglipEmbedder.iter_embed_paths

    def iter_embed_paths(self, paths, *a, **k):
        tried.extend(str(p) for p in paths)
        return real(self, paths, *a, **k)

    monkeypatch.setattr(SiglipEmbedder, "iter_embed_paths", iter_embed_paths)
    csv = make_ratings_file(tmp_path / "rated", 6)
    corrupt = tmp_path / "rated" / "images" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    with csv.open("a") as f:
        f.write("images/corrupt.png,4\n")
    res = resources(tiny_backbone, kind="file", path=str(csv))
    first = run(res, selection=["raw_ratings", "image_embeddings"])
    assert sum(p.endswith("corrupt.png") for p in tried) == 1 and len(tried) == 7
    tried.clear()
    again = run(res, selection=["raw_ratings", "image_embeddings"])
    assert tried == []  # nothing new to embed: the backbone is not even loaded
    for r in (first, again):
        assert meta(r, "image_embeddings", "failed") == 1
        assert "corrupt.png" in meta(r, "image_embeddings", "first_failure")
    assert "unchanged since it last failed" in meta(again, "image_embeddings", "first_failure")
    corrupt.write_bytes(b"\x89PNG broken differently")
    run(res, selection=["raw_ratings", "image_embeddings"])
    assert [p for p in tried if p.endswith("corrupt.png")] == [str(corrupt)]
