"""What every source hands the pipeline, and the checks every reader shares.

A source reads one origin (files and folders, pictoria, the demo) into one row per distinct
image, keyed by the SHA-256 of its bytes, plus the rows it could not use and why. Nothing here
decides whether bad rows are dropped or fatal: the `raw_ratings` asset does, per its config.
An origin is one module with one `Origin` object: add a module and register it in `__init__`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from silva_app.home import Home
from silva_model.pairs import Pairs
from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec, sha256_file
from silva_model.ratings import rating_problem


@dataclass
class BadRow:
    where: str  # a row number, a path or a post id: something a person can find
    reason: str


@dataclass
class RatingsLoad:
    rows: pl.DataFrame  # image_sha256, rating, path, post_id, source (+ embedding when precomputed)
    bad: list[BadRow] = field(default_factory=list)
    merged_duplicates: int = 0
    backbone: BackboneSpec | None = None  # where the precomputed embeddings came from
    # The source's precomputed vectors of images it knows but that are not rated (pictoria's
    # unrated posts, the demo's library pool), by post_id: an image first rated in silva's log
    # takes its vector from here instead of being embedded.
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)  # what the source read, used and did not use
    skipped: list[BadRow] = field(default_factory=list)  # files it passed over (not images), and why


@dataclass
class LibraryLoad:
    rows: pl.DataFrame  # image_sha256, path, post_id (+ embedding when precomputed)
    bad: list[BadRow] = field(default_factory=list)
    backbone: BackboneSpec | None = None  # where the precomputed embeddings came from
    skipped: list[BadRow] = field(default_factory=list)  # files it passed over (not images), and why


@dataclass
class Judgements:
    """Comparisons between images named by a key (pictoria's canonical post ids, or SHA-256):
    each row says `a` is better (`a`), `b` is (`b`) or neither (`tie`); `ref` says which
    annotation or log event it came from."""

    pairs: pl.DataFrame  # a, b (keys), winner, weight (`Pairs.weight`), ref
    bad: list[BadRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # read, used, skipped, edited, not used
    vectors: dict = field(default_factory=dict)  # embeddings of images no rating has, by key
    shas: dict[int, str] = field(default_factory=dict)  # posts.sha256 of the posts named, where set

    def to_pairs(self, rows_by_post: dict, n_rows: int, dim: int) -> tuple[Pairs | None, list[BadRow]]:
        """The judgements as `Pairs` over the manifest (`rows_by_post`: key -> row of N =
        `n_rows`): an image the manifest lacks takes its vector as an extra image; one with
        neither cannot be judged and its pairs are bad rows."""
        extra_ids: dict[int, int] = {}
        a_idx, b_idx, keep, bad = [], [], [], []

        def index(post: int) -> int:
            return (
                rows_by_post[post]
                if post in rows_by_post
                else n_rows + extra_ids.setdefault(post, len(extra_ids))
            )

        for i, (a, b, ref) in enumerate(self.pairs.select("a", "b", "ref").iter_rows()):
            usable = [
                p in rows_by_post or (p in self.vectors and self.vectors[p].shape == (dim,)) for p in (a, b)
            ]
            if all(usable):
                a_idx.append(index(a))
                b_idx.append(index(b))
                keep.append(i)
            for post, ok in zip((a, b), usable, strict=True):
                if not ok:
                    why = (
                        "has no embedding"
                        if post not in self.vectors
                        else "has an embedding of another width"
                    )
                    name = f"post {post}" if isinstance(post, int) else f"image {str(post)[:12]}…"
                    bad.append(BadRow(ref, f"{name} is not rated and {why}: the pair is left out"))
        if not keep:
            return None, bad
        winner = self.pairs["winner"].to_numpy()[keep]
        outcome = np.select([winner == "a", winner == "b"], [1.0, -1.0], 0.0).astype(np.float32)
        extra = np.stack([self.vectors[p] for p in extra_ids]).astype(np.float32) if extra_ids else None
        weight = self.pairs["weight"].to_numpy()[keep]
        return Pairs(np.asarray(a_idx, np.int64), np.asarray(b_idx, np.int64), outcome, extra, weight), bad


def empty_library() -> pl.DataFrame:
    return pl.DataFrame(schema={"image_sha256": pl.String, "path": pl.String, "post_id": pl.Int64})


@dataclass(frozen=True)
class Settings:
    """What an origin reads from the `ratings_source` / `library_source` resources."""

    path: str  # the ratings file or folder, the library folder(s) or list, the pictoria database
    home: Home  # where the demo keeps its generated data
    library_root: str = ""  # pictoria: the folder posts.full_path is relative to
    precomputed_backbone: str = DEFAULT_BACKBONE  # pictoria: the backbone its stored vectors came from
    demo_size: int = 4000
    demo_library_size: int = 0
    demo_seed: int = 0
    pictoria_dimension: str = "overall"  # pictoria: which annotated dimension is the person's taste
    pictoria_absolute: str = "over_score"  # pictoria: a 5-point annotation over or under posts.score

    def file(self, kind: str) -> Path:
        if not self.path:
            raise ValueError(f"source kind {kind!r} needs `path` (SILVA_RATINGS or SILVA_LIBRARY)")
        return Path(self.path).expanduser()


class Origin(Protocol):
    """One place ratings and libraries come from. An origin that has only one of the two raises
    for the other; `fingerprint` changes whenever its ratings do (the new-ratings sensor)."""

    def ratings(self, settings: Settings) -> RatingsLoad: ...

    def library(self, settings: Settings) -> LibraryLoad: ...

    def fingerprint(self, settings: Settings) -> str: ...


@runtime_checkable
class Judging(Protocol):
    """An origin that also records comparisons (pictoria's pairwise and ranking annotations)."""

    def judgements(self, settings: Settings) -> Judgements: ...


def hash_files(paths: list[str], workers: int = 8) -> list[str | BaseException]:
    def one(p: str) -> str | BaseException:
        try:
            return sha256_file(p)
        except OSError as e:
            return e

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, paths))


