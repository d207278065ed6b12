"""Ratings files, folders and library lists: bad rows named, bad files refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import (
    write_images,
)
from PIL import Image
from pipeline_support import (
    failure_message,
    meta,
    rated_images,
    resources,
    run,
    write_ratings_csv,
)

from silva_pipeline.resources import LibrarySource
from silva_pipeline.sources.files import read_library_folders, read_ratings_file, read_ratings_folder


def test_a_ragged_csv_line_is_named_with_its_file_and_line(tmp_path):
    a, b, c = (p.name for p in write_images(tmp_path, 3))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f"image,rating\n{a},3\n{b},4,extra\n{c},5\n")
    with pytest.raises(ValueError, match=r"ragged\.csv: line 3 has 3 fields but the header has 2"):
        read_ratings_file(ragged)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('"{b},4', r"line 3 opens a quote that is never closed"),
        ('"{b}"x,4', r"line 3: text follows a closing quote"),
        ('{b}"x,4', r"line 3 cannot be read as CSV: "),  # Python's csv reads it; polars does not
    ],
)
def test_every_csv_parse_error_names_its_line(tmp_path, line, problem):
    a, b, c = (p.name for p in write_images(tmp_path, 3))
    broken = tmp_path / "broken.csv"
    broken.write_text(f"image,rating\n{a},3\n{line.format(b=b)}\n{c},5\n{a},3\n")
    with pytest.raises(ValueError, match=rf"broken\.csv: {problem}"):
        read_ratings_file(broken)


def test_a_header_naming_rating_twice_is_an_error(tmp_path):
    (a,) = (p.name for p in write_images(tmp_path, 1))
    twice = tmp_path / "twice.csv"
    twice.write_text(f"image,rating,rating\n{a},3,4\n")
    named_twice = r"twice\.csv: its header names column\(s\) \['rating'\] more than once"
    with pytest.raises(ValueError, match=named_twice):
        read_ratings_file(twice)


def test_a_short_csv_line_is_a_bad_row_not_a_failure(tmp_path):
    a, b = (p.name for p in write_images(tmp_path, 2))
    short = tmp_path / "short.csv"
    short.write_text(f"image,rating\n{a},3\n{b}\n")
    load = read_ratings_file(short)
    assert load.rows.height == 1
    assert [(r.where, r.reason) for r in load.bad] == [(f"short.csv row 3 ({b})", "rating is empty")]


def _what_a_folder_also_holds(root: Path) -> None:
    """Beside the images: notes, a file with no suffix, a broken link named like an image, and a
    link to a folder (not followed)."""
    (root / "3" / "notes.txt").write_text("rated on a train")
    (root / "3" / "README").write_text("")
    (root / "3" / "gone.png").symlink_to(root / "nowhere.png")
    (root / "4").mkdir(exist_ok=True)
    (root / "4" / "more").symlink_to(root / "3", target_is_directory=True)


def test_files_a_folder_source_passes_over_are_named_with_why(tmp_path):
    root = tmp_path / "ratings"
    rated_images(root / "3", 2)
    _what_a_folder_also_holds(root)
    load = read_ratings_folder(root)
    assert load.rows.height == 2
    assert [(b.where, b.reason) for b in load.skipped] == [
        ("3/README", "not an image file"),
        ("3/notes.txt", "not an image file"),
        ("4/more", "a link to a folder: not followed"),
    ]
    assert [(b.where, b.reason.split(" (")[0]) for b in load.bad] == [("3/gone.png", "image file is missing")]
    library = read_library_folders([root])
    assert library.rows.height == 2 and [b.where for b in library.skipped] == [
        str(root / "3" / "README"),
        str(root / "3" / "notes.txt"),
        str(root / "4" / "more"),
    ]
    assert [b.where for b in library.bad] == [str(root / "3" / "gone.png")]


def test_folder_source(tiny_backbone, tmp_path):
    root = tmp_path / "ratings"
    for rating in (1, 2, 3, 4, 5, 7):
        rated_images(root / str(rating), 3, seed=rating)
    _what_a_folder_also_holds(root)
    res = resources(tiny_backbone, kind="folder", path=str(root))
    res["library_source"] = LibrarySource(workspace=res["workspace"], kind="folder", path=str(root))
    r = run(res, selection=["raw_ratings", "library"])
    assert r.success and meta(r, "raw_ratings", "dagster/row_count") == 15
    assert "rating '7' is outside 1..5" in meta(r, "raw_ratings", "bad_rows")
    for node in ("raw_ratings", "library"):
        assert meta(r, node, "skipped_files") == 3
        listed = meta(r, node, "skipped_files_first")
        assert "notes.txt" in listed and "not an image file" in listed and "not followed" in listed


def test_a_non_utf8_file_name_is_a_bad_row_not_a_crash(tiny_backbone, tmp_path):
    root = tmp_path / "ratings"
    rated_images(root / "3", 4)
    bad_name = os.fsdecode(b"\xff\xfeart.png")
    (root / "4").mkdir()
    Image.new("RGB", (20, 20)).save(root / "4" / bad_name)
    r = run(resources(tiny_backbone, kind="folder", path=str(root)), selection=["raw_ratings"])
    assert r.success
    bad = r.asset_materializations_for_node("raw_ratings")[0].metadata["bad_rows"].value
    assert "\ufffd\ufffdart.png" in bad and "not valid UTF-8" in bad


def test_a_latin1_or_empty_ratings_csv_gets_a_message_naming_the_file(tiny_backbone, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("image,rating\ncaf\xe9.png,3\n".encode("latin-1"))
    r = run(resources(tiny_backbone, kind="file", path=str(latin)), selection=["raw_ratings"])
    assert not r.success and "latin.csv is not UTF-8" in failure_message(r)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = run(resources(tiny_backbone, kind="file", path=str(empty)), selection=["raw_ratings"])
    assert not r.success and "empty.csv is empty" in failure_message(r)


def test_paths_in_a_ratings_file_cannot_leave_its_folder(tiny_backbone, tmp_path):
    root = tmp_path / "rated"
    paths, ratings = rated_images(root / "images", 4)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (20, 20)).save(outside)
    rows = [(p.relative_to(root), r) for p, r in zip(paths, ratings, strict=True)]
    rows += [("../outside.png", 3), (str(outside), 4), ("images/../../outside.png", 2)]
    csv = write_ratings_csv(root / "ratings.csv", rows)
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), selection=["raw_ratings"])
    assert r.success
    meta = r.asset_materializations_for_node("raw_ratings")[0].metadata
    assert meta["dagster/row_count"].value == 4 and meta["bad_rows_count"].value == 3
    assert meta["bad_rows"].value.count("leaves the ratings file's folder") == 3
