"""Readers for the person's ratings: a ratings file, a folder tree, a pictoria database, or
the synthetic demo set. Each returns one row per distinct image, keyed by the SHA-256 of its
bytes, plus the rows it could not use and why. Nothing here decides whether bad rows are
dropped or fatal: the `raw_ratings` asset does, per its config.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from silva_model.backbone import IMAGE_EXTENSIONS
from silva_model.manifest import embeddings_from_arrow, embeddings_to_arrow, read_parquet, write_manifest
from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec, sha256_file
from silva_model.synthetic import make_taste_dataset


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


DEMO_BACKBONE = BackboneSpec(model="synthetic-demo")


def _hash_files(paths: list[str], workers: int = 8) -> list[str | BaseException]:
    def one(p: str) -> str | BaseException:
        try:
            return sha256_file(p)
        except OSError as e:
            return e

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, paths))


def _rating_problem(value: object) -> str | None:
    if value is None:
        return "rating is empty"
    try:
        r = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"rating {value!r} is not a number"
    if not r.is_integer() or not 1 <= r <= 5:
        return f"rating {value!r} is outside 1..5"
    return None


def _from_candidates(
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
        problem = _rating_problem(rating)
        if problem:
            bad.append(BadRow(ref, problem))
        else:
            keep.append(i)
    need_hash = [i for i in keep if not (known_sha and known_sha[i])]
    hashed = dict(zip(need_hash, _hash_files([paths[i] for i in need_hash]), strict=True))
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


def _csv_problem(path: Path) -> str | None:
    """What polars will not say: a header naming one column twice (polars renames the second
    silently) or the first line with more fields than the header, by line number."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:
            return f"its header names column(s) {twice} more than once: keep one of each"
        for fields in reader:
            if len(fields) > len(header):
                return (
                    f"line {reader.line_num} has {len(fields)} fields but the header has {len(header)} "
                    "(an unquoted comma in a file name?): quote that field or remove the extra ones"
                )
    return None


def _read_table(path: Path) -> pl.DataFrame:
    """The ratings table, with errors that name the file (and the line) and say what to do."""
    if path.suffix.lower() == ".parquet":
        df = pl.read_parquet(path)
        if len(set(df.columns)) < len(df.columns):
            raise ValueError(f"{path} names a column more than once: {df.columns}")
        return df
    try:
        df = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError as e:
        raise ValueError(
            f"{path} is empty: expected a header line `image,rating` and one row per image"
        ) from e
    except pl.exceptions.ComputeError as e:
        if "utf-8" in str(e).lower():
            raise ValueError(
                f"{path} is not UTF-8 text (saved as Latin-1 or Windows-1252?): re-save it as UTF-8"
            ) from e
        raise ValueError(f"{path}: {_csv_problem(path) or e}") from e
    problem = _csv_problem(path) if any(c.endswith("_duplicated_0") for c in df.columns) else None
    if problem:
        raise ValueError(f"{path}: {problem}")
    return df


def read_ratings_file(path: str | Path) -> RatingsLoad:
    """CSV or Parquet with columns `image`, `rating`, optional `post_id`. Image paths are relative
    to the file and must stay inside its folder: an absolute path or one that climbs out with
    `..` is a bad row, so a ratings file can never make silva read files elsewhere."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ratings file not found: {path}")
    df = _read_table(path)
    missing = [c for c in ("image", "rating") if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; it has {df.columns}")
    images = df["image"].cast(pl.String).to_list()
    root = path.parent.resolve()
    paths = [str((root / p).resolve()) if p else "" for p in images]
    post_ids = (
        df["post_id"].cast(pl.Int64, strict=False).to_list()
        if "post_id" in df.columns
        else [None] * df.height
    )
    refs = [
        f"{path.name} row {i + 2 if path.suffix.lower() == '.csv' else i} ({img})"
        for i, img in enumerate(images)
    ]
    outside = [i for i, p in enumerate(paths) if p and not Path(p).is_relative_to(root)]
    bad = [BadRow(refs[i], f"image path leaves the ratings file's folder {root}") for i in outside]
    keep = sorted(set(range(len(images))) - set(outside))
    ratings = df["rating"].to_list()
    load = _from_candidates(
        [refs[i] for i in keep],
        [paths[i] for i in keep],
        [ratings[i] for i in keep],
        [post_ids[i] for i in keep],
        f"file:{path.name}",
    )
    load.bad[:0] = bad
    return load


def read_ratings_folder(root: str | Path) -> RatingsLoad:
    """`root/<rating>/**/image`: the first-level folder name is the rating."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ratings folder not found: {root}")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    refs, paths, ratings, bad = [], [], [], []
    for f in files:
        rel = f.relative_to(root)
        if readable(str(rel)) != str(rel):
            bad.append(BadRow(readable(str(rel)), "file name is not valid UTF-8: rename the file"))
            continue
        refs.append(str(rel))
        paths.append(str(f))
        ratings.append(rel.parts[0] if len(rel.parts) > 1 else None)
    load = _from_candidates(refs, paths, ratings, [None] * len(paths), f"folder:{root.name}")
    load.bad[:0] = bad
    return load


