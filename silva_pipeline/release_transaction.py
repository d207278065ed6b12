"""One release at a time, all or nothing, even when its process is killed half way.

A release changes three things that must agree: the releases folder, the MLflow registry's versions
and its `champion` alias. `ReleaseTransaction` holds an exclusive lock on `releases/.lock` (an
`flock`, which the kernel drops with the process, so a killed release never blocks the next one
the way a Dagster pool slot did), and writes a journal (`releases/.journal.json`: the previous
champion, the highest version before, the folder being staged) before it touches anything. The
next release finds the journal of a killed one and undoes it: versions registered since are
deleted, `champion` points where it did, the staging folder is removed. A release whose folder was
moved into place (the last step) is complete, whatever was left unrecorded.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

from silva_model.atomic import atomic_write_text
from silva_pipeline.tracking.registry import champion, roll_back, versions

JOURNAL = ".journal.json"


class ReleaseTransaction:
    """`with ReleaseTransaction(releases, client, log) as tx:` stage into `tx.begin(folder)`, then
    `tx.commit()`; an exception before the commit, or a kill at any point, leaves the previous
    release fully in force."""

    def __init__(self, releases: Path, client, log) -> None:
        self.releases, self.client, self.log = Path(releases), client, log
        self.journal = self.releases / JOURNAL
        self.folder: Path | None = None

    def __enter__(self) -> ReleaseTransaction:
        self.releases.mkdir(parents=True, exist_ok=True)
        self._lock = (self.releases / ".lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.log.info("waiting for another release to finish (releases/.lock)")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self._recover("was killed before it finished")
        except BaseException:
            self._lock.close()
            raise
        return self

    def _recover(self, why: str) -> None:
        """Undo a release that was begun and not committed (its journal says what it began), and
        remove staging folders nobody writes to (the lock is held)."""
        if self.journal.exists():
            started = json.loads(self.journal.read_text(encoding="utf-8"))
            if not (self.releases / started["folder"]).exists():
                deleted = roll_back(self.client, started["previous"], started["newer_than"])
                self.log.warning(
                    f"undid release {started['folder']} of run {started['run_id']}, which {why}: "
                    f"deleted registry versions {deleted or 'none'}, champion back on "
                    f"{started['previous'] or 'none'}"
                )
            self.journal.unlink()
        for stale in self.releases.glob(".*.staging"):
            shutil.rmtree(stale, ignore_errors=True)

    def begin(self, folder: Path, run_id: str) -> Path:
        """Journal the release of `folder` and return the staging folder to write it in."""
        self.folder = folder
        registered = versions(self.client)
        atomic_write_text(
            self.journal,
            json.dumps(
                {
                    "folder": folder.name,
                    "run_id": run_id,
                    "previous": champion(self.client),
                    "newer_than": max(registered, default=0),
                }
            ),
        )
        return self.staging

    @property
    def staging(self) -> Path:
        assert self.folder is not None
        return self.folder.with_name(f".{self.folder.name}.staging")

    def commit(self) -> None:
        """Move the staged folder into place: from here on the release is in force."""
        self.staging.replace(self.folder)
        self.journal.unlink()

    def __exit__(self, kind, error, tb) -> None:
        try:
            if self.journal.exists():  # begun, not committed
                self._recover(f"failed ({kind.__name__ if kind else 'no error'})")
        finally:
            self._lock.close()
