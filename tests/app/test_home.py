"""The one data root: every file silva writes lives under SILVA_HOME, so one setting moves it all."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from helpers import ROOT
from pipeline_support import make_ratings_file, resources, run

from silva_app import home as layout
from silva_app.home import Home
from silva_app.ratings_log import RatingsLog

IGNORED = {".git", ".venv", ".pytest_cache", ".ruff_cache", "__pycache__", "node_modules"}


def _files_under(root: Path) -> set[Path]:
    out = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        out.update(Path(folder, f) for f in files)
    return out


def test_every_place_of_the_layout_is_under_the_root(tmp_path):
    home = Home(tmp_path / "h")
    for field in (
        "embeddings",
        "releases",
        "ratings_log",
        "demo",
        "mlflow_db",
        "mlflow_artifacts",
        "postgres",
    ):
        assert getattr(home, field).is_relative_to(home.root), field
    assert home.asset("manifest").is_relative_to(home.root)
    assert not [f for f in dataclasses.fields(Home) if f.name != "root"]  # nothing but the root to set


def test_the_demo_has_a_workspace_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("SILVA_DEMO_HOME", str(tmp_path / "demo"))
    mine = layout.silva_home().root
    root = layout.use_demo_workspace()
    assert root == (tmp_path / "demo").resolve() and not root.is_relative_to(mine)
    assert layout.silva_home().root == root / "data" and layout.dagster_home() == root / "dagster"
    assert "MLFLOW_TRACKING_URI" not in os.environ  # its runs go to its own store


@pytest.mark.slow
def test_one_setting_moves_every_file_silva_writes(tiny_backbone, tmp_path, silva_home, monkeypatch):
    import dagster as dg

    from silva_pipeline.assets import MODEL_ASSETS
    from silva_pipeline.resources import LibrarySource

    before = _files_under(ROOT)
    ratings = make_ratings_file(tmp_path / "rated", 40)
    res = resources(tiny_backbone, kind="file", path=str(ratings))
    res["library_source"] = LibrarySource(kind="folder", path=str(ratings.parent / "images"))
    instance = dg.DagsterInstance.ephemeral()
    assert run(res, [*MODEL_ASSETS, "library"], instance=instance).success
    for shard in instance.get_dynamic_partitions("library_shards"):
        assert run(res, ["library_embeddings"], instance=instance, partition_key=shard).success
    assert run(res, ["library_scores", "rating_queue"], instance=instance).success
    RatingsLog.default().append("a" * 64, 4, None, None)

    home = layout.silva_home()
    assert home.root == silva_home.resolve()
    for folder in (home.asset("rating_queue"), home.embeddings, home.releases, home.mlflow_artifacts):
        assert any(folder.iterdir()), folder
    assert home.ratings_log.is_file() and home.mlflow_db.is_file()
    assert {p.name for p in home.asset().iterdir()} >= {"manifest", "head", "library_scores", "rating_queue"}
    assert _files_under(ROOT) == before  # nothing written into the project (no .data, mlruns, ...)
