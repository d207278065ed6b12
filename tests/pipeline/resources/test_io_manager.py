"""Where assets' values live: stored once per run in formats anything reads, never pickled, and the
tables the person's side reads published at one fixed place."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pipeline_support import workspace

from silva_model.active import OutOfFold
from silva_model.head import HeadConfig, OrdinalHead, predict
from silva_pipeline.records import Release
from silva_pipeline.resources import SilvaIOManager
from silva_pipeline.resources.io_manager import load, store


def test_each_kind_of_value_round_trips_without_a_pickle(tmp_path):
    table = pa.table({"a": [1, 2]})
    assert load(store(table, tmp_path / "t")).equals(table)
    release = Release("/r", "3", "not uploaded", 0.5)
    assert load(store(release, tmp_path / "r")) == release
    torch.manual_seed(0)
    heads = [OrdinalHead(HeadConfig(embed_dim=8, hidden=(4,))).eval() for _ in range(3)]
    oof = OutOfFold(np.arange(5.0), heads, np.linspace(0, 1, 5, dtype=np.float32), np.array([1, 2, 3, 4, 5]))
    folder = store(oof, tmp_path / "o")
    assert folder.suffix == ".folds" and not list(tmp_path.glob(".*"))  # assembled aside, moved in whole
    back = load(folder)
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    assert len(back.heads) == 3 and np.array_equal(back.pred, oof.pred) and np.allclose(back.score, oof.score)
    for a, b in zip(heads, back.heads, strict=True):
        np.testing.assert_allclose(predict(a, x)[0], predict(b, x)[0], atol=1e-6)
    assert not list(tmp_path.rglob("*.pkl"))


@dg.asset
def rating_queue() -> pa.Table:
    return pa.table({"image_sha256": ["a" * 64]})


def test_the_tables_the_person_reads_are_published_where_silva_rate_finds_them(silva_home):
    manager = SilvaIOManager(workspace=workspace())
    first = dg.materialize([rating_queue], resources={"io_manager": manager})
    second = dg.materialize([rating_queue], resources={"io_manager": manager})
    latest = silva_home / "latest" / "rating_queue.parquet"
    stored = second.asset_materializations_for_node("rating_queue")[0].metadata["dagster/uri"].value
    assert latest.samefile(stored)  # the newest run's value, linked, not copied
    assert (
        first.run_id != second.run_id and len(list((silva_home / "assets" / "rating_queue").glob("*"))) == 2
    )
    assert pq.read_table(latest).num_rows == 1
