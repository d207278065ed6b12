"""The workspace's MLflow store: created by one process at a time, and a half-migrated one repaired."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from silva_pipeline.tracking.store import StoreError, open_store

FIRST_USE = """
import os, sys, time
from silva_pipeline.tracking.store import open_store
import mlflow
uri, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
open_store(uri)
mlflow.MlflowClient(uri).search_experiments()
print("ok")
"""


@pytest.mark.slow
def test_two_first_uses_at_once_both_open_the_store(tmp_path):
    """What `silva-demo` twice at once did to MLflow's migrations, made to collide: three processes
    start their first use of one new store at the same moment (their imports done)."""
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    command = [sys.executable, "-c", FIRST_USE, uri, str(go)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    assert all(p.stdout.readline().strip() == "ready" for p in procs)
    go.touch()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 3 and all(o.strip().endswith("ok") for o in outs)
    with closing(sqlite3.connect(tmp_path / "mlflow.db")) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'")]
    assert names == []


def _store_cut_short(db: Path) -> None:
    """A store whose migration to MLflow's `181f10493468` (which copies `metrics` into a new table)
    was killed after the copy: the schema one revision behind, `_alembic_tmp_metrics` beside."""
    from alembic import command
    from mlflow.store.db.base_sql_model import Base  # noqa: F401 (the tables' metadata)
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine_with_retry
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    uri = f"sqlite:///{db}"
    engine = create_sqlalchemy_engine_with_retry(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "90e64c465722")
    engine.dispose()
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE _alembic_tmp_metrics AS SELECT * FROM metrics")


def test_a_store_left_half_migrated_is_repaired(tmp_path):
    import mlflow

    db = tmp_path / "mlflow.db"
    _store_cut_short(db)
    with pytest.raises(Exception, match="_alembic_tmp_metrics already exists"):  # MLflow alone, for ever
        mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    open_store(f"sqlite:///{db}")
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    assert client.create_experiment("after-repair")


def test_a_store_beyond_repair_names_the_command_that_sets_it_aside(tmp_path):
    db = tmp_path / "mlflow.db"
    _store_cut_short(db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DROP TABLE metrics")  # killed between the drop and the rename
    with pytest.raises(StoreError, match=f"mv {db} {db}.broken"):
        open_store(f"sqlite:///{db}")
