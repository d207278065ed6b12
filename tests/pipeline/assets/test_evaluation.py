"""The evaluation asset: the rater's own consistency, and a judge started from beside the head."""

from __future__ import annotations

import pytest
from pipeline_support import (
    make_ratings_file,
    resources,
    run,
)

from silva_app.ratings_log import RatingsLog
from silva_model.metrics import MIN_EVAL_ROWS
from silva_model.provenance import sha256_file


@pytest.mark.slow
def test_the_evaluation_shows_the_raters_own_consistency_and_the_judge(tiny_backbone, tmp_path):
    """One run for both: the head starts from a published judge (a silva release on the same
    backbone), and the release carries it."""
    from helpers import TINY_DIM
    from pipeline_support import FORCE

    from silva_model import Scorer
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.release import save_pretrained

    judge = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(16,), backbone=str(tiny_backbone))),
        tmp_path / "judge",
    )
    config = {
        "ops": {**FORCE["ops"], "head": {"config": {**FORCE["ops"]["head"]["config"], "prior": str(judge)}}}
    }

    csv = make_ratings_file(tmp_path / "rated", 60)
    images = sorted((tmp_path / "rated" / "images").iterdir())
    import polars as pl

    given = dict(pl.read_csv(csv).iter_rows())
    log = RatingsLog.default()
    for k, img in enumerate(images[:25]):  # 25 repeats: 15 agree, 10 move by one
        old = given[f"images/{img.name}"]
        log.append(sha256_file(img), old if k < 15 else (old % 5) + 1, rerate=True)
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), run_config=config)
    assert r.success
    meta = r.asset_materializations_for_node("evaluation")[0].metadata
    assert meta["rater_repeats"].value == 25 and meta["rater_exact"].value == pytest.approx(15 / 25)
    assert "Your own consistency" in meta["report"].value and "images rated twice" in meta["report"].value
    report = meta["report"].value
    assert "The judge" in report and "Spearman, judge alone" in report
    assert "oof_judge_alone_spearman" in meta and isinstance(meta["judge_weight"].value, float)
    # a test split of a few images gets its n and no number, here as in MLflow and the summary
    assert meta["test_n"].value < MIN_EVAL_ROWS and "test_spearman" not in meta
    assert "test_judge_alone_n" in meta and "test_judge_alone_spearman" not in meta
    assert r.asset_value("evaluation").metrics["oof"]["ratings_given"] == 5
    release = r.asset_value("hub_release")
    scorer = Scorer.from_pretrained(release.path, device="cpu")
    assert scorer.head.has_judge and scorer.meta["head_config"]["prior"]["source"] == str(judge)
    assert "test_judge_alone" in scorer.meta["metrics"]
