"""The embedder resource keeps its backbone under partial config."""

from __future__ import annotations

from pipeline_support import (
    failure_message,
    make_ratings_file,
    run,
)


def test_partial_embedder_config_keeps_silva_backbone(tiny_backbone, tmp_path, monkeypatch):
    from silva_app.home import silva_home
    from silva_pipeline.definitions import workspace_resources

    monkeypatch.setenv("SILVA_BACKBONE", str(tiny_backbone))
    monkeypatch.setenv("SILVA_SOURCE", "file")
    monkeypatch.setenv("SILVA_RATINGS", str(make_ratings_file(tmp_path / "rated", 6)))
    r = run(
        workspace_resources(silva_home()),
        selection=["raw_ratings", "image_embeddings"],
        run_config={"resources": {"embedder": {"config": {"batch_size": 2, "device": "cpu"}}}},
    )
    assert r.success, failure_message(r)
    assert (
        str(tiny_backbone)
        in r.asset_materializations_for_node("image_embeddings")[0].metadata["backbone"].value
    )
