"""The ratings log: an append-only record of ratings given in silva (the rating page), owned by
silva and kept with its data, never in pictoria's or anyone else's files.

One SQLite file in WAL mode with `synchronous=FULL`: each rating is durable the moment `append`
returns, several writers (two pages open at once) serialise on SQLite's lock instead of
corrupting anything, and rows are only ever inserted. The ratings sources read the log on top of
their own ratings: per image, the latest rating wins. Undoing a rating (the page's `u`) appends to
`undos`; an undone rating no longer counts, and nothing is ever deleted. Comparisons (the page's
pair and rank modes) are events of their own, undone the same way: a pair says which of two
images is better (or neither), a ranking orders a group, best first, and counts as all its pairs.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from silva_app.home import silva_home
from silva_model.ratings import HIGHEST, LOWEST, rating_problem

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
    path TEXT,
    post_id INTEGER,
    rating INTEGER NOT NULL CHECK (typeof(rating) = 'integer' AND rating BETWEEN {LOWEST} AND {HIGHEST}),
    rerate INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS undos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    rating_id INTEGER NOT NULL UNIQUE REFERENCES ratings(id)
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pair', 'rank')),
    images TEXT NOT NULL,  -- JSON [{"image_sha256", "path", "post_id"}]: pair as shown, rank best first
    winner TEXT CHECK ((kind = 'pair') = (winner IN ('a', 'b', 'tie')))
);
CREATE TABLE IF NOT EXISTS comparison_undos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    comparison_id INTEGER NOT NULL UNIQUE REFERENCES comparisons(id)
)"""

PAIR_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),  # the comparison it came from
        ("a", pa.string()),  # image_sha256
        ("b", pa.string()),
        ("winner", pa.string()),  # a, b or tie
        ("a_path", pa.string()),
        ("b_path", pa.string()),
        ("a_post_id", pa.int64()),
        ("b_post_id", pa.int64()),
        ("weight", pa.float32()),  # 1 for a pair; `ranking_weight` for each of a ranking's pairs
    ]
)


ENTRY_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("at", pa.string()),
        ("image_sha256", pa.string()),
        ("path", pa.string()),
        ("post_id", pa.int64()),
        ("rating", pa.int8()),  # null where `problem` says why the stored value is no rating
        ("rerate", pa.bool_()),
        ("problem", pa.string()),
    ]
)


def _checked_entry(
    rid: int, at: object, sha: object, path: object, post_id: object, rating: object, rerate: object
) -> tuple:
    """One stored rating row as `ENTRY_SCHEMA` holds it: values of the wrong type are not
    coerced (SQLite keeps whatever a CHECK let through) but named in `problem`."""
    problem = rating_problem(rating, exact=True)
    if not isinstance(sha, str) or len(sha) != 64:
        problem = f"image_sha256 {sha!r} is not a SHA-256"
    elif post_id is not None and (isinstance(post_id, bool) or not isinstance(post_id, int)):
        problem = f"post_id {post_id!r} is not an integer"
    elif path is not None and not isinstance(path, str):
        problem = f"path {path!r} is not text"
    if problem:
        return rid, str(at), None, None, None, None, bool(rerate), problem
    return rid, str(at), sha, path, post_id, rating, bool(rerate), None


