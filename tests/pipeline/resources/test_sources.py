"""The ratings and library source resources: environment defaults, fingerprints."""

from __future__ import annotations

from pipeline_support import (
    make_ratings_file,
    workspace,
)


def test_a_setting_left_empty_comes_from_the_workspace_setup_then_the_environment(monkeypatch):
    from silva_app.setup import Setup
    from silva_pipeline.resources import RatingsSource

    src = RatingsSource(workspace=workspace())
    assert src.value("demo_size") == 4000
    Setup.load(src.workspace.home(), {"SILVA_DEMO_SIZE": "123", "SILVA_SOURCE": "demo"}).record()
    assert src.value("demo_size") == 123 and src.resolved_kind() == "demo"
    monkeypatch.setenv("SILVA_DEMO_SIZE", "321")
    assert src.value("demo_size") == 321
    assert RatingsSource(workspace=workspace(), demo_size=7).value("demo_size") == 7  # run config wins


def test_a_workspace_never_set_up_names_the_command_that_sets_it_up():
    from silva_pipeline.resources import RatingsSource

    (problem,) = RatingsSource(workspace=workspace()).problems()
    assert "has no ratings source yet" in problem and "uv run silva-run" in problem


def test_a_changed_pairs_file_changes_the_ratings_fingerprint(tmp_path):
    """The retrain sensor watches the fingerprint: new judgements must wake it like new ratings."""
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 3)
    pairs = csv.parent / "pairs.csv"
    src = RatingsSource(workspace=workspace(), kind="file", path=str(csv), pairs=str(pairs))
    none_yet = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,a\n")
    first = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,b\n")
    assert len({none_yet, first, src.fingerprint()}) == 3
