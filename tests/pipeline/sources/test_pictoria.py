"""pictoria: read-only with its vectors, and the one table silva writes."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest
from pipeline_support import (
    make_pictoria_db,
    meta,
    pictoria_resources,
    run,
)


def test_pictoria_database_read_only_with_precomputed_vectors(tiny_backbone, tmp_path):
    db, vecs = make_pictoria_db(tmp_path, n=60, n_with_vectors=10)
    before = db.read_bytes()
    r = run(pictoria_resources(tiny_backbone, db), selection=["raw_ratings", "image_embeddings", "manifest"])
    assert r.success
    assert meta(r, "raw_ratings", "dagster/row_count") == 60  # unrated and duplicate posts skipped
    assert meta(r, "raw_ratings", "precomputed_embeddings") == 10
    assert meta(r, "image_embeddings", "precomputed") == 10 and meta(r, "image_embeddings", "embedded") == 50
    assert db.read_bytes() == before  # silva never writes to pictoria

    from silva_model.parquet import embeddings_from_arrow

    m = pq.read_table(meta(r, "manifest", "dagster/uri"))
    ids = m.column("post_id").to_numpy()
    emb = embeddings_from_arrow(m.column("embedding"))
    np.testing.assert_array_equal(emb[ids == 1][0], vecs[0])  # post 1's vector came from the vec0 table
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 62


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
