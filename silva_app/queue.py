"""Reading the rating queue the pipeline chose: its columns, and which one `silva rate` opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from silva_app.home import Home, silva_home

QUEUE_COLUMNS = (
    "image_sha256",
    "path",
    "post_id",
    "kind",
    "reason",
    "expected_rating",
    "given_rating",
    "rating_sd",  # the spread of the head's predicted rating: how sure it is (what to compare)
    "why",  # why it was picked, in words that hold no score and no rating: shown on a blind page
)
OPTIONAL_COLUMNS = ("rating_sd", "why")  # absent from queues written before comparisons, before `why`
QUEUE_ASSET = "rating_queue"


def read_queue(path: str | Path) -> list[dict[str, Any]]:
    """The queue's rows, checked: a missing file, one that is no parquet or one without the
    queue's columns is refused, by name."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"rating queue not found: {path}")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ValueError(f"{path} is not a rating queue: {e}") from e
    missing = [c for c in QUEUE_COLUMNS if c not in table.column_names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path} is not a rating queue: it lacks column(s) {missing}")
    rows = table.select([c for c in QUEUE_COLUMNS if c in table.column_names]).to_pylist()
    return [dict.fromkeys(OPTIONAL_COLUMNS) | r for r in rows]


def latest_queue(home: Home | None = None) -> Path:
    """The newest rating queue the pipeline chose, where it publishes it in the workspace."""
    return (home or silva_home()).published(
        QUEUE_ASSET,
        "run `uv run silva-run` (or `uv run silva-demo` and `silva rate --demo`) first, or pass --queue",
    )
