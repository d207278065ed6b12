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
