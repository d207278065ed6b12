"""`silva export`: the best images out in one command, never overwriting anything."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest
from gallery_support import scores_row, sha_of, write_scores
from helpers import write_images

from silva_app.home import silva_home
from silva_app.ratings_log import RatingsLog
from silva_model.cli import main


@pytest.fixture
def library(tmp_path) -> tuple[Path, list[Path]]:
    """Six images in two folders (two share a name), scored best first in the order written."""
    images = write_images(tmp_path / "lib" / "a", 4) + write_images(tmp_path / "lib" / "b", 2)
    rows = [scores_row(p, 0.9 - 0.1 * k) for k, p in enumerate(images)]
    write_scores(silva_home().latest("library_scores"), rows)
    return tmp_path / "best", images


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_top_images_are_hard_linked_best_first_with_a_csv(library, capsys):
    best, images = library
    RatingsLog.default().append(sha_of(str(images[1])), 4)  # the person's rating goes with it
    assert main(["export", "--top", "3", "--to", str(best)]) == 0
    out = capsys.readouterr().out
    assert f"exported 3 images to {best} (3 hard links, 0 copies)" in out
    assert "(which head scored it is not recorded)" in out
    rows = _csv(best / "silva-export.csv")
    assert [r["path"] for r in rows] == [str(p) for p in images[:3]]
    assert [r["your_rating"] for r in rows] == ["", "4", ""]
    assert [float(r["expected_rating"]) for r in rows] == pytest.approx([4.6, 4.2, 3.8])
    for r in rows:
        assert os.path.samefile(best / r["file"], r["path"])  # a hard link: no second copy on disk


def test_nothing_is_ever_overwritten(library, capsys):
    best, images = library
    best.mkdir()
    (best / images[0].name).write_bytes(b"mine")  # the person's own file of the same name
    (best / "silva-export.csv").write_text("my notes\n")
    assert main(["export", "--min-rating", "1", "--to", str(best), "--copy"]) == 0
    assert (best / images[0].name).read_bytes() == b"mine"
    assert (best / "silva-export.csv").read_text() == "my notes\n"
    rows = _csv(best / "silva-export-2.csv")
    names = [r["file"] for r in rows]
    stem, suffix = images[0].stem, images[0].suffix
    assert names[0] == f"{stem}-2{suffix}" and names[4] == f"{stem}-3{suffix}"  # b/ has a namesake
    assert names[1] == images[1].name and names[5] == f"{images[1].stem}-2.png"
    assert len(set(names)) == 6 and not os.path.samefile(best / names[0], images[0])  # copies
    assert (best / names[0]).read_bytes() == images[0].read_bytes()
    assert main(["export", "--top", "2", "--to", str(best)]) == 0  # again: all new names
    again = [r["file"] for r in _csv(best / "silva-export-3.csv")]
    assert again == [f"{stem}-4{suffix}", f"{images[1].stem}-3.png"]
    capsys.readouterr()


def test_a_vanished_file_is_skipped_and_said(library, tmp_path, capsys):
    best, images = library
    images[1].unlink()
    assert main(["export", "--top", "3", "--to", str(best)]) == 1
    captured = capsys.readouterr()
    assert f"silva: skipped image is gone: {images[1]}" in captured.err
    assert [r["path"] for r in _csv(best / "silva-export.csv")] == [str(images[0]), str(images[2])]
    for image in images[:2] + images[3:]:
        image.unlink(missing_ok=True)
    assert main(["export", "--top", "2", "--to", str(tmp_path / "none")]) == 2  # nothing left to export
    assert "nothing exported to" in capsys.readouterr().err and not list((tmp_path / "none").iterdir())


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write into: by permissions, or (as root, whom they do not stop) a
    read-only file system."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"root, and no read-only file system can be mounted here: {mounted.stderr!r}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_bad_input_gets_a_clear_message(library, read_only, tmp_path, capsys):
    best, _ = library
    assert main(["export", "--top", "2", "--to", str(read_only / "best")]) == 2
    err = capsys.readouterr().err
    assert f"silva: cannot write into {read_only / 'best'}: " in err, err
    assert main(["export", "--top", "2", "--to", str(read_only)]) == 2
    assert f"cannot write into {read_only}: " in capsys.readouterr().err
    assert main(["export", "--to", str(best)]) == 2
    assert "say which images: --top N" in capsys.readouterr().err
    assert main(["export", "--min-rating", "4.9", "--to", str(best)]) == 2
    assert "no image of 6 matches" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["export", "--top", "1", "--to", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder to export into" in capsys.readouterr().err
    assert not best.exists()

    silva_home().latest("library_scores").unlink()
    assert main(["export", "--top", "1", "--to", str(best)]) == 2
    assert "no library scores in the workspace" in capsys.readouterr().err
    write_scores(silva_home().latest("library_scores"), [])
    assert main(["export", "--top", "1", "--to", str(best)]) == 2
    assert "holds no scored images: the library is empty" in capsys.readouterr().err
