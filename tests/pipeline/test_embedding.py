"""Embedding steps: progress on stderr and in the run log."""

from __future__ import annotations

import dagster as dg
from helpers import (
    write_images,
)
from pipeline_support import (
    make_ratings_file,
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
