"""The ratings log: an append-only record of ratings given in silva (the rating page), owned by
silva and kept with its data, never in pictoria's or anyone else's files.

One SQLite file in WAL mode with `synchronous=FULL`: each rating is durable the moment `append`
returns, several writers (two pages open at once) serialise on SQLite's lock instead of
corrupting anything, and rows are only ever inserted. The ratings sources read the log on top of
their own ratings: per image, the latest rating wins.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from silva_pipeline.paths import data_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
    path TEXT,
    post_id INTEGER,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    rerate INTEGER NOT NULL DEFAULT 0
)"""


@dataclass(frozen=True)
class RatingsLog:
    path: Path

    @classmethod
    def default(cls) -> RatingsLog:
        return cls(data_dir() / "ratings-log.sqlite")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            yield conn

    def append(
        self,
        image_sha256: str,
        rating: int,
        path: str | None = None,
        post_id: int | None = None,
        rerate: bool = False,
    ) -> int:
        """Record one rating durably; returns its id. Bad values raise and record nothing."""
        if not 1 <= int(rating) <= 5:
            raise ValueError(f"rating {rating!r} is outside 1..5")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._connect() as conn, conn:
            cur = conn.execute(
                "INSERT INTO ratings (at, image_sha256, path, post_id, rating, rerate) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, image_sha256, path, post_id, int(rating), int(rerate)),
            )
            return int(cur.lastrowid)

    def entries(self) -> pl.DataFrame:
        """Every rating in the order given."""
        schema = {
            "id": pl.Int64,
            "at": pl.String,
            "image_sha256": pl.String,
            "path": pl.String,
            "post_id": pl.Int64,
            "rating": pl.Int8,
            "rerate": pl.Boolean,
        }
        if not self.path.exists():
            return pl.DataFrame(schema=schema)
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(schema)} FROM ratings ORDER BY id").fetchall()
        return pl.DataFrame(rows, schema=schema, orient="row")

    def fingerprint(self) -> str:
        """Changes with every rating appended: part of the ratings source's fingerprint."""
        if not self.path.exists():
            return "log:empty"
        with self._connect() as conn:
            n, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM ratings").fetchone()
        return f"log:{n}:{last}"