# The person's rated posts: score 0 means unrated; a set canonical_post_id marks a duplicate.
_RATED_POSTS = "FROM posts WHERE score != 0 AND canonical_post_id IS NULL ORDER BY id"


def _connect_ro(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise FileNotFoundError(f"pictoria database not found: {db_path}")
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)


def read_pictoria(
    db_path: str | Path,
    library_root: str | Path | None = None,
    use_vectors: bool = True,
    vectors_backbone: str = DEFAULT_BACKBONE,
) -> RatingsLoad:
    """Rated posts (score 1..5; 0 = unrated) of a pictoria library, read-only; duplicates
    (`canonical_post_id` set) are skipped. SigLIP2 vectors from `post_vectors_siglip2` come
    along when the `pictoria` extra (sqlite-vec, apsw) is installed; pictoria makes them with
    `vectors_backbone`'s pooled output and records neither weights nor preprocessing."""
    db_path = Path(db_path)
    root = Path(library_root) if library_root else db_path.parent
    with _connect_ro(db_path) as conn:
        posts = conn.execute(f"SELECT id, full_path, sha256, score {_RATED_POSTS}").fetchall()
    vectors = pictoria_vectors(db_path) if use_vectors else {}
    refs = [f"post {pid} ({fp})" for pid, fp, _, _ in posts]
    paths = [str(root / fp) for _, fp, _, _ in posts]
    shas = [sha or None for _, _, sha, _ in posts]
    load = _from_candidates(
        refs,
        paths,
        [s for *_, s in posts],
        [pid for pid, *_ in posts],
        f"pictoria:{db_path.name}",
        known_sha=shas,
    )
    if vectors:
        load.rows = _attach_embeddings(load.rows, vectors)
        load.backbone = BackboneSpec(model=vectors_backbone, pooling="pooler_output")
        load.vectors = vectors
    return load


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


def _demo_table(path: Path, n: int, seed: int, ratings: bool) -> pl.DataFrame:
    """One synthetic set of the demo's planted taste, generated once and kept as parquet."""
    if not path.exists():
        d = make_taste_dataset(n, seed=seed)
        cols: dict[str, pa.Array] = {
            "image_sha256": pa.array([hashlib.sha256(row.tobytes()).hexdigest() for row in d.embeddings]),
        }
        if ratings:
            cols["rating"] = pa.array(d.ratings, pa.int8())
        cols["embedding"] = embeddings_to_arrow(d.embeddings)
        write_manifest(pa.table(cols), path)
    return pl.from_arrow(read_parquet(path))


def demo_ratings(folder: Path, n: int = 4000, seed: int = 0, library_size: int = 0) -> RatingsLoad:
    """The synthetic demo set (no images: embeddings with a planted taste), generated once. The
    demo library's vectors come along, so a demo image rated in silva's log needs no file."""
    t = _demo_table(folder / f"demo-{n}-{seed}.parquet", n, seed, ratings=True)
    rows = t.select(
        "image_sha256",
        "rating",
        pl.lit(None, pl.String).alias("path"),
        (pl.int_range(pl.len(), dtype=pl.Int64)).alias("post_id"),
        pl.lit("synthetic-demo").alias("source"),
        pl.col("embedding").cast(pl.List(pl.Float32)),
    )
    vectors = {}
    if library_size:
        lib = demo_library(folder, library_size, seed)
        emb = embeddings_from_arrow(lib.rows["embedding"].to_arrow())
        vectors = dict(zip(lib.rows["post_id"].to_list(), emb, strict=True))
    return RatingsLoad(rows, backbone=DEMO_BACKBONE, vectors=vectors)


# --- the library: every image the person has, rated or not --------------------------------------

DEMO_LIBRARY_FIRST_POST_ID = 1_000_000


@dataclass
class LibraryLoad:
    rows: pl.DataFrame  # image_sha256, path, post_id (+ embedding when precomputed)
    bad: list[BadRow] = field(default_factory=list)
    backbone: BackboneSpec | None = None  # where the precomputed embeddings came from


def empty_library() -> pl.DataFrame:
    return pl.DataFrame(schema={"image_sha256": pl.String, "path": pl.String, "post_id": pl.Int64})


def _library_from_paths(
    refs: list[str], paths: list[str], post_ids: list[int | None], known_sha: list[str | None] | None = None
) -> LibraryLoad:
    """Hash what is not hashed yet; a missing or unreadable file is a bad row; one row per image."""
    need = [i for i in range(len(paths)) if not (known_sha and known_sha[i])]
    hashed = dict(zip(need, _hash_files([paths[i] for i in need]), strict=True))
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


def read_library_folders(roots: list[str | Path]) -> LibraryLoad:
    """Every image file under the given folders (recursively)."""
    refs, paths, bad = [], [], []
    for root in map(Path, roots):
        if not root.is_dir():
            raise FileNotFoundError(f"library folder not found: {root}")
        for f in sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS):
            if readable(str(f)) != str(f):
                bad.append(BadRow(readable(str(f)), "file name is not valid UTF-8: rename the file"))
                continue
            refs.append(str(f))
            paths.append(str(f))
    load = _library_from_paths(refs, paths, [None] * len(paths))
    load.bad[:0] = bad
    return load


