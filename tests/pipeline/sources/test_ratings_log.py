"""silva's ratings log laid over a source."""

from __future__ import annotations

import sqlite3

import polars as pl
from pipeline_support import (
    make_ratings_file,
    rated_images,
    resources,
    run,
)

from silva_app.ratings_log import RatingsLog
from silva_model.provenance import sha256_file
from silva_pipeline.sources import RatingsLoad, with_log


def test_a_log_value_that_is_no_rating_is_a_bad_row_and_the_one_before_it_stands(tmp_path):
    source = RatingsLoad(
        pl.DataFrame(
            {"image_sha256": ["a" * 64], "rating": [3], "path": ["a.png"], "source": "file"},
            schema_overrides={"rating": pl.Int8},
        )
    )
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 4, rerate=True)
    log.append("b" * 64, 2, path="b.png")
    with sqlite3.connect(log.path) as conn:  # however it got there: an old log, a hand edit
        conn.execute("PRAGMA ignore_check_constraints = 1")
        for sha, rating in (("a" * 64, 9), ("c" * 64, 0), ("a" * 64, 3.5), ("b" * 64, "four")):
            conn.execute(
                "INSERT INTO ratings (at, image_sha256, path, rating) VALUES (0, ?, 'x.png', ?)",
                (sha, rating),
            )
    load = with_log(source, log.entries())
    assert dict(load.rows.select("image_sha256", "rating").iter_rows()) == {"a" * 64: 4, "b" * 64: 2}
    assert [(b.where, b.reason) for b in load.bad] == [
        ("ratings log id 3", "rating 9 is outside 1..5"),
        ("ratings log id 4", "rating 0 is outside 1..5"),
        ("ratings log id 5", "rating 3.5 is not an integer"),  # not read as 3
        ("ratings log id 6", "rating 'four' is not an integer"),  # not a failed run
    ]


def test_the_latest_logged_rating_wins_over_the_source(tiny_backbone, tmp_path):
    csv = make_ratings_file(tmp_path / "rated", 10)
    sha = sha256_file(sorted((tmp_path / "rated" / "images").iterdir())[0])
    extra, _ = rated_images(tmp_path / "library", 1, seed=7)  # an image the source does not have
    log = RatingsLog.default()
    log.append(sha, 5)
    log.append(sha, 2, rerate=True)  # re-rated: this one wins
    log.append(sha256_file(extra[0]), 4, path=str(extra[0]))
    log.append("c" * 64, 3)  # rated in silva with no path and not in the source
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), selection=["raw_ratings"])
    assert r.success
    import pyarrow.parquet as pq

    meta = r.asset_materializations_for_node("raw_ratings")[0].metadata
    rows = pq.read_table(meta["dagster/uri"].value).to_pydict()
    by_sha = dict(zip(rows["image_sha256"], rows["rating"], strict=True))
    assert by_sha[sha] == 2 and by_sha[sha256_file(extra[0])] == 4
    assert meta["dagster/row_count"].value == 11
    assert "ratings log id 4" in meta["bad_rows"].value


def test_first_rating_keeps_the_rating_before_the_latest(tmp_path):
    import polars as pl

    from silva_pipeline.sources import RatingsLoad, with_log

    source = RatingsLoad(
        pl.DataFrame(
            {
                "image_sha256": ["a" * 64, "b" * 64],
                "rating": [3, 4],
                "path": ["a.png", "b.png"],
                "source": "file",
            },
            schema_overrides={"rating": pl.Int8},
        )
    )
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 5, rerate=True)  # in the source: first = the source's 3
    log.append("c" * 64, 2, path="c.png")  # only in the log, twice: first = 2, latest = 1
    log.append("c" * 64, 1, path="c.png", rerate=True)
    rows = with_log(source, log.entries()).rows.sort("image_sha256")
    assert rows["rating"].to_list() == [5, 4, 1]
    assert rows["first_rating"].to_list() == [3, None, 2]
