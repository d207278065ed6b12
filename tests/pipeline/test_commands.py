"""silva-demo, silva-run and silva-ui."""

from __future__ import annotations

import pytest


def test_silva_run_refuses_the_demo_source_and_names_what_to_set(monkeypatch, capsys):
    from silva_pipeline.commands import run_own

    monkeypatch.delenv("SILVA_SOURCE", raising=False)
    assert run_own([]) == 2
    err = capsys.readouterr().err
    assert "SILVA_SOURCE" in err and "silva-demo" in err


@pytest.mark.slow
def test_the_demo_runs_in_its_own_workspace_and_reset_starts_it_over(tmp_path, monkeypatch, capsys):
    """In-process, as `uv run silva-demo --reset` runs: the person's sources and tracking URI set
    (and pointing nowhere) change nothing; the demo's workspace is made anew."""
    from silva_pipeline.commands import main

    demo = tmp_path / "demo-home"
    monkeypatch.setenv("SILVA_DEMO_SIZE", "300")
    monkeypatch.setenv("SILVA_DEMO_LIBRARY_SIZE", "400")
    for name, value in {"SILVA_SOURCE": "folder", "SILVA_RATINGS": str(tmp_path / "nowhere")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    (demo / "data").mkdir(parents=True)
    (demo / "data" / "left-over").write_text("from an earlier demo")
    assert main(["--reset", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "MLflow registry: silva-head v1" in out and f"workspace: {demo.resolve() / 'data'}" in out
    assert not (demo / "data" / "left-over").exists()
    assert len(list((demo / "data" / "releases").glob("2*/model.safetensors"))) == 1
    assert not (tmp_path / "silva-home" / "releases").exists()  # the person's workspace: untouched
