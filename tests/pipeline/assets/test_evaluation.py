"""The evaluation asset: the rater's own consistency."""

from __future__ import annotations

import pytest
from pipeline_support import (
    make_ratings_file,
    resources,
    run,
)

from silva_app.ratings_log import RatingsLog
from silva_model.provenance import sha256_file


@pytest.mark.slow
def test_the_evaluation_shows_the_raters_own_consistency(tiny_backbone, tmp_path):
    from pipeline_support import FAST_HEAD

    csv = make_ratings_file(tmp_path / "rated", 60)
    images = sorted((tmp_path / "rated" / "images").iterdir())
    import polars as pl

    given = dict(pl.read_csv(csv).iter_rows())
    log = RatingsLog.default()
    for k, img in enumerate(images[:25]):  # 25 repeats: 15 agree, 10 move by one
        old = given[f"images/{img.name}"]
        log.append(sha256_file(img), old if k < 15 else (old % 5) + 1, rerate=True)
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), run_config=FAST_HEAD)
    assert r.success
    meta = r.asset_materializations_for_node("evaluation")[0].metadata
    assert meta["rater_repeats"].value == 25 and meta["rater_exact"].value == pytest.approx(15 / 25)
    assert "Your own consistency" in meta["report"].value and "images rated twice" in meta["report"].value
