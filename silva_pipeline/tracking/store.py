"""The workspace's MLflow store (SQLite), created and migrated by one process at a time.

Two first runs at once each created MLflow's tables and ran its migrations over the same file;
both failed, and a store left half-migrated (an `_alembic_tmp_<table>` copy beside or instead of
its table) failed every later run. So the first use of a store in a process happens under an
exclusive lock beside it (`flock`: the kernel drops it with the process), and a store an older
silva left half-migrated is repaired there, or named with the command that sets it aside.
"""

from __future__ import annotations

import fcntl
import sqlite3
from contextlib import closing
from pathlib import Path

_READY: set[str] = set()  # stores this process has opened (and migrated) already


class StoreError(RuntimeError):
    """The MLflow store cannot be opened; the message says how to set it aside."""


def _repair(db: Path) -> None:
    """Drop the copies a cut-short migration left beside tables that still stand (the table is
    intact; the migration runs again). A table that is gone, with only its copy left, is beyond
    a safe repair: StoreError."""
    with closing(sqlite3.connect(db)) as conn, conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for tmp in sorted(n for n in names if n.startswith("_alembic_tmp_")):
            if tmp.removeprefix("_alembic_tmp_") not in names:
                raise StoreError(f"its table {tmp.removeprefix('_alembic_tmp_')} was lost mid-migration")
            conn.execute(f'DROP TABLE "{tmp}"')


def open_store(uri: str) -> None:
    """Create, or bring up to date, the SQLite store at `uri` once per process, under the store's
    lock; any other URI (a tracking server) is the server's to manage."""
    if not uri.startswith("sqlite:///") or uri in _READY:
        return
    import mlflow
    from mlflow.store.db.utils import (
        _get_latest_schema_revision,
        _get_schema_version,
        _is_empty_database,
        _upgrade_db,
        create_sqlalchemy_engine_with_retry,
    )

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with (db.parent / f".{db.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if db.exists():
                engine = create_sqlalchemy_engine_with_retry(uri)
                stale = _get_schema_version(engine) != _get_latest_schema_revision()
                if stale and not _is_empty_database(engine):  # half-migrated, or an older MLflow's
                    _repair(db)
                    _upgrade_db(engine)
                engine.dispose()
            client = mlflow.MlflowClient(uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        except Exception as e:
            raise StoreError(
                f"the MLflow store {db} cannot be opened ({str(e).splitlines()[0]}); it was probably "
                f"left half-migrated by an older silva: set it aside with `mv {db} {db}.broken` and run "
                "again (its runs and registry history stay in the moved file; releases are untouched)"
            ) from e
    _READY.add(uri)
