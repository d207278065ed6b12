"""What every source hands the pipeline: one row per image, and judgements over keys."""

from __future__ import annotations

import numpy as np
import polars as pl
from helpers import write_images

from silva_pipeline.sources.base import Judgements, from_candidates


def test_one_image_rated_alike_twice_merges_and_rated_differently_is_bad_everywhere(tmp_path):
    a, b = write_images(tmp_path, 2)
    copy_a, copy_b = tmp_path / "copy_a.png", tmp_path / "copy_b.png"
    copy_a.write_bytes(a.read_bytes())
    copy_b.write_bytes(b.read_bytes())
    paths = [str(p) for p in (a, copy_a, b, copy_b, tmp_path / "gone.png")]
    load = from_candidates(
        ["a", "copy a", "b", "copy b", "gone"], paths, ["3", 3.0, 2, "4", 5], [None] * 5, "t"
    )
    assert load.rows.select("path", "rating").rows() == [(str(a), 3)] and load.merged_duplicates == 1
    reasons = {b.where: b.reason for b in load.bad}
    assert reasons["gone"].startswith("image file is missing")
    assert "rated differently: 2 at b, 4 at copy b" in reasons["b"] and reasons["b"] == reasons["copy b"]


def test_judgements_become_pairs_over_the_manifest_and_extra_images_by_their_vectors():
    pairs = pl.DataFrame(
        {
            "a": ["r0", "x", "r1", "w"],
            "b": ["r1", "r0", "none", "r0"],
            "winner": ["a", "b", "tie", "a"],
            "weight": [1.0, 1.0, 1.0, 0.5],
            "ref": ["one", "two", "three", "four"],
        },
        schema_overrides={"weight": pl.Float32},
    )
    vectors = {"x": np.ones(4, np.float32), "w": np.ones(3, np.float32)}  # w: another width
    got, bad = Judgements(pairs, vectors=vectors).to_pairs({"r0": 0, "r1": 1}, n_rows=2, dim=4)
    assert (got.a.tolist(), got.b.tolist(), got.outcome.tolist()) == ([0, 2], [1, 0], [1.0, -1.0])
    assert got.extra.shape == (1, 4)  # x, as row 2
    assert [(b.where, b.reason.split(":")[0]) for b in bad] == [
        ("three", "image none… is not rated and has no embedding"),
        ("four", "image w… is not rated and has an embedding of another width"),
    ]
