"""Reading the rating queue the pipeline chose: its columns, and which one `silva rate` opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

QUEUE_COLUMNS = (
    "image_sha256",
    "path",
    "post_id",
    "kind",
    "reason",
    "expected_rating",
    "given_rating",
    "rating_sd",  # the spread of the head's predicted rating: how sure it is (what to compare)
)
OPTIONAL_COLUMNS = ("rating_sd",)  # absent from queues written before comparisons
QUEUE_ASSET = "rating_queue"


def read_queue(path: str | Path) -> list[dict[str, Any]]:
    """The queue's rows, checked: a file without the queue's columns is refused, by name."""
    table = pq.read_table(path)
    missing = [c for c in QUEUE_COLUMNS if c not in table.column_names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path} is not a rating queue: it lacks column(s) {missing}")
    rows = table.select([c for c in QUEUE_COLUMNS if c in table.column_names]).to_pylist()
    return [dict.fromkeys(OPTIONAL_COLUMNS) | r for r in rows]


def latest_queue() -> Path:
    """The latest materialized `rating_queue`, as Dagster recorded it (not the newest file)."""
    import dagster as dg

    from silva_app.home import dagster_home
    from silva_pipeline.resources.io_manager import latest_uri

    home = dagster_home()
    path = None
    if (home / "dagster.yaml").exists() or (home / "storage").exists():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            path = latest_uri(instance, dg.AssetKey(QUEUE_ASSET))
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"no rating queue in the Dagster instance at {home}: materialize `{QUEUE_ASSET}` first "
            "(uv run silva-demo, or the retrain job), or pass --queue"
        )
    return path