def _image(image: dict) -> dict:
    sha = image.get("image_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ValueError(f"image_sha256 {sha!r} is not a SHA-256")
    return {"image_sha256": sha, "path": image.get("path"), "post_id": image.get("post_id")}


def _wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """WAL mode, which is stored in the file: set once. SQLite answers "database is locked" at once,
    without waiting on the busy timeout, when two new connections race to switch the mode, so
    the switch is retried."""
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class RatingsLogError(OSError):
    """The log cannot be opened or written (a read-only folder or file, a file that is not
    SQLite, a lock held too long): said with its path, never as a bare SQLite error."""


@dataclass(frozen=True)
class RatingsLog:
    path: Path

    @classmethod
    def default(cls) -> RatingsLog:
        return cls(silva_home().ratings_log)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30)) as conn:
                _wal(conn)
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                yield conn
        except sqlite3.IntegrityError:
            raise  # a bad value (a CHECK), not a bad log
        except (sqlite3.DatabaseError, OSError) as e:
            raise RatingsLogError(f"the ratings log {self.path} cannot be written: {e}") from e

    def check_writable(self) -> None:
        """Raise RatingsLogError now, naming the file, when nothing could be recorded: so a page
        refuses to start instead of answering every rating with an error."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO undos (at, rating_id) VALUES ('write check', -1)")
            conn.rollback()

    def append(
        self,
        image_sha256: str,
        rating: int,
        path: str | None = None,
        post_id: int | None = None,
        rerate: bool = False,
    ) -> int:
        """Record one rating durably; returns its id. Bad values raise and record nothing: a rating
        must be an integer 1..5 (3.5, "4" and True are refused, not read as 3, 4 and 1)."""
        problem = rating_problem(rating, exact=True)
        if problem:
            raise ValueError(problem)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._connect() as conn, conn:
            cur = conn.execute(
                "INSERT INTO ratings (at, image_sha256, path, post_id, rating, rerate) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now, image_sha256, path, post_id, int(rating), int(rerate)),
            )
            return int(cur.lastrowid)

    def compare(self, images: list[dict], winner: str | None = None) -> int:
        """Record one comparison durably; returns its id. Two images and a `winner` (a, b or tie)
        is a pair; two or more and no winner a ranking, best first. Bad values record nothing."""
        shown = [_image(i) for i in images]
        if len({i["image_sha256"] for i in shown}) != len(shown) or len(shown) < 2:
            raise ValueError("a comparison needs two or more different images")
        if winner is not None and (len(shown) != 2 or winner not in ("a", "b", "tie")):
            raise ValueError(f"a pair is two images and a winner a, b or tie, not {winner!r}")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._connect() as conn, conn:
            cur = conn.execute(
                "INSERT INTO comparisons (at, kind, images, winner) VALUES (?, ?, ?, ?)",
                (now, "rank" if winner is None else "pair", json.dumps(shown), winner),
            )
            return int(cur.lastrowid)

    def undo_comparison(self, comparison_id: int) -> None:
        """Withdraw a comparison (recorded, not deleted)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._connect() as conn, conn:
            if (
                conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (int(comparison_id),)).fetchone()
                is None
            ):
                raise ValueError(f"no comparison with id {comparison_id} in {self.path}")
            conn.execute(
                "INSERT OR IGNORE INTO comparison_undos (at, comparison_id) VALUES (?, ?)",
                (now, int(comparison_id)),
            )

    def pairs(self) -> pa.Table:
        """Every standing comparison as judged pairs (`PAIR_SCHEMA`): a ranking of n images gives
        its n(n-1)/2 pairs, each with the better image as `a` and weighted so the ranking counts as
        n - 1 judgements."""
        from silva_model.pairs import ranking_pairs  # it imports torch: only a reader of pairs pays for it

        if not self.path.exists():
            return PAIR_SCHEMA.empty_table()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, kind, images, winner FROM comparisons "
                "WHERE id NOT IN (SELECT comparison_id FROM comparison_undos) ORDER BY id"
            ).fetchall()
        out = []
        for cid, kind, images, winner in rows:
            imgs = json.loads(images)
            if kind == "pair":
                judged = [(imgs[0], imgs[1], winner, 1.0)]
            else:
                judged = [(a, b, "a", weight) for a, b, weight in ranking_pairs(imgs)]
            for a, b, w, weight in judged:
                out.append((cid, a["image_sha256"], b["image_sha256"], w, a["path"], b["path"]))
                out[-1] += (a["post_id"], b["post_id"], weight)
        cols = list(zip(*out, strict=True)) if out else [[] for _ in PAIR_SCHEMA]
        return pa.table(
            [pa.array(c, f.type) for c, f in zip(cols, PAIR_SCHEMA, strict=True)], schema=PAIR_SCHEMA
        )

    def undo(self, rating_id: int) -> None:
        """Withdraw a rating (recorded, not deleted). Undoing one twice is harmless."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._connect() as conn, conn:
            if conn.execute("SELECT 1 FROM ratings WHERE id = ?", (int(rating_id),)).fetchone() is None:
                raise ValueError(f"no rating with id {rating_id} in {self.path}")
            conn.execute("INSERT OR IGNORE INTO undos (at, rating_id) VALUES (?, ?)", (now, int(rating_id)))

    def entries(self) -> pa.Table:
        """Every rating that stands (not undone), in the order given (`ENTRY_SCHEMA`). A row whose
        stored values are no rating (an old log's REAL 3.5, a hand-edited 'four') has a `problem`
        and a null `rating`, so a reader lists it instead of failing or reading it as 3."""
        if not self.path.exists():
            return ENTRY_SCHEMA.empty_table()
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(ENTRY_SCHEMA.names[:-1])} FROM ratings "
                "WHERE id NOT IN (SELECT rating_id FROM undos) ORDER BY id"
            ).fetchall()
        checked = [_checked_entry(*r) for r in rows]
        cols = list(zip(*checked, strict=True)) if checked else [[] for _ in ENTRY_SCHEMA]
        return pa.table([pa.array(c, f.type) for c, f in zip(cols, ENTRY_SCHEMA, strict=True)], ENTRY_SCHEMA)

    def fingerprint(self) -> str:
        """Changes with every rating and comparison appended or undone: part of the ratings
        source's fingerprint."""
        if not self.path.exists():
            return "log:empty"
        with self._connect() as conn:
            n, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM ratings").fetchone()
            undone = conn.execute("SELECT COUNT(*) FROM undos").fetchone()[0]
            c, c_undone = conn.execute(
                "SELECT (SELECT COUNT(*) FROM comparisons), (SELECT COUNT(*) FROM comparison_undos)"
            ).fetchone()
        return f"log:{n}:{last}:{undone}:{c}:{c_undone}"
