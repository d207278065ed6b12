"""`silva export`: the library's best images out in one command, as hard links (copies where the
folder is on another file system, or with `copy`) in one folder, with a CSV of where each came
from, its score and its expected rating, best first.

Nothing is ever overwritten: a name already taken (in the folder, or by an earlier image of the
same export) gets a new one (`name-2.png`), each file is created exclusively, and the CSV is a new
file too. A folder that cannot be written is refused before anything is exported.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from silva_app.library_scores import LibraryScores, Query
from silva_model.atomic import atomic_path

EXPORT_CSV = "silva-export.csv"
CSV_COLUMNS = ("rank", "file", "path", "score", "expected_rating", "your_rating")


@dataclass
class Exported:
    folder: Path
    csv: Path
    files: list[Path] = field(default_factory=list)  # in the folder, best first
    copies: int = 0  # how many of them are copies, not hard links
    skipped: list[str] = field(default_factory=list)  # why each image left out was


def choose(scores: LibraryScores, top: int | None, min_rating: float | None, folder: str = "") -> np.ndarray:
    """The rows to export, best first: the `top` best by score, of those whose expected rating
    is at least `min_rating`, under `folder`."""
    if top is None and min_rating is None:
        raise ValueError("say which images: --top N (the N best), --min-rating R, or both")
    if top is not None and top < 1:
        raise ValueError(f"--top must be 1 or more, got {top}")
    rows = scores.select(Query(sort="score", min_rating=min_rating, folder=folder))
    return rows[:top] if top is not None else rows


def _names(name: str) -> Iterator[str]:
    """`name`, then `stem-2.ext`, `stem-3.ext`, ...: the names an image may take in the folder."""
    yield name
    stem, suffix = Path(name).stem, Path(name).suffix
    k = 2
    while True:
        yield f"{stem}-{k}{suffix}"
        k += 1


def _reserve(folder: Path, name: str) -> Path:
    """Create an empty file under a free name (exclusively: an existing file is never touched)."""
    for candidate in _names(name):
        try:
            with open(folder / candidate, "x"):
                return folder / candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def _place(source: Path, folder: Path, link: bool) -> tuple[Path, bool]:
    """Hard-link `source` into `folder` under a free name, or copy it where linking is not
    possible (or not wanted); returns the new file and whether it was linked."""
    for candidate in _names(source.name):
        target = folder / candidate
        if link:
            try:
                os.link(source, target)
                return target, True
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                return _place(source, folder, link=False)  # another file system: copies from here on
        try:
            with open(source, "rb") as src, open(target, "xb") as dst:
                shutil.copyfileobj(src, dst)
        except FileExistsError:
            continue
        shutil.copystat(source, target)
        return target, False
    raise AssertionError("unreachable")


def _open_folder(folder: Path) -> Path:
    """Make the folder if need be and reserve the CSV's name in it (the first write, so a folder
    that is a file or cannot be written is refused, by name, before anything is exported)."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder to export into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _reserve(folder, EXPORT_CSV)
    except OSError as e:
        raise type(e)(f"cannot write into {folder}: {e.strerror or e}") from e


def export(scores: LibraryScores, rows: np.ndarray, folder: Path, copy: bool = False) -> Exported:
    """Put the images of `rows` (best first) into `folder` with the CSV; an image whose file is
    gone, or that has no file, is skipped and said so."""
    out = Exported(folder, _open_folder(folder))
    lines = []
    link = not copy
    for i in rows.tolist():
        path = scores.path[i].as_py()
        if not path:
            out.skipped.append(f"{scores.name(i)}: no file to export (a vector from the source)")
            continue
        try:
            target, linked = _place(Path(path), folder, link)
        except FileNotFoundError:
            out.skipped.append(f"image is gone: {path}")
            continue
        link = link and linked
        out.files.append(target)
        out.copies += not linked
        rating = int(scores.rating[i]) or ""
        lines.append(
            (len(lines) + 1, target.name, path, f"{scores.score[i]:.6f}", f"{scores.expected[i]:.4f}", rating)
        )
    if not lines:  # nothing to list: the name reserved for the list is given back
        out.csv.unlink()
        return out
    with atomic_path(out.csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(lines)
    return out
