"""Everything silva knows of pictoria, read-only but for one table: rated posts (`posts.score`
and 5-point absolute annotations), pairwise and ranking annotations as judgements, every canonical
post as the library, the SigLIP2 vectors pictoria stored, and, on request, silva's scores written
into `post_aesthetic_scores` (rows whose `scorer` is silva's name only, in one transaction; no
other table and no other scorer is touched)."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec
from silva_pipeline.sources.base import (
    BadRow,
    Judgements,
    LibraryLoad,
    RatingsLoad,
    Settings,
    from_candidates,
    library_from_paths,
)
from silva_pipeline.sources.pictoria_annotations import (
    absolute_ratings,
    annotations_digest,
    canonical_posts,
    check_dimension,
    read_judgements,
)

# The person's rated posts: score 0 means unrated; a set canonical_post_id marks a duplicate.
_RATED_POSTS = "FROM posts WHERE score != 0 AND canonical_post_id IS NULL ORDER BY id"
# Where a post has both a 5-point absolute annotation and posts.score: which one is its rating.
Absolute = Literal["over_score", "under_score", "ignore"]


def _connect_ro(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise FileNotFoundError(f"pictoria database not found: {db_path}")
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)


def read_pictoria(
    db_path: str | Path,
    library_root: str | Path | None = None,
    use_vectors: bool = True,
    vectors_backbone: str = DEFAULT_BACKBONE,
    dimension: str = "overall",
    absolute: Absolute = "over_score",
) -> RatingsLoad:
    """Rated posts of a pictoria library, read-only: `posts.score` (1..5; 0 = unrated; the
    `overall` rating, so read for that dimension only) and the latest 5-point absolute annotation
    of `dimension`, which replaces the score (`over_score`), fills only unscored posts
    (`under_score`) or is not read (`ignore`). Duplicates (`canonical_post_id` set) are skipped
    and their annotations count for their canonical post. SigLIP2 vectors from
    `post_vectors_siglip2` come along when the `pictoria` extra (sqlite-vec, apsw) is installed;
    pictoria makes them with `vectors_backbone`'s pooled output and records neither weights nor
    preprocessing."""
    db_path = Path(db_path)
    check_dimension(dimension)
    root = Path(library_root) if library_root else db_path.parent
    with closing(_connect_ro(db_path)) as conn:
        posts = {
            pid: (fp, sha)
            for pid, fp, sha in conn.execute(
                "SELECT id, full_path, sha256 FROM posts WHERE canonical_post_id IS NULL ORDER BY id"
            )
        }
        scores = (
            dict(conn.execute(f"SELECT id, score {_RATED_POSTS}").fetchall())
            if dimension == "overall"
            else {}
        )
        annotated, bad, counts = (
            ({}, [], {}) if absolute == "ignore" else absolute_ratings(conn, dimension, canonical_posts(conn))
        )
    ratings: dict[int, object] = dict(scores)
    counts["absolute_used"] = counts["absolute_over_score"] = 0
    for pid, (value, _) in annotated.items():
        if pid in scores and absolute == "under_score":
            continue
        counts["absolute_used"] += 1
        counts["absolute_over_score"] += pid in scores and scores[pid] != value
        ratings[pid] = value
    ids = sorted(p for p in ratings if p in posts)
    bad += [
        BadRow(f"post {p}", "its duplicates form a loop (canonical_post_id)")
        for p in ratings
        if p not in posts
    ]
    vectors = pictoria_vectors(db_path) if use_vectors else {}
    load = from_candidates(
        [f"post {pid} ({posts[pid][0]})" for pid in ids],
        [str(root / posts[pid][0]) for pid in ids],
        [ratings[pid] for pid in ids],
        ids,
        f"pictoria:{db_path.name}",
        known_sha=[posts[pid][1] or None for pid in ids],
    )
    load.bad[:0] = bad
    load.notes = counts
    if vectors:
        load.rows = _attach_embeddings(load.rows, vectors)
        load.backbone = BackboneSpec(model=vectors_backbone, pooling="pooler_output")
        load.vectors = vectors
    return load


def read_pictoria_judgements(db_path: str | Path, dimension: str = "overall") -> Judgements:
    """The pairwise and ranking annotations of `dimension`, with pictoria's vectors of the posts
    they name (a compared post needs no rating when pictoria has its vector)."""
    db_path = Path(db_path)
    check_dimension(dimension)
    with closing(_connect_ro(db_path)) as conn:
        judgements = read_judgements(conn, dimension, canonical_posts(conn))
        named = set(judgements.pairs["a"].to_list()) | set(judgements.pairs["b"].to_list())
        judgements.shas = {
            p: sha for p, sha in conn.execute("SELECT id, sha256 FROM posts WHERE sha256 != ''") if p in named
        }
    if named:
        judgements.vectors = {p: v for p, v in pictoria_vectors(db_path).items() if p in named}
    return judgements


def pictoria_vectors(db_path: Path) -> dict[int, np.ndarray]:
    """post_id -> float32 vector from the sqlite-vec `vec0` table (empty when pictoria has none).
    Read through apsw, because many Python builds ship a sqlite3 module that cannot load
    extensions."""
    with _connect_ro(db_path) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'post_vectors_siglip2'").fetchone() is None:
            return {}
    try:
        import apsw
        import sqlite_vec
    except ImportError:
        import warnings

        warnings.warn(
            "pictoria has SigLIP2 vectors but the pictoria extra is not installed "
            "(pip install 'silva[pictoria]'); images will be embedded instead",
            stacklevel=3,
        )
        return {}
    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        rows = conn.execute("SELECT post_id, embedding FROM post_vectors_siglip2").fetchall()
    finally:
        conn.close()
    return {int(pid): np.frombuffer(blob, dtype="<f4") for pid, blob in rows}


def _attach_embeddings(rows: pl.DataFrame, vectors: dict[int, np.ndarray]) -> pl.DataFrame:
    emb = [vectors.get(pid) if pid is not None else None for pid in rows["post_id"].to_list()]
    return rows.with_columns(
        pl.Series(
            "embedding", [e.tolist() if e is not None else None for e in emb], dtype=pl.List(pl.Float32)
        )
    )


def read_pictoria_library(
    db_path: str | Path, library_root: str | Path | None = None, vectors_backbone: str = DEFAULT_BACKBONE
) -> LibraryLoad:
    """Every canonical post, rated or not, read-only; pictoria's stored vectors used as they are.
    Files are hashed only where `posts.sha256` is empty."""
    db_path = Path(db_path)
    root = Path(library_root) if library_root else db_path.parent
    with _connect_ro(db_path) as conn:
        posts = conn.execute(
            "SELECT id, full_path, sha256 FROM posts WHERE canonical_post_id IS NULL ORDER BY id"
        ).fetchall()
    load = library_from_paths(
        [f"post {pid} ({fp})" for pid, fp, _ in posts],
        [str(root / fp) for _, fp, _ in posts],
        [pid for pid, *_ in posts],
        known_sha=[sha or None for *_, sha in posts],
    )
    vectors = pictoria_vectors(db_path)
    if vectors:
        load.rows = _attach_embeddings(load.rows, vectors)
        load.backbone = BackboneSpec(model=vectors_backbone, pooling="pooler_output")
    return load


def fingerprint_pictoria(db_path: Path) -> str:
    """Changes with the rated posts and with every annotation (edits too)."""
    h = hashlib.sha256()
    with closing(_connect_ro(db_path)) as conn:
        for row in conn.execute(f"SELECT id, score, sha256 {_RATED_POSTS}"):
            h.update(repr(row).encode())
        h.update(annotations_digest(conn).encode())
    return "pictoria:" + h.hexdigest()


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


class Pictoria:
    """`pictoria`: a pictoria database (`path`); images under `library_root` (default: beside it)."""

    def ratings(self, settings: Settings) -> RatingsLoad:
        return read_pictoria(
            settings.file("pictoria"),
            settings.library_root or None,
            vectors_backbone=settings.precomputed_backbone,
            dimension=settings.pictoria_dimension,
            absolute=settings.pictoria_absolute,
        )

    def judgements(self, settings: Settings) -> Judgements:
        return read_pictoria_judgements(settings.file("pictoria"), settings.pictoria_dimension)

    def library(self, settings: Settings) -> LibraryLoad:
        return read_pictoria_library(
            settings.file("pictoria"),
            settings.library_root or None,
            settings.precomputed_backbone,
        )

    def fingerprint(self, settings: Settings) -> str:
        return fingerprint_pictoria(settings.file("pictoria"))
