"""One `silva-run` (or `silva-demo`) per workspace at a time.

Two at once trained twice, raced on creating the MLflow store and queued behind each other's pool
slots. The second one now refuses at once, saying which process holds the workspace. The lock is an
`flock` on a file in the data root: the kernel drops it with its process, so a killed run never
leaves the workspace locked.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".silva-run.lock"


class WorkspaceBusy(RuntimeError):
    """Another process runs the pipeline in this workspace; the message names it."""


@contextmanager
def workspace_lock(root: Path, command: str) -> Iterator[None]:
    """Hold the workspace at `root` for `command`, or raise WorkspaceBusy at once."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise WorkspaceBusy(
                f"{holder} is running in this workspace ({root}): wait for it to finish, or stop it; "
                "one run at a time per workspace"
            ) from None
        f.seek(0)
        f.truncate()
        started = dt.datetime.now().strftime("%H:%M:%S")
        f.write(f"{command} (pid {os.getpid()}, started {started})")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