def from_candidates(
    refs: list[str],
    paths: list[str],
    ratings: list[object],
    post_ids: list[int | None],
    source: str,
    known_sha: list[str | None] | None = None,
) -> RatingsLoad:
    """Check ratings and files, hash the files, merge duplicates: the common tail of every reader."""
    bad: list[BadRow] = []
    keep = []
    for i, (ref, rating) in enumerate(zip(refs, ratings, strict=True)):
        problem = rating_problem(rating)
        if problem:
            bad.append(BadRow(ref, problem))
        else:
            keep.append(i)
    need_hash = [i for i in keep if not (known_sha and known_sha[i])]
    hashed = dict(zip(need_hash, hash_files([paths[i] for i in need_hash]), strict=True))
    shas: list[str] = []
    ok: list[int] = []
    for i in keep:
        h = hashed.get(i, known_sha[i] if known_sha else None)
        if isinstance(h, BaseException):
            reason = (
                "image file is missing" if isinstance(h, FileNotFoundError) else f"cannot read image: {h}"
            )
            bad.append(BadRow(refs[i], f"{reason} ({paths[i]})"))
            continue
        shas.append(str(h))
        ok.append(i)
    df = pl.DataFrame(
        {
            "image_sha256": shas,
            "rating": [int(float(ratings[i])) for i in ok],  # type: ignore[arg-type]
            "path": [paths[i] for i in ok],
            "post_id": [post_ids[i] for i in ok],
            "source": [source] * len(ok),
            "ref": [refs[i] for i in ok],
        },
        schema={
            "image_sha256": pl.String,
            "rating": pl.Int8,
            "path": pl.String,
            "post_id": pl.Int64,
            "source": pl.String,
            "ref": pl.String,
        },
    )
    return merge_duplicates(df, bad)


def merge_duplicates(df: pl.DataFrame, bad: list[BadRow]) -> RatingsLoad:
    """One row per image: the same bytes rated alike merge; rated differently, all copies are bad."""
    stats = df.group_by("image_sha256").agg(
        pl.col("rating").n_unique().alias("n_ratings"), pl.len().alias("n")
    )
    conflicted = stats.filter(pl.col("n_ratings") > 1)["image_sha256"]
    for sha, grp in df.filter(pl.col("image_sha256").is_in(conflicted.implode())).group_by("image_sha256"):
        detail = ", ".join(f"{r} at {ref}" for r, ref in zip(grp["rating"], grp["ref"], strict=True))
        for ref in grp["ref"]:
            bad.append(BadRow(ref, f"the same image (sha256 {sha[0][:12]}…) is rated differently: {detail}"))
    clean = df.filter(~pl.col("image_sha256").is_in(conflicted.implode()))
    unique = clean.unique(subset="image_sha256", keep="first", maintain_order=True)
    return RatingsLoad(unique.drop("ref"), bad, clean.height - unique.height)


def readable(name: str) -> str:
    """A file name a person can read and polars can store: undecodable bytes (a name that is not
    UTF-8 on disk) become U+FFFD instead of lone surrogates."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def library_from_paths(
    refs: list[str], paths: list[str], post_ids: list[int | None], known_sha: list[str | None] | None = None
) -> LibraryLoad:
    """Hash what is not hashed yet; a missing or unreadable file is a bad row; one row per image."""
    need = [i for i in range(len(paths)) if not (known_sha and known_sha[i])]
    hashed = dict(zip(need, hash_files([paths[i] for i in need]), strict=True))
    bad, keep, shas = [], [], []
    for i in range(len(paths)):
        h = hashed.get(i, known_sha[i] if known_sha else None)
        if isinstance(h, BaseException):
            bad.append(BadRow(refs[i], f"cannot read image: {h}"))
            continue
        keep.append(i)
        shas.append(str(h))
    df = pl.DataFrame(
        {"image_sha256": shas, "path": [paths[i] for i in keep], "post_id": [post_ids[i] for i in keep]},
        schema=empty_library().schema,
    )
    return LibraryLoad(df.unique(subset="image_sha256", keep="first", maintain_order=True), bad)
