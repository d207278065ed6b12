"""silva's one write into pictoria, on request: its scores in `post_aesthetic_scores`.

pictoria sorts and filters posts by the rows of this table. silva writes only rows whose
`scorer` is its own name, in one transaction, and touches no other table and no other scorer.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import polars as pl


def export_scores(db_path: str | Path, scores: pl.DataFrame, scorer: str) -> int:
    """Upsert (post_id, scorer, score) for every row with a post id; returns how many. Fails,
    writing nothing, when pictoria has no `post_aesthetic_scores` table or a post id is not a post."""
    db_path = Path(db_path)
    if not scorer.strip():
        raise ValueError("the pictoria scorer name is empty")
    rows = scores.filter(pl.col("post_id").is_not_null()).select("post_id", "score")
    data = [(int(pid), scorer, float(s)) for pid, s in rows.iter_rows()]
    with closing(sqlite3.connect(db_path, timeout=30)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'post_aesthetic_scores'"
        ).fetchone()
        if not has_table:
            raise ValueError(
                f"{db_path} has no post_aesthetic_scores table (a pictoria version without scores?)"
            )
        with conn:  # one transaction: all rows or none
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO post_aesthetic_scores (post_id, scorer, score) VALUES (?, ?, ?) "
                "ON CONFLICT (post_id, scorer) DO UPDATE SET score = excluded.score",
                data,
            )
    return len(data)
