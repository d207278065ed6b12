"""Reading a rating queue: what is no queue is refused, by name."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silva_app.queue import read_queue


def test_a_missing_file_or_one_that_is_no_queue_is_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="rating queue not found: /nope.parquet"):
        read_queue("/nope.parquet")
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet")
    with pytest.raises(ValueError, match=f"{text} is not a rating queue: .*magic bytes"):
        read_queue(text)
    bogus = tmp_path / "not-a-queue.parquet"
    pq.write_table(pa.table({"x": [1]}), bogus)
    with pytest.raises(ValueError, match=r"not-a-queue.parquet is not a rating queue: it lacks column\(s\)"):
        read_queue(bogus)
