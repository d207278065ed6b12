"""The head asset: pairs reach training; a judge that cannot start the head fails it by name."""

from __future__ import annotations

from pipeline_support import (
    FAST_HEAD,
    make_ratings_file,
    meta,
    resources,
    run,
)


def test_a_pairs_file_reaches_training_and_bad_input_is_named(tiny_backbone, tmp_path, monkeypatch):
    """SILVA_PAIRS names images by their path relative to the pairs file, as a ratings file does;
    the head trains with them, and a pair naming an unrated image fails the head naming its line;
    so does a judge of another width as the prior. SILVA_PRIOR sets every run's judge unless the
    run's launchpad says otherwise."""
    import importlib

    from helpers import TINY_DIM

    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.release import save_pretrained

    csv = make_ratings_file(tmp_path / "rated", 30)
    images = sorted(p.relative_to(csv.parent) for p in (csv.parent / "images").iterdir())
    pairs = csv.parent / "pairs.csv"
    pairs.write_text(
        "a,b,winner\n" + "".join(f"{a},{b},a\n" for a, b in zip(images[:15], images[15:], strict=True))
    )
    res = resources(tiny_backbone, kind="file", path=str(csv), pairs=str(pairs))
    r = run(res, selection=["raw_ratings", "image_embeddings", "manifest", "head"])
    assert r.success
    assert 0 < meta(r, "head", "pairs") <= 15  # pairs outside the train split are dropped in training
    pairs.write_text(f"a,b,winner\n{images[0]},{images[1]},a\n{images[0]},images/missing.png,b\n")
    r = run(res, selection=["raw_ratings", "image_embeddings", "manifest", "head"])
    assert not r.success
    failure = next(e for e in r.all_events if e.event_type_value == "STEP_FAILURE")
    assert "pairs.csv: line 3: image b='images/missing.png' is not rated (path)" in str(
        failure.event_specific_data.error
    )
    narrow = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=TINY_DIM // 2, hidden=(8,))), tmp_path / "narrow"
    )
    pairs.write_text(f"a,b,winner\n{images[0]},{images[1]},a\n")
    config = {"ops": {"head": {"config": {**FAST_HEAD["ops"]["head"]["config"], "prior": str(narrow)}}}}
    r = run(res, selection=["raw_ratings", "image_embeddings", "manifest", "head"], run_config=config)
    assert not r.success
    failure = next(e for e in r.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"could not start from its prior: the prior {narrow} reads {TINY_DIM // 2}-d embeddings" in str(
        failure.event_specific_data
    )
    head_module = importlib.import_module("silva_pipeline.assets.head")  # the package names the asset `head`
    monkeypatch.setenv("SILVA_PRIOR", "someone/judge")
    launchpad = head_module.HeadTrainingConfig()
    assert launchpad.prior is None  # a scaffolded launchpad config changes nothing
    setup = res["workspace"].setup()
    assert setup.train_config(launchpad.model_dump(exclude_none=True)).prior == "someone/judge"
    assert setup.train_config({"prior": ""}).prior == ""  # a run's own choice wins
