"""Where the pipeline keeps its files: one project-local data folder unless told otherwise.

`SILVA_HOME` overrides it. Assets read and write here (not in DAGSTER_HOME), so a run started
from the CLI, the UI or a test finds the outputs of earlier runs wherever its instance lives.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    root = Path(os.environ.get("SILVA_HOME") or PROJECT_ROOT / ".data").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def asset_dir(*key: str) -> Path:
    """Where the pipeline's IO manager stores an asset's values (one file per run)."""
    return data_dir().joinpath("assets", *key)


def latest_queue() -> Path:
    """The newest `rating_queue` the pipeline wrote: what `silva rate` shows by default."""
    found = sorted(asset_dir("rating_queue").glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no rating queue in {asset_dir('rating_queue')}: materialize `rating_queue` first "
            "(uv run silva-demo, or the retrain job), or pass --queue"
        )
    return found[-1]
