"""The library scores the gallery and export read: checked, queried, with the log's ratings on top."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gallery_support import scores_row, write_scores

from silva_app.home import silva_home
from silva_app.library_scores import SCORED_BY_KEY, LibraryScores, Query, latest_scores
from silva_app.ratings_log import RatingsLog


@pytest.fixture
def library(tmp_path) -> LibraryScores:
    rows = [
        scores_row("/lib/a/1.png", 0.9, uncertainty=0.1),
        scores_row("/lib/a/2.png", 0.2, uncertainty=0.9, rating=5),  # the head disagrees by 3.2
        scores_row("/lib/b/3.png", 0.6, uncertainty=0.5, out_of_domain=True),
        scores_row("/lib/b/4.png", 0.4, uncertainty=0.7, rating=3),  # by 0.4
        scores_row(None, 0.7, image_sha256="f" * 64, post_id=7),  # a vector-only image
    ]
    return LibraryScores.read(write_scores(tmp_path / "scores.parquet", rows))


def test_the_query_sorts_and_filters_on_arrays(library):
    assert library.select(Query()).tolist() == [0, 4, 2, 3, 1]  # best first
    assert library.select(Query(ascending=True)).tolist() == [1, 3, 2, 4, 0]
    assert library.select(Query(sort="uncertainty")).tolist() == [1, 3, 2, 4, 0]
    assert library.select(Query(filter="unrated")).tolist() == [0, 4, 2]
    assert library.select(Query(filter="rated")).tolist() == [3, 1]
    assert library.select(Query(filter="disagreements")).tolist() == [1, 3]  # the largest gap first
    assert library.select(Query(filter="out-of-domain")).tolist() == [2]
    assert library.select(Query(folder="/lib/b/")).tolist() == [2, 3]
    assert library.select(Query(folder="/lib/b/", filter="rated")).tolist() == [3]
    assert library.select(Query(min_rating=2.0, max_rating=4.0)).tolist() == [4, 2, 3]
    assert library.name(4) == "ffffffffffff (no file)" and library.name(0) == "1.png"
    with pytest.raises(ValueError, match="filter 'best' is not one of"):
        Query(filter="best")
    with pytest.raises(ValueError, match="sort 'size' is not one of"):
        Query(sort="size")


def test_the_logs_newer_ratings_win_and_an_undo_gives_the_pipelines_back(library, tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    library.overlay(log.entries())
    assert library.rating.tolist() == [0, 5, 0, 3, 0]
    sha = library.sha256.to_pylist()
    log.append(sha[0], 2)
    log.append(sha[0], 4)  # the latest wins
    undone = log.append(sha[1], 1)
    library.overlay(log.entries())
    assert library.rating.tolist() == [4, 1, 0, 3, 0]
    assert library.select(Query(filter="unrated")).tolist() == [4, 2]
    log.undo(undone)
    library.overlay(log.entries())
    assert library.rating.tolist() == [4, 5, 0, 3, 0]


def test_bad_or_missing_scores_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no library scores in the workspace at .*silva-run"):
        latest_scores()
    write_scores(silva_home().latest("library_scores"), [scores_row("/x.png", 0.5)])
    assert latest_scores() == silva_home().latest("library_scores")
    empty = write_scores(tmp_path / "empty.parquet", [])
    with pytest.raises(ValueError, match="holds no scored images: the library is empty"):
        LibraryScores.read(empty)
    pq.write_table(pa.table({"image_sha256": ["a"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match=r"other.parquet is not a library_scores table: .*'score'"):
        LibraryScores.read(tmp_path / "other.parquet")


def test_scored_by_names_the_release_of_the_head_that_scored(tmp_path):
    plain = LibraryScores.read(write_scores(tmp_path / "a.parquet", [scores_row("/x.png", 0.5)]))
    assert plain.scored_by().endswith("(which head scored it is not recorded)")
    meta = {SCORED_BY_KEY: json.dumps({"mlflow_run_id": "run123"}).encode()}
    scores = LibraryScores.read(write_scores(tmp_path / "b.parquet", [scores_row("/x.png", 0.5)], meta))
    assert scores.scored_by().endswith("scored by the head of MLflow run run123 (not released)")
    release = silva_home().releases / "20250101T000000Z-abc"
    release.mkdir()
    (release / "config.json").write_text(json.dumps({"mlflow_run_id": "run123"}))
    assert f"scored by release {release} (MLflow run run123)" in scores.scored_by()
    assert np.isclose(scores.expected[0], 3.0)


def test_why_reads_what_the_pipeline_stored_and_nothing_where_it_did_not(tmp_path):
    row = scores_row("/x.png", 0.5, neighbours=["a" * 64], neighbour_similarity=[0.9], neighbour_ratings=[4])
    scores = LibraryScores.read(write_scores(tmp_path / "a.parquet", [row]))
    assert scores.why(0) == {
        "neighbours": ["a" * 64],
        "neighbour_similarity": [pytest.approx(0.9)],
        "neighbour_ratings": [4],
        "judge_share": None,
        "judge_shift": None,
    }
    old = pq.read_table(tmp_path / "a.parquet").drop_columns(["neighbours", "neighbour_similarity"])
    pq.write_table(old, tmp_path / "old.parquet")  # scored before explanations were stored
    assert LibraryScores.read(tmp_path / "old.parquet").why(0)["neighbours"] == []
