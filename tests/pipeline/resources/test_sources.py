"""The ratings and library source resources: environment defaults, fingerprints."""

from __future__ import annotations

from pipeline_support import (
    make_ratings_file,
)


def test_demo_size_comes_from_the_environment(monkeypatch):
    from silva_pipeline.definitions import default_resources

    monkeypatch.setenv("SILVA_DEMO_SIZE", "321")
    assert default_resources()["ratings_source"].demo_size == 321


def test_a_changed_pairs_file_changes_the_ratings_fingerprint(tmp_path):
    """The retrain sensor watches the fingerprint: new judgements must wake it like new ratings."""
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 3)
    pairs = csv.parent / "pairs.csv"
    src = RatingsSource(kind="file", path=str(csv), pairs=str(pairs))
    none_yet = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,a\n")
    first = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,b\n")
    assert len({none_yet, first, src.fingerprint()}) == 3