def read_library_list(path: str | Path) -> LibraryLoad:
    """A text file with one image path per line, or a CSV/Parquet with an `image` column; relative
    paths resolve against the list's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"library list not found: {path}")
    if path.suffix.lower() in (".csv", ".parquet"):
        df = _read_table(path)
        if "image" not in df.columns:
            raise ValueError(f"{path} lacks column 'image'; it has {df.columns}")
        images = [str(v) for v in df["image"].drop_nulls().to_list()]
    else:
        text = path.read_text(encoding="utf-8")
        images = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    paths = [str((path.parent / p).resolve()) for p in images]
    refs = [f"{path.name}: {p}" for p in images]
    return _library_from_paths(refs, paths, [None] * len(paths))


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
    load = _library_from_paths(
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


def demo_library(folder: Path, n: int = 20_000, seed: int = 0) -> LibraryLoad:
    """The demo's unrated pool: n more images of the same planted taste (a different sample)."""
    t = _demo_table(folder / f"demo-library-{n}-{seed}.parquet", n, seed + 1_000_003, ratings=False)
    rows = t.select(
        "image_sha256",
        pl.lit(None, pl.String).alias("path"),
        (DEMO_LIBRARY_FIRST_POST_ID + pl.int_range(pl.len(), dtype=pl.Int64)).alias("post_id"),
        pl.col("embedding").cast(pl.List(pl.Float32)),
    )
    return LibraryLoad(rows, backbone=DEMO_BACKBONE)


def fingerprint_file(path: Path) -> str:
    return "file:" + sha256_file(path)


def fingerprint_folder(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            st = f.stat()
            h.update(
                f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape")
            )
    return "folder:" + h.hexdigest()


def fingerprint_pictoria(db_path: Path) -> str:
    h = hashlib.sha256()
    with _connect_ro(db_path) as conn:
        for row in conn.execute(f"SELECT id, score, sha256 {_RATED_POSTS}"):
            h.update(repr(row).encode())
    return "pictoria:" + h.hexdigest()


def with_log(load: RatingsLoad, log_entries: pa.Table) -> RatingsLoad:
    """The source's ratings with silva's ratings log on top (`RatingsLog.entries()`). Per image, the
    latest logged rating replaces the source's; an image rated only in the log joins with its path
    (one without a path cannot be embedded and is a bad row). `first_rating` keeps the rating
    before the latest one wherever an image was rated twice: the person's own consistency."""
    entries = pl.from_arrow(log_entries)
    if entries.is_empty():
        return load
    problems = [_rating_problem(r) for r in entries["rating"].to_list()]
    invalid = [
        BadRow(f"ratings log id {i}", problem)
        for i, problem in zip(entries["id"].to_list(), problems, strict=True)
        if problem
    ]
    entries = entries.filter(pl.Series([p is None for p in problems], dtype=pl.Boolean))
    if entries.is_empty():
        return RatingsLoad(load.rows, load.bad + invalid, load.merged_duplicates, load.backbone, load.vectors)
    per_image = entries.group_by("image_sha256", maintain_order=True).agg(
        pl.col("rating").last().alias("logged"),
        pl.col("rating").first().alias("first_logged"),
        pl.len().alias("n"),
        pl.col("path").last(),
        pl.col("post_id").last(),
        pl.col("id").last(),
    )
    rows = (
        load.rows.join(per_image.select("image_sha256", "logged"), on="image_sha256", how="left")
        .with_columns(
            pl.when(pl.col("logged").is_not_null())
            .then(pl.col("rating"))
            .cast(pl.Int8)
            .alias("first_rating"),
            pl.coalesce("logged", "rating").cast(pl.Int8).alias("rating"),
        )
        .drop("logged")
    )
    new = per_image.join(rows.select("image_sha256"), on="image_sha256", how="anti")
    vector = [load.vectors.get(pid) if pid is not None else None for pid in new["post_id"].to_list()]
    new = new.with_columns(
        pl.Series("embedding", [v.tolist() if v is not None else None for v in vector], pl.List(pl.Float32))
    )
    usable = pl.col("path").is_not_null() | pl.col("embedding").is_not_null()
    bad = [
        BadRow(f"ratings log id {i}", "image rated in silva has no path and is not in the source")
        for i in new.filter(~usable)["id"].to_list()
    ]
    added = new.filter(usable).select(
        "image_sha256",
        pl.col("logged").cast(pl.Int8).alias("rating"),
        "path",
        "post_id",
        pl.lit("silva-log").alias("source"),
        pl.when(pl.col("n") > 1).then(pl.col("first_logged")).cast(pl.Int8).alias("first_rating"),
        "embedding",
    )
    if added["embedding"].null_count() == added.height:
        added = added.drop("embedding")
    return RatingsLoad(
        pl.concat([rows, added], how="diagonal_relaxed"),
        load.bad + invalid + bad,
        load.merged_duplicates,
        load.backbone,
        load.vectors,
    )
