"""silva's ratings log: durable, concurrent, append-only."""

from __future__ import annotations

import subprocess
import sys

import pytest

from silva_app.ratings_log import RatingsLog

WRITER = """
import sys
from pathlib import Path
from silva_app.ratings_log import RatingsLog
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
