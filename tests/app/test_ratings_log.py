"""silva's ratings log: durable, concurrent, append-only."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from silva_app.ratings_log import RatingsLog, RatingsLogError

WRITER = """
import sys
from pathlib import Path
from silva_app.ratings_log import RatingsLog, RatingsLogError
log = RatingsLog(Path(sys.argv[1]))
for i in range(100):
    log.append(f"{int(sys.argv[2]) * 1000 + i:064x}", 1 + i % 5)
"""


def test_two_writers_at_once_lose_nothing(tmp_path):
    path = tmp_path / "log.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)]) for w in (1, 2)]
    assert all(p.wait(timeout=120) == 0 for p in writers)
    entries = RatingsLog(path).entries()
    assert entries.num_rows == 200 and len(set(entries["id"].to_pylist())) == 200
    assert len(set(entries["image_sha256"].to_pylist())) == 200


def test_a_bad_rating_raises_and_records_nothing(tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 4)
    with pytest.raises(ValueError, match="outside 1..5"):
        log.append("b" * 64, 6)
    with pytest.raises(Exception, match="CHECK"):
        log.append("short", 3)
    assert log.entries()["image_sha256"].to_pylist() == ["a" * 64]


def test_a_rating_that_is_not_an_integer_is_refused_at_write(tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    for value in (3.5, "4", True, 4.0):
        with pytest.raises(ValueError, match=r"is not an integer"):
            log.append("b" * 64, value)
    assert log.entries().num_rows == 0


def test_a_new_log_refuses_a_real_or_text_rating_in_sqlite_itself(tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 4)
    with sqlite3.connect(log.path) as conn:  # another program writing the log directly
        for value in (3.5, "four"):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(
                    "INSERT INTO ratings (at, image_sha256, rating) VALUES (0, ?, ?)", ("b" * 64, value)
                )
    assert log.entries()["rating"].to_pylist() == [4]


def test_bad_values_already_in_a_log_are_named_not_read_as_something_else(tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 4)
    with sqlite3.connect(log.path) as conn:  # an old log, a hand edit
        conn.execute("PRAGMA ignore_check_constraints = 1")
        for value in (3.5, "four", 9):
            conn.execute("INSERT INTO ratings (at, image_sha256, rating) VALUES (0, ?, ?)", ("a" * 64, value))
    entries = log.entries()
    assert entries["rating"].to_pylist() == [4, None, None, None]  # 3.5 is not read as 3
    assert entries["problem"].to_pylist() == [
        None,
        "rating 3.5 is not an integer",
        "rating 'four' is not an integer",
        "rating 9 is outside 1..5",
    ]


def test_a_log_that_cannot_be_written_says_so_with_its_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("a text file, not a database" * 100)
    for path, why in ((blocker / "log.sqlite", "File exists"), (not_sqlite, "file is not a database")):
        log = RatingsLog(path)
        with pytest.raises(RatingsLogError, match=f"the ratings log {path} cannot be written: .*{why}"):
            log.check_writable()
        with pytest.raises(RatingsLogError, match=str(path)):
            log.append("a" * 64, 3)
    log = RatingsLog(tmp_path / "log.sqlite")
    log.check_writable()  # a good log: checked, and nothing recorded
    assert log.entries().num_rows == 0 and log.fingerprint() == "log:0:0:0:0:0"
