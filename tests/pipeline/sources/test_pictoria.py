"""pictoria: the one table silva writes (reading, annotations and vectors: test_pictoria_annotations)."""

from __future__ import annotations

import sqlite3

import pytest


def test_export_writes_nothing_when_a_post_id_is_not_a_post(tmp_path):
    import polars as pl

    from silva_pipeline.sources.pictoria import export_scores

    db = tmp_path / "p.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO posts VALUES (1), (2)")
        conn.execute(
            "CREATE TABLE post_aesthetic_scores (post_id INTEGER NOT NULL REFERENCES posts(id), "
            "scorer TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (post_id, scorer))"
        )
    with pytest.raises(sqlite3.IntegrityError):
        export_scores(db, pl.DataFrame({"post_id": [1, 2, 99], "score": [0.1, 0.2, 0.3]}), "silva")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM post_aesthetic_scores").fetchone()[0] == 0
    with pytest.raises(ValueError, match="no post_aesthetic_scores"):
        export_scores(tmp_path / "empty.db", pl.DataFrame({"post_id": [1], "score": [0.5]}), "silva")
