"""The one data root: every file silva writes lives under SILVA_HOME, so one setting moves it all
(end to end: tests/pipeline/assets/test_library.py, whose run writes every kind of file)."""

from __future__ import annotations

import dataclasses
import os

from silva_app import home as layout
from silva_app.home import Home


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


def test_a_table_the_pipeline_has_not_published_yet_says_what_to_do(tmp_path):
    import pytest

    from silva_app.queue import latest_queue

    home = Home(tmp_path / "h")
    with pytest.raises(
        FileNotFoundError, match=r"no rating queue in the workspace at .*h: run `uv run silva-run`"
    ):
        latest_queue(home)
    home.latest("rating_queue").write_bytes(b"")
    assert latest_queue(home) == home.latest("rating_queue")
