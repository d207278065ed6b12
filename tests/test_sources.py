"""The ratings readers in silva_pipeline/sources.py: bad rows are named and dropped, bad files are
refused with a message naming the file and the line."""

from __future__ import annotations

import sqlite3

import polars as pl
import pytest
from conftest import write_images

from silva_model.ratings_log import RatingsLog
from silva_pipeline.sources import RatingsLoad, read_ratings_file, with_log


def test_a_ragged_csv_line_is_named_with_its_file_and_line(tmp_path):
    a, b, c = (p.name for p in write_images(tmp_path, 3))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f"image,rating\n{a},3\n{b},4,extra\n{c},5\n")
    with pytest.raises(ValueError, match=r"ragged\.csv: line 3 has 3 fields but the header has 2"):
        read_ratings_file(ragged)


def test_a_header_naming_rating_twice_is_an_error(tmp_path):
    (a,) = (p.name for p in write_images(tmp_path, 1))
    twice = tmp_path / "twice.csv"
    twice.write_text(f"image,rating,rating\n{a},3,4\n")
    named_twice = r"twice\.csv: its header names column\(s\) \['rating'\] more than once"
    with pytest.raises(ValueError, match=named_twice):
        read_ratings_file(twice)


def test_a_short_csv_line_is_a_bad_row_not_a_failure(tmp_path):
    a, b = (p.name for p in write_images(tmp_path, 2))
    short = tmp_path / "short.csv"
    short.write_text(f"image,rating\n{a},3\n{b}\n")
    load = read_ratings_file(short)
    assert load.rows.height == 1
    assert [(r.where, r.reason) for r in load.bad] == [(f"short.csv row 3 ({b})", "rating is empty")]


def test_a_log_rating_outside_1_to_5_is_a_bad_row_and_the_one_before_it_stands(tmp_path):
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
        for sha, rating in (("a" * 64, 9), ("c" * 64, 0)):
            conn.execute(
                "INSERT INTO ratings (at, image_sha256, path, rating) VALUES (0, ?, 'x.png', ?)",
                (sha, rating),
            )
    load = with_log(source, log.entries())
    assert dict(load.rows.select("image_sha256", "rating").iter_rows()) == {"a" * 64: 4, "b" * 64: 2}
    assert [(b.where, b.reason) for b in load.bad] == [
        ("ratings log id 3", "rating 9 is outside 1..5"),
        ("ratings log id 4", "rating 0 is outside 1..5"),
    ]
