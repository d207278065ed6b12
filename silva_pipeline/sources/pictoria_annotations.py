"""pictoria's annotation tables (migrations 0011, 0014, 0016), read-only: absolute judgements on
the 5-point scale as ratings, pairwise judgements and group rankings as pairs, the rest counted.

Every table is an event log with in-place corrections (`edited_at`): a corrected row is read as it
stands now, once, and counted as edited. Posts marked as duplicates (`canonical_post_id`) stand for
their canonical post. What cannot be used is counted, and what is wrong is a bad row naming its
table and id; nothing here writes to pictoria.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator

import polars as pl

from silva_model.pairs import ranking_pairs
from silva_pipeline.sources.base import BadRow, Judgements

DIMENSIONS = ("overall", "color", "finish", "composition")  # what pictoria's app allows
TABLES = ("absolute_annotations", "pairwise_annotations", "listwise_annotations", "content_flag_events")
RATING_SCALE = 5  # absolute judgements on this scale are ratings; 2- and 3-point ones are not


def tables_in(conn: sqlite3.Connection) -> set[str]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return names & set(TABLES)


def canonical_posts(conn: sqlite3.Connection) -> dict[int, int]:
    """post id -> the canonical post it stands for (itself when it is no duplicate)."""
    parent = dict(conn.execute("SELECT id, COALESCE(canonical_post_id, id) FROM posts").fetchall())
    out = {}
    for post in parent:
        seen, p = {post}, parent[post]
        while parent.get(p, p) != p and p not in seen:  # a duplicate of a duplicate
            seen.add(p)
            p = parent[p]
        out[post] = p
    return out


def check_dimension(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise ValueError(f"pictoria dimension {dimension!r} is not one of {list(DIMENSIONS)}")
    return dimension


def absolute_ratings(
    conn: sqlite3.Connection, dimension: str, canon: dict[int, int]
) -> tuple[dict[int, tuple[int, str]], list[BadRow], dict[str, int]]:
    """canonical post -> (value, ref) of its latest 5-point judgement of `dimension`. The latest
    event per image wins whatever its scale, so a later 2- or 3-point judgement replaces an earlier
    5-point one and, having no sound place on the 1-5 scale, is counted as not used."""
    counts = {"absolute_read": 0, "absolute_edited": 0, "absolute_other_scale_not_used": 0}
    if "absolute_annotations" not in tables_in(conn):
        return {}, [], counts
    rows = conn.execute(
        "SELECT id, post_id, scale, value, edited_at FROM absolute_annotations WHERE dimension = ? "
        "ORDER BY created_at, id",
        (dimension,),
    ).fetchall()
    latest: dict[int, tuple[int, int, str]] = {}
    bad = []
    for aid, post, scale, value, edited in rows:
        ref = f"absolute_annotations id {aid}"
        counts["absolute_read"] += 1
        counts["absolute_edited"] += edited is not None
        if post not in canon:
            bad.append(BadRow(ref, f"post {post} is not a post"))
            continue
        if not isinstance(value, int) or not 1 <= value <= scale:
            bad.append(BadRow(ref, f"value {value!r} is outside 1..{scale}"))
            continue
        latest[canon[post]] = (scale, value, ref)
    out = {}
    for post, (scale, value, ref) in latest.items():
        if scale == RATING_SCALE:
            out[post] = (value, ref)
        else:
            counts["absolute_other_scale_not_used"] += 1
    return out, bad, counts


class _Judged:
    """The judgements read so far, as rows over canonical posts, with what was wrong and counted."""

    def __init__(self, canon: dict[int, int]) -> None:
        self.canon = canon
        self.rows: list[tuple[int, int, str, float, str, str]] = []  # a, b, winner, weight, ref, at
        self.bad: list[BadRow] = []
        self.counts = dict.fromkeys(
            ["pairwise_read", "pairwise_skipped", "pairwise_ties", "pairwise_edited", "listwise_read"]
            + ["listwise_skipped", "listwise_partial", "listwise_edited", "listwise_pairs", "flags_not_used"],
            0,
        )

    def events(self, conn: sqlite3.Connection, table: str, columns: str, dimension: str) -> Iterator[tuple]:
        """(ref, created_at, *columns) of each row of `table` for `dimension`, in id order, each
        counted as read (and as edited when corrected in place)."""
        kind = table.removesuffix("_annotations")
        for rid, edited, at, *values in conn.execute(
            f"SELECT id, edited_at, created_at, {columns} FROM {table} WHERE dimension = ? ORDER BY id",  # noqa: S608
            (dimension,),
        ):
            self.counts[f"{kind}_read"] += 1
            self.counts[f"{kind}_edited"] += edited is not None
            yield (f"{table} id {rid}", at, *values)

    def pair(self, a: int, b: int, winner: str, ref: str, at: str, weight: float = 1.0) -> bool:
        ca, cb = self.canon.get(a), self.canon.get(b)
        if ca is None or cb is None:
            self.bad.append(BadRow(ref, f"post {a if ca is None else b} is not a post"))
        elif ca == cb:
            self.bad.append(BadRow(ref, f"posts {a} and {b} are one image (a duplicate and its original)"))
        else:
            self.rows.append((ca, cb, winner, weight, ref, at))
        return ca is not None and cb is not None and ca != cb


def read_judgements(conn: sqlite3.Connection, dimension: str, canon: dict[int, int]) -> Judgements:
    """Pairwise judgements (a, b, tie; skip carries nothing) and rankings (n images, best first:
    n(n-1)/2 ordered pairs; `[]` is a skip) of `dimension`, with flags counted as not used. As
    with ratings, the latest judgement wins: each unordered pair of images keeps the last one
    made of it (by `created_at`), alone or inside a ranking, and `superseded` counts the rest."""
    tables = tables_in(conn)
    judged = _Judged(canon)
    if "pairwise_annotations" in tables:
        _read_pairwise(conn, dimension, judged)
    if "listwise_annotations" in tables:
        _read_listwise(conn, dimension, judged)
    if "content_flag_events" in tables:
        judged.counts["flags_not_used"] = conn.execute("SELECT COUNT(*) FROM content_flag_events").fetchone()[
            0
        ]
    frame = pl.DataFrame(
        judged.rows,
        schema={
            "a": pl.Int64,
            "b": pl.Int64,
            "winner": pl.String,
            "weight": pl.Float32,
            "ref": pl.String,
            "at": pl.String,
        },
        orient="row",
    )
    pair = pl.struct(lo=pl.min_horizontal("a", "b"), hi=pl.max_horizontal("a", "b"))
    latest = frame.sort("at", maintain_order=True).filter(pair.is_last_distinct()).drop("at")
    judged.counts["superseded"] = frame.height - latest.height
    judged.counts["pairs"] = latest.height
    return Judgements(latest, judged.bad, judged.counts)


def _read_pairwise(conn: sqlite3.Connection, dimension: str, judged: _Judged) -> None:
    counts = judged.counts
    for ref, at, a, b, winner in judged.events(
        conn, "pairwise_annotations", "post_a, post_b, winner", dimension
    ):
        if winner == "skip":
            counts["pairwise_skipped"] += 1
        elif winner in ("a", "b", "tie"):
            counts["pairwise_ties"] += winner == "tie"
            judged.pair(a, b, winner, ref, at)
        else:
            judged.bad.append(BadRow(ref, f"winner {winner!r} is not a, b, tie or skip"))


def _read_listwise(conn: sqlite3.Connection, dimension: str, judged: _Judged) -> None:
    """Rankings, best first; one that orders only some of the posts shown gives the pairs of the
    order it states (the posts it leaves out are compared with nothing) and is counted partial."""
    counts = judged.counts
    for ref, at, shown, ranking in judged.events(
        conn, "listwise_annotations", "post_ids, ranking", dimension
    ):
        ranked = _ranking(ref, shown, ranking, judged.bad)
        if ranked is None:
            continue
        order, n_shown = ranked
        counts["listwise_skipped"] += not order
        counts["listwise_partial"] += 0 < len(order) < n_shown
        for better, worse, weight in ranking_pairs(order):
            counts["listwise_pairs"] += judged.pair(better, worse, "a", ref, at, weight)


def _ranking(ref: str, shown: str, ranking: str, bad: list[BadRow]) -> tuple[list[int], int] | None:
    """The ranked post ids, best first, and how many posts were shown; or None (a bad row) when
    the ranking is not some of the posts shown, each once."""
    try:
        shown_ids, order = json.loads(shown), json.loads(ranking)
    except (TypeError, json.JSONDecodeError) as e:
        bad.append(BadRow(ref, f"post_ids or ranking is not JSON: {e}"))
        return None
    for name, ids in (("post_ids", shown_ids), ("ranking", order)):
        if not isinstance(ids, list) or not all(isinstance(p, int) for p in ids):
            bad.append(BadRow(ref, f"{name} {ids!r} is not a list of post ids"))
            return None
    if len(set(order)) != len(order) or not set(order) <= set(shown_ids):
        bad.append(BadRow(ref, f"ranking {ranking!r} repeats a post or names one not shown ({shown})"))
        return None
    return order, len(set(shown_ids))


def annotations_digest(conn: sqlite3.Connection) -> str:
    """A digest of every annotation row, edits included: annotating in pictoria wakes the sensor."""
    h = hashlib.sha256()
    for table in sorted(tables_in(conn)):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY id"):  # noqa: S608 (names from TABLES)
            h.update(repr((table, *row)).encode())
    return h.hexdigest()
