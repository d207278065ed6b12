"""Ratings and libraries from files and folders: a CSV/Parquet ratings file, a folder tree
`<rating>/**/image`, library folders and path lists."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import polars as pl

from silva_model.images import IMAGE_EXTENSIONS
from silva_model.provenance import sha256_file
from silva_pipeline.sources.base import (
    BadRow,
    LibraryLoad,
    RatingsLoad,
    Settings,
    from_candidates,
    library_from_paths,
    readable,
)


def _csv_records(path: Path) -> tuple[list[list[str]], list[int], str | None]:
    """Python's strict reading of the file: its records, the line each starts on (a quoted field
    may span lines), and what stops it at the first record it cannot read, by line."""
    records, starts, line = [], [], 1
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, strict=True)
        while True:
            try:
                records.append(next(reader))
            except StopIteration:
                return records, starts, None
            except csv.Error as e:
                if "unexpected end of data" in str(e):
                    return records, starts, f"line {line} opens a quote that is never closed: close it"
                return (
                    records,
                    starts,
                    f"line {line}: text follows a closing quote ({e}): quote the whole field",
                )
            starts.append(line)
            line = reader.line_num + 1


def _csv_problem(path: Path) -> str | None:
    """What polars will not say, by line number: a header naming one column twice (polars renames
    the second silently), a line with more fields than the header, a quote never closed or text
    after a closing quote."""
    records, starts, unreadable = _csv_records(path)
    header = records[0] if records else []
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        return f"its header names column(s) {twice} more than once: keep one of each"
    for fields, line in zip(records[1:], starts[1:], strict=True):
        if len(fields) > len(header):
            return (
                f"line {line} has {len(fields)} fields but the header has {len(header)} "
                "(an unquoted comma in a file name?): quote that field or remove the extra ones"
            )
    return unreadable


def _first_line_polars_refuses(path: Path) -> str | None:
    """Where polars' own parser stops on a file Python's reads (polars gives no line): the first
    record whose prefix of the file polars cannot read, found by bisection over records."""
    _, starts, _ = _csv_records(path)
    lines = path.read_bytes().splitlines(keepends=True)
    ends = [s - 1 for s in starts[1:]] + [len(lines)]  # the last line of each record

    def error(k: int) -> str | None:
        try:
            pl.read_csv(io.BytesIO(b"".join(lines[: ends[k]])), infer_schema=False)
        except pl.exceptions.PolarsError as e:
            return str(e).splitlines()[0]
        return None

    lo, hi = 1, len(starts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if error(mid) else (mid + 1, hi)
    why = error(lo) if lo < len(starts) else None
    return f"line {starts[lo]} cannot be read as CSV: {why}: check its quotes" if why else None


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
        why = _csv_problem(path) or _first_line_polars_refuses(path) or str(e).splitlines()[0][:200]
        raise ValueError(f"{path}: {why}") from e
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
    load = from_candidates(
        [refs[i] for i in keep],
        [paths[i] for i in keep],
        [ratings[i] for i in keep],
        [post_ids[i] for i in keep],
        f"file:{path.name}",
    )
    load.bad[:0] = bad
    return load


def _image_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every file under `root` named like an image (a broken link too: reading it says what is
    wrong), sorted; and what else is there, with why it is passed over: a file that is not an
    image, a link to a folder (not followed), a folder that cannot be read."""
    found: list[Path] = []
    passed: list[tuple[Path, str]] = []

    def unreadable(e: OSError) -> None:
        passed.append((Path(e.filename), f"folder cannot be read: {e.strerror}"))

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        here = Path(folder)
        passed += [(here / d, "a link to a folder: not followed") for d in dirs if (here / d).is_symlink()]
        for name in files:
            f = here / name
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(f)
            else:
                passed.append((f, "not an image file"))
    return sorted(found), sorted(passed)


def read_ratings_folder(root: str | Path) -> RatingsLoad:
    """`root/<rating>/**/image`: the first-level folder name is the rating. Files that are no
    images are passed over, each named in `skipped`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ratings folder not found: {root}")
    files, passed = _image_files(root)
    refs, paths, ratings, bad = [], [], [], []
    for f in files:
        rel = f.relative_to(root)
        if readable(str(rel)) != str(rel):
            bad.append(BadRow(readable(str(rel)), "file name is not valid UTF-8: rename the file"))
            continue
        refs.append(str(rel))
        paths.append(str(f))
        ratings.append(rel.parts[0] if len(rel.parts) > 1 else None)
    load = from_candidates(refs, paths, ratings, [None] * len(paths), f"folder:{root.name}")
    load.bad[:0] = bad
    load.skipped = [BadRow(readable(str(p.relative_to(root))), why) for p, why in passed]
    return load


def read_library_folders(roots: list[str | Path]) -> LibraryLoad:
    """Every image file under the given folders (recursively); what else is there is named in
    `skipped`."""
    refs, paths, bad, skipped = [], [], [], []
    for root in map(Path, roots):
        if not root.is_dir():
            raise FileNotFoundError(f"library folder not found: {root}")
        files, passed = _image_files(root)
        skipped += [BadRow(readable(str(p)), why) for p, why in passed]
        for f in files:
            if readable(str(f)) != str(f):
                bad.append(BadRow(readable(str(f)), "file name is not valid UTF-8: rename the file"))
                continue
            refs.append(str(f))
            paths.append(str(f))
    load = library_from_paths(refs, paths, [None] * len(paths))
    load.bad[:0] = bad
    load.skipped = skipped
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
    return library_from_paths(refs, paths, [None] * len(paths))


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


class RatingsFile:
    """`file`: a CSV or Parquet of image, rating."""

    def ratings(self, settings: Settings) -> RatingsLoad:
        return read_ratings_file(settings.file("file"))

    def library(self, settings: Settings) -> LibraryLoad:
        raise ValueError("a ratings file is no library: set SILVA_LIBRARY_SOURCE (folder or list)")

    def fingerprint(self, settings: Settings) -> str:
        return fingerprint_file(settings.file("file"))


class Folders:
    """`folder`: ratings as `<rating>/**/image`; a library as every image under one or more
    folders (os.pathsep-separated)."""

    def ratings(self, settings: Settings) -> RatingsLoad:
        return read_ratings_folder(settings.file("folder"))

    def library(self, settings: Settings) -> LibraryLoad:
        settings.file("folder")
        return read_library_folders(settings.path.split(os.pathsep))

    def fingerprint(self, settings: Settings) -> str:
        return fingerprint_folder(settings.file("folder"))


class PathList:
    """`list`: a library given as a text file of paths, or a CSV/Parquet with an `image` column."""

    def ratings(self, settings: Settings) -> RatingsLoad:
        raise ValueError("a path list is no ratings source: use kind `file` (image, rating)")

    def library(self, settings: Settings) -> LibraryLoad:
        return read_library_list(settings.file("list"))

    def fingerprint(self, settings: Settings) -> str:
        return fingerprint_file(settings.file("list"))
